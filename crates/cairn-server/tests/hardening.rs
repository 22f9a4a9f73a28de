//! What an outside security probe sent, sent again (issue 27, section 1):
//! each request gets S3's answer and changes nothing stored.

mod common;

use common::sigv4::{Signer, sha256_hex, sign_v2, uri_encode};
use common::{ACCESS_KEY, RawResponse, SECRET_KEY, ServerOptions, TestServer, raw_request};

/// `host`, `x-amz-date`, `x-amz-content-sha256` and `signed` signed by
/// `signer`; then `unsigned` added after signing.
fn request(
    server: &TestServer,
    signer: &Signer,
    method: &str,
    path: &str,
    signed: &[(&'static str, String)],
    unsigned: &[(&'static str, String)],
    body: &[u8],
) -> RawResponse {
    let payload = sha256_hex(body);
    let mut headers: Vec<(&'static str, String)> = vec![
        ("host", server.addr.clone()),
        ("x-amz-date", signer.amz_date()),
        ("x-amz-content-sha256", payload.clone()),
    ];
    headers.extend(signed.iter().cloned());
    let (auth, _) = signer.authorization(method, path, &[], &headers, &payload);
    headers.push(("authorization", auth));
    headers.extend(unsigned.iter().cloned());
    raw_request(
        &server.addr,
        method,
        &uri_encode(path, true),
        &headers,
        body,
    )
    .unwrap()
}

fn root() -> Signer {
    Signer::new(ACCESS_KEY, SECRET_KEY)
}

fn get(server: &TestServer, path: &str) -> RawResponse {
    request(server, &root(), "GET", path, &[], &[], b"")
}

fn head(server: &TestServer, path: &str) -> RawResponse {
    request(server, &root(), "HEAD", path, &[], &[], b"")
}

fn put(server: &TestServer, path: &str, body: &[u8]) {
    let resp = request(server, &root(), "PUT", path, &[], &[], body);
    assert_eq!(resp.status, 200, "PUT {path}: {}", resp.text());
}

/// A server with `bkt/existing` ("original") and `other/secret`.
fn setup() -> TestServer {
    let server = TestServer::start(ServerOptions::drives(4));
    put(&server, "/bkt", b"");
    put(&server, "/other", b"");
    put(&server, "/bkt/existing", b"original");
    put(&server, "/other/secret", b"the other bucket's secret");
    server
}

fn assert_refused(resp: &RawResponse, status: u16, code: &str) {
    assert_eq!(resp.status, status, "{}", resp.text());
    assert_eq!(resp.error_code().as_deref(), Some(code), "{}", resp.text());
}

fn assert_absent(server: &TestServer, path: &str) {
    let resp = head(server, path);
    assert_eq!(resp.status, 404, "{path} must not exist");
}

fn assert_unchanged(server: &TestServer) {
    let resp = get(server, "/bkt/existing");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"original");
    assert!(resp.header("x-amz-meta-who").is_none());
    assert!(resp.header("x-amz-tagging-count").is_none());
}

#[test]
fn issue_27_unsigned_amz_headers_are_refused() {
    let server = setup();
    let signer = root();

    // The probe's finding: a presigned PUT URL (signed for `host` only)
    // with `x-amz-copy-source` added copied another bucket's object.
    let target = signer.presign(&server.addr, "PUT", "/bkt/upload", 3600);
    for (name, value) in [
        ("x-amz-copy-source", "/other/secret"),
        ("x-amz-meta-who", "mallory"),
        ("x-amz-tagging", "owner=mallory"),
        ("x-amz-acl", "public-read"),
    ] {
        let resp = raw_request(
            &server.addr,
            "PUT",
            &target,
            &[(name, value.to_owned())],
            b"",
        )
        .unwrap();
        assert_refused(&resp, 403, "AccessDenied");
        assert!(
            resp.text()
                .contains("There were headers present in the request which were not signed"),
            "{}",
            resp.text()
        );
        assert!(
            resp.text()
                .contains(&format!("<HeadersNotSigned>{name}</HeadersNotSigned>")),
            "{}",
            resp.text()
        );
        assert_absent(&server, "/bkt/upload");
    }
    // Header signatures: the same rule.
    let target = "/bkt/existing";
    for (name, value) in [
        ("x-amz-meta-who", "mallory"),
        ("x-amz-tagging", "owner=mallory"),
        ("x-amz-copy-source", "/other/secret"),
    ] {
        let resp = request(
            &server,
            &signer,
            "PUT",
            target,
            &[],
            &[(name, value.to_owned())],
            b"replaced",
        );
        assert_refused(&resp, 403, "AccessDenied");
    }
    assert_unchanged(&server);

    // A header the signature covers cannot be changed after signing.
    for (name, signed, sent) in [
        ("content-type", "text/plain", "text/html"),
        (
            "content-md5",
            "XUFAKrxLKna5cZ2REBfFkg==",
            "nzUsbbIXMVFyY3kcZbOcWQ==",
        ),
    ] {
        let payload = sha256_hex(b"hello");
        let mut headers: Vec<(&'static str, String)> = vec![
            ("host", server.addr.clone()),
            ("x-amz-date", signer.amz_date()),
            ("x-amz-content-sha256", payload.clone()),
            (name, signed.to_owned()),
        ];
        let (auth, _) = signer.authorization("PUT", target, &[], &headers, &payload);
        headers.retain(|(k, _)| *k != name);
        headers.push((name, sent.to_owned()));
        headers.push(("authorization", auth));
        let resp = raw_request(&server.addr, "PUT", target, &headers, b"hello").unwrap();
        assert_refused(&resp, 403, "SignatureDoesNotMatch");
    }
    assert_unchanged(&server);

    // What is signed is honoured: the same headers, signed, work.
    let resp = request(
        &server,
        &signer,
        "PUT",
        "/bkt/signed",
        &[
            ("x-amz-meta-who", "alice".to_owned()),
            ("x-amz-tagging", "owner=alice".to_owned()),
        ],
        &[],
        b"signed",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = get(&server, "/bkt/signed");
    assert_eq!(resp.header("x-amz-meta-who"), Some("alice"));
    // And the presigned PUT without extra headers still works.
    let target = signer.presign(&server.addr, "PUT", "/bkt/upload", 3600);
    let resp = raw_request(&server.addr, "PUT", &target, &[], b"presigned").unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(get(&server, "/bkt/upload").body, b"presigned");
}

#[test]
fn issue_27_a_signature_must_cover_host() {
    let server = setup();
    let signer = root();
    for method in ["GET", "PUT"] {
        let payload = sha256_hex(b"replaced");
        let mut headers: Vec<(&'static str, String)> = vec![
            ("x-amz-date", signer.amz_date()),
            ("x-amz-content-sha256", payload.clone()),
        ];
        // Signed without `host`; the request still sends one.
        let (auth, _) = signer.authorization(method, "/bkt/existing", &[], &headers, &payload);
        assert!(auth.contains("SignedHeaders=x-amz-content-sha256;x-amz-date,"));
        headers.push(("authorization", auth));
        let body: &[u8] = if method == "PUT" { b"replaced" } else { b"" };
        let resp = raw_request(&server.addr, method, "/bkt/existing", &headers, body).unwrap();
        assert_refused(&resp, 403, "AccessDenied");
        assert!(
            resp.text()
                .contains("<HeadersNotSigned>host</HeadersNotSigned>"),
            "{}",
            resp.text()
        );
    }
    assert_unchanged(&server);
}

#[test]
fn issue_27_sigv2_signatures_expire_after_fifteen_minutes() {
    let server = setup();
    let now = std::time::SystemTime::now();
    let v2 = |method: &str, date: String, body: &[u8]| {
        let auth = sign_v2(
            ACCESS_KEY,
            SECRET_KEY,
            method,
            "",
            &date,
            &[],
            "/bkt/existing",
        );
        raw_request(
            &server.addr,
            method,
            "/bkt/existing",
            &[("date", date), ("authorization", auth)],
            body,
        )
        .unwrap()
    };
    // A fresh SigV2 request works.
    let resp = v2("GET", httpdate::fmt_http_date(now), b"");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.body, b"original");

    let year = std::time::Duration::from_secs(365 * 24 * 3600);
    for date in [
        "Mon, 01 Jan 2001 00:00:00 GMT".to_owned(),
        httpdate::fmt_http_date(now + year),
        httpdate::fmt_http_date(now - std::time::Duration::from_secs(16 * 60)),
    ] {
        for method in ["GET", "PUT"] {
            let resp = v2(method, date.clone(), b"replayed");
            assert_refused(&resp, 403, "RequestTimeTooSkewed");
            assert!(
                resp.text().contains("<MaxAllowedSkewMilliseconds>900000<"),
                "{}",
                resp.text()
            );
        }
    }
    let resp = v2("PUT", "not a date".to_owned(), b"replayed");
    assert_refused(&resp, 403, "AccessDenied");
    assert!(
        resp.text().contains("requires a valid Date"),
        "{}",
        resp.text()
    );
    assert_unchanged(&server);
}

#[test]
fn issue_27_credential_scope_must_name_this_region_and_s3() {
    let server = setup();
    let mut signer = root();
    signer.region = "eu-west-1".into();
    let resp = request(&server, &signer, "PUT", "/bkt/existing", &[], &[], b"x");
    assert_refused(&resp, 400, "AuthorizationHeaderMalformed");
    assert!(
        resp.text()
            .contains("the region 'eu-west-1' is wrong; expecting 'us-east-1'"),
        "{}",
        resp.text()
    );
    assert!(resp.text().contains("<Region>us-east-1</Region>"));
    let target = signer.presign(&server.addr, "PUT", "/bkt/existing", 3600);
    let resp = raw_request(&server.addr, "PUT", &target, &[], b"x").unwrap();
    assert_refused(&resp, 400, "AuthorizationQueryParametersError");
    assert!(resp.text().contains("<Region>us-east-1</Region>"));

    let mut signer = root();
    signer.service = "iam".into();
    let resp = request(&server, &signer, "PUT", "/bkt/existing", &[], &[], b"x");
    assert_refused(&resp, 400, "AuthorizationHeaderMalformed");
    assert!(
        resp.text().contains("This endpoint belongs to \"s3\""),
        "{}",
        resp.text()
    );
    assert_unchanged(&server);
}

/// Sends a request whose head says `Content-Length: length` and whose body
/// is only `sent` bytes, then waits for the answer: the server must answer
/// without reading the rest.
fn oversized(
    server: &TestServer,
    method: &str,
    path: &str,
    query: &str,
    length: usize,
) -> RawResponse {
    use std::io::{Read, Write};
    let signer = root();
    let mut headers: Vec<(&'static str, String)> = vec![
        ("host", server.addr.clone()),
        ("x-amz-date", signer.amz_date()),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD".to_owned()),
    ];
    let pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    let (auth, _) = signer.authorization(method, path, &pairs, &headers, "UNSIGNED-PAYLOAD");
    headers.push(("authorization", auth));
    let target = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut head = format!("{method} {target} HTTP/1.1\r\nContent-Length: {length}\r\n");
    for (k, v) in &headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n<?xml version=\"1.0\"?>");
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.as_bytes().to_vec())
        .unwrap_or_default();
    RawResponse {
        status,
        headers: Vec::new(),
        body,
    }
}

#[test]
fn issue_27_oversized_xml_bodies_are_refused_unread() {
    let server = setup();
    let upload = {
        let headers = common::signed_headers(
            &server.addr,
            "POST",
            "/bkt/mp",
            &[("uploads", "")],
            &sha256_hex(b""),
            &[],
        );
        let resp = raw_request(&server.addr, "POST", "/bkt/mp?uploads", &headers, b"").unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
        let text = resp.text();
        let start = text.find("<UploadId>").unwrap() + 10;
        let end = text.find("</UploadId>").unwrap();
        text[start..end].to_owned()
    };
    let twenty_mib = 20 << 20;
    for (method, path, query) in [
        ("POST", "/bkt", "delete".to_owned()),
        ("PUT", "/bkt", "cors".to_owned()),
        ("POST", "/bkt/mp", format!("uploadId={upload}")),
        ("PUT", "/newbucket", String::new()),
        ("PUT", "/bkt/existing", "tagging".to_owned()),
    ] {
        let started = std::time::Instant::now();
        let resp = oversized(&server, method, path, &query, twenty_mib);
        assert_refused(&resp, 400, "MalformedXML");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{method} {path}?{query} waited for the body"
        );
    }
    assert_absent(&server, "/newbucket");
    assert_unchanged(&server);
}

#[test]
fn issue_27_user_metadata_is_capped_at_2_kb() {
    let server = setup();
    // 2 KB exactly: name "m" (1 byte) + 2047 bytes.
    let fits = "v".repeat(2047);
    let resp = request(
        &server,
        &root(),
        "PUT",
        "/bkt/fits",
        &[("x-amz-meta-m", fits.clone())],
        &[],
        b"x",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        head(&server, "/bkt/fits").header("x-amz-meta-m"),
        Some(fits.as_str())
    );
    let too_much = "v".repeat(2048);
    for path in ["/bkt/too-much", "/bkt/existing"] {
        let resp = request(
            &server,
            &root(),
            "PUT",
            path,
            &[("x-amz-meta-m", too_much.clone())],
            &[],
            b"x",
        );
        assert_refused(&resp, 400, "MetadataTooLarge");
    }
    // Spread over many entries too (the probe sent 436 KB in all).
    let many: Vec<(&'static str, String)> = ["x-amz-meta-a", "x-amz-meta-b", "x-amz-meta-c"]
        .iter()
        .map(|name| (*name, "w".repeat(700)))
        .collect();
    let resp = request(&server, &root(), "PUT", "/bkt/many", &many, &[], b"x");
    assert_refused(&resp, 400, "MetadataTooLarge");
    assert_absent(&server, "/bkt/too-much");
    assert_absent(&server, "/bkt/many");
    assert_unchanged(&server);

    // The whole header section is capped at 8 KB, not the header count.
    let small: Vec<(&'static str, String)> =
        (0..150).map(|i| ("x-cairn-test", format!("{i}"))).collect();
    let resp = request(&server, &root(), "GET", "/bkt/existing", &[], &small, b"");
    assert_eq!(resp.status, 200, "150 small headers: {}", resp.text());
    let large: Vec<(&'static str, String)> = (0..150)
        .map(|i| ("x-cairn-test", format!("{i:0>60}")))
        .collect();
    let resp = request(&server, &root(), "PUT", "/bkt/existing", &[], &large, b"y");
    assert_refused(&resp, 400, "RequestHeaderSectionTooLarge");
    assert_unchanged(&server);
}

#[test]
fn issue_27_reserved_bucket_names_are_refused() {
    let server = setup();
    for name in [
        "cairn",
        "minio",
        "data-s3alias",
        "data--ol-s3",
        "xn--data",
        "sthree-data",
    ] {
        let resp = request(&server, &root(), "PUT", &format!("/{name}"), &[], &[], b"");
        assert_refused(&resp, 400, "InvalidBucketName");
        assert!(
            resp.text()
                .contains("<Message>The specified bucket is not valid"),
            "{}",
            resp.text()
        );
    }
    // The server's own routes stay its own.
    let resp = raw_request(&server.addr, "GET", "/minio/health/live", &[], b"").unwrap();
    assert_eq!(resp.status, 200);
}

#[test]
fn issue_27_smaller_findings_get_s3s_answers() {
    let server = setup();
    // A body whose SHA-256 is not the one signed.
    let resp = {
        let signer = root();
        let claimed = sha256_hex(b"what was signed");
        let mut headers: Vec<(&'static str, String)> = vec![
            ("host", server.addr.clone()),
            ("x-amz-date", signer.amz_date()),
            ("x-amz-content-sha256", claimed.clone()),
        ];
        let (auth, _) = signer.authorization("PUT", "/bkt/existing", &[], &headers, &claimed);
        headers.push(("authorization", auth));
        raw_request(
            &server.addr,
            "PUT",
            "/bkt/existing",
            &headers,
            b"something else!",
        )
        .unwrap()
    };
    assert_refused(&resp, 400, "XAmzContentSHA256Mismatch");
    assert_unchanged(&server);

    // partNumber outside 1..=10000.
    for number in ["0", "-1", "10001"] {
        for method in ["GET", "HEAD"] {
            let headers = common::signed_headers(
                &server.addr,
                method,
                "/bkt/existing",
                &[("partNumber", number)],
                &sha256_hex(b""),
                &[],
            );
            let resp = raw_request(
                &server.addr,
                method,
                &format!("/bkt/existing?partNumber={number}"),
                &headers,
                b"",
            )
            .unwrap();
            assert_eq!(resp.status, 400, "{method} partNumber={number}");
            if method == "GET" {
                assert_eq!(resp.error_code().as_deref(), Some("InvalidArgument"));
            }
        }
    }
}
