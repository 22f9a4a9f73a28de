//! Refilling a replaced drive (issue 5, item 3): a drive formatted into its
//! slot empty, at start-up or while running, gets a refill job
//! ([`crate::jobs`]) that rebuilds every object of its set onto it, without
//! any operator step.

use crate::layer::ObjectLayer;
use crate::maintenance::jobs::{JobKind, JobState};
use crate::set::ErasureSet;

impl ObjectLayer {
    /// Records that the drive in `slot` of `set` was formatted into its
    /// slot empty and must be refilled. A job already under way for the
    /// slot is kept, so that it resumes rather than restarts.
    pub(crate) async fn queue_refill(&self, set: &ErasureSet, slot: usize) {
        let state = JobState::new(JobKind::Refill { slot }, set);
        match self.load_job(&state.storage_key()).await {
            Ok(Some(job)) if !job.done => return,
            Err(err) => {
                tracing::warn!(%err, drive = set.disks[slot].endpoint(), "cannot read the refill job; queueing a new one");
            }
            _ => {}
        }
        match self.save_job(&state).await {
            Ok(()) => {
                tracing::info!(drive = %state.drive, set = %set.name(), "refill of a replaced drive queued");
                self.shared.jobs_wake.notify_one();
            }
            Err(err) => {
                tracing::error!(drive = %state.drive, %err, "cannot queue the refill of a replaced drive")
            }
        }
    }
}

/// Queues a refill for every drive that start-up formatted into its slot
/// in a deployment that already existed.
pub async fn queue_formatted_drives(layer: &ObjectLayer, booted: &crate::bootstrap::Bootstrapped) {
    if booted.fresh {
        return;
    }
    for (pool_idx, states) in booted.drives.iter().enumerate() {
        let Some(pool) = layer.pools.get(pool_idx) else {
            continue;
        };
        let Some(size) = pool.sets.first().map(|s| s.size()) else {
            continue;
        };
        for (idx, (_, state)) in states.iter().enumerate() {
            if *state == crate::bootstrap::DriveState::Formatted {
                layer.queue_refill(&pool.sets[idx / size], idx % size).await;
            }
        }
    }
}
