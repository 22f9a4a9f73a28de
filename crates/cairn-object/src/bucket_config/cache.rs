//! The types of the bucket-configuration service and each node's cache of
//! buckets' states (the service itself is [`super`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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
    pub(crate) fn legacy_key(self, bucket: &str) -> Option<String> {
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
    pub(crate) documents: BTreeMap<String, Bytes>,
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

    pub(crate) fn encode(&self) -> Bytes {
        let stored = Stored {
            generation: self.generation,
            documents: self.documents.clone(),
        };
        let mut out = vec![FORMAT];
        out.extend(rmp_serde::to_vec_named(&stored).expect("configs encode"));
        Bytes::from(out)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<BucketConfig> {
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
    pub(crate) epoch: AtomicU64,
    pub(crate) notifier: OnceLock<Arc<dyn ConfigNotifier>>,
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

    pub(crate) fn insert(&self, epoch: u64, state: Arc<BucketState>) {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if self.epoch.load(Ordering::Acquire) == epoch {
            cached.insert(state.name.clone(), (Instant::now(), state));
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
