//! This node's place in a cluster: which node it is, its peers, the
//! internode server and client, and the quorum locker over the sets' nodes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use cairn_disk::{Deadlines, Disk, WatchedDisk};
use cairn_net::{
    ClusterKey, DistLocker, Faults, InternodeServer, LocalNode, LockNode, LockTable, Peer,
    RemoteDisk, VersionRange,
};
use cairn_object::quorum::{self, Strategy};
use cairn_s3::Credentials;

use crate::config::EnvSettings;
use crate::topology::{self, Endpoint};

/// How long a starting node waits for its peers to take its drives back.
const ANNOUNCE_WAIT: Duration = Duration::from_secs(12);

pub struct Cluster {
    /// This node, `host:port` as the drive URLs name it.
    pub this: String,
    /// Every node, in order of first appearance on the command line.
    pub nodes: Vec<String>,
    local: Arc<LocalNode>,
    peers: HashMap<String, Arc<Peer>>,
    table: Arc<LockTable>,
    pub locker: DistLocker,
    lease: Duration,
    /// Deadlines of calls to peers' drives.
    remote_deadlines: Deadlines,
}

impl Cluster {
    pub fn new(
        address: &str,
        nodes: Vec<String>,
        root: &Credentials,
        env: &EnvSettings,
        deadlines: Deadlines,
        faults: Arc<Faults>,
    ) -> Result<Cluster> {
        let mine: Vec<&String> = nodes
            .iter()
            .filter(|node| topology::is_local_node(node, address))
            .collect();
        let this = match mine.as_slice() {
            [one] => (*one).clone(),
            [] => bail!(
                "none of the drive URLs is on this node: --address {address} matches none of the nodes {}; start each node with --address HOST:PORT as its drive URLs name it",
                nodes.join(", ")
            ),
            many => bail!(
                "--address {address} matches several nodes of the drive URLs ({}); give each node its own host:port",
                many.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let secret = match &env.internode_secret {
            Some(secret) => secret.clone(),
            None => format!("{}\n{}", root.access_key, root.secret_key),
        };
        let versions = env
            .test_internode_versions
            .unwrap_or(VersionRange::THIS_RELEASE);
        if versions != VersionRange::THIS_RELEASE {
            tracing::warn!(
                "CAIRN_TEST_INTERNODE_VERSIONS: this node announces internode protocol {versions} instead of {}; for tests only",
                VersionRange::THIS_RELEASE
            );
        }
        if env.test_clock_skew_ms != 0 {
            tracing::warn!(
                skew_ms = env.test_clock_skew_ms,
                "CAIRN_TEST_CLOCK_SKEW_SECS: internode tokens carry a skewed clock; for tests only"
            );
        }
        let local = Arc::new(LocalNode::new(
            this.clone(),
            ClusterKey::new(&secret, env.test_clock_skew_ms),
            versions,
            faults,
            deadlines.remote().max_wait(),
        ));
        let peers = nodes
            .iter()
            .filter(|n| **n != this)
            .map(|n| (n.clone(), Peer::new(n.clone(), local.clone())))
            .collect();
        let table = Arc::new(LockTable::new());
        Ok(Cluster {
            this,
            nodes,
            local,
            peers,
            table,
            locker: DistLocker::new(Vec::new(), env.lock_lease),
            lease: env.lock_lease,
            remote_deadlines: deadlines.remote(),
        })
    }

    pub fn is_local(&self, node: &str) -> bool {
        node == self.this
    }

    /// The first node of the command line creates a new deployment; the
    /// others wait for its format, so that one cluster gets one identity.
    pub fn is_first_node(&self) -> bool {
        self.nodes.first() == Some(&self.this)
    }

    /// Tells the other nodes of changed buckets.
    pub fn notifier(&self) -> Arc<dyn cairn_object::ConfigNotifier> {
        Arc::new(Notifier {
            peers: self.peers(),
        })
    }

    /// The other nodes.
    pub fn peers(&self) -> Vec<Arc<Peer>> {
        let mut peers: Vec<Arc<Peer>> = self.peers.values().cloned().collect();
        peers.sort_by(|a, b| a.node.cmp(&b.node));
        peers
    }

    pub fn remote_disk(&self, node: &str, path: &str) -> Arc<dyn Disk> {
        let disk = Arc::new(RemoteDisk::new(self.peers[node].clone(), path.to_owned()));
        Arc::new(WatchedDisk::new(disk, self.remote_deadlines))
    }

    pub fn server(&self, drives: HashMap<String, Arc<dyn Disk>>) -> InternodeServer {
        InternodeServer::new(self.local.clone(), drives, self.table.clone())
    }

    /// Builds the locker once the sets are known: each set's locks live on
    /// the distinct nodes of its drives.
    pub fn build_locker(&mut self, pools: &[Vec<Endpoint>], set_sizes: &[usize]) {
        let sets = pools
            .iter()
            .zip(set_sizes)
            .map(|(endpoints, size)| {
                endpoints
                    .chunks(*size)
                    .map(|set| {
                        let mut nodes: Vec<String> = Vec::new();
                        for node in set.iter().filter_map(|e| e.node.clone()) {
                            if !nodes.contains(&node) {
                                nodes.push(node);
                            }
                        }
                        nodes
                            .into_iter()
                            .map(|node| match self.peers.get(&node) {
                                Some(peer) => LockNode::Remote(peer.clone()),
                                None => LockNode::Local(self.table.clone()),
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        self.locker = DistLocker::new(sets, self.lease);
    }

    /// Warns when a node holds more drives of a set than its parity: losing
    /// that one node would then stop the set.
    pub fn warn_uneven_sets(
        &self,
        pool_idx: usize,
        endpoints: &[Endpoint],
        set_size: usize,
        parity: Option<usize>,
    ) {
        let Ok(parity) = cairn_object::parity_for(set_size, parity) else {
            return;
        };
        for (set_idx, set) in endpoints.chunks(set_size).enumerate() {
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for node in set.iter().filter_map(|e| e.node.as_deref()) {
                *counts.entry(node).or_default() += 1;
            }
            for (node, count) in counts {
                if count > parity {
                    tracing::warn!(
                        "pool {} set {}: node {node} holds {count} of its {set_size} drives, more than its {parity} parity shards; losing that node stops the set. Spread each set over more nodes",
                        pool_idx + 1,
                        set_idx + 1
                    );
                }
            }
        }
    }

    /// Has every peer take this node's drives back into service before this
    /// node reports ready. A peer counts a restarted node's drives offline
    /// until its drive monitor's next round; a rolling restart that stops
    /// the next node at this node's "ready" would otherwise leave writes
    /// with fewer drives than the set's parity allows for (issue 4).
    /// Peers that are down or do not answer in time are logged and skipped.
    pub async fn announce(&self) {
        let mut calls = tokio::task::JoinSet::new();
        for peer in self.peers.values().cloned() {
            calls.spawn(async move {
                let answer = tokio::time::timeout(
                    ANNOUNCE_WAIT,
                    peer.call::<cairn_net::calls::Rejoin>(None, &()),
                )
                .await;
                (peer, answer)
            });
        }
        while let Some(joined) = calls.join_next().await {
            let Ok((peer, answer)) = joined else { continue };
            match answer {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    tracing::info!(node = %peer.node, %err, "could not tell node that this node is back; it will find out at its next drive check")
                }
                Err(_) => {
                    tracing::warn!(node = %peer.node, "node did not confirm within {ANNOUNCE_WAIT:?} that it uses this node's drives again")
                }
            }
        }
    }

    /// The hook a peer's `rejoin` runs here: forget that the peer was
    /// unreachable and bring its drives back now.
    pub fn rejoin_hook(&self, layer: Arc<cairn_object::ObjectLayer>) -> cairn_net::RejoinHook {
        let peers = self.peers.clone();
        Arc::new(move |node: String| {
            let layer = layer.clone();
            let peer = peers.get(&node).cloned();
            Box::pin(async move {
                let Some(peer) = peer else { return };
                peer.forget_failure();
                let prefix = format!("http://{node}/");
                cairn_object::reconnect_drives(&layer, |disk| disk.endpoint().starts_with(&prefix))
                    .await;
            })
        })
    }

    /// Each peer's state, for start-up logs.
    pub fn peer_report(&self) -> String {
        let mut parts = Vec::new();
        for node in &self.nodes {
            let Some(peer) = self.peers.get(node) else {
                continue;
            };
            parts.push(match (peer.version(), peer.failure()) {
                (Some(v), _) => format!("{node} connected (protocol version {v})"),
                (None, Some(why)) => format!("{node} {why}"),
                (None, None) => format!("{node} not contacted yet"),
            });
        }
        format!("nodes: {}", parts.join("; "))
    }

    pub fn describe(&self) -> String {
        let position = self.nodes.iter().position(|n| *n == self.this).unwrap_or(0) + 1;
        format!(
            "Cluster:     node {} ({position} of {}: {}); internode protocol {}",
            self.this,
            self.nodes.len(),
            self.nodes.join(", "),
            self.local.versions
        )
    }
}

/// Tells every peer that a bucket changed (`calls::BucketChanged`).
struct Notifier {
    peers: Vec<Arc<Peer>>,
}

impl cairn_object::ConfigNotifier for Notifier {
    fn bucket_changed<'a>(
        &'a self,
        bucket: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let args = cairn_net::proto::args::Bucket {
                bucket: bucket.to_owned(),
            };
            let notices = self
                .peers
                .iter()
                .map(|peer| peer.call::<cairn_net::calls::BucketChanged>(None, &args));
            let answers = quorum::call_many(notices, Strategy::all()).await;
            for (peer, answer) in self.peers.iter().zip(answers.results()) {
                if let Some(Err(err)) = answer {
                    tracing::debug!(node = %peer.node, bucket, %err, "a node missed a bucket's change notice; it catches up when it reconnects");
                }
            }
        })
    }
}
