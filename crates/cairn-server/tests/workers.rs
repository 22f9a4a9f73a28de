//! Background workers (issue 26): every node's workers are listed by the
//! admin API and `cairn admin workers` on any node, with their state and
//! progress, and can be paused and resumed on every node.

mod common;

use std::time::Duration;

use common::cluster::TestCluster;
use common::{SECRET_KEY, cairn_admin, wait_until};
use serde_json::Value;

/// The workers every node runs; a cluster node runs the lock refresher too.
const WORKERS: [&str; 6] = [
    "drive-monitor",
    "healer",
    "heal-jobs",
    "scanner",
    "janitor",
    "stale-uploads",
];

fn workers_json(endpoint: &str) -> Value {
    let (code, out, err) = cairn_admin(endpoint, SECRET_KEY, &["workers", "--json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// `node`'s worker `name` in a `workers --json` answer.
fn worker<'a>(value: &'a Value, node: &str, name: &str) -> &'a Value {
    let node = value["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == node)
        .unwrap_or_else(|| panic!("no node {node}: {value}"));
    node["workers"]
        .as_array()
        .unwrap_or_else(|| panic!("{node}"))
        .iter()
        .find(|w| w["name"] == name)
        .unwrap_or_else(|| panic!("no worker {name}: {node}"))
}

#[test]
fn issue_26_every_nodes_workers_are_listed_paused_and_resumed() {
    let mut cluster = TestCluster::start(2, 2, &[("CAIRN_DRIVE_CHECK_INTERVAL", "200ms")]);
    let endpoints: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("http://{}", n.addr))
        .collect();
    let nodes: Vec<String> = cluster.nodes.iter().map(|n| n.addr.clone()).collect();

    // Asked through node 1, both nodes answer with all their workers.
    let listed = workers_json(&endpoints[0]);
    for node in &nodes {
        for name in WORKERS.iter().chain(&["lock-refresher"]) {
            let w = worker(&listed, node, name);
            let state = w["state"].as_str().unwrap();
            assert!(["idle", "running"].contains(&state), "{node} {name}: {w}");
            assert_eq!(w["error"], Value::Null, "{node} {name}: {w}");
        }
    }
    // The drive monitor works: its rounds go up on both nodes.
    assert!(wait_until(Duration::from_secs(10), || {
        let listed = workers_json(&endpoints[1]);
        nodes.iter().all(|node| {
            worker(&listed, node, "drive-monitor")["progress"]["rounds"]
                .as_u64()
                .unwrap()
                >= 3
        })
    }));

    // Paused through node 2: paused on both nodes.
    let (code, out, err) = cairn_admin(&endpoints[1], SECRET_KEY, &["workers", "pause", "scanner"]);
    assert_eq!(code, 0, "{err}");
    for node in &nodes {
        assert!(out.contains(&format!("{node}: paused")), "{out}");
    }
    assert!(wait_until(Duration::from_secs(10), || {
        let listed = workers_json(&endpoints[0]);
        nodes
            .iter()
            .all(|node| worker(&listed, node, "scanner")["state"] == "paused")
    }));
    let text = {
        let (code, out, err) = cairn_admin(&endpoints[0], SECRET_KEY, &["workers"]);
        assert_eq!(code, 0, "{err}");
        out
    };
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("scanner") && l.contains("paused")),
        "{text}"
    );
    let (code, _, err) = cairn_admin(&endpoints[0], SECRET_KEY, &["workers", "resume", "scanner"]);
    assert_eq!(code, 0, "{err}");
    assert!(wait_until(Duration::from_secs(10), || {
        let listed = workers_json(&endpoints[1]);
        nodes
            .iter()
            .all(|node| worker(&listed, node, "scanner")["state"] == "idle")
    }));

    // A worker no node has is refused, naming it.
    let (code, _, err) = cairn_admin(&endpoints[0], SECRET_KEY, &["workers", "pause", "no-such"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("InvalidArgument") && err.contains("no-such"),
        "{err}"
    );

    // A node that does not answer is listed as such, not left out.
    cluster.kill(1);
    let listed = workers_json(&endpoints[0]);
    let away = listed["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == nodes[1])
        .unwrap();
    assert!(away["error"].as_str().is_some(), "{away}");
}
