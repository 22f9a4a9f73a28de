//! The bucket-configuration service (DESIGN.md section 6): every kind of a
//! bucket's configuration (CORS rules today; policies, versioning,
//! object lock, lifecycle, encryption defaults, tagging and quotas next)
//! goes through here.
//!
//! * **Stored** as one system object per bucket, `buckets/<bucket>/config`
//!   (a format byte, then MessagePack: a generation and the documents by
//!   kind, each in the protocol layer's own encoding), so it is erasure
//!   coded, quorum-written and healed like data. A bucket written by the
//!   previous release keeps its CORS rules in `buckets/<bucket>/cors.json`;
//!   that is read when the record is absent, and kept written beside it so
//!   that a node of the previous release still sees them during a rolling
//!   upgrade.
//! * **Cached** on every node with the bucket's existence, as one
//!   [`BucketState`]: a request reads its bucket's state (and a PUT its
//!   per-write state) without a drive round trip once the node has it.
//! * **Invalidated** on every node when it changes through any node: the
//!   changing node tells its peers ([`ConfigNotifier`]) before it answers,
//!   and they drop their copy. A node that may have missed a notice drops
//!   every copy: when a peer connects to it anew (the peer's notices may
//!   have failed while they were apart), and a copy older than
//!   [`MAX_AGE`] is read again, which covers a notice lost otherwise. A
//!   node that restarts starts empty.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layer::ObjectLayer;
use crate::nslock::bucket_config_resource;

/// The kinds of bucket configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigKind {
    Cors,
    Policy,
    Versioning,
    ObjectLock,
    Lifecycle,
    Encryption,
    Tagging,
    Quota,
}

impl ConfigKind {
    /// The kind's name in the stored record.
    pub fn name(self) -> &'static str {
        match self {
            ConfigKind::Cors => "cors",
            ConfigKind::Policy => "policy",
            ConfigKind::Versioning => "versioning",
            ConfigKind::ObjectLock => "object-lock",
            ConfigKind::Lifecycle => "lifecycle",
            ConfigKind::Encryption => "encryption",
            ConfigKind::Tagging => "tagging",
            ConfigKind::Quota => "quota",
        }
    }

    /// Where the previous release kept the kind, if it had it.
    fn legacy_key(self, bucket: &str) -> Option<String> {
        match self {
            ConfigKind::Cors => Some(format!("buckets/{bucket}/cors.json")),
            _ => None,
        }
    }
}

/// How long a node keeps a bucket's state before reading it again, in case
/// a notice was lost without the connection it came on failing.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// How long a change waits for its notices to reach the other nodes before
/// it answers anyway (a node that did not get one catches up: module docs).
pub const NOTICE_WAIT: Duration = Duration::from_secs(1);

/// The stored record's format.
const FORMAT: u8 = 1;

/// A bucket's configuration documents, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketConfig {
    /// Documents by kind name. Names this release does not know (written by
    /// a later one) are kept as they are.
    documents: BTreeMap<String, Bytes>,
    /// Changes with every write: Unix nanoseconds of the last change.
    pub generation: i64,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    generation: i64,
    documents: BTreeMap<String, Bytes>,
}

impl BucketConfig {
    /// The document of `kind`, if the bucket has one.
    pub fn get(&self, kind: ConfigKind) -> Option<&Bytes> {
        self.documents.get(kind.name())
    }

    fn encode(&self) -> Bytes {
        let stored = Stored {
            generation: self.generation,
            documents: self.documents.clone(),
        };
        let mut out = vec![FORMAT];
        out.extend(rmp_serde::to_vec_named(&stored).expect("configs encode"));
        Bytes::from(out)
    }

    fn decode(bytes: &[u8]) -> Result<BucketConfig> {
        match bytes.split_first() {
            Some((&FORMAT, rest)) => {
                let stored: Stored = rmp_serde::from_slice(rest)
                    .map_err(|e| Error::Internal(format!("bucket configuration record: {e}")))?;
                Ok(BucketConfig {
                    documents: stored.documents,
                    generation: stored.generation,
                })
            }
            Some((format, _)) => Err(Error::Internal(format!(
                "bucket configuration record of unknown format {format}"
            ))),
            None => Err(Error::Internal(
                "empty bucket configuration record".to_owned(),
            )),
        }
    }
}

/// What a node knows of a bucket: that it exists, and its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketState {
    pub name: String,
    pub created_ns: i64,
    pub config: BucketConfig,
}

/// Tells the other nodes that a bucket's state changed (the cluster's
/// internode calls); it returns once each answered or [`NOTICE_WAIT`]
/// passed.
pub trait ConfigNotifier: Send + Sync {
    fn bucket_changed<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, ()>;
}

/// Every bucket's state this node has read, and when.
#[derive(Default)]
pub(crate) struct BucketStates {
    cached: Mutex<HashMap<String, (Instant, Arc<BucketState>)>>,
    /// Bumped by every invalidation: a read that began before one does not
    /// cache what it read (it may be older than the change).
    epoch: AtomicU64,
    notifier: OnceLock<Arc<dyn ConfigNotifier>>,
}

impl BucketStates {
    /// The cached state of `bucket`, if fresh.
    pub(crate) fn cached(&self, bucket: &str) -> Option<Arc<BucketState>> {
        let cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        cached
            .get(bucket)
            .filter(|(at, _)| at.elapsed() < MAX_AGE)
            .map(|(_, state)| state.clone())
    }

    /// Forgets `bucket` (changed or deleted).
    pub(crate) fn forget(&self, bucket: &str) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.cached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(bucket);
    }

    /// Forgets every bucket (notices may have been missed).
    pub(crate) fn forget_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.cached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn insert(&self, epoch: u64, state: Arc<BucketState>) {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if self.epoch.load(Ordering::Acquire) == epoch {
            cached.insert(state.name.clone(), (Instant::now(), state));
        }
    }
}

fn config_key(bucket: &str) -> String {
    format!("buckets/{bucket}/config")
}

impl ObjectLayer {
    /// Sets how this node tells the others of changes (once, at start-up).
    pub fn set_config_notifier(&self, notifier: Arc<dyn ConfigNotifier>) {
        let _ = self.shared.buckets.notifier.set(notifier);
    }

    /// Another node says `bucket` changed.
    pub fn bucket_changed_elsewhere(&self, bucket: &str) {
        self.shared.buckets.forget(bucket);
    }

    /// A peer connected to this node anew: it may have failed to tell this
    /// node of changes while they were apart.
    pub fn peer_reconnected(&self) {
        self.shared.buckets.forget_all();
    }

    /// `bucket`'s state: this node's copy, or read from the drives (which
    /// answers [`Error::BucketNotFound`] for a bucket that does not exist).
    pub async fn bucket_state(&self, bucket: &str) -> Result<Arc<BucketState>> {
        if let Some(state) = self.shared.buckets.cached(bucket) {
            return Ok(state);
        }
        let epoch = self.shared.buckets.epoch.load(Ordering::Acquire);
        let info = self.bucket_info(bucket).await?;
        let config = self.read_bucket_config(bucket).await?;
        let state = Arc::new(BucketState {
            name: bucket.to_owned(),
            created_ns: info.created_ns,
            config,
        });
        self.shared.buckets.insert(epoch, state.clone());
        Ok(state)
    }

    /// The configuration as the drives hold it.
    async fn read_bucket_config(&self, bucket: &str) -> Result<BucketConfig> {
        if let Some(bytes) = self.get_system(&config_key(bucket)).await? {
            return BucketConfig::decode(&bytes);
        }
        // A bucket configured by the previous release.
        let mut config = BucketConfig::default();
        for kind in [ConfigKind::Cors] {
            if let Some(key) = kind.legacy_key(bucket)
                && let Some(document) = self.get_system(&key).await?
            {
                config.documents.insert(kind.name().to_owned(), document);
            }
        }
        Ok(config)
    }

    /// Sets (or, with `None`, removes) `bucket`'s document of `kind`, and
    /// tells every node before it returns.
    pub async fn set_bucket_config(
        &self,
        bucket: &str,
        kind: ConfigKind,
        document: Option<Bytes>,
    ) -> Result<()> {
        if let Some(document) = &document
            && document.len() > crate::system::MAX_CONFIG_BYTES
        {
            return Err(Error::EntityTooLarge {
                size: document.len() as u64,
                max: crate::system::MAX_CONFIG_BYTES as u64,
            });
        }
        {
            // One change of a bucket's configuration at a time: each is a
            // read, a change of one kind, and a write of the whole record.
            let _guard = self
                .shared
                .locks
                .write(
                    self.shared.bucket_lock_set(bucket),
                    bucket_config_resource(bucket),
                )
                .await?;
            self.bucket_info(bucket).await?;
            let mut config = self.read_bucket_config(bucket).await?;
            match &document {
                Some(document) => {
                    config
                        .documents
                        .insert(kind.name().to_owned(), document.clone());
                }
                None => {
                    config.documents.remove(kind.name());
                }
            }
            config.generation = self.shared.clock.now_ns();
            self.shared.buckets.forget(bucket);
            self.put_system(&config_key(bucket), config.encode())
                .await?;
            if let Some(legacy) = kind.legacy_key(bucket) {
                match document {
                    Some(document) => self.put_system(&legacy, document).await?,
                    None => self.delete_system(&legacy).await?,
                }
            }
            self.shared.buckets.forget(bucket);
        }
        self.tell_nodes(bucket).await;
        Ok(())
    }

    /// Tells the other nodes that `bucket` changed (or is gone).
    pub(crate) async fn tell_nodes(&self, bucket: &str) {
        if let Some(notifier) = self.shared.buckets.notifier.get() {
            let _ = tokio::time::timeout(NOTICE_WAIT, notifier.bucket_changed(bucket)).await;
        }
    }

    /// Removes every configuration of a deleted bucket.
    pub(crate) async fn delete_bucket_configs(&self, bucket: &str) {
        let mut keys = vec![config_key(bucket)];
        keys.extend(ConfigKind::Cors.legacy_key(bucket));
        for key in keys {
            if let Err(err) = self.delete_system(&key).await {
                tracing::warn!(bucket, %key, %err, "could not remove a deleted bucket's configuration");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_keeps_every_kind_and_kinds_it_does_not_know() {
        let mut config = BucketConfig {
            generation: 42,
            ..Default::default()
        };
        config
            .documents
            .insert("cors".to_owned(), Bytes::from_static(b"[]"));
        config
            .documents
            .insert("from-a-later-release".to_owned(), Bytes::from_static(b"x"));
        let decoded = BucketConfig::decode(&config.encode()).unwrap();
        assert_eq!(decoded, config);
        assert_eq!(decoded.get(ConfigKind::Cors).unwrap().as_ref(), b"[]");
        assert!(decoded.get(ConfigKind::Policy).is_none());
        assert!(BucketConfig::decode(&[9, 1, 2]).is_err());
        assert!(BucketConfig::decode(&[]).is_err());
    }

    #[test]
    fn a_read_that_began_before_a_change_is_not_cached() {
        let states = BucketStates::default();
        let state = |name: &str| {
            Arc::new(BucketState {
                name: name.to_owned(),
                created_ns: 1,
                config: BucketConfig::default(),
            })
        };
        let epoch = states.epoch.load(Ordering::Acquire);
        states.insert(epoch, state("a"));
        assert!(states.cached("a").is_some());
        let before = states.epoch.load(Ordering::Acquire);
        states.forget("b");
        states.insert(before, state("b"));
        assert!(states.cached("b").is_none(), "read before the change");
        states.forget_all();
        assert!(states.cached("a").is_none());
    }
}
