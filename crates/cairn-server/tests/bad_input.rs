//! Bad input gets a specific S3 error and changes nothing (issue 2, item 10),
//! including every shape of request signing (item 6).

mod common;

use aws_sdk_s3::primitives::ByteStream;
use common::sigv4::{Signer, crc32_base64, sha256_hex, unsigned_chunks_with_trailer};
use common::{
    ACCESS_KEY, RawResponse, SECRET_KEY, ServerOptions, TestServer, raw_request, sdk_error_code,
    test_data,
};

/// Sends a PUT signed by `signer` for `path`, with the given payload mode and body.
fn signed_put(
    server: &TestServer,
    signer: &Signer,
    path: &str,
    extra: &[(&'static str, String)],
    payload_hash: &str,
    body: &[u8],
) -> RawResponse {
    let headers = signed_with(signer, &server.addr, "PUT", path, payload_hash, extra);
    raw_request(
        &server.addr,
        "PUT",
        &common::sigv4::uri_encode(path, true),
        &headers,
        body,
    )
    .unwrap()
}

fn signed_get(server: &TestServer, signer: &Signer, path: &str) -> RawResponse {
    let headers = signed_with(signer, &server.addr, "GET", path, &sha256_hex(b""), &[]);
    raw_request(
        &server.addr,
        "GET",
        &common::sigv4::uri_encode(path, true),
        &headers,
        b"",
    )
    .unwrap()
}

/// `common::signed_headers`, but with any signer (wrong secrets, old dates).
fn signed_with(
    signer: &Signer,
    addr: &str,
    method: &str,
    path: &str,
    payload_hash: &str,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut headers: Vec<(&'static str, String)> = vec![
        ("host", addr.to_owned()),
        ("x-amz-date", signer.amz_date()),
        ("x-amz-content-sha256", payload_hash.to_owned()),
    ];
    headers.extend(extra.iter().cloned());
    let (auth, _) = signer.authorization(method, path, &[], &headers, payload_hash);
    headers.push(("authorization", auth));
    headers
}

fn setup() -> TestServer {
    let server = TestServer::start(ServerOptions::drives(4));
    let signer = Signer::new(ACCESS_KEY, SECRET_KEY);
    let resp = signed_put(&server, &signer, "/bkt", &[], &sha256_hex(b""), b"");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = signed_put(
        &server,
        &signer,
        "/bkt/existing",
        &[],
        &sha256_hex(b"original"),
        b"original",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    server
}

fn assert_unchanged(server: &TestServer) {
    let resp = signed_get(
        server,
        &Signer::new(ACCESS_KEY, SECRET_KEY),
        "/bkt/existing",
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"original");
}

#[test]
fn issue_2_payload_signing_modes() {
    let server = setup();
    let signer = Signer::new(ACCESS_KEY, SECRET_KEY);
    let data = test_data(300_000, 5);

    // Signed single chunk.
    let resp = signed_put(
        &server,
        &signer,
        "/bkt/single",
        &[],
        &sha256_hex(&data),
        &data,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(signed_get(&server, &signer, "/bkt/single").body, data);

    // A body that does not match its signed hash is refused.
    let resp = signed_put(
        &server,
        &signer,
        "/bkt/existing",
        &[],
        &sha256_hex(b"other"),
        b"tampered",
    );
    assert_ne!(resp.status, 200, "{}", resp.text());
    assert_unchanged(&server);

    // UNSIGNED-PAYLOAD.
    let resp = signed_put(
        &server,
        &signer,
        "/bkt/unsigned",
        &[],
        "UNSIGNED-PAYLOAD",
        &data,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(signed_get(&server, &signer, "/bkt/unsigned").body, data);

    // Signed aws-chunked (STREAMING-AWS4-HMAC-SHA256-PAYLOAD).
    let mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
    let mut headers: Vec<(&str, String)> = vec![
        ("host", server.addr.clone()),
        ("x-amz-date", signer.amz_date()),
        ("x-amz-content-sha256", mode.to_owned()),
        ("content-encoding", "aws-chunked".to_owned()),
        ("x-amz-decoded-content-length", data.len().to_string()),
    ];
    let (auth, seed) = signer.authorization("PUT", "/bkt/chunked", &[], &headers, mode);
    let body = signer.signed_chunks(&seed, &data, 64 * 1024);
    headers.push(("authorization", auth));
    let resp = raw_request(&server.addr, "PUT", "/bkt/chunked", &headers, &body).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(signed_get(&server, &signer, "/bkt/chunked").body, data);

    // A chunk signature that does not verify is refused.
    let mut bad = body.clone();
    let pos = bad
        .windows(16)
        .position(|w| w == b"chunk-signature=")
        .unwrap()
        + 16;
    bad[pos] = if bad[pos] == b'a' { b'b' } else { b'a' };
    let (auth, _) = signer.authorization("PUT", "/bkt/existing", &[], &headers[..5], mode);
    let mut bad_headers = headers[..5].to_vec();
    bad_headers.push(("authorization", auth));
    let resp = raw_request(&server.addr, "PUT", "/bkt/existing", &bad_headers, &bad).unwrap();
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(resp.error_code().as_deref(), Some("SignatureDoesNotMatch"));
    assert_unchanged(&server);

    // Unsigned aws-chunked with a trailing checksum (what current SDKs send).
    let mode = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
    let trailer_headers = |body_len: usize| -> Vec<(&'static str, String)> {
        vec![
            ("host", server.addr.clone()),
            ("x-amz-date", signer.amz_date()),
            ("x-amz-content-sha256", mode.to_owned()),
            ("content-encoding", "aws-chunked".to_owned()),
            ("x-amz-decoded-content-length", body_len.to_string()),
            ("x-amz-trailer", "x-amz-checksum-crc32".to_owned()),
        ]
    };
    let mut headers = trailer_headers(data.len());
    let (auth, _) = signer.authorization("PUT", "/bkt/trailer", &[], &headers, mode);
    headers.push(("authorization", auth));
    let body = unsigned_chunks_with_trailer(
        &data,
        100_000,
        ("x-amz-checksum-crc32", &crc32_base64(&data)),
    );
    let resp = raw_request(&server.addr, "PUT", "/bkt/trailer", &headers, &body).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("x-amz-checksum-crc32"),
        Some(crc32_base64(&data).as_str())
    );
    assert_eq!(signed_get(&server, &signer, "/bkt/trailer").body, data);

    // A wrong trailing checksum: BadDigest, and nothing changes.
    let mut headers = trailer_headers(8);
    let (auth, _) = signer.authorization("PUT", "/bkt/existing", &[], &headers, mode);
    headers.push(("authorization", auth));
    let body = unsigned_chunks_with_trailer(
        b"tampered",
        8,
        ("x-amz-checksum-crc32", &crc32_base64(b"original")),
    );
    let resp = raw_request(&server.addr, "PUT", "/bkt/existing", &headers, &body).unwrap();
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.error_code().as_deref(), Some("BadDigest"));
    assert_unchanged(&server);

    // A wrong checksum header: BadDigest too.
    let resp = signed_put(
        &server,
        &signer,
        "/bkt/existing",
        &[("x-amz-checksum-crc32", crc32_base64(b"something else"))],
        "UNSIGNED-PAYLOAD",
        b"tampered",
    );
    assert_eq!(
        resp.error_code().as_deref(),
        Some("BadDigest"),
        "{}",
        resp.text()
    );
    assert_unchanged(&server);
}

#[test]
fn issue_2_signature_errors() {
    let server = setup();
    // No signature at all.
    let resp = raw_request(&server.addr, "GET", "/bkt/existing", &[], b"").unwrap();
    assert_eq!(resp.status, 403);
    assert_eq!(resp.error_code().as_deref(), Some("AccessDenied"));
    let resp = raw_request(&server.addr, "PUT", "/bkt/existing", &[], b"anonymous").unwrap();
    assert_eq!(resp.error_code().as_deref(), Some("AccessDenied"));
    assert_unchanged(&server);

    // Wrong secret.
    let wrong = Signer::new(ACCESS_KEY, "not-the-secret-key");
    let resp = signed_get(&server, &wrong, "/bkt/existing");
    assert_eq!(resp.status, 403);
    assert_eq!(resp.error_code().as_deref(), Some("SignatureDoesNotMatch"));
    let resp = signed_put(
        &server,
        &wrong,
        "/bkt/existing",
        &[],
        &sha256_hex(b"x"),
        b"x",
    );
    assert_eq!(resp.error_code().as_deref(), Some("SignatureDoesNotMatch"));
    assert_unchanged(&server);

    // Unknown access key.
    let resp = signed_get(
        &server,
        &Signer::new("nobody-at-all", SECRET_KEY),
        "/bkt/existing",
    );
    assert_eq!(resp.status, 403);
    assert_eq!(resp.error_code().as_deref(), Some("InvalidAccessKeyId"));

    // Malformed Authorization headers.
    let date = Signer::new(ACCESS_KEY, SECRET_KEY).amz_date();
    let malformed = [
        (
            "AWS4-HMAC-SHA256 Credential=garbage, SignedHeaders=host, Signature=00",
            "AuthorizationHeaderMalformed",
        ),
        ("AWS4-HMAC-SHA256 nonsense", "AuthorizationHeaderMalformed"),
        ("Bearer some-token", "AccessDenied"),
    ];
    for (auth, code) in malformed {
        let headers = vec![
            ("x-amz-date", date.clone()),
            ("x-amz-content-sha256", sha256_hex(b"")),
            ("authorization", auth.to_owned()),
        ];
        let resp = raw_request(&server.addr, "GET", "/bkt/existing", &headers, b"").unwrap();
        assert_eq!(
            resp.error_code().as_deref(),
            Some(code),
            "{auth}: {}",
            resp.text()
        );
        assert!(resp.status == 400 || resp.status == 403);
    }
    // A signature that is not hex.
    let signer = Signer::new(ACCESS_KEY, SECRET_KEY);
    let headers = vec![
        ("host", server.addr.clone()),
        ("x-amz-date", signer.amz_date()),
        ("x-amz-content-sha256", sha256_hex(b"")),
    ];
    let (auth, sig) = signer.authorization("GET", "/bkt/existing", &[], &headers, &sha256_hex(b""));
    let mut bad = headers.clone();
    bad.push(("authorization", auth.replace(&sig, &"zz".repeat(32))));
    let resp = raw_request(&server.addr, "GET", "/bkt/existing", &bad, b"").unwrap();
    assert_eq!(resp.error_code().as_deref(), Some("SignatureDoesNotMatch"));
}

#[test]
fn issue_2_presigned_urls() {
    let server = setup();
    let signer = Signer::new(ACCESS_KEY, SECRET_KEY);
    let target = signer.presign(&server.addr, "GET", "/bkt/existing", 3600);
    let resp = raw_request(&server.addr, "GET", &target, &[], b"").unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.body, b"original");

    let target = signer.presign(&server.addr, "PUT", "/bkt/presigned-put", 3600);
    let resp = raw_request(&server.addr, "PUT", &target, &[], b"via presigned PUT").unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        signed_get(&server, &signer, "/bkt/presigned-put").body,
        b"via presigned PUT"
    );

    // Expired: signed two hours ago, valid for one.
    let mut old = Signer::new(ACCESS_KEY, SECRET_KEY);
    old.unix -= 7200;
    let target = old.presign(&server.addr, "GET", "/bkt/existing", 3600);
    let resp = raw_request(&server.addr, "GET", &target, &[], b"").unwrap();
    assert_eq!(resp.status, 403);
    assert_eq!(resp.error_code().as_deref(), Some("AccessDenied"));
    assert!(resp.text().contains("expired"), "{}", resp.text());

    // Over seven days.
    let target = signer.presign(&server.addr, "GET", "/bkt/existing", 7 * 24 * 3600 + 1);
    let resp = raw_request(&server.addr, "GET", &target, &[], b"").unwrap();
    assert_eq!(resp.status, 400);
    assert_eq!(
        resp.error_code().as_deref(),
        Some("AuthorizationQueryParametersError")
    );

    // A tampered presigned PUT changes nothing.
    let target = signer
        .presign(&server.addr, "PUT", "/bkt/existing", 3600)
        .replace("/bkt/existing", "/bkt/existing2");
    let resp = raw_request(&server.addr, "PUT", &target, &[], b"tampered").unwrap();
    assert_eq!(resp.error_code().as_deref(), Some("SignatureDoesNotMatch"));
    assert_unchanged(&server);
}

#[tokio::test]
async fn issue_2_names_digests_and_missing_things() {
    let server = setup();
    let client = server.client();
    let signer = Signer::new(ACCESS_KEY, SECRET_KEY);

    for bad in ["ab", "UPPER", "under_score", "-dash", "a..b", "192.168.1.1"] {
        let resp = signed_put(
            &server,
            &signer,
            &format!("/{bad}"),
            &[],
            &sha256_hex(b""),
            b"",
        );
        assert_eq!(
            resp.error_code().as_deref(),
            Some("InvalidBucketName"),
            "{bad}: {}",
            resp.text()
        );
    }
    let names = client.list_buckets().send().await.unwrap();
    assert_eq!(names.buckets().len(), 1);

    let long = "k".repeat(1025);
    let err = client
        .put_object()
        .bucket("bkt")
        .key(&long)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("KeyTooLongError"));

    // Wrong Content-MD5: BadDigest, and the object keeps its old content.
    let wrong_md5 = base64_simd::STANDARD.encode_to_string([0u8; 16]);
    for size in [8usize, 3 << 20] {
        let resp = signed_put(
            &server,
            &signer,
            "/bkt/existing",
            &[("content-md5", wrong_md5.clone())],
            "UNSIGNED-PAYLOAD",
            &test_data(size, 1),
        );
        assert_eq!(resp.status, 400);
        assert_eq!(
            resp.error_code().as_deref(),
            Some("BadDigest"),
            "{}",
            resp.text()
        );
        assert_unchanged(&server);
    }
    let resp = signed_put(
        &server,
        &signer,
        "/bkt/existing",
        &[("content-md5", "not-base64".into())],
        "UNSIGNED-PAYLOAD",
        b"x",
    );
    assert_eq!(resp.error_code().as_deref(), Some("InvalidDigest"));
    assert_unchanged(&server);
    // A correct Content-MD5 is accepted.
    let good = base64_simd::STANDARD.encode_to_string(<md5::Md5 as md5::Digest>::digest(b"fine"));
    let resp = signed_put(
        &server,
        &signer,
        "/bkt/md5",
        &[("content-md5", good)],
        "UNSIGNED-PAYLOAD",
        b"fine",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());

    // A body shorter than its Content-Length never becomes an object.
    let headers = vec![
        ("host", server.addr.clone()),
        ("x-amz-date", signer.amz_date()),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD".to_owned()),
    ];
    let (auth, _) = signer.authorization("PUT", "/bkt/short", &[], &headers, "UNSIGNED-PAYLOAD");
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    use std::io::Write;
    write!(
        stream,
        "PUT /bkt/short HTTP/1.1\r\nHost: {}\r\nx-amz-date: {}\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\nAuthorization: {auth}\r\nContent-Length: 1000000\r\n\r\n",
        server.addr,
        signer.amz_date()
    )
    .unwrap();
    stream.write_all(&[7u8; 1000]).unwrap();
    drop(stream);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let err = client
        .head_object()
        .bucket("bkt")
        .key("short")
        .send()
        .await
        .unwrap_err();
    assert_eq!(common::sdk_status(&err), Some(404));

    // Missing bucket and key.
    let err = client
        .get_object()
        .bucket("nosuchbucket")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("NoSuchBucket"));
    let err = client
        .put_object()
        .bucket("nosuchbucket")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("NoSuchBucket"));
    let err = client
        .get_object()
        .bucket("bkt")
        .key("nosuchkey")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("NoSuchKey"));
    let err = client
        .list_objects_v2()
        .bucket("nosuchbucket")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("NoSuchBucket"));
    let err = client
        .delete_object()
        .bucket("nosuchbucket")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("NoSuchBucket"));
    assert_unchanged(&server);
}

#[test]
fn issue_2_unusable_range_headers_are_ignored_like_s3() {
    let server = setup();
    let signer = Signer::new(ACCESS_KEY, SECRET_KEY);
    for range in ["bytes=0-1,3-4", "items=0-1", "bytes=5-2", "bytes=abc"] {
        let headers = signed_with(
            &signer,
            &server.addr,
            "GET",
            "/bkt/existing",
            &sha256_hex(b""),
            &[("range", range.to_owned())],
        );
        let resp = raw_request(&server.addr, "GET", "/bkt/existing", &headers, b"").unwrap();
        assert_eq!(resp.status, 200, "{range}: {}", resp.text());
        assert_eq!(resp.body, b"original", "{range}");
        assert_eq!(resp.header("content-range"), None);
    }
    // A presigned URL with an unusable range, too.
    let target = signer.presign(&server.addr, "GET", "/bkt/existing", 600);
    let resp = raw_request(
        &server.addr,
        "GET",
        &target,
        &[("range", "bytes=1-0".to_owned())],
        b"",
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.body, b"original");
    // A usable but unsatisfiable one is still 416.
    let target = signer.presign(&server.addr, "GET", "/bkt/existing", 600);
    let resp = raw_request(
        &server.addr,
        "GET",
        &target,
        &[("range", "bytes=100-".to_owned())],
        b"",
    )
    .unwrap();
    assert_eq!(resp.status, 416);
}

#[test]
fn issue_2_answer_before_the_body_closes_the_connection() {
    let server = setup();
    answer_before_the_body(&server, "nosuchbucket");
}

/// A bucket this node has stored a small object in and then deleted is
/// refused before the body too: small PUTs skip the bucket lookup only for
/// buckets known to exist (issue 6), and a deleted one is no longer known.
#[test]
fn issue_6_a_deleted_bucket_is_refused_before_the_body() {
    let server = setup();
    let signer = Signer::new(ACCESS_KEY, SECRET_KEY);
    let resp = signed_put(&server, &signer, "/gone", &[], &sha256_hex(b""), b"");
    assert_eq!(resp.status, 200, "{}", resp.text());
    for _ in 0..2 {
        let resp = signed_put(&server, &signer, "/gone/k", &[], &sha256_hex(b"x"), b"x");
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    for path in ["/gone/k", "/gone"] {
        let headers = signed_with(&signer, &server.addr, "DELETE", path, &sha256_hex(b""), &[]);
        let resp = raw_request(&server.addr, "DELETE", path, &headers, b"").unwrap();
        assert_eq!(resp.status, 204, "DELETE {path}: {}", resp.text());
    }
    answer_before_the_body(&server, "gone");
    assert_unchanged(&server);
}

/// A PUT of one byte to `bucket` with `Expect: 100-continue` whose body never
/// comes: the server must answer 404 NoSuchBucket and close the connection.
fn answer_before_the_body(server: &TestServer, bucket: &str) {
    use std::io::{Read, Write};
    let signer = Signer::new(ACCESS_KEY, SECRET_KEY);
    let path = format!("/{bucket}/k");
    let headers = vec![
        ("host", server.addr.clone()),
        ("x-amz-date", signer.amz_date()),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD".to_owned()),
    ];
    let (auth, _) = signer.authorization("PUT", &path, &[], &headers, "UNSIGNED-PAYLOAD");
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "PUT {path} HTTP/1.1\r\nHost: {}\r\nx-amz-date: {}\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\nAuthorization: {auth}\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
        server.addr,
        signer.amz_date()
    )
    .unwrap();
    let mut response = Vec::new();
    // The server answers and closes: read_to_end returns instead of timing out.
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 404"), "{text}");
    assert!(text.contains("connection: close"), "{text}");
    assert!(text.contains("nosuchbucket"), "{text}");
}

#[test]
fn issue_2_aws_chunked_is_not_a_stored_content_encoding() {
    let server = setup();
    let signer = Signer::new(ACCESS_KEY, SECRET_KEY);
    let data = b"gzip bytes, pretend";
    let mode = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
    for (sent, stored) in [("aws-chunked", None), ("gzip,aws-chunked", Some("gzip"))] {
        let headers = signed_with(
            &signer,
            &server.addr,
            "PUT",
            "/bkt/encoded",
            mode,
            &[
                ("content-encoding", sent.to_owned()),
                ("x-amz-decoded-content-length", data.len().to_string()),
                ("x-amz-trailer", "x-amz-checksum-crc32".to_owned()),
            ],
        );
        let body =
            unsigned_chunks_with_trailer(data, 8, ("x-amz-checksum-crc32", &crc32_base64(data)));
        let resp = raw_request(&server.addr, "PUT", "/bkt/encoded", &headers, &body).unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
        let resp = signed_get(&server, &signer, "/bkt/encoded");
        assert_eq!(resp.body, data);
        assert_eq!(resp.header("content-encoding"), stored, "sent {sent}");
    }
}

/// Reads one HTTP/1.1 response with a Content-Length body from a kept-alive connection.
fn read_one_response(
    reader: &mut std::io::BufReader<std::net::TcpStream>,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use std::io::{BufRead, Read};
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').unwrap();
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    (status, headers, body)
}

#[test]
fn issue_2_connections_stay_open_after_every_kind_of_upload() {
    use std::io::Write;
    let server = setup();
    let signer = Signer::new(ACCESS_KEY, SECRET_KEY);
    let data = test_data(200_000, 3);
    let stream = std::net::TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = std::io::BufReader::new(stream);
    let mut send = |headers: &[(&'static str, String)], body: &[u8], path: &str, method: &str| {
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        writer.write_all(head.as_bytes()).unwrap();
        writer.write_all(body).unwrap();
    };
    type Headers = Vec<(&'static str, String)>;
    let uploads: Vec<(&str, Headers, Vec<u8>)> = vec![
        ("UNSIGNED-PAYLOAD", vec![], data.clone()),
        (
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            vec![
                ("content-encoding", "aws-chunked".to_owned()),
                ("x-amz-decoded-content-length", data.len().to_string()),
                ("x-amz-trailer", "x-amz-checksum-crc32".to_owned()),
            ],
            unsigned_chunks_with_trailer(
                &data,
                65_536,
                ("x-amz-checksum-crc32", &crc32_base64(&data)),
            ),
        ),
    ];
    for (i, (mode, extra, body)) in uploads.into_iter().enumerate() {
        let path = format!("/bkt/keepalive-{i}");
        let headers = signed_with(&signer, &server.addr, "PUT", &path, mode, &extra);
        send(&headers, &body, &path, "PUT");
        let (status, headers, _) = read_one_response(&mut reader);
        assert_eq!(status, 200, "{mode}");
        assert!(
            !headers
                .iter()
                .any(|(k, v)| k == "connection" && v.eq_ignore_ascii_case("close")),
            "{mode}: the connection was closed after a successful upload: {headers:?}"
        );
        // The same connection carries the next request.
        let headers = signed_with(&signer, &server.addr, "GET", &path, &sha256_hex(b""), &[]);
        send(&headers, b"", &path, "GET");
        let (status, _, got) = read_one_response(&mut reader);
        assert_eq!(status, 200);
        assert_eq!(got, data, "{mode}");
    }
}
