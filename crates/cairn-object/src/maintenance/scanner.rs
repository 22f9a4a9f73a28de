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
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::layer::ObjectLayer;
use crate::maintenance::jobs::{JobKind, JobState};
use crate::set::ErasureSet;
use crate::util::now_ms;
use crate::worker::{Step, Worker};

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

/// The scanner: every `CAIRN_SCANNER_INTERVAL`, a pass over each set that
/// is due (one node per set), as a job.
pub struct Scanner {
    layer: Arc<ObjectLayer>,
    started: bool,
    rounds: u64,
    passes: u64,
}

impl Scanner {
    pub fn new(layer: Arc<ObjectLayer>) -> Scanner {
        Scanner {
            layer,
            started: false,
            rounds: 0,
            passes: 0,
        }
    }
}

#[async_trait]
impl Worker for Scanner {
    fn name(&self) -> &'static str {
        "scanner"
    }

    fn progress(&self) -> Vec<(&'static str, u64)> {
        vec![("rounds", self.rounds), ("set_passes", self.passes)]
    }

    async fn work(&mut self, stop: &watch::Receiver<bool>) -> Result<Step, String> {
        // The first round comes one interval after start.
        if !std::mem::replace(&mut self.started, true) {
            return Ok(Step::Idle);
        }
        let sets: Vec<Arc<ErasureSet>> = self
            .layer
            .pools
            .iter()
            .flat_map(|p| p.sets.iter().cloned())
            .collect();
        let mut interrupted = Vec::new();
        for set in sets {
            if *stop.borrow() {
                break;
            }
            match self.layer.scan_set(&set, stop).await {
                Ok(Some(_)) => self.passes += 1,
                // Not due, or another node is running it.
                Ok(None) | Err(Error::LockTimeout { .. }) => {}
                Err(err) => {
                    tracing::warn!(set = %set.name(), %err, "scanner pass interrupted");
                    interrupted.push(format!("{}: {err}", set.name()));
                }
            }
        }
        self.rounds += 1;
        if interrupted.is_empty() {
            Ok(Step::Idle)
        } else {
            Err(format!("passes interrupted: {}", interrupted.join("; ")))
        }
    }

    async fn wait_for_work(&mut self) {
        tokio::time::sleep(self.layer.shared.config.scanner_interval).await
    }
}
