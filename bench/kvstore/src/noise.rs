//! Detects other people's builds running during a measurement.

use std::time::Duration;

/// Samples (every 500 ms) whether compiler/linker processes are running on
/// the machine. kvbench never compiles anything itself, so any such process
/// belongs to someone else sharing the 2 cores and the disk.
pub struct Noise {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<(u64, u64, f64)>>,
}

fn foreign_builders() -> u64 {
    const NAMES: [&str; 9] = ["rustc", "cc1", "cc1plus", "ld", "ld.lld", "ld.bfd", "collect2", "cargo-clippy", "clippy-driver"];
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for ent in rd.flatten() {
            let name = ent.file_name();
            if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            if let Ok(c) = std::fs::read_to_string(ent.path().join("comm")) {
                let c = c.trim();
                if NAMES.contains(&c) || c.starts_with("build-script") {
                    n += 1;
                }
            }
        }
    }
    n
}

impl Noise {
    pub fn start() -> Noise {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut samples, mut busy, mut load_max) = (0u64, 0u64, 0f64);
            // Bounded: at most 2 hours of samples.
            while !s2.load(std::sync::atomic::Ordering::SeqCst) && samples < 14_400 {
                samples += 1;
                if foreign_builders() > 0 {
                    busy += 1;
                }
                if let Some(l) = std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| s.split_whitespace().next().and_then(|x| x.parse::<f64>().ok())) {
                    load_max = load_max.max(l);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            (samples, busy, load_max)
        });
        Noise { stop, handle: Some(handle) }
    }
    /// (% of samples with a foreign compiler/linker running, max 1-min loadavg)
    pub fn finish(mut self) -> (f64, f64) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (s, b, l) = self.handle.take().and_then(|h| h.join().ok()).unwrap_or((0, 0, 0.0));
        (if s == 0 { 0.0 } else { 100.0 * b as f64 / s as f64 }, l)
    }
}

