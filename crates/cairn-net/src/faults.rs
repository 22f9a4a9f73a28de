//! Test-only fault injection: a network partition between nodes.
//!
//! When `CAIRN_TEST_FAULTS_FILE` names a file, every line `block NODE` in
//! it cuts this node off from `NODE` (`host:port` as in the drive
//! arguments): requests to it fail as unreachable and requests from it are
//! refused. The file is re-read at most every 200 ms, so a test partitions
//! and heals a running cluster by rewriting it. Without the variable this
//! costs one branch per request.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const ENV: &str = "CAIRN_TEST_FAULTS_FILE";

const RELOAD: Duration = Duration::from_millis(200);

pub struct Faults {
    file: Option<PathBuf>,
    cached: Mutex<(Option<Instant>, HashSet<String>)>,
}

impl Faults {
    pub fn from_env() -> Faults {
        Faults {
            file: std::env::var_os(ENV).map(PathBuf::from),
            cached: Mutex::new((None, HashSet::new())),
        }
    }

    pub fn none() -> Faults {
        Faults {
            file: None,
            cached: Mutex::new((None, HashSet::new())),
        }
    }

    /// True when traffic to or from `node` is cut.
    pub fn blocks(&self, node: &str) -> bool {
        let Some(file) = &self.file else {
            return false;
        };
        let mut cached = self.cached.lock().expect("faults");
        if cached.0.is_none_or(|at| at.elapsed() >= RELOAD) {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            cached.1 = text
                .lines()
                .filter_map(|line| line.trim().strip_prefix("block "))
                .map(|node| node.trim().to_owned())
                .collect();
            cached.0 = Some(Instant::now());
        }
        cached.1.contains(node)
    }
}
