//! Distributed mode (issue 4): real `cairn server` processes on 127.0.0.1,
//! 4 nodes with 2 drives each, one erasure set of 8 drives with 4 parity
//! (write quorum 5, read quorum 4).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use common::cluster::{Balancer, TestCluster};
use common::{sdk_status, test_data, wait_until};

const BUCKET: &str = "cluster";

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

async fn put(client: &Client, key: &str, body: Vec<u8>) -> Result<(), String> {
    client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("put {key}: {:?} {e}", sdk_status(&e)))
}

async fn get(client: &Client, key: &str) -> Result<Option<Vec<u8>>, String> {
    match client.get_object().bucket(BUCKET).key(key).send().await {
        Ok(out) => Ok(Some(
            out.body
                .collect()
                .await
                .map_err(|e| format!("get {key} body: {e}"))?
                .to_vec(),
        )),
        Err(err) if sdk_status(&err) == Some(404) => Ok(None),
        Err(err) => Err(format!("get {key}: {:?} {err}", sdk_status(&err))),
    }
}

/// The body a (key, seed) pair stands for.
fn body(seed: u64) -> Vec<u8> {
    let sizes = [1 << 10, 200 << 10, 1536 << 10];
    test_data(sizes[(seed % 3) as usize], seed)
}

/// What the load knows about each key: the states it may be in. One state
/// after an acknowledged operation; two while an operation failed without
/// an answer (it may or may not have happened).
#[derive(Default)]
struct Ledger {
    keys: Mutex<HashMap<String, Vec<Option<u64>>>>,
    ops: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl Ledger {
    fn acked(&self, key: &str, state: Option<u64>) {
        self.keys
            .lock()
            .unwrap()
            .insert(key.to_owned(), vec![state]);
    }

    fn unknown(&self, key: &str, attempted: Option<u64>, error: String) {
        let mut keys = self.keys.lock().unwrap();
        let states = keys.entry(key.to_owned()).or_insert_with(|| vec![None]);
        states.push(attempted);
        self.failures.lock().unwrap().push(error);
    }

    fn states(&self, key: &str) -> Vec<Option<u64>> {
        self.keys
            .lock()
            .unwrap()
            .get(key)
            .cloned()
            .unwrap_or_else(|| vec![None])
    }

    fn failures(&self) -> Vec<String> {
        self.failures.lock().unwrap().clone()
    }
}

/// One load worker: PUT, GET, LIST and DELETE over its own keys, checking
/// every answer against the ledger, until `stop` or its bounds.
async fn worker(
    client: Client,
    id: usize,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
    logs: Vec<PathBuf>,
) {
    let started = Instant::now();
    let mut seed = (id as u64) << 32;
    for op in 0..5_000u64 {
        if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(240) {
            break;
        }
        let key = format!("w{id}/k{}", op % 12);
        seed += 1;
        match op % 10 {
            0..=4 => match put(&client, &key, body(seed)).await {
                Ok(()) => ledger.acked(&key, Some(seed)),
                Err(e) => ledger.unknown(&key, Some(seed), e),
            },
            5..=7 => match get(&client, &key).await {
                Ok(found) => {
                    let states = ledger.states(&key);
                    let ok = states.iter().any(|s| match (s, &found) {
                        (None, None) => true,
                        (Some(seed), Some(data)) => *data == body(*seed),
                        _ => false,
                    });
                    assert!(
                        ok,
                        "GET {key} returned something no acknowledged state explains"
                    );
                }
                Err(e) => ledger
                    .failures
                    .lock()
                    .unwrap()
                    .push(format!("{e}\n{}", log_lines_naming(&logs, &key))),
            },
            8 => {
                let listed = client
                    .list_objects_v2()
                    .bucket(BUCKET)
                    .prefix(format!("w{id}/"))
                    .send()
                    .await;
                match listed {
                    Ok(out) => {
                        let names: Vec<String> = out
                            .contents()
                            .iter()
                            .filter_map(|o| o.key().map(str::to_owned))
                            .collect();
                        let wrong: Vec<(String, Option<u64>)> = ledger
                            .keys
                            .lock()
                            .unwrap()
                            .iter()
                            .filter(|(key, states)| {
                                key.starts_with(&format!("w{id}/"))
                                    && states.len() == 1
                                    && names.contains(key) != states[0].is_some()
                            })
                            .map(|(key, states)| (key.clone(), states[0]))
                            .collect();
                        if let Some((key, state)) = wrong.first() {
                            let again = get(&client, key).await;
                            panic!(
                                "LIST after write disagrees on {key}: acknowledged {state:?}, \
                                 listed {}; a GET now finds {:?}\n{}",
                                !state.is_some(),
                                again.map(|found| found.map(|d| d.len())),
                                log_lines_naming(&logs, key)
                            );
                        }
                    }
                    Err(e) => ledger.failures.lock().unwrap().push(format!(
                        "list: {:?} {e}\n{}",
                        sdk_status(&e),
                        log_lines_naming(&logs, "storage unavailable")
                    )),
                }
            }
            _ => match client.delete_object().bucket(BUCKET).key(&key).send().await {
                Ok(_) => ledger.acked(&key, None),
                Err(e) => ledger.unknown(&key, None, format!("delete {key}: {e}")),
            },
        }
        ledger.ops.fetch_add(1, Ordering::Relaxed);
    }
}

/// The lines of the nodes' logs that name `key` (and no longer key), to
/// explain a failure.
fn log_lines_naming(logs: &[PathBuf], key: &str) -> String {
    let mut out = String::new();
    for (idx, log) in logs.iter().enumerate() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines() {
            let named = line
                .match_indices(key)
                .any(|(at, _)| !line[at + key.len()..].starts_with(|c: char| c.is_ascii_digit()));
            if named {
                out.push_str(&format!("node {}: {line}\n", idx + 1));
            }
        }
    }
    out
}

/// Every key reads back as one of its possible states through `client`.
async fn verify_all(client: &Client, ledger: &Ledger) -> usize {
    let keys: Vec<(String, Vec<Option<u64>>)> = ledger
        .keys
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (key, states) in &keys {
        let found = get(client, key)
            .await
            .unwrap_or_else(|e| panic!("final read: {e}"));
        let ok = states.iter().any(|s| match (s, &found) {
            (None, None) => true,
            (Some(seed), Some(data)) => *data == body(*seed),
            _ => false,
        });
        assert!(
            ok,
            "{key}: the stored object matches no acknowledged state ({} bytes)",
            found.map_or(0, |d| d.len())
        );
    }
    keys.len()
}

fn start_cluster(env: &[(&str, &str)]) -> TestCluster {
    TestCluster::start(4, 2, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issue_4_cluster_forms_and_every_node_serves_the_same_data() {
    let cluster = blocking(|| start_cluster(&[]));
    for idx in 0..4 {
        let log = cluster.log_text(idx);
        assert!(!log.contains("ERROR"), "node {}: {log}", idx + 1);
    }
    let first = cluster.client(0);
    first.create_bucket().bucket(BUCKET).send().await.unwrap();
    for (n, size) in [0usize, 1000, 300 << 10, 3 << 20].into_iter().enumerate() {
        let data = test_data(size, n as u64);
        put(&cluster.client(n % 4), &format!("obj{n}"), data.clone())
            .await
            .unwrap();
        for idx in 0..4 {
            let got = get(&cluster.client(idx), &format!("obj{n}")).await.unwrap();
            assert_eq!(
                got.as_deref(),
                Some(&data[..]),
                "obj{n} through node {}",
                idx + 1
            );
        }
    }
    // A multipart upload whose parts go through different nodes.
    let upload = cluster
        .client(1)
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap();
    let mut parts = Vec::new();
    let part_data: Vec<Vec<u8>> = (0..3)
        .map(|i| test_data(if i < 2 { 5 << 20 } else { 1 << 20 }, 100 + i))
        .collect();
    for (i, data) in part_data.iter().enumerate() {
        let out = cluster
            .client(i + 1)
            .upload_part()
            .bucket(BUCKET)
            .key("mp")
            .upload_id(upload_id)
            .part_number(i as i32 + 1)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(i as i32 + 1)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    cluster
        .client(3)
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(upload_id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let whole: Vec<u8> = part_data.concat();
    assert_eq!(
        get(&cluster.client(0), "mp").await.unwrap().as_deref(),
        Some(&whole[..])
    );
    let listed = cluster
        .client(2)
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents().len(), 5);
    // Every node holds shards: the set spans all nodes.
    for node in &cluster.nodes {
        for drive in &node.drives {
            assert!(
                drive.join(".cairn.sys/format.json").exists(),
                "{} formatted",
                drive.display()
            );
        }
    }
    for idx in 0..4 {
        assert_eq!(cluster.health(idx, "cluster"), 200);
        assert_eq!(cluster.health(idx, "cluster/read"), 200);
    }
    // Healing on demand works the same (issue 5): a heal started through
    // node 2 runs on whichever node takes it, and every node shows it.
    let endpoint = |idx: usize| format!("http://{}", cluster.nodes[idx].addr);
    let (code, stdout, stderr) = blocking(move || {
        common::cairn_admin(&endpoint(1), common::SECRET_KEY, &["heal", "start", BUCKET])
    });
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("100% 5/5 objects"), "{stdout}");
    for idx in 0..4 {
        let endpoint = format!("http://{}", cluster.nodes[idx].addr);
        let (code, stdout, stderr) = blocking(move || {
            common::cairn_admin(&endpoint, common::SECRET_KEY, &["heal", "status", "--json"])
        });
        assert_eq!(code, 0, "{stderr}");
        let status: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(
            status["heals"][0]["done"],
            true,
            "node {}: {stdout}",
            idx + 1
        );
        assert_eq!(
            status["heals"][0]["objects"],
            5,
            "node {}: {stdout}",
            idx + 1
        );
        assert_eq!(status["sets"][0]["online"], 8, "node {}: {stdout}", idx + 1);
    }
}

/// A node lets small PUTs skip the bucket lookup for buckets it has seen
/// exist (issue 6). A bucket deleted through another node is still refused
/// at any size, and what was refused leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issue_6_a_bucket_deleted_through_another_node_refuses_small_puts() {
    let cluster = blocking(|| start_cluster(&[]));
    let (first, second) = (cluster.client(0), cluster.client(1));
    first.create_bucket().bucket(BUCKET).send().await.unwrap();
    // Through the second node, which now knows the bucket.
    for _ in 0..2 {
        put(&second, "k", b"tiny".to_vec()).await.unwrap();
    }
    first
        .delete_object()
        .bucket(BUCKET)
        .key("k")
        .send()
        .await
        .unwrap();
    first.delete_bucket().bucket(BUCKET).send().await.unwrap();
    for size in [4, 4096, 100_000, 300_000] {
        assert_eq!(
            common::try_put_bytes(&second, BUCKET, "k", &test_data(size, 1)).await,
            Err((Some(404), Some("NoSuchBucket".to_owned()))),
            "PUT of {size} bytes through the node that knew the bucket"
        );
    }
    first.create_bucket().bucket(BUCKET).send().await.unwrap();
    for idx in 0..4 {
        assert_eq!(get(&cluster.client(idx), "k").await.unwrap(), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issue_4_killing_a_node_under_load_loses_nothing() {
    let mut cluster = blocking(|| start_cluster(&[]));
    cluster
        .client(0)
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let ledger = Arc::new(Ledger::default());
    let stop = Arc::new(AtomicBool::new(false));
    // The load goes through the three nodes that stay up.
    let workers: Vec<_> = (0..6)
        .map(|w| {
            tokio::spawn(worker(
                cluster.client(w % 3),
                w,
                ledger.clone(),
                stop.clone(),
                cluster.nodes.iter().map(|n| n.log.clone()).collect(),
            ))
        })
        .collect();
    blocking(|| {
        assert!(wait_until(Duration::from_secs(60), || ledger
            .ops
            .load(Ordering::Relaxed)
            >= 150))
    });
    let before = ledger.ops.load(Ordering::Relaxed);
    blocking(|| cluster.kill(3));
    blocking(|| {
        assert!(wait_until(Duration::from_secs(90), || ledger
            .ops
            .load(Ordering::Relaxed)
            >= before + 300))
    });
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(
        ledger.failures(),
        Vec::<String>::new(),
        "operations failed after the kill"
    );
    for idx in 0..3 {
        verify_all(&cluster.client(idx), &ledger).await;
    }
    assert_eq!(
        cluster.health(0, "cluster"),
        200,
        "6 of 8 drives keep write quorum"
    );
    // The killed node comes back and serves the same data.
    blocking(|| cluster.start_node(3));
    let keys = verify_all(&cluster.client(3), &ledger).await;
    assert!(keys >= 60, "{keys} keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issue_4_parity_drives_gone_reads_exact_one_more_refuses_writes() {
    let cluster =
        blocking(|| start_cluster(&[("CAIRN_LOG", "info,s3s=off,cairn_object::get=error")]));
    let client = cluster.client(0);
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    let objects: Vec<(String, Vec<u8>)> = (0..12u64).map(|i| (format!("o{i}"), body(i))).collect();
    for (key, data) in &objects {
        put(&client, key, data.clone()).await.unwrap();
    }
    // Take drives away one by one, on nodes other than the one we talk to.
    let gone: Vec<std::path::PathBuf> = [(1, 0), (2, 0), (3, 0), (1, 1), (2, 1)]
        .iter()
        .map(|(n, d)| cluster.nodes[*n].drives[*d].clone())
        .collect();
    let take = |idx: usize| {
        let path = &gone[idx];
        std::fs::rename(path, path.with_extension("gone")).unwrap();
    };
    let fresh = cluster.client(0);
    let no_retry = common::client_for(
        &format!("http://{}", cluster.nodes[0].addr),
        common::ACCESS_KEY,
        common::SECRET_KEY,
    );
    for idx in 0..3 {
        take(idx);
    }
    // 3 gone: 5 left, still write quorum.
    for (key, data) in &objects {
        assert_eq!(get(&fresh, key).await.unwrap().as_deref(), Some(&data[..]));
    }
    put(&fresh, "with-3-gone", body(50)).await.unwrap();
    blocking(|| {
        assert!(wait_until(Duration::from_secs(10), || cluster
            .health(0, "cluster")
            == 200))
    });
    // 4 gone (the parity): every object still reads byte-exact.
    take(3);
    for (key, data) in &objects {
        assert_eq!(
            get(&fresh, key).await.unwrap().as_deref(),
            Some(&data[..]),
            "{key} with parity-many drives gone"
        );
    }
    assert_eq!(
        get(&fresh, "with-3-gone").await.unwrap().as_deref(),
        Some(&body(50)[..])
    );
    blocking(|| {
        assert!(wait_until(Duration::from_secs(10), || cluster
            .health(0, "cluster/read")
            == 200))
    });
    // One more: writes are refused with 503 and the cluster health says 503.
    take(4);
    let err = no_retry
        .put_object()
        .bucket(BUCKET)
        .key("refused")
        .body(ByteStream::from(vec![1u8; 1000]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_status(&err), Some(503), "{err:?}");
    blocking(|| {
        assert!(wait_until(Duration::from_secs(10), || cluster
            .health(0, "cluster")
            == 503));
        assert!(wait_until(Duration::from_secs(10), || cluster
            .health(0, "cluster/read")
            == 503));
    });
    // The drives return: everything is there, nothing half-written is.
    for path in &gone {
        std::fs::rename(path.with_extension("gone"), path).unwrap();
    }
    blocking(|| {
        assert!(wait_until(Duration::from_secs(20), || cluster
            .health(0, "cluster")
            == 200))
    });
    for (key, data) in &objects {
        assert_eq!(get(&fresh, key).await.unwrap().as_deref(), Some(&data[..]));
    }
    assert_eq!(get(&fresh, "refused").await.unwrap(), None);
}

/// Restarts every node in turn under load through a balancer; returns
/// after each node serves again and the cluster is whole.
fn restart_each(cluster: &mut TestCluster, env_for: impl Fn(usize) -> Vec<(String, String)>) {
    for idx in 0..cluster.nodes.len() {
        cluster.stop(idx);
        std::thread::sleep(Duration::from_millis(300));
        cluster.nodes[idx].env = env_for(idx);
        cluster.start_node(idx);
        assert!(
            wait_until(Duration::from_secs(30), || (0..4)
                .all(|n| cluster.health(n, "cluster") == 200)),
            "cluster not whole after restarting node {}",
            idx + 1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issue_4_rolling_restart_and_mixed_versions_fail_no_operation() {
    let mut cluster = blocking(|| start_cluster(&[]));
    let balancer = Balancer::start(cluster.nodes.iter().map(|n| n.addr.clone()).collect());
    let client = common::client_for(&balancer.endpoint(), common::ACCESS_KEY, common::SECRET_KEY);
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    let ledger = Arc::new(Ledger::default());
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let logs = cluster.nodes.iter().map(|n| n.log.clone()).collect();
            tokio::spawn(worker(
                client.clone(),
                w,
                ledger.clone(),
                stop.clone(),
                logs,
            ))
        })
        .collect();
    blocking(|| {
        assert!(wait_until(Duration::from_secs(60), || ledger
            .ops
            .load(Ordering::Relaxed)
            >= 100))
    });
    blocking(|| restart_each(&mut cluster, |_| Vec::new()));
    let after_first = ledger.ops.load(Ordering::Relaxed);
    // Again, with node 2 coming back one protocol version behind.
    blocking(|| {
        restart_each(&mut cluster, |idx| {
            if idx == 1 {
                vec![("CAIRN_TEST_INTERNODE_VERSIONS".to_owned(), "2-2".to_owned())]
            } else {
                Vec::new()
            }
        })
    });
    blocking(|| {
        assert!(wait_until(Duration::from_secs(60), || ledger
            .ops
            .load(Ordering::Relaxed)
            >= after_first + 100))
    });
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(
        ledger.failures(),
        Vec::<String>::new(),
        "operations failed during the rolling restarts"
    );
    // Node 2 speaks version 2 (the previous release's) and its peers use it with it.
    assert!(
        cluster.log_text(0).contains("connected to node node="),
        "{}",
        cluster.log_text(0)
    );
    assert!(
        cluster.log_text(1).contains("version 2 instead"),
        "{}",
        cluster.log_text(1)
    );
    for idx in 0..4 {
        verify_all(&cluster.client(idx), &ledger).await;
        assert_eq!(cluster.health(idx, "cluster"), 200);
    }
    println!(
        "{} operations, none failed",
        ledger.ops.load(Ordering::Relaxed)
    );
}

/// A 4-node cluster whose nodes each watch their own fault file (empty: no
/// partition yet), returned with the files.
fn start_with_fault_files() -> (TestCluster, Vec<PathBuf>) {
    TestCluster::start_with_fault_files(4, 2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issue_4_partition_isolated_node_refuses_majority_serves() {
    let (cluster, faults) = blocking(start_with_fault_files);
    let majority = cluster.client(0);
    let isolated = common::client_for(
        &format!("http://{}", cluster.nodes[3].addr),
        common::ACCESS_KEY,
        common::SECRET_KEY,
    );
    majority
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    for i in 0..6u64 {
        put(&majority, &format!("k{i}"), body(i)).await.unwrap();
    }
    // Cut node 4 off from the others, both ways.
    let others: Vec<String> = cluster.nodes[..3]
        .iter()
        .map(|n| format!("block {}\n", n.addr))
        .collect();
    std::fs::write(&faults[3], others.concat()).unwrap();
    for file in &faults[..3] {
        std::fs::write(file, format!("block {}\n", cluster.nodes[3].addr)).unwrap();
    }
    blocking(|| {
        assert!(wait_until(Duration::from_secs(15), || cluster
            .health(3, "cluster")
            == 503))
    });
    let mut acked: HashMap<String, u64> = (0..6u64).map(|i| (format!("k{i}"), i)).collect();
    for i in 0..6u64 {
        let key = format!("k{i}");
        // The isolated node cannot reach quorum: it refuses.
        let err = isolated
            .put_object()
            .bucket(BUCKET)
            .key(&key)
            .body(ByteStream::from(body(1000 + i)))
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            sdk_status(&err),
            Some(503),
            "write through the isolated node: {err:?}"
        );
        // The majority keeps serving.
        put(&majority, &key, body(2000 + i)).await.unwrap();
        acked.insert(key.clone(), 2000 + i);
        assert_eq!(
            get(&cluster.client(1), &key).await.unwrap(),
            Some(body(2000 + i))
        );
    }
    assert_eq!(cluster.health(0, "cluster"), 200);
    // Heal the partition.
    for file in &faults {
        std::fs::write(file, "").unwrap();
    }
    blocking(|| {
        assert!(wait_until(Duration::from_secs(20), || (0..4)
            .all(|n| cluster.health(n, "cluster") == 200)))
    });
    for idx in 0..4 {
        let client = cluster.client(idx);
        for (key, seed) in &acked {
            assert_eq!(
                get(&client, key).await.unwrap(),
                Some(body(*seed)),
                "{key} through node {}",
                idx + 1
            );
        }
    }
    assert!(
        cluster
            .log_text(3)
            .contains("cut off by the test fault injection")
    );
}

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// How many drives of the (one) set node `idx` counts online, from its
/// admin API.
fn online_at(cluster: &TestCluster, idx: usize) -> u64 {
    let addr = &cluster.nodes[idx].addr;
    let path = "/cairn/admin/v1/heal/status";
    let headers = common::signed_headers(addr, "GET", path, &[], EMPTY_SHA256, &[]);
    let headers: Vec<(&str, String)> = headers.into_iter().collect();
    let resp = common::raw_request(addr, "GET", path, &headers, b"").unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let status: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    status["sets"][0]["online"].as_u64().expect("online count")
}

/// A restarted node reports ready only once its peers use its drives
/// again, so a rolling restart can stop the next node at once. Drive checks
/// run an hour apart here: only the restarted node's `rejoin` can bring its
/// drives back at its peers in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issue_4_a_restarted_node_is_back_at_its_peers_when_it_reports_ready() {
    let mut cluster = blocking(|| start_cluster(&[("CAIRN_DRIVE_CHECK_INTERVAL", "1h")]));
    let client = cluster.client(0);
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    put(&client, "k1", body(1)).await.unwrap();
    blocking(|| cluster.stop(3));
    put(&client, "k2", body(2)).await.unwrap();
    assert_eq!(online_at(&cluster, 0), 6, "node 1 with node 4 stopped");
    blocking(|| cluster.start_node(3));
    for idx in 0..4 {
        assert_eq!(
            online_at(&cluster, idx),
            8,
            "node {} once node 4 reports ready",
            idx + 1
        );
    }
    // The next node can go at once: writes still reach 6 drives.
    blocking(|| cluster.stop(2));
    put(&client, "k3", body(3)).await.unwrap();
    assert!(
        !cluster.log_text(0).contains("ok=5"),
        "{}",
        cluster.log_text(0)
    );
    let last = cluster.client(3);
    for (key, seed) in [("k1", 1), ("k2", 2), ("k3", 3)] {
        assert_eq!(get(&last, key).await, Ok(Some(body(seed))), "{key}");
    }
}

/// Cuts the nodes in `isolated` off from every other node, and heals every
/// other cut.
fn isolate(cluster: &TestCluster, faults: &[PathBuf], isolated: &[usize]) {
    for (idx, file) in faults.iter().enumerate() {
        let blocked: Vec<usize> = if isolated.contains(&idx) {
            (0..faults.len()).filter(|&other| other != idx).collect()
        } else {
            isolated.to_vec()
        };
        let text: String = blocked
            .iter()
            .map(|&other| format!("block {}\n", cluster.nodes[other].addr))
            .collect();
        std::fs::write(file, text).unwrap();
    }
}

/// A DELETE acknowledged while node 4 was away leaves the old version on
/// node 4's 2 drives. When node 4 is back and node 3 away before healing
/// has removed it, that old copy (2 drives, plus at most node 3's 2) cannot
/// be an acknowledged version (write quorum 5): GET must say 404 and the
/// listing must leave the key out. Both answered 503 before, which made
/// listings fail during rolling restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issue_4_a_delete_made_while_a_node_was_away_holds_when_another_goes() {
    let (cluster, faults) = blocking(start_with_fault_files);
    let client = cluster.client(0);
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    put(&client, "gone", body(1)).await.unwrap();
    put(&client, "kept", body(2)).await.unwrap();

    isolate(&cluster, &faults, &[3]);
    blocking(|| {
        assert!(wait_until(Duration::from_secs(15), || cluster
            .health(3, "cluster")
            == 503))
    });
    client
        .delete_object()
        .bucket(BUCKET)
        .key("gone")
        .send()
        .await
        .unwrap();
    // Node 3 goes too; then node 4 comes back, before anything could heal
    // (healing removes a leftover only while every drive answers).
    isolate(&cluster, &faults, &[2, 3]);
    blocking(|| {
        assert!(wait_until(Duration::from_secs(15), || cluster
            .health(0, "cluster")
            == 503))
    });
    isolate(&cluster, &faults, &[2]);
    blocking(|| {
        assert!(wait_until(Duration::from_secs(20), || cluster
            .health(0, "cluster")
            == 200))
    });
    assert_eq!(get(&client, "gone").await, Ok(None));
    assert_eq!(get(&client, "kept").await, Ok(Some(body(2))));
    let listed = client
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap_or_else(|e| panic!("listing with node 3 away: {:?} {e}", sdk_status(&e)));
    let names: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(names, ["kept"]);

    isolate(&cluster, &faults, &[]);
    blocking(|| {
        assert!(wait_until(Duration::from_secs(20), || (0..4)
            .all(|n| cluster.health(n, "cluster") == 200)))
    });
    for idx in 0..4 {
        assert_eq!(get(&cluster.client(idx), "gone").await, Ok(None));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issue_4_two_writers_through_different_nodes_leave_whole_versions() {
    let cluster = blocking(|| start_cluster(&[]));
    cluster
        .client(0)
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let keys = 6u64;
    let rounds = 8u64;
    let torn = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for writer in 0..2u64 {
        let client = cluster.client(if writer == 0 { 0 } else { 2 });
        tasks.push(tokio::spawn(async move {
            for round in 0..rounds {
                for k in 0..keys {
                    let seed = (writer << 40) | (round << 20) | k;
                    put(&client, &format!("shared{k}"), body(seed))
                        .await
                        .unwrap();
                }
            }
        }));
    }
    // Readers through the other nodes see whole versions only.
    for reader in [1usize, 3] {
        let client = cluster.client(reader);
        let torn = torn.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..rounds * 2 {
                for k in 0..keys {
                    if let Some(data) = get(&client, &format!("shared{k}")).await.unwrap() {
                        let whole = (0..2u64)
                            .any(|w| (0..rounds).any(|r| data == body((w << 40) | (r << 20) | k)));
                        if !whole {
                            torn.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        torn.load(Ordering::Relaxed),
        0,
        "a reader saw a mix of versions"
    );
    for k in 0..keys {
        let reads: Vec<Option<Vec<u8>>> = futures::future::join_all((0..4).map(|idx| {
            let client = cluster.client(idx);
            async move { get(&client, &format!("shared{k}")).await.unwrap() }
        }))
        .await;
        let first = reads[0].clone().expect("present");
        assert!(
            (0..2u64).any(|w| first == body((w << 40) | ((rounds - 1) << 20) | k)),
            "shared{k} ends with a last-round version"
        );
        assert!(
            reads.iter().all(|r| r.as_ref() == Some(&first)),
            "every node answers the same version of shared{k}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issue_4_wrong_secret_clock_skew_and_versions_are_named() {
    let mut cluster = blocking(|| start_cluster(&[]));
    cluster
        .client(0)
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    put(&cluster.client(0), "before", body(1)).await.unwrap();
    let restart_with = |cluster: &mut TestCluster, env: &[(&str, &str)]| {
        cluster.stop(3);
        cluster.nodes[3].env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        cluster.spawn(3);
    };
    // A node with another secret: both logs say so in words.
    blocking(|| {
        restart_with(
            &mut cluster,
            &[("CAIRN_INTERNODE_SECRET", "not-the-cluster-secret")],
        );
        assert!(
            cluster.wait_log(
                3,
                "does not match this node's cluster secret",
                Duration::from_secs(20)
            ),
            "{}",
            cluster.log_text(3)
        );
        assert!((0..3).any(|i| cluster.wait_log(
            i,
            "does not match this node's cluster secret",
            Duration::from_secs(5)
        )));
        cluster.kill(3);
    });
    // A node whose clock is an hour ahead: a clock skew naming both clocks.
    blocking(|| {
        restart_with(&mut cluster, &[("CAIRN_TEST_CLOCK_SKEW_SECS", "3600")]);
        assert!(
            cluster.wait_log(3, "clock skew between nodes", Duration::from_secs(20)),
            "{}",
            cluster.log_text(3)
        );
        assert!(
            cluster.wait_log(0, "clock skew between nodes", Duration::from_secs(10)),
            "{}",
            cluster.log_text(0)
        );
        let log = cluster.log_text(0);
        let line = log
            .lines()
            .find(|l| l.contains("clock skew between nodes"))
            .unwrap();
        assert!(
            line.contains("stamped its request") && line.contains("clock says"),
            "{line}"
        );
        cluster.kill(3);
    });
    // A node outside the version window: refused, naming both ranges and the remedy.
    blocking(|| {
        restart_with(&mut cluster, &[("CAIRN_TEST_INTERNODE_VERSIONS", "4-5")]);
        assert!(
            cluster.wait_log(
                3,
                "internode protocol versions do not overlap",
                Duration::from_secs(20)
            ),
            "{}",
            cluster.log_text(3)
        );
        assert!(cluster.wait_log(
            0,
            "internode protocol versions do not overlap",
            Duration::from_secs(10)
        ));
        let log = cluster.log_text(0);
        let line = log.lines().find(|l| l.contains("do not overlap")).unwrap();
        assert!(
            line.contains("versions 4 to 5")
                && line.contains("versions 2 to 3")
                && line.contains("upgrade"),
            "{line}"
        );
        assert_eq!(
            cluster.health(3, "ready"),
            503,
            "a refused node does not serve"
        );
        cluster.kill(3);
    });
    // One version behind (the previous release speaks version 2): a full member.
    blocking(|| {
        restart_with(&mut cluster, &[("CAIRN_TEST_INTERNODE_VERSIONS", "2-2")]);
        cluster.wait_started(3);
        assert!(wait_until(Duration::from_secs(20), || (0..4)
            .all(|n| cluster.health(n, "cluster") == 200)));
    });
    let behind = cluster.client(3);
    assert_eq!(get(&behind, "before").await.unwrap(), Some(body(1)));
    put(&behind, "through-v2", body(2)).await.unwrap();
    assert_eq!(
        get(&cluster.client(0), "through-v2").await.unwrap(),
        Some(body(2))
    );
    assert!(
        cluster.log_text(0).contains("version=2"),
        "peers use version 2 with it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issue_4_start_up_waits_for_nodes_and_says_which() {
    let mut cluster = TestCluster::prepare(4, 2, &[]);
    // Three of four nodes of a new cluster: the first waits to format until
    // every drive answers, and every node says which node it waits for.
    for idx in 0..3 {
        cluster.spawn(idx);
    }
    let missing = cluster.nodes[3].addr.clone();
    blocking(|| {
        for idx in 0..3 {
            assert!(
                cluster.wait_log(idx, "waiting for the cluster", Duration::from_secs(20)),
                "{}",
                cluster.log_text(idx)
            );
            assert!(
                cluster.wait_log(idx, &missing, Duration::from_secs(10)),
                "node {} names {missing}",
                idx + 1
            );
            assert_eq!(
                cluster.health(idx, "ready"),
                503,
                "no node serves before the cluster forms"
            );
        }
        assert!(
            cluster.log_text(1).contains("waiting for the first node"),
            "{}",
            cluster.log_text(1)
        );
        cluster.spawn(3);
        for idx in 0..4 {
            cluster.wait_started(idx);
        }
    });
    cluster
        .client(2)
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    put(&cluster.client(2), "k", body(3)).await.unwrap();
    // A restarted node serves as soon as its set has read quorum, even
    // with two other nodes down.
    blocking(|| {
        cluster.kill(2);
        cluster.kill(3);
        cluster.stop(1);
        cluster.start_node(1);
    });
    assert_eq!(get(&cluster.client(1), "k").await.unwrap(), Some(body(3)));
    assert_eq!(cluster.health(1, "cluster"), 503);
    assert_eq!(cluster.health(1, "cluster/read"), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issue_4_warns_when_a_node_holds_more_of_a_set_than_its_parity() {
    // 2 nodes x 4 drives, EC:2: each node holds 4 of the set's 8 drives.
    let cluster =
        blocking(|| TestCluster::start(2, 4, &[("CAIRN_STORAGE_CLASS_STANDARD", "EC:2")]));
    let log = cluster.log_text(0);
    assert!(
        log.contains("holds 4 of its 8 drives, more than its 2 parity shards"),
        "{log}"
    );
    // The default parity (4) tolerates losing either node's drives: no warning.
    let balanced = blocking(|| TestCluster::start(2, 4, &[]));
    assert!(
        !balanced.log_text(0).contains("more than its"),
        "{}",
        balanced.log_text(0)
    );
}
