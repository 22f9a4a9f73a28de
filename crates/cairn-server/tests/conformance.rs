//! S3 conformance sweep (issue 27, section 3): what a third-party S3 test
//! suite found different from Amazon S3, each sent as a real client sends
//! it and checked against S3's answer.

mod common;

use common::sigv4::sha256_hex;
use common::{ServerOptions, TestServer, raw_request, signed_headers};

fn send(
    server: &TestServer,
    method: &str,
    path: &str,
    extra: &[(&'static str, String)],
    body: &[u8],
) -> common::RawResponse {
    let headers = signed_headers(&server.addr, method, path, &[], &sha256_hex(body), extra);
    raw_request(&server.addr, method, path, &headers, body).unwrap()
}

#[test]
fn issue_27_head_gives_the_tag_count_as_get_does() {
    let server = TestServer::start(ServerOptions::drives(1));
    assert_eq!(send(&server, "PUT", "/bkt", &[], b"").status, 200);
    let resp = send(
        &server,
        "PUT",
        "/bkt/tagged",
        &[("x-amz-tagging", "a=1&b=2".to_owned())],
        b"x",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    for method in ["GET", "HEAD"] {
        let resp = send(&server, method, "/bkt/tagged", &[], b"");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("x-amz-tagging-count"), Some("2"), "{method}");
    }
    assert_eq!(send(&server, "PUT", "/bkt/plain", &[], b"x").status, 200);
    let resp = send(&server, "HEAD", "/bkt/plain", &[], b"");
    assert_eq!(resp.header("x-amz-tagging-count"), None);
}
