//! Multipart upload (issue 3, item 1) against the real binary with
//! `aws-sdk-s3`, on one drive and on an erasure-coded set.

mod common;

use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use common::get_bytes as get;
use common::{ServerOptions, TestServer, md5_hex, sdk_error_code, test_data, wait_until};

const MIB: usize = 1024 * 1024;

/// The ETag S3 gives a multipart object: the MD5 of the parts' binary MD5s, `-N`.
fn multipart_etag(parts: &[&[u8]]) -> String {
    use md5::Digest;
    let mut outer = md5::Md5::new();
    for part in parts {
        outer.update(md5::Md5::digest(part));
    }
    let digest = outer.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}-{}\"", parts.len())
}

async fn create(client: &Client, bucket: &str, key: &str) -> String {
    client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap()
}

async fn upload_part(
    client: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    number: i32,
    data: &[u8],
) -> String {
    client
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .part_number(number)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("upload part {number}: {e:?}"))
        .e_tag
        .unwrap()
}

fn completed(parts: &[(i32, &str)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts
                .iter()
                .map(|(n, etag)| {
                    CompletedPart::builder()
                        .part_number(*n)
                        .e_tag(*etag)
                        .build()
                })
                .collect(),
        ))
        .build()
}

/// Shard files under a drive's data directory (not the trash).
fn shard_files(drive: &Path) -> usize {
    let data = drive.join(".cairn.sys").join("data");
    let Ok(dirs) = std::fs::read_dir(data) else {
        return 0;
    };
    dirs.flatten()
        .map(|d| std::fs::read_dir(d.path()).map_or(0, |f| f.count()))
        .sum()
}

async fn round_trip(drives: usize) {
    let server = TestServer::start(ServerOptions::drives(drives));
    let client = server.client();
    client.create_bucket().bucket("mpu").send().await.unwrap();

    let part1 = test_data(5 * MIB, 1);
    let part2_old = test_data(5 * MIB + 17, 2);
    let part2 = test_data(6 * MIB + 3, 22);
    let part3 = test_data(MIB + 5, 3);
    let upload_id = create(&client, "mpu", "dir/big object").await;

    // Parts arrive out of order and in parallel; part 2 is uploaded twice
    // and the second one wins.
    let etag3 = upload_part(&client, "mpu", "dir/big object", &upload_id, 3, &part3).await;
    let old2 = upload_part(&client, "mpu", "dir/big object", &upload_id, 2, &part2_old).await;
    let (etag1, etag2) = tokio::join!(
        upload_part(&client, "mpu", "dir/big object", &upload_id, 1, &part1),
        upload_part(&client, "mpu", "dir/big object", &upload_id, 2, &part2),
    );
    assert_eq!(etag1, format!("\"{}\"", md5_hex(&part1)));
    assert_eq!(old2, format!("\"{}\"", md5_hex(&part2_old)));
    assert_eq!(etag2, format!("\"{}\"", md5_hex(&part2)));

    // Not visible before completion.
    let err = client
        .head_object()
        .bucket("mpu")
        .key("dir/big object")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 404);

    let listed = client
        .list_parts()
        .bucket("mpu")
        .key("dir/big object")
        .upload_id(&upload_id)
        .send()
        .await
        .unwrap();
    let parts: Vec<(i32, String, i64)> = listed
        .parts()
        .iter()
        .map(|p| {
            (
                p.part_number.unwrap(),
                p.e_tag.clone().unwrap(),
                p.size.unwrap(),
            )
        })
        .collect();
    assert_eq!(
        parts,
        [
            (1, etag1.clone(), part1.len() as i64),
            (2, etag2.clone(), part2.len() as i64),
            (3, etag3.clone(), part3.len() as i64),
        ]
    );

    let done = client
        .complete_multipart_upload()
        .bucket("mpu")
        .key("dir/big object")
        .upload_id(&upload_id)
        .multipart_upload(completed(&[(1, &etag1), (2, &etag2), (3, &etag3)]))
        .send()
        .await
        .unwrap();
    let expected_etag = multipart_etag(&[&part1, &part2, &part3]);
    assert_eq!(done.e_tag(), Some(expected_etag.as_str()));
    assert_eq!(done.key(), Some("dir/big object"));

    let whole: Vec<u8> = [part1.clone(), part2.clone(), part3.clone()].concat();
    assert_eq!(get(&client, "mpu", "dir/big object").await, whole);

    // HEAD and GET by part number answer that part and the part count.
    let head = client
        .head_object()
        .bucket("mpu")
        .key("dir/big object")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(whole.len() as i64));
    assert_eq!(head.e_tag(), Some(expected_etag.as_str()));
    let by_part = client
        .get_object()
        .bucket("mpu")
        .key("dir/big object")
        .part_number(2)
        .send()
        .await
        .unwrap();
    assert_eq!(by_part.parts_count(), Some(3));
    assert_eq!(by_part.content_length(), Some(part2.len() as i64));
    let start = part1.len();
    assert_eq!(
        by_part.content_range(),
        Some(format!("bytes {start}-{}/{}", start + part2.len() - 1, whole.len()).as_str())
    );
    assert_eq!(by_part.body.collect().await.unwrap().to_vec(), part2);
    let err = client
        .get_object()
        .bucket("mpu")
        .key("dir/big object")
        .part_number(4)
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("InvalidPartNumber"));

    // A range across the part boundaries.
    let from = part1.len() - 10;
    let to = part1.len() + part2.len() + 10;
    let ranged = client
        .get_object()
        .bucket("mpu")
        .key("dir/big object")
        .range(format!("bytes={from}-{to}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ranged.body.collect().await.unwrap().to_vec(),
        &whole[from..=to]
    );

    // Listed with its size and ETag; the upload is gone.
    let list = client.list_objects_v2().bucket("mpu").send().await.unwrap();
    let object = &list.contents()[0];
    assert_eq!(object.size(), Some(whole.len() as i64));
    assert_eq!(object.e_tag(), Some(expected_etag.as_str()));
    let uploads = client
        .list_multipart_uploads()
        .bucket("mpu")
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty());
    let err = client
        .list_parts()
        .bucket("mpu")
        .key("dir/big object")
        .upload_id(&upload_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("NoSuchUpload"));

    // The object survives a restart whole, and only its parts' files remain:
    // the replaced part 2 was removed.
    let mut server = server;
    server.restart();
    let client = server.client();
    assert_eq!(get(&client, "mpu", "dir/big object").await, whole);
    let files: usize = server.drive_paths.iter().map(|d| shard_files(d)).sum();
    assert_eq!(files, 3 * drives, "one file per part per drive");
}

#[tokio::test]
async fn issue_3_multipart_round_trip_one_drive() {
    Box::pin(round_trip(1)).await;
}

#[tokio::test]
async fn issue_3_multipart_round_trip_four_drives() {
    Box::pin(round_trip(4)).await;
}

#[tokio::test]
async fn issue_3_multipart_errors_change_nothing() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("mpu").send().await.unwrap();
    let small = test_data(MIB, 1);
    let big = test_data(5 * MIB, 2);
    let upload_id = create(&client, "mpu", "k").await;
    let e1 = upload_part(&client, "mpu", "k", &upload_id, 1, &small).await;
    let e2 = upload_part(&client, "mpu", "k", &upload_id, 2, &big).await;
    let e3 = upload_part(&client, "mpu", "k", &upload_id, 3, &small).await;

    // Part numbers outside 1..=10000.
    for number in [0, 10_001] {
        let err = client
            .upload_part()
            .bucket("mpu")
            .key("k")
            .upload_id(&upload_id)
            .part_number(number)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            sdk_error_code(&err).as_deref(),
            Some("InvalidArgument"),
            "part {number}"
        );
    }
    let e10000 = upload_part(&client, "mpu", "k", &upload_id, 10_000, b"last").await;

    let complete = |parts: Vec<(i32, String)>| {
        let client = client.clone();
        let upload_id = upload_id.clone();
        async move {
            let parts: Vec<(i32, &str)> = parts.iter().map(|(n, e)| (*n, e.as_str())).collect();
            client
                .complete_multipart_upload()
                .bucket("mpu")
                .key("k")
                .upload_id(upload_id)
                .multipart_upload(completed(&parts))
                .send()
                .await
        }
    };
    // A part under 5 MiB that is not the last.
    let err = complete(vec![(1, e1.clone()), (2, e2.clone())])
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("EntityTooSmall"));
    // A wrong ETag, and a part never uploaded.
    let err = complete(vec![(2, e1.clone())]).await.unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("InvalidPart"));
    let err = complete(vec![(2, e2.clone()), (4, e1.clone())])
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("InvalidPart"));
    // Out of order, and repeated.
    let err = complete(vec![(3, e3.clone()), (2, e2.clone())])
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("InvalidPartOrder"));
    let err = complete(vec![(2, e2.clone()), (2, e2.clone())])
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("InvalidPartOrder"));
    // No parts at all.
    let err = complete(Vec::new()).await.unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("MalformedXML"));

    // None of that touched the upload or created the object.
    let err = client
        .head_object()
        .bucket("mpu")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 404);
    let listed = client
        .list_parts()
        .bucket("mpu")
        .key("k")
        .upload_id(&upload_id)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.parts().len(), 4);

    // Parts 2 and 10000: 1, 3 and the gap are left out.
    let done = complete(vec![(2, e2.clone()), (10_000, e10000)])
        .await
        .unwrap();
    let expected = [big.clone(), b"last".to_vec()].concat();
    assert_eq!(
        done.e_tag(),
        Some(multipart_etag(&[&big, b"last"]).as_str())
    );
    assert_eq!(get(&client, "mpu", "k").await, expected);
    // Only the two used parts' files remain; the others went with completion.
    let files: usize = server.drive_paths.iter().map(|d| shard_files(d)).sum();
    assert_eq!(files, 2 * 4);

    // Unknown uploads, for every call that names one.
    let unknown = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let err = client
        .upload_part()
        .bucket("mpu")
        .key("k")
        .upload_id(&upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"late"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("NoSuchUpload"));
    for id in [unknown, "not-even-an-id", upload_id.as_str()] {
        let err = client
            .list_parts()
            .bucket("mpu")
            .key("k")
            .upload_id(id)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            sdk_error_code(&err).as_deref(),
            Some("NoSuchUpload"),
            "{id}"
        );
        let err = client
            .abort_multipart_upload()
            .bucket("mpu")
            .key("k")
            .upload_id(id)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            sdk_error_code(&err).as_deref(),
            Some("NoSuchUpload"),
            "{id}"
        );
    }
    // Completing the completed upload again answers as the first time
    // (issue 27: a client retrying after a timeout), and changes nothing.
    let again = complete(vec![(2, e2.clone())]).await.unwrap();
    assert_eq!(
        again.e_tag(),
        Some(multipart_etag(&[&big, b"last"]).as_str())
    );
    assert_eq!(get(&client, "mpu", "k").await, expected);
    // An upload of one key is unknown under another.
    let other = create(&client, "mpu", "other").await;
    let err = client
        .list_parts()
        .bucket("mpu")
        .key("k")
        .upload_id(&other)
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("NoSuchUpload"));
    // Missing bucket.
    let err = client
        .create_multipart_upload()
        .bucket("nope")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("NoSuchBucket"));
    assert_eq!(get(&client, "mpu", "k").await, expected);
}

#[tokio::test]
async fn issue_3_abort_frees_the_space() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("mpu").send().await.unwrap();
    let upload_id = create(&client, "mpu", "k").await;
    for n in 1..=3 {
        upload_part(
            &client,
            "mpu",
            "k",
            &upload_id,
            n,
            &test_data(2 * MIB, n as u64),
        )
        .await;
    }
    let files: usize = server.drive_paths.iter().map(|d| shard_files(d)).sum();
    assert_eq!(files, 3 * 4);
    client
        .abort_multipart_upload()
        .bucket("mpu")
        .key("k")
        .upload_id(&upload_id)
        .send()
        .await
        .unwrap();
    let files: usize = server.drive_paths.iter().map(|d| shard_files(d)).sum();
    assert_eq!(files, 0, "abort removes every part file");
    let trash: usize = server
        .drive_paths
        .iter()
        .map(|d| std::fs::read_dir(d.join(".cairn.sys").join("trash")).map_or(0, |e| e.count()))
        .sum();
    assert_eq!(trash, 0, "upload parts never go to the trash");
    let uploads = client
        .list_multipart_uploads()
        .bucket("mpu")
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty());
    // The bucket is empty again and can be deleted.
    client.delete_bucket().bucket("mpu").send().await.unwrap();
}

#[tokio::test]
async fn issue_3_deleting_a_bucket_removes_its_incomplete_uploads() {
    let server = TestServer::start(ServerOptions::drives(1));
    let client = server.client();
    client.create_bucket().bucket("mpu").send().await.unwrap();
    let upload_id = create(&client, "mpu", "k").await;
    upload_part(&client, "mpu", "k", &upload_id, 1, b"data").await;
    // S3 deletes a bucket whose only content is incomplete uploads (and
    // the uploads with it).
    client.delete_bucket().bucket("mpu").send().await.unwrap();
    client.create_bucket().bucket("mpu").send().await.unwrap();
    let uploads = client
        .list_multipart_uploads()
        .bucket("mpu")
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty());
    let files: usize = server.drive_paths.iter().map(|d| shard_files(d)).sum();
    assert_eq!(files, 0);
}

#[tokio::test]
async fn issue_3_list_uploads_and_parts_paginate() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("mpu").send().await.unwrap();
    let mut ids = Vec::new();
    for key in ["a/1", "a/2", "a/2", "b/x/1", "c"] {
        ids.push((key, create(&client, "mpu", key).await));
    }
    // Uploads list by key, then by upload ID (which sort by creation time).
    let all = client
        .list_multipart_uploads()
        .bucket("mpu")
        .send()
        .await
        .unwrap();
    let listed: Vec<(String, String)> = all
        .uploads()
        .iter()
        .map(|u| {
            (
                u.key().unwrap().to_owned(),
                u.upload_id().unwrap().to_owned(),
            )
        })
        .collect();
    let mut expected: Vec<(String, String)> = ids
        .iter()
        .map(|(k, id)| ((*k).to_owned(), id.clone()))
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
    assert!(all.uploads().iter().all(|u| u.initiated().is_some()));

    // Delimiter and prefix.
    let grouped = client
        .list_multipart_uploads()
        .bucket("mpu")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let prefixes: Vec<&str> = grouped
        .common_prefixes()
        .iter()
        .map(|p| p.prefix().unwrap())
        .collect();
    assert_eq!(prefixes, ["a/", "b/"]);
    let keys: Vec<&str> = grouped.uploads().iter().map(|u| u.key().unwrap()).collect();
    assert_eq!(keys, ["c"]);
    let under_b = client
        .list_multipart_uploads()
        .bucket("mpu")
        .prefix("b/")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = under_b.uploads().iter().map(|u| u.key().unwrap()).collect();
    assert_eq!(keys, ["b/x/1"]);

    // Pages of two, following the markers.
    let mut seen = Vec::new();
    let mut key_marker: Option<String> = None;
    let mut id_marker: Option<String> = None;
    for _ in 0..10 {
        let page = client
            .list_multipart_uploads()
            .bucket("mpu")
            .max_uploads(2)
            .set_key_marker(key_marker.clone())
            .set_upload_id_marker(id_marker.clone())
            .send()
            .await
            .unwrap();
        assert!(page.uploads().len() <= 2);
        for u in page.uploads() {
            seen.push((
                u.key().unwrap().to_owned(),
                u.upload_id().unwrap().to_owned(),
            ));
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        id_marker = page.next_upload_id_marker().map(str::to_owned);
    }
    assert_eq!(seen, expected);
    // A key marker alone skips every upload of that key.
    let after_a2 = client
        .list_multipart_uploads()
        .bucket("mpu")
        .key_marker("a/2")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = after_a2
        .uploads()
        .iter()
        .map(|u| u.key().unwrap())
        .collect();
    assert_eq!(keys, ["b/x/1", "c"]);

    // ListParts pages with the part-number marker.
    let upload_id = &ids[0].1;
    let mut etags = Vec::new();
    for n in 1..=5 {
        etags.push(upload_part(&client, "mpu", "a/1", upload_id, n, &[n as u8; 100]).await);
    }
    let mut numbers = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..10 {
        let page = client
            .list_parts()
            .bucket("mpu")
            .key("a/1")
            .upload_id(upload_id)
            .max_parts(2)
            .set_part_number_marker(marker.clone())
            .send()
            .await
            .unwrap();
        numbers.extend(page.parts().iter().map(|p| p.part_number.unwrap()));
        if page.is_truncated() != Some(true) {
            break;
        }
        marker = page.next_part_number_marker().map(str::to_owned);
    }
    assert_eq!(numbers, [1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn issue_3_upload_part_copy_with_ranges() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("src").send().await.unwrap();
    client.create_bucket().bucket("dst").send().await.unwrap();
    let source = test_data(12 * MIB + 7, 9);
    client
        .put_object()
        .bucket("src")
        .key("source object")
        .body(ByteStream::from(source.clone()))
        .send()
        .await
        .unwrap();
    let upload_id = create(&client, "dst", "assembled").await;
    // Part 1: a range of the source; part 2: the whole source; part 3: uploaded.
    let copy1 = client
        .upload_part_copy()
        .bucket("dst")
        .key("assembled")
        .upload_id(&upload_id)
        .part_number(1)
        .copy_source("src/source%20object")
        .copy_source_range(format!("bytes={}-{}", MIB, 7 * MIB - 1))
        .send()
        .await
        .unwrap();
    let etag1 = copy1
        .copy_part_result()
        .unwrap()
        .e_tag()
        .unwrap()
        .to_owned();
    let range1 = &source[MIB..7 * MIB];
    assert_eq!(etag1, format!("\"{}\"", md5_hex(range1)));
    let copy2 = client
        .upload_part_copy()
        .bucket("dst")
        .key("assembled")
        .upload_id(&upload_id)
        .part_number(2)
        .copy_source("src/source%20object")
        .send()
        .await
        .unwrap();
    let etag2 = copy2
        .copy_part_result()
        .unwrap()
        .e_tag()
        .unwrap()
        .to_owned();
    let tail = b"tail".to_vec();
    let etag3 = upload_part(&client, "dst", "assembled", &upload_id, 3, &tail).await;

    // Bad ranges and missing sources.
    for range in [
        format!("bytes=0-{}", source.len()),
        "bytes=5-2".to_owned(),
        "bytes=0-".to_owned(),
        "items=0-1".to_owned(),
    ] {
        let err = client
            .upload_part_copy()
            .bucket("dst")
            .key("assembled")
            .upload_id(&upload_id)
            .part_number(4)
            .copy_source("src/source%20object")
            .copy_source_range(&range)
            .send()
            .await
            .unwrap_err();
        let code = sdk_error_code(&err);
        // Past the source's end: `InvalidRange`, as MinIO and S3 test
        // suites expect (issue 27); malformed ranges: `InvalidArgument`.
        if range == format!("bytes=0-{}", source.len()) {
            assert_eq!(code.as_deref(), Some("InvalidRange"), "{range}");
        } else {
            assert!(
                matches!(code.as_deref(), Some("InvalidRange" | "InvalidArgument")),
                "{range}: {code:?}"
            );
        }
    }
    let err = client
        .upload_part_copy()
        .bucket("dst")
        .key("assembled")
        .upload_id(&upload_id)
        .part_number(4)
        .copy_source("src/missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("NoSuchKey"));
    let err = client
        .upload_part_copy()
        .bucket("dst")
        .key("assembled")
        .upload_id(&upload_id)
        .part_number(4)
        .copy_source("src/source%20object")
        .copy_source_if_match("\"0000\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("PreconditionFailed"));

    let done = client
        .complete_multipart_upload()
        .bucket("dst")
        .key("assembled")
        .upload_id(&upload_id)
        .multipart_upload(completed(&[(1, &etag1), (2, &etag2), (3, &etag3)]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        done.e_tag(),
        Some(multipart_etag(&[range1, &source, &tail]).as_str())
    );
    let expected = [range1.to_vec(), source.clone(), tail].concat();
    assert_eq!(get(&client, "dst", "assembled").await, expected);
}

#[tokio::test]
async fn issue_3_stale_uploads_are_removed() {
    let server = TestServer::start(
        ServerOptions::drives(4)
            .env("CAIRN_API_STALE_UPLOADS_EXPIRY", "2s")
            .env("CAIRN_API_STALE_UPLOADS_CLEANUP_INTERVAL", "1s"),
    );
    let client = server.client();
    client.create_bucket().bucket("mpu").send().await.unwrap();
    let stale = create(&client, "mpu", "stale").await;
    upload_part(&client, "mpu", "stale", &stale, 1, &test_data(MIB, 1)).await;
    assert_eq!(
        server
            .drive_paths
            .iter()
            .map(|d| shard_files(d))
            .sum::<usize>(),
        4
    );
    let removed = wait_until(Duration::from_secs(20), || {
        server
            .drive_paths
            .iter()
            .map(|d| shard_files(d))
            .sum::<usize>()
            == 0
    });
    assert!(removed, "the stale upload's parts were not removed");
    let err = client
        .list_parts()
        .bucket("mpu")
        .key("stale")
        .upload_id(&stale)
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("NoSuchUpload"));
    assert!(
        client
            .list_multipart_uploads()
            .bucket("mpu")
            .send()
            .await
            .unwrap()
            .uploads()
            .is_empty()
    );
}

/// A CompleteMultipartUpload sent again (a client retrying after a
/// timeout) succeeds with the same ETag while the object it made is still
/// there, as in S3; once the object is replaced or deleted, `NoSuchUpload`
/// (issue 27).
#[tokio::test]
async fn issue_27_a_repeated_complete_succeeds_while_its_object_stands() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("mpr").send().await.unwrap();
    let data = test_data(300_000, 27);
    let upload_id = create(&client, "mpr", "retried").await;
    let etag = upload_part(&client, "mpr", "retried", &upload_id, 1, &data).await;
    let complete = || {
        client
            .complete_multipart_upload()
            .bucket("mpr")
            .key("retried")
            .upload_id(&upload_id)
            .multipart_upload(completed(&[(1, &etag)]))
            .send()
    };
    let first = complete().await.unwrap();
    let again = complete().await.unwrap();
    assert_eq!(first.e_tag(), again.e_tag());
    assert_eq!(first.e_tag(), Some(multipart_etag(&[&data]).as_str()));
    // The object is unchanged by the second call.
    let got = client
        .get_object()
        .bucket("mpr")
        .key("retried")
        .send()
        .await
        .unwrap();
    assert_eq!(got.e_tag(), first.e_tag());
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        &data[..]
    );
    // A copy of it is not the upload's object.
    client
        .copy_object()
        .bucket("mpr")
        .key("copy")
        .copy_source("mpr/retried")
        .send()
        .await
        .unwrap();
    let err = client
        .complete_multipart_upload()
        .bucket("mpr")
        .key("copy")
        .upload_id(&upload_id)
        .multipart_upload(completed(&[(1, &etag)]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("NoSuchUpload"));
    // Replaced by another PUT: the upload is gone.
    client
        .put_object()
        .bucket("mpr")
        .key("retried")
        .body(ByteStream::from_static(b"replaced"))
        .send()
        .await
        .unwrap();
    let err = complete().await.unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("NoSuchUpload"));
}
