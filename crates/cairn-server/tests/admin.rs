//! The admin API and `cairn admin heal` (issue 5, item 5): authenticated
//! with the root credentials, heals started on demand with their progress,
//! per-set and per-drive counters, rates, ETAs and failed objects.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::Client;
use common::{
    ACCESS_KEY, RawResponse, SECRET_KEY, ServerOptions, TestServer, raw_request, shard_files,
    signed_headers, test_data, wait_until,
};
use serde_json::Value;

const BUCKET: &str = "heal";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

async fn put(client: &Client, key: &str, data: &[u8]) {
    common::put_bytes(client, BUCKET, key, data).await
}

async fn get(client: &Client, key: &str) -> Vec<u8> {
    common::get_bytes(client, BUCKET, key).await
}

/// An admin call signed by the tests' own SigV4 signer (not the server's).
fn admin(server: &TestServer, method: &str, call: &str, query: &[(&str, &str)]) -> RawResponse {
    let path = format!("/cairn/admin/v1/{call}");
    let headers = signed_headers(&server.addr, method, &path, query, EMPTY_SHA256, &[]);
    let target = if query.is_empty() {
        path
    } else {
        let encoded: Vec<String> = query
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    serde_urlencoded::to_string([("", v)]).unwrap()[1..].to_owned()
                )
            })
            .collect();
        format!("{path}?{}", encoded.join("&"))
    };
    let headers: Vec<(&str, String)> = headers.into_iter().collect();
    raw_request(&server.addr, method, &target, &headers, b"").unwrap()
}

fn json(resp: &RawResponse) -> Value {
    serde_json::from_slice(&resp.body).unwrap_or_else(|e| panic!("{e}: {}", resp.text()))
}

fn status(server: &TestServer) -> Value {
    let resp = admin(server, "GET", "heal/status", &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    json(&resp)
}

/// `cairn admin ARGS` against `server`.
fn cairn_admin(server: &TestServer, password: &str, args: &[&str]) -> (i32, String, String) {
    common::cairn_admin(&server.endpoint(), password, args)
}

/// Flips one bit every 4 KiB of the file.
fn corrupt(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    for at in (100..bytes.len()).step_by(4096) {
        bytes[at] ^= 0x10;
    }
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn issue_5_the_admin_api_needs_the_root_credentials_and_refuses_bad_input() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket(BUCKET).send().await.unwrap();

    // Unsigned.
    let resp = raw_request(&server.addr, "GET", "/cairn/admin/v1/heal/status", &[], b"").unwrap();
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(json(&resp)["Code"], "AccessDenied");
    // Signed with another secret, through the CLI.
    let (code, stdout, stderr) = cairn_admin(&server, "not-the-password", &["heal", "status"]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("SignatureDoesNotMatch (403)"), "{stderr}");
    // An unknown access key.
    let path = "/cairn/admin/v1/heal/status";
    let mut headers = signed_headers(&server.addr, "GET", path, &[], EMPTY_SHA256, &[]);
    for (name, value) in &mut headers {
        if *name == "authorization" {
            *value = value.replace(ACCESS_KEY, "someone-else");
        }
    }
    let resp = raw_request(&server.addr, "GET", path, &headers, b"").unwrap();
    assert_eq!(json(&resp)["Code"], "InvalidAccessKeyId", "{}", resp.text());
    assert!(SECRET_KEY.len() > 1);

    // Signed right: the status of one set of 4 drives, nothing running.
    let before = status(&server);
    assert_eq!(before["sets"].as_array().unwrap().len(), 1);
    assert_eq!(before["sets"][0]["drives"].as_array().unwrap().len(), 4);
    assert_eq!(before["sets"][0]["online"], 4);
    assert_eq!(before["heals"].as_array().unwrap().len(), 0);

    // Bad input: a specific error, and no heal started.
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], u16, &'a str);
    let cases: [Case; 5] = [
        (
            "POST",
            "heal/start",
            &[("bucket", "no-such-bucket")],
            404,
            "NoSuchBucket",
        ),
        (
            "POST",
            "heal/start",
            &[("bucket", BUCKET), ("deep", "maybe")],
            400,
            "InvalidArgument",
        ),
        (
            "POST",
            "heal/start",
            &[("prefix", "a/")],
            400,
            "InvalidArgument",
        ),
        ("GET", "heal/start", &[], 405, "MethodNotAllowed"),
        ("GET", "heal/nothing", &[], 404, "NotImplemented"),
    ];
    for (method, call, query, code, error) in cases {
        let resp = admin(&server, method, call, query);
        assert_eq!(
            resp.status,
            code,
            "{method} {call} {query:?}: {}",
            resp.text()
        );
        assert_eq!(json(&resp)["Code"], error, "{method} {call} {query:?}");
    }
    let (code, _, stderr) = cairn_admin(&server, SECRET_KEY, &["heal", "start", "no-such-bucket"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("NoSuchBucket"), "{stderr}");
    assert_eq!(status(&server)["heals"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn issue_5_heal_start_heals_a_prefix_shows_progress_and_lists_failed_objects() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    // 300 KiB objects: 150 KiB shards, in files.
    let healable: Vec<(String, Vec<u8>)> = (0..20u64)
        .map(|i| (format!("a/obj{i:02}"), test_data(300 << 10, 900 + i)))
        .collect();
    for (key, data) in &healable {
        put(&client, key, data).await;
    }
    let before: Vec<Vec<PathBuf>> = server.drive_paths.iter().map(|d| shard_files(d)).collect();
    put(&client, "a/broken", &test_data(300 << 10, 7)).await;
    // `a/broken` loses three shards of four: beyond its 2 parity shards.
    for (drive, old) in server.drive_paths.iter().zip(&before).take(3) {
        let new: Vec<PathBuf> = shard_files(drive)
            .into_iter()
            .filter(|f| !old.contains(f))
            .collect();
        assert_eq!(new.len(), 1, "{}", drive.display());
        corrupt(&new[0]);
    }
    // Every other shard on drive 2 is corrupt too: 20 objects to heal.
    for file in &before[1] {
        corrupt(file);
    }
    // Outside the prefix: not checked by the heal.
    for i in 0..5u64 {
        put(&client, &format!("b/obj{i}"), &test_data(1000, i)).await;
    }

    let (code, stdout, stderr) = cairn_admin(
        &server,
        SECRET_KEY,
        &["heal", "start", &format!("{BUCKET}/a/"), "--deep"],
    );
    assert_eq!(code, 1, "objects failed: exit code 1\n{stdout}\n{stderr}");
    assert!(stdout.contains("started: heal/a/ (deep)"), "{stdout}");
    assert!(
        stdout.contains("[##############################] 100% 21/21 objects"),
        "a progress bar that ends full, with the prefix's 21 objects: {stdout}"
    );
    assert!(stdout.contains("20 healed, 1 failed"), "{stdout}");
    assert!(stdout.contains("failed objects:"), "{stdout}");
    let failure_line = stdout
        .lines()
        .find(|l| l.contains("heal/a/broken: "))
        .unwrap_or_else(|| panic!("the failed object is listed: {stdout}"));
    assert!(
        failure_line.contains("quorum"),
        "with its reason: {failure_line}"
    );

    // The same through the API: per heal, per set, per drive.
    let status = status(&server);
    let heal = &status["heals"][0];
    assert_eq!(heal["done"], true, "{status:#}");
    assert_eq!(heal["bucket"], BUCKET);
    assert_eq!(heal["prefix"], "a/");
    assert_eq!(heal["deep"], true);
    assert_eq!(heal["objects"], 21);
    assert_eq!(heal["healed"], 20);
    assert_eq!(heal["failed"], 1);
    assert_eq!(heal["eta_secs"], 0);
    assert!(heal["bytes"].as_u64().unwrap() >= 21 * (300 << 10));
    let set = &status["sets"][0];
    let job = set["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "heal")
        .unwrap();
    assert_eq!(job["failures"][0]["key"], "a/broken", "{job:#}");
    assert!(job["objects_per_sec"].as_f64().unwrap() > 0.0, "{job:#}");
    let drives = set["drives"].as_array().unwrap();
    assert_eq!(drives[1]["healed"], 20, "{set:#}");
    assert!(
        drives[1]["bytes_written"].as_u64().unwrap() >= 20 * (150 << 10),
        "{set:#}"
    );
    for other in [0, 2, 3] {
        assert_eq!(drives[other]["healed"], 0, "{set:#}");
    }

    // The human form says the same.
    let (code, text, stderr) = cairn_admin(&server, SECRET_KEY, &["heal", "status"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        text.contains("Set 1 (pool 1): 4 of 4 drives online, EC 2+2"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "heal {} of heal/a/: done",
            heal["id"].as_str().unwrap()
        )),
        "{text}"
    );
    assert!(text.contains("heal/a/broken: "), "{text}");

    // Drive 2 now holds correct shards: read with drives 1 and 3 gone.
    for drive in [&server.drive_paths[0], &server.drive_paths[2]] {
        std::fs::rename(drive, drive.with_extension("gone")).unwrap();
    }
    for (key, data) in &healable {
        assert_eq!(get(&client, key).await, *data, "{key}");
    }
}

#[tokio::test]
async fn issue_5_heal_status_shows_a_refill_with_its_rate_and_eta() {
    // A slow refill, to be seen while it runs.
    let server = TestServer::start(ServerOptions::drives(4).env("CAIRN_HEAL_DUTY", "0.02"));
    let client = server.client();
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    for i in 0..60u64 {
        put(&client, &format!("obj{i:02}"), &test_data(300 << 10, i)).await;
    }
    for entry in std::fs::read_dir(&server.drive_paths[2]).unwrap().flatten() {
        std::fs::remove_dir_all(entry.path())
            .or_else(|_| std::fs::remove_file(entry.path()))
            .unwrap();
    }
    let mut seen_running = None;
    assert!(
        // A debug build takes most of 90 s at this duty.
        wait_until(Duration::from_secs(180), || {
            let status = status(&server);
            let set = &status["sets"][0];
            let Some(job) = set["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|j| j["kind"] == "refill")
            else {
                return false;
            };
            let objects = job["objects"].as_u64().unwrap();
            if job["done"] == false && objects > 0 && objects < job["total"].as_u64().unwrap() {
                // The last look before it ended with work still left (a
                // look at 61 of 61, not yet marked done, has nothing left
                // to estimate).
                seen_running = Some((set["drives"][2]["state"].clone(), job.clone()));
            }
            job["done"] == true
        }),
        "{}",
        server.log_text()
    );
    let (state, running) = seen_running.expect("the refill was seen while it ran");
    assert_eq!(state, "refilling", "{running:#}");
    assert_eq!(running["slot"], 3);
    assert!(
        running["drive"].as_str().unwrap().ends_with("d3"),
        "{running:#}"
    );
    // Every object of the set, with the job's own system objects.
    assert!(running["total"].as_u64().unwrap() >= 60, "{running:#}");
    assert!(
        running["objects_per_sec"].as_f64().unwrap() > 0.0,
        "{running:#}"
    );
    assert!(
        running["bytes_per_sec"].as_f64().unwrap() > 0.0,
        "{running:#}"
    );
    assert!(running["eta_secs"].as_u64().unwrap() > 0, "{running:#}");

    let status = status(&server);
    let drive = &status["sets"][0]["drives"][2];
    assert_eq!(drive["state"], "online", "{status:#}");
    assert!(drive["healed"].as_u64().unwrap() >= 60, "{status:#}");
    assert!(
        drive["bytes_written"].as_u64().unwrap() >= 60 * (150 << 10),
        "{status:#}"
    );
    assert_eq!(drive["failed"], 0);
}
