//! Throughput and operation-rate figures for `docs/benchmarks.md`, with the
//! disk's own sequential bandwidth measured in the same run as the baseline.
//!
//! ```text
//! cargo run --release -p cairn-server --example bench -- [DIR] [SECONDS]
//! cargo run --release -p cairn-server --example bench -- cluster [DIR] [SECONDS]
//! cargo run --release -p cairn-server --example bench -- refill [DIR] [MIB_OBJECTS] [SMALL_OBJECTS]
//! ```
//!
//! DIR (default: a new directory under /var/tmp) must be on the disk to
//! measure; SECONDS (default 15) bounds each small-object phase. The program
//! starts `cairn server` (the release binary next to this example) on four
//! drive directories in DIR, drives it with the `aws-sdk-s3` crate from this
//! process, and prints a Markdown table.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

#[path = "bench/refill.rs"]
mod refill;

const USER: &str = "bench-admin";
const PASSWORD: &str = "bench-password";
const BIG: usize = 64 << 20;
const BIG_COUNT: usize = 24;
const BIG_CONCURRENCY: usize = 4;
const SMALL: usize = 4 << 10;
const SMALL_CONCURRENCY: usize = 32;
const DD_MIB: usize = 1024;

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn run_dd(args: &[String]) -> f64 {
    let start = Instant::now();
    let status = Command::new("dd")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .expect("dd");
    assert!(status.success(), "dd {args:?} failed");
    start.elapsed().as_secs_f64()
}

/// Sequential write bandwidth of the disk under `dir`, in MiB/s, with
/// O_DIRECT and a final fsync so that the page cache does not flatter it.
/// Leaves the written file for [`disk_read_baseline`].
fn disk_write_baseline(dir: &Path) -> f64 {
    let shm = PathBuf::from("/dev/shm").join(format!("cairn-bench-src-{}", std::process::id()));
    std::fs::write(&shm, pseudo_random(DD_MIB << 20, 42)).expect("write source in /dev/shm");
    let secs = run_dd(&[
        format!("if={}", shm.display()),
        format!("of={}", dir.join("dd-test").display()),
        "bs=1M".into(),
        "oflag=direct".into(),
        "conv=fsync".into(),
    ]);
    let _ = std::fs::remove_file(&shm);
    DD_MIB as f64 / secs
}

/// Sequential read bandwidth of the disk under `dir`, in MiB/s, with O_DIRECT.
fn disk_read_baseline(dir: &Path) -> f64 {
    let target = dir.join("dd-test");
    let secs = run_dd(&[
        format!("if={}", target.display()),
        "of=/dev/null".into(),
        "bs=1M".into(),
        "iflag=direct".into(),
    ]);
    DD_MIB as f64 / secs
}

/// Asks the kernel to drop the cached pages of every shard file under
/// `dir` (GNU dd's `iflag=nocache` with `count=0`); returns how many.
fn drop_page_cache(dir: &Path) -> usize {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.components().any(|c| c.as_os_str() == "data") {
                files.push(path);
            }
        }
    }
    for file in &files {
        let _ = Command::new("dd")
            .arg(format!("if={}", file.display()))
            .args(["iflag=nocache", "count=0", "status=none"])
            .status();
    }
    files.len()
}

struct Server {
    child: std::process::Child,
    endpoint: String,
}

impl Server {
    /// CPU seconds (user + system) the server has used so far.
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name, which is in parentheses.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // utime and stime are fields 14 and 15 of the line: 11 and 12 after ')'.
        (ticks(11) + ticks(12)) / 100.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(dir: &Path) -> Server {
    let drives: Vec<String> = (1..=4)
        .map(|i| dir.join(format!("d{i}")).display().to_string())
        .collect();
    spawn_server("127.0.0.1:0", &drives).wait_started()
}

/// The `cairn` binary next to this example.
fn cairn_binary() -> PathBuf {
    let binary = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("cairn"))
        .expect("target dir");
    assert!(
        binary.exists(),
        "build the server first: cargo build --release -p cairn-server"
    );
    binary
}

/// Starts `cairn server` without waiting for it.
fn spawn_server(address: &str, drives: &[String]) -> Server {
    spawn_server_with(address, drives, &[])
}

fn spawn_server_with(address: &str, drives: &[String], env: &[(&str, String)]) -> Server {
    let child = Command::new(cairn_binary())
        .args(["server", "--address", address])
        .args(drives)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("CAIRN_ROOT_USER", USER)
        .env("CAIRN_ROOT_PASSWORD", PASSWORD)
        .env("CAIRN_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start cairn");
    Server {
        child,
        endpoint: String::new(),
    }
}

impl Server {
    /// Reads the start-up banner up to "Started in"; keeps the endpoint.
    fn wait_started(mut self) -> Server {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(self.child.stdout.take().unwrap()).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(addr) = line.split("listening on ").nth(1) {
                self.endpoint = format!("http://{}", addr.trim_end_matches(')'));
            }
            if line.starts_with("Started in") {
                break;
            }
        }
        assert!(!self.endpoint.is_empty(), "endpoint in banner");
        // Keep draining stdout so the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        self
    }
}

/// A 4-node cluster on 127.0.0.1 with one drive each under `dir`: one
/// erasure set of 4 (2 data + 2 parity), the same layout as [`start_server`]
/// on 4 drives, so the two differ only by the internode hops.
fn start_cluster(dir: &Path) -> Vec<Server> {
    let ports: Vec<u16> = (0..4)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    let drives: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(n, port)| {
            format!(
                "http://127.0.0.1:{port}{}",
                dir.join(format!("n{}", n + 1)).display()
            )
        })
        .collect();
    let spawned: Vec<Server> = ports
        .iter()
        .map(|port| spawn_server(&format!("127.0.0.1:{port}"), &drives))
        .collect();
    spawned.into_iter().map(Server::wait_started).collect()
}

fn client(endpoint: &str) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(USER, PASSWORD, None, None, "bench"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    Client::from_conf(config)
}

/// Runs `op(i)` from `concurrency` tasks until `count` ops are done or
/// `limit` passes; returns (ops done, seconds).
async fn drive<F, Fut>(concurrency: usize, count: u64, limit: Duration, op: F) -> (u64, f64)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + limit;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (op, next, done) = (op.clone(), next.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || Instant::now() >= deadline {
                    return;
                }
                op(i).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    (done.load(Ordering::Relaxed), start.elapsed().as_secs_f64())
}

/// 64 MiB PUT and GET throughput (MiB/s) and 4 KiB PUT rate (ops/s) of
/// the servers behind `clients`, operation `i` going to `clients[i % n]`.
struct CoreFigures {
    put_mibs: f64,
    get_mibs: f64,
    small_put_ops: f64,
    cpu_per_gib_put: f64,
}

async fn core_figures(
    clients: Vec<Client>,
    cpu: &dyn Fn() -> f64,
    dir: &Path,
    seconds: u64,
) -> CoreFigures {
    let clients = Arc::new(clients);
    for c in clients.iter().take(1) {
        c.create_bucket().bucket("bench").send().await.unwrap();
    }
    let big = Bytes::from(pseudo_random(BIG, 7));
    let cs = clients.clone();
    let cpu_before = cpu();
    let (puts, put_secs) = drive(
        BIG_CONCURRENCY,
        BIG_COUNT as u64,
        Duration::from_secs(600),
        move |i| {
            let (c, big) = (cs[i as usize % cs.len()].clone(), big.clone());
            async move {
                c.put_object()
                    .bucket("bench")
                    .key(format!("big/{i}"))
                    .body(ByteStream::from(big))
                    .send()
                    .await
                    .expect("PUT");
            }
        },
    )
    .await;
    let cpu_per_gib_put = (cpu() - cpu_before) / (puts as f64 * 64.0 / 1024.0);
    drop_page_cache(dir);
    let cs = clients.clone();
    let (gets, get_secs) = drive(
        BIG_CONCURRENCY,
        BIG_COUNT as u64,
        Duration::from_secs(600),
        move |i| {
            let c = cs[(i as usize + 1) % cs.len()].clone();
            async move {
                let out = c
                    .get_object()
                    .bucket("bench")
                    .key(format!("big/{i}"))
                    .send()
                    .await
                    .expect("GET");
                let mut body = out.body;
                let mut n = 0;
                while let Some(chunk) = body.try_next().await.expect("body") {
                    n += chunk.len();
                }
                assert_eq!(n, BIG);
            }
        },
    )
    .await;
    let small = Bytes::from(pseudo_random(SMALL, 9));
    let cs = clients.clone();
    let (small_puts, small_secs) = drive(
        SMALL_CONCURRENCY,
        u64::MAX,
        Duration::from_secs(seconds),
        move |i| {
            let (c, small) = (cs[i as usize % cs.len()].clone(), small.clone());
            async move {
                c.put_object()
                    .bucket("bench")
                    .key(format!("small/{i:08}"))
                    .body(ByteStream::from(small))
                    .send()
                    .await
                    .expect("PUT");
            }
        },
    )
    .await;
    CoreFigures {
        put_mibs: puts as f64 * 64.0 / put_secs,
        get_mibs: gets as f64 * 64.0 / get_secs,
        small_put_ops: small_puts as f64 / small_secs,
        cpu_per_gib_put,
    }
}

/// `bench cluster [DIR] [SECONDS]`: the same figures for one node with 4
/// drives and for 4 nodes with 1 drive each (same erasure layout), in
/// alternating rounds, with their ratios.
async fn cluster_main(mut args: impl Iterator<Item = String>) {
    let dir = args.next().map_or_else(
        || PathBuf::from("/var/tmp").join(format!("cairn-bench-cluster-{}", std::process::id())),
        PathBuf::from,
    );
    let seconds: u64 = args.next().map_or(10, |s| s.parse().expect("SECONDS"));
    let rounds = 2;
    let mut single = Vec::new();
    let mut multi = Vec::new();
    for round in 0..rounds {
        for clustered in [false, true] {
            let run_dir = dir.join(format!(
                "r{round}-{}",
                if clustered { "cluster" } else { "single" }
            ));
            std::fs::create_dir_all(&run_dir).unwrap();
            eprintln!(
                "round {} {} ...",
                round + 1,
                if clustered {
                    "4 nodes x 1 drive"
                } else {
                    "1 node x 4 drives"
                }
            );
            let servers = if clustered {
                start_cluster(&run_dir)
            } else {
                vec![start_server(&run_dir)]
            };
            let clients: Vec<Client> = servers.iter().map(|s| client(&s.endpoint)).collect();
            let cpu = || servers.iter().map(Server::cpu_seconds).sum::<f64>();
            let figures = core_figures(clients, &cpu, &run_dir, seconds).await;
            drop(servers);
            let _ = std::fs::remove_dir_all(&run_dir);
            if clustered {
                multi.push(figures)
            } else {
                single.push(figures)
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let median = |v: &[CoreFigures], f: fn(&CoreFigures) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(|a, b| a.total_cmp(b));
        x[x.len() / 2]
    };
    println!(
        "| Figure ({rounds} alternating rounds, the better round) | 1 node, 4 drives | 4 nodes, 1 drive each | Cluster / single |"
    );
    println!("|---|---|---|---|");
    type Row = (&'static str, fn(&CoreFigures) -> f64, &'static str);
    let rows: [Row; 4] = [
        ("64 MiB PUT, 4 clients", |f| f.put_mibs, "MiB/s"),
        (
            "64 MiB GET, 4 clients, page cache dropped",
            |f| f.get_mibs,
            "MiB/s",
        ),
        ("4 KiB PUT, 32 clients", |f| f.small_put_ops, "ops/s"),
        (
            "Server CPU per GiB stored (all processes)",
            |f| f.cpu_per_gib_put,
            "s",
        ),
    ];
    for (name, f, unit) in rows {
        let (a, b) = (median(&single, f), median(&multi, f));
        println!("| {name} | {a:.1} {unit} | {b:.1} {unit} | {:.2} |", b / a);
    }
}

/// The hashes of the PUT path on one core, over the same 256 MiB, against
/// OpenSSL's assembly (`openssl speed -evp`) in the same run: the ceiling
/// MD5 puts on large-PUT throughput (issue 6, item 3).
fn hashes() {
    use md5::Digest;
    let data = pseudo_random(256 << 20, 3);
    let rate = |name: &str, f: &dyn Fn(&[u8])| {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let start = std::time::Instant::now();
            f(&data);
            best = best.min(start.elapsed().as_secs_f64());
        }
        println!("{name:<28} {:>7.0} MiB/s", 256.0 / best);
    };
    rate("md5 (md-5 crate)", &|d| {
        std::hint::black_box(md5::Md5::digest(d));
    });
    // The compression function alone, four quarters side by side, on each
    // path this CPU runs: their combined rate.
    for path in cairn_erasure::Md5Path::available() {
        rate(&format!("md5, 4 lanes, {path:?}"), &|d| {
            let quarter = d.len() / 4 / 64 * 64;
            let states = [(); 4].map(|_| cairn_erasure::Md5State::default());
            let mut lanes = cairn_erasure::Md5Lanes::on(path, &states);
            for at in (0..quarter).step_by(64) {
                lanes.compress(std::array::from_fn(|l| {
                    d[l * quarter + at..]
                        .first_chunk::<64>()
                        .expect("a whole block")
                }));
            }
            std::hint::black_box(&lanes);
        });
    }
    // Four PUT streams' MD5s on Cairn's hashing thread, side by side: the
    // figure is their combined rate, on the thread's one core.
    let shared = bytes::Bytes::copy_from_slice(&data);
    rate("md5, 4 streams side by side", &|_| {
        // A runtime of its own, on a thread of its own: `main` is async.
        let hash = || async {
            let quarter = shared.len() / 4;
            let streams = (0..4).map(|s| {
                let stream = shared.slice(s * quarter..(s + 1) * quarter);
                async move {
                    let mut md5 = cairn_object::Md5Stream::default();
                    for start in (0..stream.len()).step_by(1 << 20) {
                        let chunk = stream.slice(start..(start + (1 << 20)).min(stream.len()));
                        md5.push(vec![chunk], ());
                    }
                    md5.finish().await.expect("hashing thread").finalize()
                }
            });
            std::hint::black_box(futures::future::join_all(streams).await);
        };
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread().build();
                runtime.unwrap().block_on(hash());
            });
        });
    });
    rate("sha256 (sha2 crate)", &|d| {
        std::hint::black_box(sha2::Sha256::digest(d));
    });
    rate("xxh3-64 (bitrot)", &|d| {
        std::hint::black_box(xxhash_rust::xxh3::xxh3_64(d));
    });
    for alg in ["md5", "sha256"] {
        let out = Command::new("openssl")
            .args(["speed", "-evp", alg, "-bytes", "1048576", "-seconds", "2"])
            .output();
        match out {
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout);
                let kib: f64 = text
                    .lines()
                    .last()
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.trim_end_matches('k').parse().ok())
                    .unwrap_or(0.0);
                println!(
                    "{:<28} {:>7.0} MiB/s",
                    format!("{alg} (openssl, asm)"),
                    kib * 1000.0 / 1048576.0
                );
            }
            Err(err) => println!("openssl speed {alg}: {err}"),
        }
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("cluster") {
        args.next();
        cluster_main(args).await;
        return;
    }
    if args.peek().map(String::as_str) == Some("refill") {
        args.next();
        refill::main(args).await;
        return;
    }
    if args.peek().map(String::as_str) == Some("hashes") {
        hashes();
        return;
    }
    let dir = args.next().map_or_else(
        || PathBuf::from("/var/tmp").join(format!("cairn-bench-{}", std::process::id())),
        PathBuf::from,
    );
    let seconds: u64 = args.next().map_or(15, |s| s.parse().expect("SECONDS"));
    std::fs::create_dir_all(&dir).unwrap();

    let server = start_server(&dir);
    let client = client(&server.endpoint);
    client.create_bucket().bucket("bench").send().await.unwrap();

    // Each baseline runs right before the phase it is compared with: the
    // machine is shared, and its disk bandwidth swings within minutes.
    eprintln!("measuring the disk under {} with dd ...", dir.display());
    let disk_write = disk_write_baseline(&dir);
    eprintln!("64 MiB PUT x{BIG_COUNT} at concurrency {BIG_CONCURRENCY} ...");
    let big = Bytes::from(pseudo_random(BIG, 7));
    let c = client.clone();
    let cpu_before = server.cpu_seconds();
    let (puts, put_secs) = drive(
        BIG_CONCURRENCY,
        BIG_COUNT as u64,
        Duration::from_secs(600),
        move |i| {
            let (c, big) = (c.clone(), big.clone());
            async move {
                c.put_object()
                    .bucket("bench")
                    .key(format!("big/{i}"))
                    .body(ByteStream::from(big))
                    .send()
                    .await
                    .expect("PUT");
            }
        },
    )
    .await;
    let put_mibs = (puts as f64 * 64.0) / put_secs;
    let put_cpu_per_gib = (server.cpu_seconds() - cpu_before) / (puts as f64 * 64.0 / 1024.0);

    let disk_read = disk_read_baseline(&dir);
    let _ = std::fs::remove_file(dir.join("dd-test"));
    // Reads must come from the disk, not from the page cache the PUTs filled.
    let dropped = drop_page_cache(&dir);
    eprintln!("dropped the page cache of {dropped} shard files");
    eprintln!("64 MiB GET x{BIG_COUNT} at concurrency {BIG_CONCURRENCY} ...");
    let c = client.clone();
    let cpu_before = server.cpu_seconds();
    let (gets, get_secs) = drive(
        BIG_CONCURRENCY,
        BIG_COUNT as u64,
        Duration::from_secs(600),
        move |i| {
            let c = c.clone();
            async move {
                let out = c
                    .get_object()
                    .bucket("bench")
                    .key(format!("big/{i}"))
                    .send()
                    .await
                    .expect("GET");
                let mut body = out.body;
                let mut n = 0;
                while let Some(chunk) = body.try_next().await.expect("body") {
                    n += chunk.len();
                }
                assert_eq!(n, BIG);
            }
        },
    )
    .await;
    let get_mibs = (gets as f64 * 64.0) / get_secs;
    let get_cpu_per_gib = (server.cpu_seconds() - cpu_before) / (gets as f64 * 64.0 / 1024.0);

    eprintln!("4 KiB PUT at concurrency {SMALL_CONCURRENCY} for {seconds} s ...");
    let small = Bytes::from(pseudo_random(SMALL, 9));
    let c = client.clone();
    let (small_puts, small_put_secs) = drive(
        SMALL_CONCURRENCY,
        u64::MAX,
        Duration::from_secs(seconds),
        move |i| {
            let (c, small) = (c.clone(), small.clone());
            async move {
                c.put_object()
                    .bucket("bench")
                    .key(format!("small/{i:08}"))
                    .body(ByteStream::from(small))
                    .send()
                    .await
                    .expect("PUT");
            }
        },
    )
    .await;

    eprintln!("4 KiB GET at concurrency {SMALL_CONCURRENCY} for {seconds} s ...");
    let c = client.clone();
    let stored = small_puts;
    let (small_gets, small_get_secs) = drive(
        SMALL_CONCURRENCY,
        u64::MAX,
        Duration::from_secs(seconds),
        move |i| {
            let c = c.clone();
            async move {
                let out = c
                    .get_object()
                    .bucket("bench")
                    .key(format!("small/{:08}", i % stored))
                    .send()
                    .await
                    .expect("GET");
                let body = out.body.collect().await.expect("body");
                assert_eq!(body.into_bytes().len(), SMALL);
            }
        },
    )
    .await;
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);

    let put_ops = small_puts as f64 / small_put_secs;
    let get_ops = small_gets as f64 / small_get_secs;
    println!("| Figure | Value | Baseline in the same run | Ratio |");
    println!("|---|---|---|---|");
    println!("| Server CPU per GiB stored (64 MiB PUTs) | {put_cpu_per_gib:.2} s | | |");
    println!("| Server CPU per GiB served (64 MiB GETs) | {get_cpu_per_gib:.2} s | | |");
    println!("| Disk sequential write (dd, O_DIRECT, 1 GiB) | {disk_write:.0} MiB/s | | |");
    println!("| Disk sequential read (dd, O_DIRECT, 1 GiB) | {disk_read:.0} MiB/s | | |");
    println!(
        "| 64 MiB PUT, {BIG_CONCURRENCY} clients, EC 2+2 | {put_mibs:.0} MiB/s | disk write / 2 = {:.0} MiB/s (every byte is written twice) | {:.2} |",
        disk_write / 2.0,
        put_mibs / (disk_write / 2.0)
    );
    println!(
        "| 64 MiB GET, {BIG_CONCURRENCY} clients, EC 2+2, page cache dropped first | {get_mibs:.0} MiB/s | disk read = {disk_read:.0} MiB/s | {:.2} |",
        get_mibs / disk_read
    );
    println!(
        "| 4 KiB PUT, {SMALL_CONCURRENCY} clients | {put_ops:.0} ops/s ({small_puts} in {small_put_secs:.1} s) | | |"
    );
    println!(
        "| 4 KiB GET, {SMALL_CONCURRENCY} clients | {get_ops:.0} ops/s ({small_gets} in {small_get_secs:.1} s) | | |"
    );
}
