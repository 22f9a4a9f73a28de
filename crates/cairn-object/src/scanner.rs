//! The scanner (issue 5, item 4): a background pass over every erasure set
//! that removes orphan shard files older than a grace period, checks each
//! object's metadata agreement across the set's drives and that its shard
//! files exist, verifies a share of them frame by frame (deep scan), heals
//! what it finds, and counts each bucket's objects and bytes.
//!
//! A pass is a job ([`crate::jobs`], `scanner/<pool>-<set>`): one node runs
//! it under the set's cluster lock `scanner`, an interrupted pass resumes,
//! and other nodes skip the set until the next pass is due.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::jobs::{JobKind, JobState};
use crate::layer::ObjectLayer;
use crate::layer::now_ms;
use crate::set::ErasureSet;

/// Per bucket: (objects, bytes).
type BucketUsage = BTreeMap<String, (u64, u64)>;

/// Objects and bytes per bucket, from the last pass over each set.
#[derive(Debug, Default)]
pub struct Usage {
    /// Per set (pool, set).
    sets: Mutex<BTreeMap<(usize, usize), BucketUsage>>,
}

impl Usage {
    /// Per bucket: objects and bytes, summed over the sets' last passes.
    pub fn buckets(&self) -> BTreeMap<String, (u64, u64)> {
        let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for per_set in self.sets.lock().expect("usage").values() {
            for (bucket, (objects, bytes)) in per_set {
                let entry = out.entry(bucket.clone()).or_default();
                entry.0 += objects;
                entry.1 += bytes;
            }
        }
        out
    }
}

impl ObjectLayer {
    /// Objects and bytes per bucket, as the scanner last counted them.
    pub fn bucket_usage(&self) -> BTreeMap<String, (u64, u64)> {
        self.shared.usage.buckets()
    }

    /// Runs a pass over `set` if one is due (or an earlier one was cut
    /// short); returns it when it ran to its end.
    async fn scan_set(
        &self,
        set: &ErasureSet,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Option<JobState>> {
        let config = &self.shared.config;
        let interval = config.scanner_interval.as_millis().max(1) as i64;
        let pass = JobKind::Scan {
            pass: now_ms() / interval,
            deep_percent: config.scanner_deep_percent,
        };
        let mut state = JobState::new(pass, set);
        if let Some(last) = self.load_job(&state.storage_key()).await? {
            if last.done && now_ms() - last.updated_ms < interval {
                self.record_usage(&last);
                return Ok(None);
            }
            if !last.done {
                state = last;
            }
        }
        let state = self.run_job(state, shutdown).await?;
        if !state.done {
            return Ok(None);
        }
        self.record_usage(&state);
        Ok(Some(state))
    }

    fn record_usage(&self, pass: &JobState) {
        self.shared
            .usage
            .sets
            .lock()
            .expect("usage")
            .insert((pass.pool, pass.set), pass.usage.clone());
    }
}

/// Scans every set every `scanner_interval` until `shutdown`.
pub fn spawn_scanner(
    layer: Arc<ObjectLayer>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let interval = layer.shared.config.scanner_interval;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
            let sets: Vec<Arc<ErasureSet>> = layer
                .pools
                .iter()
                .flat_map(|p| p.sets.iter().cloned())
                .collect();
            for set in sets {
                let watching = shutdown.clone();
                tokio::select! {
                    result = layer.scan_set(&set, &watching) => match result {
                        Ok(_) | Err(Error::LockTimeout { .. }) => {}
                        Err(err) => tracing::warn!(set = %set.name(), %err, "scanner pass interrupted"),
                    },
                    _ = shutdown.changed() => return,
                }
            }
        }
    })
}
