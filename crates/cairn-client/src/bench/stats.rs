//! What `cairn bench` measures: per operation kind, counts, bytes, a
//! latency histogram (bounded memory however long the run) and errors by
//! S3 code; rendered as a table or JSON, and compared between two runs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

/// Latencies in microseconds, exact below 1024 µs and within 1/128
/// (0.8 %) above: 64-bit values fit in under 8,000 counters.
#[derive(Clone, Default)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    sum: u128,
}

const LINEAR: u64 = 1024;
const SUB_BITS: u32 = 7;

fn bucket_of(us: u64) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    let log = 63 - us.leading_zeros();
    let sub = (us >> (log - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    (LINEAR + u64::from(log - 10) * (1 << SUB_BITS) + sub) as usize
}

/// The highest value that falls in bucket `idx`.
fn bucket_top(idx: usize) -> u64 {
    let idx = idx as u64;
    if idx < LINEAR {
        return idx;
    }
    let log = (idx - LINEAR) / (1 << SUB_BITS) + 10;
    let sub = (idx - LINEAR) % (1 << SUB_BITS);
    let base = (1u64 << log) + (sub << (log - u64::from(SUB_BITS)));
    base + (1 << (log - u64::from(SUB_BITS))) - 1
}

impl Histogram {
    pub fn record(&mut self, latency: Duration) {
        let us = latency.as_micros().min(u128::from(u64::MAX)) as u64;
        let idx = bucket_of(us);
        if self.counts.len() <= idx {
            self.counts.resize(idx + 1, 0);
        }
        self.counts[idx] += 1;
        self.total += 1;
        self.max = self.max.max(us);
        self.sum += u128::from(us);
    }

    pub fn merge(&mut self, other: &Histogram) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// The latency under which `q` (0..=1) of the operations finished, in µs.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (idx, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_top(idx).min(self.max);
            }
        }
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }
}

/// One kind of operation (put, get, list page, ...) in one phase.
#[derive(Clone, Default)]
pub struct OpStats {
    pub ok: u64,
    pub bytes: u64,
    /// Keys listed (list pages only).
    pub keys: u64,
    pub latency: Histogram,
    pub errors: BTreeMap<String, u64>,
}

impl OpStats {
    pub fn merge(&mut self, other: &OpStats) {
        self.ok += other.ok;
        self.bytes += other.bytes;
        self.keys += other.keys;
        self.latency.merge(&other.latency);
        for (code, count) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += count;
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// What the server process did during a phase (`--server-pid`).
#[derive(Clone, Copy, Default)]
pub struct ServerUsage {
    pub cpu_secs: f64,
    pub rss_peak_bytes: u64,
}

/// One phase: prepare, the workload itself, or cleanup.
pub struct Phase {
    pub name: String,
    pub secs: f64,
    pub ops: BTreeMap<&'static str, OpStats>,
    pub server: Option<ServerUsage>,
}

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Phase {
    pub fn total(&self) -> OpStats {
        let mut total = OpStats::default();
        for stats in self.ops.values() {
            total.merge(stats);
        }
        total
    }

    pub fn to_json(&self) -> Value {
        let secs = self.secs.max(1e-9);
        let ops: serde_json::Map<String, Value> = self
            .ops
            .iter()
            .map(|(kind, s)| {
                let mut value = json!({
                    "ops": s.ok,
                    "errors": s.error_count(),
                    "bytes": s.bytes,
                    "ops_per_sec": s.ok as f64 / secs,
                    "mib_per_sec": s.bytes as f64 / MIB / secs,
                    "latency_ms": {
                        "p50": ms(s.latency.quantile(0.50)),
                        "p90": ms(s.latency.quantile(0.90)),
                        "p99": ms(s.latency.quantile(0.99)),
                        "max": ms(s.latency.max),
                        "mean": s.latency.mean() / 1000.0,
                    },
                    "errors_by_code": s.errors,
                });
                if *kind == "list" {
                    value["keys"] = json!(s.keys);
                    value["keys_per_sec"] = json!(s.keys as f64 / secs);
                }
                ((*kind).to_owned(), value)
            })
            .collect();
        let total = self.total();
        let mut value = json!({
            "name": self.name,
            "secs": self.secs,
            "ops": total.ok,
            "errors": total.error_count(),
            "bytes": total.bytes,
            "ops_per_sec": total.ok as f64 / secs,
            "mib_per_sec": total.bytes as f64 / MIB / secs,
            "by_op": ops,
        });
        if let Some(server) = self.server {
            value["server"] = json!({
                "cpu_secs": server.cpu_secs,
                "cpu_secs_per_gib": if total.bytes > 0 {
                    Some(server.cpu_secs / (total.bytes as f64 / GIB))
                } else {
                    None
                },
                "cpu_ms_per_op": if total.ok > 0 {
                    Some(server.cpu_secs * 1000.0 / total.ok as f64)
                } else {
                    None
                },
                "rss_peak_mib": server.rss_peak_bytes as f64 / MIB,
            });
        }
        value
    }

    /// The phase as a few lines of text.
    pub fn render(&self) -> String {
        let secs = self.secs.max(1e-9);
        let mut out = format!("{} ({:.2} s)\n", self.name, self.secs);
        out.push_str(&format!(
            "  {:<9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9}  errors\n",
            "op", "ops", "ops/s", "MiB/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
        ));
        for (kind, s) in &self.ops {
            let errors = if s.errors.is_empty() {
                "0".to_owned()
            } else {
                s.errors
                    .iter()
                    .map(|(code, n)| format!("{code} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push_str(&format!(
                "  {:<9} {:>9} {:>10.1} {:>10.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}  {errors}\n",
                kind,
                s.ok,
                s.ok as f64 / secs,
                s.bytes as f64 / MIB / secs,
                ms(s.latency.quantile(0.5)),
                ms(s.latency.quantile(0.9)),
                ms(s.latency.quantile(0.99)),
                ms(s.latency.max),
            ));
            if *kind == "list" {
                out.push_str(&format!(
                    "  {:<9} {:>9} keys, {:.0} keys/s\n",
                    "",
                    s.keys,
                    s.keys as f64 / secs
                ));
            }
        }
        if let Some(server) = self.server {
            let total = self.total();
            out.push_str(&format!("  server: {:.2} CPU s", server.cpu_secs));
            if total.bytes > 0 {
                out.push_str(&format!(
                    ", {:.2} CPU s/GiB",
                    server.cpu_secs / (total.bytes as f64 / GIB)
                ));
            }
            if total.ok > 0 {
                out.push_str(&format!(
                    ", {:.3} CPU ms/op",
                    server.cpu_secs * 1000.0 / total.ok as f64
                ));
            }
            out.push_str(&format!(
                ", peak RSS {:.1} MiB\n",
                server.rss_peak_bytes as f64 / MIB
            ));
        }
        out
    }
}

/// `cairn bench compare`: for every phase and operation both results
/// have, B's figures as a multiple of A's.
pub fn compare(a: &Value, b: &Value) -> Result<String, String> {
    let phases = |v: &Value, which: &str| -> Result<Vec<Value>, String> {
        v["phases"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("{which} is not a `cairn bench --json` result"))
    };
    let (pa, pb) = (phases(a, "A")?, phases(b, "B")?);
    let mut out = format!(
        "B / A   (A: {} {}, B: {} {})\n",
        a["workload"].as_str().unwrap_or("?"),
        a["endpoint"].as_str().unwrap_or("?"),
        b["workload"].as_str().unwrap_or("?"),
        b["endpoint"].as_str().unwrap_or("?"),
    );
    out.push_str(&format!(
        "  {:<10} {:<9} {:>9} {:>9} {:>9} {:>9} {:>11}\n",
        "phase", "op", "ops/s", "MiB/s", "p50", "p99", "CPU/GiB"
    ));
    let ratio = |x: &Value, y: &Value| -> String {
        match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) if x > 0.0 => format!("{:.2}x", y / x),
            _ => "-".to_owned(),
        }
    };
    let mut matched = 0;
    for phase_a in &pa {
        let name = phase_a["name"].as_str().unwrap_or_default();
        let Some(phase_b) = pb.iter().find(|p| p["name"].as_str() == Some(name)) else {
            continue;
        };
        let Some(ops_a) = phase_a["by_op"].as_object() else {
            continue;
        };
        for (op, sa) in ops_a {
            let sb = &phase_b["by_op"][op];
            if sb.is_null() {
                continue;
            }
            matched += 1;
            let cpu = if op == ops_a.keys().next().map(String::as_str).unwrap_or_default() {
                ratio(
                    &phase_a["server"]["cpu_secs_per_gib"],
                    &phase_b["server"]["cpu_secs_per_gib"],
                )
            } else {
                String::new()
            };
            out.push_str(&format!(
                "  {:<10} {:<9} {:>9} {:>9} {:>9} {:>9} {:>11}\n",
                name,
                op,
                ratio(&sa["ops_per_sec"], &sb["ops_per_sec"]),
                ratio(&sa["mib_per_sec"], &sb["mib_per_sec"]),
                ratio(&sa["latency_ms"]["p50"], &sb["latency_ms"]["p50"]),
                ratio(&sa["latency_ms"]["p99"], &sb["latency_ms"]["p99"]),
                cpu,
            ));
        }
    }
    if matched == 0 {
        return Err("the two results have no phase and operation in common".to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_a_percent() {
        let mut h = Histogram::default();
        for us in 1..=100_000u64 {
            h.record(Duration::from_micros(us));
        }
        for (q, want) in [(0.5, 50_000.0), (0.9, 90_000.0), (0.99, 99_000.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.01, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.quantile(1.0), 100_000);
        assert_eq!(h.max, 100_000);
        let mut small = Histogram::default();
        for us in [5u64, 7, 9] {
            small.record(Duration::from_micros(us));
        }
        assert_eq!(small.quantile(0.5), 7);
        assert_eq!(small.quantile(0.0), 5);
        let mut merged = Histogram::default();
        merged.merge(&small);
        merged.merge(&h);
        assert_eq!(merged.total, 100_003);
        for us in [1023u64, 1024, 1025, 5_000_000, u64::MAX / 2] {
            let idx = bucket_of(us);
            assert!(bucket_top(idx) >= us, "{us}");
            assert!(idx == 0 || bucket_top(idx - 1) < us, "{us}");
        }
    }

    #[test]
    fn compare_divides_b_by_a() {
        let result = |ops: f64, cpu: f64| {
            json!({
                "workload": "put", "endpoint": "x",
                "phases": [{"name": "put", "server": {"cpu_secs_per_gib": cpu},
                    "by_op": {"put": {"ops_per_sec": ops, "mib_per_sec": ops,
                        "latency_ms": {"p50": 2.0, "p99": 4.0}}}}]
            })
        };
        let text = compare(&result(100.0, 2.0), &result(250.0, 0.5)).unwrap();
        assert!(text.contains("2.50x"), "{text}");
        assert!(text.contains("0.25x"), "{text}");
        assert!(compare(&result(1.0, 1.0), &json!({"phases": []})).is_err());
        assert!(compare(&json!({}), &result(1.0, 1.0)).is_err());
    }
}
