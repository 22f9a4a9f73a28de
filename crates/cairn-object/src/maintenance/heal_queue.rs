//! The heal queue (issue 5, item 2): objects a GET had to reconstruct, or a
//! write committed with drives failing, wait here for the healer.
//!
//! The queue is persisted as a journal (`A bucket key` when queued, `D bucket
//! key` when done, names hex-encoded) in a directory on one of this node's
//! drives, replayed and compacted at start-up, so queued objects survive a
//! restart. Appends are flushed to disk at most every half second; an entry
//! lost to a crash in that window is found again by the scanner. When the
//! queue is full, new entries are not queued but counted and logged: the
//! scanner finds those objects on its next pass, nothing is dropped
//! silently.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::util::{hex, unhex_text};

const JOURNAL: &str = "heal-queue.journal";
/// How often a queued object whose drives are away is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(3);
/// Attempts before an object that keeps failing is left to the scanner
/// (with the backoff capped at 30 s, about half a day).
pub(crate) const MAX_ATTEMPTS: u32 = 1440;

/// Failed objects kept per job, and by the heal queue, with their reasons.
pub const MAX_FAILURES: usize = 100;

/// An object a job or the healer could not check or heal, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub bucket: String,
    pub key: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) bucket: String,
    pub(crate) key: String,
    not_before: Option<Instant>,
    pub(crate) attempts: u32,
}

#[derive(Default)]
struct State {
    pending: VecDeque<Entry>,
    queued: HashSet<(String, String)>,
}

/// Counters of the queue, for status and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealQueueStats {
    pub pending: usize,
    pub healed: u64,
    pub healthy: u64,
    pub failed: u64,
    /// Entries not queued because the queue was full (left to the scanner).
    pub overflowed: u64,
    /// Objects whose last heal attempt failed (the most recent ones, at
    /// most [`MAX_FAILURES`]), with the reason; an object leaves the
    /// list once healed.
    pub failures: Vec<Failure>,
}

pub struct HealQueue {
    state: Mutex<State>,
    journal: Mutex<Option<(PathBuf, File, bool)>>,
    pub(crate) notify: Notify,
    capacity: usize,
    pub(crate) healed: AtomicU64,
    pub(crate) healthy: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) overflowed: AtomicU64,
    last_overflow_log: Mutex<Option<Instant>>,
    /// Last error per failing object, oldest first.
    failures: Mutex<VecDeque<Failure>>,
}

impl HealQueue {
    /// A queue holding at most `capacity` objects, journaled under `dir`
    /// when given (replaying what an earlier run left there).
    pub fn open(dir: Option<&Path>, capacity: usize) -> HealQueue {
        let queue = HealQueue {
            state: Mutex::new(State::default()),
            journal: Mutex::new(None),
            notify: Notify::new(),
            capacity,
            healed: AtomicU64::new(0),
            healthy: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            overflowed: AtomicU64::new(0),
            last_overflow_log: Mutex::new(None),
            failures: Mutex::new(VecDeque::new()),
        };
        if let Some(dir) = dir {
            match queue.replay(dir) {
                Ok(count) if count > 0 => {
                    tracing::info!(
                        objects = count,
                        "heal queue: resuming objects queued before the restart"
                    )
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(dir = %dir.display(), %err, "heal queue: cannot use its journal; queued objects will not survive a restart")
                }
            }
        }
        queue
    }

    fn replay(&self, dir: &Path) -> std::io::Result<usize> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(JOURNAL);
        let mut order: Vec<(String, String)> = Vec::new();
        let mut live: HashSet<(String, String)> = HashSet::new();
        if let Ok(file) = File::open(&path) {
            for line in BufReader::new(file).lines() {
                let line = line?;
                let mut fields = line.split(' ');
                let (Some(op), Some(b), Some(k)) = (fields.next(), fields.next(), fields.next())
                else {
                    continue; // A torn last line.
                };
                let (Some(bucket), Some(key)) = (unhex_text(b), unhex_text(k)) else {
                    continue;
                };
                match op {
                    "A" if live.insert((bucket.clone(), key.clone())) => order.push((bucket, key)),
                    "D" => {
                        live.remove(&(bucket, key));
                    }
                    _ => {}
                }
            }
        }
        order.retain(|entry| live.contains(entry));
        order.truncate(self.capacity);
        // Compact: rewrite the pending entries, then swap the file in.
        let staging = dir.join(format!("{JOURNAL}.new"));
        {
            let mut out = File::create(&staging)?;
            for (bucket, key) in &order {
                writeln!(out, "A {} {}", hex(bucket.as_bytes()), hex(key.as_bytes()))?;
            }
            out.sync_all()?;
        }
        std::fs::rename(&staging, &path)?;
        File::open(dir)?.sync_all()?;
        let file = OpenOptions::new().append(true).open(&path)?;
        let count = order.len();
        let mut state = self.state.lock().expect("heal queue");
        for (bucket, key) in order {
            state.queued.insert((bucket.clone(), key.clone()));
            state.pending.push_back(Entry {
                bucket,
                key,
                not_before: None,
                attempts: 0,
            });
        }
        drop(state);
        *self.journal.lock().expect("heal journal") = Some((path, file, false));
        Ok(count)
    }

    fn append(&self, op: char, bucket: &str, key: &str) {
        let mut journal = self.journal.lock().expect("heal journal");
        if let Some((path, file, dirty)) = journal.as_mut() {
            if let Err(err) = writeln!(
                file,
                "{op} {} {}",
                hex(bucket.as_bytes()),
                hex(key.as_bytes())
            ) {
                tracing::warn!(path = %path.display(), %err, "heal queue: journal write failed");
            }
            *dirty = true;
        }
    }

    /// Makes the journal's appends durable.
    pub fn flush(&self) {
        let mut journal = self.journal.lock().expect("heal journal");
        if let Some((path, file, dirty)) = journal.as_mut()
            && *dirty
        {
            if let Err(err) = file.sync_data() {
                tracing::warn!(path = %path.display(), %err, "heal queue: journal sync failed");
            }
            *dirty = false;
        }
    }

    /// Queues `bucket/key` for healing, unless it is queued already.
    pub fn push(&self, bucket: &str, key: &str) {
        let mut state = self.state.lock().expect("heal queue");
        let id = (bucket.to_owned(), key.to_owned());
        if state.queued.contains(&id) {
            return;
        }
        if state.pending.len() >= self.capacity {
            drop(state);
            let count = self.overflowed.fetch_add(1, Ordering::Relaxed) + 1;
            let mut last = self.last_overflow_log.lock().expect("overflow log");
            if last.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                *last = Some(Instant::now());
                tracing::warn!(
                    capacity = self.capacity,
                    overflowed = count,
                    "heal queue full: objects beyond it are left to the scanner's next pass"
                );
            }
            return;
        }
        state.queued.insert(id);
        state.pending.push_back(Entry {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            not_before: None,
            attempts: 0,
        });
        drop(state);
        self.append('A', bucket, key);
        self.notify.notify_one();
    }

    /// The next entry that is due, if any.
    pub(crate) fn pop(&self) -> Option<Entry> {
        let mut state = self.state.lock().expect("heal queue");
        let now = Instant::now();
        let idx = state
            .pending
            .iter()
            .position(|e| e.not_before.is_none_or(|t| t <= now))?;
        state.pending.remove(idx)
    }

    pub(crate) fn done(&self, entry: &Entry) {
        self.state
            .lock()
            .expect("heal queue")
            .queued
            .remove(&(entry.bucket.clone(), entry.key.clone()));
        self.append('D', &entry.bucket, &entry.key);
    }

    pub(crate) fn retry(&self, mut entry: Entry) {
        entry.attempts += 1;
        // 3 s, 6 s, 12 s, ... up to 30 s: a drive away for long costs
        // little, one back soon is healed soon.
        let backoff = RETRY_AFTER
            .saturating_mul(1 << (entry.attempts - 1).min(4))
            .min(Duration::from_secs(30));
        entry.not_before = Some(Instant::now() + backoff);
        self.state
            .lock()
            .expect("heal queue")
            .pending
            .push_back(entry);
    }

    pub fn stats(&self) -> HealQueueStats {
        HealQueueStats {
            pending: self.state.lock().expect("heal queue").pending.len(),
            healed: self.healed.load(Ordering::Relaxed),
            healthy: self.healthy.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            overflowed: self.overflowed.load(Ordering::Relaxed),
            failures: self
                .failures
                .lock()
                .expect("heal queue")
                .iter()
                .cloned()
                .collect(),
        }
    }

    /// Records why `entry` failed (`None`: it no longer fails).
    pub(crate) fn note_failure(&self, entry: &Entry, reason: Option<String>) {
        let mut failures = self.failures.lock().expect("heal queue");
        failures.retain(|f| f.bucket != entry.bucket || f.key != entry.key);
        if let Some(reason) = reason {
            if failures.len() >= MAX_FAILURES {
                failures.pop_front();
            }
            failures.push_back(Failure {
                bucket: entry.bucket.clone(),
                key: entry.key.clone(),
                reason,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_survives_a_restart_and_compacts() {
        let dir =
            std::env::temp_dir().join(format!("cairn-healq-{}", uuid::Uuid::new_v4().simple()));
        {
            let queue = HealQueue::open(Some(&dir), 10);
            queue.push("b", "k1");
            queue.push("b", "k 2\nwith newline");
            queue.push("b", "k1");
            queue.push("b", "k3");
            let first = queue.pop().unwrap();
            queue.done(&first);
            queue.flush();
        }
        let queue = HealQueue::open(Some(&dir), 10);
        let mut keys: Vec<String> = std::iter::from_fn(|| queue.pop()).map(|e| e.key).collect();
        keys.sort();
        assert_eq!(keys, ["k 2\nwith newline", "k3"]);
        let journal = std::fs::read_to_string(dir.join(JOURNAL)).unwrap();
        assert_eq!(
            journal.lines().count(),
            2,
            "compacted at start-up: {journal}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_queue_counts_what_it_leaves_to_the_scanner() {
        let queue = HealQueue::open(None, 2);
        for k in ["a", "b", "c", "d"] {
            queue.push("b", k);
        }
        let stats = queue.stats();
        assert_eq!((stats.pending, stats.overflowed), (2, 2));
    }
}
