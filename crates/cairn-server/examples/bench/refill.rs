//! `bench refill [DIR] [MIB_OBJECTS] [SMALL_OBJECTS]`: how fast a replaced
//! drive is refilled, against the disk's sequential write bandwidth
//! measured in the same run, and what the refill does to foreground
//! latency: one object at a time and the default 4 side by side
//! (`CAIRN_HEAL_CONCURRENCY`) at the default `CAIRN_HEAL_DUTY` (0.5), and
//! 4 side by side unthrottled (1.0).
//!
//! For each object size (1 MiB, 64 KiB) and duty: start a server on 4
//! drives in DIR (EC 2+2), fill it, measure foreground latency for a few
//! seconds (one client alternating a 4 KiB PUT of a new key and a GET of an
//! existing object), drop the shard files' page cache, wipe drive 3's
//! content while the server runs, and measure the same latency until
//! `cairn admin heal status` shows the refill done. The refill's figures
//! come from its job (objects, bytes written to the drive, running time).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use serde_json::Value;

use super::{
    PASSWORD, Server, USER, cairn_binary, client, disk_write_baseline, drive, drop_page_cache,
    pseudo_random, spawn_server_with,
};

/// Foreground probe: how long one phase measures before the refill.
const BASELINE: Duration = Duration::from_secs(8);
/// No refill may take longer than this.
const REFILL_LIMIT: Duration = Duration::from_secs(900);

fn status(server: &Server) -> Value {
    let out = Command::new(cairn_binary())
        .args(["admin", "heal", "status", "--json"])
        .env("CAIRN_ENDPOINT", &server.endpoint)
        .env("CAIRN_ROOT_USER", USER)
        .env("CAIRN_ROOT_PASSWORD", PASSWORD)
        .env("CAIRN_LOG", "error")
        .output()
        .expect("cairn admin");
    assert!(
        out.status.success(),
        "cairn admin: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

/// The refill job of the first set, if there is one.
fn refill_job(status: &Value) -> Option<Value> {
    status["sets"][0]["jobs"]
        .as_array()?
        .iter()
        .find(|j| j["kind"] == "refill")
        .cloned()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Latencies (ms) of 4 KiB PUTs and of GETs of existing objects.
#[derive(Default)]
struct Probe {
    puts: Vec<f64>,
    gets: Vec<f64>,
}

impl Probe {
    async fn step(&mut self, client: &Client, i: u64, objects: u64, small: &Bytes) {
        let at = Instant::now();
        client
            .put_object()
            .bucket("bench")
            // A fixed set of keys: new keys would keep the refill busy.
            .key(format!("probe/{:03}", i % 100))
            .body(ByteStream::from(small.clone()))
            .send()
            .await
            .expect("probe PUT");
        self.puts.push(at.elapsed().as_secs_f64() * 1000.0);
        let at = Instant::now();
        let out = client
            .get_object()
            .bucket("bench")
            // A few objects only: a degraded GET queues its object for
            // healing, which would otherwise do the refill's work.
            .key(format!("obj/{:08}", i % objects.min(50)))
            .send()
            .await
            .expect("probe GET");
        out.body.collect().await.expect("probe body");
        self.gets.push(at.elapsed().as_secs_f64() * 1000.0);
    }

    fn summary(&mut self) -> (f64, f64, f64, f64) {
        self.puts.sort_by(f64::total_cmp);
        self.gets.sort_by(f64::total_cmp);
        (
            percentile(&self.puts, 0.5),
            percentile(&self.puts, 0.99),
            percentile(&self.gets, 0.5),
            percentile(&self.gets, 0.99),
        )
    }
}

struct Figures {
    size: usize,
    duty: &'static str,
    concurrency: &'static str,
    objects: u64,
    seconds: f64,
    drive_bytes: u64,
    object_bytes: u64,
    disk_write_mibs: f64,
    before: (f64, f64, f64, f64),
    during: (f64, f64, f64, f64),
}

async fn run_one(
    dir: &Path,
    size: usize,
    count: u64,
    (duty, concurrency): (&'static str, &'static str),
) -> Figures {
    std::fs::create_dir_all(dir).unwrap();
    eprintln!("measuring the disk under {} with dd ...", dir.display());
    let disk_write_mibs = disk_write_baseline(dir);
    let _ = std::fs::remove_file(dir.join("dd-test"));
    let drives: Vec<String> = (1..=4)
        .map(|i| dir.join(format!("d{i}")).display().to_string())
        .collect();
    let server = spawn_server_with(
        "127.0.0.1:0",
        &drives,
        &[
            ("CAIRN_HEAL_DUTY", duty.to_owned()),
            ("CAIRN_HEAL_CONCURRENCY", concurrency.to_owned()),
        ],
    )
    .wait_started();
    let client = client(&server.endpoint);
    client.create_bucket().bucket("bench").send().await.unwrap();
    eprintln!("{count} objects of {} KiB ...", size >> 10);
    let body = Bytes::from(pseudo_random(size, 11));
    let c = client.clone();
    let (put, _) = drive(8, count, Duration::from_secs(900), move |i| {
        let (c, body) = (c.clone(), body.clone());
        async move {
            c.put_object()
                .bucket("bench")
                .key(format!("obj/{i:08}"))
                .body(ByteStream::from(body))
                .send()
                .await
                .expect("PUT");
        }
    })
    .await;
    assert_eq!(put, count, "every object stored");

    let small = Bytes::from(pseudo_random(4 << 10, 12));
    let mut before = Probe::default();
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < BASELINE {
        before.step(&client, i, count, &small).await;
        i += 1;
    }

    drop_page_cache(dir);
    let target = PathBuf::from(&drives[2]);
    for entry in std::fs::read_dir(&target).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
    eprintln!("drive 3 wiped; probing until its refill is done ...");
    let mut during = Probe::default();
    let wiped = Instant::now();
    let mut last_look = Instant::now() - Duration::from_secs(1);
    let mut running = false;
    let job = loop {
        assert!(wiped.elapsed() < REFILL_LIMIT, "the refill did not end");
        if last_look.elapsed() >= Duration::from_millis(500) {
            last_look = Instant::now();
            if let Some(job) = refill_job(&status(&server)) {
                if job["done"] == true {
                    break job;
                }
                running = job["objects"].as_u64().unwrap_or(0) > 0;
            }
        }
        if running {
            during.step(&client, i, count, &small).await;
            i += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let drive_bytes = status(&server)["sets"][0]["drives"][2]["bytes_written"]
        .as_u64()
        .unwrap_or(0);
    let objects = job["objects"].as_u64().unwrap_or(0);
    eprintln!("refill done: {job}");
    let seconds = (job["updated_ms"].as_i64().unwrap_or(0)
        - job["started_ms"].as_i64().unwrap_or(0)) as f64
        / 1000.0;
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
    Figures {
        size,
        duty,
        concurrency,
        objects,
        seconds,
        drive_bytes,
        object_bytes: job["bytes"].as_u64().unwrap_or(0),
        disk_write_mibs,
        before: before.summary(),
        during: during.summary(),
    }
}

pub async fn main(mut args: impl Iterator<Item = String>) {
    let dir = args.next().map_or_else(
        || PathBuf::from("/var/tmp").join(format!("cairn-bench-refill-{}", std::process::id())),
        PathBuf::from,
    );
    let mib_objects: u64 = args
        .next()
        .map_or(1500, |s| s.parse().expect("MIB_OBJECTS"));
    let small_objects: u64 = args
        .next()
        .map_or(6000, |s| s.parse().expect("SMALL_OBJECTS"));
    let mut figures = Vec::new();
    for (size, count) in [(1 << 20, mib_objects), (64 << 10, small_objects)] {
        for config in [("0.5", "1"), ("0.5", "4"), ("1.0", "4")] {
            let run = dir.join(format!("{}k-{}-{}", size >> 10, config.0, config.1));
            figures.push(run_one(&run, size, count, config).await);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "| Objects | CAIRN_HEAL_DUTY, _CONCURRENCY | Refill time | Objects/s | Object data GiB/min | Written to the drive | Disk sequential write (dd) | Fraction of the disk |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for f in &figures {
        let written_mibs = f.drive_bytes as f64 / (1 << 20) as f64 / f.seconds;
        println!(
            "| {} x {} KiB | {}, {} | {:.1} s | {:.0} | {:.2} | {:.0} MiB/s | {:.0} MiB/s | {:.3} |",
            f.objects,
            f.size >> 10,
            f.duty,
            f.concurrency,
            f.seconds,
            f.objects as f64 / f.seconds,
            f.object_bytes as f64 / (1u64 << 30) as f64 / (f.seconds / 60.0),
            written_mibs,
            f.disk_write_mibs,
            written_mibs / f.disk_write_mibs,
        );
    }
    println!();
    println!(
        "| Objects | CAIRN_HEAL_DUTY, _CONCURRENCY | 4 KiB PUT p50 / p99, before | during refill | GET p50 / p99, before | during refill | p99 change (PUT, GET) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for f in &figures {
        let (bp50, bp99, bg50, bg99) = f.before;
        let (dp50, dp99, dg50, dg99) = f.during;
        println!(
            "| {} KiB | {}, {} | {bp50:.1} / {bp99:.1} ms | {dp50:.1} / {dp99:.1} ms | {bg50:.1} / {bg99:.1} ms | {dg50:.1} / {dg99:.1} ms | {:.2}x, {:.2}x |",
            f.size >> 10,
            f.duty,
            f.concurrency,
            dp99 / bp99,
            dg99 / bg99,
        );
    }
}
