//! The healer: the worker that heals the objects of this node's heal queue
//! ([`super::heal_queue`]) one by one.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::error::Error;
use crate::layer::ObjectLayer;
use crate::maintenance::heal::HealResult;
use crate::maintenance::heal_queue::{HealQueue, MAX_ATTEMPTS};
use crate::worker::{Step, Worker};

/// The healer: heals the objects of this node's heal queue one by one.
pub struct Healer {
    layer: Arc<ObjectLayer>,
    queue: Arc<HealQueue>,
}

impl Healer {
    pub fn new(layer: Arc<ObjectLayer>) -> Healer {
        let queue = layer.shared.heal.clone();
        Healer { layer, queue }
    }
}

#[async_trait]
impl Worker for Healer {
    fn name(&self) -> &'static str {
        "healer"
    }

    fn progress(&self) -> Vec<(&'static str, u64)> {
        let stats = self.queue.stats();
        vec![
            ("pending", stats.pending as u64),
            ("healed", stats.healed),
            ("healthy", stats.healthy),
            ("failed", stats.failed),
            ("overflowed", stats.overflowed),
        ]
    }

    async fn work(&mut self, _stop: &watch::Receiver<bool>) -> Result<Step, String> {
        let queue = &self.queue;
        let Some(entry) = queue.pop() else {
            queue.flush();
            return Ok(Step::Idle);
        };
        // Deep the first time: whatever got the object queued (a corrupt
        // frame, a missing file) is found by verifying every shard. A
        // retry waits for drives that were away, which a shallow check finds.
        match self
            .layer
            .heal_object(&entry.bucket, &entry.key, entry.attempts == 0)
            .await
        {
            Ok(report) if report.offline == 0 => {
                let counter = match report.result {
                    HealResult::Healthy | HealResult::NotFound => &queue.healthy,
                    HealResult::Healed { .. } | HealResult::Removed { .. } => &queue.healed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                queue.note_failure(&entry, None);
                queue.done(&entry);
            }
            Ok(_) => {
                // Drives of its set are away: heal what returns later.
                queue.retry(entry);
            }
            Err(Error::BucketNotFound | Error::ObjectNotFound) => {
                queue.healthy.fetch_add(1, Ordering::Relaxed);
                queue.note_failure(&entry, None);
                queue.done(&entry);
            }
            Err(err) if entry.attempts < MAX_ATTEMPTS => {
                tracing::debug!(bucket = %entry.bucket, key = %entry.key, %err, "heal failed; will retry");
                queue.note_failure(&entry, Some(format!("{err} (retrying)")));
                queue.retry(entry);
            }
            Err(err) => {
                queue.failed.fetch_add(1, Ordering::Relaxed);
                queue.note_failure(&entry, Some(format!("{err} (left to the scanner)")));
                tracing::error!(bucket = %entry.bucket, key = %entry.key, %err, attempts = entry.attempts, "heal keeps failing; left to the scanner");
                queue.done(&entry);
            }
        }
        Ok(Step::Busy)
    }

    async fn wait_for_work(&mut self) {
        tokio::select! {
            _ = self.queue.notify.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }

    async fn stopped(&mut self) {
        self.queue.flush();
    }
}
