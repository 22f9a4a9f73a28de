//! Namespace locks: readers and writers of one bucket or object serialized
//! within this process.
//!
//! Writers hold an object's write lock only while they commit metadata (the
//! data is written before, under fresh names), and readers hold its read
//! lock only while they resolve metadata and open shard files, so neither
//! blocks the other for the length of a transfer. Bucket locks order bucket
//! deletion against object commits. The distributed, quorum-held variant
//! with leases arrives with multi-node mode (DESIGN.md section 4).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use crate::error::{Error, Result};

const SHARDS: usize = 64;

type LockMap = Mutex<HashMap<String, Arc<RwLock<()>>>>;

pub(crate) struct NsLocks {
    shards: Arc<Vec<LockMap>>,
    timeout: Duration,
}

enum Held {
    Read(#[allow(dead_code)] OwnedRwLockReadGuard<()>),
    Write(#[allow(dead_code)] OwnedRwLockWriteGuard<()>),
}

/// A held lock; released on drop.
pub(crate) struct NsGuard {
    shards: Arc<Vec<LockMap>>,
    resource: String,
    held: Option<Held>,
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        self.held.take();
        let mut map = self.shards[shard_of(&self.resource)]
            .lock()
            .expect("lock map");
        if let Some(lock) = map.get(&self.resource)
            && Arc::strong_count(lock) == 1
        {
            map.remove(&self.resource);
        }
    }
}

fn shard_of(resource: &str) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    resource.hash(&mut hasher);
    (hasher.finish() % SHARDS as u64) as usize
}

/// The lock name of a bucket.
pub(crate) fn bucket_resource(bucket: &str) -> String {
    bucket.to_owned()
}

/// The lock name of an object: never equal to a bucket's, which has no `/`.
pub(crate) fn object_resource(bucket: &str, key: &str) -> String {
    format!("{bucket}/{key}")
}

/// The lock name of a multipart upload: `:` is in no bucket name.
pub(crate) fn upload_resource(upload_id: uuid::Uuid) -> String {
    format!("upload:{upload_id}")
}

/// The lock name of one part number of an upload.
pub(crate) fn part_resource(upload_id: uuid::Uuid, number: u32) -> String {
    format!("upload:{upload_id}:{number}")
}

impl NsLocks {
    pub(crate) fn new(timeout: Duration) -> NsLocks {
        NsLocks {
            shards: Arc::new((0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect()),
            timeout,
        }
    }

    fn entry(&self, resource: &str) -> Arc<RwLock<()>> {
        let mut map = self.shards[shard_of(resource)].lock().expect("lock map");
        map.entry(resource.to_owned())
            .or_insert_with(|| Arc::new(RwLock::new(())))
            .clone()
    }

    pub(crate) async fn read(&self, resource: String) -> Result<NsGuard> {
        let lock = self.entry(&resource);
        let held = tokio::time::timeout(self.timeout, lock.read_owned()).await;
        self.finish(resource, held.map(Held::Read))
    }

    pub(crate) async fn write(&self, resource: String) -> Result<NsGuard> {
        let lock = self.entry(&resource);
        let held = tokio::time::timeout(self.timeout, lock.write_owned()).await;
        self.finish(resource, held.map(Held::Write))
    }

    /// Wraps an acquired lock, or cleans up after a timeout. Called once the
    /// waiting future (and its clone of the lock) is gone, so that the map
    /// entry goes when nobody else holds or waits for it.
    fn finish(
        &self,
        resource: String,
        held: Result<Held, tokio::time::error::Elapsed>,
    ) -> Result<NsGuard> {
        let guard = NsGuard {
            shards: self.shards.clone(),
            resource,
            held: held.ok(),
        };
        if guard.held.is_some() {
            return Ok(guard);
        }
        let resource = guard.resource.clone();
        drop(guard);
        Err(Error::LockTimeout { resource })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writers_exclude_and_entries_are_cleaned_up() {
        let locks = NsLocks::new(Duration::from_millis(100));
        let first = locks.write("b/k".into()).await.unwrap();
        let err = locks.write("b/k".into()).await.err().unwrap();
        assert!(matches!(err, Error::LockTimeout { .. }));
        assert!(locks.read("b/k".into()).await.is_err());
        let other = locks.write("b/other".into()).await.unwrap();
        drop(first);
        let r1 = locks.read("b/k".into()).await.unwrap();
        let r2 = locks.read("b/k".into()).await.unwrap();
        drop((r1, r2, other));
        assert_eq!(locks.len(), 0);
    }
}
