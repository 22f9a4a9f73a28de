//! Heal jobs: walks over one erasure set that heal every object they meet
//! and count what they did, for three purposes (issue 5):
//!
//! * a **refill** of a replaced drive (`refill/<pool>-<set>-<slot>`),
//! * a **heal** an operator started over a bucket or prefix, one job per
//!   set under one id (`heal/<id>/<pool>-<set>`),
//! * a **scanner pass** (`scanner/<pool>-<set>`).
//!
//! A job's state is a system object, so it is erasure coded like any
//! object, any node can show it, and any node can resume the job after a
//! restart from the last key it saved. One node works on a job at a time:
//! it holds the job's cluster lock while it runs. A job heals one object at
//! a time and then rests, so that healing takes at most `heal_duty` of the
//! time and foreground requests keep their latency.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use cairn_disk::MetaOp;
use tokio::sync::watch;

use crate::data::list::{Listed, SetLister};
use crate::error::{Error, Result};
use crate::layer::ObjectLayer;
use crate::maintenance::heal::{DriveHeal, HealResult};
use crate::maintenance::heal_queue::{Failure, MAX_FAILURES};
use crate::set::ErasureSet;
use crate::types::ListOptions;
use crate::types::SYSTEM_BUCKET;
use crate::util::now_ms;
use crate::util::{hex, unhex_text};
use crate::worker::{Step, Worker};

/// Progress is saved at least this often.
const SAVE_EVERY: Duration = Duration::from_secs(2);

/// Finished operator heals are forgotten after this long.
const KEEP_DONE_HEALS_MS: i64 = 7 * 24 * 3600 * 1000;

/// What a job is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    /// Rebuild every object of the set onto the drive in `slot`.
    Refill { slot: usize },
    /// A heal an operator started: every object of `bucket` (or of every
    /// bucket) under `prefix`; `deep` verifies every shard's frames.
    Heal {
        id: String,
        bucket: Option<String>,
        prefix: String,
        deep: bool,
    },
    /// A scanner pass; `pass` picks the share of objects verified deeply.
    Scan { pass: i64, deep_percent: u8 },
}

impl JobKind {
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::Refill { .. } => "refill",
            JobKind::Heal { .. } => "heal",
            JobKind::Scan { .. } => "scan",
        }
    }
}

/// What a job did on one drive of its set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriveCounters {
    /// Objects whose shards or metadata were rebuilt on the drive.
    pub healed: u64,
    /// Bytes of shard data written to it.
    pub bytes: u64,
    /// Objects the drive lacked but that could not be written to it.
    pub failed: u64,
    /// Objects not checked on the drive because it was unreachable.
    pub offline: u64,
}

/// Where a job stands and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    pub kind: JobKind,
    pub pool: usize,
    pub set: usize,
    /// The drive being refilled, for refill jobs.
    pub drive: String,
    /// The last bucket and key done; the job resumes after them.
    pub bucket: Option<String>,
    pub key: Option<String>,
    /// Objects in the job's scope, counted when it starts.
    pub total: Option<u64>,
    /// Objects and bytes checked so far.
    pub objects: u64,
    pub bytes: u64,
    /// Objects verified frame by frame.
    pub deep: u64,
    /// Objects healed (or versions below quorum removed), and bytes written.
    pub healed: u64,
    pub healed_bytes: u64,
    /// Objects that could not be checked or healed.
    pub failed: u64,
    /// Orphan shard files removed (scanner passes).
    pub orphans: u64,
    /// Per drive of the set, in slot order.
    pub drives: Vec<DriveCounters>,
    /// The first [`MAX_FAILURES`] failed objects.
    pub failures: Vec<Failure>,
    /// Per bucket: objects and bytes (scanner passes).
    pub usage: BTreeMap<String, (u64, u64)>,
    pub done: bool,
    pub started_ms: i64,
    pub updated_ms: i64,
    /// Time spent running (not waiting for a restart), for rates.
    pub active_ms: i64,
}

fn opt_hex(v: &Option<String>) -> String {
    v.as_deref()
        .map_or_else(|| "-".to_owned(), |s| hex(s.as_bytes()))
}

fn opt_unhex(v: &str) -> Option<Option<String>> {
    if v == "-" {
        Some(None)
    } else {
        unhex_text(v).map(Some)
    }
}

impl JobState {
    pub(crate) fn new(kind: JobKind, set: &ErasureSet) -> JobState {
        let drive = match kind {
            JobKind::Refill { slot } => set.disks[slot].endpoint().to_owned(),
            _ => String::new(),
        };
        JobState {
            pool: set.pool_idx,
            set: set.set_idx,
            drive,
            drives: vec![DriveCounters::default(); set.size()],
            started_ms: now_ms(),
            updated_ms: now_ms(),
            ..JobState::empty(kind)
        }
    }

    /// A job of `kind` that has done nothing, on pool 0 set 0.
    fn empty(kind: JobKind) -> JobState {
        JobState {
            kind,
            pool: 0,
            set: 0,
            drive: String::new(),
            bucket: None,
            key: None,
            total: None,
            objects: 0,
            bytes: 0,
            deep: 0,
            healed: 0,
            healed_bytes: 0,
            failed: 0,
            orphans: 0,
            drives: Vec::new(),
            failures: Vec::new(),
            usage: BTreeMap::new(),
            done: false,
            started_ms: 0,
            updated_ms: 0,
            active_ms: 0,
        }
    }

    /// The system object holding the job.
    pub fn storage_key(&self) -> String {
        match &self.kind {
            JobKind::Refill { slot } => format!("refill/{}-{}-{slot}", self.pool, self.set),
            JobKind::Heal { id, .. } => format!("heal/{id}/{}-{}", self.pool, self.set),
            JobKind::Scan { .. } => format!("scanner/{}-{}", self.pool, self.set),
        }
    }

    /// The set's cluster lock the job holds while it runs.
    fn lock_name(&self) -> String {
        match &self.kind {
            JobKind::Refill { slot } => format!("refill:{slot}"),
            JobKind::Heal { id, .. } => format!("heal:{id}"),
            JobKind::Scan { .. } => "scanner".to_owned(),
        }
    }

    /// One job's worth of the counters of `jobs` (an operator heal's
    /// per-set jobs): summed, the earliest start, the latest update, done
    /// when all are. Its rate is over the summed running time: exact when
    /// one node works through the sets in turn, low when several nodes work
    /// side by side.
    pub fn sum(kind: JobKind, jobs: &[&JobState]) -> JobState {
        let mut all = JobState::empty(kind);
        all.total = Some(0);
        all.done = true;
        all.started_ms = jobs.iter().map(|j| j.started_ms).min().unwrap_or_default();
        for job in jobs {
            all.total = all.total.zip(job.total).map(|(a, b)| a + b);
            all.objects += job.objects;
            all.bytes += job.bytes;
            all.deep += job.deep;
            all.healed += job.healed;
            all.healed_bytes += job.healed_bytes;
            all.failed += job.failed;
            all.orphans += job.orphans;
            all.active_ms += job.active_ms;
            all.updated_ms = all.updated_ms.max(job.updated_ms);
            all.done &= job.done;
        }
        all
    }

    /// Objects per second and bytes per second while running.
    pub fn rates(&self) -> (f64, f64) {
        let secs = self.active_ms as f64 / 1000.0;
        if secs <= 0.0 {
            return (0.0, 0.0);
        }
        (self.objects as f64 / secs, self.bytes as f64 / secs)
    }

    /// Seconds left at the current rate, when it can be told.
    pub fn eta_secs(&self) -> Option<u64> {
        if self.done {
            return Some(0);
        }
        let total = self.total?;
        let (rate, _) = self.rates();
        (rate > 0.0).then(|| (total.saturating_sub(self.objects) as f64 / rate).ceil() as u64)
    }

    /// A line-per-field text form, versioned by its first line.
    pub(crate) fn encode(&self) -> Bytes {
        use std::fmt::Write;
        let mut out = String::from("cairn-job 1\n");
        let kind = match &self.kind {
            JobKind::Refill { slot } => format!("refill {slot}"),
            JobKind::Heal {
                id,
                bucket,
                prefix,
                deep,
            } => format!(
                "heal {} {} {} {}",
                hex(id.as_bytes()),
                opt_hex(bucket),
                opt_hex(&(!prefix.is_empty()).then(|| prefix.clone())),
                u8::from(*deep)
            ),
            JobKind::Scan { pass, deep_percent } => format!("scan {pass} {deep_percent}"),
        };
        let total = self.total.map_or_else(|| "-".to_owned(), |t| t.to_string());
        let _ = write!(
            out,
            "kind {kind}\npool {}\nset {}\ndrive {}\nbucket {}\nkey {}\ntotal {total}\nobjects {}\nbytes {}\ndeep {}\nhealed {}\nhealed-bytes {}\nfailed {}\norphans {}\ndone {}\nstarted {}\nupdated {}\nactive {}\n",
            self.pool,
            self.set,
            hex(self.drive.as_bytes()),
            opt_hex(&self.bucket),
            opt_hex(&self.key),
            self.objects,
            self.bytes,
            self.deep,
            self.healed,
            self.healed_bytes,
            self.failed,
            self.orphans,
            u8::from(self.done),
            self.started_ms,
            self.updated_ms,
            self.active_ms,
        );
        for (slot, d) in self.drives.iter().enumerate() {
            let _ = writeln!(
                out,
                "drive-counters {slot} {} {} {} {}",
                d.healed, d.bytes, d.failed, d.offline
            );
        }
        for f in &self.failures {
            let _ = writeln!(
                out,
                "failure {} {} {}",
                hex(f.bucket.as_bytes()),
                hex(f.key.as_bytes()),
                hex(f.reason.as_bytes())
            );
        }
        for (bucket, (objects, bytes)) in &self.usage {
            let _ = writeln!(out, "usage {} {objects} {bytes}", hex(bucket.as_bytes()));
        }
        Bytes::from(out)
    }

    /// Decodes [`JobState::encode`]'s form, and the refill-only form
    /// (`cairn-refill 1`) that came before it.
    pub(crate) fn decode(data: &[u8]) -> Option<JobState> {
        let text = std::str::from_utf8(data).ok()?;
        let mut lines = text.lines();
        let refill_v1 = match lines.next()? {
            "cairn-job 1" => false,
            "cairn-refill 1" => true,
            _ => return None,
        };
        let mut state = JobState::empty(JobKind::Refill { slot: 0 });
        for line in lines {
            let (name, value) = line.split_once(' ')?;
            let fields: Vec<&str> = value.split(' ').collect();
            match name {
                "kind" => {
                    state.kind = match fields.as_slice() {
                        ["refill", slot] => JobKind::Refill {
                            slot: slot.parse().ok()?,
                        },
                        ["heal", id, bucket, prefix, deep] => JobKind::Heal {
                            id: unhex_text(id)?,
                            bucket: opt_unhex(bucket)?,
                            prefix: opt_unhex(prefix)?.unwrap_or_default(),
                            deep: *deep == "1",
                        },
                        ["scan", pass, percent] => JobKind::Scan {
                            pass: pass.parse().ok()?,
                            deep_percent: percent.parse().ok()?,
                        },
                        _ => return None,
                    }
                }
                "slot" if refill_v1 => {
                    state.kind = JobKind::Refill {
                        slot: value.parse().ok()?,
                    }
                }
                "pool" => state.pool = value.parse().ok()?,
                "set" => state.set = value.parse().ok()?,
                "drive" => state.drive = unhex_text(value)?,
                "bucket" => state.bucket = opt_unhex(value)?,
                "key" => state.key = opt_unhex(value)?,
                "total" => {
                    state.total = if value == "-" {
                        None
                    } else {
                        value.parse().ok()
                    }
                }
                "objects" => state.objects = value.parse().ok()?,
                "bytes" => state.bytes = value.parse().ok()?,
                "deep" => state.deep = value.parse().ok()?,
                "healed" => state.healed = value.parse().ok()?,
                "healed-bytes" => state.healed_bytes = value.parse().ok()?,
                "failed" => state.failed = value.parse().ok()?,
                "orphans" => state.orphans = value.parse().ok()?,
                "done" => state.done = value == "1",
                "started" => state.started_ms = value.parse().ok()?,
                "updated" => state.updated_ms = value.parse().ok()?,
                "active" => state.active_ms = value.parse().ok()?,
                "drive-counters" => {
                    let [slot, healed, bytes, failed, offline] = fields.as_slice() else {
                        return None;
                    };
                    let slot: usize = slot.parse().ok()?;
                    if slot >= 64 {
                        return None;
                    }
                    if state.drives.len() <= slot {
                        state.drives.resize(slot + 1, DriveCounters::default());
                    }
                    state.drives[slot] = DriveCounters {
                        healed: healed.parse().ok()?,
                        bytes: bytes.parse().ok()?,
                        failed: failed.parse().ok()?,
                        offline: offline.parse().ok()?,
                    };
                }
                "failure" => {
                    let [bucket, key, reason] = fields.as_slice() else {
                        return None;
                    };
                    state.failures.push(Failure {
                        bucket: unhex_text(bucket)?,
                        key: unhex_text(key)?,
                        reason: unhex_text(reason)?,
                    });
                }
                "usage" => {
                    let [bucket, objects, bytes] = fields.as_slice() else {
                        return None;
                    };
                    state.usage.insert(
                        unhex_text(bucket)?,
                        (objects.parse().ok()?, bytes.parse().ok()?),
                    );
                }
                _ => {}
            }
        }
        if refill_v1 {
            // Its time ran from the start: the best estimate there is.
            state.active_ms = state.updated_ms - state.started_ms;
        }
        Some(state)
    }

    /// Whether this pass verifies `bucket/key` deeply.
    fn deep_for(&self, bucket: &str, key: &str) -> bool {
        match &self.kind {
            JobKind::Refill { .. } => false,
            JobKind::Heal { deep, .. } => *deep,
            JobKind::Scan { pass, deep_percent } => {
                deep_this_pass(bucket, key, *pass, *deep_percent)
            }
        }
    }

    /// The listing of `bucket` the job walks, from where it stands.
    fn list_options(&self, bucket: &str, resume: bool) -> ListOptions {
        let prefix = match &self.kind {
            JobKind::Heal { prefix, .. } => prefix.clone(),
            _ => String::new(),
        };
        ListOptions {
            prefix,
            start_after: if resume && self.bucket.as_deref() == Some(bucket) {
                self.key.clone()
            } else {
                None
            },
            max_keys: 1000,
            ..ListOptions::default()
        }
    }

    fn record(
        &mut self,
        bucket: &str,
        key: &str,
        report: &crate::maintenance::heal::HealReport,
        deep: bool,
    ) {
        self.objects += 1;
        self.bytes += report.size;
        self.deep += u64::from(deep);
        if matches!(
            report.result,
            HealResult::Healed { .. } | HealResult::Removed { .. }
        ) {
            self.healed += 1;
            self.healed_bytes += report.bytes;
        }
        if self.drives.len() < report.drives.len() {
            self.drives
                .resize(report.drives.len(), DriveCounters::default());
        }
        for (counters, outcome) in self.drives.iter_mut().zip(&report.drives) {
            match outcome {
                DriveHeal::Ok => {}
                DriveHeal::Healed(bytes) => {
                    counters.healed += 1;
                    counters.bytes += bytes;
                }
                DriveHeal::Failed => counters.failed += 1,
                DriveHeal::Offline => counters.offline += 1,
            }
        }
        if report.drives.iter().any(|d| matches!(d, DriveHeal::Failed)) {
            self.fail(
                bucket,
                key,
                "a drive lacking the object could not be written",
            );
        }
        if matches!(self.kind, JobKind::Scan { .. }) && bucket != SYSTEM_BUCKET {
            let entry = self.usage.entry(bucket.to_owned()).or_default();
            entry.0 += 1;
            entry.1 += report.size;
        }
    }

    fn fail(&mut self, bucket: &str, key: &str, reason: &str) {
        self.failed += 1;
        if self.failures.len() < MAX_FAILURES {
            self.failures.push(Failure {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                reason: reason.to_owned(),
            });
        }
    }
}

/// Whether a scanner pass verifies `bucket/key` deeply: a stable share of
/// the keys per pass, a different share each pass.
pub(crate) fn deep_this_pass(bucket: &str, key: &str, pass: i64, percent: u8) -> bool {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (bucket, key, pass).hash(&mut hasher);
    hasher.finish() % 100 < u64::from(percent)
}

impl ObjectLayer {
    pub(crate) async fn save_job(&self, state: &JobState) -> Result<()> {
        self.put_system(&state.storage_key(), state.encode()).await
    }

    pub(crate) async fn load_job(&self, key: &str) -> Result<Option<JobState>> {
        Ok(self
            .get_system(key)
            .await?
            .and_then(|data| JobState::decode(&data)))
    }

    /// Every job stored under `prefix` (`refill/`, `heal/`, `scanner/`).
    pub(crate) async fn jobs_under(&self, prefix: &str) -> Result<Vec<JobState>> {
        let mut jobs = Vec::new();
        let mut options = ListOptions {
            prefix: prefix.to_owned(),
            max_keys: 1000,
            ..ListOptions::default()
        };
        // Bounded: old operator heals are pruned, so a few pages at most.
        for _ in 0..100 {
            let listed = match self.list_objects(SYSTEM_BUCKET, &options).await {
                Ok(listed) => listed,
                Err(Error::BucketNotFound) => return Ok(jobs),
                Err(err) => return Err(err),
            };
            for object in &listed.objects {
                if let Some(state) = self.load_job(&object.key).await? {
                    jobs.push(state);
                }
            }
            match (listed.truncated, listed.next_marker) {
                (true, Some(marker)) => options.start_after = Some(marker),
                _ => break,
            }
        }
        Ok(jobs)
    }

    /// Every job: refills, operator heals and scanner passes.
    pub async fn heal_jobs(&self) -> Result<Vec<JobState>> {
        let mut jobs = self.jobs_under("refill/").await?;
        jobs.extend(self.jobs_under("heal/").await?);
        jobs.extend(self.jobs_under("scanner/").await?);
        Ok(jobs)
    }

    /// Starts healing every object of `bucket` (every bucket when `None`)
    /// under `prefix` on every set now; `deep` verifies every shard. Returns
    /// the heal's id.
    pub async fn start_heal(
        &self,
        bucket: Option<&str>,
        prefix: &str,
        deep: bool,
    ) -> Result<String> {
        if let Some(bucket) = bucket {
            self.bucket_info(bucket).await?;
        }
        let id = uuid::Uuid::now_v7().simple().to_string();
        let kind = JobKind::Heal {
            id: id.clone(),
            bucket: bucket.map(str::to_owned),
            prefix: prefix.to_owned(),
            deep,
        };
        for set in self.pools.iter().flat_map(|p| p.sets.iter()) {
            self.save_job(&JobState::new(kind.clone(), set)).await?;
        }
        tracing::info!(%id, bucket = bucket.unwrap_or("(all)"), prefix, deep, "heal started");
        self.shared.jobs_wake.notify_one();
        Ok(id)
    }

    fn set_of(&self, state: &JobState) -> Result<Arc<ErasureSet>> {
        self.pools
            .get(state.pool)
            .and_then(|p| p.sets.get(state.set))
            .cloned()
            .ok_or_else(|| {
                Error::Internal(format!(
                    "{} job for a set that does not exist: pool {} set {}",
                    state.kind.name(),
                    state.pool,
                    state.set
                ))
            })
    }

    /// The buckets a job walks, in order.
    async fn job_buckets(&self, state: &JobState) -> Result<Vec<String>> {
        if let JobKind::Heal {
            bucket: Some(bucket),
            ..
        } = &state.kind
        {
            return Ok(vec![bucket.clone()]);
        }
        let mut buckets: Vec<String> = self
            .list_buckets()
            .await?
            .into_iter()
            .map(|b| b.name)
            .collect();
        buckets.push(SYSTEM_BUCKET.to_owned());
        buckets.sort();
        Ok(buckets)
    }

    /// Objects in the job's scope on its set (a listing: metadata only).
    async fn count_scope(&self, set: &ErasureSet, state: &JobState) -> Result<u64> {
        let mut total = 0;
        for bucket in self.job_buckets(state).await? {
            let options = state.list_options(&bucket, false);
            let mut lister = SetLister::new(set, &bucket, &options);
            loop {
                match lister.next().await {
                    Ok(Some(Listed::Object(_))) => total += 1,
                    Ok(Some(Listed::Prefix(_))) => {}
                    Ok(None) | Err(Error::BucketNotFound) => break,
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(total)
    }

    /// Runs a job to its end, or until `shutdown`; returns its last state.
    /// A job already finished (by another node) is returned as it is.
    pub(crate) async fn run_job(
        &self,
        mut state: JobState,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<JobState> {
        let set = self.set_of(&state)?;
        let guard = self
            .shared
            .locks
            .write(set.lock_set(), state.lock_name())
            .await?;
        // Read again under the lock: another node may have moved it on.
        if let Some(latest) = self.load_job(&state.storage_key()).await?
            && latest.kind == state.kind
        {
            state = latest;
        }
        if state.done {
            return Ok(state);
        }
        let fresh = state.objects == 0 && state.bucket.is_none();
        match (&state.kind, fresh) {
            (JobKind::Refill { .. }, true) => {
                tracing::info!(drive = %state.drive, set = %set.name(), "refilling a replaced drive")
            }
            (JobKind::Refill { .. }, false) => {
                tracing::info!(drive = %state.drive, objects = state.objects, after = ?state.key, "resuming the refill of a replaced drive where it stopped")
            }
            (JobKind::Heal { id, .. }, _) => {
                tracing::info!(%id, set = %set.name(), resuming = !fresh, "healing a set")
            }
            (JobKind::Scan { .. }, _) => {
                tracing::debug!(set = %set.name(), resuming = !fresh, "scanner pass")
            }
        }
        let mut segment = Instant::now();
        if matches!(state.kind, JobKind::Scan { .. }) && fresh {
            let grace = self.shared.config.orphan_grace;
            for disk in &set.disks {
                match disk.remove_orphans(grace).await {
                    Ok(n) => state.orphans += n as u64,
                    Err(err) => {
                        tracing::debug!(drive = disk.endpoint(), %err, "scanner: orphan pass skipped")
                    }
                }
            }
        }
        if state.total.is_none() {
            state.total = Some(self.count_scope(&set, &state).await?);
        }
        state.drives.resize(set.size(), DriveCounters::default());
        let duty = self.shared.config.heal_duty.clamp(0.01, 1.0);
        let batch_size = self.shared.config.heal_concurrency.max(1);
        let mut last_save: Option<Instant> = None;
        for bucket in self.job_buckets(&state).await? {
            if state
                .bucket
                .as_deref()
                .is_some_and(|done| bucket.as_str() < done)
            {
                continue;
            }
            let options = state.list_options(&bucket, true);
            let mut lister = SetLister::new(&set, &bucket, &options);
            let mut listed_all = false;
            while !listed_all {
                // A batch of keys healed side by side: one object at a time
                // leaves the drives idle between round trips.
                let mut batch = Vec::with_capacity(batch_size);
                while batch.len() < batch_size {
                    match lister.next().await {
                        Ok(Some(Listed::Object(info))) => batch.push(info),
                        Ok(Some(Listed::Prefix(_))) => {}
                        Ok(None) | Err(Error::BucketNotFound) => {
                            listed_all = true;
                            break;
                        }
                        Err(err) => return Err(err),
                    }
                }
                let Some(last) = batch.last() else {
                    break;
                };
                let last_key = last.key.clone();
                guard.check()?;
                let started = Instant::now();
                let heals = batch.iter().map(|entry| {
                    let deep = state.deep_for(&bucket, &entry.key);
                    let set = &set;
                    let bucket = &bucket;
                    async move {
                        let result = set
                            .heal_object(&self.shared, bucket, &entry.key, deep)
                            .await;
                        (deep, result)
                    }
                });
                let results = futures::future::join_all(heals).await;
                for (entry, (deep, result)) in batch.iter().zip(results) {
                    match result {
                        Ok(report) => {
                            if let JobKind::Refill { slot } = state.kind
                                && report.drives.get(slot) == Some(&DriveHeal::Offline)
                            {
                                // The job loop tries again later, from the
                                // last saved key.
                                return Err(Error::Internal(format!(
                                    "the drive being refilled ({}) is unreachable",
                                    state.drive
                                )));
                            }
                            state.record(&bucket, &entry.key, &report, deep);
                        }
                        // Deleted meanwhile.
                        Err(Error::ObjectNotFound) => {}
                        Err(err) => {
                            state.objects += 1;
                            state.bytes += entry.size;
                            state.fail(&bucket, &entry.key, &err.to_string());
                            tracing::warn!(job = state.kind.name(), bucket = %bucket, key = %entry.key, %err, "an object could not be checked or healed");
                        }
                    }
                }
                state.bucket = Some(bucket.clone());
                state.key = Some(last_key);
                let stopping = *shutdown.borrow();
                if last_save.is_none_or(|at| at.elapsed() >= SAVE_EVERY) || stopping {
                    state.active_ms += segment.elapsed().as_millis() as i64;
                    segment = Instant::now();
                    state.updated_ms = now_ms();
                    self.save_job(&state).await?;
                    if matches!(state.kind, JobKind::Refill { .. }) {
                        tracing::info!(drive = %state.drive, objects = state.objects, bytes = state.bytes, "refill progress saved");
                    }
                    last_save = Some(Instant::now());
                    if stopping {
                        return Ok(state);
                    }
                }
                // Rest so that healing takes at most `duty` of the time; no
                // object lock is held while resting.
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
        state.active_ms += segment.elapsed().as_millis() as i64;
        state.updated_ms = now_ms();
        self.save_job(&state).await?;
        let seconds = state.active_ms as f64 / 1000.0;
        match &state.kind {
            JobKind::Refill { slot } => {
                tracing::info!(
                    drive = %state.drive, objects = state.objects, bytes = state.bytes,
                    healed = state.healed, failed = state.failed, seconds,
                    "refill of a replaced drive complete"
                );
                self.mark_refilled(&set, *slot, &state).await;
            }
            JobKind::Heal { id, .. } => tracing::info!(
                %id, set = %set.name(), objects = state.objects, healed = state.healed,
                failed = state.failed, seconds, "heal of a set complete"
            ),
            JobKind::Scan { .. } => tracing::info!(
                set = %set.name(), objects = state.objects, bytes = state.bytes, deep = state.deep,
                healed = state.healed, failed = state.failed, orphans = state.orphans,
                seconds, "scanner pass complete"
            ),
        }
        Ok(state)
    }

    /// Marks a refilled drive complete (`MetaOp::MarkComplete`), so that
    /// listings may rely on it again: only when every object was rebuilt
    /// onto it, since a drive missing an object it once held can hide it
    /// from a listing of fewer drives.
    async fn mark_refilled(&self, set: &ErasureSet, slot: usize, state: &JobState) {
        let disk = &set.disks[slot];
        if state.failed > 0 {
            tracing::warn!(
                drive = disk.endpoint(),
                failed = state.failed,
                "refill left objects unrebuilt; listings keep reading every drive of the set"
            );
            return;
        }
        match disk.commit(MetaOp::MarkComplete).await {
            Ok(_) => tracing::info!(drive = disk.endpoint(), "refilled drive marked complete"),
            Err(err) => {
                tracing::warn!(drive = disk.endpoint(), %err, "cannot mark a refilled drive complete; listings keep reading every drive of the set")
            }
        }
    }

    /// Forgets operator heals finished more than a week ago.
    async fn prune_heals(&self, jobs: &[JobState]) {
        let now = now_ms();
        for job in jobs {
            if job.done
                && matches!(job.kind, JobKind::Heal { .. })
                && now - job.updated_ms > KEEP_DONE_HEALS_MS
                && let Err(err) = self.delete_system(&job.storage_key()).await
            {
                tracing::debug!(%err, "cannot forget an old heal");
            }
        }
    }
}

/// Heal jobs: refills of drives found empty in their slot, and heals an
/// operator started, each run to its end (or resumed where it stopped) by
/// whichever node takes its lock first, one at a time on each node.
pub struct HealJobs {
    layer: Arc<ObjectLayer>,
    finished: u64,
    interrupted: u64,
}

impl HealJobs {
    pub fn new(layer: Arc<ObjectLayer>) -> HealJobs {
        HealJobs {
            layer,
            finished: 0,
            interrupted: 0,
        }
    }
}

#[async_trait]
impl Worker for HealJobs {
    fn name(&self) -> &'static str {
        "heal-jobs"
    }

    fn progress(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("jobs_finished", self.finished),
            ("jobs_interrupted", self.interrupted),
        ]
    }

    /// Runs every pending job in turn.
    async fn work(&mut self, stop: &watch::Receiver<bool>) -> std::result::Result<Step, String> {
        let layer = &self.layer;
        let mut jobs = Vec::new();
        for prefix in ["refill/", "heal/"] {
            match layer.jobs_under(prefix).await {
                Ok(found) => jobs.extend(found),
                Err(err) => tracing::debug!(%err, "cannot list heal jobs yet"),
            }
        }
        layer.prune_heals(&jobs).await;
        for job in jobs.into_iter().filter(|j| !j.done) {
            if *stop.borrow() {
                break;
            }
            let name = job.storage_key();
            match layer.run_job(job, stop).await {
                Ok(state) if state.done => self.finished += 1,
                Ok(_) => {}
                // Another node is running it.
                Err(Error::LockTimeout { .. }) => {}
                Err(err) => {
                    self.interrupted += 1;
                    tracing::warn!(job = %name, %err, "heal job interrupted; it resumes where it stopped");
                }
            }
        }
        Ok(Step::Idle)
    }

    async fn wait_for_work(&mut self) {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = self.layer.shared.jobs_wake.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> JobState {
        JobState {
            kind: JobKind::Heal {
                id: "0193abc".to_owned(),
                bucket: Some("b".to_owned()),
                prefix: "dir/ with space".to_owned(),
                deep: true,
            },
            pool: 1,
            set: 2,
            drive: String::new(),
            bucket: Some("b".to_owned()),
            key: Some("a key\nwith a newline".to_owned()),
            total: Some(100),
            objects: 10,
            bytes: 1 << 30,
            deep: 10,
            healed: 3,
            healed_bytes: 1 << 20,
            failed: 1,
            orphans: 0,
            drives: vec![
                DriveCounters::default(),
                DriveCounters {
                    healed: 3,
                    bytes: 1 << 20,
                    failed: 0,
                    offline: 2,
                },
            ],
            failures: vec![Failure {
                bucket: "b".to_owned(),
                key: "k 1".to_owned(),
                reason: "read quorum not reached: 1 of 2".to_owned(),
            }],
            usage: BTreeMap::from([("b".to_owned(), (10, 1 << 30))]),
            done: false,
            started_ms: 5,
            updated_ms: 6,
            active_ms: 1,
        }
    }

    #[test]
    fn job_state_round_trips() {
        let state = sample();
        assert_eq!(JobState::decode(&state.encode()), Some(state));
        for kind in [
            JobKind::Refill { slot: 3 },
            JobKind::Scan {
                pass: 42,
                deep_percent: 10,
            },
            JobKind::Heal {
                id: "x".to_owned(),
                bucket: None,
                prefix: String::new(),
                deep: false,
            },
        ] {
            let state = JobState {
                kind,
                total: None,
                ..sample()
            };
            assert_eq!(JobState::decode(&state.encode()), Some(state));
        }
        assert_eq!(JobState::decode(b"something else"), None);
    }

    #[test]
    fn refill_state_of_the_first_format_still_decodes() {
        let v1 = "cairn-refill 1\npool 0\nset 1\nslot 3\ndrive 2f6431\nbucket 62\nkey 6b\nobjects 7\nbytes 100\nfailed 0\ndone 0\nstarted 1000\nupdated 3000\n";
        let state = JobState::decode(v1.as_bytes()).unwrap();
        assert_eq!(state.kind, JobKind::Refill { slot: 3 });
        assert_eq!((state.pool, state.set), (0, 1));
        assert_eq!(state.drive, "/d1");
        assert_eq!(state.key.as_deref(), Some("k"));
        assert_eq!(state.objects, 7);
        assert_eq!(state.active_ms, 2000);
        assert_eq!(state.storage_key(), "refill/0-1-3");
    }

    #[test]
    fn a_heal_over_several_sets_sums_them() {
        let (a, mut b) = (sample(), sample());
        b.done = true;
        b.started_ms = 2;
        b.updated_ms = 9;
        let all = JobState::sum(a.kind.clone(), &[&a, &b]);
        assert_eq!((all.objects, all.total, all.failed), (20, Some(200), 2));
        assert_eq!((all.started_ms, all.updated_ms, all.active_ms), (2, 9, 2));
        assert!(!all.done);
        let c = JobState {
            total: None,
            ..sample()
        };
        assert_eq!(JobState::sum(a.kind.clone(), &[&a, &c]).total, None);
    }

    #[test]
    fn rate_and_eta_come_from_running_time() {
        let mut state = sample();
        state.active_ms = 2000;
        assert_eq!(state.rates(), (5.0, (1u64 << 30) as f64 / 2.0));
        assert_eq!(state.eta_secs(), Some(18));
        state.total = None;
        assert_eq!(state.eta_secs(), None);
        state.done = true;
        assert_eq!(state.eta_secs(), Some(0));
    }

    #[test]
    fn the_deep_share_is_about_the_percentage_and_moves_between_passes() {
        let keys: Vec<String> = (0..10_000).map(|i| format!("k{i}")).collect();
        let count = |pass| {
            keys.iter()
                .filter(|k| deep_this_pass("b", k, pass, 10))
                .count()
        };
        let (first, second) = (count(1), count(2));
        assert!((800..1200).contains(&first), "{first}");
        assert!((800..1200).contains(&second), "{second}");
        let both = keys
            .iter()
            .filter(|k| deep_this_pass("b", k, 1, 10) && deep_this_pass("b", k, 2, 10))
            .count();
        assert!(both < 300, "a different share each pass: {both} in both");
        assert_eq!(
            keys.iter().filter(|k| deep_this_pass("b", k, 1, 0)).count(),
            0
        );
        assert_eq!(
            keys.iter()
                .filter(|k| deep_this_pass("b", k, 1, 100))
                .count(),
            10_000
        );
    }
}
