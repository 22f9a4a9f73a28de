//! Consistency under concurrency (issue 3, item 6): strong read-after-write
//! and list-after-write; concurrent PUTs to one key leave one complete
//! version that every reader sees whole; a GET that started before an
//! overwrite (or a delete) returns the old object whole.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use common::{ServerOptions, TestServer, md5_hex, test_data};

const MIB: usize = 1024 * 1024;

async fn put(client: &Client, key: &str, data: Vec<u8>) -> String {
    client
        .put_object()
        .bucket("cons")
        .key(key)
        .body(ByteStream::from(data))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"))
        .e_tag
        .unwrap()
}

async fn get(client: &Client, key: &str) -> Option<(String, Vec<u8>)> {
    match client.get_object().bucket("cons").key(key).send().await {
        Ok(out) => {
            let etag = out.e_tag.clone().unwrap();
            Some((etag, out.body.collect().await.unwrap().to_vec()))
        }
        Err(err) if err.raw_response().map(|r| r.status().as_u16()) == Some(404) => None,
        Err(err) => panic!("get {key}: {err:?}"),
    }
}

async fn keys(client: &Client, prefix: &str) -> Vec<String> {
    client
        .list_objects_v2()
        .bucket("cons")
        .prefix(prefix)
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .map(|o| o.key().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn issue_3_read_and_list_after_write() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("cons").send().await.unwrap();
    let mut expected: Vec<String> = Vec::new();
    for i in 0..60u64 {
        let key = format!("raw/{i:03}");
        // Sizes on both sides of the inline threshold and of a block.
        let size = [0, 1, 100, 200_000, MIB + 1][i as usize % 5];
        let first = test_data(size, i);
        let etag = put(&client, &key, first.clone()).await;
        let (got_etag, body) = get(&client, &key).await.expect("read after write");
        assert_eq!((got_etag, body), (etag, first));
        expected.push(key.clone());
        assert_eq!(keys(&client, "raw/").await, expected, "list after write");

        // Overwrite: the next read sees the new bytes.
        let second = test_data(size + 7, i + 1000);
        let etag = put(&client, &key, second.clone()).await;
        assert_eq!(get(&client, &key).await, Some((etag, second)));

        // Every third key is deleted at once: gone from reads and lists.
        if i % 3 == 0 {
            client
                .delete_object()
                .bucket("cons")
                .key(&key)
                .send()
                .await
                .unwrap();
            assert_eq!(get(&client, &key).await, None, "read after delete");
            expected.pop();
            assert_eq!(keys(&client, "raw/").await, expected, "list after delete");
        }
    }
}

#[tokio::test]
async fn issue_3_concurrent_puts_leave_one_whole_version() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("cons").send().await.unwrap();
    // Bodies of several blocks, each identified by its MD5.
    let bodies: Vec<Vec<u8>> = (0..8)
        .map(|i| test_data(3 * MIB + i * 1000, i as u64))
        .collect();
    let by_etag: HashMap<String, usize> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| (format!("\"{}\"", md5_hex(b)), i))
        .collect();
    put(&client, "contended", bodies[0].clone()).await;

    for round in 0..3 {
        let writers = bodies.iter().map(|body| {
            let client = client.clone();
            let body = body.clone();
            async move { put(&client, "contended", body).await }
        });
        // Readers run while the writers do: every read is one body, whole.
        let readers = (0..4).map(|_| {
            let client = client.clone();
            let by_etag = &by_etag;
            let bodies = &bodies;
            async move {
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut reads = 0;
                while reads < 6 && Instant::now() < deadline {
                    let (etag, body) = get(&client, "contended").await.expect("never missing");
                    let idx = by_etag
                        .get(&etag)
                        .unwrap_or_else(|| panic!("an ETag no writer wrote: {etag}"));
                    assert!(body == bodies[*idx], "round {round}: a torn read");
                    reads += 1;
                }
            }
        });
        let (etags, _) = tokio::join!(
            futures::future::join_all(writers),
            futures::future::join_all(readers)
        );
        assert_eq!(etags.len(), bodies.len());
        // Afterwards every reader agrees on one of them.
        let (etag, body) = get(&client, "contended").await.unwrap();
        let idx = by_etag[&etag];
        assert!(body == bodies[idx]);
        for _ in 0..3 {
            assert_eq!(get(&client, "contended").await.unwrap().0, etag);
        }
    }
    // And it is the same version after a restart, read from the drives.
    let (etag, _) = get(&client, "contended").await.unwrap();
    let mut server = server;
    server.restart();
    let client = server.client();
    let (after, body) = get(&client, "contended").await.unwrap();
    assert_eq!(after, etag);
    assert!(body == bodies[by_etag[&etag]]);
}

/// Starts a GET, reads its first chunk, runs `change`, then reads the rest.
async fn read_across(
    client: &Client,
    key: &str,
    change: impl std::future::Future<Output = ()>,
) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket("cons")
        .key(key)
        .send()
        .await
        .unwrap();
    let mut body = out.body;
    let mut data = Vec::new();
    let first = body.next().await.expect("a first chunk").unwrap();
    data.extend_from_slice(&first);
    change.await;
    while let Some(chunk) = body.next().await {
        data.extend_from_slice(&chunk.unwrap());
    }
    data
}

#[tokio::test]
async fn issue_3_a_get_in_flight_returns_the_old_object_whole() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("cons").send().await.unwrap();

    // A single-part object, overwritten and then deleted mid-read. It is
    // larger than what socket buffers hold, so most of it is read from
    // the drives after the change.
    let old = test_data(48 * MIB, 1);
    put(&client, "single", old.clone()).await;
    let got = read_across(
        &client,
        "single",
        Box::pin(async {
            put(&client, "single", test_data(48 * MIB, 2)).await;
            client
                .delete_object()
                .bucket("cons")
                .key("single")
                .send()
                .await
                .unwrap();
        }),
    )
    .await;
    assert!(
        got == old,
        "the GET in flight did not return the old object"
    );
    assert_eq!(get(&client, "single").await, None);

    // A multipart object: later parts are opened as the read reaches them,
    // after the overwrite removed them.
    let parts: Vec<Vec<u8>> = (0..4).map(|i| test_data(12 * MIB, 10 + i)).collect();
    let upload_id = client
        .create_multipart_upload()
        .bucket("cons")
        .key("multi")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let mut completed = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let etag = client
            .upload_part()
            .bucket("cons")
            .key("multi")
            .upload_id(&upload_id)
            .part_number(i as i32 + 1)
            .body(ByteStream::from(part.clone()))
            .send()
            .await
            .unwrap()
            .e_tag
            .unwrap();
        completed.push(
            CompletedPart::builder()
                .part_number(i as i32 + 1)
                .e_tag(etag)
                .build(),
        );
    }
    client
        .complete_multipart_upload()
        .bucket("cons")
        .key("multi")
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let whole = parts.concat();
    let replacement = test_data(MIB, 99);
    let got = read_across(
        &client,
        "multi",
        Box::pin(async {
            put(&client, "multi", replacement.clone()).await;
        }),
    )
    .await;
    assert!(
        got == whole,
        "the GET in flight did not return the old multipart object"
    );
    assert_eq!(get(&client, "multi").await.unwrap().1, replacement);
}
