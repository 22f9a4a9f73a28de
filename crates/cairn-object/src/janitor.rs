//! The janitor: removes multipart uploads left incomplete past their expiry,
//! and purges deleted shard files whose grace period is over.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::layer::ObjectLayer;
use crate::multipart::ListUploadsOptions;

/// Runs at the configured interval until `shutdown` turns true.
pub fn spawn_janitor(
    layer: Arc<ObjectLayer>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let interval = layer.shared.config.janitor_interval;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            let aborted = abort_stale_uploads(&layer).await;
            if aborted > 0 {
                tracing::info!(
                    aborted,
                    "removed multipart uploads left incomplete past their expiry"
                );
            }
            purge_trash(&layer).await;
        }
    })
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

async fn purge_trash(layer: &ObjectLayer) {
    let grace = layer.shared.config.trash_grace;
    for set in layer.pools.iter().flat_map(|p| p.sets.iter()) {
        for disk in set.disks.iter().filter(|d| d.is_online()) {
            if let Err(err) = disk.purge_trash(grace).await {
                tracing::warn!(drive = disk.endpoint(), %err, "could not purge deleted shard files");
            }
        }
    }
}
