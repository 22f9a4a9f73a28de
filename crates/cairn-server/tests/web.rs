//! Addressing and browser uploads (issue 3, item 4): virtual-host-style
//! requests with `CAIRN_DOMAIN`, POST uploads from an HTML form with a
//! signed policy, presigned URLs from the SDK, and bucket CORS.

mod common;

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
use common::sigv4::{Signer, amz_date, now_unix, sha256_hex};
use common::{
    ACCESS_KEY, RawResponse, SECRET_KEY, ServerOptions, TestServer, md5_hex, raw_request,
    sdk_error_code, test_data,
};

/// A request signed for `host`, with `path` as the canonical URI.
fn signed_for_host(
    host: &str,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let signer = Signer::new(ACCESS_KEY, SECRET_KEY);
    let mut headers: Vec<(&'static str, String)> = vec![
        ("host", host.to_owned()),
        ("x-amz-date", signer.amz_date()),
        ("x-amz-content-sha256", sha256_hex(body)),
    ];
    let (auth, _) = signer.authorization(method, path, query, &headers, &sha256_hex(body));
    headers.push(("authorization", auth));
    headers
}

fn vhost(
    server: &TestServer,
    host: &str,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let headers = signed_for_host(host, method, path, query, body);
    let target = if query.is_empty() {
        path.to_owned()
    } else {
        let qs: Vec<String> = query
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    (*k).to_owned()
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        format!("{path}?{}", qs.join("&"))
    };
    raw_request(&server.addr, method, &target, &headers, body).unwrap()
}

#[test]
fn issue_3_virtual_host_style_with_cairn_domain() {
    let server = TestServer::start(
        ServerOptions::drives(4).env("CAIRN_DOMAIN", "s3.cairn.test,objects.example.org"),
    );
    let port = server.addr.rsplit_once(':').unwrap().1.to_owned();
    let host = |bucket: &str| format!("{bucket}.s3.cairn.test:{port}");

    // Create a bucket, write, read and list through the virtual host.
    let resp = vhost(&server, &host("vbucket"), "PUT", "/", &[], b"");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = vhost(
        &server,
        &host("vbucket"),
        "PUT",
        "/dir/key.txt",
        &[],
        b"by host",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = vhost(&server, &host("vbucket"), "GET", "/dir/key.txt", &[], b"");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.body, b"by host");
    let resp = vhost(
        &server,
        &host("vbucket"),
        "GET",
        "/",
        &[("list-type", "2"), ("prefix", "dir/")],
        b"",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        resp.text().contains("<Key>dir/key.txt</Key>"),
        "{}",
        resp.text()
    );
    assert!(
        resp.text().contains("<Name>vbucket</Name>"),
        "{}",
        resp.text()
    );
    // The second domain, and the host without a port.
    let resp = vhost(
        &server,
        "vbucket.objects.example.org",
        "GET",
        "/dir/key.txt",
        &[],
        b"",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.body, b"by host");

    // Path style keeps working on the same server, for the same bucket.
    let client = server.client();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let got = rt.block_on(async {
        client
            .get_object()
            .bucket("vbucket")
            .key("dir/key.txt")
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .to_vec()
    });
    assert_eq!(got, b"by host");
    // The domain itself is the service: ListBuckets.
    let resp = vhost(
        &server,
        &format!("s3.cairn.test:{port}"),
        "GET",
        "/",
        &[],
        b"",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        resp.text().contains("<Name>vbucket</Name>"),
        "{}",
        resp.text()
    );
    // A missing bucket by host is NoSuchBucket.
    let resp = vhost(&server, &host("nosuchbucket"), "GET", "/k", &[], b"");
    assert_eq!(resp.status, 404);
    assert_eq!(resp.error_code().as_deref(), Some("NoSuchBucket"));
}

#[test]
fn issue_3_without_cairn_domain_hosts_are_not_buckets() {
    let server = TestServer::start(ServerOptions::drives(1));
    let port = server.addr.rsplit_once(':').unwrap().1.to_owned();
    let resp = vhost(
        &server,
        &format!("127.0.0.1:{port}"),
        "PUT",
        "/plain",
        &[],
        b"",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    // A host that looks virtual is still path style: this lists buckets.
    let resp = vhost(
        &server,
        &format!("plain.localhost:{port}"),
        "GET",
        "/",
        &[],
        b"",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        resp.text().contains("<ListAllMyBucketsResult"),
        "{}",
        resp.text()
    );
}

/// A POST form: fields in order, then the file.
struct Form {
    boundary: String,
    body: Vec<u8>,
}

impl Form {
    fn new() -> Form {
        Form {
            boundary: format!("----cairn{}", uuid::Uuid::new_v4().simple()),
            body: Vec::new(),
        }
    }

    fn field(mut self, name: &str, value: &str) -> Form {
        self.body.extend_from_slice(
            format!(
                "--{}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n",
                self.boundary
            )
            .as_bytes(),
        );
        self
    }

    fn file(mut self, filename: &str, data: &[u8]) -> (String, Vec<u8>) {
        self.body.extend_from_slice(
            format!(
                "--{}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                self.boundary
            )
            .as_bytes(),
        );
        self.body.extend_from_slice(data);
        self.body
            .extend_from_slice(format!("\r\n--{}--\r\n", self.boundary).as_bytes());
        (self.boundary, self.body)
    }
}

/// A signed policy form: the given extra conditions (JSON), plus the
/// signing fields; `fields` are sent as well.
fn policy_form(
    signer: &Signer,
    expires_in: i64,
    conditions: &[&str],
    fields: &[(&str, &str)],
) -> Form {
    let expiration = {
        let when = (now_unix() as i64 + expires_in) as u64;
        let d = amz_date(when);
        format!(
            "{}-{}-{}T{}:{}:{}.000Z",
            &d[0..4],
            &d[4..6],
            &d[6..8],
            &d[9..11],
            &d[11..13],
            &d[13..15]
        )
    };
    let mut all: Vec<String> = conditions.iter().map(|c| (*c).to_owned()).collect();
    all.push("{\"x-amz-algorithm\": \"AWS4-HMAC-SHA256\"}".to_owned());
    all.push(format!(
        "{{\"x-amz-credential\": \"{}\"}}",
        signer.credential()
    ));
    all.push(format!("{{\"x-amz-date\": \"{}\"}}", signer.amz_date()));
    let policy = format!(
        "{{\"expiration\": \"{expiration}\", \"conditions\": [{}]}}",
        all.join(", ")
    );
    let policy = base64_simd::STANDARD.encode_to_string(policy.as_bytes());
    let mut form = Form::new();
    for (name, value) in fields {
        form = form.field(name, value);
    }
    form.field("x-amz-algorithm", "AWS4-HMAC-SHA256")
        .field("x-amz-credential", &signer.credential())
        .field("x-amz-date", &signer.amz_date())
        .field("policy", &policy)
        .field("x-amz-signature", &signer.sign_policy(&policy))
}

/// A POST form's credential scope names this server's region, as a
/// header signature's must (issue 27).
#[tokio::test]
async fn issue_27_post_forms_must_name_this_region() {
    let server = TestServer::start(ServerOptions::drives(1));
    let client = server.client();
    client.create_bucket().bucket("forms").send().await.unwrap();
    let mut signer = Signer::new(ACCESS_KEY, SECRET_KEY);
    signer.region = "eu-west-1".into();
    let form = policy_form(&signer, 600, &["{\"bucket\": \"forms\"}"], &[("key", "k")]);
    let resp = post(&server, "/forms", form.file("f", b"data"));
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(
        resp.error_code().as_deref(),
        Some("AuthorizationHeaderMalformed")
    );
    assert!(resp.text().contains("us-east-1"), "{}", resp.text());
    let err = client.head_object().bucket("forms").key("k").send().await;
    assert!(err.is_err(), "nothing stored");
}

fn post(server: &TestServer, path: &str, form: (String, Vec<u8>)) -> RawResponse {
    let (boundary, body) = form;
    raw_request(
        &server.addr,
        "POST",
        path,
        &[
            (
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            ),
            ("origin", "https://app.example.com".to_owned()),
        ],
        &body,
    )
    .unwrap()
}

#[tokio::test]
async fn issue_3_post_object_with_a_signed_policy() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("forms").send().await.unwrap();
    let signer = Signer::new(ACCESS_KEY, SECRET_KEY);
    let data = test_data(300_000, 3);
    let standard = [
        "{\"bucket\": \"forms\"}",
        "[\"starts-with\", \"$key\", \"uploads/\"]",
        "[\"content-length-range\", 1, 1048576]",
        "[\"starts-with\", \"$Content-Type\", \"image/\"]",
        "[\"starts-with\", \"$x-amz-meta-owner\", \"\"]",
    ];

    // Default: 204, with the ETag and the object's location.
    let form = policy_form(
        &signer,
        600,
        &standard,
        &[
            ("key", "uploads/${filename}"),
            ("Content-Type", "image/png"),
            ("x-amz-meta-owner", "alice"),
        ],
    );
    let resp = post(&server, "/forms", form.file("photo one.png", &data));
    assert_eq!(resp.status, 204, "{}", resp.text());
    let etag = format!("\"{}\"", md5_hex(&data));
    assert_eq!(resp.header("etag"), Some(etag.as_str()));
    let head = client
        .head_object()
        .bucket("forms")
        .key("uploads/photo one.png")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("image/png"));
    assert_eq!(
        head.metadata().unwrap().get("owner").map(String::as_str),
        Some("alice")
    );
    let got = client
        .get_object()
        .bucket("forms")
        .key("uploads/photo one.png")
        .send()
        .await
        .unwrap();
    assert_eq!(got.body.collect().await.unwrap().to_vec(), data);

    // 201 answers an XML document.
    let mut conditions = standard.to_vec();
    conditions.push("{\"success_action_status\": \"201\"}");
    let form = policy_form(
        &signer,
        600,
        &conditions,
        &[
            ("key", "uploads/created.bin"),
            ("Content-Type", "image/jpeg"),
            ("x-amz-meta-owner", "bob"),
            ("success_action_status", "201"),
        ],
    );
    let resp = post(&server, "/forms", form.file("x", b"created"));
    assert_eq!(resp.status, 201, "{}", resp.text());
    let text = resp.text();
    assert!(text.contains("<Bucket>forms</Bucket>"), "{text}");
    assert!(text.contains("<Key>uploads/created.bin</Key>"), "{text}");
    assert!(text.contains(&md5_hex(b"created")), "{text}");
    // CORS headers are not given to a bucket without CORS rules.
    assert_eq!(resp.header("access-control-allow-origin"), None);

    // success_action_redirect: 303 to the URL with bucket, key and ETag.
    let mut conditions = standard.to_vec();
    conditions
        .push("[\"starts-with\", \"$success_action_redirect\", \"https://app.example.com/\"]");
    let form = policy_form(
        &signer,
        600,
        &conditions,
        &[
            ("key", "uploads/redirected"),
            ("Content-Type", "image/gif"),
            ("x-amz-meta-owner", "carol"),
            (
                "success_action_redirect",
                "https://app.example.com/done?from=form",
            ),
        ],
    );
    let resp = post(&server, "/forms", form.file("x", b"redirected"));
    assert_eq!(resp.status, 303, "{}", resp.text());
    let location = resp.header("location").unwrap();
    assert!(
        location.starts_with(
            "https://app.example.com/done?from=form&bucket=forms&key=uploads%2Fredirected&etag="
        ),
        "{location}"
    );

    // Refusals, none of which stores anything.
    let too_big = test_data(1_048_577, 1);
    let refused: Vec<(&str, Form, &[u8], u16, &str)> = vec![
        (
            "key outside the prefix",
            policy_form(
                &signer,
                600,
                &standard,
                &[
                    ("key", "elsewhere/x"),
                    ("Content-Type", "image/png"),
                    ("x-amz-meta-owner", "a"),
                ],
            ),
            b"data",
            403,
            "AccessDenied",
        ),
        (
            "content type not allowed",
            policy_form(
                &signer,
                600,
                &standard,
                &[
                    ("key", "uploads/t"),
                    ("Content-Type", "text/html"),
                    ("x-amz-meta-owner", "a"),
                ],
            ),
            b"data",
            403,
            "AccessDenied",
        ),
        (
            "a field no condition covers",
            policy_form(
                &signer,
                600,
                &standard,
                &[
                    ("key", "uploads/extra"),
                    ("Content-Type", "image/png"),
                    ("x-amz-meta-owner", "a"),
                    ("x-amz-meta-sneaky", "1"),
                ],
            ),
            b"data",
            403,
            "AccessDenied",
        ),
        (
            "expired policy",
            policy_form(
                &signer,
                -60,
                &standard,
                &[
                    ("key", "uploads/late"),
                    ("Content-Type", "image/png"),
                    ("x-amz-meta-owner", "a"),
                ],
            ),
            b"data",
            403,
            "AccessDenied",
        ),
        (
            "file over the content-length-range",
            policy_form(
                &signer,
                600,
                &standard,
                &[
                    ("key", "uploads/big"),
                    ("Content-Type", "image/png"),
                    ("x-amz-meta-owner", "a"),
                ],
            ),
            &too_big,
            400,
            "EntityTooLarge",
        ),
        (
            "empty file under the content-length-range",
            policy_form(
                &signer,
                600,
                &standard,
                &[
                    ("key", "uploads/empty"),
                    ("Content-Type", "image/png"),
                    ("x-amz-meta-owner", "a"),
                ],
            ),
            b"",
            400,
            "EntityTooSmall",
        ),
        (
            "wrong secret",
            policy_form(
                &Signer::new(ACCESS_KEY, "not-the-secret"),
                600,
                &standard,
                &[
                    ("key", "uploads/forged"),
                    ("Content-Type", "image/png"),
                    ("x-amz-meta-owner", "a"),
                ],
            ),
            b"data",
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "no policy at all",
            Form::new().field("key", "uploads/anonymous"),
            b"data",
            403,
            "AccessDenied",
        ),
    ];
    for (what, form, data, status, code) in refused {
        let resp = post(&server, "/forms", form.file("f", data));
        assert_eq!(resp.status, status, "{what}: {}", resp.text());
        assert_eq!(
            resp.error_code().as_deref(),
            Some(code),
            "{what}: {}",
            resp.text()
        );
    }
    // A form without a file, and one that is cut short.
    let form = policy_form(&signer, 600, &standard, &[("key", "uploads/nofile")]);
    let mut body = form.body.clone();
    body.extend_from_slice(format!("--{}--\r\n", form.boundary).as_bytes());
    let resp = post(&server, "/forms", (form.boundary.clone(), body));
    assert_eq!(resp.status, 400, "{}", resp.text());
    let (boundary, mut body) = policy_form(
        &signer,
        600,
        &standard,
        &[
            ("key", "uploads/cut"),
            ("Content-Type", "image/png"),
            ("x-amz-meta-owner", "a"),
        ],
    )
    .file("f", b"some data that never ends");
    body.truncate(body.len() - 20);
    let resp = post(&server, "/forms", (boundary, body));
    assert_eq!(resp.status, 400, "{}", resp.text());

    let listed = client
        .list_objects_v2()
        .bucket("forms")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = listed.contents().iter().map(|o| o.key().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "uploads/created.bin",
            "uploads/photo one.png",
            "uploads/redirected"
        ]
    );
}

#[tokio::test]
async fn issue_3_presigned_urls_from_the_sdk() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("pre").send().await.unwrap();
    let config = PresigningConfig::expires_in(Duration::from_secs(7 * 24 * 3600)).unwrap();
    let put = client
        .put_object()
        .bucket("pre")
        .key("shared file.txt")
        .presigned(config.clone())
        .await
        .unwrap();
    let uri: http::Uri = put.uri().parse().unwrap();
    let target = uri.path_and_query().unwrap().as_str();
    let headers: Vec<(&str, String)> = put.headers().map(|(k, v)| (k, v.to_owned())).collect();
    let resp = raw_request(&server.addr, "PUT", target, &headers, b"presigned body").unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());

    let get = client
        .get_object()
        .bucket("pre")
        .key("shared file.txt")
        .presigned(config)
        .await
        .unwrap();
    let uri: http::Uri = get.uri().parse().unwrap();
    let resp = raw_request(
        &server.addr,
        "GET",
        uri.path_and_query().unwrap().as_str(),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.body, b"presigned body");
    // The SDK itself refuses more than 7 days.
    assert!(PresigningConfig::expires_in(Duration::from_secs(7 * 24 * 3600 + 1)).is_err());
}

fn preflight(
    server: &TestServer,
    path: &str,
    origin: &str,
    method: &str,
    headers: Option<&str>,
) -> RawResponse {
    let mut extra = vec![
        ("origin", origin.to_owned()),
        ("access-control-request-method", method.to_owned()),
    ];
    if let Some(headers) = headers {
        extra.push(("access-control-request-headers", headers.to_owned()));
    }
    raw_request(&server.addr, "OPTIONS", path, &extra, b"").unwrap()
}

#[tokio::test]
async fn issue_3_bucket_cors() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("web").send().await.unwrap();
    client
        .create_bucket()
        .bucket("closed")
        .send()
        .await
        .unwrap();
    client
        .put_object()
        .bucket("web")
        .key("page.html")
        .body(ByteStream::from_static(b"<html></html>"))
        .send()
        .await
        .unwrap();

    // No configuration yet.
    let err = client
        .get_bucket_cors()
        .bucket("web")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        sdk_error_code(&err).as_deref(),
        Some("NoSuchCORSConfiguration")
    );
    let resp = preflight(
        &server,
        "/web/page.html",
        "https://app.example.com",
        "GET",
        None,
    );
    assert_eq!(resp.status, 403, "{}", resp.text());

    let config = CorsConfiguration::builder()
        .cors_rules(
            CorsRule::builder()
                .allowed_origins("https://app.example.com")
                .allowed_origins("https://*.example.org")
                .allowed_methods("GET")
                .allowed_methods("PUT")
                .allowed_headers("content-type")
                .allowed_headers("x-amz-*")
                .expose_headers("ETag")
                .max_age_seconds(600)
                .build()
                .unwrap(),
        )
        .cors_rules(
            CorsRule::builder()
                .allowed_origins("*")
                .allowed_methods("HEAD")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    client
        .put_bucket_cors()
        .bucket("web")
        .cors_configuration(config)
        .send()
        .await
        .unwrap();
    let got = client.get_bucket_cors().bucket("web").send().await.unwrap();
    assert_eq!(got.cors_rules().len(), 2);
    assert_eq!(
        got.cors_rules()[0].allowed_origins(),
        ["https://app.example.com", "https://*.example.org"]
    );
    assert_eq!(got.cors_rules()[0].max_age_seconds(), Some(600));

    // Preflights that a rule allows.
    let resp = preflight(
        &server,
        "/web/page.html",
        "https://app.example.com",
        "PUT",
        Some("Content-Type, X-Amz-Date"),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        resp.header("access-control-allow-methods"),
        Some("GET, PUT")
    );
    assert_eq!(resp.header("access-control-max-age"), Some("600"));
    assert!(
        resp.header("access-control-allow-headers")
            .unwrap()
            .contains("X-Amz-Date")
    );
    let resp = preflight(
        &server,
        "/web/page.html",
        "https://cdn.example.org",
        "GET",
        None,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = preflight(
        &server,
        "/web/page.html",
        "https://anyone.net",
        "HEAD",
        None,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("access-control-allow-origin"), Some("*"));

    // Preflights that none allows.
    for (origin, method, headers) in [
        ("https://evil.example.com", "GET", None),
        ("https://app.example.com", "DELETE", None),
        (
            "https://app.example.com",
            "PUT",
            Some("authorization-extra"),
        ),
        ("https://example.org", "GET", None),
    ] {
        let resp = preflight(&server, "/web/page.html", origin, method, headers);
        assert_eq!(resp.status, 403, "{origin} {method} {headers:?}");
        assert_eq!(resp.error_code().as_deref(), Some("AccessForbidden"));
        assert_eq!(resp.header("access-control-allow-origin"), None);
    }
    // Another bucket's rules do not apply; a preflight without a method is bad.
    let resp = preflight(&server, "/closed/x", "https://app.example.com", "GET", None);
    assert_eq!(resp.status, 403);
    let resp = raw_request(
        &server.addr,
        "OPTIONS",
        "/web/page.html",
        &[("origin", "https://app.example.com".to_owned())],
        b"",
    )
    .unwrap();
    assert_eq!(resp.status, 400);

    // Actual requests get the headers when their origin is allowed.
    let signed = common::signed_headers(
        &server.addr,
        "GET",
        "/web/page.html",
        &[],
        &sha256_hex(b""),
        &[("origin", "https://app.example.com".to_owned())],
    );
    let resp = raw_request(&server.addr, "GET", "/web/page.html", &signed, b"").unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(resp.header("access-control-expose-headers"), Some("ETag"));
    assert!(
        resp.headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("vary") && v.contains("Origin"))
    );
    let signed = common::signed_headers(
        &server.addr,
        "GET",
        "/web/page.html",
        &[],
        &sha256_hex(b""),
        &[("origin", "https://evil.example.com".to_owned())],
    );
    let resp = raw_request(&server.addr, "GET", "/web/page.html", &signed, b"").unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("access-control-allow-origin"), None);

    // Bad configurations are refused and change nothing.
    let bad_method = CorsConfiguration::builder()
        .cors_rules(
            CorsRule::builder()
                .allowed_origins("*")
                .allowed_methods("PATCH")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let err = client
        .put_bucket_cors()
        .bucket("web")
        .cors_configuration(bad_method)
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("InvalidRequest"));
    let malformed = "<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>";
    let md5 = {
        use md5::Digest;
        base64_simd::STANDARD.encode_to_string(md5::Md5::digest(malformed.as_bytes()))
    };
    let signed = common::signed_headers(
        &server.addr,
        "PUT",
        "/web",
        &[("cors", "")],
        &sha256_hex(malformed.as_bytes()),
        &[("content-md5", md5)],
    );
    let resp = raw_request(
        &server.addr,
        "PUT",
        "/web?cors",
        &signed,
        malformed.as_bytes(),
    )
    .unwrap();
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.error_code().as_deref(), Some("MalformedXML"));
    let got = client.get_bucket_cors().bucket("web").send().await.unwrap();
    assert_eq!(got.cors_rules().len(), 2);

    // Deleted: preflights are refused again.
    client
        .delete_bucket_cors()
        .bucket("web")
        .send()
        .await
        .unwrap();
    let resp = preflight(
        &server,
        "/web/page.html",
        "https://app.example.com",
        "GET",
        None,
    );
    assert_eq!(resp.status, 403);
    let err = client
        .get_bucket_cors()
        .bucket("web")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        sdk_error_code(&err).as_deref(),
        Some("NoSuchCORSConfiguration")
    );
}
