//! kvbench: redb vs fjall as Cairn's per-drive metadata store.
//!
//! Subcommands:
//!   all [--secs S] [--keys N] [--dir D] [--engines a,b] [--crash-runs R]
//!       everything below, one child process per engine, then a summary table
//!   fsync [--dir D]                      raw disk fsync rate only
//!   engine NAME [--secs S] [--keys N] [--dir D] [--crash-runs R]
//!       all phases for one engine; prints `RESULT\t<engine>\t<metric>\t<value>`
//!   crash-child NAME DIR RUN THREADS MAX_SECS N_LOADED   (internal)
//!   audit NAME DIR COMMITS                               (internal, run under strace)

mod bench;
mod noise;
mod engine;
mod workload;

use engine::{open_engine, Res, CACHE_BYTES};
use noise::Noise;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use workload::{object_key, BUCKETS};

const ENGINES_DEFAULT: &str = "redb,redb-qr,fjall";

struct Opts {
    secs: f64,
    keys: u64,
    dir: PathBuf,
    engines: String,
    crash_runs: u64,
    /// Write configs in run order: gN = N writers via the group committer,
    /// dN = N writers each doing its own durable transaction.
    configs: String,
}

fn parse_opts(args: &[String]) -> Res<(Opts, Vec<String>)> {
    let mut o = Opts {
        secs: 10.0,
        keys: 1_000_000,
        dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/kvbench-data")),
        engines: ENGINES_DEFAULT.to_string(),
        crash_runs: 3,
        configs: "g1,g8,g32,d1,d32".to_string(),
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
            "--crash-runs" => o.crash_runs = val()?.parse()?,
            "--configs" => o.configs = val()?,
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
            for (k, v) in raw_fsync(&opts.dir)? {
                println!("{k}\t{v}");
            }
            Ok(())
        }
        "engine" => {
            let name = rest.first().ok_or("engine NAME")?;
            cmd_engine(name, &opts)
        }
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
                "usage: kvbench all [--secs S] [--keys N] [--dir D] [--engines {ENGINES_DEFAULT}] [--crash-runs R]\n\
                 \x20      kvbench fsync [--dir D]\n\
                 \x20      kvbench engine NAME [--secs S] [--keys N] [--dir D] [--crash-runs R]"
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

/// (apparent bytes, allocated bytes) of everything under `p`.
fn disk_usage(p: &Path) -> (u64, u64) {
    let mut a = (0u64, 0u64);
    if let Ok(rd) = std::fs::read_dir(p) {
        for ent in rd.flatten() {
            if let Ok(m) = ent.metadata() {
                if m.is_dir() {
                    let (x, y) = disk_usage(&ent.path());
                    a.0 += x;
                    a.1 += y;
                } else {
                    a.0 += m.len();
                    a.1 += m.blocks() * 512;
                }
            }
        }
    }
    a
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// Raw disk baseline on `dir`: (a) overwrite the same 4 KiB + fdatasync,
/// (b) append 4 KiB + fsync. 2 s each.
fn raw_fsync(dir: &Path) -> Res<Vec<(String, String)>> {
    let path = dir.join("fsync-probe.bin");
    let _ = std::fs::remove_file(&path);
    let buf = vec![0xA5u8; 4096];
    let mut out = Vec::new();
    {
        let f = std::fs::OpenOptions::new().create(true).read(true).write(true).open(&path)?;
        f.write_all_at(&buf, 0)?;
        f.sync_all()?;
        let t0 = Instant::now();
        let mut n = 0u64;
        while t0.elapsed() < Duration::from_secs(2) && n < 10_000_000 {
            f.write_all_at(&buf, 0)?;
            f.sync_data()?;
            n += 1;
        }
        let s = t0.elapsed().as_secs_f64();
        out.push(("fsync_overwrite4k_fdatasync_per_s".into(), format!("{:.0}", n as f64 / s)));
    }
    let _ = std::fs::remove_file(&path);
    {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        let t0 = Instant::now();
        let mut n = 0u64;
        while t0.elapsed() < Duration::from_secs(2) && n < 10_000_000 {
            f.write_all(&buf)?;
            f.sync_all()?;
            n += 1;
        }
        let s = t0.elapsed().as_secs_f64();
        out.push(("fsync_append4k_fsync_per_s".into(), format!("{:.0}", n as f64 / s)));
    }
    let _ = std::fs::remove_file(&path);
    Ok(out)
}

fn result(engine: &str, metric: &str, value: impl std::fmt::Display) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "RESULT\t{engine}\t{metric}\t{value}");
    let _ = o.flush();
}

// ------------------------------------------------------------ one engine

fn cmd_engine(name: &str, o: &Opts) -> Res<()> {
    let dir = o.dir.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let n = o.keys;
    let e = open_engine(name, &dir)?;
    assert_eq!(e.name(), name);
    let r = |m: &str, v: String| result(name, m, v);

    // 1M-key bulk load (non-durable batches, then made durable).
    eprintln!("[{name}] bulk-loading {n} keys");
    let t0 = Instant::now();
    let loaded = e.bulk_load(&mut (0..n).map(object_key), 10_000)?;
    let load_s = t0.elapsed().as_secs_f64();
    assert_eq!(loaded, n);
    r("load_keys_per_s", format!("{:.0}", n as f64 / load_s));
    let (app, alloc) = disk_usage(&dir);
    r("disk_after_load_apparent_MiB", format!("{:.1}", mib(app)));
    r("disk_after_load_allocated_MiB", format!("{:.1}", mib(alloc)));

    // Scans.
    let mut first_bucket = BUCKETS.iter().map(|b| format!("{b}/")).collect::<Vec<_>>();
    first_bucket.sort();
    let start = first_bucket[0].as_bytes().to_vec();
    for pass in 1..=2 {
        let (s, _) = bench::full_scan(&e, &start)?;
        eprintln!("[{name}] full scan pass {pass}: {} keys in {:.2}s ordered={}", s.keys, s.secs, s.ordered);
        r(&format!("full_scan_pass{pass}_keys_per_s"), format!("{:.0}", s.keys as f64 / s.secs));
        r(&format!("full_scan_pass{pass}_keys"), s.keys.to_string());
        r(&format!("full_scan_pass{pass}_ordered"), s.ordered.to_string());
    }
    let s = bench::short_scans(&e, 10_000, 1000, n)?;
    eprintln!("[{name}] 10k short scans: {} keys in {:.2}s ordered={}", s.keys, s.secs, s.ordered);
    r("short_scans_keys_per_s", format!("{:.0}", s.keys as f64 / s.secs));
    r("short_scans_per_s", format!("{:.0}", 10_000.0 / s.secs));
    r("short_scans_ordered", s.ordered.to_string());
    let (g, gs, ok) = bench::point_gets(&e, 200_000, n)?;
    r("point_gets_per_s", format!("{:.0}", g as f64 / gs));
    r("point_gets_all_found", ok.to_string());

    // Durable PUTs.
    let mut configs: Vec<(usize, bool)> = Vec::new();
    for c in o.configs.split(',').filter(|c| !c.is_empty()) {
        let (g, w) = c.split_at(1);
        configs.push((w.parse()?, g == "g"));
    }
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for (i, (w, group)) in configs.iter().enumerate() {
        let mut tag = format!("{}_w{w}", if *group { "put_group" } else { "put_direct" });
        let k = seen.entry(tag.clone()).or_insert(0);
        *k += 1;
        if *k > 1 {
            tag = format!("{tag}_rep{k}");
        }
        let nz = Noise::start();
        let st = bench::run_writers(&e, *w, *group, o.secs, i as u64, n, 256, None)?;
        let (busy, _) = nz.finish();
        eprintln!(
            "[{name}] {tag}: {} acks in {:.2}s = {:.0}/s, avg batch {:.1}, p50 {}us p99 {}us",
            st.acks, st.secs, st.rate(), st.avg_batch(), st.p50_us, st.p99_us
        );
        r(&format!("{tag}_per_s"), format!("{:.0}", st.rate()));
        r(&format!("{tag}_avg_batch"), format!("{:.1}", st.avg_batch()));
        r(&format!("{tag}_max_batch"), st.max_batch_seen.to_string());
        r(&format!("{tag}_commits_per_s"), format!("{:.0}", st.batches as f64 / st.secs));
        r(&format!("{tag}_p50_us"), st.p50_us.to_string());
        r(&format!("{tag}_p99_us"), st.p99_us.to_string());
        r(&format!("{tag}_max_us"), st.max_us.to_string());
        r(&format!("{tag}_foreign_build_pct"), format!("{busy:.0}"));
    }
    drop(e);
    let (app, alloc) = disk_usage(&dir);
    r("disk_after_puts_closed_apparent_MiB", format!("{:.1}", mib(app)));
    r("disk_after_puts_closed_allocated_MiB", format!("{:.1}", mib(alloc)));

    // Recovery after kill -9.
    let mut count_before = {
        let e = open_engine(name, &dir)?;
        let (s, _) = bench::full_scan(&e, b"")?;
        s.keys
    };
    r("keys_before_crash_runs", count_before.to_string());
    let mut total_lost = 0;
    for run in 0..o.crash_runs {
        eprintln!("[{name}] crash run {} (db holds {count_before} keys)", run + 1);
        let nz = Noise::start();
        let c = bench::crash_run(name, &dir, 100 + run, n, count_before, 0x51 + run * 7919)?;
        let (busy, _) = nz.finish();
        eprintln!(
            "[{name}]   open {:.3}s, {} acks ({} keys) lost={} corrupt={} count {} (>= {} expected) scan_ok={} [{}]",
            c.open_secs, c.ack_lines, c.distinct_keys, c.lost, c.corrupt, c.count_after,
            c.count_expected_min, c.scan_ok, c.note
        );
        let k = run + 1;
        r(&format!("crash{k}_killed_after_s"), format!("{:.2}", c.killed_after_s));
        r(&format!("crash{k}_acked_writes"), c.ack_lines.to_string());
        r(&format!("crash{k}_open_s"), format!("{:.3}", c.open_secs));
        r(&format!("crash{k}_verify_s"), format!("{:.2}", c.verify_secs));
        let count_short = c.count_expected_min.saturating_sub(c.count_after);
        let lost = c.lost + c.corrupt + count_short + u64::from(!c.scan_ok);
        r(&format!("crash{k}_lost_or_corrupt"), lost.to_string());
        r(&format!("crash{k}_keys_after"), c.count_after.to_string());
        r(&format!("crash{k}_note"), c.note.replace('\t', " "));
        r(&format!("crash{k}_foreign_build_pct"), format!("{busy:.0}"));
        total_lost += lost;
        count_before = c.count_after;
    }
    r("crash_total_lost_or_corrupt", total_lost.to_string());
    // Clean open time of the same DB (for comparison with recovery).
    {
        let t0 = Instant::now();
        let e = open_engine(name, &dir)?;
        r("clean_open_s", format!("{:.3}", t0.elapsed().as_secs_f64()));
        drop(e);
    }
    {
        let (app, alloc) = disk_usage(&dir);
        r("disk_final_apparent_MiB", format!("{:.1}", mib(app)));
        r("disk_final_allocated_MiB", format!("{:.1}", mib(alloc)));
        r("keys_final", count_before.to_string());
        r("disk_final_allocated_bytes_per_key", format!("{:.0}", alloc as f64 / count_before.max(1) as f64));
    }
    r("peak_rss_MiB", format!("{:.0}", vm_hwm_kib() as f64 / 1024.0));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

// ------------------------------------------------------------ audit

/// fsync-family syscalls per single-key durable commit, counted with
/// `strace -f -c` as (calls for 300 commits - calls for 0 commits) / 300.
fn fsync_audit(name: &str, dir: &Path) -> Option<f64> {
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
            if t.len() >= 5 && ["fsync", "fdatasync", "sync_file_range", "msync", "syncfs", "sync"].contains(t.last()?) {
                calls += t[3].parse::<u64>().unwrap_or(0);
            }
        }
        counts.push(calls);
    }
    Some((counts[1] as f64 - counts[0] as f64) / 300.0)
}

// ------------------------------------------------------------ all

fn cmd_all(o: &Opts) -> Res<()> {
    let t_all = Instant::now();
    let _ = std::fs::remove_dir_all(&o.dir);
    std::fs::create_dir_all(&o.dir)?;
    let engines: Vec<String> = o.engines.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    let exe = std::env::current_exe()?;
    let mut table: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut put = |eng: &str, m: &str, v: String, table: &mut BTreeMap<String, BTreeMap<String, String>>| {
        if !order.iter().any(|x| x == m) {
            order.push(m.to_string());
        }
        table.entry(m.to_string()).or_default().insert(eng.to_string(), v);
    };

    eprintln!("== raw disk fsync baseline on {}", o.dir.display());
    for (k, v) in raw_fsync(&o.dir)? {
        eprintln!("   {k} = {v}");
        put("disk", &format!("{k}_before"), v, &mut table);
    }

    let have_strace = Command::new("strace").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().map(|s| s.success()).unwrap_or(false);

    if have_strace && engines.iter().any(|e| e == "fjall") {
        // Shows the pitfall: fjall's default transaction durability does not fsync.
        if let Some(x) = fsync_audit("fjall-default", &o.dir) {
            eprintln!("== fjall-default: {x:.2} fsync-family syscalls per commit (strace)");
            put("fjall-default", "audit_sync_syscalls_per_commit", format!("{x:.2}"), &mut table);
        }
    }
    for eng in &engines {
        if have_strace {
            if let Some(x) = fsync_audit(eng, &o.dir) {
                eprintln!("== {eng}: {x:.2} fsync-family syscalls per 1-key durable commit (strace)");
                put(eng, "audit_sync_syscalls_per_commit", format!("{x:.2}"), &mut table);
            }
        }
        eprintln!("== engine {eng}");
        let noise = Noise::start();
        let t0 = Instant::now();
        let out = Command::new(&exe)
            .args(["engine", eng, "--secs", &o.secs.to_string(), "--keys", &o.keys.to_string(), "--crash-runs", &o.crash_runs.to_string(), "--configs", &o.configs, "--dir"])
            .arg(&o.dir)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()?;
        if !out.status.success() {
            return Err(format!("engine {eng} failed: {}", out.status).into());
        }
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            let t: Vec<&str> = l.splitn(4, '\t').collect();
            if t.len() == 4 && t[0] == "RESULT" {
                put(t[1], t[2], t[3].to_string(), &mut table);
            }
        }
        put(eng, "engine_phase_wall_s", format!("{:.0}", t0.elapsed().as_secs_f64()), &mut table);
        let (busy, load) = noise.finish();
        put(eng, "foreign_build_activity_pct_of_phase", format!("{busy:.0}"), &mut table);
        put(eng, "max_loadavg_1min_in_phase", format!("{load:.2}"), &mut table);
    }

    eprintln!("== raw disk fsync baseline again");
    for (k, v) in raw_fsync(&o.dir)? {
        put("disk", &format!("{k}_after"), v, &mut table);
    }
    let _ = std::fs::remove_dir_all(&o.dir);

    let mut cols = vec!["disk".to_string()];
    cols.extend(engines.iter().cloned());
    if table.values().any(|r| r.contains_key("fjall-default")) {
        cols.push("fjall-default".to_string());
    }
    let mut md = String::new();
    md.push_str(&format!(
        "kvbench all: keys={} secs/run={} crash_runs={} cache={} MiB/engine dir={} total_wall={:.0}s\n\n",
        o.keys, o.secs, o.crash_runs, CACHE_BYTES >> 20, o.dir.display(), t_all.elapsed().as_secs_f64()
    ));
    md.push_str(&format!("| metric | {} |\n|---|{}\n", cols.join(" | "), "---|".repeat(cols.len())));
    for m in &order {
        let row = &table[m];
        let cells: Vec<String> = cols.iter().map(|c| row.get(c).cloned().unwrap_or_default()).collect();
        md.push_str(&format!("| {m} | {} |\n", cells.join(" | ")));
    }
    println!("{md}");
    let report = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/kvbench-report.md");
    if std::fs::write(&report, &md).is_ok() {
        eprintln!("(table also written to {})", report.display());
    }
    Ok(())
}
