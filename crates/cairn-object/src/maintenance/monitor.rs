//! The drive monitor: brings drives back online when they return, and
//! formats fresh drives that appear in a known slot, while the server runs.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use cairn_disk::{Disk, DiskError, MetaOp};
use tokio::sync::watch;

use crate::layer::ObjectLayer;
use crate::quorum::{self, Strategy};
use crate::set::{ErasureSet, fan_out};
use crate::worker::{Step, Worker};

/// The drive monitor: every `CAIRN_DRIVE_CHECK_INTERVAL`, probes every
/// offline drive and brings back those that answer (formatting fresh ones
/// into their slot), and checks the online ones with a cheap call.
pub struct DriveMonitor {
    layer: Arc<ObjectLayer>,
    last_reason: HashMap<String, String>,
    rounds: u64,
    returned: u64,
}

impl DriveMonitor {
    pub fn new(layer: Arc<ObjectLayer>) -> DriveMonitor {
        DriveMonitor {
            layer,
            last_reason: HashMap::new(),
            rounds: 0,
            returned: 0,
        }
    }
}

#[async_trait]
impl Worker for DriveMonitor {
    fn name(&self) -> &'static str {
        "drive-monitor"
    }

    fn progress(&self) -> Vec<(&'static str, u64)> {
        let offline = self
            .layer
            .health()
            .iter()
            .map(|set| (set.drives - set.online) as u64)
            .sum();
        vec![
            ("rounds", self.rounds),
            ("drives_back", self.returned),
            ("offline_now", offline),
        ]
    }

    async fn work(&mut self, _stop: &watch::Receiver<bool>) -> Result<Step, String> {
        self.returned += check_drives(&self.layer, &mut self.last_reason).await;
        self.rounds += 1;
        Ok(Step::Idle)
    }

    async fn wait_for_work(&mut self) {
        tokio::time::sleep(self.layer.shared.config.monitor_interval).await
    }
}

/// One round of the monitor, every drive at once: a hung drive's probe
/// waits out its deadline without holding up the others'. Returns how
/// many drives came back.
async fn check_drives(layer: &ObjectLayer, last_reason: &mut HashMap<String, String>) -> u64 {
    let slots: Vec<(&Arc<ErasureSet>, usize)> = layer
        .pools
        .iter()
        .flat_map(|p| p.sets.iter())
        .flat_map(|set| (0..set.size()).map(move |slot| (set, slot)))
        .collect();
    let checks = slots.iter().map(|&(set, slot)| async move {
        let disk = &set.disks[slot];
        if disk.is_online() {
            // A cheap call that notices a drive (or a peer's drive) gone
            // while nothing used it, so that the cluster health endpoints
            // stay true when idle.
            if let Err(err) = disk.space().await
                && err.is_offline()
            {
                tracing::warn!(drive = disk.endpoint(), set = %set.name(), %err, "drive went offline");
            }
            return Ok::<_, ()>(None);
        }
        Ok(Some(probe(set, slot).await))
    });
    let answers = quorum::call_many(checks, Strategy::all()).await;
    let mut returned = 0;
    for (&(set, slot), answer) in slots.iter().zip(answers.into_options()) {
        let Some(Ok(Some(probed))) = answer else {
            continue;
        };
        let endpoint = set.disks[slot].endpoint().to_owned();
        match probed {
            Ok(formatted) => {
                returned += 1;
                last_reason.remove(&endpoint);
                if formatted {
                    layer.queue_refill(set, slot).await;
                }
            }
            Err(reason) => {
                if last_reason.get(&endpoint) != Some(&reason) {
                    tracing::warn!(drive = %endpoint, set = %set.name(), %reason, "drive still offline");
                    last_reason.insert(endpoint, reason);
                }
            }
        }
    }
    returned
}

/// Brings back now every offline drive that `wanted` picks, as the
/// monitor's next round would: a peer that says it has restarted gets its
/// drives back in service before it reports ready.
pub async fn reconnect_drives(layer: &ObjectLayer, wanted: impl Fn(&dyn Disk) -> bool) {
    let mut probes = Vec::new();
    for set in layer.pools.iter().flat_map(|p| p.sets.iter()) {
        for slot in 0..set.size() {
            let disk = &set.disks[slot];
            if disk.is_online() || !wanted(disk.as_ref()) {
                continue;
            }
            probes.push(async move {
                if probe(set, slot).await == Ok(true) {
                    layer.queue_refill(set, slot).await;
                }
                Ok::<(), ()>(())
            });
        }
    }
    quorum::call_many(probes, Strategy::all()).await;
}

/// Tries to bring the drive in `slot` back: `Ok(true)` when it came back
/// empty and was formatted into its slot (it needs a refill), `Ok(false)`
/// when it came back as it was, else why it is still offline.
async fn probe(set: &ErasureSet, slot: usize) -> Result<bool, String> {
    let disk = &set.disks[slot];
    let expected = &set.formats[slot];
    let endpoint = disk.endpoint().to_owned();
    let result = match disk.read_format().await {
        Ok(Some(_)) => disk.connect(expected).await.map(|()| false),
        Ok(None) => match disk.write_format(expected).await {
            Ok(()) => disk.connect(expected).await.map(|()| true),
            Err(err) => Err(err),
        },
        Err(err) => Err(err),
    };
    match result {
        Ok(formatted) => {
            // Buckets created while it was away.
            heal_buckets(set, slot).await;
            if formatted {
                tracing::warn!(
                    drive = %endpoint, set = %set.name(), slot = slot + 1,
                    "fresh drive formatted into its slot and back in service; its objects will be rebuilt by a refill"
                );
            } else {
                tracing::info!(
                    drive = %endpoint, set = %set.name(),
                    "drive is back online; objects written while it was away need healing"
                );
            }
            Ok(formatted)
        }
        Err(err) => Err(err.to_string()),
    }
}

/// Creates on the drive in `slot` every bucket the rest of its set knows,
/// so that writes to it succeed again at once.
pub(crate) async fn heal_buckets(set: &ErasureSet, slot: usize) {
    let lists = fan_out(&set.disks, Strategy::all(), |idx, disk| async move {
        if idx == slot {
            return Ok(Vec::new());
        }
        disk.list_buckets().await
    })
    .await;
    let mut seen: HashMap<String, (usize, cairn_disk::BucketRecord)> = HashMap::new();
    for record in lists.into_vec().into_iter().flatten().flatten() {
        seen.entry(record.name.clone()).or_insert((0, record)).0 += 1;
    }
    let disk = &set.disks[slot];
    for (count, record) in seen.into_values() {
        if count < set.read_quorum().min(set.size() - 1).max(1) {
            continue;
        }
        match disk.commit(MetaOp::MakeBucket(record.clone())).await {
            Ok(_) | Err(DiskError::BucketExists) => {}
            Err(err) => {
                tracing::warn!(drive = disk.endpoint(), bucket = %record.name, %err, "could not restore bucket on drive");
            }
        }
    }
}

/// Restores missing bucket records on every online drive: fresh drives
/// formatted at start-up, and drives that were away when buckets were created.
pub async fn heal_bucket_records(layer: &ObjectLayer) {
    for set in layer.pools.iter().flat_map(|p| p.sets.iter()) {
        for slot in 0..set.size() {
            if set.disks[slot].is_online() {
                heal_buckets(set, slot).await;
            }
        }
    }
}
