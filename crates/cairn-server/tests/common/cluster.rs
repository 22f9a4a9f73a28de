//! A cluster of real `cairn server` processes on 127.0.0.1, each with its
//! own port and drive directories, all given the same drive URLs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;

use super::{ACCESS_KEY, SECRET_KEY, TempDir, cairn_binary, client_for, raw_request};

pub struct Node {
    pub addr: String,
    pub drives: Vec<PathBuf>,
    pub log: PathBuf,
    /// Settings for this node only, replacing the cluster's on restart.
    pub env: Vec<(String, String)>,
    child: Option<Child>,
    started: Option<std::sync::mpsc::Receiver<String>>,
}

pub struct TestCluster {
    pub dir: TempDir,
    pub nodes: Vec<Node>,
    pub args: Vec<String>,
    /// Settings for every node.
    pub env: Vec<(String, String)>,
}

/// A port free now, below the kernel's ephemeral range: a port the kernel
/// picked for `:0` can be handed out again as the source port of one of
/// the nodes' own outgoing connections before the node listens on it.
pub fn free_port() -> u16 {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let low = 10_000u16.min(ephemeral_low / 2);
    let span = u64::from(ephemeral_low - low);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
        ^ (u64::from(std::process::id()) << 20);
    for attempt in 0..1000u64 {
        let mixed = (seed ^ attempt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let port = low + ((mixed >> 32) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below {ephemeral_low} after 1000 tries")
}

impl TestCluster {
    /// Starts `nodes` nodes of `drives` drives each and waits until every
    /// one serves.
    pub fn start(nodes: usize, drives: usize, env: &[(&str, &str)]) -> TestCluster {
        let mut cluster = TestCluster::prepare(nodes, drives, env);
        cluster.start_all();
        cluster
    }

    /// Lays out a cluster without starting it, so that nodes can get their
    /// own settings first.
    pub fn prepare(nodes: usize, drives: usize, env: &[(&str, &str)]) -> TestCluster {
        let dir = TempDir::new("cluster");
        let mut ports: Vec<u16> = Vec::new();
        for _ in 0..nodes * 100 {
            if ports.len() == nodes {
                break;
            }
            let port = free_port();
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        assert_eq!(ports.len(), nodes, "no {nodes} distinct free ports");
        let mut args = Vec::new();
        let mut list = Vec::new();
        for (n, port) in ports.iter().enumerate() {
            let drive_paths: Vec<PathBuf> = (1..=drives)
                .map(|d| dir.path().join(format!("n{}", n + 1)).join(format!("d{d}")))
                .collect();
            for path in &drive_paths {
                args.push(format!("http://127.0.0.1:{port}{}", path.display()));
            }
            list.push(Node {
                addr: format!("127.0.0.1:{port}"),
                log: dir.path().join(format!("node{}.log", n + 1)),
                drives: drive_paths,
                env: Vec::new(),
                child: None,
                started: None,
            });
        }
        TestCluster {
            dir,
            nodes: list,
            args,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// Starts `nodes` nodes of `drives` drives each, every node watching a
    /// faults file of its own (`CAIRN_TEST_FAULTS_FILE`, empty: no fault
    /// yet); returns the cluster and the files, by node.
    pub fn start_with_fault_files(nodes: usize, drives: usize) -> (TestCluster, Vec<PathBuf>) {
        let mut cluster = TestCluster::prepare(nodes, drives, &[]);
        let faults: Vec<PathBuf> = (0..nodes)
            .map(|i| cluster.dir.path().join(format!("faults{i}")))
            .collect();
        for (idx, file) in faults.iter().enumerate() {
            std::fs::write(file, "").unwrap();
            cluster.nodes[idx].env = vec![(
                "CAIRN_TEST_FAULTS_FILE".to_owned(),
                file.display().to_string(),
            )];
        }
        cluster.start_all();
        (cluster, faults)
    }

    /// Starts every node and waits until each one serves.
    pub fn start_all(&mut self) {
        for idx in 0..self.nodes.len() {
            self.spawn(idx);
        }
        for idx in 0..self.nodes.len() {
            self.wait_started(idx);
        }
    }

    /// Starts node `idx`'s process without waiting.
    pub fn spawn(&mut self, idx: usize) {
        let node = &mut self.nodes[idx];
        assert!(node.child.is_none(), "node {} is running", idx + 1);
        let mut cmd = Command::new(cairn_binary());
        cmd.arg("server")
            .arg("--address")
            .arg(&node.addr)
            .args(&self.args);
        cmd.env("CAIRN_ROOT_USER", ACCESS_KEY)
            .env("CAIRN_ROOT_PASSWORD", SECRET_KEY)
            .env("CAIRN_LOG", "info,s3s=off");
        for (k, v) in self.env.iter().chain(&node.env) {
            cmd.env(k, v);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .unwrap();
        cmd.stdout(Stdio::piped()).stderr(log).stdin(Stdio::null());
        let mut child = cmd.spawn().expect("spawn cairn");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        node.child = Some(child);
        node.started = Some(rx);
    }

    /// Waits for node `idx`'s start-up banner and its ready endpoint.
    pub fn wait_started(&mut self, idx: usize) {
        let node = &mut self.nodes[idx];
        let rx = node.started.take().expect("spawned");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if line.starts_with("Started in") => break,
                Ok(_) => {}
                Err(_) => {
                    if let Some(Ok(Some(status))) = node.child.as_mut().map(|c| c.try_wait()) {
                        panic!(
                            "node {} exited with {status}: {}",
                            idx + 1,
                            self.log_text(idx)
                        );
                    }
                    assert!(
                        Instant::now() < deadline,
                        "node {} did not start within 60 s: {}",
                        idx + 1,
                        self.log_text(idx)
                    );
                }
            }
        }
        std::thread::spawn(move || for _ in rx {});
        let addr = self.nodes[idx].addr.clone();
        assert!(
            super::wait_until(Duration::from_secs(30), || {
                raw_request(&addr, "GET", "/minio/health/ready", &[], b"")
                    .is_ok_and(|r| r.status == 200)
            }),
            "node {} not ready",
            idx + 1
        );
    }

    pub fn start_node(&mut self, idx: usize) {
        self.spawn(idx);
        self.wait_started(idx);
    }

    /// SIGKILL.
    pub fn kill(&mut self, idx: usize) {
        if let Some(mut child) = self.nodes[idx].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and wait for the exit.
    pub fn stop(&mut self, idx: usize) {
        if let Some(mut child) = self.nodes[idx].child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the process stays, its sockets stay open, nothing answers.
    pub fn freeze(&self, idx: usize) {
        self.signal(idx, "-STOP");
    }

    /// SIGCONT after [`TestCluster::freeze`].
    pub fn thaw(&self, idx: usize) {
        self.signal(idx, "-CONT");
    }

    fn signal(&self, idx: usize, signal: &str) {
        let child = self.nodes[idx].child.as_ref().expect("node is running");
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} node {}", idx + 1);
    }

    pub fn is_running(&self, idx: usize) -> bool {
        self.nodes[idx].child.is_some()
    }

    pub fn client(&self, idx: usize) -> Client {
        client_for(
            &format!("http://{}", self.nodes[idx].addr),
            ACCESS_KEY,
            SECRET_KEY,
        )
    }

    pub fn health(&self, idx: usize, check: &str) -> u16 {
        raw_request(
            &self.nodes[idx].addr,
            "GET",
            &format!("/minio/health/{check}"),
            &[],
            b"",
        )
        .map(|r| r.status)
        .unwrap_or(0)
    }

    pub fn log_text(&self, idx: usize) -> String {
        std::fs::read_to_string(&self.nodes[idx].log).unwrap_or_default()
    }

    /// Waits until node `idx`'s log contains `needle`.
    pub fn wait_log(&self, idx: usize, needle: &str, timeout: Duration) -> bool {
        super::wait_until(timeout, || self.log_text(idx).contains(needle))
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for idx in 0..self.nodes.len() {
            self.kill(idx);
        }
    }
}

/// A TCP load balancer in front of the nodes, as a Kubernetes Service is:
/// each new connection goes to the next node whose readiness probe
/// (`/minio/health/ready`, polled every 100 ms) passes.
pub struct Balancer {
    pub addr: String,
    stop: Arc<AtomicBool>,
}

impl Balancer {
    pub fn start(backends: Vec<String>) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let next = Arc::new(AtomicUsize::new(0));
        let ready: Arc<Vec<AtomicBool>> =
            Arc::new(backends.iter().map(|_| AtomicBool::new(true)).collect());
        {
            let (ready, flag, backends) = (ready.clone(), stop.clone(), backends.clone());
            std::thread::spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    for (idx, backend) in backends.iter().enumerate() {
                        let ok = raw_request(backend, "GET", "/minio/health/ready", &[], b"")
                            .is_ok_and(|r| r.status == 200);
                        ready[idx].store(ok, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let client = match listener.accept() {
                    Ok((client, _)) => client,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                let _ = client.set_nonblocking(false);
                let start = next.fetch_add(1, Ordering::Relaxed);
                let backend = (0..backends.len()).find_map(|i| {
                    let idx = (start + i) % backends.len();
                    if !ready[idx].load(Ordering::Relaxed) {
                        return None;
                    }
                    TcpStream::connect_timeout(
                        &backends[idx].parse().unwrap(),
                        Duration::from_secs(1),
                    )
                    .ok()
                });
                let Some(backend) = backend else { continue };
                pipe(client, backend);
            }
        });
        Balancer { addr, stop }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn pipe(a: TcpStream, b: TcpStream) {
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    let (a2, b2) = (a.try_clone().unwrap(), b.try_clone().unwrap());
    let copy = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = to.shutdown(std::net::Shutdown::Write);
            let _ = from.shutdown(std::net::Shutdown::Read);
        });
    };
    copy(a, b2);
    copy(b, a2);
}
