//! `cairn bench`: a load generator for any S3 endpoint (docs/bench.md).
//!
//! A run is phases: prepare (the objects `get`, `stat`, `list` and `delete`
//! need), the workload, and cleanup. Each worker owns one connection and
//! runs operations until the operation count or the duration is used up;
//! per operation kind it keeps counts, bytes, a latency histogram and errors
//! by S3 code. With `--server-pid` it also reads the server's CPU time and
//! resident memory from `/proc` around each phase.

pub(crate) mod payload;
mod stats;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use cairn_s3::Credentials;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::s3_client::{self as s3, Conn, OpError, OpResult, PayloadMode, Target, uri_encode};
use payload::{ChecksumAlgorithm, Generator, key_seed, mix};
use stats::{OpStats, Phase, ServerUsage};

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// PUT new objects.
    Put(RunArgs),
    /// GET prepared objects, whole.
    Get(RunArgs),
    /// HEAD prepared objects.
    Stat(RunArgs),
    /// List prepared objects, a page (ListObjectsV2) per operation.
    List(RunArgs),
    /// DELETE prepared objects, each once.
    Delete(RunArgs),
    /// Multipart uploads of new objects: create, parts, complete.
    Multipart(RunArgs),
    /// A weighted mix of get, put, stat, delete and list (`--mix`).
    Mixed(RunArgs),
    /// Print B's figures as multiples of A's, from two `--json` results.
    Compare {
        /// The baseline result.
        a: std::path::PathBuf,
        /// The result compared with it.
        b: std::path::PathBuf,
    },
}

#[derive(Args, Clone)]
struct RunArgs {
    /// The S3 endpoint; loopback only unless --allow-remote.
    #[arg(long, env = "CAIRN_ENDPOINT", default_value = "http://127.0.0.1:9000")]
    endpoint: String,
    /// Access key (default: the root user from CAIRN_ROOT_USER).
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key: Option<String>,
    /// Secret key (default: the root password from CAIRN_ROOT_PASSWORD).
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// The bucket; created when missing, and then removed by cleanup.
    #[arg(long, default_value = "cairn-bench")]
    bucket: String,
    /// Where the run's keys go (default: `cairn-bench/<random>/`).
    #[arg(long)]
    prefix: Option<String>,
    /// Object size: `4KiB`, `64MiB`, or `MIN-MAX` for sizes spread
    /// log-uniformly between the two.
    #[arg(long, default_value = "1MiB")]
    size: String,
    /// Operations in flight (one connection each).
    #[arg(long, short = 'c', default_value_t = 8)]
    concurrency: usize,
    /// How long the workload runs (`30s`, `2m`); 10 s when --count is not given.
    #[arg(long)]
    duration: Option<String>,
    /// At most this many operations in the workload (an hour at most).
    #[arg(long)]
    count: Option<u64>,
    /// Objects the prepare phase writes for get, stat, list, delete and mixed.
    #[arg(long, default_value_t = 100)]
    objects: u64,
    /// Operations in flight while preparing and cleaning up (default: --concurrency).
    #[arg(long)]
    prepare_concurrency: Option<usize>,
    /// Spread prepared keys over this many sub-prefixes (`<dir>/<key>`).
    #[arg(long, default_value_t = 0)]
    dirs: u64,
    /// The objects are already there (from a run with --no-cleanup and the
    /// same --prefix, --objects, --dirs): skip the prepare phase.
    #[arg(long)]
    skip_prepare: bool,
    /// Keep what the run wrote.
    #[arg(long)]
    no_cleanup: bool,
    /// Payload signing: `signed` (SHA-256 of the body) or `unsigned`.
    #[arg(long, value_enum, default_value = "signed")]
    payload: PayloadMode,
    /// Send Content-MD5 with every PUT.
    #[arg(long)]
    content_md5: bool,
    /// Send a trailing checksum (aws-chunked, unsigned payload).
    #[arg(long, value_enum)]
    checksum: Option<ChecksumAlgorithm>,
    /// Part size of multipart uploads.
    #[arg(long, default_value = "8MiB")]
    part_size: String,
    /// Delimiter for list (`/` lists the sub-prefixes of --dirs).
    #[arg(long)]
    delimiter: Option<String>,
    /// Keys per list page.
    #[arg(long, default_value_t = 1000)]
    max_keys: u32,
    /// Weights of mixed: `get=60,put=20,stat=10,delete=5,list=5`.
    #[arg(long, default_value = "get=60,put=20,stat=10,delete=5,list=5")]
    mix: String,
    /// Compare every GET body with what cairn bench wrote (with
    /// --skip-prepare: under the same --prefix).
    #[arg(long)]
    verify: bool,
    /// A server process to measure: CPU seconds and peak resident memory
    /// per phase, read from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Give up on a request after this long.
    #[arg(long, default_value = "120s")]
    timeout: String,
    /// Print the result as JSON on standard output.
    #[arg(long)]
    json: bool,
    /// Allow an endpoint that is not a loopback address.
    #[arg(long)]
    allow_remote: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Put,
    Get,
    Stat,
    List,
    Delete,
    Multipart,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Put => "put",
            Kind::Get => "get",
            Kind::Stat => "stat",
            Kind::List => "list",
            Kind::Delete => "delete",
            Kind::Multipart => "multipart",
        }
    }
}

/// `12.5MiB` as `(12.5, "MiB")`; `what` names the expected form in errors.
fn number_and_unit<'a>(text: &'a str, what: &str) -> Result<(f64, &'a str)> {
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number = number
        .parse()
        .map_err(|_| anyhow!("{text:?} is not {what}"))?;
    Ok((number, unit))
}

/// `64MiB`, `4k`, `1MB`, `100` (bytes).
fn parse_size(text: &str) -> Result<u64> {
    let text = text.trim();
    let (number, unit) = number_and_unit(text, "a size (like 4KiB or 64MiB)")?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        other => bail!("{text:?}: unknown size unit {other:?} (use B, KiB, MiB, GiB)"),
    };
    let bytes = number * scale;
    if !(0.0..=(5u64 << 40) as f64).contains(&bytes) {
        bail!("{text:?}: sizes go up to 5 TiB");
    }
    Ok(bytes as u64)
}

/// `10s`, `2m`, `500ms`, `1h`, `30` (seconds).
fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    let (number, unit) = number_and_unit(text, "a duration (like 30s or 2m)")?;
    let secs = match unit {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => bail!("{text:?}: unknown duration unit {other:?} (use ms, s, m, h)"),
    };
    if !(0.0..=86_400.0).contains(&secs) {
        bail!("{text:?}: durations go up to a day");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A fixed size, or sizes spread log-uniformly over a range.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Sizes {
    Fixed(u64),
    Range(u64, u64),
}

impl Sizes {
    fn parse(text: &str) -> Result<Sizes> {
        match text.split_once('-') {
            Some((min, max)) => {
                let (min, max) = (parse_size(min)?, parse_size(max)?);
                if min == 0 || min > max {
                    bail!("{text:?}: a size range is MIN-MAX with 0 < MIN <= MAX");
                }
                Ok(Sizes::Range(min, max))
            }
            None => Ok(Sizes::Fixed(parse_size(text)?)),
        }
    }

    /// The size of the object with `seed` (so that a reader knows it too).
    fn of(self, seed: u64) -> u64 {
        match self {
            Sizes::Fixed(size) => size,
            Sizes::Range(min, max) => {
                let unit = (mix(seed ^ 0x5EED) >> 11) as f64 / (1u64 << 53) as f64;
                let (lo, hi) = ((min as f64).ln(), (max as f64).ln());
                ((lo + unit * (hi - lo)).exp().round() as u64).clamp(min, max)
            }
        }
    }

    fn describe(self) -> String {
        match self {
            Sizes::Fixed(size) => size.to_string(),
            Sizes::Range(min, max) => format!("{min}-{max}"),
        }
    }
}

fn parse_mix(text: &str) -> Result<Vec<(Kind, u32)>> {
    let mut weights = Vec::new();
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        let (name, weight) = part
            .split_once('=')
            .ok_or_else(|| anyhow!("--mix {text:?}: expected op=weight pairs"))?;
        let kind = match name.trim() {
            "get" => Kind::Get,
            "put" => Kind::Put,
            "stat" => Kind::Stat,
            "delete" => Kind::Delete,
            "list" => Kind::List,
            other => bail!("--mix: {other:?} is not one of get, put, stat, delete, list"),
        };
        let weight: u32 = weight
            .trim()
            .parse()
            .map_err(|_| anyhow!("--mix: {weight:?} is not a whole number"))?;
        weights.push((kind, weight));
    }
    if weights.iter().map(|(_, w)| u64::from(*w)).sum::<u64>() == 0 {
        bail!("--mix {text:?}: the weights add up to nothing");
    }
    Ok(weights)
}

/// What every worker of a run shares.
struct Shared {
    generator: Generator,
    salt: u64,
    bucket: String,
    prefix: String,
    dirs: u64,
    sizes: Sizes,
    part_size: u64,
    objects: u64,
    delimiter: Option<String>,
    max_keys: u32,
    verify: bool,
    /// The next index for a new key (put, multipart, mixed puts).
    next_new: AtomicU64,
    /// Keys this run put that mixed may delete.
    deletable: Mutex<Vec<u64>>,
    /// What the progress line shows, reset at each phase.
    progress: Progress,
}

#[derive(Default)]
struct Progress {
    ops: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
}

impl Shared {
    fn key(&self, idx: u64) -> String {
        if self.dirs > 0 {
            format!("{}{:06}/{idx:08}", self.prefix, idx % self.dirs)
        } else {
            format!("{}{idx:08}", self.prefix)
        }
    }

    fn path(&self, key: &str) -> String {
        format!("/{}/{}", self.bucket, uri_encode(key, true))
    }

    fn seed(&self, key: &str) -> u64 {
        key_seed(self.salt, key)
    }
}

/// What a phase's workers do.
#[derive(Clone)]
enum Work {
    /// One kind of operation; keys by the operation's number.
    Only(Kind),
    /// Operations drawn by weight.
    Mixed(Arc<Vec<(Kind, u32)>>),
    /// Delete these key indices (cleanup).
    Remove(Arc<Vec<u64>>),
    /// Put these key indices (prepare).
    Fill(Arc<Vec<u64>>),
}

/// A worker's place in its listing.
#[derive(Default)]
struct ListState {
    token: Option<String>,
}

/// Runs one operation; returns its kind and the bytes (and keys) it moved.
async fn one_op(
    shared: &Shared,
    conn: &mut Conn,
    kind: Kind,
    idx: u64,
    listing: &mut ListState,
) -> OpResult<(u64, u64)> {
    match kind {
        Kind::Put => {
            let key = shared.key(idx);
            let seed = shared.seed(&key);
            let size = shared.sizes.of(seed);
            conn.put(&shared.generator, &shared.path(&key), "", seed, size)
                .await?;
            Ok((size, 0))
        }
        Kind::Get => {
            let key = shared.key(idx);
            let seed = shared.seed(&key);
            let verify = shared.verify.then_some((&shared.generator, seed));
            let got = conn.get(&shared.path(&key), verify).await?;
            if shared.verify && got != shared.sizes.of(seed) {
                return Err(OpError {
                    code: "BadContent".to_owned(),
                    message: format!("{key}: {got} bytes, {} written", shared.sizes.of(seed)),
                });
            }
            Ok((got, 0))
        }
        Kind::Stat => {
            conn.stat(&shared.path(&shared.key(idx))).await?;
            Ok((0, 0))
        }
        Kind::Delete => {
            conn.delete(&shared.path(&shared.key(idx))).await?;
            Ok((0, 0))
        }
        Kind::List => {
            let (keys, next) = conn
                .list_page(
                    &shared.bucket,
                    &shared.prefix,
                    shared.delimiter.as_deref(),
                    shared.max_keys,
                    listing.token.as_deref(),
                )
                .await?;
            listing.token = next;
            Ok((0, keys.len() as u64))
        }
        Kind::Multipart => {
            let key = shared.key(idx);
            let seed = shared.seed(&key);
            let size = shared.sizes.of(seed);
            let part = shared.part_size;
            let parts = size.div_ceil(part).max(1);
            let seeds = (0..parts).map(|n| {
                (
                    shared.seed(&format!("{key}#{n}")),
                    (size - n * part).min(part),
                )
            });
            conn.multipart(&shared.generator, &shared.path(&key), seeds)
                .await?;
            Ok((size, 0))
        }
    }
}

/// Reads a process's CPU time and resident memory from /proc.
#[derive(Clone, Copy)]
struct ServerProbe {
    pid: u32,
}

impl ServerProbe {
    /// User plus system CPU seconds (clock ticks of 1/100 s, Linux's USER_HZ).
    fn cpu_secs(self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .with_context(|| format!("server process {}", self.pid))?;
        let after = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .ok_or_else(|| anyhow!("unexpected /proc/{}/stat", self.pid))?;
        let fields: Vec<&str> = after.split_whitespace().collect();
        // Fields 14 and 15 of the whole line; 3 is the first after ')'.
        let ticks =
            |n: usize| -> u64 { fields.get(n - 3).and_then(|f| f.parse().ok()).unwrap_or(0) };
        Ok((ticks(14) + ticks(15)) as f64 / 100.0)
    }

    fn rss_bytes(self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map_or(0, |kib| kib * 1024)
    }
}

/// One phase to run: `work` on `concurrency` workers until `count`
/// operations are done or `limit` has passed.
struct PhaseSpec<'a> {
    name: &'a str,
    work: Work,
    concurrency: usize,
    count: u64,
    limit: Duration,
}

async fn run_phase(
    spec: PhaseSpec<'_>,
    target: &Arc<Target>,
    shared: &Arc<Shared>,
    probe: Option<ServerProbe>,
) -> Phase {
    let PhaseSpec {
        name,
        work,
        concurrency,
        count,
        limit,
    } = spec;
    let issued = Arc::new(AtomicU64::new(0));
    let progress = &shared.progress;
    progress.ops.store(0, Ordering::Relaxed);
    progress.bytes.store(0, Ordering::Relaxed);
    progress.errors.store(0, Ordering::Relaxed);
    let cpu_before = probe.and_then(|p| p.cpu_secs().ok());
    let rss_peak = Arc::new(AtomicU64::new(probe.map_or(0, |p| p.rss_bytes())));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + limit;

    let sampler = probe.map(|probe| {
        let (rss_peak, done) = (rss_peak.clone(), done.clone());
        tokio::spawn(async move {
            // Bounded by the phase: stops when it is done.
            while !done.load(Ordering::Relaxed) {
                rss_peak.fetch_max(probe.rss_bytes(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    });
    let reporter = {
        let (shared, done, name) = (shared.clone(), done.clone(), name.to_owned());
        tokio::spawn(async move {
            let terminal = std::io::stderr().is_terminal();
            let every = if terminal {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(5)
            };
            let mut next = Instant::now() + every;
            while !done.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if Instant::now() < next || done.load(Ordering::Relaxed) {
                    continue;
                }
                next += every;
                let secs = started.elapsed().as_secs_f64();
                let p = &shared.progress;
                let (ops, bytes) = (
                    p.ops.load(Ordering::Relaxed),
                    p.bytes.load(Ordering::Relaxed),
                );
                let line = format!(
                    "{name}: {secs:.0} s, {ops} ops, {:.1} ops/s, {:.1} MiB/s, {} errors",
                    ops as f64 / secs,
                    bytes as f64 / 1048576.0 / secs,
                    p.errors.load(Ordering::Relaxed)
                );
                if terminal {
                    eprint!("\r\x1b[K{line}");
                } else {
                    eprintln!("{line}");
                }
            }
            if terminal {
                eprint!("\r\x1b[K");
            }
        })
    };

    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|w| {
            let (target, shared, issued, work) =
                (target.clone(), shared.clone(), issued.clone(), work.clone());
            tokio::spawn(async move {
                let mut conn = Conn::new(target);
                let mut listing = ListState::default();
                let mut rng = mix(shared.salt ^ (w as u64 + 1));
                let mut by_kind: BTreeMap<&'static str, OpStats> = BTreeMap::new();
                loop {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let n = issued.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        break;
                    }
                    let (kind, idx) = match &work {
                        Work::Only(kind @ (Kind::Put | Kind::Multipart)) => {
                            (*kind, shared.next_new.fetch_add(1, Ordering::Relaxed))
                        }
                        Work::Only(kind) => (*kind, n % shared.objects.max(1)),
                        Work::Remove(keys) => (Kind::Delete, keys[n as usize]),
                        Work::Fill(keys) => (Kind::Put, keys[n as usize]),
                        Work::Mixed(weights) => {
                            rng = mix(rng);
                            let total: u64 = weights.iter().map(|(_, w)| u64::from(*w)).sum();
                            let mut pick = rng % total;
                            let mut kind = weights[0].0;
                            for (k, weight) in weights.iter() {
                                if pick < u64::from(*weight) {
                                    kind = *k;
                                    break;
                                }
                                pick -= u64::from(*weight);
                            }
                            match kind {
                                Kind::Put => {
                                    (kind, shared.next_new.fetch_add(1, Ordering::Relaxed))
                                }
                                Kind::Delete => {
                                    let own = shared.deletable.lock().expect("deletable").pop();
                                    match own {
                                        Some(idx) => (kind, idx),
                                        // Nothing of ours to delete yet: put instead.
                                        None => (
                                            Kind::Put,
                                            shared.next_new.fetch_add(1, Ordering::Relaxed),
                                        ),
                                    }
                                }
                                _ => (kind, (mix(rng ^ 1)) % shared.objects.max(1)),
                            }
                        }
                    };
                    let began = Instant::now();
                    let result = one_op(&shared, &mut conn, kind, idx, &mut listing).await;
                    let took = began.elapsed();
                    let stats = by_kind.entry(kind.name()).or_default();
                    match result {
                        Ok((bytes, keys)) => {
                            stats.ok += 1;
                            stats.bytes += bytes;
                            stats.keys += keys;
                            stats.latency.record(took);
                            shared.progress.ops.fetch_add(1, Ordering::Relaxed);
                            shared.progress.bytes.fetch_add(bytes, Ordering::Relaxed);
                            if matches!(work, Work::Mixed(_)) && kind == Kind::Put {
                                shared.deletable.lock().expect("deletable").push(idx);
                            }
                        }
                        Err(err) => {
                            if stats.errors.is_empty() {
                                tracing::debug!(%err, "operation failed");
                            }
                            *stats.errors.entry(err.code).or_default() += 1;
                            shared.progress.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                by_kind
            })
        })
        .collect();
    let mut ops: BTreeMap<&'static str, OpStats> = BTreeMap::new();
    for worker in workers {
        if let Ok(by_kind) = worker.await {
            for (kind, stats) in by_kind {
                ops.entry(kind).or_default().merge(&stats);
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = reporter.await;
    if let Some(sampler) = sampler {
        let _ = sampler.await;
    }
    let server = probe.map(|probe| ServerUsage {
        cpu_secs: match (cpu_before, probe.cpu_secs().ok()) {
            (Some(before), Some(after)) => after - before,
            _ => 0.0,
        },
        rss_peak_bytes: rss_peak.load(Ordering::Relaxed).max(probe.rss_bytes()),
    });
    Phase {
        name: name.to_owned(),
        secs,
        ops,
        server,
    }
}

pub async fn run(args: BenchArgs, root: Credentials) -> Result<i32> {
    let (workload, args) = match args.command {
        BenchCommand::Compare { a, b } => {
            let read = |path: &std::path::Path| -> Result<Value> {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON", path.display()))
            };
            let text = stats::compare(&read(&a)?, &read(&b)?).map_err(|e| anyhow!(e))?;
            print!("{text}");
            return Ok(0);
        }
        BenchCommand::Put(args) => ("put", args),
        BenchCommand::Get(args) => ("get", args),
        BenchCommand::Stat(args) => ("stat", args),
        BenchCommand::List(args) => ("list", args),
        BenchCommand::Delete(args) => ("delete", args),
        BenchCommand::Multipart(args) => ("multipart", args),
        BenchCommand::Mixed(args) => ("mixed", args),
    };
    let authority = s3::parse_endpoint(&args.endpoint, args.allow_remote)?;
    let sizes = Sizes::parse(&args.size)?;
    let part_size = parse_size(&args.part_size)?;
    if workload == "multipart" && part_size < 5 << 20 {
        bail!("--part-size must be at least 5MiB (S3's smallest part but the last)");
    }
    if args.concurrency == 0 || args.concurrency > 4096 {
        bail!("--concurrency must be between 1 and 4096");
    }
    if args.verify && args.skip_prepare && args.prefix.is_none() {
        bail!(
            "--verify with --skip-prepare needs the --prefix the objects were written under by cairn bench"
        );
    }
    if args.checksum.is_some() && args.payload == PayloadMode::Signed {
        bail!(
            "--checksum sends a trailing checksum, which goes with --payload unsigned (as the AWS SDKs send it)"
        );
    }
    let setup_concurrency = args.prepare_concurrency.unwrap_or(args.concurrency);
    if setup_concurrency == 0 || setup_concurrency > 4096 {
        bail!("--prepare-concurrency must be between 1 and 4096");
    }
    let mix_weights = parse_mix(&args.mix)?;
    let limit = match (&args.duration, args.count) {
        (Some(d), _) => parse_duration(d)?,
        (None, Some(_)) => Duration::from_secs(3600),
        (None, None) => Duration::from_secs(10),
    };
    let count = args.count.unwrap_or(u64::MAX);
    let credentials = match (args.access_key.clone(), args.secret_key.clone()) {
        (Some(access_key), Some(secret_key)) => Credentials {
            access_key,
            secret_key,
        },
        (None, None) => root,
        _ => bail!("give both --access-key and --secret-key, or neither"),
    };
    let target = Arc::new(Target {
        authority,
        credentials,
        region: args.region.clone(),
        payload: args.payload,
        content_md5: args.content_md5,
        checksum: args.checksum,
        timeout: parse_duration(&args.timeout)?,
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let run_id = mix(now.as_nanos() as u64 ^ u64::from(std::process::id()));
    let prefix = args
        .prefix
        .clone()
        .unwrap_or_else(|| format!("cairn-bench/{:016x}/", run_id));
    // Data must be reproducible across runs sharing a prefix (--skip-prepare).
    let salt = key_seed(0, &prefix);
    let shared = Arc::new(Shared {
        generator: Generator::new(salt),
        salt,
        bucket: args.bucket.clone(),
        prefix: prefix.clone(),
        dirs: args.dirs,
        sizes,
        part_size,
        objects: args.objects,
        delimiter: args.delimiter.clone(),
        max_keys: args.max_keys.clamp(1, 1000),
        verify: args.verify,
        next_new: AtomicU64::new(0),
        deletable: Mutex::new(Vec::new()),
        progress: Progress::default(),
    });
    let probe = args.server_pid.map(|pid| ServerProbe { pid });
    if let Some(probe) = probe {
        probe.cpu_secs()?;
    }

    let mut conn = Conn::new(target.clone());
    let created = conn
        .make_bucket(&args.bucket)
        .await
        .map_err(|e| anyhow!("cannot create bucket {}: {e}", args.bucket))?;
    let mut phases = Vec::new();
    let needs_objects = matches!(workload, "get" | "stat" | "list" | "delete" | "mixed");
    if needs_objects {
        if args.objects == 0 {
            bail!("{workload} needs --objects of at least 1");
        }
        shared.next_new.store(args.objects, Ordering::Relaxed);
        if !args.skip_prepare {
            let keys: Arc<Vec<u64>> = Arc::new((0..args.objects).collect());
            let spec = PhaseSpec {
                name: "prepare",
                work: Work::Fill(keys),
                concurrency: setup_concurrency,
                count: args.objects,
                limit: Duration::from_secs(3600),
            };
            let phase = run_phase(spec, &target, &shared, probe).await;
            let total = phase.total();
            if total.error_count() > 0 {
                let codes: Vec<String> = total
                    .errors
                    .iter()
                    .map(|(c, n)| format!("{c} ({n})"))
                    .collect();
                bail!(
                    "prepare: {} of {} objects could not be written: {}",
                    total.error_count(),
                    args.objects,
                    codes.join(", ")
                );
            }
            if !args.json {
                eprint!("{}", phase.render());
            }
            phases.push(phase);
        }
    }
    let work = match workload {
        "put" => Work::Only(Kind::Put),
        "get" => Work::Only(Kind::Get),
        "stat" => Work::Only(Kind::Stat),
        "list" => Work::Only(Kind::List),
        "delete" => Work::Only(Kind::Delete),
        "multipart" => Work::Only(Kind::Multipart),
        _ => Work::Mixed(Arc::new(mix_weights)),
    };
    let workload_count = if workload == "delete" {
        count.min(args.objects)
    } else {
        count
    };
    let spec = PhaseSpec {
        name: workload,
        work,
        concurrency: args.concurrency,
        count: workload_count,
        limit,
    };
    let main = run_phase(spec, &target, &shared, probe).await;
    let failed = main.total().error_count();
    if !args.json {
        print!("{}", main.render());
    }
    phases.push(main);

    if !args.no_cleanup {
        let mut keys: Vec<u64> = if needs_objects && !args.skip_prepare {
            (0..args.objects).collect()
        } else {
            Vec::new()
        };
        let first_new = if needs_objects { args.objects } else { 0 };
        keys.extend(first_new..shared.next_new.load(Ordering::Relaxed));
        let n = keys.len() as u64;
        let spec = PhaseSpec {
            name: "cleanup",
            work: Work::Remove(Arc::new(keys)),
            concurrency: setup_concurrency,
            count: n,
            limit: Duration::from_secs(3600),
        };
        let phase = run_phase(spec, &target, &shared, None).await;
        if !args.json {
            eprint!("{}", phase.render());
        }
        phases.push(phase);
        if created && let Err(err) = conn.delete_bucket(&args.bucket).await {
            eprintln!(
                "cairn bench: could not remove bucket {}: {err}",
                args.bucket
            );
        }
    }

    if args.json {
        let result = json!({
            "cairn_bench": 1,
            "workload": workload,
            "endpoint": args.endpoint,
            "bucket": args.bucket,
            "prefix": prefix,
            "size": sizes.describe(),
            "concurrency": args.concurrency,
            "objects": args.objects,
            "payload": format!("{:?}", args.payload).to_lowercase(),
            "content_md5": args.content_md5,
            "checksum": args.checksum.map(|c| c.name()),
            "phases": phases.iter().map(Phase::to_json).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&result)?);
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_durations_and_mixes_parse() {
        assert_eq!(parse_size("4KiB").unwrap(), 4096);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1MB").unwrap(), 1_000_000);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        assert!(parse_size("4 parsecs").is_err());
        assert!(parse_size("").is_err());
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("3 days").is_err());
        assert_eq!(Sizes::parse("1KiB").unwrap(), Sizes::Fixed(1024));
        let range = Sizes::parse("1KiB-1MiB").unwrap();
        assert_eq!(range, Sizes::Range(1024, 1 << 20));
        assert!(Sizes::parse("2MiB-1MiB").is_err());
        let sizes: Vec<u64> = (0..1000).map(|s| range.of(mix(s))).collect();
        assert!(sizes.iter().all(|s| (1024..=1 << 20).contains(s)));
        // Log-uniform: about half below the geometric middle (32 KiB).
        let below = sizes.iter().filter(|s| **s < 32 << 10).count();
        assert!((400..600).contains(&below), "{below}");
        assert_eq!(range.of(42), range.of(42));
        let weights = parse_mix("get=3, put=1").unwrap();
        assert_eq!(weights, vec![(Kind::Get, 3), (Kind::Put, 1)]);
        assert!(parse_mix("get=0").is_err());
        assert!(parse_mix("copy=1").is_err());
        assert!(parse_mix("get").is_err());
    }
}
