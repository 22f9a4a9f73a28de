//! `cairn bench` (issue 6, item 1) against a real server: what it reports
//! is checked against what the server then holds, seen through aws-sdk-s3
//! (counts, sizes, contents that differ between objects, checksums that
//! arrived), and its errors against the S3 codes the server answered.

mod common;

use std::collections::HashSet;

use aws_sdk_s3::Client;
use aws_sdk_s3::types::ChecksumMode;
use common::{ACCESS_KEY, SECRET_KEY, ServerOptions, TestServer};
use serde_json::Value;

const BUCKET: &str = "bench";

/// Runs `cairn bench ARGS --endpoint <server> --bucket bench`.
fn bench(server: &TestServer, args: &[&str]) -> (i32, String, String) {
    bench_as(server, SECRET_KEY, args)
}

fn bench_as(server: &TestServer, secret: &str, args: &[&str]) -> (i32, String, String) {
    let endpoint = server.endpoint();
    let mut full = vec!["bench"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--endpoint", &endpoint]);
    if !args.contains(&"--bucket") {
        full.extend_from_slice(&["--bucket", BUCKET]);
    }
    common::run_cairn(
        &full,
        &[
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ],
    )
}

/// `--json` output, after checking the exit code.
fn bench_json(server: &TestServer, args: &[&str], code: i32) -> Value {
    let mut full = args.to_vec();
    full.push("--json");
    let (got, stdout, stderr) = bench(server, &full);
    assert_eq!(got, code, "cairn bench {args:?}\n{stdout}\n{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

fn phase<'a>(result: &'a Value, name: &str) -> &'a Value {
    result["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no phase {name}: {result}"))
}

/// Every object under `prefix`: key, size, ETag.
async fn objects(client: &Client, prefix: &str) -> Vec<(String, i64, String)> {
    let mut out = Vec::new();
    let mut token = None;
    for _ in 0..1000 {
        let page = client
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        for object in page.contents() {
            out.push((
                object.key().unwrap().to_owned(),
                object.size().unwrap(),
                object.e_tag().unwrap().to_owned(),
            ));
        }
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    out
}

fn start() -> TestServer {
    TestServer::start(ServerOptions::drives(4))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_6_bench_put_writes_what_it_reports_with_every_payload_option() {
    let server = start();
    let client = server.client();
    let result = bench_json(
        &server,
        &[
            "put",
            "--count",
            "24",
            "--size",
            "100KiB",
            "-c",
            "4",
            "--no-cleanup",
            "--prefix",
            "fixed/",
        ],
        0,
    );
    let put = phase(&result, "put");
    assert_eq!(put["ops"], 24, "{put}");
    assert_eq!(put["errors"], 0, "{put}");
    assert_eq!(put["bytes"], 24 * 102_400, "{put}");
    assert_eq!(put["by_op"]["put"]["errors_by_code"], serde_json::json!({}));
    assert!(put["by_op"]["put"]["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    let found = objects(&client, "fixed/").await;
    assert_eq!(found.len(), 24);
    assert!(found.iter().all(|(_, size, _)| *size == 102_400));
    // No two objects alike: nothing for a server to deduplicate.
    let etags: HashSet<&String> = found.iter().map(|(_, _, etag)| etag).collect();
    assert_eq!(etags.len(), 24);

    // Payloads as real clients send them; sizes spread over a range.
    let variants: [&[&str]; 5] = [
        &["--payload", "signed"],
        &["--payload", "unsigned"],
        &["--payload", "signed", "--content-md5"],
        &[
            "--payload",
            "unsigned",
            "--content-md5",
            "--checksum",
            "crc32c",
        ],
        &["--payload", "unsigned", "--checksum", "sha256"],
    ];
    for (n, variant) in variants.iter().enumerate() {
        let prefix = format!("variant{n}/");
        let mut args = vec![
            "put",
            "--count",
            "6",
            "--size",
            "1KiB-3MiB",
            "-c",
            "3",
            "--no-cleanup",
            "--prefix",
            &prefix,
        ];
        args.extend_from_slice(variant);
        let result = bench_json(&server, &args, 0);
        let put = phase(&result, "put");
        assert_eq!(
            (put["ops"].as_u64(), put["errors"].as_u64()),
            (Some(6), Some(0)),
            "{variant:?}: {put}"
        );
        let found = objects(&client, &prefix).await;
        assert_eq!(found.len(), 6, "{variant:?}");
        let stored: i64 = found.iter().map(|(_, size, _)| size).sum();
        assert_eq!(put["bytes"].as_i64(), Some(stored), "{variant:?}");
        if let Some(pos) = variant.iter().position(|a| *a == "--checksum") {
            let head = client
                .head_object()
                .bucket(BUCKET)
                .key(&found[0].0)
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await
                .unwrap();
            let got = match variant[pos + 1] {
                "crc32c" => head.checksum_crc32_c(),
                _ => head.checksum_sha256(),
            };
            assert!(
                got.is_some(),
                "{variant:?}: the trailing checksum was stored"
            );
        }
    }
    // A trailing checksum goes with an unsigned payload; said, not sent.
    let (code, _, stderr) = bench(&server, &["put", "--count", "1", "--checksum", "crc32c"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--payload unsigned"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_6_bench_get_stat_verify_and_clean_up_after_themselves() {
    let server = start();
    let client = server.client();
    let result = bench_json(
        &server,
        &[
            "get",
            "--objects",
            "12",
            "--count",
            "36",
            "--size",
            "1KiB-2MiB",
            "-c",
            "4",
            "--verify",
            "--prefix",
            "g/",
            "--server-pid",
            &server.pid().to_string(),
        ],
        0,
    );
    let prepare = phase(&result, "prepare");
    assert_eq!(prepare["ops"], 12);
    let get = phase(&result, "get");
    assert_eq!(
        (get["ops"].as_u64(), get["errors"].as_u64()),
        (Some(36), Some(0)),
        "{get}"
    );
    // Each object read three times: three times the bytes prepared.
    assert_eq!(
        get["bytes"].as_u64().unwrap(),
        3 * prepare["bytes"].as_u64().unwrap()
    );
    assert!(get["server"]["cpu_secs"].as_f64().unwrap() >= 0.0, "{get}");
    assert!(
        get["server"]["rss_peak_mib"].as_f64().unwrap() > 1.0,
        "{get}"
    );
    let cleanup = phase(&result, "cleanup");
    assert_eq!(
        (cleanup["ops"].as_u64(), cleanup["errors"].as_u64()),
        (Some(12), Some(0))
    );
    // The bench created the bucket, so cleanup removed it.
    let head = client.head_bucket().bucket(BUCKET).send().await;
    assert!(head.is_err(), "bucket left behind");

    let result = bench_json(
        &server,
        &[
            "stat",
            "--objects",
            "5",
            "--count",
            "20",
            "-c",
            "2",
            "--size",
            "10",
        ],
        0,
    );
    let stat = phase(&result, "stat");
    assert_eq!(
        (stat["ops"].as_u64(), stat["bytes"].as_u64()),
        (Some(20), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_6_bench_counts_errors_by_s3_code_and_refuses_what_it_should() {
    let server = start();
    // Nothing prepared: every GET and HEAD fails, each with its code.
    let result = bench_json(
        &server,
        &[
            "get",
            "--skip-prepare",
            "--objects",
            "3",
            "--count",
            "9",
            "-c",
            "3",
        ],
        1,
    );
    let get = phase(&result, "get");
    assert_eq!(get["ops"], 0);
    assert_eq!(
        get["by_op"]["get"]["errors_by_code"],
        serde_json::json!({"NoSuchKey": 9})
    );
    let result = bench_json(
        &server,
        &[
            "stat",
            "--skip-prepare",
            "--objects",
            "3",
            "--count",
            "4",
            "-c",
            "2",
        ],
        1,
    );
    assert_eq!(
        phase(&result, "stat")["by_op"]["stat"]["errors_by_code"],
        serde_json::json!({"NotFound": 4})
    );
    let (code, stdout, _) = bench(
        &server,
        &[
            "get",
            "--skip-prepare",
            "--objects",
            "2",
            "--count",
            "2",
            "-c",
            "1",
        ],
    );
    assert_eq!(code, 1);
    assert!(stdout.contains("NoSuchKey 2"), "{stdout}");

    // --verify notices an object whose bytes are not what bench wrote
    // (here another object's, copied over it), and the next GET on the
    // same connection still works.
    for prefix in ["v/", "w/"] {
        let args = [
            "put",
            "--count",
            "2",
            "--size",
            "3MiB",
            "-c",
            "1",
            "--no-cleanup",
            "--prefix",
            prefix,
        ];
        assert_eq!(bench(&server, &args).0, 0);
    }
    let client = server.client();
    client
        .copy_object()
        .bucket(BUCKET)
        .key("v/00000000")
        .copy_source(format!("{BUCKET}/w/00000000"))
        .send()
        .await
        .unwrap();
    let result = bench_json(
        &server,
        &[
            "get",
            "--skip-prepare",
            "--verify",
            "--objects",
            "2",
            "--count",
            "2",
            "-c",
            "1",
            "--size",
            "3MiB",
            "--prefix",
            "v/",
            "--no-cleanup",
        ],
        1,
    );
    let get = phase(&result, "get");
    assert_eq!(get["ops"], 1, "{get}");
    assert_eq!(
        get["by_op"]["get"]["errors_by_code"],
        serde_json::json!({"BadContent": 1})
    );

    // A wrong secret: the server's code, and exit 2 before any load.
    let (code, _, stderr) = bench_as(&server, "not-the-secret", &["put", "--count", "3"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("SignatureDoesNotMatch"), "{stderr}");

    // Not loopback: refused before anything is sent.
    let (code, _, stderr) = common::run_cairn(
        &[
            "bench",
            "put",
            "--count",
            "1",
            "--endpoint",
            "http://192.0.2.1:9000",
        ],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--allow-remote"), "{stderr}");
    // Bad options are named.
    for (args, needle) in [
        (&["put", "--size", "4 parsecs"][..], "size"),
        (&["multipart", "--part-size", "1MiB"][..], "--part-size"),
        (&["mixed", "--mix", "copy=1"][..], "copy"),
        (&["get", "--verify", "--skip-prepare"][..], "--verify"),
    ] {
        let (code, _, stderr) = bench(&server, args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let buckets = client.list_buckets().send().await.unwrap();
    assert_eq!(
        buckets.buckets().len(),
        1,
        "refused runs created no bucket besides the one above"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_6_bench_list_delete_multipart_mixed_and_compare() {
    let server = start();
    let client = server.client();
    let dir = common::TempDir::new("bench-json");

    // Flat listing of 2,500 keys, one worker: pages of 1000, 1000, 500, again.
    let result = bench_json(
        &server,
        &[
            "list",
            "--objects",
            "2500",
            "--count",
            "6",
            "-c",
            "1",
            "--size",
            "1",
            "--prefix",
            "l/",
        ],
        0,
    );
    let list = &phase(&result, "list")["by_op"]["list"];
    assert_eq!(
        (list["ops"].as_u64(), list["keys"].as_u64()),
        (Some(6), Some(5000)),
        "{list}"
    );
    // A delimiter listing sees the sub-prefixes, not the keys.
    let result = bench_json(
        &server,
        &[
            "list",
            "--objects",
            "300",
            "--dirs",
            "30",
            "--delimiter",
            "/",
            "--count",
            "1",
            "-c",
            "1",
            "--size",
            "1",
            "--prefix",
            "t/",
        ],
        0,
    );
    assert_eq!(phase(&result, "list")["by_op"]["list"]["keys"], 30);

    // Delete removes each prepared object once.
    let result = bench_json(
        &server,
        &[
            "delete",
            "--objects",
            "40",
            "-c",
            "4",
            "--size",
            "10",
            "--no-cleanup",
            "--prefix",
            "d/",
        ],
        0,
    );
    assert_eq!(phase(&result, "delete")["ops"], 40);
    assert!(objects(&client, "d/").await.is_empty());

    // Multipart: 12 MiB in 5 MiB parts is three parts.
    let result = bench_json(
        &server,
        &[
            "multipart",
            "--count",
            "2",
            "--size",
            "12MiB",
            "--part-size",
            "5MiB",
            "-c",
            "2",
            "--no-cleanup",
            "--prefix",
            "m/",
        ],
        0,
    );
    assert_eq!(phase(&result, "multipart")["bytes"], 2 * (12 << 20));
    let found = objects(&client, "m/").await;
    assert_eq!(found.len(), 2);
    for (key, size, etag) in &found {
        assert_eq!(*size, 12 << 20, "{key}");
        assert!(etag.trim_matches('"').ends_with("-3"), "{key}: {etag}");
    }

    // Mixed: every operation is counted once, under its kind.
    let result = bench_json(
        &server,
        &[
            "mixed",
            "--objects",
            "20",
            "--count",
            "300",
            "-c",
            "4",
            "--size",
            "4KiB",
            "--mix",
            "get=4,put=3,stat=1,delete=1,list=1",
        ],
        0,
    );
    let mixed = phase(&result, "mixed");
    let by_op = mixed["by_op"].as_object().unwrap();
    let sum: u64 = by_op
        .values()
        .map(|s| s["ops"].as_u64().unwrap() + s["errors"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, 300, "{mixed}");
    for kind in ["get", "put", "stat", "list"] {
        assert!(by_op[kind]["ops"].as_u64().unwrap() > 0, "{kind}: {mixed}");
    }

    // Compare: the ratios of two results.
    let mut paths = Vec::new();
    for n in 0..2 {
        let (code, stdout, stderr) = bench(
            &server,
            &["put", "--count", "20", "--size", "4KiB", "--json"],
        );
        assert_eq!(code, 0, "{stderr}");
        let path = dir.path().join(format!("{n}.json"));
        std::fs::write(&path, stdout).unwrap();
        paths.push(path.display().to_string());
    }
    let (code, stdout, stderr) =
        common::run_cairn(&["bench", "compare", &paths[0], &paths[1]], &[]);
    assert_eq!(code, 0, "{stderr}");
    let row = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("put"))
        .unwrap_or_default();
    assert_eq!(
        row.matches('x').count(),
        4,
        "ops/s, MiB/s, p50, p99 ratios: {stdout}"
    );
    let (code, _, stderr) =
        common::run_cairn(&["bench", "compare", &paths[0], "/nonexistent.json"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent.json"), "{stderr}");
}
