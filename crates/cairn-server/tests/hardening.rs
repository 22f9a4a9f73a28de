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
