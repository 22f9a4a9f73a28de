//! The lock table every node keeps for the cluster's namespace locks.
//!
//! A grant is a lease: it expires unless its holder refreshes it, so the
//! locks of a crashed holder free themselves. The table knows nothing of
//! quorum; `DistLocker` takes a lock on a quorum of the set's nodes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

#[derive(Default)]
struct Entry {
    writer: Option<(Uuid, Instant)>,
    readers: Vec<(Uuid, Instant)>,
}

impl Entry {
    fn expire(&mut self, now: Instant) {
        if self.writer.is_some_and(|(_, until)| until <= now) {
            self.writer = None;
        }
        self.readers.retain(|(_, until)| *until > now);
    }

    fn is_empty(&self) -> bool {
        self.writer.is_none() && self.readers.is_empty()
    }
}

#[derive(Default)]
pub struct LockTable {
    entries: Mutex<HashMap<String, Entry>>,
}

impl LockTable {
    pub fn new() -> LockTable {
        LockTable::default()
    }

    /// Grants `resource` to `uid` for `ttl` if nothing conflicts. Granting
    /// the same uid again extends its lease.
    pub fn acquire(&self, resource: &str, uid: Uuid, write: bool, ttl: Duration) -> bool {
        let now = Instant::now();
        let until = now + ttl;
        let mut entries = self.entries.lock().expect("lock table");
        let entry = entries.entry(resource.to_owned()).or_default();
        entry.expire(now);
        if let Some((holder, lease)) = &mut entry.writer {
            if *holder == uid {
                *lease = until;
                return true;
            }
            return false;
        }
        if write {
            if entry.readers.is_empty() {
                entry.writer = Some((uid, until));
                return true;
            }
            return false;
        }
        match entry.readers.iter_mut().find(|(id, _)| *id == uid) {
            Some((_, lease)) => *lease = until,
            None => entry.readers.push((uid, until)),
        }
        true
    }

    /// Extends `uid`'s lease; false if it no longer holds the lock.
    pub fn refresh(&self, resource: &str, uid: Uuid, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("lock table");
        let Some(entry) = entries.get_mut(resource) else {
            return false;
        };
        entry.expire(now);
        if let Some((holder, lease)) = &mut entry.writer
            && *holder == uid
        {
            *lease = now + ttl;
            return true;
        }
        if let Some((_, lease)) = entry.readers.iter_mut().find(|(id, _)| *id == uid) {
            *lease = now + ttl;
            return true;
        }
        if entry.is_empty() {
            entries.remove(resource);
        }
        false
    }

    pub fn release(&self, resource: &str, uid: Uuid) {
        let mut entries = self.entries.lock().expect("lock table");
        if let Some(entry) = entries.get_mut(resource) {
            if entry.writer.is_some_and(|(holder, _)| holder == uid) {
                entry.writer = None;
            }
            entry.readers.retain(|(id, _)| *id != uid);
            entry.expire(Instant::now());
            if entry.is_empty() {
                entries.remove(resource);
            }
        }
    }

    /// Drops expired grants; returns how many resources are still locked.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("lock table");
        entries.retain(|_, entry| {
            entry.expire(now);
            !entry.is_empty()
        });
        entries.len()
    }
}

#[cfg(test)]
impl LockTable {
    /// Forgets every grant, as a restarted node does.
    pub(crate) fn forget_all(&self) {
        self.entries.lock().unwrap().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(30);

    #[test]
    fn writers_exclude_everyone_readers_share() {
        let table = LockTable::new();
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        assert!(table.acquire("k", a, true, TTL));
        assert!(
            table.acquire("k", a, true, TTL),
            "re-granting the holder extends it"
        );
        assert!(!table.acquire("k", b, true, TTL));
        assert!(!table.acquire("k", b, false, TTL));
        assert!(table.acquire("other", b, true, TTL));
        table.release("k", a);
        assert!(table.acquire("k", b, false, TTL));
        assert!(table.acquire("k", c, false, TTL));
        assert!(!table.acquire("k", a, true, TTL));
        table.release("k", b);
        table.release("k", c);
        table.release("other", b);
        assert_eq!(table.sweep(), 0);
    }

    #[test]
    fn a_crashed_holders_lease_expires() {
        let table = LockTable::new();
        let (dead, next) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(table.acquire("k", dead, true, Duration::from_millis(50)));
        assert!(!table.acquire("k", next, true, TTL));
        std::thread::sleep(Duration::from_millis(80));
        assert!(
            !table.refresh("k", dead, TTL),
            "an expired lease cannot be refreshed"
        );
        assert!(table.acquire("k", next, true, TTL));
        assert!(table.refresh("k", next, TTL));
    }
}
