//! Drives written by the previous release are served by this one (issue 26):
//! their objects, metadata, tags, multipart objects and CORS rules read back
//! as they were written, and they take new writes.
//!
//! The drives are a fixture, `tests/fixtures/release-7993741.tar.gz`: four
//! drives that commit 7993741's binary (the release before issue 26)
//! wrote with [`populate`] and stopped cleanly. To write it anew, build that
//! commit and run
//! `CAIRN_WRITE_FIXTURE=/path/to/its/cairn cargo test --release --test upgrade`.

mod common;

use std::path::Path;
use std::process::Command;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Tag, Tagging};
use common::{ServerOptions, TempDir, TestServer, raw_request};

const FIXTURE: &str = "tests/fixtures/release-7993741.tar.gz";
const BUCKET: &str = "legacy";
const EMPTY: &str = "empty-bucket";
const ORIGIN: &str = "https://old.example";

/// Deterministic bytes that compress well (the fixture is committed):
/// a repeating pattern that differs by seed.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i % 4093) as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// The single-part objects the fixture holds: key, length, seed. The first
/// and third are small enough to be stored inline, the second is not.
const OBJECTS: [(&str, usize, u8); 3] = [
    ("small/inline.txt", 3000, 1),
    ("large/file.bin", (3 << 20) + 123, 2),
    ("deep/nested/key with spaces/\u{fc}.bin", 200 << 10, 3),
];
const MULTIPART: &str = "multi/upload.bin";
const PARTS: [(usize, u8); 2] = [(5 << 20, 4), ((1 << 20) + 7, 5)];

/// What the previous release is given to store.
async fn populate(client: &Client) {
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    client.create_bucket().bucket(EMPTY).send().await.unwrap();
    for (key, len, seed) in OBJECTS {
        client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .content_type("text/plain")
            .metadata("color", "blue")
            .tagging("kind=fixture")
            .body(ByteStream::from(pattern(len, seed)))
            .send()
            .await
            .unwrap();
    }
    let upload = client
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(MULTIPART)
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap();
    let mut done = Vec::new();
    for (number, (len, seed)) in PARTS.into_iter().enumerate() {
        let number = number as i32 + 1;
        let part = client
            .upload_part()
            .bucket(BUCKET)
            .key(MULTIPART)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(pattern(len, seed)))
            .send()
            .await
            .unwrap();
        done.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(part.e_tag().unwrap())
                .build(),
        );
    }
    client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(MULTIPART)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
    common::allow_origin(client, BUCKET, ORIGIN).await;
}

async fn get(client: &Client, key: &str) -> Vec<u8> {
    common::get_bytes(client, BUCKET, key).await
}

/// What this release must find on the previous release's drives.
async fn check(server: &TestServer, client: &Client) {
    let buckets = client.list_buckets().send().await.unwrap();
    let names: Vec<&str> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, [EMPTY, BUCKET]);
    let keys = listed_keys(client).await;
    assert_eq!(keys.len(), 4, "{keys:?}");
    for (key, len, seed) in OBJECTS {
        assert!(get(client, key).await == pattern(len, seed), "{key}");
        let head = client
            .head_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_type(), Some("text/plain"), "{key}");
        assert_eq!(
            head.metadata()
                .and_then(|m| m.get("color"))
                .map(String::as_str),
            Some("blue"),
            "{key}"
        );
        let tags = client
            .get_object_tagging()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(tags.tag_set().len(), 1, "{key}");
        assert_eq!(tags.tag_set()[0].key(), "kind");
    }
    let whole: Vec<u8> = PARTS
        .iter()
        .flat_map(|(len, seed)| pattern(*len, *seed))
        .collect();
    assert!(get(client, MULTIPART).await == whole, "{MULTIPART}");
    let head = client
        .head_object()
        .bucket(BUCKET)
        .key(MULTIPART)
        .send()
        .await
        .unwrap();
    assert!(
        head.e_tag().unwrap().ends_with("-2\""),
        "{:?}",
        head.e_tag()
    );
    // The CORS rules the previous release kept: in force, and readable.
    let cors = client
        .get_bucket_cors()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(cors.cors_rules()[0].allowed_origins(), [ORIGIN]);
    let preflight = raw_request(
        &server.addr,
        "OPTIONS",
        &format!("/{BUCKET}/small/inline.txt"),
        &[
            ("origin", ORIGIN.to_owned()),
            ("access-control-request-method", "GET".to_owned()),
        ],
        b"",
    )
    .unwrap();
    assert_eq!(preflight.status, 200);
    // New writes, changes and deletes.
    common::put_bytes(
        client,
        BUCKET,
        "new/after-upgrade",
        b"written by this release",
    )
    .await;
    assert_eq!(
        get(client, "new/after-upgrade").await,
        b"written by this release"
    );
    client
        .put_object_tagging()
        .bucket(BUCKET)
        .key("large/file.bin")
        .tagging(
            Tagging::builder()
                .tag_set(
                    Tag::builder()
                        .key("after")
                        .value("upgrade")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    client
        .delete_object()
        .bucket(BUCKET)
        .key("small/inline.txt")
        .send()
        .await
        .unwrap();
    client.delete_bucket().bucket(EMPTY).send().await.unwrap();
    let keys = listed_keys(client).await;
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(keys.iter().any(|k| k == "new/after-upgrade"));
    assert!(!keys.iter().any(|k| k == "small/inline.txt"));
}

/// The keys of the first page of [`BUCKET`].
async fn listed_keys(client: &Client) -> Vec<String> {
    let listed = client
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

fn tar(args: &[&str]) {
    let status = Command::new("tar").args(args).status().expect("tar");
    assert!(status.success(), "tar {args:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_26_drives_written_by_the_previous_release_are_served() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    if let Ok(binary) = std::env::var("CAIRN_WRITE_FIXTURE") {
        let mut options = ServerOptions::drives(4);
        options.binary = Some(binary);
        let mut old = tokio::task::block_in_place(|| TestServer::start(options));
        populate(&old.client()).await;
        tokio::task::block_in_place(|| old.stop());
        std::fs::create_dir_all(fixture.parent().unwrap()).unwrap();
        let dir = old.dir.path().display().to_string();
        // Sparse: the metadata journals are preallocated.
        tar(&[
            "--sparse",
            "-czf",
            &fixture.display().to_string(),
            "-C",
            &dir,
            "d1",
            "d2",
            "d3",
            "d4",
        ]);
    }
    let dir = TempDir::new("upgrade");
    let into = dir.path().display().to_string();
    tar(&["xzf", &fixture.display().to_string(), "-C", &into]);
    let server =
        tokio::task::block_in_place(|| TestServer::start_in(dir, ServerOptions::drives(4), |_| {}));
    check(&server, &server.client()).await;
}
