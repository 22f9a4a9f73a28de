//! The core S3 object path (issue 2, item 6) against the real binary, with
//! the `aws-sdk-s3` client, on one drive and on an erasure-coded set.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration, EncodingType};
use common::get_bytes as get;
use common::{ServerOptions, TestServer, md5_hex, sdk_error_code, sdk_status, test_data};

async fn put(client: &aws_sdk_s3::Client, bucket: &str, key: &str, data: Vec<u8>) -> String {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(data))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"))
        .e_tag
        .unwrap()
}

#[tokio::test]
async fn issue_2_bucket_lifecycle() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("alpha").send().await.unwrap();
    client
        .create_bucket()
        .bucket("beta.bucket-2")
        .send()
        .await
        .unwrap();

    let err = client
        .create_bucket()
        .bucket("alpha")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        sdk_error_code(&err).as_deref(),
        Some("BucketAlreadyOwnedByYou")
    );

    client.head_bucket().bucket("alpha").send().await.unwrap();
    let err = client
        .head_bucket()
        .bucket("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_status(&err), Some(404));

    let names: Vec<String> = client
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .map(|b| b.name().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["alpha", "beta.bucket-2"]);

    let location = client
        .get_bucket_location()
        .bucket("alpha")
        .send()
        .await
        .unwrap();
    // us-east-1 is an empty constraint.
    assert_eq!(
        location.location_constraint().map_or("", |c| c.as_str()),
        ""
    );

    let err = client
        .create_bucket()
        .bucket("elsewhere")
        .create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::EuWest2)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        sdk_error_code(&err).as_deref(),
        Some("IllegalLocationConstraintException")
    );

    put(&client, "alpha", "k", b"x".to_vec()).await;
    let err = client
        .delete_bucket()
        .bucket("alpha")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("BucketNotEmpty"));
    client
        .delete_object()
        .bucket("alpha")
        .key("k")
        .send()
        .await
        .unwrap();
    client.delete_bucket().bucket("alpha").send().await.unwrap();
    let err = client
        .head_bucket()
        .bucket("alpha")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_status(&err), Some(404));
    let err = client
        .delete_bucket()
        .bucket("alpha")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("NoSuchBucket"));
    // The name is free again.
    client.create_bucket().bucket("alpha").send().await.unwrap();
}

/// Sizes around every boundary of the data path: empty, inline, the inline
/// threshold, one block, several blocks.
const SIZES: [usize; 10] = [
    0,
    1,
    1000,
    128 * 1024,
    256 * 1024,
    256 * 1024 + 1,
    1 << 20,
    (1 << 20) + 1,
    3 * (1 << 20) - 7,
    5 * (1 << 20) + 123,
];

async fn round_trip_sizes(drives: usize) {
    let server = TestServer::start(ServerOptions::drives(drives));
    let client = server.client();
    client.create_bucket().bucket("sizes").send().await.unwrap();
    for (i, size) in SIZES.iter().enumerate() {
        let data = test_data(*size, i as u64);
        let key = format!("obj-{size}");
        let etag = put(&client, "sizes", &key, data.clone()).await;
        assert_eq!(
            etag,
            format!("\"{}\"", md5_hex(&data)),
            "ETag is the MD5 of the body"
        );
        assert_eq!(get(&client, "sizes", &key).await, data, "size {size}");
        let head = client
            .head_object()
            .bucket("sizes")
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_length(), Some(*size as i64));
        assert_eq!(head.e_tag(), Some(etag.as_str()));
    }
    // Overwrite with another size, then delete.
    let data = test_data(2_000_000, 99);
    put(&client, "sizes", "obj-0", data.clone()).await;
    assert_eq!(get(&client, "sizes", "obj-0").await, data);
    put(&client, "sizes", "obj-0", b"small".to_vec()).await;
    assert_eq!(get(&client, "sizes", "obj-0").await, b"small");
    client
        .delete_object()
        .bucket("sizes")
        .key("obj-0")
        .send()
        .await
        .unwrap();
    let err = client
        .get_object()
        .bucket("sizes")
        .key("obj-0")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("NoSuchKey"));
    // Deleting a missing key succeeds, as in S3.
    client
        .delete_object()
        .bucket("sizes")
        .key("obj-0")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn issue_2_round_trip_one_drive() {
    round_trip_sizes(1).await;
}

#[tokio::test]
async fn issue_2_round_trip_four_drives() {
    round_trip_sizes(4).await;
}

#[tokio::test]
async fn issue_2_round_trip_six_drives_three_parity() {
    round_trip_sizes(6).await;
}

#[tokio::test]
async fn issue_2_ranges() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client
        .create_bucket()
        .bucket("ranges")
        .send()
        .await
        .unwrap();
    let big = test_data(3 * (1 << 20) + 5, 7);
    let small = test_data(5000, 8);
    put(&client, "ranges", "big", big.clone()).await;
    put(&client, "ranges", "small", small.clone()).await;
    let mib = 1 << 20;
    let cases: Vec<(&str, usize, usize)> = vec![
        ("bytes=0-0", 0, 1),
        ("bytes=0-99", 0, 100),
        ("bytes=100-", 100, big.len()),
        ("bytes=-10", big.len() - 10, big.len()),
        ("bytes=-99999999", 0, big.len()),
        // Across block boundaries.
        ("bytes=1048570-1048580", mib - 6, mib + 5),
        ("bytes=1048576-2097152", mib, 2 * mib + 1),
        ("bytes=5-99999999", 5, big.len()),
    ];
    for (range, start, end) in cases {
        let out = client
            .get_object()
            .bucket("ranges")
            .key("big")
            .range(range)
            .send()
            .await
            .unwrap();
        assert_eq!(out.content_length(), Some((end - start) as i64), "{range}");
        assert_eq!(
            out.content_range(),
            Some(format!("bytes {start}-{}/{}", end - 1, big.len()).as_str())
        );
        let body = out.body.collect().await.unwrap().to_vec();
        assert_eq!(body, big[start..end], "{range}");
    }
    let out = client
        .get_object()
        .bucket("ranges")
        .key("small")
        .range("bytes=4000-")
        .send()
        .await
        .unwrap();
    assert_eq!(out.body.collect().await.unwrap().to_vec(), small[4000..]);

    for range in ["bytes=5000-", "bytes=99999-100000"] {
        let err = client
            .get_object()
            .bucket("ranges")
            .key("small")
            .range(range)
            .send()
            .await
            .unwrap_err();
        assert_eq!(sdk_status(&err), Some(416), "{range}");
        assert_eq!(sdk_error_code(&err).as_deref(), Some("InvalidRange"));
    }
    put(&client, "ranges", "empty", Vec::new()).await;
    let err = client
        .get_object()
        .bucket("ranges")
        .key("empty")
        .range("bytes=0-0")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_status(&err), Some(416));
}

#[tokio::test]
async fn issue_2_metadata_and_standard_headers_round_trip() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("meta").send().await.unwrap();
    let expires = aws_sdk_s3::primitives::DateTime::from_secs(1_900_000_000);
    for (key, size) in [("inline", 10usize), ("files", 2 << 20)] {
        client
            .put_object()
            .bucket("meta")
            .key(key)
            .body(ByteStream::from(test_data(size, 1)))
            .content_type("image/png")
            .content_encoding("gzip")
            .content_disposition("attachment; filename=\"a b.png\"")
            .cache_control("max-age=3600")
            .content_language("de")
            .expires(expires)
            .metadata("color", "blue")
            .metadata("Mixed-Case", "Value With Spaces")
            .send()
            .await
            .unwrap();
        let head = client
            .head_object()
            .bucket("meta")
            .key(key)
            .send()
            .await
            .unwrap();
        {
            assert_eq!(head.content_type(), Some("image/png"));
            assert_eq!(head.content_encoding(), Some("gzip"));
            assert_eq!(
                head.content_disposition(),
                Some("attachment; filename=\"a b.png\"")
            );
            assert_eq!(head.cache_control(), Some("max-age=3600"));
            assert_eq!(head.content_language(), Some("de"));
            assert_eq!(head.expires_string(), Some("Sun, 17 Mar 2030 17:46:40 GMT"));
            let meta = head.metadata().unwrap();
            assert_eq!(meta.get("color").map(String::as_str), Some("blue"));
            assert_eq!(
                meta.get("mixed-case").map(String::as_str),
                Some("Value With Spaces")
            );
            assert_eq!(meta.len(), 2);
        }
        let got = client
            .get_object()
            .bucket("meta")
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(got.content_type(), Some("image/png"));
        assert_eq!(
            got.metadata().unwrap().get("color").map(String::as_str),
            Some("blue")
        );
    }
    // Without a Content-Type (the SDK always sends one), S3 reports binary/octet-stream.
    let signer = common::sigv4::Signer::new(common::ACCESS_KEY, common::SECRET_KEY);
    let mut headers = vec![
        ("host", server.addr.clone()),
        ("x-amz-date", signer.amz_date()),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD".to_owned()),
    ];
    let (auth, _) = signer.authorization("PUT", "/meta/plain", &[], &headers, "UNSIGNED-PAYLOAD");
    headers.push(("authorization", auth));
    let resp = common::raw_request(&server.addr, "PUT", "/meta/plain", &headers, b"x").unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let head = client
        .head_object()
        .bucket("meta")
        .key("plain")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("binary/octet-stream"));
}

async fn list_v2_all(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    page: i32,
) -> (Vec<String>, Vec<String>, usize) {
    let mut keys = Vec::new();
    let mut prefixes = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages < 1000, "listing does not end");
        let mut req = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .max_keys(page);
        if let Some(d) = delimiter {
            req = req.delimiter(d);
        }
        if let Some(t) = &token {
            req = req.continuation_token(t);
        }
        let out = req.send().await.unwrap();
        let returned = out.contents().len() + out.common_prefixes().len();
        assert!(returned <= page as usize);
        assert_eq!(out.key_count(), Some(returned as i32));
        keys.extend(out.contents().iter().map(|o| o.key().unwrap().to_owned()));
        prefixes.extend(
            out.common_prefixes()
                .iter()
                .map(|p| p.prefix().unwrap().to_owned()),
        );
        if out.is_truncated() == Some(true) {
            token = out.next_continuation_token().map(str::to_owned);
            assert!(token.is_some());
        } else {
            return (keys, prefixes, pages);
        }
    }
}

#[tokio::test]
async fn issue_2_listing() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("list").send().await.unwrap();
    let mut all: Vec<String> = Vec::new();
    for dir in ["a", "b", "c"] {
        for i in 0..40 {
            all.push(format!("{dir}/{i:03}.txt"));
        }
    }
    all.extend(
        [
            "a.txt",
            "top",
            "z/deep/er/key",
            "sp ace/x",
            "uni/ключ",
            "q+a&b=c",
        ]
        .map(String::from),
    );
    let mut tasks = Vec::new();
    for key in all.clone() {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            put(&client, "list", &key, key.as_bytes().to_vec()).await
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    all.sort();

    // Flat listing, paged.
    let (keys, prefixes, pages) = list_v2_all(&client, "list", "", None, 7).await;
    assert_eq!(keys, all);
    assert!(prefixes.is_empty());
    assert_eq!(pages, all.len().div_ceil(7));
    let (keys, _, _) = list_v2_all(&client, "list", "", None, 1000).await;
    assert_eq!(keys, all);

    // Delimiter: common prefixes, paged through prefixes and keys alike.
    let (keys, prefixes, _) = list_v2_all(&client, "list", "", Some("/"), 2).await;
    assert_eq!(keys, ["a.txt", "q+a&b=c", "top"]);
    assert_eq!(prefixes, ["a/", "b/", "c/", "sp ace/", "uni/", "z/"]);
    let (keys, prefixes, _) = list_v2_all(&client, "list", "z/", Some("/"), 1000).await;
    assert!(keys.is_empty());
    assert_eq!(prefixes, ["z/deep/"]);
    let (keys, _, _) = list_v2_all(&client, "list", "b/", Some("/"), 1000).await;
    assert_eq!(keys.len(), 40);

    // start-after.
    let out = client
        .list_objects_v2()
        .bucket("list")
        .start_after("b/038.txt")
        .max_keys(3)
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = out.contents().iter().map(|o| o.key().unwrap()).collect();
    assert_eq!(keys, ["b/039.txt", "c/000.txt", "c/001.txt"]);
    assert_eq!(out.start_after(), Some("b/038.txt"));

    // Objects carry size, ETag and time.
    let out = client
        .list_objects_v2()
        .bucket("list")
        .prefix("top")
        .send()
        .await
        .unwrap();
    let obj = &out.contents()[0];
    assert_eq!(obj.size(), Some(3));
    assert_eq!(
        obj.e_tag(),
        Some(format!("\"{}\"", md5_hex(b"top")).as_str())
    );
    assert!(obj.last_modified().is_some());

    // max-keys 0.
    let out = client
        .list_objects_v2()
        .bucket("list")
        .max_keys(0)
        .send()
        .await
        .unwrap();
    assert!(out.contents().is_empty());
    assert_eq!(out.is_truncated(), Some(false));

    // encoding-type=url: the SDK decodes what the server encoded.
    let out = client
        .list_objects_v2()
        .bucket("list")
        .prefix("sp ace/")
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.contents()[0].key(),
        Some("sp%20ace/x"),
        "raw encoded key"
    );
    let raw = common::raw_request(
        &server.addr,
        "GET",
        "/list?list-type=2&prefix=uni/&encoding-type=url",
        &common::signed_headers(
            &server.addr,
            "GET",
            "/list",
            &[
                ("encoding-type", "url"),
                ("list-type", "2"),
                ("prefix", "uni/"),
            ],
            &common::sigv4::sha256_hex(b""),
            &[],
        ),
        b"",
    )
    .unwrap();
    assert_eq!(raw.status, 200, "{}", raw.text());
    assert!(
        raw.text()
            .contains("<Key>uni/%D0%BA%D0%BB%D1%8E%D1%87</Key>"),
        "{}",
        raw.text()
    );

    // ListObjects v1 with marker and delimiter.
    let mut marker: Option<String> = None;
    let mut seen_keys = Vec::new();
    let mut seen_prefixes = Vec::new();
    for _ in 0..100 {
        let mut req = client
            .list_objects()
            .bucket("list")
            .delimiter("/")
            .max_keys(2);
        if let Some(m) = &marker {
            req = req.marker(m);
        }
        let out = req.send().await.unwrap();
        seen_keys.extend(out.contents().iter().map(|o| o.key().unwrap().to_owned()));
        seen_prefixes.extend(
            out.common_prefixes()
                .iter()
                .map(|p| p.prefix().unwrap().to_owned()),
        );
        if out.is_truncated() != Some(true) {
            break;
        }
        marker = out.next_marker().map(str::to_owned);
        assert!(marker.is_some(), "NextMarker with a delimiter");
    }
    assert_eq!(seen_keys, ["a.txt", "q+a&b=c", "top"]);
    assert_eq!(seen_prefixes, ["a/", "b/", "c/", "sp ace/", "uni/", "z/"]);
    let out = client
        .list_objects()
        .bucket("list")
        .marker("c/038.txt")
        .prefix("c/")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = out.contents().iter().map(|o| o.key().unwrap()).collect();
    assert_eq!(keys, ["c/039.txt"]);

    // A bad continuation token and negative max-keys are refused.
    let err = client
        .list_objects_v2()
        .bucket("list")
        .continuation_token("garbage")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("InvalidArgument"));
    let err = client
        .list_objects_v2()
        .bucket("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("NoSuchBucket"));
}

#[tokio::test]
async fn issue_2_keys_that_look_like_paths_or_internal_files() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("odd").send().await.unwrap();
    let keys = [
        "..",
        "../../etc/passwd",
        "a/../b",
        "a//b",
        "//leading",
        "trailing/",
        ".cairn.sys/format.json",
        ".cairn.sys/meta.redb",
        "a",
        "a/xl.meta",
        "with space and ünïcödé ✓",
        "percent%2Fencoded",
        "question?mark#hash",
        &"k".repeat(1024),
    ];
    for (i, key) in keys.iter().enumerate() {
        let data = test_data(100 + i, i as u64);
        put(&client, "odd", key, data.clone()).await;
        assert_eq!(get(&client, "odd", key).await, data, "{key}");
    }
    let listed: Vec<String> = client
        .list_objects_v2()
        .bucket("odd")
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .map(|o| o.key().unwrap().to_owned())
        .collect();
    let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected);
    // Nothing escaped the drives: no file outside them was created.
    for path in ["etc/passwd", "b"] {
        assert!(!server.dir.path().join(path).exists());
    }
}
