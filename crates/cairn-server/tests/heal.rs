//! Self-healing (issue 5): objects a GET had to reconstruct, and writes
//! that reached quorum with a drive failing, are healed in the background.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::Client;
use common::{ServerOptions, TestServer, shard_files, test_data, wait_until, wipe};

const BUCKET: &str = "heal";

async fn put(client: &Client, key: &str, data: &[u8]) {
    common::put_bytes(client, BUCKET, key, data).await
}

async fn get(client: &Client, key: &str) -> Vec<u8> {
    common::get_bytes(client, BUCKET, key).await
}

/// A tiny deterministic generator, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn flip_bytes(path: &Path, rng: &mut Rng, count: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    for _ in 0..count {
        let at = (rng.next() % bytes.len() as u64) as usize;
        bytes[at] ^= 1 << (rng.next() % 8);
    }
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn issue_5_flipped_bytes_are_served_right_and_healed() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    // Single-block (600 KiB: 300 KiB per shard, over the inline threshold)
    // and multi-block (2.5 MiB: 3 blocks) objects.
    let objects: Vec<(String, Vec<u8>)> = (0..12u64)
        .map(|i| {
            let size = if i % 2 == 0 { 600 << 10 } else { (5 << 20) / 2 };
            (format!("obj{i}"), test_data(size, i))
        })
        .collect();
    for (key, data) in &objects {
        put(&client, key, data).await;
    }
    let files: Vec<PathBuf> = server
        .drive_paths
        .iter()
        .flat_map(|d| shard_files(d))
        .collect();
    assert_eq!(files.len(), 12 * 4);
    let originals: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    // Corrupt two shards of every object, with a few random bit flips
    // each: drives k and k+2. With 2 data shards on neighbouring drives
    // (whatever the rotation), such a pair always includes one data shard,
    // which every GET reads, and one parity shard, which only the heal's
    // verification of the whole object finds.
    let mut rng = Rng(0x5eed);
    let names: Vec<std::ffi::OsString> = shard_files(&server.drive_paths[0])
        .iter()
        .map(|f| f.file_name().unwrap().to_owned())
        .collect();
    let mut corrupted = Vec::new();
    for (n, name) in names.iter().enumerate() {
        for drive in [n % 2, n % 2 + 2] {
            let file = shard_files(&server.drive_paths[drive])
                .into_iter()
                .find(|f| f.file_name() == Some(name))
                .unwrap();
            flip_bytes(&file, &mut rng, 3);
            corrupted.push(file);
        }
    }
    assert_eq!(corrupted.len(), 24);
    for (key, data) in &objects {
        assert_eq!(get(&client, key).await, *data, "{key}");
    }
    // The healer rewrites every corrupt shard to exactly what was stored.
    let healed = wait_until(Duration::from_secs(60), || {
        files
            .iter()
            .zip(&originals)
            .all(|(f, o)| std::fs::read(f).is_ok_and(|now| now == *o))
    });
    let differing: Vec<&PathBuf> = files
        .iter()
        .zip(&originals)
        .filter(|(f, o)| std::fs::read(f).map_or(true, |now| now != **o))
        .map(|(f, _)| f)
        .collect();
    assert!(
        healed,
        "shards still differ after healing: {differing:?}\n{}",
        server.log_text()
    );
    assert!(server.log_text().contains("object healed"));
}

#[tokio::test]
async fn issue_5_a_write_with_a_drive_failing_is_healed_when_it_returns() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    let away = server.drive_paths[3].with_extension("away");
    std::fs::rename(&server.drive_paths[3], &away).unwrap();
    let objects: Vec<(String, Vec<u8>)> = [10 << 10, 600 << 10, 3 << 20]
        .iter()
        .enumerate()
        .map(|(i, size)| (format!("while-away-{i}"), test_data(*size, 40 + i as u64)))
        .collect();
    for (key, data) in &objects {
        put(&client, key, data).await;
    }
    assert!(server.log_text().contains("queued for healing"));
    // The drive returns, without a restart.
    std::fs::rename(&away, &server.drive_paths[3]).unwrap();
    let returned = server.drive_paths[3].clone();
    assert!(
        wait_until(Duration::from_secs(30), || shard_files(&returned).len()
            == 2),
        "the two file-backed objects' shards reach the returned drive: {}",
        server.log_text()
    );
    // Prove it holds correct data: take two other drives away and read.
    let heal_log = || server.log_text().matches("object healed").count();
    assert!(
        wait_until(Duration::from_secs(30), || heal_log() >= 3),
        "{}",
        server.log_text()
    );
    for drive in &server.drive_paths[..2] {
        std::fs::rename(drive, drive.with_extension("gone")).unwrap();
    }
    for (key, data) in &objects {
        assert_eq!(
            get(&client, key).await,
            *data,
            "{key} from the healed drive and one other"
        );
    }
}

#[tokio::test]
async fn issue_5_a_wiped_drive_is_refilled_and_then_holds_correct_data() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    let objects: Vec<(String, Vec<u8>)> = (0..24u64)
        .map(|i| {
            let size = [1 << 10, 300 << 10, (5 << 20) / 2][(i % 3) as usize];
            (format!("dir{}/obj{i}", i % 4), test_data(size, 100 + i))
        })
        .collect();
    for (key, data) in &objects {
        put(&client, key, data).await;
    }
    // The drive's whole content goes while the server runs.
    let target = server.drive_paths[1].clone();
    wipe(&target);
    assert!(
        wait_until(Duration::from_secs(60), || server
            .log_text()
            .contains("refill of a replaced drive complete")),
        "{}",
        server.log_text()
    );
    assert_eq!(
        shard_files(&target).len(),
        shard_files(&server.drive_paths[0]).len(),
        "every file-backed object has its shard on the refilled drive"
    );
    // Refilled without failures: listings may rely on it again (issue 6).
    assert!(
        wait_until(Duration::from_secs(10), || server
            .log_text()
            .contains("refilled drive marked complete")),
        "{}",
        server.log_text()
    );
    // Parity-many other drives become unusable: the refilled drive's data is needed.
    for drive in [&server.drive_paths[0], &server.drive_paths[2]] {
        std::fs::rename(drive, drive.with_extension("gone")).unwrap();
    }
    for (key, data) in &objects {
        assert_eq!(
            get(&client, key).await,
            *data,
            "{key} from the refilled drive and one other"
        );
    }
}

#[tokio::test]
async fn issue_5_a_refill_killed_midway_resumes_after_a_restart() {
    // A slow refill: it rests 19 parts in 20.
    let options = ServerOptions::drives(4).env("CAIRN_HEAL_DUTY", "0.05");
    let mut server = TestServer::start(options);
    let client = server.client();
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    let objects: Vec<(String, Vec<u8>)> = (0..120u64)
        .map(|i| (format!("obj{i:03}"), test_data(300 << 10, 500 + i)))
        .collect();
    for (key, data) in &objects {
        put(&client, key, data).await;
    }
    wipe(&server.drive_paths[3]);
    assert!(
        wait_until(Duration::from_secs(60), || server
            .log_text()
            .contains("refill progress saved")),
        "{}",
        server.log_text()
    );
    assert!(
        !server
            .log_text()
            .contains("refill of a replaced drive complete"),
        "too fast to interrupt"
    );
    server.kill();
    let before = server.log_text();
    // Faster after the restart, so the test ends quickly.
    server.options.env.retain(|(k, _)| k != "CAIRN_HEAL_DUTY");
    server.spawn().unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || server
            .log_text()
            .contains("refill of a replaced drive complete")),
        "{}",
        server.log_text()
    );
    let after = &server.log_text()[before.len()..];
    assert!(
        after.contains("resuming the refill of a replaced drive where it stopped"),
        "{after}"
    );
    assert!(
        !after.contains("refilling a replaced drive"),
        "it resumed, not restarted: {after}"
    );
    let refilled = shard_files(&server.drive_paths[3]).len();
    assert_eq!(
        refilled,
        objects.len(),
        "one shard file per object (150 KiB shards are not inline): {after}"
    );
    let client = server.client();
    for drive in [&server.drive_paths[0], &server.drive_paths[1]] {
        std::fs::rename(drive, drive.with_extension("gone")).unwrap();
    }
    for (key, data) in objects.iter().step_by(7) {
        assert_eq!(get(&client, key).await, *data, "{key}");
    }
}

#[tokio::test]
async fn issue_5_orphans_of_a_killed_put_are_removed_after_the_grace_period_and_nothing_else() {
    use std::io::Write;
    let grace = Duration::from_secs(4);
    let options = ServerOptions::drives(4)
        .env("CAIRN_SCANNER_INTERVAL", "1s")
        .env("CAIRN_SCANNER_ORPHAN_GRACE", "4s");
    let mut server = TestServer::start(options);
    let client = server.client();
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    let objects: Vec<(String, Vec<u8>)> = (0..6u64)
        .map(|i| {
            (
                format!("kept{i}"),
                test_data(if i % 2 == 0 { 600 << 10 } else { 3 << 20 }, 900 + i),
            )
        })
        .collect();
    for (key, data) in &objects {
        put(&client, key, data).await;
    }
    let kept: Vec<PathBuf> = server
        .drive_paths
        .iter()
        .flat_map(|d| shard_files(d))
        .collect();
    assert_eq!(kept.len(), objects.len() * 4);
    // A 64 MiB PUT that sends 8 MiB and is then cut short by a SIGKILL.
    let path = format!("/{BUCKET}/killed");
    let headers = common::signed_headers(
        &server.addr,
        "PUT",
        &path,
        &[],
        "UNSIGNED-PAYLOAD",
        &[("content-length", (64u64 << 20).to_string())],
    );
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    let mut head = format!("PUT {path} HTTP/1.1\r\n");
    for (name, value) in &headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&test_data(8 << 20, 7)).unwrap();
    let drives = server.drive_paths.clone();
    let all_files = || -> Vec<PathBuf> { drives.iter().flat_map(|d| shard_files(d)).collect() };
    assert!(
        wait_until(Duration::from_secs(20), || all_files().len() > kept.len()),
        "the PUT wrote shard files"
    );
    server.kill();
    let killed_at = std::time::Instant::now();
    drop(stream);
    let orphans: Vec<PathBuf> = all_files()
        .into_iter()
        .filter(|f| !kept.contains(f))
        .collect();
    assert_eq!(
        orphans.len(),
        4,
        "one partial shard file per drive: {orphans:?}"
    );
    server.spawn().unwrap();
    // Younger than the grace period: kept (checked only while that holds).
    std::thread::sleep(Duration::from_millis(1500));
    if killed_at.elapsed() < grace {
        assert!(
            orphans.iter().all(|f| f.exists()),
            "removed before the grace period"
        );
    }
    assert!(
        wait_until(Duration::from_secs(30), || orphans
            .iter()
            .all(|f| !f.exists())),
        "orphans not removed: {}",
        server.log_text()
    );
    assert!(server.log_text().contains("removed an orphan shard file"));
    // Nothing else went.
    assert!(
        kept.iter().all(|f| f.exists()),
        "a referenced shard file was removed"
    );
    let client = server.client();
    for (key, data) in &objects {
        assert_eq!(get(&client, key).await, *data);
    }
    let err = client
        .head_object()
        .bucket(BUCKET)
        .key("killed")
        .send()
        .await
        .unwrap_err();
    assert_eq!(common::sdk_status(&err), Some(404));
}

#[tokio::test]
async fn issue_5_the_deep_scan_heals_corruption_no_read_met() {
    let options = ServerOptions::drives(4)
        .env("CAIRN_SCANNER_INTERVAL", "1s")
        .env("CAIRN_SCANNER_DEEP_PERCENT", "100");
    let server = TestServer::start(options);
    let client = server.client();
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    let data = test_data(3 << 20, 77);
    put(&client, "unread", &data).await;
    let files: Vec<PathBuf> = server
        .drive_paths
        .iter()
        .flat_map(|d| shard_files(d))
        .collect();
    let originals: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let mut rng = Rng(99);
    flip_bytes(&files[0], &mut rng, 2);
    flip_bytes(&files[3], &mut rng, 2);
    assert!(
        wait_until(Duration::from_secs(30), || files
            .iter()
            .zip(&originals)
            .all(|(f, o)| std::fs::read(f).is_ok_and(|now| now == *o))),
        "{}",
        server.log_text()
    );
    // The pass that healed it ends a moment after the shards are rewritten.
    assert!(
        wait_until(Duration::from_secs(30), || server
            .log_text()
            .contains("scanner pass complete")),
        "{}",
        server.log_text()
    );
    assert!(
        !server.log_text().contains("object read in degraded mode"),
        "no GET was involved"
    );
    assert_eq!(get(&client, "unread").await, data);
}
