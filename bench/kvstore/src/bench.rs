//! Measurements: group-commit writers, direct writers, scans, point gets,
//! and the kill -9 recovery check.

use crate::engine::{open_engine, Engine, Res};
use crate::workload::{check_value, object_key, Rng, NEW_KEY_BASE};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Hard bound on operations per writer thread in any write run.
pub const MAX_OPS_PER_WRITER: u64 = 2_000_000;

/// Key index space for keys created by write run `run_id`, writer `w`.
fn new_key_index(run_id: u64, w: u64, n: u64) -> u64 {
    NEW_KEY_BASE + run_id * 400_000_000 + w * 10_000_000 + n
}

/// Key choice for a PUT: 50% a brand-new object, 50% an overwrite of a
/// random pre-loaded object (read-modify-write sees an existing record).
fn choose_key(rng: &mut Rng, run_id: u64, w: u64, n: u64, n_loaded: u64) -> Vec<u8> {
    if n_loaded == 0 || rng.next_u64() & 1 == 0 {
        object_key(new_key_index(run_id, w, n))
    } else {
        object_key(rng.below(n_loaded))
    }
}

struct Req {
    key: Vec<u8>,
    ack: mpsc::SyncSender<Option<u64>>,
}

#[derive(Debug, Default, Clone)]
pub struct WriteStats {
    pub acks: u64,
    pub secs: f64,
    pub batches: u64,
    pub max_batch_seen: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl WriteStats {
    pub fn rate(&self) -> f64 {
        self.acks as f64 / self.secs
    }
    pub fn avg_batch(&self) -> f64 {
        if self.batches == 0 {
            0.0
        } else {
            self.acks as f64 / self.batches as f64
        }
    }
}

/// The group committer, written once for any engine: take every pending
/// request (up to `max_batch`), apply them in ONE write transaction with ONE
/// durable commit, then acknowledge each writer.
fn committer_loop<E: Engine + ?Sized>(
    e: &E,
    rx: mpsc::Receiver<Req>,
    max_batch: usize,
) -> Res<(u64, u64, u64)> {
    let (mut batches, mut reqs, mut biggest) = (0u64, 0u64, 0u64);
    let mut keys: Vec<Vec<u8>> = Vec::with_capacity(max_batch);
    let mut acks: Vec<mpsc::SyncSender<Option<u64>>> = Vec::with_capacity(max_batch);
    let mut versions: Vec<u64> = Vec::with_capacity(max_batch);
    // Ends when every writer has dropped its sender (writers are time/count bounded).
    while let Ok(first) = rx.recv() {
        keys.push(first.key);
        acks.push(first.ack);
        while keys.len() < max_batch {
            match rx.try_recv() {
                Ok(r) => {
                    keys.push(r.key);
                    acks.push(r.ack);
                }
                Err(_) => break,
            }
        }
        versions.clear();
        let n = keys.len() as u64;
        match e.put_batch(&keys, &mut versions) {
            Ok(()) => {
                // Only now (after the durable commit returned) acknowledge.
                for (a, v) in acks.drain(..).zip(versions.iter()) {
                    let _ = a.send(Some(*v));
                }
            }
            Err(err) => {
                for a in acks.drain(..) {
                    let _ = a.send(None);
                }
                return Err(err);
            }
        }
        keys.clear();
        batches += 1;
        reqs += n;
        biggest = biggest.max(n);
    }
    Ok((batches, reqs, biggest))
}

pub type AckHook<'a> = &'a (dyn Fn(&[u8], u64) + Sync);

/// Run `writers` threads for `secs` seconds (and at most MAX_OPS_PER_WRITER
/// each). With `group`, writers go through the committer; without, each
/// writer runs its own one-key durable transaction.
pub fn run_writers<E: Engine + ?Sized>(
    e: &E,
    writers: usize,
    group: bool,
    secs: f64,
    run_id: u64,
    n_loaded: u64,
    max_batch: usize,
    on_ack: Option<AckHook<'_>>,
) -> Res<WriteStats> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let (tx, rx) = mpsc::channel::<Req>();
    let result: Res<(Vec<Vec<u32>>, Option<(u64, u64, u64)>)> = std::thread::scope(|s| {
        let committer = if group {
            Some(s.spawn(move || committer_loop(e, rx, max_batch)))
        } else {
            drop(rx);
            None
        };
        let mut handles = Vec::new();
        for w in 0..writers as u64 {
            let tx = tx.clone();
            handles.push(s.spawn(move || -> Res<Vec<u32>> {
                let (atx, arx) = mpsc::sync_channel::<Option<u64>>(1);
                let mut rng = Rng::new(run_id.wrapping_mul(1_000_003) ^ (w + 1));
                let mut lats: Vec<u32> = Vec::with_capacity(1 << 16);
                let mut versions = Vec::with_capacity(1);
                let mut n = 0u64;
                while n < MAX_OPS_PER_WRITER && Instant::now() < deadline {
                    let key = choose_key(&mut rng, run_id, w, n, n_loaded);
                    let t0 = Instant::now();
                    let ver = if group {
                        tx.send(Req { key: key.clone(), ack: atx.clone() })
                            .map_err(|_| "committer gone")?;
                        arx.recv().map_err(|_| "committer gone")?.ok_or("commit failed")?
                    } else {
                        versions.clear();
                        e.put_batch(std::slice::from_ref(&key), &mut versions)?;
                        versions[0]
                    };
                    lats.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    if let Some(h) = on_ack {
                        h(&key, ver);
                    }
                    n += 1;
                }
                Ok(lats)
            }));
        }
        drop(tx);
        let mut all = Vec::new();
        let mut first_err: Option<Box<dyn std::error::Error + Send + Sync>> = None;
        for h in handles {
            match h.join().expect("writer panicked") {
                Ok(l) => all.push(l),
                Err(e) => first_err = first_err.or(Some(e)),
            }
        }
        let c = match committer {
            Some(c) => Some(c.join().expect("committer panicked")?),
            None => None,
        };
        if let Some(e) = first_err {
            return Err(e);
        }
        Ok((all, c))
    });
    let (lats, c) = result?;
    let secs = start.elapsed().as_secs_f64();
    let mut all: Vec<u32> = lats.into_iter().flatten().collect();
    all.sort_unstable();
    let pct = |p: f64| -> u64 {
        if all.is_empty() {
            0
        } else {
            all[((all.len() - 1) as f64 * p).round() as usize] as u64
        }
    };
    let acks = all.len() as u64;
    let (batches, biggest) = match c {
        Some((b, reqs, big)) => {
            assert_eq!(reqs, acks, "committer/writer count mismatch");
            (b, big)
        }
        None => (acks, 1),
    };
    Ok(WriteStats {
        acks,
        secs,
        batches,
        max_batch_seen: biggest,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        max_us: all.last().copied().unwrap_or(0) as u64,
    })
}

#[derive(Debug, Default)]
pub struct ScanStats {
    pub keys: u64,
    pub secs: f64,
    pub ordered: bool,
}

/// Ordered scan of everything from `start`, checking strict bytewise order.
pub fn full_scan<E: Engine + ?Sized>(e: &E, start: &[u8]) -> Res<(ScanStats, u64)> {
    let mut prev: Vec<u8> = Vec::new();
    let mut ordered = true;
    let mut first = true;
    let mut touch = 0u64;
    let t0 = Instant::now();
    let n = e.scan(start, usize::MAX, &mut |k, v| {
        if !first && k <= prev.as_slice() {
            ordered = false;
        }
        first = false;
        prev.clear();
        prev.extend_from_slice(k);
        touch = touch.wrapping_add(v[v.len() - 1] as u64);
    })?;
    Ok((ScanStats { keys: n, secs: t0.elapsed().as_secs_f64(), ordered }, touch))
}

/// `count` short scans of `len` keys each, from random existing keys,
/// each in its own read snapshot (like ListObjects max-keys=len).
pub fn short_scans<E: Engine + ?Sized>(e: &E, count: u64, len: usize, n_loaded: u64) -> Res<ScanStats> {
    let mut rng = Rng::new(0xABCD);
    let starts: Vec<Vec<u8>> = (0..count).map(|_| object_key(rng.below(n_loaded))).collect();
    let mut ordered = true;
    let mut total = 0u64;
    let mut prev: Vec<u8> = Vec::new();
    let t0 = Instant::now();
    for s in &starts {
        let mut first = true;
        let mut touch = 0u64;
        total += e.scan(s, len, &mut |k, v| {
            if first {
                if k != s.as_slice() {
                    ordered = false; // the start key exists, so it must come first
                }
            } else if k <= prev.as_slice() {
                ordered = false;
            }
            first = false;
            prev.clear();
            prev.extend_from_slice(k);
            touch = touch.wrapping_add(v[v.len() - 1] as u64);
        })?;
        std::hint::black_box(touch);
    }
    Ok(ScanStats { keys: total, secs: t0.elapsed().as_secs_f64(), ordered })
}

/// Random point gets of pre-loaded keys; returns (gets, secs, all_found).
pub fn point_gets<E: Engine + ?Sized>(e: &E, count: u64, n_loaded: u64) -> Res<(u64, f64, bool)> {
    let mut rng = Rng::new(0x6E75);
    let keys: Vec<Vec<u8>> = (0..count).map(|_| object_key(rng.below(n_loaded))).collect();
    let mut ok = true;
    let t0 = Instant::now();
    for k in &keys {
        match e.get(k)? {
            Some(v) if v.len() == crate::workload::VALUE_LEN => {}
            _ => ok = false,
        }
    }
    Ok((count, t0.elapsed().as_secs_f64(), ok))
}

// ------------------------------------------------------------------ crash

/// Child side: open, print READY, run 32 group-commit writers, and print
/// `A <key> <version>` for every acknowledged write (flushed per ack).
/// Exits by itself after `max_secs` if nobody kills it.
pub fn crash_child(engine: &str, dir: &Path, run_id: u64, threads: usize, max_secs: f64, n_loaded: u64) -> Res<()> {
    let e = open_engine(engine, dir)?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "READY")?;
        out.flush()?;
    }
    let hook = |k: &[u8], v: u64| {
        let mut line = Vec::with_capacity(k.len() + 24);
        line.extend_from_slice(b"A ");
        line.extend_from_slice(k);
        line.extend_from_slice(format!(" {v}\n").as_bytes());
        let mut out = std::io::stdout().lock();
        // One write per ack line, flushed before the writer issues its next PUT.
        let _ = out.write_all(&line);
        let _ = out.flush();
    };
    run_writers(&e, threads, true, max_secs, run_id, n_loaded, 256, Some(&hook))?;
    Ok(())
}

#[derive(Debug, Default)]
pub struct CrashResult {
    pub killed_after_s: f64,
    pub ack_lines: u64,
    pub distinct_keys: u64,
    pub open_secs: f64,
    pub lost: u64,
    pub corrupt: u64,
    pub verify_secs: f64,
    pub count_after: u64,
    pub count_expected_min: u64,
    pub scan_ok: bool,
    pub note: String,
    /// Allocated bytes of fjall journal files (*.jnl) left by the killed child.
    pub journal_bytes: u64,
}

fn jnl_bytes(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for ent in rd.flatten() {
            if let Ok(m) = ent.metadata() {
                if m.is_dir() {
                    n += jnl_bytes(&ent.path());
                } else if ent.file_name().to_string_lossy().ends_with(".jnl") {
                    n += m.blocks() * 512;
                }
            }
        }
    }
    n
}

/// Parent side of one crash run. `count_before` = keys in the DB before.
pub fn crash_run(engine: &str, dir: &Path, run_id: u64, n_loaded: u64, count_before: u64, seed: u64) -> Res<CrashResult> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args([
            "crash-child",
            engine,
            dir.to_str().ok_or("dir not utf-8")?,
            &run_id.to_string(),
            "32",
            "30",
            &n_loaded.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let reader = std::thread::spawn(move || -> Vec<(Vec<u8>, u64)> {
        let mut r = BufReader::new(stdout);
        let mut acks = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if line.last() != Some(&b'\n') {
                break; // torn final line: not a complete acknowledgement
            }
            line.pop();
            if line == b"READY" {
                let _ = ready_tx.send(());
                continue;
            }
            if let Some(rest) = line.strip_prefix(b"A ") {
                if let Some(sp) = rest.iter().rposition(|&b| b == b' ') {
                    let key = rest[..sp].to_vec();
                    let ver: u64 = std::str::from_utf8(&rest[sp + 1..]).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
                    acks.push((key, ver));
                }
            }
        }
        acks
    });
    if ready_rx.recv_timeout(Duration::from_secs(300)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        return Err("crash child never became ready".into());
    }
    let mut rng = Rng::new(seed);
    let wait_s = 2.0 + (rng.below(3001) as f64) / 1000.0; // 2.000 .. 5.000 s
    std::thread::sleep(Duration::from_secs_f64(wait_s));
    child.kill()?; // SIGKILL on Unix
    let status = child.wait()?;
    let acks = reader.join().map_err(|_| "reader panicked")?;
    eprintln!("    killed after {wait_s:.2}s ({status}); {} acknowledged writes", acks.len());

    let mut want: HashMap<Vec<u8>, u64> = HashMap::with_capacity(acks.len());
    for (k, v) in &acks {
        let e = want.entry(k.clone()).or_insert(0);
        *e = (*e).max(*v);
    }
    let new_keys = want.values().filter(|&&v| v == 1).count() as u64;
    let journal_bytes = jnl_bytes(dir);

    let t0 = Instant::now();
    let e = open_engine(engine, dir)?;
    let open_secs = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let (mut lost, mut corrupt) = (0u64, 0u64);
    for (k, &v) in &want {
        match e.get(k)? {
            None => lost += 1,
            Some(val) => match check_value(k, &val) {
                None => corrupt += 1,
                Some(stored) if stored < v => lost += 1,
                Some(_) => {}
            },
        }
    }
    // Whole-DB integrity: every record must be well-formed and keys ordered.
    let mut prev: Vec<u8> = Vec::new();
    let mut scan_ok = true;
    let mut first = true;
    let count_after = e.scan(b"", usize::MAX, &mut |k, v| {
        if (!first && k <= prev.as_slice()) || check_value(k, v).is_none() {
            scan_ok = false;
        }
        first = false;
        prev.clear();
        prev.extend_from_slice(k);
    })?;
    let verify_secs = t1.elapsed().as_secs_f64();
    let note = e.open_note();
    drop(e); // clean close before the next run
    Ok(CrashResult {
        killed_after_s: wait_s,
        ack_lines: acks.len() as u64,
        distinct_keys: want.len() as u64,
        open_secs,
        lost,
        corrupt,
        verify_secs,
        count_after,
        count_expected_min: count_before + new_keys,
        scan_ok,
        note,
        journal_bytes,
    })
}
