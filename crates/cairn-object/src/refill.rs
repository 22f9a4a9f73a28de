//! Refilling a replaced drive (issue 5, item 3): a drive formatted into its
//! slot empty, at start-up or while running, gets every object of its set
//! rebuilt onto it, without any operator step.
//!
//! The job's state (where it is, what it did) is a system object,
//! `refill/<pool>-<set>-<slot>`, so it is erasure coded like any object and
//! any node can resume the job after a restart, from the last key it saved.
//! One node works on a job at a time: it holds the cluster lock
//! `refill:<slot>` while it runs. The job heals one object at a time and
//! then rests, so that healing takes at most `heal_duty` of the time and
//! foreground requests keep their latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::heal::HealResult;
use crate::layer::ObjectLayer;
use crate::layer::now_ms;
use crate::list::{Listed, SetLister};
use crate::put::{hex, unhex_text};
use crate::set::ErasureSet;
use crate::system::SYSTEM_BUCKET;
use crate::types::ListOptions;

const PREFIX: &str = "refill/";
/// Progress is saved at least this often.
const SAVE_EVERY: Duration = Duration::from_secs(2);

/// Where a refill job stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefillState {
    pub pool: usize,
    pub set: usize,
    pub slot: usize,
    /// The drive being refilled, for logs.
    pub drive: String,
    /// The last bucket and key done; the job resumes after them.
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub objects: u64,
    pub bytes: u64,
    pub failed: u64,
    pub done: bool,
    pub started_ms: i64,
    pub updated_ms: i64,
}

impl RefillState {
    /// A line-per-field text form, versioned by its first line.
    fn encode(&self) -> Bytes {
        let opt = |v: &Option<String>| {
            v.as_deref()
                .map_or_else(|| "-".to_owned(), |s| hex(s.as_bytes()))
        };
        Bytes::from(format!(
            "cairn-refill 1\npool {}\nset {}\nslot {}\ndrive {}\nbucket {}\nkey {}\nobjects {}\nbytes {}\nfailed {}\ndone {}\nstarted {}\nupdated {}\n",
            self.pool,
            self.set,
            self.slot,
            hex(self.drive.as_bytes()),
            opt(&self.bucket),
            opt(&self.key),
            self.objects,
            self.bytes,
            self.failed,
            u8::from(self.done),
            self.started_ms,
            self.updated_ms
        ))
    }

    fn decode(data: &[u8]) -> Option<RefillState> {
        let text = std::str::from_utf8(data).ok()?;
        let mut lines = text.lines();
        if lines.next()? != "cairn-refill 1" {
            return None;
        }
        let mut state = RefillState::default();
        for line in lines {
            let (name, value) = line.split_once(' ')?;
            let opt = || {
                if value == "-" {
                    Some(None)
                } else {
                    unhex_text(value).map(Some)
                }
            };
            match name {
                "pool" => state.pool = value.parse().ok()?,
                "set" => state.set = value.parse().ok()?,
                "slot" => state.slot = value.parse().ok()?,
                "drive" => state.drive = unhex_text(value)?,
                "bucket" => state.bucket = opt()?,
                "key" => state.key = opt()?,
                "objects" => state.objects = value.parse().ok()?,
                "bytes" => state.bytes = value.parse().ok()?,
                "failed" => state.failed = value.parse().ok()?,
                "done" => state.done = value == "1",
                "started" => state.started_ms = value.parse().ok()?,
                "updated" => state.updated_ms = value.parse().ok()?,
                _ => {}
            }
        }
        Some(state)
    }
}

fn job_key(pool: usize, set: usize, slot: usize) -> String {
    format!("{PREFIX}{pool}-{set}-{slot}")
}

impl ObjectLayer {
    /// Records that the drive in `slot` of `set` was formatted into its
    /// slot empty and must be refilled. A job already under way for the
    /// slot is kept, so that it resumes rather than restarts.
    pub(crate) async fn queue_refill(&self, set: &ErasureSet, slot: usize) {
        let key = job_key(set.pool_idx, set.set_idx, slot);
        match self.get_system(&key).await {
            Ok(Some(data)) if RefillState::decode(&data).is_some_and(|s| !s.done) => return,
            Err(err) => {
                tracing::warn!(%err, drive = set.disks[slot].endpoint(), "cannot read the refill job; queueing a new one");
            }
            _ => {}
        }
        let state = RefillState {
            pool: set.pool_idx,
            set: set.set_idx,
            slot,
            drive: set.disks[slot].endpoint().to_owned(),
            started_ms: now_ms(),
            updated_ms: now_ms(),
            ..RefillState::default()
        };
        match self.put_system(&key, state.encode()).await {
            Ok(()) => {
                tracing::info!(drive = %state.drive, set = %set.name(), "refill of a replaced drive queued")
            }
            Err(err) => {
                tracing::error!(drive = %state.drive, %err, "cannot queue the refill of a replaced drive")
            }
        }
    }

    /// Every refill job, done or not.
    pub async fn refill_jobs(&self) -> Result<Vec<RefillState>> {
        let options = ListOptions {
            prefix: PREFIX.to_owned(),
            max_keys: 1000,
            ..ListOptions::default()
        };
        let listed = match self.list_objects(SYSTEM_BUCKET, &options).await {
            Ok(listed) => listed,
            Err(Error::BucketNotFound) => return Ok(Vec::new()),
            Err(err) => return Err(err),
        };
        let mut jobs = Vec::new();
        for object in listed.objects {
            if let Some(data) = self.get_system(&object.key).await?
                && let Some(state) = RefillState::decode(&data)
            {
                jobs.push(state);
            }
        }
        Ok(jobs)
    }

    async fn run_refill(
        &self,
        mut state: RefillState,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<()> {
        let set = self
            .pools
            .get(state.pool)
            .and_then(|p| p.sets.get(state.set))
            .cloned()
            .ok_or_else(|| {
                Error::Internal(format!(
                    "refill job for a set that does not exist: {state:?}"
                ))
            })?;
        let key = job_key(state.pool, state.set, state.slot);
        let guard = self
            .shared
            .locks
            .write(set.lock_set(), format!("refill:{}", state.slot))
            .await?;
        // Read again under the lock: another node may have moved it on.
        if let Some(data) = self.get_system(&key).await?
            && let Some(latest) = RefillState::decode(&data)
        {
            state = latest;
        }
        if state.done {
            return Ok(());
        }
        if state.objects > 0 {
            tracing::info!(drive = %state.drive, objects = state.objects, after = ?state.key, "resuming the refill of a replaced drive where it stopped");
        } else {
            tracing::info!(drive = %state.drive, set = %set.name(), "refilling a replaced drive");
        }
        let duty = self.shared.config.heal_duty.clamp(0.01, 1.0);
        let mut buckets: Vec<String> = self
            .list_buckets()
            .await?
            .into_iter()
            .map(|b| b.name)
            .collect();
        buckets.push(SYSTEM_BUCKET.to_owned());
        buckets.sort();
        let mut last_save = Instant::now();
        for bucket in buckets {
            if state
                .bucket
                .as_deref()
                .is_some_and(|done| bucket.as_str() < done)
            {
                continue;
            }
            let options = ListOptions {
                start_after: if state.bucket.as_deref() == Some(bucket.as_str()) {
                    state.key.clone()
                } else {
                    None
                },
                max_keys: 1000,
                ..ListOptions::default()
            };
            let mut lister = SetLister::new(&set, &bucket, &options);
            loop {
                let entry = match lister.next().await {
                    Ok(Some(Listed::Object(info))) => info,
                    Ok(Some(Listed::Prefix(_))) => continue,
                    Ok(None) | Err(Error::BucketNotFound) => break,
                    Err(err) => return Err(err),
                };
                guard.check()?;
                let started = Instant::now();
                match set
                    .heal_object(&self.shared, &bucket, &entry.key, false)
                    .await
                {
                    Ok(report) => {
                        state.bytes += report.bytes;
                        if report.result == HealResult::Healthy
                            || matches!(report.result, HealResult::Healed { .. })
                        {
                            state.objects += 1;
                        }
                    }
                    Err(Error::ObjectNotFound) => {}
                    Err(err) => {
                        state.failed += 1;
                        tracing::warn!(bucket = %bucket, key = %entry.key, %err, "refill could not heal an object");
                    }
                }
                state.bucket = Some(bucket.clone());
                state.key = Some(entry.key.clone());
                if last_save.elapsed() >= SAVE_EVERY || *shutdown.borrow() {
                    state.updated_ms = now_ms();
                    self.put_system(&key, state.encode()).await?;
                    tracing::info!(drive = %state.drive, objects = state.objects, bytes = state.bytes, "refill progress saved");
                    last_save = Instant::now();
                    if *shutdown.borrow() {
                        return Ok(());
                    }
                }
                // Rest so that healing takes at most `duty` of the time.
                let worked = started.elapsed();
                tokio::time::sleep(worked.mul_f64((1.0 - duty) / duty)).await;
            }
            // Done with this bucket: resuming skips it (every bucket name
            // sorts before itself followed by NUL) and starts the next one
            // from its first key.
            state.bucket = Some(format!("{bucket}\u{0}"));
            state.key = None;
        }
        state.done = true;
        state.updated_ms = now_ms();
        self.put_system(&key, state.encode()).await?;
        tracing::info!(
            drive = %state.drive, objects = state.objects, bytes = state.bytes, failed = state.failed,
            seconds = (state.updated_ms - state.started_ms) / 1000,
            "refill of a replaced drive complete"
        );
        Ok(())
    }
}

/// Looks for refill jobs every few seconds and runs them, one at a time.
pub fn spawn_refiller(
    layer: Arc<ObjectLayer>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
            let jobs = match layer.refill_jobs().await {
                Ok(jobs) => jobs,
                Err(err) => {
                    tracing::debug!(%err, "cannot list refill jobs yet");
                    continue;
                }
            };
            for job in jobs.into_iter().filter(|j| !j.done) {
                let drive = job.drive.clone();
                let watching = shutdown.clone();
                let run = layer.run_refill(job, &watching);
                tokio::select! {
                    result = run => {
                                                match result {
                            Ok(()) => {}
                            // Another node is running it.
                            Err(Error::LockTimeout { .. }) => {}
                            Err(err) => tracing::warn!(%drive, %err, "refill interrupted; it resumes where it stopped"),
                        }
                    }
                    _ = shutdown.changed() => return,
                }
            }
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refill_state_round_trips() {
        let state = RefillState {
            pool: 1,
            set: 2,
            slot: 3,
            drive: "http://n1:9000/mnt/d 1".to_owned(),
            bucket: Some("b".to_owned()),
            key: Some("a key\nwith a newline".to_owned()),
            objects: 10,
            bytes: 1 << 30,
            failed: 1,
            done: false,
            started_ms: 5,
            updated_ms: 6,
        };
        assert_eq!(RefillState::decode(&state.encode()), Some(state));
        assert_eq!(RefillState::decode(b"something else"), None);
    }
}
