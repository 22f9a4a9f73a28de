//! The bucket-configuration service (docs/design.md section 6): every kind of a
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

pub(crate) mod cache;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::bucket_config::cache::{
    BucketConfig, BucketState, ConfigKind, ConfigNotifier, NOTICE_WAIT,
};
use crate::error::{Error, Result};
use crate::layer::ObjectLayer;
use crate::set::nslock::bucket_config_resource;

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
