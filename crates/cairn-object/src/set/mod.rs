//! One erasure set: its drives, its quorum rules, and its locks. How a
//! fan-out to its drives is counted is in [`fanout`]; how the records they
//! return resolve into one version, in [`read`].

pub(crate) mod fanout;
pub(crate) mod nslock;
pub(crate) mod placement;
pub(crate) mod read;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_disk::{Disk, DiskError, Format, ReadData};

use crate::error::{Error, Result};
use crate::quorum::{self, Verdict};
use crate::types::{BucketInfo, SetHealth};

pub(crate) use fanout::{
    DriveAnswers, describe_errors, fan_out, not_waited_for, write_failed, write_quorum,
};
pub(crate) use read::{ReadWait, Resolved, read_records, resolve, slow_drives};

/// The drives of one erasure set, in slot order, with the erasure layout new
/// objects get.
pub(crate) struct ErasureSet {
    pub(crate) pool_idx: usize,
    pub(crate) set_idx: usize,
    pub(crate) disks: Vec<Arc<dyn Disk>>,
    /// The format each slot's drive must carry.
    pub(crate) formats: Vec<Format>,
    pub(crate) data_shards: usize,
    pub(crate) parity_shards: usize,
    /// The longest a fan-out to the set's drives waits: the longest a call
    /// to a remote drive is waited for, the backstop for calls that carry
    /// no deadline of their own.
    pub(crate) deadline: Duration,
    /// The deadline of one call to a local drive (`CAIRN_DRIVE_MAX_TIMEOUT`),
    /// for the blocking reads the object layer batches itself.
    pub(crate) call_deadline: Duration,
}

impl ErasureSet {
    /// Where the locks of this set's objects are taken.
    pub(crate) fn lock_set(&self) -> nslock::LockSet {
        nslock::LockSet {
            pool: self.pool_idx,
            set: self.set_idx,
        }
    }

    pub(crate) fn size(&self) -> usize {
        self.disks.len()
    }

    pub(crate) fn write_quorum(&self) -> usize {
        write_quorum(self.data_shards, self.parity_shards)
    }

    pub(crate) fn read_quorum(&self) -> usize {
        self.data_shards
    }

    pub(crate) fn online(&self) -> usize {
        self.disks.iter().filter(|d| d.is_online()).count()
    }

    pub(crate) fn health(&self) -> SetHealth {
        SetHealth {
            pool: self.pool_idx,
            set: self.set_idx,
            drives: self.size(),
            online: self.online(),
            data_shards: self.data_shards,
            parity_shards: self.parity_shards,
            read_quorum: self.read_quorum(),
            write_quorum: self.write_quorum(),
            endpoints: self
                .disks
                .iter()
                .map(|d| (d.endpoint().to_owned(), d.is_online()))
                .collect(),
        }
    }

    pub(crate) fn name(&self) -> String {
        format!("pool {} set {}", self.pool_idx + 1, self.set_idx + 1)
    }

    /// Resolves a bucket by read quorum over this set's drives.
    pub(crate) async fn bucket_info(&self, bucket: &str) -> Result<BucketInfo> {
        let read_quorum = self.read_quorum();
        let count = |results: &[Option<Result<cairn_disk::BucketRecord, DiskError>>]| {
            let present = results.iter().filter(|r| matches!(r, Some(Ok(_)))).count();
            let missing = results
                .iter()
                .filter(|r| matches!(r, Some(Err(DiskError::BucketNotFound))))
                .count();
            (present, missing)
        };
        // Settled once the drives still pending could not turn the answer.
        let calls = self.disks.iter().map(|disk| disk.get_bucket(bucket));
        let answers = quorum::gather(calls, Some(self.deadline), |answers| {
            let (present, missing) = count(answers.results());
            let pending = answers.pending();
            let decided = present >= missing + pending || present + pending < missing;
            if present + missing >= read_quorum && decided {
                Verdict::Done
            } else {
                Verdict::Wait
            }
        })
        .await;
        let results = answers.into_results(|_| not_waited_for());
        let mut found: HashMap<i64, usize> = HashMap::new();
        let mut missing = 0;
        for res in &results {
            match res {
                Ok(record) => *found.entry(record.created_ns).or_default() += 1,
                Err(DiskError::BucketNotFound) => missing += 1,
                Err(_) => {}
            }
        }
        let present: usize = found.values().sum();
        if present + missing < read_quorum {
            return Err(Error::ReadQuorum {
                ok: present + missing,
                needed: read_quorum,
                errors: describe_errors(&self.disks, &results),
            });
        }
        // A completed create or delete reached write quorum, which is more
        // than half the set; a tie can only come from failed attempts, and
        // keeping the bucket then loses nothing.
        if present > 0 && present >= missing {
            let created_ns = found
                .into_iter()
                .max_by_key(|(created, count)| (*count, *created))
                .map(|(created, _)| created)
                .unwrap_or_default();
            return Ok(BucketInfo {
                name: bucket.to_owned(),
                created_ns,
            });
        }
        Err(Error::BucketNotFound)
    }

    /// Reads an object's metadata from the drives, until their answers
    /// settle it, and resolves it.
    pub(crate) async fn read_resolved(
        &self,
        bucket: &str,
        key: &str,
        data: ReadData,
    ) -> Result<Resolved> {
        let wait = ReadWait::Settled {
            read_quorum: self.read_quorum(),
        };
        self.read_resolved_waiting(bucket, key, data, wait).await
    }

    /// [`ErasureSet::read_resolved`], waiting for the drives as `wait` says:
    /// a change of the version's metadata needs every drive's answer, to
    /// change it on each that holds it.
    pub(crate) async fn read_resolved_waiting(
        &self,
        bucket: &str,
        key: &str,
        data: ReadData,
        wait: ReadWait,
    ) -> Result<Resolved> {
        let reads = read_records(&self.disks, bucket, key, data, wait, self.call_deadline).await;
        match resolve(&self.disks, self.read_quorum(), data, reads)? {
            Some(resolved) => Ok(resolved),
            None => Err(Error::ObjectNotFound),
        }
    }
}
