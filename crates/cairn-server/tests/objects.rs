//! Object operations (issue 3, item 2): CopyObject, DeleteObjects,
//! GetObjectAttributes, tagging, `response-*` overrides, conditional GET,
//! HEAD and PUT; each with the errors S3 gives and no change on error.

mod common;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    Delete, MetadataDirective, ObjectAttributes, ObjectIdentifier, Tag, Tagging, TaggingDirective,
};
use common::get_bytes as get;
use common::sigv4::sha256_hex;
use common::{
    ServerOptions, TestServer, md5_hex, raw_request, sdk_error_code, sdk_status, signed_headers,
    test_data,
};

async fn put(client: &Client, bucket: &str, key: &str, data: &[u8]) -> String {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"))
        .e_tag
        .unwrap()
}

async fn tags(client: &Client, bucket: &str, key: &str) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = client
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    tags.sort();
    tags
}

fn date(secs_from_now: i64) -> DateTime {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    DateTime::from_secs(now + secs_from_now)
}

fn meta(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn issue_3_copy_object() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("src").send().await.unwrap();
    client.create_bucket().bucket("dst").send().await.unwrap();
    let body = test_data(3 * 1024 * 1024 + 11, 5);
    let etag = client
        .put_object()
        .bucket("src")
        .key("a b/ü+.bin")
        .body(ByteStream::from(body.clone()))
        .content_type("application/x-test")
        .cache_control("max-age=60")
        .metadata("color", "blue")
        .tagging("team=storage&tier=hot")
        .send()
        .await
        .unwrap()
        .e_tag
        .unwrap();
    let source = "src/a%20b/%C3%BC%2B.bin";

    // COPY (the default): bytes, headers, metadata and tags come along.
    let copied = client
        .copy_object()
        .bucket("dst")
        .key("copy")
        .copy_source(source)
        .send()
        .await
        .unwrap();
    assert_eq!(
        copied.copy_object_result().unwrap().e_tag(),
        Some(etag.as_str())
    );
    assert_eq!(get(&client, "dst", "copy").await, body);
    let head = client
        .head_object()
        .bucket("dst")
        .key("copy")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("application/x-test"));
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(head.metadata().unwrap(), &meta(&[("color", "blue")]));
    assert_eq!(
        tags(&client, "dst", "copy").await,
        [
            ("team".to_owned(), "storage".to_owned()),
            ("tier".to_owned(), "hot".to_owned())
        ]
    );

    // REPLACE: the request's headers and metadata instead; tags by their
    // own directive.
    client
        .copy_object()
        .bucket("dst")
        .key("replaced")
        .copy_source(source)
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/plain")
        .metadata("shape", "round")
        .tagging_directive(TaggingDirective::Replace)
        .tagging("new=tag")
        .send()
        .await
        .unwrap();
    let head = client
        .head_object()
        .bucket("dst")
        .key("replaced")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(head.cache_control(), None);
    assert_eq!(head.metadata().unwrap(), &meta(&[("shape", "round")]));
    assert_eq!(
        tags(&client, "dst", "replaced").await,
        [("new".to_owned(), "tag".to_owned())]
    );
    assert_eq!(get(&client, "dst", "replaced").await, body);

    // Onto itself: refused without a change, allowed with REPLACE, which
    // changes the metadata and the modification time but not the bytes.
    let err = client
        .copy_object()
        .bucket("src")
        .key("a b/ü+.bin")
        .copy_source(source)
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("InvalidRequest"));
    let before = client
        .head_object()
        .bucket("src")
        .key("a b/ü+.bin")
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client
        .copy_object()
        .bucket("src")
        .key("a b/ü+.bin")
        .copy_source(source)
        .metadata_directive(MetadataDirective::Replace)
        .content_type("image/png")
        .metadata("color", "red")
        .send()
        .await
        .unwrap();
    let after = client
        .head_object()
        .bucket("src")
        .key("a b/ü+.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(after.content_type(), Some("image/png"));
    assert_eq!(after.metadata().unwrap(), &meta(&[("color", "red")]));
    assert_eq!(after.e_tag(), Some(etag.as_str()));
    assert!(after.last_modified().unwrap() > before.last_modified().unwrap());
    assert_eq!(get(&client, "src", "a b/ü+.bin").await, body);
    // Tags stay with a metadata-only self copy.
    assert_eq!(tags(&client, "src", "a b/ü+.bin").await.len(), 2);

    // x-amz-copy-source-if-*: 412 when a condition fails, copy otherwise.
    let failing = [
        client
            .copy_object()
            .copy_source_if_match("\"00000000000000000000000000000000\""),
        client.copy_object().copy_source_if_none_match(&etag),
        client
            .copy_object()
            .copy_source_if_modified_since(date(3600)),
        client
            .copy_object()
            .copy_source_if_unmodified_since(date(-3600)),
    ];
    for request in failing {
        let err = request
            .bucket("dst")
            .key("conditional")
            .copy_source(source)
            .send()
            .await
            .unwrap_err();
        assert_eq!(sdk_error_code(&err).as_deref(), Some("PreconditionFailed"));
        assert_eq!(sdk_status(&err), Some(412));
    }
    let err = client
        .head_object()
        .bucket("dst")
        .key("conditional")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_status(&err), Some(404), "a failed copy wrote nothing");
    client
        .copy_object()
        .bucket("dst")
        .key("conditional")
        .copy_source(source)
        .copy_source_if_match(&etag)
        .copy_source_if_unmodified_since(date(3600))
        .send()
        .await
        .unwrap();
    // If-Match holding wins over If-Unmodified-Since failing, as in S3.
    client
        .copy_object()
        .bucket("dst")
        .key("conditional")
        .copy_source(source)
        .copy_source_if_match(&etag)
        .copy_source_if_unmodified_since(date(-3600))
        .send()
        .await
        .unwrap();

    // Missing sources, bad directives.
    let err = client
        .copy_object()
        .bucket("dst")
        .key("x")
        .copy_source("src/missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("NoSuchKey"));
    let err = client
        .copy_object()
        .bucket("dst")
        .key("x")
        .copy_source("nobucket/missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("NoSuchBucket"));
    let err = client
        .copy_object()
        .bucket("nobucket")
        .key("x")
        .copy_source(source)
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("NoSuchBucket"));
    let err = client
        .copy_object()
        .bucket("dst")
        .key("x")
        .copy_source(source)
        .metadata_directive(MetadataDirective::from("SOMETIMES"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("InvalidArgument"));
    let err = client
        .head_object()
        .bucket("dst")
        .key("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_status(&err), Some(404));
}

#[tokio::test]
async fn issue_3_delete_objects() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("bulk").send().await.unwrap();
    for i in 0..20 {
        put(&client, "bulk", &format!("k{i:02}"), b"x").await;
    }
    let ids = |keys: &[&str]| -> Vec<ObjectIdentifier> {
        keys.iter()
            .map(|k| ObjectIdentifier::builder().key(*k).build().unwrap())
            .collect()
    };

    // Verbose: every key is reported, missing ones as deleted (as in S3);
    // a bad version id is a per-key error.
    let mut objects = ids(&["k00", "k01", "never-existed"]);
    objects.push(
        ObjectIdentifier::builder()
            .key("k02")
            .version_id("not-a-version")
            .build()
            .unwrap(),
    );
    let out = client
        .delete_objects()
        .bucket("bulk")
        .delete(
            Delete::builder()
                .set_objects(Some(objects))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let mut deleted: Vec<&str> = out.deleted().iter().map(|d| d.key().unwrap()).collect();
    deleted.sort();
    assert_eq!(deleted, ["k00", "k01", "never-existed"]);
    assert_eq!(out.errors().len(), 1);
    assert_eq!(out.errors()[0].key(), Some("k02"));
    assert_eq!(out.errors()[0].code(), Some("InvalidArgument"));
    get(&client, "bulk", "k02").await;

    // Quiet: only errors are reported.
    let out = client
        .delete_objects()
        .bucket("bulk")
        .delete(
            Delete::builder()
                .set_objects(Some(ids(&["k03", "k04"])))
                .quiet(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(out.deleted().is_empty());
    assert!(out.errors().is_empty());

    // More than 1000 keys: refused whole.
    let many: Vec<String> = (0..1001).map(|i| format!("k{:02}", i % 20)).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let err = client
        .delete_objects()
        .bucket("bulk")
        .delete(
            Delete::builder()
                .set_objects(Some(ids(&many)))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("MalformedXML"));
    let err = client
        .delete_objects()
        .bucket("missing-bucket")
        .delete(
            Delete::builder()
                .set_objects(Some(ids(&["k05"])))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("NoSuchBucket"));

    let listed = client
        .list_objects_v2()
        .bucket("bulk")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = listed.contents().iter().map(|o| o.key().unwrap()).collect();
    let expected: Vec<String> = (2..20)
        .filter(|i| *i != 3 && *i != 4)
        .map(|i| format!("k{i:02}"))
        .collect();
    assert_eq!(keys, expected);

    // Exactly 1000 is allowed.
    let thousand: Vec<String> = (0..1000).map(|i| format!("k{:02}", i % 20)).collect();
    let thousand: Vec<&str> = thousand.iter().map(String::as_str).collect();
    let out = client
        .delete_objects()
        .bucket("bulk")
        .delete(
            Delete::builder()
                .set_objects(Some(ids(&thousand)))
                .quiet(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(out.errors().is_empty());
    let listed = client
        .list_objects_v2()
        .bucket("bulk")
        .send()
        .await
        .unwrap();
    assert!(listed.contents().is_empty());
}

#[tokio::test]
async fn issue_3_delete_objects_malformed_bodies() {
    let server = TestServer::start(ServerOptions::drives(1));
    let client = server.client();
    client.create_bucket().bucket("bulk").send().await.unwrap();
    put(&client, "bulk", "keep", b"kept").await;
    // An empty body is S3's MissingRequestBodyError.
    let empty = signed_headers(
        &server.addr,
        "POST",
        "/bulk",
        &[("delete", "")],
        &sha256_hex(b""),
        &[("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==".to_owned())],
    );
    let resp = raw_request(&server.addr, "POST", "/bulk?delete", &empty, b"").unwrap();
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(
        resp.error_code().as_deref(),
        Some("MissingRequestBodyError")
    );
    for body in [
        "<Delete>",
        "<Delete></Delete>",
        "<Delete><Object></Object></Delete>",
        "not xml at all",
    ] {
        let md5 = {
            use md5::Digest;
            let digest = md5::Md5::digest(body.as_bytes());
            base64_simd::STANDARD.encode_to_string(digest)
        };
        let headers = signed_headers(
            &server.addr,
            "POST",
            "/bulk",
            &[("delete", "")],
            &sha256_hex(body.as_bytes()),
            &[("content-md5", md5)],
        );
        let resp = raw_request(
            &server.addr,
            "POST",
            "/bulk?delete",
            &headers,
            body.as_bytes(),
        )
        .unwrap();
        assert_eq!(resp.status, 400, "{body:?}: {}", resp.text());
        assert_eq!(
            resp.error_code().as_deref(),
            Some("MalformedXML"),
            "{body:?}: {}",
            resp.text()
        );
    }
    assert_eq!(get(&client, "bulk", "keep").await, b"kept");
}

#[tokio::test]
async fn issue_3_get_object_attributes() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("attrs").send().await.unwrap();
    let body = test_data(1000, 1);
    let etag = put(&client, "attrs", "single", &body).await;
    let out = client
        .get_object_attributes()
        .bucket("attrs")
        .key("single")
        .object_attributes(ObjectAttributes::Etag)
        .object_attributes(ObjectAttributes::ObjectSize)
        .object_attributes(ObjectAttributes::StorageClass)
        .object_attributes(ObjectAttributes::ObjectParts)
        .send()
        .await
        .unwrap();
    assert_eq!(out.e_tag(), Some(etag.trim_matches('"')));
    assert_eq!(out.object_size(), Some(1000));
    assert_eq!(out.storage_class().map(|s| s.as_str()), Some("STANDARD"));
    assert!(out.object_parts().is_none(), "a single PUT has no parts");
    assert!(out.last_modified().is_some());

    // A multipart object lists its parts, paginated.
    let upload = client
        .create_multipart_upload()
        .bucket("attrs")
        .key("parts")
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap();
    let part = test_data(5 * 1024 * 1024, 2);
    let mut completed = Vec::new();
    for n in 1..=3 {
        let data = if n == 3 {
            b"end".to_vec()
        } else {
            part.clone()
        };
        let etag = client
            .upload_part()
            .bucket("attrs")
            .key("parts")
            .upload_id(upload_id)
            .part_number(n)
            .body(ByteStream::from(data))
            .send()
            .await
            .unwrap()
            .e_tag
            .unwrap();
        completed.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .e_tag(etag)
                .build(),
        );
    }
    client
        .complete_multipart_upload()
        .bucket("attrs")
        .key("parts")
        .upload_id(upload_id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let out = client
        .get_object_attributes()
        .bucket("attrs")
        .key("parts")
        .object_attributes(ObjectAttributes::ObjectParts)
        .object_attributes(ObjectAttributes::ObjectSize)
        .max_parts(2)
        .send()
        .await
        .unwrap();
    assert_eq!(out.object_size(), Some(2 * 5 * 1024 * 1024 + 3));
    let parts = out.object_parts().unwrap();
    assert_eq!(parts.total_parts_count(), Some(3));
    assert_eq!(parts.is_truncated(), Some(true));
    let listed: Vec<(i32, i64)> = parts
        .parts()
        .iter()
        .map(|p| (p.part_number().unwrap(), p.size().unwrap()))
        .collect();
    assert_eq!(listed, [(1, 5 * 1024 * 1024), (2, 5 * 1024 * 1024)]);
    let rest = client
        .get_object_attributes()
        .bucket("attrs")
        .key("parts")
        .object_attributes(ObjectAttributes::ObjectParts)
        .part_number_marker(parts.next_part_number_marker().unwrap())
        .send()
        .await
        .unwrap();
    let listed: Vec<i32> = rest
        .object_parts()
        .unwrap()
        .parts()
        .iter()
        .map(|p| p.part_number().unwrap())
        .collect();
    assert_eq!(listed, [3]);

    // botocore sends the list as one header with spaces after the commas.
    let headers = signed_headers(
        &server.addr,
        "GET",
        "/attrs/single",
        &[("attributes", "")],
        &sha256_hex(b""),
        &[("x-amz-object-attributes", "ETag, ObjectSize".to_owned())],
    );
    let resp = raw_request(
        &server.addr,
        "GET",
        "/attrs/single?attributes",
        &headers,
        b"",
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        resp.text().contains("<ObjectSize>1000</ObjectSize>"),
        "{}",
        resp.text()
    );
    assert!(
        resp.text()
            .contains(&format!("<ETag>{}</ETag>", etag.trim_matches('"'))),
        "{}",
        resp.text()
    );

    let err = client
        .get_object_attributes()
        .bucket("attrs")
        .key("missing")
        .object_attributes(ObjectAttributes::Etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_status(&err), Some(404));
}

#[tokio::test]
async fn issue_3_object_tagging() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("tags").send().await.unwrap();
    let etag = client
        .put_object()
        .bucket("tags")
        .key("k")
        .body(ByteStream::from_static(b"body"))
        .tagging("a=1&b=two%20words")
        .send()
        .await
        .unwrap()
        .e_tag
        .unwrap();
    assert_eq!(
        tags(&client, "tags", "k").await,
        [
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "two words".to_owned())
        ]
    );
    let got = client
        .get_object()
        .bucket("tags")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(got.tag_count(), Some(2));
    let modified = got.last_modified().cloned();

    let tagging = |pairs: &[(&str, &str)]| {
        Tagging::builder()
            .set_tag_set(Some(
                pairs
                    .iter()
                    .map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap())
                    .collect(),
            ))
            .build()
            .unwrap()
    };
    client
        .put_object_tagging()
        .bucket("tags")
        .key("k")
        .tagging(tagging(&[("only", "this")]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags(&client, "tags", "k").await,
        [("only".to_owned(), "this".to_owned())]
    );
    // Tagging changes neither the bytes, the ETag nor the modification time.
    let head = client
        .head_object()
        .bucket("tags")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    assert_eq!(head.last_modified().cloned(), modified);
    assert_eq!(get(&client, "tags", "k").await, b"body");

    // Limits: 10 tags, keys of 128 and values of 256 characters, no repeats.
    let eleven: Vec<(String, String)> = (0..11).map(|i| (format!("k{i}"), "v".into())).collect();
    let eleven: Vec<(&str, &str)> = eleven
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let long_key = "k".repeat(129);
    let long_value = "v".repeat(257);
    for bad in [
        eleven,
        vec![(long_key.as_str(), "v")],
        vec![("k", long_value.as_str())],
        vec![("same", "1"), ("same", "2")],
    ] {
        let err = client
            .put_object_tagging()
            .bucket("tags")
            .key("k")
            .tagging(tagging(&bad))
            .send()
            .await
            .unwrap_err();
        let code = sdk_error_code(&err);
        assert!(
            matches!(code.as_deref(), Some("InvalidTag" | "BadRequest")),
            "{code:?}"
        );
    }
    let err = client
        .put_object()
        .bucket("tags")
        .key("k2")
        .body(ByteStream::from_static(b"x"))
        .tagging("a=1&a=2")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        sdk_error_code(&err).as_deref(),
        Some("InvalidTag" | "InvalidArgument")
    ));
    let err = client
        .head_object()
        .bucket("tags")
        .key("k2")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_status(&err), Some(404));
    assert_eq!(
        tags(&client, "tags", "k").await,
        [("only".to_owned(), "this".to_owned())]
    );

    client
        .delete_object_tagging()
        .bucket("tags")
        .key("k")
        .send()
        .await
        .unwrap();
    assert!(tags(&client, "tags", "k").await.is_empty());
    let got = client
        .get_object()
        .bucket("tags")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(got.tag_count(), None);

    let err = client
        .get_object_tagging()
        .bucket("tags")
        .key("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("NoSuchKey"));
    let err = client
        .put_object_tagging()
        .bucket("tags")
        .key("missing")
        .tagging(tagging(&[("a", "b")]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("NoSuchKey"));
}

#[tokio::test]
async fn issue_3_response_overrides() {
    let server = TestServer::start(ServerOptions::drives(1));
    let client = server.client();
    client.create_bucket().bucket("over").send().await.unwrap();
    client
        .put_object()
        .bucket("over")
        .key("k")
        .body(ByteStream::from_static(b"body"))
        .content_type("text/plain")
        .send()
        .await
        .unwrap();
    let got = client
        .get_object()
        .bucket("over")
        .key("k")
        .response_content_type("application/json")
        .response_content_disposition("attachment; filename=\"x.json\"")
        .response_cache_control("no-cache")
        .response_content_encoding("identity")
        .response_content_language("de-DE")
        .response_expires(DateTime::from_secs(1_900_000_000))
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("application/json"));
    assert_eq!(
        got.content_disposition(),
        Some("attachment; filename=\"x.json\"")
    );
    assert_eq!(got.cache_control(), Some("no-cache"));
    assert_eq!(got.content_encoding(), Some("identity"));
    assert_eq!(got.content_language(), Some("de-DE"));
    assert_eq!(got.expires_string(), Some("Sun, 17 Mar 2030 17:46:40 GMT"));
    assert_eq!(got.body.collect().await.unwrap().to_vec(), b"body");
    // The stored headers are unchanged.
    let head = client
        .head_object()
        .bucket("over")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(head.content_disposition(), None);
}

/// A signed GET or HEAD with extra headers, as raw HTTP.
fn conditional(
    server: &TestServer,
    method: &str,
    path: &str,
    extra: &[(&'static str, String)],
) -> common::RawResponse {
    let headers = signed_headers(&server.addr, method, path, &[], &sha256_hex(b""), extra);
    raw_request(&server.addr, method, path, &headers, b"").unwrap()
}

#[tokio::test]
async fn issue_3_conditional_get_and_head() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("cond").send().await.unwrap();
    let etag = put(&client, "cond", "k", b"conditional body").await;
    let head = client
        .head_object()
        .bucket("cond")
        .key("k")
        .send()
        .await
        .unwrap();
    let modified = head.last_modified().unwrap().secs();
    let http_date = |secs: i64| {
        DateTime::from_secs(secs)
            .fmt(aws_sdk_s3::primitives::DateTimeFormat::HttpDate)
            .unwrap()
    };
    let other = "\"0123456789abcdef0123456789abcdef\"".to_owned();
    let cases: Vec<(Vec<(&'static str, String)>, u16)> = vec![
        (vec![("if-match", etag.clone())], 200),
        (vec![("if-match", "*".to_owned())], 200),
        (vec![("if-match", other.clone())], 412),
        (vec![("if-match", format!("{other}, {etag}"))], 200),
        (vec![("if-none-match", etag.clone())], 304),
        (vec![("if-none-match", "*".to_owned())], 304),
        (vec![("if-none-match", other.clone())], 200),
        (vec![("if-modified-since", http_date(modified + 60))], 304),
        (vec![("if-modified-since", http_date(modified))], 304),
        (vec![("if-modified-since", http_date(modified - 60))], 200),
        (vec![("if-unmodified-since", http_date(modified - 60))], 412),
        (vec![("if-unmodified-since", http_date(modified))], 200),
        (vec![("if-unmodified-since", http_date(modified + 60))], 200),
        // If-Match holding overrides If-Unmodified-Since failing ...
        (
            vec![
                ("if-match", etag.clone()),
                ("if-unmodified-since", http_date(modified - 60)),
            ],
            200,
        ),
        // ... and If-None-Match decides over If-Modified-Since.
        (
            vec![
                ("if-none-match", etag.clone()),
                ("if-modified-since", http_date(modified - 60)),
            ],
            304,
        ),
        // 412 is checked before 304.
        (
            vec![("if-match", other.clone()), ("if-none-match", etag.clone())],
            412,
        ),
    ];
    for (headers, status) in &cases {
        for method in ["GET", "HEAD"] {
            let resp = conditional(&server, method, "/cond/k", headers);
            assert_eq!(
                resp.status,
                *status,
                "{method} {headers:?}: {}",
                resp.text()
            );
            match status {
                200 if method == "GET" => assert_eq!(resp.body, b"conditional body"),
                304 => {
                    assert!(resp.body.is_empty(), "a 304 has no body");
                    assert_eq!(resp.header("etag"), Some(etag.as_str()));
                    assert!(resp.header("last-modified").is_some());
                }
                412 if method == "GET" => {
                    assert_eq!(resp.error_code().as_deref(), Some("PreconditionFailed"));
                }
                _ => {}
            }
        }
    }
    // Through the SDK as well.
    let err = client
        .get_object()
        .bucket("cond")
        .key("k")
        .if_none_match(&etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_status(&err), Some(304));
    let err = client
        .head_object()
        .bucket("cond")
        .key("k")
        .if_match(&other)
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_status(&err), Some(412));
    // A missing key is 404 whatever the conditions.
    let resp = conditional(
        &server,
        "GET",
        "/cond/missing",
        &[("if-match", etag.clone())],
    );
    assert_eq!(resp.status, 404);
}

#[tokio::test]
async fn issue_3_conditional_put() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("cond").send().await.unwrap();

    let first = client
        .put_object()
        .bucket("cond")
        .key("k")
        .body(ByteStream::from_static(b"first"))
        .if_none_match("*")
        .send()
        .await
        .unwrap()
        .e_tag
        .unwrap();
    let err = client
        .put_object()
        .bucket("cond")
        .key("k")
        .body(ByteStream::from_static(b"second"))
        .if_none_match("*")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("PreconditionFailed"));
    assert_eq!(sdk_status(&err), Some(412));
    let err = client
        .put_object()
        .bucket("cond")
        .key("k")
        .body(ByteStream::from_static(b"second"))
        .if_match("\"00000000000000000000000000000000\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("PreconditionFailed"));
    assert_eq!(get(&client, "cond", "k").await, b"first");
    client
        .put_object()
        .bucket("cond")
        .key("k")
        .body(ByteStream::from_static(b"second"))
        .if_match(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(get(&client, "cond", "k").await, b"second");
    // If-Match on a missing key: 404, nothing written.
    let err = client
        .put_object()
        .bucket("cond")
        .key("absent")
        .body(ByteStream::from_static(b"x"))
        .if_match(&first)
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("NoSuchKey"));
    let err = client
        .head_object()
        .bucket("cond")
        .key("absent")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_status(&err), Some(404));

    // CompleteMultipartUpload honours If-None-Match too.
    for (key, expect_ok) in [("k", false), ("fresh", true)] {
        let upload_id = client
            .create_multipart_upload()
            .bucket("cond")
            .key(key)
            .send()
            .await
            .unwrap()
            .upload_id
            .unwrap();
        let etag = client
            .upload_part()
            .bucket("cond")
            .key(key)
            .upload_id(&upload_id)
            .part_number(1)
            .body(ByteStream::from_static(b"part"))
            .send()
            .await
            .unwrap()
            .e_tag
            .unwrap();
        let result = client
            .complete_multipart_upload()
            .bucket("cond")
            .key(key)
            .upload_id(&upload_id)
            .if_none_match("*")
            .multipart_upload(
                aws_sdk_s3::types::CompletedMultipartUpload::builder()
                    .parts(
                        aws_sdk_s3::types::CompletedPart::builder()
                            .part_number(1)
                            .e_tag(etag)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await;
        match result {
            Ok(_) => assert!(expect_ok, "{key}"),
            Err(err) => {
                assert!(!expect_ok, "{key}: {err:?}");
                assert_eq!(sdk_error_code(&err).as_deref(), Some("PreconditionFailed"));
            }
        }
    }
    assert_eq!(get(&client, "cond", "k").await, b"second");
    assert_eq!(get(&client, "cond", "fresh").await, b"part");
}

#[tokio::test]
async fn issue_3_conditional_put_is_safe_under_concurrent_writers() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("race").send().await.unwrap();

    // Many writers create the same key with If-None-Match: *: one wins.
    for round in 0..5 {
        let key = format!("create-{round}");
        let attempts = (0..12).map(|writer| {
            let client = client.clone();
            let key = key.clone();
            async move {
                let body = test_data(64 * 1024 + writer, writer as u64);
                let result = client
                    .put_object()
                    .bucket("race")
                    .key(&key)
                    .body(ByteStream::from(body.clone()))
                    .if_none_match("*")
                    .send()
                    .await;
                (body, result)
            }
        });
        let results = futures::future::join_all(attempts).await;
        let mut winners = Vec::new();
        for (body, result) in results {
            match result {
                Ok(_) => winners.push(body),
                Err(err) => {
                    let code = sdk_error_code(&err);
                    assert!(
                        matches!(
                            code.as_deref(),
                            Some("PreconditionFailed" | "ConditionalRequestConflict")
                        ),
                        "{err:?}"
                    );
                }
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one creator wins");
        assert_eq!(get(&client, "race", &key).await, winners[0]);
    }

    // Read-modify-write with If-Match: every round, exactly one writer of
    // those holding the same ETag succeeds.
    let mut etag = put(&client, "race", "counter", b"0").await;
    for round in 1..=5u8 {
        let attempts = (0..8u8).map(|writer| {
            let client = client.clone();
            let etag = etag.clone();
            async move {
                let body = vec![round, writer];
                let result = client
                    .put_object()
                    .bucket("race")
                    .key("counter")
                    .body(ByteStream::from(body.clone()))
                    .if_match(&etag)
                    .send()
                    .await;
                (body, result)
            }
        });
        let results = futures::future::join_all(attempts).await;
        let winners: Vec<(Vec<u8>, String)> = results
            .into_iter()
            .filter_map(|(body, r)| r.ok().map(|o| (body, o.e_tag.unwrap())))
            .collect();
        assert_eq!(winners.len(), 1, "round {round}");
        assert_eq!(get(&client, "race", "counter").await, winners[0].0);
        assert_eq!(winners[0].1, format!("\"{}\"", md5_hex(&winners[0].0)));
        etag = winners[0].1.clone();
    }
}
