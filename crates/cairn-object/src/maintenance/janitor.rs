//! The janitor: removes multipart uploads left incomplete past their expiry,
//! and purges deleted shard files whose grace period is over.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::data::multipart::ListUploadsOptions;
use crate::layer::ObjectLayer;
use crate::worker::{Step, Worker};

/// Removes multipart uploads left incomplete past their expiry, every
/// `CAIRN_API_STALE_UPLOADS_CLEANUP_INTERVAL`.
pub struct StaleUploads {
    layer: Arc<ObjectLayer>,
    started: bool,
    aborted: u64,
}

impl StaleUploads {
    pub fn new(layer: Arc<ObjectLayer>) -> StaleUploads {
        StaleUploads {
            layer,
            started: false,
            aborted: 0,
        }
    }
}

#[async_trait]
impl Worker for StaleUploads {
    fn name(&self) -> &'static str {
        "stale-uploads"
    }

    fn progress(&self) -> Vec<(&'static str, u64)> {
        vec![("uploads_removed", self.aborted)]
    }

    async fn work(&mut self, _stop: &watch::Receiver<bool>) -> Result<Step, String> {
        // The first round comes one interval after start.
        if std::mem::replace(&mut self.started, true) {
            let aborted = abort_stale_uploads(&self.layer).await;
            if aborted > 0 {
                tracing::info!(
                    aborted,
                    "removed multipart uploads left incomplete past their expiry"
                );
            }
            self.aborted += aborted as u64;
        }
        Ok(Step::Idle)
    }

    async fn wait_for_work(&mut self) {
        tokio::time::sleep(self.layer.shared.config.janitor_interval).await
    }
}

/// The janitor: empties the drives' trash of deleted shard files whose
/// grace is over, every `CAIRN_API_STALE_UPLOADS_CLEANUP_INTERVAL`.
pub struct Janitor {
    layer: Arc<ObjectLayer>,
    started: bool,
    purged: u64,
}

impl Janitor {
    pub fn new(layer: Arc<ObjectLayer>) -> Janitor {
        Janitor {
            layer,
            started: false,
            purged: 0,
        }
    }
}

#[async_trait]
impl Worker for Janitor {
    fn name(&self) -> &'static str {
        "janitor"
    }

    fn progress(&self) -> Vec<(&'static str, u64)> {
        vec![("trash_files_purged", self.purged)]
    }

    async fn work(&mut self, _stop: &watch::Receiver<bool>) -> Result<Step, String> {
        if std::mem::replace(&mut self.started, true) {
            self.purged += purge_trash(&self.layer).await;
        }
        Ok(Step::Idle)
    }

    async fn wait_for_work(&mut self) {
        tokio::time::sleep(self.layer.shared.config.janitor_interval).await
    }
}

/// Aborts every upload initiated longer ago than the configured expiry;
/// returns how many.
pub async fn abort_stale_uploads(layer: &ObjectLayer) -> usize {
    let expiry = layer.shared.config.stale_upload_expiry;
    let cutoff = layer.shared.clock.now_ns() - i64::try_from(expiry.as_nanos()).unwrap_or(i64::MAX);
    let Ok(buckets) = layer.list_buckets().await else {
        return 0;
    };
    let mut aborted = 0;
    for bucket in buckets {
        let mut opts = ListUploadsOptions {
            max_uploads: 1000,
            ..Default::default()
        };
        // Bounded: at most a million uploads per bucket per round.
        for _ in 0..1000 {
            let Ok(page) = layer.list_multipart_uploads(&bucket.name, &opts).await else {
                break;
            };
            for upload in page.uploads.iter().filter(|u| u.initiated_ns < cutoff) {
                match layer
                    .abort_multipart_upload(&bucket.name, &upload.key, upload.upload_id)
                    .await
                {
                    Ok(()) => aborted += 1,
                    Err(err) => {
                        tracing::warn!(bucket = %bucket.name, key = %upload.key, %err, "could not remove a stale upload")
                    }
                }
            }
            if !page.truncated {
                break;
            }
            opts.key_marker = page.next_key_marker;
            opts.upload_id_marker = page.next_upload_id_marker;
        }
    }
    aborted
}

/// Purges every online drive's trash; returns how many files went.
async fn purge_trash(layer: &ObjectLayer) -> u64 {
    let grace = layer.shared.config.trash_grace;
    let mut purged = 0;
    for set in layer.pools.iter().flat_map(|p| p.sets.iter()) {
        for disk in set.disks.iter().filter(|d| d.is_online()) {
            match disk.purge_trash(grace).await {
                Ok(n) => purged += n as u64,
                Err(err) => {
                    tracing::warn!(drive = disk.endpoint(), %err, "could not purge deleted shard files")
                }
            }
        }
    }
    purged
}
