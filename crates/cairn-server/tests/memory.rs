//! Bodies stream (issue 2, item 5): a 2 GiB PUT and a 2 GiB GET each keep
//! the server's peak RSS under 256 MiB.

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
    let signer = Signer::new(ACCESS_KEY, SECRET_KEY);
    let payload = if method == "PUT" {
        "UNSIGNED-PAYLOAD".to_owned()
    } else {
        sha256_hex(b"")
    };
    let headers = vec![
        ("host", server.addr.clone()),
        ("x-amz-date", signer.amz_date()),
        ("x-amz-content-sha256", payload.clone()),
    ];
    let (auth, _) = signer.authorization(method, path, &[], &headers, &payload);
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nx-amz-date: {}\r\nx-amz-content-sha256: {payload}\r\nAuthorization: {auth}\r\n",
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
