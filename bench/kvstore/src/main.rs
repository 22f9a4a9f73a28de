//! kvbench: redb vs fjall as Cairn's per-drive metadata store.
//!
//! `kvbench all` runs everything and prints a markdown report. The machine
//! is shared with other people's builds, so the engines are measured
//! *interleaved*: in round r, each measurement runs once per engine, with
//! the engine order rotated each round. A noisy spell then hits all engines
//! alike instead of one engine's whole phase. Every write run is preceded by
//! a 0.5 s raw fsync probe, so it can be read as a ratio against the disk
//! as it was at that moment.
//!
//! Subcommands (all but `all` and `fsync` are used internally):
//!   all      [--secs S] [--keys N] [--dir D] [--engines a,b,c] [--rounds R]
//!            [--crash-runs R] [--configs g1,g8,g32,d1,d32] [--short-scans N]
//!   fsync    [--dir D]                    raw disk fsync rate only
//!   load     NAME [--keys N] [--dir D]    bulk load one engine's DB
//!   measure  [--engines ..] [--dir D] ... scans, gets and writes, interleaved
//!   crash-child NAME DIR RUN THREADS MAX_SECS N_LOADED
//!   audit    NAME DIR COMMITS             (run under strace)

mod bench;
mod engine;
mod noise;
mod workload;

use engine::{open_engine, Engine, Res, CACHE_BYTES};
use noise::Noise;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use workload::{object_key, BUCKETS};

const ENGINES_DEFAULT: &str = "redb,redb-qr,fjall";

#[derive(Clone)]
struct Opts {
    secs: f64,
    keys: u64,
    dir: PathBuf,
    engines: String,
    rounds: u64,
    crash_runs: u64,
    /// Write configs: gN = N writers via the group committer, dN = N writers
    /// each doing its own durable transaction.
    configs: String,
    short_scans: u64,
}

impl Opts {
    fn engine_list(&self) -> Vec<String> {
        self.engines.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
    }
    fn common_args(&self) -> Vec<String> {
        vec![
            "--secs".into(), self.secs.to_string(),
            "--keys".into(), self.keys.to_string(),
            "--engines".into(), self.engines.clone(),
            "--rounds".into(), self.rounds.to_string(),
            "--configs".into(), self.configs.clone(),
            "--short-scans".into(), self.short_scans.to_string(),
            "--dir".into(), self.dir.to_string_lossy().into_owned(),
        ]
    }
}

fn parse_opts(args: &[String]) -> Res<(Opts, Vec<String>)> {
    let mut o = Opts {
        secs: 3.0,
        keys: 1_000_000,
        dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/kvbench-data")),
        engines: ENGINES_DEFAULT.to_string(),
        rounds: 3,
        crash_runs: 3,
        configs: "g1,g8,g32,d1,d32".to_string(),
        short_scans: 10_000,
    };
    let mut rest = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let mut val = || -> Res<String> {
            i += 1;
            args.get(i).cloned().ok_or_else(|| format!("{a} needs a value").into())
        };
        match a.as_str() {
            "--secs" => o.secs = val()?.parse()?,
            "--keys" => o.keys = val()?.parse()?,
            "--dir" => o.dir = PathBuf::from(val()?),
            "--engines" => o.engines = val()?,
            "--rounds" => o.rounds = val()?.parse()?,
            "--crash-runs" => o.crash_runs = val()?.parse()?,
            "--configs" => o.configs = val()?,
            "--short-scans" => o.short_scans = val()?.parse()?,
            _ => rest.push(a.clone()),
        }
        i += 1;
    }
    Ok((o, rest))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = real_main(args) {
        eprintln!("kvbench: error: {e}");
        std::process::exit(1);
    }
}

fn real_main(args: Vec<String>) -> Res<()> {
    let cmd = args.first().cloned().unwrap_or_else(|| "help".into());
    let (opts, rest) = parse_opts(&args[1.min(args.len())..])?;
    match cmd.as_str() {
        "all" => cmd_all(&opts),
        "fsync" => {
            std::fs::create_dir_all(&opts.dir)?;
            for (k, v) in raw_fsync(&opts.dir, 2.0)? {
                println!("{k}\t{v:.0}");
            }
            Ok(())
        }
        "load" => cmd_load(rest.first().ok_or("load NAME")?, &opts),
        "measure" => cmd_measure(&opts),
        "crash-child" => {
            if rest.len() < 6 {
                return Err("crash-child NAME DIR RUN THREADS MAX_SECS N_LOADED".into());
            }
            bench::crash_child(
                &rest[0],
                Path::new(&rest[1]),
                rest[2].parse()?,
                rest[3].parse()?,
                rest[4].parse()?,
                rest[5].parse()?,
            )
        }
        "audit" => {
            if rest.len() < 3 {
                return Err("audit NAME DIR COMMITS".into());
            }
            let e = open_engine(&rest[0], Path::new(&rest[1]))?;
            let n: u64 = rest[2].parse()?;
            let mut v = Vec::new();
            for i in 0..n {
                e.put_batch(&[object_key(workload::NEW_KEY_BASE * 9 + i)], &mut v)?;
            }
            Ok(())
        }
        _ => {
            eprintln!(
                "usage: kvbench all [--secs S] [--keys N] [--dir D] [--engines {ENGINES_DEFAULT}]\n\
                 \x20                  [--rounds R] [--crash-runs R] [--configs g1,g8,g32,d1,d32] [--short-scans N]\n\
                 \x20      kvbench fsync [--dir D]"
            );
            Ok(())
        }
    }
}

// ------------------------------------------------------------ helpers

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|x| x.parse().ok()))
        })
        .unwrap_or(0)
}

/// (apparent bytes, allocated bytes) of every file under `p` whose name
/// passes `filter`.
fn disk_usage_filtered(p: &Path, filter: &dyn Fn(&str) -> bool) -> (u64, u64) {
    let mut a = (0u64, 0u64);
    if let Ok(rd) = std::fs::read_dir(p) {
        for ent in rd.flatten() {
            if let Ok(m) = ent.metadata() {
                if m.is_dir() {
                    let (x, y) = disk_usage_filtered(&ent.path(), filter);
                    a.0 += x;
                    a.1 += y;
                } else if filter(&ent.file_name().to_string_lossy()) {
                    a.0 += m.len();
                    a.1 += m.blocks() * 512;
                }
            }
        }
    }
    a
}

fn disk_usage(p: &Path) -> (u64, u64) {
    disk_usage_filtered(p, &|_| true)
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// Overwrite the same 4 KiB block + fdatasync, for `secs`. Returns ops/s.
fn fsync_probe(dir: &Path, secs: f64) -> Res<f64> {
    let path = dir.join("fsync-probe.bin");
    let buf = vec![0xA5u8; 4096];
    let f = std::fs::OpenOptions::new().create(true).read(true).write(true).truncate(false).open(&path)?;
    f.write_all_at(&buf, 0)?;
    f.sync_all()?;
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < Duration::from_secs_f64(secs) && n < 10_000_000 {
        f.write_all_at(&buf, 0)?;
        f.sync_data()?;
        n += 1;
    }
    let r = n as f64 / t0.elapsed().as_secs_f64();
    drop(f);
    let _ = std::fs::remove_file(&path);
    Ok(r)
}

/// Raw disk baseline: (a) overwrite 4 KiB + fdatasync, (b) append 4 KiB + fsync.
fn raw_fsync(dir: &Path, secs: f64) -> Res<Vec<(String, f64)>> {
    let mut out = vec![("fsync_overwrite4k_fdatasync_per_s".to_string(), fsync_probe(dir, secs)?)];
    let path = dir.join("fsync-append.bin");
    let _ = std::fs::remove_file(&path);
    {
        let buf = vec![0xA5u8; 4096];
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        let t0 = Instant::now();
        let mut n = 0u64;
        while t0.elapsed() < Duration::from_secs_f64(secs) && n < 10_000_000 {
            f.write_all(&buf)?;
            f.sync_all()?;
            n += 1;
        }
        out.push(("fsync_append4k_fsync_per_s".into(), n as f64 / t0.elapsed().as_secs_f64()));
    }
    let _ = std::fs::remove_file(&path);
    Ok(out)
}

/// Protocol line from a child process: engine, metric, round ("-" if none), value.
fn emit(engine: &str, metric: &str, round: Option<u64>, value: impl std::fmt::Display) {
    let r = round.map_or("-".to_string(), |r| r.to_string());
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "R\t{engine}\t{metric}\t{r}\t{value}");
    let _ = o.flush();
}

fn first_bucket_prefix() -> Vec<u8> {
    let mut b: Vec<String> = BUCKETS.iter().map(|b| format!("{b}/")).collect();
    b.sort();
    b[0].clone().into_bytes()
}

// ------------------------------------------------------------ load (child)

fn cmd_load(name: &str, o: &Opts) -> Res<()> {
    let dir = o.dir.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let n = o.keys;
    let e = open_engine(name, &dir)?;
    assert_eq!(e.name(), name);
    eprintln!("[{name}] bulk-loading {n} keys");
    let nz = Noise::start();
    let t0 = Instant::now();
    let loaded = e.bulk_load(&mut (0..n).map(object_key), 10_000)?;
    let load_s = t0.elapsed().as_secs_f64();
    let (busy, _) = nz.finish();
    assert_eq!(loaded, n);
    emit(name, "load_keys_per_s", None, format!("{:.0}", n as f64 / load_s));
    emit(name, "load_foreign_build_pct", None, format!("{busy:.0}"));
    let (app, alloc) = disk_usage(&dir);
    emit(name, "disk_after_load_apparent_MiB", None, format!("{:.1}", mib(app)));
    emit(name, "disk_after_load_allocated_MiB", None, format!("{:.1}", mib(alloc)));
    // One full scan so the RSS figure covers reading as well as loading.
    let (s, _) = bench::full_scan(&e, &first_bucket_prefix())?;
    if s.keys != n || !s.ordered {
        return Err(format!("{name}: after load, scan saw {} keys, ordered={}", s.keys, s.ordered).into());
    }
    drop(e);
    let (app, alloc) = disk_usage(&dir);
    emit(name, "disk_after_load_closed_apparent_MiB", None, format!("{:.1}", mib(app)));
    emit(name, "disk_after_load_closed_allocated_MiB", None, format!("{:.1}", mib(alloc)));
    emit(name, "peak_rss_load_scan_MiB", None, format!("{:.0}", vm_hwm_kib() as f64 / 1024.0));
    Ok(())
}

// ------------------------------------------------------------ measure (child)

fn rotated<T: Clone>(v: &[T], r: u64) -> Vec<T> {
    let k = (r as usize) % v.len().max(1);
    v[k..].iter().chain(v[..k].iter()).cloned().collect()
}

fn cmd_measure(o: &Opts) -> Res<()> {
    let names = o.engine_list();
    let n = o.keys;
    let mut engines: Vec<(String, Box<dyn Engine>)> = Vec::new();
    for name in &names {
        engines.push((name.clone(), open_engine(name, &o.dir.join(name))?));
    }
    let idx: Vec<usize> = (0..engines.len()).collect();
    let start = first_bucket_prefix();

    // Reads first, on exactly the loaded keys.
    for round in 0..o.rounds {
        for &i in &rotated(&idx, round) {
            let (name, e) = (&engines[i].0, &engines[i].1);
            let nz = Noise::start();
            let (s, _) = bench::full_scan(e, &start)?;
            let ss = bench::short_scans(e, o.short_scans, 1000, n)?;
            let (g, gs, found) = bench::point_gets(e, 200_000, n)?;
            let (busy, _) = nz.finish();
            eprintln!(
                "[r{round} {name}] full scan {} keys {:.0}/s ordered={}; short scans {:.0} keys/s ordered={}; gets {:.0}/s",
                s.keys, s.keys as f64 / s.secs, s.ordered, ss.keys as f64 / ss.secs, ss.ordered, g as f64 / gs
            );
            let r = Some(round);
            emit(name, "full_scan_keys_per_s", r, format!("{:.0}", s.keys as f64 / s.secs));
            emit(name, "full_scan_keys", r, s.keys);
            emit(name, "full_scan_ordered", r, s.ordered);
            emit(name, "short_scans_keys_per_s", r, format!("{:.0}", ss.keys as f64 / ss.secs));
            emit(name, "short_scans_per_s", r, format!("{:.0}", o.short_scans as f64 / ss.secs));
            emit(name, "short_scans_ordered", r, ss.ordered);
            emit(name, "point_gets_per_s", r, format!("{:.0}", g as f64 / gs));
            emit(name, "point_gets_all_found", r, found);
            emit(name, "reads_foreign_build_pct", r, format!("{busy:.0}"));
        }
    }

    // Durable PUTs.
    let mut configs: Vec<(usize, bool)> = Vec::new();
    for c in o.configs.split(',').filter(|c| !c.is_empty()) {
        let (g, w) = c.split_at(1);
        configs.push((w.parse()?, g == "g"));
    }
    for round in 0..o.rounds {
        for (ci, (w, group)) in configs.iter().enumerate() {
            let tag = format!("{}_w{w}", if *group { "put_group" } else { "put_direct" });
            for &i in &rotated(&idx, round + ci as u64) {
                let (name, e) = (&engines[i].0, &engines[i].1);
                let probe = fsync_probe(&o.dir, 0.5)?;
                let run_id = round * 16 + ci as u64;
                let nz = Noise::start();
                let st = bench::run_writers(e, *w, *group, o.secs, run_id, n, 256, None)?;
                let (busy, _) = nz.finish();
                let commits = st.batches as f64 / st.secs;
                eprintln!(
                    "[r{round} {name}] {tag}: {:.0} acks/s, avg batch {:.1}, {commits:.0} commits/s (disk probe {probe:.0} fdatasync/s), p50 {}us p99 {}us max {}us, foreign build {busy:.0}%",
                    st.rate(), st.avg_batch(), st.p50_us, st.p99_us, st.max_us
                );
                let r = Some(round);
                emit(name, &format!("{tag}_per_s"), r, format!("{:.0}", st.rate()));
                emit(name, &format!("{tag}_avg_batch"), r, format!("{:.1}", st.avg_batch()));
                emit(name, &format!("{tag}_max_batch"), r, st.max_batch_seen);
                emit(name, &format!("{tag}_commits_per_s"), r, format!("{commits:.0}"));
                emit(name, &format!("{tag}_disk_probe_fdatasync_per_s"), r, format!("{probe:.0}"));
                emit(name, &format!("{tag}_commits_over_probe"), r, format!("{:.2}", commits / probe.max(1.0)));
                emit(name, &format!("{tag}_p50_us"), r, st.p50_us);
                emit(name, &format!("{tag}_p99_us"), r, st.p99_us);
                emit(name, &format!("{tag}_max_us"), r, st.max_us);
                emit(name, &format!("{tag}_foreign_build_pct"), r, format!("{busy:.0}"));
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------ audit

/// fsync-family syscalls per single-key durable commit, counted with
/// `strace -f -c` as (calls for 300 commits - calls for 0 commits) / 300.
fn fsync_audit(name: &str, dir: &Path) -> Option<f64> {
    const SYNCS: [&str; 6] = ["fsync", "fdatasync", "sync_file_range", "msync", "syncfs", "sync"];
    let exe = std::env::current_exe().ok()?;
    let mut counts = Vec::new();
    for commits in [0u64, 300] {
        let d = dir.join(format!("audit-{name}-{commits}"));
        let _ = std::fs::remove_dir_all(&d);
        let outf = dir.join(format!("strace-{name}-{commits}.txt"));
        let st = Command::new("strace")
            .args(["-f", "-qq", "-c", "-e", "trace=fsync,fdatasync,sync_file_range,msync,syncfs,sync", "-o"])
            .arg(&outf)
            .arg(&exe)
            .args(["audit", name, d.to_str()?, &commits.to_string()])
            .stdout(Stdio::null())
            .status()
            .ok()?;
        let _ = std::fs::remove_dir_all(&d);
        if !st.success() {
            return None;
        }
        let text = std::fs::read_to_string(&outf).ok()?;
        let _ = std::fs::remove_file(&outf);
        let mut calls = 0u64;
        for l in text.lines() {
            let t: Vec<&str> = l.split_whitespace().collect();
            if t.len() >= 5 && SYNCS.contains(t.last()?) {
                calls += t[3].parse::<u64>().unwrap_or(0);
            }
        }
        counts.push(calls);
    }
    Some((counts[1] as f64 - counts[0] as f64) / 300.0)
}

// ------------------------------------------------------------ all

/// metric -> engine -> [(round, value)]
type Table = BTreeMap<String, BTreeMap<String, Vec<(Option<u64>, String)>>>;

struct Collector {
    table: Table,
    order: Vec<String>,
}

impl Collector {
    fn put(&mut self, engine: &str, metric: &str, round: Option<u64>, v: String) {
        if !self.order.iter().any(|x| x == metric) {
            self.order.push(metric.to_string());
        }
        self.table.entry(metric.to_string()).or_default().entry(engine.to_string()).or_default().push((round, v));
    }
    fn ingest(&mut self, stdout: &[u8]) {
        for l in String::from_utf8_lossy(stdout).lines() {
            let t: Vec<&str> = l.splitn(5, '\t').collect();
            if t.len() == 5 && t[0] == "R" {
                self.put(t[1], t[2], t[3].parse().ok(), t[4].to_string());
            }
        }
    }
}

fn run_child(exe: &Path, args: &[String]) -> Res<Vec<u8>> {
    let out = Command::new(exe).args(args).stdin(Stdio::null()).stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        return Err(format!("child {args:?} failed: {}", out.status).into());
    }
    Ok(out.stdout)
}

fn summarize(vals: &[(Option<u64>, String)]) -> String {
    let nums: Option<Vec<f64>> = vals.iter().map(|(_, v)| v.parse::<f64>().ok()).collect();
    match nums {
        Some(mut x) if x.len() > 1 => {
            x.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let med = if x.len() % 2 == 1 { x[x.len() / 2] } else { (x[x.len() / 2 - 1] + x[x.len() / 2]) / 2.0 };
            let f = |v: f64| if v.fract() == 0.0 || v.abs() >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") };
            format!("{} ({}–{})", f(med), f(x[0]), f(x[x.len() - 1]))
        }
        _ => {
            let mut u: Vec<&str> = vals.iter().map(|(_, v)| v.as_str()).collect();
            u.dedup();
            u.join("; ")
        }
    }
}

fn cmd_all(o: &Opts) -> Res<()> {
    let t_all = Instant::now();
    let _ = std::fs::remove_dir_all(&o.dir);
    std::fs::create_dir_all(&o.dir)?;
    let engines = o.engine_list();
    let exe = std::env::current_exe()?;
    let mut c = Collector { table: BTreeMap::new(), order: Vec::new() };
    let all_noise = Noise::start();

    eprintln!("== raw disk fsync baseline on {}", o.dir.display());
    for (k, v) in raw_fsync(&o.dir, 2.0)? {
        eprintln!("   {k} = {v:.0}");
        c.put("disk", &format!("{k}_at_start"), None, format!("{v:.0}"));
    }

    let have_strace = Command::new("strace").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().map(|s| s.success()).unwrap_or(false);
    if have_strace {
        let mut audit = engines.clone();
        if engines.iter().any(|e| e == "fjall") {
            audit.push("fjall-default".into()); // shows that fjall's default does not fsync
        }
        for eng in &audit {
            if let Some(x) = fsync_audit(eng, &o.dir) {
                eprintln!("== {eng}: {x:.2} fsync-family syscalls per 1-key commit (strace)");
                c.put(eng, "audit_sync_syscalls_per_commit", None, format!("{x:.2}"));
            }
        }
    }

    // 1. Load each engine's DB in its own process (so peak RSS is its own).
    for eng in &engines {
        eprintln!("== load {eng}");
        let mut args = vec!["load".to_string(), eng.clone()];
        args.extend(o.common_args());
        c.ingest(&run_child(&exe, &args)?);
    }

    // 2. Reads and writes, interleaved across engines.
    eprintln!("== interleaved reads and writes ({} rounds)", o.rounds);
    let mut args = vec!["measure".to_string()];
    args.extend(o.common_args());
    c.ingest(&run_child(&exe, &args)?);
    for eng in &engines {
        let (app, alloc) = disk_usage(&o.dir.join(eng));
        c.put(eng, "disk_after_puts_closed_apparent_MiB", None, format!("{:.1}", mib(app)));
        c.put(eng, "disk_after_puts_closed_allocated_MiB", None, format!("{:.1}", mib(alloc)));
    }

    // 3. kill -9 recovery, interleaved across engines.
    let mut count: BTreeMap<String, u64> = BTreeMap::new();
    for eng in &engines {
        let e = open_engine(eng, &o.dir.join(eng))?;
        let (s, _) = bench::full_scan(&e, b"")?;
        count.insert(eng.clone(), s.keys);
        c.put(eng, "keys_before_crash_runs", None, s.keys.to_string());
    }
    let mut lost_total: BTreeMap<String, u64> = BTreeMap::new();
    for run in 0..o.crash_runs {
        for eng in rotated(&engines, run) {
            let dir = o.dir.join(&eng);
            let before = count[&eng];
            eprintln!("== crash run {} for {eng} (db holds {before} keys)", run + 1);
            let nz = Noise::start();
            let seed = 0x51 + run * 7919 + eng.len() as u64;
            let r = bench::crash_run(&eng, &dir, 100 + run, o.keys, before, seed)?;
            let (busy, _) = nz.finish();
            let short = r.count_expected_min.saturating_sub(r.count_after);
            let lost = r.lost + r.corrupt + short + u64::from(!r.scan_ok);
            eprintln!(
                "   open {:.3}s, {} acked writes ({} keys), lost/corrupt {lost}, count {} (>= {} expected), journal {:.1} MiB, [{}]",
                r.open_secs, r.ack_lines, r.distinct_keys, r.count_after, r.count_expected_min, mib(r.journal_bytes), r.note
            );
            let rr = Some(run);
            c.put(&eng, "crash_killed_after_s", rr, format!("{:.2}", r.killed_after_s));
            c.put(&eng, "crash_acked_writes", rr, r.ack_lines.to_string());
            c.put(&eng, "crash_journal_MiB_at_kill", rr, format!("{:.1}", mib(r.journal_bytes)));
            c.put(&eng, "crash_open_s", rr, format!("{:.3}", r.open_secs));
            c.put(&eng, "crash_verify_s", rr, format!("{:.2}", r.verify_secs));
            c.put(&eng, "crash_lost_or_corrupt", rr, lost.to_string());
            c.put(&eng, "crash_keys_after", rr, r.count_after.to_string());
            c.put(&eng, "crash_open_note", rr, r.note.replace(['\t', '|'], " "));
            c.put(&eng, "crash_foreign_build_pct", rr, format!("{busy:.0}"));
            *lost_total.entry(eng.clone()).or_insert(0) += lost;
            count.insert(eng.clone(), r.count_after);
        }
    }
    for eng in &engines {
        c.put(eng, "crash_total_lost_or_corrupt", None, lost_total.get(eng).copied().unwrap_or(0).to_string());
        let dir = o.dir.join(eng);
        let t0 = Instant::now();
        let e = open_engine(eng, &dir)?;
        c.put(eng, "clean_open_s", None, format!("{:.3}", t0.elapsed().as_secs_f64()));
        drop(e);
        let (app, alloc) = disk_usage(&dir);
        let keys = count[eng];
        c.put(eng, "keys_final", None, keys.to_string());
        c.put(eng, "disk_final_apparent_MiB", None, format!("{:.1}", mib(app)));
        c.put(eng, "disk_final_allocated_MiB", None, format!("{:.1}", mib(alloc)));
        c.put(eng, "disk_final_allocated_bytes_per_key", None, format!("{:.0}", alloc as f64 / keys.max(1) as f64));
    }

    eprintln!("== raw disk fsync baseline again");
    for (k, v) in raw_fsync(&o.dir, 2.0)? {
        c.put("disk", &format!("{k}_at_end"), None, format!("{v:.0}"));
    }
    let (busy, load) = all_noise.finish();
    let _ = std::fs::remove_dir_all(&o.dir);

    // Report.
    let mut cols = vec!["disk".to_string()];
    cols.extend(engines.iter().cloned());
    if c.table.values().any(|r| r.contains_key("fjall-default")) {
        cols.push("fjall-default".to_string());
    }
    let mut md = String::new();
    md.push_str(&format!(
        "kvbench all: keys={} rounds={} secs/write-run={} crash_runs={} cache={} MiB/engine dir={}\n\
         total wall {:.0} s; someone else's compiler/linker was running in {busy:.0}% of 0.5 s samples; max 1-min loadavg {load:.2}\n\n\
         Cells with several samples show median (min–max) over rounds.\n\n",
        o.keys, o.rounds, o.secs, o.crash_runs, CACHE_BYTES >> 20, o.dir.display(), t_all.elapsed().as_secs_f64()
    ));
    md.push_str(&format!("| metric | {} |\n|---|{}\n", cols.join(" | "), "---|".repeat(cols.len())));
    for m in &c.order {
        let row = &c.table[m];
        let cells: Vec<String> = cols.iter().map(|col| row.get(col).map(|v| summarize(v)).unwrap_or_default()).collect();
        md.push_str(&format!("| {m} | {} |\n", cells.join(" | ")));
    }
    md.push_str("\nRaw samples (metric, engine: value@round ...):\n\n```\n");
    for m in &c.order {
        for (eng, vals) in &c.table[m] {
            if vals.len() > 1 {
                let s: Vec<String> = vals.iter().map(|(r, v)| format!("{v}@{}", r.map_or("-".into(), |r| r.to_string()))).collect();
                md.push_str(&format!("{m} {eng}: {}\n", s.join(" ")));
            }
        }
    }
    md.push_str("```\n");
    println!("{md}");
    let report = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/kvbench-report.md");
    if std::fs::write(&report, &md).is_ok() {
        eprintln!("(report also written to {})", report.display());
    }
    Ok(())
}
