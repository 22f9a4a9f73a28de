//! Namespace locks: readers and writers of one bucket or object serialized
//! within this process and, in a cluster, across nodes.
//!
//! Writers hold an object's write lock only while they commit metadata (the
//! data is written before, under fresh names), and readers hold its read
//! lock only while they resolve metadata and open shard files, so neither
//! blocks the other for the length of a transfer. Bucket locks order bucket
//! deletion against object commits.
//!
//! In a cluster a lock is taken in this process first (so local contenders
//! queue fairly), then on a quorum of the set's nodes through a [`Locker`]
//! (docs/design.md section 4), whose lease is refreshed in the background; a
//! holder that loses its lease sees [`NsGuard::check`] fail and abandons
//! its commit.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use crate::error::{Error, Result};

const SHARDS: usize = 64;

type LockMap = Mutex<HashMap<String, Arc<RwLock<()>>>>;

pub(crate) struct NsLocks {
    shards: Arc<Vec<LockMap>>,
    timeout: Duration,
    cluster: Option<Arc<dyn Locker>>,
}

enum Held {
    Read(#[allow(dead_code)] OwnedRwLockReadGuard<()>),
    Write(#[allow(dead_code)] OwnedRwLockWriteGuard<()>),
}

/// A lock held on a quorum of a set's nodes; released on drop.
pub trait HeldLock: Send + Sync {
    /// True once the lease could not be refreshed on a quorum of nodes:
    /// another writer may hold the lock now.
    fn is_lost(&self) -> bool;
}

/// Takes namespace locks on a quorum of the nodes of one erasure set.
pub trait Locker: Send + Sync + 'static {
    /// Locks `resource` on the nodes of set `set` of pool `pool`, for
    /// writing or reading, giving up after `timeout`.
    fn lock<'a>(
        &'a self,
        pool: usize,
        set: usize,
        resource: &'a str,
        write: bool,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Box<dyn HeldLock>>>;
}

/// Where a lock is taken: the erasure set whose nodes hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LockSet {
    pub(crate) pool: usize,
    pub(crate) set: usize,
}

/// A held lock; released on drop.
pub(crate) struct NsGuard {
    shards: Arc<Vec<LockMap>>,
    resource: String,
    held: Option<Held>,
    remote: Option<Box<dyn HeldLock>>,
}

impl NsGuard {
    /// Fails when the lock's lease was lost: the caller must not commit.
    pub(crate) fn check(&self) -> Result<()> {
        match &self.remote {
            Some(remote) if remote.is_lost() => Err(Error::LockLost {
                resource: self.resource.clone(),
            }),
            _ => Ok(()),
        }
    }
}

/// The locks a change to one object holds: the bucket's read lock (so the
/// bucket is not deleted meanwhile), then the object's write lock. The
/// object's lock is released first.
pub(crate) struct ObjectWriteGuard {
    object: NsGuard,
    bucket: NsGuard,
}

impl ObjectWriteGuard {
    /// Fails when either lease was lost: the caller must not commit.
    pub(crate) fn check(&self) -> Result<()> {
        self.object.check()?;
        self.bucket.check()
    }
}

impl NsLocks {
    /// Takes the locks for changing `bucket/key`, which lives in the set
    /// whose locks are taken at `at`.
    pub(crate) async fn object_write(
        &self,
        bucket_at: LockSet,
        at: LockSet,
        bucket: &str,
        key: &str,
    ) -> Result<ObjectWriteGuard> {
        let bucket_guard = self.read(bucket_at, bucket_resource(bucket)).await?;
        let object = self.write(at, object_resource(bucket, key)).await?;
        Ok(ObjectWriteGuard {
            object,
            bucket: bucket_guard,
        })
    }
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        // The cluster lock goes first, then the local one that queued it.
        self.remote.take();
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

/// The lock name of a bucket's configuration: `#` is in no bucket name.
pub(crate) fn bucket_config_resource(bucket: &str) -> String {
    format!("{bucket}#config")
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
    pub(crate) fn new(timeout: Duration, cluster: Option<Arc<dyn Locker>>) -> NsLocks {
        NsLocks {
            shards: Arc::new((0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect()),
            timeout,
            cluster,
        }
    }

    fn entry(&self, resource: &str) -> Arc<RwLock<()>> {
        let mut map = self.shards[shard_of(resource)].lock().expect("lock map");
        map.entry(resource.to_owned())
            .or_insert_with(|| Arc::new(RwLock::new(())))
            .clone()
    }

    pub(crate) async fn read(&self, at: LockSet, resource: String) -> Result<NsGuard> {
        let started = std::time::Instant::now();
        let lock = self.entry(&resource);
        let held = tokio::time::timeout(self.timeout, lock.read_owned()).await;
        let guard = self.finish(resource, held.map(Held::Read))?;
        self.cluster_lock(at, guard, false, started).await
    }

    pub(crate) async fn write(&self, at: LockSet, resource: String) -> Result<NsGuard> {
        let started = std::time::Instant::now();
        let lock = self.entry(&resource);
        let held = tokio::time::timeout(self.timeout, lock.write_owned()).await;
        let guard = self.finish(resource, held.map(Held::Write))?;
        self.cluster_lock(at, guard, true, started).await
    }

    /// Adds the cluster-wide lock to a lock held in this process, within
    /// what is left of the timeout.
    async fn cluster_lock(
        &self,
        at: LockSet,
        mut guard: NsGuard,
        write: bool,
        started: std::time::Instant,
    ) -> Result<NsGuard> {
        let Some(cluster) = &self.cluster else {
            return Ok(guard);
        };
        let left = self.timeout.saturating_sub(started.elapsed());
        let remote = cluster
            .lock(at.pool, at.set, &guard.resource, write, left)
            .await?;
        guard.remote = Some(remote);
        Ok(guard)
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
            remote: None,
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
        let locks = NsLocks::new(Duration::from_millis(100), None);
        let at = LockSet { pool: 0, set: 0 };
        let first = locks.write(at, "b/k".into()).await.unwrap();
        let err = locks.write(at, "b/k".into()).await.err().unwrap();
        assert!(matches!(err, Error::LockTimeout { .. }));
        assert!(locks.read(at, "b/k".into()).await.is_err());
        let other = locks.write(at, "b/other".into()).await.unwrap();
        drop(first);
        let r1 = locks.read(at, "b/k".into()).await.unwrap();
        let r2 = locks.read(at, "b/k".into()).await.unwrap();
        drop((r1, r2, other));
        assert_eq!(locks.len(), 0);
    }
}
