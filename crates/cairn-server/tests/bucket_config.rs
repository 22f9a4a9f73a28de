//! The bucket-configuration service (issue 26): a change made through one
//! node is in force on every node within a second, not after a cache
//! expiry; a node that missed the notice catches up when it returns.
//! Shown with CORS on a 4-node cluster.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use common::cluster::TestCluster;
use common::{raw_request, sdk_status};

const BUCKET: &str = "configured";

/// The status of a CORS preflight from `origin` for a GET, through node `idx`.
fn preflight(cluster: &TestCluster, idx: usize, origin: &str) -> u16 {
    raw_request(
        &cluster.nodes[idx].addr,
        "OPTIONS",
        &format!("/{BUCKET}/page.html"),
        &[
            ("origin", origin.to_owned()),
            ("access-control-request-method", "GET".to_owned()),
        ],
        b"",
    )
    .map(|r| r.status)
    .unwrap_or(0)
}

async fn allow_only(client: &Client, origin: &str) {
    common::allow_origin(client, BUCKET, origin).await;
}

/// Waits up to `within` for every node in `nodes` to answer preflights as
/// `expect` says (origin, status); returns how long it took.
fn in_force(
    cluster: &TestCluster,
    nodes: &[usize],
    expect: &[(&str, u16)],
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let seen: Vec<(usize, &str, u16)> = nodes
            .iter()
            .flat_map(|&idx| {
                expect
                    .iter()
                    .map(move |(origin, _)| (idx, *origin, preflight(cluster, idx, origin)))
            })
            .collect();
        let all = seen.iter().all(|(_, origin, status)| {
            expect.iter().any(|(o, want)| o == origin && want == status)
        });
        if all {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "not in force within {within:?}: (node, origin, status) {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issue_26_a_bucket_configuration_change_is_in_force_on_every_node_within_a_second() {
    let cluster = tokio::task::block_in_place(|| TestCluster::start(4, 1, &[]));
    let clients: Vec<Client> = (0..4).map(|i| cluster.client(i)).collect();
    clients[0]
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let all = [0, 1, 2, 3];
    let second = Duration::from_secs(1);
    let (a, b, c) = (
        "https://a.example",
        "https://b.example",
        "https://c.example",
    );
    // Every node has read the bucket's state: no rules, preflights refused.
    tokio::task::block_in_place(|| in_force(&cluster, &all, &[(a, 403)], second));

    allow_only(&clients[0], a).await;
    let took =
        tokio::task::block_in_place(|| in_force(&cluster, &all, &[(a, 200), (b, 403)], second));
    println!("issue 26: rules set through node 1 in force everywhere after {took:?}");

    allow_only(&clients[2], b).await;
    tokio::task::block_in_place(|| in_force(&cluster, &all, &[(a, 403), (b, 200)], second));

    clients[3]
        .delete_bucket_cors()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    tokio::task::block_in_place(|| in_force(&cluster, &all, &[(a, 403), (b, 403)], second));

    // A node that was frozen when the change was made catches up when it
    // returns: its peers connect to it anew and it reads the state again.
    tokio::task::block_in_place(|| cluster.freeze(1));
    let began = Instant::now();
    allow_only(&clients[0], c).await;
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "a frozen node held up the change for {:?}",
        began.elapsed()
    );
    tokio::task::block_in_place(|| {
        in_force(&cluster, &[0, 2, 3], &[(c, 200)], second);
        cluster.thaw(1);
        let took = in_force(&cluster, &[1], &[(c, 200)], Duration::from_secs(20));
        println!("issue 26: the thawed node caught up after {took:?}");
    });

    // Deleting the bucket through one node: another refuses a small PUT at
    // once, its copy of the bucket dropped by the notice.
    clients[0]
        .delete_bucket_cors()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    clients[0]
        .delete_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let refused = clients[3]
        .put_object()
        .bucket(BUCKET)
        .key("small")
        .body(b"tiny".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_status(&refused), Some(404));
}
