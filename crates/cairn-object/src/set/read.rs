//! Reading one object's records from a set's drives and resolving them by
//! quorum into the version a GET, a HEAD or a heal acts on.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_disk::{Disk, DiskError, ObjectVersion, ReadData, ReadObject, VersionIdentity};
use futures::future::Either;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::quorum::{self, Verdict};
use crate::set::fanout::{describe_errors, not_waited_for, write_quorum};

/// How [`read_records`] waits for the drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadWait {
    /// For every drive (healing, which acts on what each one lacks).
    All,
    /// Until the answers settle the newest readable version ([`settled`]):
    /// a GET does not wait for a slow drive whose answer could not change it.
    Settled { read_quorum: usize },
}

/// Drives whose recent calls took far longer than the set's others: at
/// least 20 ms and four times the lower median of the latencies known.
/// Readers ask them last, or not at all when they need not.
pub(crate) fn slow_drives(disks: &[Arc<dyn Disk>]) -> Vec<bool> {
    let latencies: Vec<Option<Duration>> = disks.iter().map(|disk| disk.latency()).collect();
    let mut known: Vec<Duration> = latencies.iter().flatten().copied().collect();
    if known.len() < 2 {
        return vec![false; disks.len()];
    }
    known.sort_unstable();
    let median = known[(known.len() - 1) / 2];
    let threshold = (median * 4).max(Duration::from_millis(20));
    latencies
        .iter()
        .map(|latency| latency.is_some_and(|l| l > threshold))
        .collect()
}

/// Reads `bucket/key`'s record (and inline data, as `data` asks) from the
/// drives, in slot order; `None` for a drive not waited for. The drives
/// whose reads block (this machine's) are read one after another in a
/// single blocking task, which wakes the read once, when it is through:
/// for a small GET, a hand-off to the blocking pool per drive (its mutex, a
/// thread wake-up, two context switches), or a wake-up per answer, cost
/// more than the reads themselves. A drive lately slow is read on its own
/// instead, so that it delays no other. A batched drive still unanswered
/// after `deadline` (a drive call's) is stalled ([`Disk::stall`]) if the
/// batch has been at it that long, and read on its own if it is queued
/// behind one that is; every other read carries its drive's own deadline.
///
/// A read settles once no pending answer could change it ([`settled`]),
/// but not before a pending drive holding a data shard of the inline
/// version read has had a short grace (four times what the read took so
/// far, at least [`INLINE_GRACE_MIN`]): decoding from parity costs a small
/// GET more CPU than the wait (docs/benchmarks.md, "What issue 26 costs").
pub(crate) async fn read_records(
    disks: &[Arc<dyn Disk>],
    bucket: &str,
    key: &str,
    data: ReadData,
    wait: ReadWait,
    deadline: Duration,
) -> Vec<Option<Result<ReadObject, DiskError>>> {
    let slow = slow_drives(disks);
    let mut batched: Vec<bool> = disks
        .iter()
        .zip(&slow)
        .map(|(disk, slow)| disk.reads_block() && !slow)
        .collect();
    if batched.iter().filter(|b| **b).count() < 2 {
        batched = vec![false; disks.len()];
    }
    let started = tokio::time::Instant::now();
    let mut settled_at: Option<tokio::time::Instant> = None;
    let judge = |answers: &quorum::Answers<ReadObject, DiskError>| match wait {
        ReadWait::All => Verdict::Wait,
        ReadWait::Settled { read_quorum } if settled(answers, read_quorum) => {
            if !inline_data_pending(answers, data) {
                return Verdict::Done;
            }
            // A data shard still to come spares the read a decode (for a
            // small object, most of its CPU): worth a short grace.
            let at = *settled_at.get_or_insert_with(tokio::time::Instant::now);
            Verdict::DoneBy(at + ((at - started) * 4).max(INLINE_GRACE_MIN))
        }
        ReadWait::Settled { .. } => Verdict::Wait,
    };
    if !batched.contains(&true) {
        let calls = disks.iter().map(|disk| disk.read_object(bucket, key, data));
        let answers = quorum::gather(calls, None, judge).await;
        return answers.into_options();
    }
    // The batch: one blocking task reads its drives in turn and wakes the
    // read once, when it is through.
    let batch = Arc::new(Batch::new(disks.len()));
    let (done_tx, done_rx) = watch::channel(false);
    {
        let batch_disks: Vec<(usize, Arc<dyn Disk>)> = disks
            .iter()
            .enumerate()
            .filter(|(slot, _)| batched[*slot])
            .map(|(slot, disk)| (slot, disk.clone()))
            .collect();
        let (bucket, key, batch) = (bucket.to_owned(), key.to_owned(), batch.clone());
        tokio::task::spawn_blocking(move || {
            for (slot, disk) in batch_disks {
                if batch.start(slot) {
                    batch.finish(slot, disk.read_object_blocking(&bucket, &key, data));
                }
            }
            let _ = done_tx.send(true);
        });
    }
    let calls = disks.iter().enumerate().map(|(slot, disk)| {
        if batched[slot] {
            Either::Left(batch.answer(slot, disk, done_rx.clone(), bucket, key, data, deadline))
        } else {
            Either::Right(disk.read_object(bucket, key, data))
        }
    });
    quorum::gather(calls, None, judge).await.into_options()
}

/// The least a settled read waits for a drive that holds a data shard of
/// the inline version being read.
const INLINE_GRACE_MIN: Duration = Duration::from_millis(20);

/// Whether a drive not yet answered holds a data shard of the newest inline
/// version answered so far, the one a read of inline `data` would decode
/// without it.
fn inline_data_pending(answers: &quorum::Answers<ReadObject, DiskError>, data: ReadData) -> bool {
    if data == ReadData::None || answers.pending() == 0 {
        return false;
    }
    let set_size = answers.results().len();
    let newest = answers
        .results()
        .iter()
        .flatten()
        .flatten()
        .flat_map(|read| read.record.versions.iter())
        .filter(|version| {
            version.inline
                && match data {
                    ReadData::Version(data_id) => version.identity().data_id == data_id,
                    _ => true,
                }
        })
        .max_by_key(|version| version.identity());
    let Some(version) = newest else {
        return false;
    };
    let data_shards = usize::from(version.erasure.data_shards);
    answers.results().iter().enumerate().any(|(slot, answer)| {
        answer.is_none() && shard_index_of_slot(version, slot, set_size) < data_shards
    })
}

/// Where the batch of blocking reads stands, per slot.
struct Batch {
    /// 0: queued; 1: being read by the batch; 2: taken from the batch.
    states: Vec<AtomicU8>,
    /// When the batch began reading each slot.
    started: Vec<Mutex<Option<Instant>>>,
    /// The answers the batch has read, until taken.
    answers: Vec<Mutex<Option<Result<ReadObject, DiskError>>>>,
}

const QUEUED: u8 = 0;
const READING: u8 = 1;
const TAKEN: u8 = 2;

impl Batch {
    fn new(slots: usize) -> Batch {
        Batch {
            states: (0..slots).map(|_| AtomicU8::new(QUEUED)).collect(),
            started: (0..slots).map(|_| Mutex::new(None)).collect(),
            answers: (0..slots).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// The batch begins `slot`, unless it was taken from it.
    fn start(&self, slot: usize) -> bool {
        *lock(&self.started[slot]) = Some(Instant::now());
        self.states[slot]
            .compare_exchange(QUEUED, READING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The batch has read `slot`.
    fn finish(&self, slot: usize, answer: Result<ReadObject, DiskError>) {
        *lock(&self.answers[slot]) = Some(answer);
    }

    /// The answer of batched `slot`: from the batch once it is through, or,
    /// once `deadline` passed, what the batch read of it so far, a read of
    /// its own when the batch has not reached it, or a stall when the batch
    /// has been stuck on it that long.
    #[allow(clippy::too_many_arguments)] // the read's own arguments
    async fn answer(
        &self,
        slot: usize,
        disk: &Arc<dyn Disk>,
        mut done: watch::Receiver<bool>,
        bucket: &str,
        key: &str,
        data: ReadData,
        deadline: Duration,
    ) -> Result<ReadObject, DiskError> {
        let through = tokio::time::timeout(deadline, done.wait_for(|done| *done))
            .await
            .is_ok();
        loop {
            if let Some(answer) = lock(&self.answers[slot]).take() {
                return answer;
            }
            if through {
                // Through without an answer: the batch task failed.
                return Err(DiskError::Store("drive task failed".to_owned()));
            }
            if self.states[slot]
                .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // Queued behind a stuck drive.
                return disk.read_object(bucket, key, data).await;
            }
            let since = *lock(&self.started[slot]);
            if since.is_some_and(|at| at.elapsed() >= deadline) {
                let reason = format!(
                    "{} did not answer read-object within {deadline:?}",
                    disk.endpoint()
                );
                disk.stall(&reason);
                return Err(DiskError::Offline(reason));
            }
            // The batch began this drive lately: give it its own deadline.
            let waited = since.map_or(deadline, |at| deadline.saturating_sub(at.elapsed()));
            if tokio::time::timeout(waited, done.wait_for(|done| *done))
                .await
                .is_ok()
            {
                return lock(&self.answers[slot])
                    .take()
                    .unwrap_or_else(|| Err(DiskError::Store("drive task failed".to_owned())));
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether the answers so far settle what [`resolve`] would answer: no
/// answer of the drives still pending could change it. The newest readable
/// version stands once no newer one could become readable (a version no
/// answer shows yet could, while `read_quorum` drives are pending). With
/// none readable, "not found" and the read-quorum error stand once no
/// version could become readable, and whether one could be hiding (on
/// write quorum, counting every drive that did not answer) no longer turns
/// on the pending drives, nor does whether read quorum answered.
fn settled(answers: &quorum::Answers<ReadObject, DiskError>, read_quorum: usize) -> bool {
    let pending = answers.pending();
    if pending == 0 {
        return true;
    }
    if pending >= read_quorum {
        return false;
    }
    let (mut answered, mut failed) = (0, 0);
    let mut groups: HashMap<VersionIdentity, (usize, &ObjectVersion)> = HashMap::new();
    for answer in answers.results().iter().flatten() {
        match answer {
            Ok(read) => {
                answered += 1;
                for version in &read.record.versions {
                    groups.entry(version.identity()).or_insert((0, version)).0 += 1;
                }
            }
            Err(DiskError::NotFound) => answered += 1,
            // A bucket being created or deleted: rare; ask every drive.
            Err(DiskError::BucketNotFound) => return false,
            Err(_) => failed += 1,
        }
    }
    let data_shards = |version: &ObjectVersion| usize::from(version.erasure.data_shards).max(1);
    let best = groups
        .iter()
        .filter(|(_, (count, version))| *count >= data_shards(version))
        .map(|(identity, _)| *identity)
        .max();
    let newer_may_be_readable = groups.iter().any(|(identity, (count, version))| {
        best.is_none_or(|best| *identity > best) && count + pending >= data_shards(version)
    });
    if newer_may_be_readable {
        return false;
    }
    if best.is_some() {
        return true;
    }
    if answered < read_quorum {
        // Read quorum may yet answer, or cannot.
        return answered + pending < read_quorum;
    }
    let acknowledged = |version: &ObjectVersion| {
        let erasure = &version.erasure;
        write_quorum(
            usize::from(erasure.data_shards),
            usize::from(erasure.parity_shards),
        )
        .max(1)
    };
    let hidden_anyway = groups
        .values()
        .any(|(count, version)| count + failed >= acknowledged(version));
    let may_hide = groups
        .values()
        .any(|(count, version)| count + failed + pending >= acknowledged(version));
    hidden_anyway || !may_hide
}

/// The version of an object that a set's drives agree on.
pub(crate) struct Resolved {
    /// The version, as one holder stores it (its `shard_index` is that drive's).
    pub(crate) version: ObjectVersion,
    /// Per slot: the shard index the drive holds, if it holds this version.
    pub(crate) shard_of_slot: Vec<Option<usize>>,
    /// Per slot: inline shard data returned with the record, when it is this version's.
    pub(crate) inline: Vec<Option<Bytes>>,
    /// Per slot: whether the read went on without the drive's answer (its
    /// answer could not change the version).
    pub(crate) pending: Vec<bool>,
}

/// The shard a drive holds of `version` in a set of `set_size` drives, when
/// it holds one: where the version's rotation puts it.
pub(crate) fn shard_index_of_slot(version: &ObjectVersion, slot: usize, set_size: usize) -> usize {
    (slot + set_size - usize::from(version.erasure.rotation) % set_size) % set_size
}

impl Resolved {
    pub(crate) fn holders(&self) -> usize {
        self.shard_of_slot.iter().filter(|s| s.is_some()).count()
    }

    /// Drives the read went on without.
    pub(crate) fn pending(&self) -> usize {
        self.pending.iter().filter(|p| **p).count()
    }

    /// Per slot: the shard a reader may ask the drive for: the one it holds,
    /// or, for a drive not waited for, the one it would hold (whether it has
    /// it, its shard file or inline data tells), so that a read that loses
    /// drives midway has every drive that may hold a shard to turn to.
    pub(crate) fn shard_sources(&self) -> Vec<Option<usize>> {
        let n = self.shard_of_slot.len();
        (0..n)
            .map(
                |slot| match (self.shard_of_slot[slot], self.pending[slot]) {
                    (Some(shard), _) => Some(shard),
                    (None, true) => Some(shard_index_of_slot(&self.version, slot, n)),
                    (None, false) => None,
                },
            )
            .collect()
    }
}

/// Resolves what drives returned for one key into the newest version that
/// read quorum agrees on; `None` stands for a drive not waited for.
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
    reads: Vec<Option<Result<ReadObject, DiskError>>>,
) -> Result<Option<Resolved>> {
    let n = reads.len();
    let mut answered = 0;
    let mut bucket_missing = 0;
    let mut groups: HashMap<VersionIdentity, (usize, ObjectVersion)> = HashMap::new();
    for read in reads.iter().flatten() {
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
            let reads: Vec<Result<ReadObject, DiskError>> = reads
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(not_waited_for())))
                .collect();
            let mut errors = describe_errors(disks, &reads);
            if hidden {
                errors.push(format!(
                    "no version is on enough drives to read, and one may be on the {unanswered} that did not answer"
                ));
            }
            return Err(Error::ReadQuorum {
                ok: answered,
                needed: read_quorum,
                errors,
            });
        }
        return Ok(None);
    };
    let mut shard_of_slot = vec![None; n];
    let mut inline = vec![None; n];
    let mut pending = vec![false; n];
    for (slot, read) in reads.into_iter().enumerate() {
        let Some(read) = read else {
            pending[slot] = true;
            continue;
        };
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
        pending,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_disk::{ErasureMeta, LocalDisk, LocalDiskOptions, ObjectRecord};
    use proptest::prelude::{Just, prop, prop_assert_eq, prop_oneof, proptest};
    use proptest::strategy::Strategy as _;
    use uuid::Uuid;

    /// What one drive says, or not yet.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Said {
        /// Holds these of the two versions (bit 0: the older, bit 1: the newer).
        Holds(u8),
        NotFound,
        Failed,
        Pending,
    }

    fn version(data_shards: u8, parity_shards: u8, mod_time_ns: i64) -> ObjectVersion {
        ObjectVersion {
            version_id: Uuid::nil(),
            data_id: Uuid::from_u128(mod_time_ns as u128),
            mod_time_ns,
            delete_marker: false,
            size: 1,
            etag: String::new(),
            erasure: ErasureMeta {
                data_shards,
                parity_shards,
                block_size: 1 << 20,
                shard_index: 0,
                rotation: 0,
                bitrot: 1,
            },
            inline: true,
            parts: Vec::new(),
            meta: Default::default(),
        }
    }

    fn answer(said: Said, versions: &[ObjectVersion; 2]) -> Option<Result<ReadObject, DiskError>> {
        match said {
            Said::Holds(mask) => {
                let mut held: Vec<ObjectVersion> = (0..2)
                    .rev()
                    .filter(|bit| mask & (1 << bit) != 0)
                    .map(|bit| versions[bit].clone())
                    .collect();
                held.sort_by_key(|v| std::cmp::Reverse(v.identity()));
                Some(Ok(ReadObject {
                    record: ObjectRecord { versions: held },
                    inline: None,
                }))
            }
            Said::NotFound => Some(Err(DiskError::NotFound)),
            Said::Failed => Some(Err(DiskError::Offline("test".to_owned()))),
            Said::Pending => None,
        }
    }

    /// What a resolution comes to: the version's time, not found, or 503.
    fn outcome(result: Result<Option<Resolved>>) -> Result<Option<i64>, ()> {
        match result {
            Ok(found) => Ok(found.map(|r| r.version.mod_time_ns)),
            Err(Error::ReadQuorum { .. }) => Err(()),
            Err(other) => panic!("{other}"),
        }
    }

    fn said() -> impl proptest::strategy::Strategy<Value = Said> {
        prop_oneof![
            (1u8..4).prop_map(Said::Holds),
            Just(Said::NotFound),
            Just(Said::Failed),
            Just(Said::Pending),
        ]
    }

    proptest! {
        /// Stopping early never answers other than waiting for every
        /// pending drive would have, however they answer.
        #[test]
        fn a_settled_read_answers_as_every_completion_of_it_would(
            drives in prop::collection::vec(said(), 4..=6),
            parity in 1u8..=2,
        ) {
            let n = drives.len();
            let data = n as u8 - parity;
            let versions = [version(data, parity, 1), version(data, parity, 2)];
            let dir = std::env::temp_dir().join(format!("cairn-settle-{}", Uuid::new_v4().simple()));
            let disks: Vec<Arc<dyn Disk>> = (0..n)
                .map(|i| -> Arc<dyn Disk> {
                    Arc::new(LocalDisk::new(dir.join(i.to_string()), LocalDiskOptions::default(), false).unwrap())
                })
                .collect();
            let read_quorum = usize::from(data);
            let partial = || -> Vec<_> { drives.iter().map(|s| answer(*s, &versions)).collect() };
            let answers = quorum::Answers::from_options(partial());
            if settled(&answers, read_quorum) {
                let early = outcome(resolve(&disks, read_quorum, ReadData::None, partial()));
                let pending: Vec<usize> = (0..n).filter(|&i| drives[i] == Said::Pending).collect();
                let choices = [Said::Holds(1), Said::Holds(2), Said::Holds(3), Said::NotFound, Said::Failed];
                for pick in 0..choices.len().pow(pending.len() as u32) {
                    let mut completed = drives.clone();
                    let mut rest = pick;
                    for &slot in &pending {
                        completed[slot] = choices[rest % choices.len()];
                        rest /= choices.len();
                    }
                    let full: Vec<_> = completed.iter().map(|s| answer(*s, &versions)).collect();
                    let waited = outcome(resolve(&disks, read_quorum, ReadData::None, full));
                    prop_assert_eq!(early, waited, "completed as {:?}", completed);
                }
            }
        }
    }
}
