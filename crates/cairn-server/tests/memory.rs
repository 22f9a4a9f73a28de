//! Bodies stream (issue 2, item 5): a 2 GiB PUT and a 2 GiB GET each keep
//! the server's peak RSS under 256 MiB; so does a 5 GiB object uploaded in
//! parts, two at a time (issue 3, item 1), and read back.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::sigv4::{Signer, sha256_hex};
use common::{ACCESS_KEY, SECRET_KEY, ServerOptions, TestServer};
use md5::{Digest, Md5};

const SIZE: u64 = 2 << 30;
const LIMIT: u64 = 256 << 20;
const CHUNK: usize = 1 << 20;

/// The chunk at `idx` of the test body: cheap to generate, never constant.
fn chunk(idx: u64, buf: &mut [u8]) {
    let mut state = idx.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for word in buf.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
    }
}

fn read_head(reader: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>) {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            return (status, headers);
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
}

fn signed_headers(server: &TestServer, method: &str, path: &str) -> String {
    signed_request_head(server, method, path, &[])
}

/// The request line and signed headers (no blank line) of a request whose
/// body, for PUT and POST, is sent unsigned.
fn signed_request_head(
    server: &TestServer,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
) -> String {
    let signer = Signer::new(ACCESS_KEY, SECRET_KEY);
    let payload = if method == "PUT" || method == "POST" {
        "UNSIGNED-PAYLOAD".to_owned()
    } else {
        sha256_hex(b"")
    };
    let headers = vec![
        ("host", server.addr.clone()),
        ("x-amz-date", signer.amz_date()),
        ("x-amz-content-sha256", payload.clone()),
    ];
    let (auth, _) = signer.authorization(method, path, query, &headers, &payload);
    let target = if query.is_empty() {
        path.to_owned()
    } else {
        let pairs: Vec<String> = query
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    (*k).to_owned()
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        format!("{path}?{}", pairs.join("&"))
    };
    format!(
        "{method} {target} HTTP/1.1\r\nHost: {}\r\nx-amz-date: {}\r\nx-amz-content-sha256: {payload}\r\nAuthorization: {auth}\r\n",
        server.addr,
        signer.amz_date()
    )
}

#[test]
fn issue_2_two_gib_put_and_get_stay_under_256_mib_rss() {
    let server = TestServer::start(ServerOptions::drives(4));
    let create = signed_headers(&server, "PUT", "/big");
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    write!(
        stream,
        "{create}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let (status, _) = read_head(&mut BufReader::new(stream));
    assert_eq!(status, 200);

    let baseline = server.peak_rss();

    // PUT 2 GiB, generated as it is sent.
    let head = signed_headers(&server, "PUT", "/big/object");
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(600)))
        .unwrap();
    write!(
        stream,
        "{head}Content-Length: {SIZE}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; CHUNK];
    for idx in 0..SIZE / CHUNK as u64 {
        chunk(idx, &mut buf);
        md5.update(&buf);
        stream.write_all(&buf).unwrap();
    }
    let expected_md5: String = md5.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader);
    assert_eq!(status, 200);
    let etag = headers
        .iter()
        .find(|(k, _)| k == "etag")
        .map(|(_, v)| v.trim_matches('"').to_owned());
    assert_eq!(etag.as_deref(), Some(expected_md5.as_str()));
    let after_put = server.peak_rss();
    assert!(
        after_put < LIMIT,
        "peak RSS after a 2 GiB PUT is {} MiB (baseline {} MiB)",
        after_put >> 20,
        baseline >> 20
    );

    // GET 2 GiB, read as it arrives and checked chunk by chunk.
    let head = signed_headers(&server, "GET", "/big/object");
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(600)))
        .unwrap();
    write!(stream, "{head}Connection: close\r\n\r\n").unwrap();
    let mut reader = BufReader::with_capacity(CHUNK, stream);
    let (status, headers) = read_head(&mut reader);
    assert_eq!(status, 200);
    let length: u64 = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .unwrap()
        .1
        .parse()
        .unwrap();
    assert_eq!(length, SIZE);
    let mut expected = vec![0u8; CHUNK];
    let mut got = vec![0u8; CHUNK];
    for idx in 0..SIZE / CHUNK as u64 {
        reader.read_exact(&mut got).unwrap();
        chunk(idx, &mut expected);
        assert!(got == expected, "GET body differs in MiB {idx}");
    }
    let after_get = server.peak_rss();
    assert!(
        after_get < LIMIT,
        "peak RSS after a 2 GiB GET is {} MiB",
        after_get >> 20
    );
    eprintln!(
        "peak RSS: baseline {} MiB, after 2 GiB PUT {} MiB, after 2 GiB GET {} MiB",
        baseline >> 20,
        after_put >> 20,
        after_get >> 20
    );
}

/// Sends a small request and returns its status and body.
fn small_request(server: &TestServer, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(300)))
        .unwrap();
    write!(
        stream,
        "{head}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut reader = BufReader::new(stream);
    let (status, _) = read_head(&mut reader);
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    (status, text)
}

fn xml_field<'a>(text: &'a str, tag: &str) -> &'a str {
    let start = text.find(&format!("<{tag}>")).unwrap() + tag.len() + 2;
    let end = text[start..].find(&format!("</{tag}>")).unwrap() + start;
    &text[start..end]
}

#[test]
fn issue_3_five_gib_multipart_upload_stays_under_256_mib_rss() {
    const PART_MIB: u64 = 64;
    const TOTAL_MIB: u64 = 5 * 1024;
    const PARTS: u64 = TOTAL_MIB / PART_MIB;
    let server = TestServer::start(ServerOptions::drives(4));
    let (status, _) = small_request(&server, &signed_headers(&server, "PUT", "/big"), b"");
    assert_eq!(status, 200);
    let (status, text) = small_request(
        &server,
        &signed_request_head(&server, "POST", "/big/parts", &[("uploads", "")]),
        b"",
    );
    assert_eq!(status, 200, "{text}");
    let upload_id = xml_field(&text, "UploadId").to_owned();
    let baseline = server.peak_rss();

    // Two parts in flight at a time, each generated as it is sent.
    let part_md5s: Vec<(u64, [u8; 16])> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2u64)
            .map(|worker| {
                let server = &server;
                let upload_id = upload_id.as_str();
                scope.spawn(move || {
                    let mut done = Vec::new();
                    let mut buf = vec![0u8; CHUNK];
                    for number in (1..=PARTS).filter(|n| n % 2 == worker) {
                        let part = number.to_string();
                        let head = signed_request_head(
                            server,
                            "PUT",
                            "/big/parts",
                            &[("partNumber", &part), ("uploadId", upload_id)],
                        );
                        let mut stream = TcpStream::connect(&server.addr).unwrap();
                        stream
                            .set_read_timeout(Some(Duration::from_secs(300)))
                            .unwrap();
                        write!(
                            stream,
                            "{head}Content-Length: {}\r\nConnection: close\r\n\r\n",
                            PART_MIB * CHUNK as u64
                        )
                        .unwrap();
                        let mut md5 = Md5::new();
                        for mib in 0..PART_MIB {
                            chunk((number - 1) * PART_MIB + mib, &mut buf);
                            md5.update(&buf);
                            stream.write_all(&buf).unwrap();
                        }
                        let digest: [u8; 16] = md5.finalize().into();
                        let (status, headers) = read_head(&mut BufReader::new(stream));
                        assert_eq!(status, 200, "part {number}");
                        let etag = headers.iter().find(|(k, _)| k == "etag").unwrap();
                        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                        assert_eq!(etag.1.trim_matches('"'), hex, "part {number}");
                        done.push((number, digest));
                    }
                    done
                })
            })
            .collect();
        let mut all: Vec<(u64, [u8; 16])> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        all.sort();
        all
    });
    let after_parts = server.peak_rss();

    let mut xml = String::from("<CompleteMultipartUpload>");
    let mut outer = Md5::new();
    for (number, digest) in &part_md5s {
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        xml.push_str(&format!(
            "<Part><PartNumber>{number}</PartNumber><ETag>\"{hex}\"</ETag></Part>"
        ));
        outer.update(digest);
    }
    xml.push_str("</CompleteMultipartUpload>");
    let (status, text) = small_request(
        &server,
        &signed_request_head(&server, "POST", "/big/parts", &[("uploadId", &upload_id)]),
        xml.as_bytes(),
    );
    assert_eq!(status, 200, "{text}");
    let expected_etag: String = outer
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        xml_field(&text, "ETag").replace("&quot;", "\""),
        format!("\"{expected_etag}-{PARTS}\"")
    );

    // GET the whole object, checked MiB by MiB as it arrives.
    let head = signed_headers(&server, "GET", "/big/parts");
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(300)))
        .unwrap();
    write!(stream, "{head}Connection: close\r\n\r\n").unwrap();
    let mut reader = BufReader::with_capacity(CHUNK, stream);
    let (status, headers) = read_head(&mut reader);
    assert_eq!(status, 200);
    let length: u64 = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .unwrap()
        .1
        .parse()
        .unwrap();
    assert_eq!(length, TOTAL_MIB << 20);
    let mut expected = vec![0u8; CHUNK];
    let mut got = vec![0u8; CHUNK];
    for idx in 0..TOTAL_MIB {
        reader.read_exact(&mut got).unwrap();
        chunk(idx, &mut expected);
        assert!(got == expected, "GET body differs in MiB {idx}");
    }
    let after_get = server.peak_rss();
    eprintln!(
        "peak RSS: baseline {} MiB, after 5 GiB of parts {} MiB, after the GET {} MiB",
        baseline >> 20,
        after_parts >> 20,
        after_get >> 20
    );
    assert!(
        after_parts < LIMIT,
        "peak RSS after uploading 5 GiB in parts is {} MiB",
        after_parts >> 20
    );
    assert!(
        after_get < LIMIT,
        "peak RSS after a 5 GiB GET is {} MiB",
        after_get >> 20
    );
}

/// Many PUTs at once share one write budget (`CAIRN_WRITE_BUFFER_MB`,
/// default 64 MiB): 32 concurrent 64 MiB PUTs, sent by `cairn bench`, keep
/// the server under 256 MiB. Without the budget each PUT kept about 7 MiB
/// of blocks and frames in flight, and the server peaked near 310 MiB.
#[test]
fn issue_6_thirty_two_concurrent_64_mib_puts_stay_under_256_mib_rss() {
    let server = TestServer::start(ServerOptions::drives(4));
    let put = bench_phase(
        &server,
        "bench put --bucket rss --size 64MiB -c 32 --count 32 --payload unsigned",
        "put",
        32,
    );
    assert_eq!(put["bytes"].as_u64(), Some(32 * (64 << 20)));
    let peak = server.peak_rss();
    assert!(
        peak < LIMIT,
        "peak RSS {} MiB with 32 concurrent 64 MiB PUTs",
        peak >> 20
    );
}

/// Runs `cairn` with the words of `command` (a `bench` run) against
/// `server`, checks that the phase named `phase` finished `ops` operations
/// without errors, and returns that phase's results.
fn bench_phase(server: &TestServer, command: &str, phase: &str, ops: u64) -> serde_json::Value {
    let pid = server.pid().to_string();
    let endpoint = server.endpoint();
    let mut all: Vec<&str> = command.split_whitespace().collect();
    all.extend(["--endpoint", &endpoint, "--server-pid", &pid, "--json"]);
    let (code, stdout, stderr) = common::run_cairn(
        &all,
        &[
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let result: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let found = result["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == phase)
        .unwrap_or_else(|| panic!("no {phase} phase in {result}"))
        .clone();
    assert_eq!(
        (found["ops"].as_u64(), found["errors"].as_u64()),
        (Some(ops), Some(0)),
        "{found}"
    );
    found
}

/// The drives' metadata stores share one node-wide memory budget
/// (`CAIRN_META_MEMORY_MB`): their block caches and unflushed writes. With
/// a 16 MiB budget over 4 drives, 20,000 small PUTs (their records and
/// inline data go through the stores' memtables) and 20,000 small GETs
/// (which fill the block caches) keep the server's peak RSS under 160 MiB.
/// With 32 MiB per drive (a 16 MiB cache and 8 MiB memtables, what each
/// drive had before the budget, and the default 128 MiB's share at 4
/// drives) the same load takes it to about 210-250 MiB.
#[test]
fn issue_6_metadata_memory_stays_within_the_node_budget() {
    const BUDGET_LIMIT: u64 = 160 << 20;
    let server = TestServer::start(ServerOptions::drives(4).env("CAIRN_META_MEMORY_MB", "16"));
    bench_phase(
        &server,
        "bench put --bucket meta --size 4KiB -c 16 --count 20000 --payload unsigned",
        "put",
        20_000,
    );
    bench_phase(
        &server,
        "bench get --bucket meta --size 4KiB -c 16 --objects 2000 --count 20000",
        "get",
        20_000,
    );
    let peak = server.peak_rss();
    eprintln!("peak RSS {} MiB", peak >> 20);
    assert!(
        peak < BUDGET_LIMIT,
        "peak RSS {} MiB after 20,000 4 KiB PUTs and GETs with a 16 MiB metadata budget",
        peak >> 20
    );
}

/// A metadata budget outside 8 MiB to 64 GiB is refused at start-up with
/// the variable's name, rather than starving or overcommitting the stores.
#[test]
fn issue_6_a_bad_metadata_budget_is_refused() {
    for bad in ["4", "lots"] {
        let dir = common::TempDir::new("meta-budget");
        let drives = dir.path().join("d{1...4}");
        let (code, _, stderr) = common::run_cairn(
            &[
                "server",
                "--address",
                "127.0.0.1:0",
                drives.to_str().unwrap(),
            ],
            &[
                ("CAIRN_META_MEMORY_MB", bad),
                ("CAIRN_ROOT_USER", ACCESS_KEY),
                ("CAIRN_ROOT_PASSWORD", SECRET_KEY),
            ],
        );
        assert_ne!(code, 0, "started with CAIRN_META_MEMORY_MB={bad}");
        assert!(stderr.contains("CAIRN_META_MEMORY_MB"), "{bad}: {stderr}");
    }
}

/// The server's resident memory now.
fn rss_now(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib << 10)
}

/// The probe's load: eight writers of objects between 1 KiB and 5 MiB for
/// 60 s drove RSS to 1.5 GiB, still growing, and it stayed there when idle
/// (allocator retention, issue 27). The bound is 256 MiB plus the metadata
/// budget (128 MiB); once idle, RSS falls back to within the metadata
/// budget (what the stores may keep cached) and 64 MiB of its idle level.
#[test]
fn issue_27_mixed_size_uploads_keep_rss_bounded_and_it_falls_back() {
    const META_BUDGET: u64 = 128 << 20;
    const BOUND: u64 = (256 << 20) + META_BUDGET;
    let server = TestServer::start(ServerOptions::drives(4));
    let pid = server.pid();
    let idle = rss_now(pid);
    let endpoint = server.endpoint();
    let mut bench = std::process::Command::new(common::cairn_binary())
        .args([
            "bench",
            "put",
            "--bucket",
            "mixed",
            "--size",
            "1KiB-5MiB",
            "-c",
            "8",
            "--duration",
            "60s",
            "--payload",
            "unsigned",
            "--endpoint",
            &endpoint,
        ])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let mut curve = Vec::new();
    while bench.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(500));
        curve.push((started.elapsed().as_secs(), rss_now(pid) >> 20));
    }
    let _ = bench.kill();
    let out = bench.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peak = curve.iter().map(|(_, mib)| *mib).max().unwrap_or(0);
    eprintln!(
        "idle {} MiB, RSS (s, MiB) under load: {curve:?}",
        idle >> 20
    );
    assert!(
        peak << 20 < BOUND,
        "RSS reached {peak} MiB under mixed-size uploads (bound {} MiB): {curve:?}",
        BOUND >> 20
    );
    let settled = idle + META_BUDGET + (64 << 20);
    let mut after = Vec::new();
    let fell = common::wait_until(Duration::from_secs(40), || {
        let now = rss_now(pid);
        after.push(now >> 20);
        std::thread::sleep(Duration::from_millis(500));
        now < settled
    });
    assert!(
        fell,
        "RSS did not fall under {} MiB once idle: {after:?}",
        settled >> 20
    );
}
