//! State every request shares: the configuration, the namespace locks, the
//! heal queue, placement, the clock, the write budget, listing read-ahead
//! and the buckets' states. The data path reaches it as `&Shared`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::bucket_config::cache::BucketStates;
use crate::data::list::ReadAhead;
use crate::error::Result;
use crate::maintenance::heal_queue::HealQueue;
use crate::maintenance::usage::Usage;
use crate::set::ErasureSet;
use crate::set::nslock::{LockSet, NsLocks, ObjectWriteGuard};
use crate::set::placement::Placement;
use crate::types::ObjectConfig;

/// Modification times: wall clock in nanoseconds, strictly increasing within
/// this process so that two writes never tie.
pub(crate) struct Clock {
    last: AtomicI64,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            last: AtomicI64::new(0),
        }
    }

    pub(crate) fn now_ns(&self) -> i64 {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or_default();
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = wall.max(last + 1);
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(current) => last = current,
            }
        }
    }
}

/// State every request shares.
pub(crate) struct Shared {
    pub(crate) config: ObjectConfig,
    pub(crate) locks: NsLocks,
    /// Sets in the first pool, where bucket locks live.
    pub(crate) bucket_lock_sets: usize,
    /// Objects waiting to be healed.
    pub(crate) heal: Arc<HealQueue>,
    /// Per-bucket counts from the scanner.
    pub(crate) usage: Usage,
    pub(crate) placement: Placement,
    pub(crate) clock: Clock,
    /// Wakes the job loop when a heal or refill is queued on this node.
    pub(crate) jobs_wake: tokio::sync::Notify,
    /// PUT data in flight, in units of [`crate::data::write::BUDGET_UNIT`] bytes
    /// (`ObjectConfig::write_buffer`).
    pub(crate) write_budget: Arc<tokio::sync::Semaphore>,
    /// Listings kept for their next page.
    pub(crate) read_ahead: ReadAhead,
    /// Buckets' existence and configuration, as this node knows them.
    pub(crate) buckets: BucketStates,
}

impl Shared {
    /// Where a bucket's lock is taken: one set of the first pool, chosen by
    /// the bucket's name, so that bucket locks spread over the sets' nodes.
    pub(crate) fn bucket_lock_set(&self, bucket: &str) -> LockSet {
        LockSet {
            pool: 0,
            set: self.placement.set_index(bucket, "", self.bucket_lock_sets),
        }
    }

    /// Takes the locks for changing `bucket/key`, an object of `set`.
    pub(crate) async fn lock_object_write(
        &self,
        set: &ErasureSet,
        bucket: &str,
        key: &str,
    ) -> Result<ObjectWriteGuard> {
        self.locks
            .object_write(self.bucket_lock_set(bucket), set.lock_set(), bucket, key)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_strictly_increasing() {
        let clock = Clock::new();
        let mut last = 0;
        for _ in 0..10_000 {
            let now = clock.now_ns();
            assert!(now > last);
            last = now;
        }
    }
}
