//! Crash safety (issue 2, item 9): SIGKILL during a stream of concurrent
//! PUTs, restart, and check that every acknowledged object reads back
//! byte-exact and every other key is absent or complete.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::primitives::ByteStream;
use common::{ServerOptions, TestServer, sdk_status, test_data};

/// Sizes: inline, one shard file, several blocks.
const SIZES: [usize; 4] = [3_000, 200_000, 1_500_000, 3_200_000];
/// Keys rewritten again and again, to catch a crash between versions.
const OVERWRITTEN: usize = 4;
const WRITERS: usize = 12;

fn data_for(key: &str, version: usize) -> Vec<u8> {
    let seed = key.bytes().fold(version as u64, |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    });
    test_data(SIZES[(seed % SIZES.len() as u64) as usize], seed)
}

#[derive(Default)]
struct Ledger {
    /// Key -> versions attempted, in order; and an acknowledged version.
    attempted: HashMap<String, Vec<usize>>,
    acknowledged: HashMap<String, usize>,
}

fn quick_client(server: &TestServer) -> Client {
    let conf = server
        .client()
        .config()
        .to_builder()
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(20))
                .build(),
        )
        .build();
    Client::from_conf(conf)
}

async fn write_until_killed(server: &mut TestServer, round: usize, ledger: Arc<Mutex<Ledger>>) {
    let client = quick_client(server);
    let stop_at = Instant::now() + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let client = client.clone();
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10_000usize {
                let (key, version) = if i % 3 == 0 {
                    (
                        format!("hot/{}", (writer + i) % OVERWRITTEN),
                        round * 100_000 + writer * 10_000 + i,
                    )
                } else {
                    (format!("r{round}/w{writer}/{i}"), 0)
                };
                ledger
                    .lock()
                    .unwrap()
                    .attempted
                    .entry(key.clone())
                    .or_default()
                    .push(version);
                let result = client
                    .put_object()
                    .bucket("crash")
                    .key(&key)
                    .body(ByteStream::from(data_for(&key, version)))
                    .send()
                    .await;
                match result {
                    Ok(_) => {
                        ledger.lock().unwrap().acknowledged.insert(key, version);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    while Instant::now() < stop_at {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill();
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    }
}

#[tokio::test]
async fn issue_2_sigkill_during_concurrent_puts_loses_no_acknowledged_write() {
    let mut server = TestServer::start(ServerOptions::drives(4));
    server
        .client()
        .create_bucket()
        .bucket("crash")
        .send()
        .await
        .unwrap();
    let shared = Arc::new(Mutex::new(Ledger::default()));
    for round in 0..2 {
        write_until_killed(&mut server, round, shared.clone()).await;
        server
            .spawn()
            .unwrap_or_else(|e| panic!("restart after SIGKILL: {e}"));
        let client = quick_client(&server);
        let ledger = std::mem::take(&mut *shared.lock().unwrap());
        let acked_keys = ledger.acknowledged.len();
        assert!(
            acked_keys > 20,
            "too few writes before the kill to mean anything: {acked_keys}"
        );
        for (key, versions) in &ledger.attempted {
            let got = client.get_object().bucket("crash").key(key).send().await;
            let body = match got {
                Ok(out) => Some(out.body.collect().await.unwrap().to_vec()),
                Err(err) => {
                    assert_eq!(sdk_status(&err), Some(404), "{key}: {err:?}");
                    None
                }
            };
            let acked = ledger.acknowledged.contains_key(key);
            match body {
                None => assert!(!acked, "acknowledged {key} is gone after SIGKILL"),
                Some(body) => {
                    // Whole: exactly one attempted version's bytes.
                    let version = versions
                        .iter()
                        .find(|v| data_for(key, **v) == body)
                        .unwrap_or_else(|| {
                            panic!("{key} holds bytes no writer sent ({} bytes)", body.len())
                        });
                    if !key.starts_with("hot/") && acked {
                        assert_eq!(*version, 0);
                    }
                }
            }
        }
        // Listing agrees with reads: every acknowledged unique key is listed.
        let mut listed = Vec::new();
        let mut token = None;
        for _ in 0..100 {
            let mut req = client.list_objects_v2().bucket("crash");
            if let Some(t) = &token {
                req = req.continuation_token(t);
            }
            let out = req.send().await.unwrap();
            listed.extend(out.contents().iter().map(|o| o.key().unwrap().to_owned()));
            if out.is_truncated() != Some(true) {
                break;
            }
            token = out.next_continuation_token().map(str::to_owned);
        }
        for key in ledger.acknowledged.keys() {
            assert!(listed.contains(key), "{key} acknowledged but not listed");
        }
        eprintln!(
            "round {round}: {} keys attempted, {acked_keys} acknowledged, all verified after SIGKILL",
            ledger.attempted.len()
        );
        *shared.lock().unwrap() = ledger;
    }
}
