//! Shared test harness: starts the real `cairn` binary on 127.0.0.1 with
//! temporary drives, and talks to it with `aws-sdk-s3` or with raw,
//! hand-signed HTTP requests (for the request shapes an SDK never sends).

#![allow(dead_code)]

pub mod cluster;
pub mod sigv4;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

pub const ACCESS_KEY: &str = "cairn-test-admin";
pub const SECRET_KEY: &str = "cairn-test-secret-123";

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let base =
            std::env::var_os("CAIRN_TEST_TMP").map_or_else(std::env::temp_dir, PathBuf::from);
        let path = base.join(format!("cairn-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // `CAIRN_TEST_KEEP_DIRS=1` keeps drives and logs to look at after a failure.
        if std::env::var_os("CAIRN_TEST_KEEP_DIRS").is_some() {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How to start a server.
#[derive(Clone)]
pub struct ServerOptions {
    pub drives: usize,
    pub env: Vec<(String, String)>,
    /// Extra arguments before the drive list.
    pub args: Vec<String>,
    /// Run the server as this user and group (`setpriv`), for tests that
    /// take drives away with permissions, which do not stop root.
    pub run_as: Option<(u32, u32)>,
    /// Another `cairn` binary to run instead of this build's (an earlier
    /// release, to write drives it then hands over).
    pub binary: Option<String>,
    /// Start under this open-file limit (`prlimit --nofile=soft:hard`).
    pub open_files: Option<(u64, u64)>,
}

impl ServerOptions {
    pub fn drives(drives: usize) -> ServerOptions {
        ServerOptions {
            drives,
            env: Vec::new(),
            args: Vec::new(),
            run_as: None,
            binary: None,
            open_files: None,
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> ServerOptions {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// A running `cairn server` process with its drives.
pub struct TestServer {
    pub dir: TempDir,
    pub options: ServerOptions,
    pub drive_paths: Vec<PathBuf>,
    pub child: Option<Child>,
    pub addr: String,
    pub banner: Vec<String>,
    pub log: PathBuf,
}

pub fn cairn_binary() -> &'static str {
    env!("CARGO_BIN_EXE_cairn")
}

impl TestServer {
    pub fn start(options: ServerOptions) -> TestServer {
        TestServer::start_in(TempDir::new("srv"), options, |_| {})
    }

    /// Starts in `dir`, calling `prepare` on each drive path first.
    pub fn start_in(dir: TempDir, options: ServerOptions, prepare: impl Fn(&Path)) -> TestServer {
        let drive_paths: Vec<PathBuf> = (1..=options.drives)
            .map(|i| dir.path().join(format!("d{i}")))
            .collect();
        for path in &drive_paths {
            prepare(path);
        }
        let log = dir.path().join("server.log");
        let mut server = TestServer {
            dir,
            options,
            drive_paths,
            child: None,
            addr: String::new(),
            banner: Vec::new(),
            log,
        };
        server
            .spawn()
            .unwrap_or_else(|err| panic!("server failed to start: {err}\n{}", server.log_text()));
        server
    }

    /// Starts the process on the same drives; returns the error output if it exits.
    pub fn spawn(&mut self) -> Result<(), String> {
        let address = if self.addr.is_empty() {
            "127.0.0.1:0".to_owned()
        } else {
            self.addr.clone()
        };
        let binary = self.options.binary.as_deref().unwrap_or(cairn_binary());
        let mut cmd = match self.options.run_as {
            Some((uid, gid)) => {
                let mut cmd = Command::new("setpriv");
                cmd.args([
                    format!("--reuid={uid}"),
                    format!("--regid={gid}"),
                    "--clear-groups".to_owned(),
                    binary.to_owned(),
                ]);
                cmd
            }
            None => match self.options.open_files {
                Some((soft, hard)) => {
                    let mut cmd = Command::new("prlimit");
                    cmd.arg(format!("--nofile={soft}:{hard}")).arg(binary);
                    cmd
                }
                None => Command::new(binary),
            },
        };
        cmd.arg("server").arg("--address").arg(&address);
        cmd.args(&self.options.args);
        cmd.args(&self.drive_paths);
        cmd.env("CAIRN_ROOT_USER", ACCESS_KEY)
            .env("CAIRN_ROOT_PASSWORD", SECRET_KEY);
        cmd.env("CAIRN_LOG", "info,s3s=off");
        for (key, value) in &self.options.env {
            cmd.env(key, value);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        cmd.stdout(Stdio::piped()).stderr(log).stdin(Stdio::null());
        let mut child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut banner = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    let done = line.starts_with("Started in");
                    banner.push(line);
                    if done {
                        break;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(format!("exited with {status}: {}", self.log_text()));
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        return Err("no start-up banner within 30 s".to_owned());
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().map_err(|e| e.to_string())?;
                    return Err(format!("exited with {status}: {}", self.log_text()));
                }
            }
        }
        let api = banner
            .iter()
            .find_map(|l| l.strip_prefix("S3 API:"))
            .ok_or("no S3 API line")?;
        let listening = api
            .split("listening on ")
            .nth(1)
            .and_then(|s| s.strip_suffix(')'))
            .ok_or("no listening address")?;
        self.addr = listening.to_owned();
        self.banner = banner;
        self.child = Some(child);
        // Keep draining stdout so the process never blocks on it.
        std::thread::spawn(move || for _ in rx {});
        self.wait_ready();
        Ok(())
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(resp) = raw_request(&self.addr, "GET", "/minio/health/ready", &[], b"")
                && resp.status == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server not ready within 20 s");
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn client(&self) -> Client {
        client_for(&self.endpoint(), ACCESS_KEY, SECRET_KEY)
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
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

    pub fn restart(&mut self) {
        self.stop();
        self.spawn()
            .unwrap_or_else(|err| panic!("restart failed: {err}"));
    }

    /// Peak resident memory of the server process so far, in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .expect("VmHWM");
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn client_for(endpoint: &str, access_key: &str, secret_key: &str) -> Client {
    let http = aws_smithy_http_client::Builder::new().build_http();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "test"))
        .http_client(http)
        .build();
    Client::from_conf(config)
}

/// A response to a raw request.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `<Code>` of an S3 XML error body.
    pub fn error_code(&self) -> Option<String> {
        let text = self.text();
        let start = text.find("<Code>")? + 6;
        let end = text[start..].find("</Code>")? + start;
        Some(text[start..end].to_owned())
    }
}

/// Sends one HTTP/1.1 request over a fresh connection and reads the whole response.
pub fn raw_request(
    addr: &str,
    method: &str,
    target: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<RawResponse> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    // A `host` header given (a virtual host) replaces the address.
    let host = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map_or(addr, |(_, v)| v.as_str());
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    let has_length = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
    for (key, value) in headers {
        if key.eq_ignore_ascii_case("host") {
            continue;
        }
        head.push_str(&format!("{key}: {value}\r\n"));
    }
    if !has_length && (!body.is_empty() || method == "PUT" || method == "POST") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16)
            .unwrap_or(0);
        data = &data[line_end + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}

/// Headers for a raw request signed with the test credentials: `host`,
/// `x-amz-date`, `x-amz-content-sha256`, the `extra` ones, and `authorization`.
pub fn signed_headers(
    addr: &str,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    payload_hash: &str,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let signer = sigv4::Signer::new(ACCESS_KEY, SECRET_KEY);
    let mut headers: Vec<(&'static str, String)> = vec![
        ("host", addr.to_owned()),
        ("x-amz-date", signer.amz_date()),
        ("x-amz-content-sha256", payload_hash.to_owned()),
    ];
    headers.extend(extra.iter().cloned());
    let (auth, _) = signer.authorization(method, path, query, &headers, payload_hash);
    headers.push(("authorization", auth));
    headers
}

/// Deterministic pseudo-random bytes: test data that compresses poorly and
/// differs by seed.
pub fn test_data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
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

pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    let digest = md5::Md5::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The S3 error code of an SDK error, if the server sent one.
pub fn sdk_error_code<E, R>(err: &aws_sdk_s3::error::SdkError<E, R>) -> Option<String>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    match err {
        aws_sdk_s3::error::SdkError::ServiceError(service) => {
            service.err().code().map(str::to_owned)
        }
        _ => None,
    }
}

/// The HTTP status of an SDK error, if a response arrived.
pub fn sdk_status<E>(
    err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// Runs `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Runs `cairn admin ARGS` against `endpoint` with the test root user and
/// `password`; returns the exit code, standard output and standard error.
/// Killed after 120 s.
pub fn cairn_admin(endpoint: &str, password: &str, args: &[&str]) -> (i32, String, String) {
    let mut full = vec!["admin"];
    full.extend_from_slice(args);
    run_cairn(
        &full,
        &[
            ("CAIRN_ENDPOINT", endpoint),
            ("CAIRN_ROOT_USER", ACCESS_KEY),
            ("CAIRN_ROOT_PASSWORD", password),
        ],
    )
}

/// Runs `cairn ARGS` with `env` (killed after two minutes); returns its
/// exit code, standard output and standard error.
pub fn run_cairn(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = TempDir::new("cli");
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(cairn_binary())
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = child.wait().unwrap();
    (
        status.code().unwrap_or(-1),
        std::fs::read_to_string(&out_path).unwrap_or_default(),
        std::fs::read_to_string(&err_path).unwrap_or_default(),
    )
}

/// The PUT of `data` at `bucket/key`, ready to send.
fn put_request(
    client: &Client,
    bucket: &str,
    key: &str,
    data: &[u8],
) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from(data.to_vec()))
}

/// Sets `bucket`'s CORS rules to one: GETs from `origin`.
pub async fn allow_origin(client: &Client, bucket: &str, origin: &str) {
    use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
    let rule = CorsRule::builder()
        .allowed_origins(origin)
        .allowed_methods("GET")
        .build()
        .unwrap();
    let rules = CorsConfiguration::builder()
        .cors_rules(rule)
        .build()
        .unwrap();
    client
        .put_bucket_cors()
        .bucket(bucket)
        .cors_configuration(rules)
        .send()
        .await
        .unwrap_or_else(|e| panic!("put CORS on {bucket}: {e:?}"));
}

/// PUTs `data` at `bucket/key`, panicking with the SDK's error.
pub async fn put_bytes(client: &Client, bucket: &str, key: &str, data: &[u8]) {
    put_request(client, bucket, key, data)
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
}

/// PUTs `data` at `bucket/key`, as [`put_bytes`]; a refusal as its HTTP
/// status and S3 error code.
pub async fn try_put_bytes(
    client: &Client,
    bucket: &str,
    key: &str,
    data: &[u8],
) -> Result<(), (Option<u16>, Option<String>)> {
    put_request(client, bucket, key, data)
        .send()
        .await
        .map(|_| ())
        .map_err(|err| (sdk_status(&err), sdk_error_code(&err)))
}

/// GETs `bucket/key` whole, panicking with the SDK's error.
pub async fn get_bytes(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e:?}"))
        .body
        .collect()
        .await
        .unwrap()
        .to_vec()
}

/// Removes everything in a drive's directory while a server may be using
/// it: the drive comes back empty, as a replaced one does.
pub fn wipe(drive: &Path) {
    for entry in std::fs::read_dir(drive).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
}

/// Every shard file under `drive`, without the staging files of shard
/// replacements (`.<name>.<id>.new`; one interrupted by a kill is an orphan
/// for the scanner).
pub fn shard_files(drive: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for fanout in std::fs::read_dir(drive.join(".cairn.sys/data"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for file in std::fs::read_dir(fanout.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if !file.file_name().to_string_lossy().starts_with('.') {
                out.push(file.path());
            }
        }
    }
    out.sort();
    out
}
