//! [`DistLocker`]: namespace locks held on a quorum of an erasure set's
//! nodes, with leases refreshed in the background (docs/design.md section 4).
//!
//! A write lock needs `n/2 + 1` of the set's `n` nodes and a read lock
//! `n - n/2`, so a writer always overlaps every other writer and reader on
//! at least one node. Each set's locks go to that set's own nodes, so lock
//! traffic spreads over the cluster instead of funnelling through one set.
//! A grant is a lease: the refresher renews every held lock at a third of
//! its lease; a lock that is no longer held on a quorum is marked lost, and
//! its holder abandons its commit. A crashed holder's grants expire.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cairn_object::quorum::{self, Strategy};
use cairn_object::worker::{Step, Worker};
use cairn_object::{Error, HeldLock, Locker};
use futures::future::BoxFuture;
use tokio::sync::watch;
use uuid::Uuid;

use crate::calls;
use crate::client::{CallError, Peer};
use crate::locktable::LockTable;
use crate::proto::args;

/// Where one node's share of a lock lives.
#[derive(Clone)]
pub enum LockNode {
    Local(Arc<LockTable>),
    Remote(Arc<Peer>),
}

impl LockNode {
    async fn acquire(&self, a: &args::Lock) -> Result<bool, CallError> {
        match self {
            LockNode::Local(table) => {
                Ok(table.acquire(&a.resource, a.uid, a.write, Duration::from_millis(a.ttl_ms)))
            }
            LockNode::Remote(peer) => peer.call::<calls::LockAcquire>(None, a).await,
        }
    }

    async fn release(&self, resource: &str, uid: Uuid) {
        match self {
            LockNode::Local(table) => table.release(resource, uid),
            LockNode::Remote(peer) => {
                let a = args::Unlock {
                    resource: resource.to_owned(),
                    uid,
                };
                let _ = peer.call::<calls::LockRelease>(None, &a).await;
            }
        }
    }

    /// Refreshes several locks; one answer per lock, `false` when the node
    /// did not answer.
    async fn refresh(&self, locks: &[(String, Uuid)], ttl: Duration) -> Vec<bool> {
        match self {
            LockNode::Local(table) => locks
                .iter()
                .map(|(r, uid)| table.refresh(r, *uid, ttl))
                .collect(),
            LockNode::Remote(peer) => {
                let a = args::RefreshBatch {
                    locks: locks.to_vec(),
                    ttl_ms: ttl.as_millis() as u64,
                };
                match peer.call::<calls::LockRefreshBatch>(None, &a).await {
                    Ok(held) if held.len() == locks.len() => held,
                    _ => vec![false; locks.len()],
                }
            }
        }
    }

    fn key(&self) -> String {
        match self {
            LockNode::Local(_) => String::new(),
            LockNode::Remote(peer) => peer.node.clone(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Granted,
    /// Enough nodes answered, but another holder has the lock on these.
    Busy {
        refused: Vec<String>,
    },
    /// Too few nodes answered for a quorum.
    Unreachable {
        needed: usize,
        failed: Vec<String>,
    },
}

struct Held {
    resource: String,
    write: bool,
    nodes: Arc<Vec<LockNode>>,
    lost: Arc<AtomicBool>,
    /// Set when the lock is released: a node's grant that arrives later
    /// is given back by the task that asked for it.
    released: Arc<AtomicBool>,
}

struct Inner {
    /// Per pool, per set: the distinct nodes holding the set's drives.
    sets: Vec<Vec<Arc<Vec<LockNode>>>>,
    held: Mutex<HashMap<Uuid, Held>>,
    lease: Duration,
}

/// Takes locks on a quorum of a set's nodes.
#[derive(Clone)]
pub struct DistLocker {
    inner: Arc<Inner>,
}

/// A lock that took this long to take is logged, with the nodes that
/// refused it last.
const SLOW_LOCK: Duration = Duration::from_secs(1);

fn quorum(nodes: usize, write: bool) -> usize {
    if write {
        nodes / 2 + 1
    } else {
        nodes - nodes / 2
    }
}

impl DistLocker {
    /// `sets[pool][set]` lists the nodes of each set; `lease` is how long a
    /// grant lasts without refresh.
    pub fn new(sets: Vec<Vec<Vec<LockNode>>>, lease: Duration) -> DistLocker {
        DistLocker {
            inner: Arc::new(Inner {
                sets: sets
                    .into_iter()
                    .map(|pool| pool.into_iter().map(Arc::new).collect())
                    .collect(),
                held: Mutex::new(HashMap::new()),
                lease,
            }),
        }
    }

    /// The worker that refreshes held leases every third of the lease.
    pub fn refresher(&self) -> LockRefresher {
        LockRefresher {
            inner: Arc::downgrade(&self.inner),
            every: self.inner.lease / 3,
            rounds: 0,
            lost: 0,
        }
    }

    /// How many locks this node holds now.
    pub fn held(&self) -> usize {
        self.inner.held.lock().expect("held locks").len()
    }

    /// One attempt to take `resource` on a quorum of `nodes` under `uid`
    /// (a fresh one per attempt, so that a late grant of an earlier attempt
    /// can never be mistaken for one of this attempt). It returns once a
    /// quorum granted, or once so many refused that none can: a node that
    /// does not answer (frozen) costs no wait. Each grant request runs to its
    /// end in its own task; a grant that comes after `released` is set (the
    /// attempt failed, or the lock was released since) is given back there.
    async fn try_once(
        &self,
        nodes: &Arc<Vec<LockNode>>,
        resource: &str,
        uid: Uuid,
        write: bool,
        released: &Arc<AtomicBool>,
    ) -> Attempt {
        let a = Arc::new(args::Lock {
            resource: resource.to_owned(),
            uid,
            write,
            ttl_ms: self.inner.lease.as_millis() as u64,
        });
        let calls = nodes.iter().map(|node| {
            let (node, a, released) = (node.clone(), a.clone(), released.clone());
            let task = tokio::spawn(async move {
                let answer = node.acquire(&a).await;
                if matches!(answer, Ok(true)) && released.load(Ordering::Acquire) {
                    node.release(&a.resource, a.uid).await;
                }
                answer
            });
            async move {
                match task.await {
                    Ok(Ok(true)) => Ok(()),
                    Ok(Ok(false)) => Err(None),
                    Ok(Err(err)) => Err(Some(err.to_string())),
                    Err(err) => Err(Some(format!("lock task: {err}"))),
                }
            }
        });
        let needed = quorum(nodes.len(), write);
        let answers = quorum::call_many(calls, Strategy::quorum(needed)).await;
        if answers.ok() >= needed {
            return Attempt::Granted;
        }
        released.store(true, Ordering::Release);
        let mut failed: Vec<String> = Vec::new();
        let mut refused: Vec<String> = Vec::new();
        let mut give_back = Vec::new();
        for (node, answer) in nodes.iter().zip(answers.results()) {
            match answer {
                Some(Ok(())) => give_back.push(node.release(resource, uid)),
                Some(Err(Some(err))) => failed.push(format!("lock on node {}: {err}", node.key())),
                Some(Err(None)) => refused.push(match node {
                    LockNode::Local(_) => "this node".to_owned(),
                    LockNode::Remote(peer) => peer.node.clone(),
                }),
                None => {}
            }
        }
        // Give back partial grants so that others can make progress.
        quorum::call_many(
            give_back.into_iter().map(|release| async move {
                release.await;
                Ok::<(), ()>(())
            }),
            Strategy::all(),
        )
        .await;
        if nodes.len() - failed.len() < needed {
            // Waiting cannot help while too few nodes answer.
            return Attempt::Unreachable { needed, failed };
        }
        Attempt::Busy { refused }
    }

    async fn lock_inner(
        &self,
        pool: usize,
        set: usize,
        resource: &str,
        write: bool,
        timeout: Duration,
    ) -> cairn_object::Result<Box<dyn HeldLock>> {
        let nodes = self
            .inner
            .sets
            .get(pool)
            .and_then(|p| p.get(set))
            .cloned()
            .ok_or_else(|| Error::Internal(format!("no lock nodes for pool {pool} set {set}")))?;
        let began = Instant::now();
        let deadline = began + timeout;
        let mut backoff = Duration::from_millis(2);
        let mut refused_by = Vec::new();
        let mut tries = 0u64;
        loop {
            tries += 1;
            let uid = Uuid::new_v4();
            let released = Arc::new(AtomicBool::new(false));
            let attempt = self.try_once(&nodes, resource, uid, write, &released).await;
            if let Attempt::Unreachable { needed, failed } = attempt {
                let ok = nodes.len() - failed.len();
                return Err(if write {
                    Error::WriteQuorum {
                        ok,
                        needed,
                        errors: failed,
                    }
                } else {
                    Error::ReadQuorum {
                        ok,
                        needed,
                        errors: failed,
                    }
                });
            }
            if let Attempt::Busy { refused } = attempt {
                refused_by = refused;
            } else {
                if began.elapsed() >= SLOW_LOCK {
                    tracing::warn!(
                        resource, write, attempts = tries, waited = ?began.elapsed(),
                        last_refused_by = ?refused_by,
                        "a namespace lock was slow to take: another holder kept it"
                    );
                }
                let lost = Arc::new(AtomicBool::new(false));
                self.inner.held.lock().expect("held locks").insert(
                    uid,
                    Held {
                        resource: resource.to_owned(),
                        write,
                        nodes: nodes.clone(),
                        lost: lost.clone(),
                        released,
                    },
                );
                return Ok(Box::new(DistGuard {
                    inner: self.inner.clone(),
                    uid,
                    lost,
                }));
            }
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(
                    resource, write, attempts = tries, last_refused_by = ?refused_by,
                    "gave up taking a namespace lock: another holder kept it"
                );
                return Err(Error::LockTimeout {
                    resource: resource.to_owned(),
                });
            }
            // Jittered exponential backoff, so that contenders spread out.
            let jitter = Duration::from_micros(
                u64::from(uid.as_bytes()[0]) * 20 + (now.elapsed().subsec_nanos() % 1000) as u64,
            );
            tokio::time::sleep((backoff + jitter).min(deadline - now)).await;
            backoff = (backoff * 2).min(Duration::from_millis(250));
        }
    }
}

impl Locker for DistLocker {
    fn lock<'a>(
        &'a self,
        pool: usize,
        set: usize,
        resource: &'a str,
        write: bool,
        timeout: Duration,
    ) -> BoxFuture<'a, cairn_object::Result<Box<dyn HeldLock>>> {
        Box::pin(self.lock_inner(pool, set, resource, write, timeout))
    }
}

struct DistGuard {
    inner: Arc<Inner>,
    uid: Uuid,
    lost: Arc<AtomicBool>,
}

impl HeldLock for DistGuard {
    fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }
}

impl Drop for DistGuard {
    fn drop(&mut self) {
        let Some(held) = self
            .inner
            .held
            .lock()
            .expect("held locks")
            .remove(&self.uid)
        else {
            return;
        };
        let uid = self.uid;
        held.released.store(true, Ordering::Release);
        let release = async move {
            let releases = held.nodes.iter().map(|node| async {
                node.release(&held.resource, uid).await;
                Ok::<(), ()>(())
            });
            quorum::call_many(releases, Strategy::all()).await;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(release);
        }
    }
}

/// Refreshes the leases of the locks this node holds, every third of the
/// lease; a lock no longer held on a quorum is marked lost.
pub struct LockRefresher {
    inner: Weak<Inner>,
    every: Duration,
    rounds: u64,
    lost: u64,
}

#[async_trait]
impl Worker for LockRefresher {
    fn name(&self) -> &'static str {
        "lock-refresher"
    }

    fn progress(&self) -> Vec<(&'static str, u64)> {
        let held = self
            .inner
            .upgrade()
            .map_or(0, |inner| inner.held.lock().expect("held locks").len());
        vec![
            ("rounds", self.rounds),
            ("locks_held", held as u64),
            ("locks_lost", self.lost),
        ]
    }

    async fn work(&mut self, _stop: &watch::Receiver<bool>) -> Result<Step, String> {
        let Some(inner) = self.inner.upgrade() else {
            return Ok(Step::Done);
        };
        self.lost += refresh_all(&inner).await;
        self.rounds += 1;
        Ok(Step::Idle)
    }

    async fn wait_for_work(&mut self) {
        tokio::time::sleep(self.every).await
    }
}

/// Refreshes every held lock; returns how many were lost.
async fn refresh_all(inner: &Inner) -> u64 {
    // Group the held locks by node.
    let snapshot: Vec<(Uuid, String, bool, Arc<Vec<LockNode>>)> = inner
        .held
        .lock()
        .expect("held locks")
        .iter()
        .filter(|(_, h)| !h.lost.load(Ordering::Relaxed))
        .map(|(uid, h)| (*uid, h.resource.clone(), h.write, h.nodes.clone()))
        .collect();
    if snapshot.is_empty() {
        return 0;
    }
    let mut by_node: HashMap<String, (LockNode, Vec<(String, Uuid)>)> = HashMap::new();
    for (uid, resource, _, nodes) in &snapshot {
        for node in nodes.iter() {
            by_node
                .entry(node.key())
                .or_insert_with(|| (node.clone(), Vec::new()))
                .1
                .push((resource.clone(), *uid));
        }
    }
    let refreshes = by_node.into_values().map(|(node, locks)| async move {
        let held = node.refresh(&locks, inner.lease).await;
        Ok::<_, ()>(locks.into_iter().zip(held).collect::<Vec<_>>())
    });
    // A node that does not answer within a third of the lease counts as
    // not holding: the next round comes then.
    let answers =
        quorum::call_many(refreshes, Strategy::all().with_deadline(inner.lease / 3)).await;
    let mut still: HashMap<Uuid, usize> = HashMap::new();
    for ((_, uid), held) in answers
        .into_options()
        .into_iter()
        .flatten()
        .flatten()
        .flatten()
    {
        if held {
            *still.entry(uid).or_default() += 1;
        }
    }
    let held = inner.held.lock().expect("held locks");
    let mut lost = 0;
    for (uid, resource, write, nodes) in snapshot {
        let count = still.get(&uid).copied().unwrap_or(0);
        if count < quorum(nodes.len(), write)
            && let Some(h) = held.get(&uid)
        {
            lost += 1;
            h.lost.store(true, Ordering::Relaxed);
            tracing::warn!(
                %resource, held_on = count, nodes = nodes.len(),
                "lost a namespace lock: its lease could not be refreshed on a quorum of nodes; the operation holding it is abandoned"
            );
        }
    }
    lost
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_quorums_overlap() {
        for n in 1..=16 {
            let (w, r) = (quorum(n, true), quorum(n, false));
            assert!(w + w > n, "two writers on {n} nodes");
            assert!(w + r > n, "a writer and a reader on {n} nodes");
            assert!(r <= n && w <= n);
        }
        assert_eq!((quorum(4, true), quorum(4, false)), (3, 2));
    }

    #[tokio::test]
    async fn local_tables_serialize_writers_and_free_on_drop() {
        let tables: Vec<Arc<LockTable>> = (0..4).map(|_| Arc::new(LockTable::new())).collect();
        let nodes: Vec<LockNode> = tables.iter().cloned().map(LockNode::Local).collect();
        let locker = DistLocker::new(vec![vec![nodes]], Duration::from_secs(30));
        let first = locker
            .lock(0, 0, "b/k", true, Duration::from_millis(200))
            .await
            .unwrap();
        let second = locker
            .lock(0, 0, "b/k", true, Duration::from_millis(100))
            .await;
        assert!(matches!(second, Err(Error::LockTimeout { .. })));
        let reader = locker
            .lock(0, 0, "b/k", false, Duration::from_millis(100))
            .await;
        assert!(reader.is_err());
        drop(first);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let r1 = locker
            .lock(0, 0, "b/k", false, Duration::from_millis(200))
            .await
            .unwrap();
        let r2 = locker
            .lock(0, 0, "b/k", false, Duration::from_millis(200))
            .await
            .unwrap();
        assert!(!r1.is_lost() && !r2.is_lost());
        drop((r1, r2));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(locker.held(), 0);
        assert!(tables.iter().all(|t| t.sweep() == 0));
    }

    #[tokio::test]
    async fn a_lock_whose_lease_lapses_on_a_quorum_is_lost() {
        let tables: Vec<Arc<LockTable>> = (0..3).map(|_| Arc::new(LockTable::new())).collect();
        let nodes: Vec<LockNode> = tables.iter().cloned().map(LockNode::Local).collect();
        let locker = DistLocker::new(vec![vec![nodes]], Duration::from_millis(300));
        let guard = locker
            .lock(0, 0, "b/k", true, Duration::from_millis(200))
            .await
            .unwrap();
        refresh_all(&locker.inner).await;
        assert!(!guard.is_lost());
        // Two of three nodes forget the grant (as after a restart).
        for table in &tables[..2] {
            table.forget_all();
        }
        refresh_all(&locker.inner).await;
        assert!(guard.is_lost());
    }
}
