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
use common::{ServerOptions, TestServer, md5_hex, test_data, wait_until, wipe};

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

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// One listing page, as (key, size, ETag) and common prefixes.
async fn list_page(
    client: &Client,
    delimiter: Option<&str>,
    max_keys: i32,
    token: Option<String>,
) -> (Vec<(String, i64, String)>, Vec<String>, Option<String>) {
    let out = client
        .list_objects_v2()
        .bucket("cons")
        .set_delimiter(delimiter.map(str::to_owned))
        .max_keys(max_keys)
        .set_continuation_token(token)
        .send()
        .await
        .unwrap();
    let objects = out
        .contents()
        .iter()
        .map(|o| {
            (
                o.key().unwrap().to_owned(),
                o.size().unwrap(),
                o.e_tag().unwrap().to_owned(),
            )
        })
        .collect();
    let prefixes = out
        .common_prefixes()
        .iter()
        .map(|p| p.prefix().unwrap().to_owned())
        .collect();
    (objects, prefixes, out.next_continuation_token)
}

/// A whole listing, page by page.
async fn list_all(
    client: &Client,
    delimiter: Option<&str>,
    max_keys: i32,
) -> (Vec<(String, i64, String)>, Vec<String>) {
    let (mut objects, mut prefixes, mut token) = (Vec::new(), Vec::new(), None);
    for _ in 0..100 {
        let (o, p, next) = list_page(client, delimiter, max_keys, token).await;
        objects.extend(o);
        prefixes.extend(p);
        match next {
            Some(next) => token = Some(next),
            None => return (objects, prefixes),
        }
    }
    panic!("more than 100 pages");
}

/// After a truncated page the server keeps the listing and reads its
/// drives' next pages ahead (issue 6): a write acknowledged between two
/// pages must still be in the second, and one undone must be gone.
#[tokio::test]
async fn issue_6_a_write_between_pages_shows_in_the_next_page() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("cons").send().await.unwrap();
    let mut expected: Vec<(String, i64, String)> = Vec::new();
    for i in 0..40u64 {
        let key = format!("k{i:03}");
        let data = test_data(10 + i as usize, i);
        let etag = put(&client, &key, data.clone()).await;
        expected.push((key, data.len() as i64, etag));
    }
    let mut token = None;
    let mut listed = Vec::new();
    // Pages of 5; before each page after the first, a change to a key the
    // page will show: an added key, a deleted one, an overwritten one.
    for page in 0..20u64 {
        if page > 0 {
            let at = listed.len();
            match page % 3 {
                0 => {
                    let key = format!("{}a", expected[at].0);
                    let data = test_data(3, 100 + page);
                    let etag = put(&client, &key, data.clone()).await;
                    expected.insert(at + 1, (key, 3, etag));
                }
                1 => {
                    let (key, _, _) = expected.remove(at + 1);
                    client
                        .delete_object()
                        .bucket("cons")
                        .key(key)
                        .send()
                        .await
                        .unwrap();
                }
                _ => {
                    let data = test_data(77, 200 + page);
                    let etag = put(&client, &expected[at].0, data.clone()).await;
                    expected[at].1 = 77;
                    expected[at].2 = etag;
                }
            }
        }
        let (objects, _, next) = list_page(&client, None, 5, token).await;
        let at = listed.len();
        assert_eq!(
            objects,
            expected[at..(at + 5).min(expected.len())],
            "page {page}"
        );
        listed.extend(objects);
        token = next;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(listed, expected);
}

/// A listing starts on 2 of the 4 drives (issue 6) and must still answer
/// what quorum says when one drive is stale: it holds keys deleted since,
/// an older version of overwritten keys, and lacks keys written since.
#[tokio::test]
async fn issue_6_a_listing_on_fewer_drives_still_follows_quorum_over_a_stale_drive() {
    // No scanner pass after the first start: nothing heals the stale drive.
    let mut server =
        TestServer::start(ServerOptions::drives(4).env("CAIRN_SCANNER_INTERVAL", "24h"));
    let client = server.client();
    client.create_bucket().bucket("cons").send().await.unwrap();
    for i in 0..6u64 {
        put(
            &client,
            &format!("keep-{i}"),
            test_data(100 + i as usize, i),
        )
        .await;
        put(&client, &format!("over-{i}"), test_data(50, 10 + i)).await;
        put(&client, &format!("gone-{i}"), test_data(10, 20 + i)).await;
        put(&client, &format!("olddir/k-{i}"), test_data(10, 30 + i)).await;
        put(&client, &format!("dir/k-{i}"), test_data(10, 40 + i)).await;
    }
    server.stop();
    let stale = server.drive_paths[3].clone();
    let snapshot = stale.with_extension("snapshot");
    copy_tree(&stale, &snapshot);
    server.restart();
    let client = server.client();
    let mut expected: Vec<(String, i64, String)> = Vec::new();
    for i in 0..6u64 {
        let keep = test_data(100 + i as usize, i);
        expected.push((
            format!("keep-{i}"),
            keep.len() as i64,
            format!("\"{}\"", md5_hex(&keep)),
        ));
        let over = test_data(70 + i as usize, 50 + i);
        let etag = put(&client, &format!("over-{i}"), over.clone()).await;
        expected.push((format!("over-{i}"), over.len() as i64, etag));
        let new = test_data(30, 60 + i);
        let etag = put(&client, &format!("new-{i}"), new.clone()).await;
        expected.push((format!("new-{i}"), new.len() as i64, etag));
        for key in [format!("gone-{i}"), format!("olddir/k-{i}")] {
            client
                .delete_object()
                .bucket("cons")
                .key(key)
                .send()
                .await
                .unwrap();
        }
        let dir = test_data(10, 40 + i);
        expected.push((format!("dir/k-{i}"), 10, format!("\"{}\"", md5_hex(&dir))));
    }
    expected.sort();
    server.stop();
    std::fs::remove_dir_all(&stale).unwrap();
    std::fs::rename(&snapshot, &stale).unwrap();
    server.restart();
    let client = server.client();
    let top: Vec<(String, i64, String)> = expected
        .iter()
        .filter(|(key, _, _)| !key.contains('/'))
        .cloned()
        .collect();
    // Each listing starts on another pair of drives: 8 cover every pair
    // the rotation makes, with and without the stale drive.
    for round in 0..8 {
        let (objects, prefixes) = list_all(&client, None, 1000).await;
        assert_eq!(objects, expected, "round {round}: one page");
        assert!(prefixes.is_empty());
        let (objects, _) = list_all(&client, None, 4).await;
        assert_eq!(objects, expected, "round {round}: pages of 4");
        let (objects, prefixes) = list_all(&client, Some("/"), 3).await;
        assert_eq!(objects, top, "round {round}: delimiter");
        assert_eq!(
            prefixes,
            vec!["dir/".to_owned()],
            "round {round}: olddir/ is gone"
        );
    }
    // The stale drive really was stale: nothing healed it meanwhile.
    assert!(
        !server.log_text().contains("object healed"),
        "{}",
        server.log_text()
    );
}

/// A listing needs only 2 of the 4 drives of a complete set (issue 6), but
/// a drive formatted into its slot empty holds nothing until it is
/// refilled: two of them (within parity at EC 2+2) must not make a listing,
/// or `delete_bucket`'s emptiness check, miss a key meanwhile.
#[tokio::test]
async fn issue_6_listings_do_not_rely_on_drives_still_being_refilled() {
    // A slow refill (it rests 99 parts in 100), so that it is still under
    // way while the listings run.
    let server = TestServer::start(
        ServerOptions::drives(4)
            .env("CAIRN_HEAL_DUTY", "0.01")
            .env("CAIRN_HEAL_CONCURRENCY", "1"),
    );
    let client = server.client();
    client.create_bucket().bucket("cons").send().await.unwrap();
    let mut expected = Vec::new();
    for i in 0..100u64 {
        let key = format!("k{i:03}");
        let data = test_data(64, i);
        let etag = put(&client, &key, data.clone()).await;
        expected.push((key, data.len() as i64, etag));
    }
    for drive in &server.drive_paths[..2] {
        wipe(drive);
    }
    let formatted = "fresh drive formatted into its slot and back in service";
    assert!(
        wait_until(Duration::from_secs(60), || server
            .log_text()
            .matches(formatted)
            .count()
            == 2),
        "{}",
        server.log_text()
    );
    // Each listing starts on another pair of drives: 8 cover the pair of
    // replaced drives, each of them with a complete one, and complete pairs.
    for round in 0..8 {
        let (objects, prefixes) = list_all(&client, None, 1000).await;
        assert_eq!(objects, expected, "round {round}: one page");
        assert!(prefixes.is_empty());
        let (objects, _) = list_all(&client, None, 7).await;
        assert_eq!(objects, expected, "round {round}: pages of 7");
    }
    let err = client
        .delete_bucket()
        .bucket("cons")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        common::sdk_error_code(&err).as_deref(),
        Some("BucketNotEmpty")
    );
    let (objects, _) = list_all(&client, None, 1000).await;
    assert_eq!(objects, expected, "nothing was deleted");
    // The listings ran while the drives were still being refilled.
    assert!(
        !server
            .log_text()
            .contains("refill of a replaced drive complete"),
        "too fast: {}",
        server.log_text()
    );
}
