//! The scanner (issue 5, item 4): a background pass over every erasure set
//! that checks each object's metadata agreement across the set's drives and
//! that its shard files exist, verifies a share of them frame by frame
//! (deep scan), heals what it finds, removes orphan shard files older than
//! a grace period, and counts each bucket's objects and bytes.
//!
//! One node scans a set per pass: it holds the set's cluster lock
//! `scanner` and records when the pass ended (system object
//! `scanner/<pool>-<set>`), so other nodes skip the set until the next
//! pass is due. Like a refill it rests between objects (`heal_duty`).

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::heal::HealResult;
use crate::layer::ObjectLayer;
use crate::layer::now_ms;
use crate::list::{Listed, SetLister};
use crate::set::ErasureSet;
use crate::system::SYSTEM_BUCKET;
use crate::types::ListOptions;

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

/// What one pass over a set found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub objects: u64,
    pub bytes: u64,
    pub deep: u64,
    pub healed: u64,
    pub failed: u64,
    pub orphans: u64,
}

/// Whether this pass verifies `bucket/key` deeply: a stable share of the
/// keys per pass, a different share each pass.
fn deep_this_pass(bucket: &str, key: &str, pass: i64, percent: u8) -> bool {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (bucket, key, pass).hash(&mut hasher);
    hasher.finish() % 100 < u64::from(percent)
}

impl ObjectLayer {
    /// Objects and bytes per bucket, as the scanner last counted them.
    pub fn bucket_usage(&self) -> BTreeMap<String, (u64, u64)> {
        self.shared.usage.buckets()
    }

    async fn scan_set(
        &self,
        set: &ErasureSet,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Option<PassReport>> {
        let config = &self.shared.config;
        let marker = format!("scanner/{}-{}", set.pool_idx, set.set_idx);
        let guard = self
            .shared
            .locks
            .write(set.lock_set(), "scanner".to_owned())
            .await?;
        if let Some(data) = self.get_system(&marker).await?
            && let Some(last) = std::str::from_utf8(&data)
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
            && now_ms() - last < config.scanner_interval.as_millis() as i64
        {
            return Ok(None);
        }
        let started = Instant::now();
        let pass = now_ms() / config.scanner_interval.as_millis().max(1) as i64;
        let mut report = PassReport::default();
        for disk in &set.disks {
            match disk.remove_orphans(config.orphan_grace).await {
                Ok(n) => report.orphans += n as u64,
                Err(err) => {
                    tracing::debug!(drive = disk.endpoint(), %err, "scanner: orphan pass skipped")
                }
            }
        }
        let duty = config.heal_duty.clamp(0.01, 1.0);
        let mut usage: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut buckets: Vec<String> = self
            .list_buckets()
            .await?
            .into_iter()
            .map(|b| b.name)
            .collect();
        buckets.push(SYSTEM_BUCKET.to_owned());
        for bucket in buckets {
            let options = ListOptions {
                max_keys: 1000,
                ..ListOptions::default()
            };
            let mut lister = SetLister::new(set, &bucket, &options);
            loop {
                if *shutdown.borrow() {
                    return Ok(None);
                }
                let info = match lister.next().await {
                    Ok(Some(Listed::Object(info))) => info,
                    Ok(Some(Listed::Prefix(_))) => continue,
                    Ok(None) | Err(Error::BucketNotFound) => break,
                    Err(err) => return Err(err),
                };
                guard.check()?;
                let entry = usage.entry(bucket.clone()).or_default();
                entry.0 += 1;
                entry.1 += info.size;
                report.objects += 1;
                report.bytes += info.size;
                let deep = deep_this_pass(&bucket, &info.key, pass, config.scanner_deep_percent);
                report.deep += u64::from(deep);
                let at = Instant::now();
                match set
                    .heal_object(&self.shared, &bucket, &info.key, deep)
                    .await
                {
                    Ok(healed)
                        if matches!(
                            healed.result,
                            HealResult::Healed { .. } | HealResult::Removed { .. }
                        ) =>
                    {
                        report.healed += 1
                    }
                    Ok(_) | Err(Error::ObjectNotFound) => {}
                    Err(err) => {
                        report.failed += 1;
                        tracing::warn!(bucket = %bucket, key = %info.key, %err, "scanner: object could not be checked or healed");
                    }
                }
                tokio::time::sleep(at.elapsed().mul_f64((1.0 - duty) / duty)).await;
            }
        }
        usage.remove(SYSTEM_BUCKET);
        self.shared
            .usage
            .sets
            .lock()
            .expect("usage")
            .insert((set.pool_idx, set.set_idx), usage);
        self.put_system(&marker, Bytes::from(now_ms().to_string()))
            .await?;
        tracing::info!(
            set = %set.name(), objects = report.objects, bytes = report.bytes, deep = report.deep,
            healed = report.healed, failed = report.failed, orphans = report.orphans,
            seconds = started.elapsed().as_secs_f64(), "scanner pass complete"
        );
        Ok(Some(report))
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

#[cfg(test)]
mod tests {
    use super::*;

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
