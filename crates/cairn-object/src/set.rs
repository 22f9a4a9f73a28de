//! One erasure set: its drives, its quorum rules, and how the metadata its
//! drives return is resolved into one answer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use cairn_disk::{Disk, DiskError, Format, ObjectVersion, ReadData, ReadObject, VersionIdentity};
use futures::future::join_all;

use crate::error::{Error, Result};
use crate::types::{BucketInfo, SetHealth};

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
}

impl ErasureSet {
    /// Where the locks of this set's objects are taken.
    pub(crate) fn lock_set(&self) -> crate::nslock::LockSet {
        crate::nslock::LockSet {
            pool: self.pool_idx,
            set: self.set_idx,
        }
    }

    /// Takes the locks for changing `bucket/key` (an object of this set).
    pub(crate) async fn lock_object_write(
        &self,
        shared: &crate::layer::Shared,
        bucket: &str,
        key: &str,
    ) -> Result<crate::nslock::ObjectWriteGuard> {
        shared
            .locks
            .object_write(shared.bucket_lock_set(bucket), self.lock_set(), bucket, key)
            .await
    }
}

/// Write quorum for a layout: data shards, plus one when data equals parity,
/// so that two partitions can never both accept writes (DESIGN.md section 4).
pub(crate) fn write_quorum(data_shards: usize, parity_shards: usize) -> usize {
    data_shards + usize::from(data_shards == parity_shards)
}

/// The error of a write that reached `ok` drives where `needed` were
/// required: [`Error::StorageFull`] when the drives that are full alone
/// kept it from write quorum, else [`Error::WriteQuorum`].
pub(crate) fn write_failed<T>(
    disks: &[Arc<dyn Disk>],
    results: &[Result<T, DiskError>],
    ok: usize,
    needed: usize,
) -> Error {
    let full = results
        .iter()
        .filter(|r| matches!(r, Err(DiskError::Full(_))))
        .count();
    let errors = describe_errors(disks, results);
    if full > 0 && results.len() - full < needed {
        Error::StorageFull {
            full,
            needed,
            errors,
        }
    } else {
        Error::WriteQuorum { ok, needed, errors }
    }
}

/// Runs `op` on every drive at once; results come back in slot order.
pub(crate) async fn fan_out<'a, T, F, Fut>(
    disks: &'a [Arc<dyn Disk>],
    op: F,
) -> Vec<Result<T, DiskError>>
where
    F: Fn(usize, &'a Arc<dyn Disk>) -> Fut,
    Fut: Future<Output = Result<T, DiskError>>,
{
    join_all(disks.iter().enumerate().map(|(idx, disk)| op(idx, disk))).await
}

/// Reads `bucket/key`'s record (and inline data, as `data` asks) from every
/// drive, in slot order, like a [`fan_out`] of `read_object`, except that the
/// drives whose reads block (this machine's) are read one after another in a
/// single blocking task: for a small GET, a hand-off to the blocking pool per
/// drive (its mutex, a thread wake-up, two context switches) cost more than
/// the reads themselves.
pub(crate) async fn read_records(
    disks: &[Arc<dyn Disk>],
    bucket: &str,
    key: &str,
    data: ReadData,
) -> Vec<Result<ReadObject, DiskError>> {
    let local: Vec<bool> = disks.iter().map(|disk| disk.reads_block()).collect();
    let local_count = local.iter().filter(|&&is_local| is_local).count();
    if local_count < 2 {
        return fan_out(disks, |_, disk| disk.read_object(bucket, key, data)).await;
    }
    let batch = {
        let batch_disks: Vec<Arc<dyn Disk>> = disks
            .iter()
            .zip(&local)
            .filter(|(_, is_local)| **is_local)
            .map(|(disk, _)| disk.clone())
            .collect();
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        tokio::task::spawn_blocking(move || {
            batch_disks
                .iter()
                .map(|disk| disk.read_object_blocking(&bucket, &key, data))
                .collect::<Vec<_>>()
        })
    };
    let remote = join_all(
        disks
            .iter()
            .zip(&local)
            .filter(|(_, is_local)| !**is_local)
            .map(|(disk, _)| disk.read_object(bucket, key, data)),
    );
    let (batch, remote) = futures::future::join(batch, remote).await;
    let mut batch = batch
        .unwrap_or_else(|err| {
            (0..local_count)
                .map(|_| Err(DiskError::Store(format!("drive task failed: {err}"))))
                .collect()
        })
        .into_iter();
    let mut remote = remote.into_iter();
    local
        .iter()
        .map(|&is_local| {
            let next = if is_local {
                batch.next()
            } else {
                remote.next()
            };
            next.expect("one read per drive")
        })
        .collect()
}

/// Describes the per-drive failures of a fan-out, for error messages and logs.
pub(crate) fn describe_errors<T>(
    disks: &[Arc<dyn Disk>],
    results: &[Result<T, DiskError>],
) -> Vec<String> {
    results
        .iter()
        .zip(disks)
        .filter_map(|(res, disk)| {
            res.as_ref()
                .err()
                .map(|err| format!("{}: {err}", disk.endpoint()))
        })
        .collect()
}

/// The version of an object that a set's drives agree on.
pub(crate) struct Resolved {
    /// The version, as one holder stores it (its `shard_index` is that drive's).
    pub(crate) version: ObjectVersion,
    /// Per slot: the shard index the drive holds, if it holds this version.
    pub(crate) shard_of_slot: Vec<Option<usize>>,
    /// Per slot: inline shard data returned with the record, when it is this version's.
    pub(crate) inline: Vec<Option<Bytes>>,
}

impl Resolved {
    pub(crate) fn holders(&self) -> usize {
        self.shard_of_slot.iter().filter(|s| s.is_some()).count()
    }
}

impl ErasureSet {
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
        let results = fan_out(&self.disks, |_, disk| disk.get_bucket(bucket)).await;
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
        if present + missing < self.read_quorum() {
            return Err(Error::ReadQuorum {
                ok: present + missing,
                needed: self.read_quorum(),
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

    /// Reads an object's metadata from every drive and resolves it.
    pub(crate) async fn read_resolved(
        &self,
        bucket: &str,
        key: &str,
        data: ReadData,
    ) -> Result<Resolved> {
        let reads = read_records(&self.disks, bucket, key, data).await;
        match resolve(&self.disks, self.read_quorum(), data, reads)? {
            Some(resolved) => Ok(resolved),
            None => Err(Error::ObjectNotFound),
        }
    }
}

/// Resolves what drives returned for one key into the newest version that
/// read quorum agrees on.
///
/// A version is readable when at least its `data_shards` drives hold it. If
/// none is, the answer is "not found" only when no acknowledged version can
/// be hiding on the drives that did not answer; otherwise it is a
/// read-quorum error (503), never a false "not found". An acknowledged
/// version reached write quorum, so one that could not be on write quorum
/// even with every unanswered drive holding it is a write that failed, or
/// what a later acknowledged DELETE left on drives that were away.
pub(crate) fn resolve(
    disks: &[Arc<dyn Disk>],
    read_quorum: usize,
    data: ReadData,
    reads: Vec<Result<ReadObject, DiskError>>,
) -> Result<Option<Resolved>> {
    let n = reads.len();
    let mut answered = 0;
    let mut bucket_missing = 0;
    let mut groups: HashMap<VersionIdentity, (usize, ObjectVersion)> = HashMap::new();
    for read in &reads {
        match read {
            Ok(read) => {
                answered += 1;
                for version in &read.record.versions {
                    groups
                        .entry(version.identity())
                        .or_insert_with(|| (0, version.clone()))
                        .0 += 1;
                }
            }
            Err(DiskError::NotFound) => answered += 1,
            Err(DiskError::BucketNotFound) => bucket_missing += 1,
            Err(_) => {}
        }
    }
    if bucket_missing >= read_quorum && bucket_missing > answered {
        return Err(Error::BucketNotFound);
    }
    let unanswered = n - answered - bucket_missing;
    let best = groups
        .iter()
        .filter(|(_, (count, version))| *count >= usize::from(version.erasure.data_shards).max(1))
        .max_by_key(|(identity, _)| **identity)
        .map(|(identity, (_, version))| (*identity, version.clone()));
    let Some((identity, version)) = best else {
        let hidden = groups.values().any(|(count, version)| {
            let erasure = &version.erasure;
            let acknowledged = write_quorum(
                usize::from(erasure.data_shards),
                usize::from(erasure.parity_shards),
            );
            count + unanswered >= acknowledged.max(1)
        });
        if answered + bucket_missing < read_quorum || hidden {
            return Err(Error::ReadQuorum {
                ok: answered,
                needed: read_quorum,
                errors: describe_errors(disks, &reads),
            });
        }
        return Ok(None);
    };
    let mut shard_of_slot = vec![None; n];
    let mut inline = vec![None; n];
    for (slot, read) in reads.into_iter().enumerate() {
        let Ok(read) = read else { continue };
        let Some(held) = read
            .record
            .versions
            .iter()
            .find(|v| v.identity() == identity)
        else {
            continue;
        };
        shard_of_slot[slot] = Some(usize::from(held.erasure.shard_index));
        let data_is_this_version = match data {
            ReadData::None => false,
            ReadData::Latest => read
                .record
                .versions
                .first()
                .is_some_and(|v| v.identity() == identity),
            ReadData::Version(data_id) => data_id == identity.data_id,
        };
        if held.inline && data_is_this_version {
            inline[slot] = read.inline;
        }
    }
    Ok(Some(Resolved {
        version,
        shard_of_slot,
        inline,
    }))
}
