//! Start-up: read every drive's `format.json`, format fresh drives into their
//! slots, refuse drives that belong elsewhere, and build the object layer.

use std::collections::HashMap;
use std::sync::Arc;

use cairn_disk::{Disk, DiskError, Format, MetaOp};
use uuid::Uuid;

use crate::layer::{ObjectLayer, Pool};
use crate::set::ErasureSet;
use crate::set::nslock::{Locker, NsLocks};
use crate::set::placement::Placement;
use crate::shared::{Clock, Shared};
use crate::types::{ObjectConfig, default_parity};

/// One pool as the command line describes it: drives in slot order, cut
/// into sets of `set_size`.
pub struct PoolSpec {
    pub drives: Vec<Arc<dyn Disk>>,
    pub set_size: usize,
}

/// Why the server cannot start. Each message names the drive and what was
/// expected and found, so an operator can act on it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BootstrapError {
    pub message: String,
    /// Not a fault of the drives: the start should be retried once more
    /// drives are reachable (a cluster whose nodes are still starting).
    pub retry: bool,
}

impl BootstrapError {
    pub fn fatal(message: String) -> BootstrapError {
        BootstrapError {
            message,
            retry: false,
        }
    }

    pub fn wait(message: String) -> BootstrapError {
        BootstrapError {
            message,
            retry: true,
        }
    }
}

/// How this node takes part in forming the deployment.
#[derive(Clone, Default)]
pub struct BootstrapOptions {
    /// Cluster-wide namespace locks; `None` on a single node.
    pub locker: Option<Arc<dyn Locker>>,
    /// True on a node of a cluster: unreachable drives and sets short of
    /// read quorum are reasons to wait ([`BootstrapError::retry`]), and only
    /// the node with `may_create` formats a new deployment.
    pub cluster: bool,
    /// This node may create a new deployment when no drive is formatted.
    pub may_create: bool,
}

/// What happened to each drive at start-up, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriveState {
    Online,
    /// Fresh or replaced: formatted into its slot now.
    Formatted,
    Offline(String),
}

pub struct Bootstrapped {
    pub layer: Arc<ObjectLayer>,
    /// Per pool, per drive in command-line order.
    pub drives: Vec<Vec<(String, DriveState)>>,
    /// True when this start created the deployment.
    pub fresh: bool,
}

fn slot_name(set_idx: usize, disk_idx: usize) -> String {
    format!("set {} drive {}", set_idx + 1, disk_idx + 1)
}

/// Validates the parity asked for against a set size.
pub fn parity_for(set_size: usize, requested: Option<usize>) -> Result<usize, BootstrapError> {
    let Some(parity) = requested else {
        return Ok(default_parity(set_size));
    };
    if set_size == 1 {
        if parity != 0 {
            return Err(BootstrapError::fatal(format!(
                "EC:{parity} needs more than one drive: a single drive stores objects without erasure coding"
            )));
        }
        return Ok(0);
    }
    if parity == 0 {
        return Err(BootstrapError::fatal(format!(
            "EC:0 on sets of {set_size} drives would lose data with any drive; use at least EC:1"
        )));
    }
    if parity > set_size / 2 {
        return Err(BootstrapError::fatal(format!(
            "EC:{parity} is more than half of the {set_size} drives of a set; the most is EC:{}",
            set_size / 2
        )));
    }
    Ok(parity)
}

/// Reads, checks and completes the format of every drive, then builds the
/// object layer. Drives that are unreachable are left offline (the monitor
/// keeps probing them); drives that belong elsewhere stop the start.
pub async fn bootstrap(
    pools: Vec<PoolSpec>,
    config: ObjectConfig,
    options: BootstrapOptions,
) -> Result<Bootstrapped, BootstrapError> {
    let mut deployment_id: Option<Uuid> = None;
    let mut fresh = false;
    let mut built = Vec::with_capacity(pools.len());
    let mut report = Vec::with_capacity(pools.len());
    // First pass: find the deployment id among every formatted drive.
    let mut formats = Vec::with_capacity(pools.len());
    for pool in &pools {
        let calls = pool.drives.iter().map(|d| d.read_format());
        let read = crate::quorum::call_many(calls, crate::quorum::Strategy::all())
            .await
            .into_results(|_| crate::set::not_waited_for());
        formats.push(read);
    }
    for read in formats.iter().flatten() {
        if let Ok(Some(format)) = read {
            deployment_id.get_or_insert(format.deployment_id);
        }
    }
    let deployment_id = match deployment_id {
        Some(id) => id,
        None if options.cluster && !options.may_create => {
            return Err(BootstrapError::wait(
                "no drive is formatted yet: waiting for the first node of the command line to create the deployment".to_owned(),
            ));
        }
        None => {
            fresh = true;
            Uuid::new_v4()
        }
    };

    for (pool_idx, (pool, read)) in pools.into_iter().zip(formats).enumerate() {
        let n = pool.drives.len();
        if pool.set_size == 0 || !n.is_multiple_of(pool.set_size) {
            return Err(BootstrapError::fatal(format!(
                "pool {}: {n} drives cannot be cut into sets of {}",
                pool_idx + 1,
                pool.set_size
            )));
        }
        let set_count = n / pool.set_size;
        let parity = parity_for(pool.set_size, config.parity)?;
        for (drive, res) in pool.drives.iter().zip(&read) {
            if let Err(err @ DiskError::Corrupt { .. }) = res {
                return Err(BootstrapError::fatal(format!(
                    "drive {}: {err}; move the drive aside or restore its format.json",
                    drive.endpoint()
                )));
            }
        }
        // The layout most formatted drives agree on is the reference.
        let mut votes: HashMap<(Uuid, Vec<Vec<Uuid>>), usize> = HashMap::new();
        for format in read.iter().flatten().flatten() {
            *votes
                .entry((format.deployment_id, format.sets.clone()))
                .or_default() += 1;
        }
        let reference = match votes.into_iter().max_by_key(|(_, count)| *count) {
            Some(((id, sets), _)) => {
                let format = Format {
                    deployment_id: id,
                    sets,
                    ..Format::new_pool(id, 0, 0)
                };
                if format.sets.len() != set_count
                    || format.sets.iter().any(|s| s.len() != pool.set_size)
                {
                    return Err(BootstrapError::fatal(format!(
                        "pool {}: its drives were formatted as {} sets of {} drives, but the command line and settings give {set_count} sets of {}; start with the original drive list and CAIRN_ERASURE_SET_DRIVE_COUNT",
                        pool_idx + 1,
                        format.sets.len(),
                        format.sets.first().map_or(0, Vec::len),
                        pool.set_size
                    )));
                }
                format
            }
            None => {
                let unreachable: Vec<String> = pool
                    .drives
                    .iter()
                    .zip(&read)
                    .filter_map(|(d, r)| r.as_ref().err().map(|e| format!("{}: {e}", d.endpoint())))
                    .collect();
                if !unreachable.is_empty() {
                    let error = if options.cluster {
                        BootstrapError::wait
                    } else {
                        BootstrapError::fatal
                    };
                    return Err(error(format!(
                        "pool {}: cannot format a new pool while drives are unreachable: {}",
                        pool_idx + 1,
                        unreachable.join("; ")
                    )));
                }
                Format::new_pool(deployment_id, set_count, pool.set_size)
            }
        };
        if reference.deployment_id != deployment_id {
            return Err(BootstrapError::fatal(format!(
                "pool {} belongs to deployment {}, but pool 1 to deployment {deployment_id}; pools of different deployments cannot be combined",
                pool_idx + 1,
                reference.deployment_id
            )));
        }

        let mut states = Vec::with_capacity(n);
        let mut sets = Vec::with_capacity(set_count);
        for set_idx in 0..set_count {
            let mut disks = Vec::with_capacity(pool.set_size);
            let mut expected = Vec::with_capacity(pool.set_size);
            for disk_idx in 0..pool.set_size {
                let drive_idx = set_idx * pool.set_size + disk_idx;
                let drive = pool.drives[drive_idx].clone();
                let want = reference.for_slot(set_idx, disk_idx);
                let state = match &read[drive_idx] {
                    Ok(Some(found)) => {
                        if found.deployment_id != want.deployment_id {
                            return Err(BootstrapError::fatal(format!(
                                "drive {} belongs to another deployment: expected deployment {}, found deployment {} (drive id {}); remove it from the command line or wipe it",
                                drive.endpoint(),
                                want.deployment_id,
                                found.deployment_id,
                                found.this
                            )));
                        }
                        if found.this != want.this || !found.same_layout(&want) {
                            let found_slot = found.slot_of(found.this).map_or_else(
                                || "an unknown slot".to_owned(),
                                |(s, d)| slot_name(s, d),
                            );
                            return Err(BootstrapError::fatal(format!(
                                "drive {} is in the wrong place: its position on the command line is pool {} {} (expected drive id {}), but it holds {} (drive id {}); restore the original drive order",
                                drive.endpoint(),
                                pool_idx + 1,
                                slot_name(set_idx, disk_idx),
                                want.this,
                                found_slot,
                                found.this
                            )));
                        }
                        match drive.connect(&want).await {
                            Ok(()) => DriveState::Online,
                            Err(err) => DriveState::Offline(err.to_string()),
                        }
                    }
                    Ok(None) => {
                        let formatted = async {
                            drive.write_format(&want).await?;
                            drive.connect(&want).await?;
                            // A new deployment's drives hold all of their
                            // (empty) sets; a drive formatted into an
                            // existing one is complete once refilled.
                            if fresh && let Err(err) = drive.commit(MetaOp::MarkComplete).await {
                                tracing::warn!(drive = drive.endpoint(), %err, "cannot mark a new drive complete; listings will read every drive of its set");
                            }
                            Ok::<(), DiskError>(())
                        };
                        match formatted.await {
                            Ok(()) => {
                                if !fresh {
                                    tracing::warn!(
                                        drive = drive.endpoint(),
                                        slot = %slot_name(set_idx, disk_idx),
                                        "fresh drive formatted into its slot; its objects will be rebuilt by healing"
                                    );
                                }
                                DriveState::Formatted
                            }
                            Err(err) => DriveState::Offline(err.to_string()),
                        }
                    }
                    Err(err) => DriveState::Offline(err.to_string()),
                };
                states.push((drive.endpoint().to_owned(), state));
                disks.push(drive);
                expected.push(want);
            }
            if options.cluster {
                // A node serves once its sets can be read; the drives still
                // away are brought in by the drive monitor.
                let set_states = &states[states.len() - pool.set_size..];
                let usable = set_states
                    .iter()
                    .filter(|(_, s)| !matches!(s, DriveState::Offline(_)))
                    .count();
                let needed = pool.set_size - parity;
                if usable < needed {
                    let away: Vec<String> = set_states
                        .iter()
                        .filter_map(|(endpoint, s)| match s {
                            DriveState::Offline(reason) => Some(format!("{endpoint} ({reason})")),
                            _ => None,
                        })
                        .collect();
                    return Err(BootstrapError::wait(format!(
                        "pool {} set {}: {usable} of {} drives reachable, {needed} needed to serve; waiting for {}",
                        pool_idx + 1,
                        set_idx + 1,
                        pool.set_size,
                        away.join(", ")
                    )));
                }
            }
            sets.push(Arc::new(ErasureSet {
                pool_idx,
                set_idx,
                disks,
                formats: expected,
                data_shards: pool.set_size - parity,
                parity_shards: parity,
                deadline: config.deadlines.remote().max_wait() + cairn_disk::REMOTE_MARGIN,
                call_deadline: config.deadlines.call,
            }));
        }
        built.push(Pool { sets });
        report.push(states);
    }

    let shared = Arc::new(Shared {
        locks: NsLocks::new(config.lock_timeout, options.locker),
        bucket_lock_sets: built[0].sets.len(),
        usage: crate::maintenance::usage::Usage::default(),
        heal: Arc::new(crate::maintenance::heal_queue::HealQueue::open(
            config.heal_queue_dir.as_deref(),
            config.heal_queue_max,
        )),
        placement: Placement::new(deployment_id),
        clock: Clock::new(),
        jobs_wake: tokio::sync::Notify::new(),
        write_budget: Arc::new(tokio::sync::Semaphore::new(
            (config.write_buffer / crate::data::write::BUDGET_UNIT).max(1),
        )),
        read_ahead: crate::data::list::ReadAhead::default(),
        buckets: Default::default(),
        config,
    });
    let layer = Arc::new(ObjectLayer {
        pools: built,
        shared,
        deployment_id,
    });
    Ok(Bootstrapped {
        layer,
        drives: report,
        fresh,
    })
}
