//! Issue 6: a listing kept after a truncated page, its drives' next pages
//! read ahead, answers the next page only while the bucket is unchanged.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use cairn_object::{BodyStream, ListOptions, ListResult, ObjectLayer, PutOptions, ReadAheadStats};

struct Layer {
    layer: Arc<ObjectLayer>,
    dir: PathBuf,
}

impl Drop for Layer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One set of four local drives (EC 2+2), as `cairn server DIR{1...4}`.
async fn layer(name: &str) -> Layer {
    let dir = std::env::temp_dir().join(format!("cairn-{name}-{}", uuid::Uuid::new_v4().simple()));
    let layer = common::one_set(common::four_local_drives(&dir)).await;
    Layer { layer, dir }
}

fn body(data: Vec<u8>) -> BodyStream {
    Box::pin(futures::stream::iter([Ok(Bytes::from(data))]))
}

async fn put(layer: &ObjectLayer, bucket: &str, key: &str, size: usize) {
    layer
        .put_object(bucket, key, body(vec![b'x'; size]), PutOptions::default())
        .await
        .unwrap();
}

async fn page(
    layer: &ObjectLayer,
    bucket: &str,
    after: Option<&str>,
    max_keys: usize,
) -> ListResult {
    let options = ListOptions {
        prefix: "k/".to_owned(),
        delimiter: None,
        start_after: after.map(str::to_owned),
        max_keys,
    };
    layer.list_objects(bucket, &options).await.unwrap()
}

fn keys(result: &ListResult) -> Vec<(String, u64)> {
    result
        .objects
        .iter()
        .map(|o| (o.key.clone(), o.size))
        .collect()
}

fn key(i: usize) -> String {
    format!("k/{i:03}")
}

/// Lists every page of 10, asserting each is what is stored, and returns
/// the read-ahead counters' change.
async fn list_all(layer: &ObjectLayer, bucket: &str, expected: &[(String, u64)]) -> ReadAheadStats {
    let before = layer.list_read_ahead_stats();
    let mut after: Option<String> = None;
    let mut seen = Vec::new();
    for _ in 0..=expected.len() / 10 + 1 {
        let result = page(layer, bucket, after.as_deref(), 10).await;
        seen.extend(keys(&result));
        if !result.truncated {
            break;
        }
        after = result.next_marker.clone();
    }
    assert_eq!(seen, expected);
    let now = layer.list_read_ahead_stats();
    ReadAheadStats {
        kept: now.kept - before.kept,
        resumed: now.resumed - before.resumed,
        stale: now.stale - before.stale,
    }
}

#[tokio::test]
async fn issue_6_paging_continues_the_kept_listing() {
    let layer = layer("read-ahead").await;
    let layer = &layer.layer;
    layer.make_bucket("pages").await.unwrap();
    let mut expected = Vec::new();
    for i in 0..35 {
        put(layer, "pages", &key(i), i).await;
        expected.push((key(i), i as u64));
    }
    // Pages of 10, 10, 10 and 5: the first three are truncated and kept,
    // and each of the last three continues the listing kept before it.
    let stats = list_all(layer, "pages", &expected).await;
    assert_eq!(
        stats,
        ReadAheadStats {
            kept: 3,
            resumed: 3,
            stale: 0
        }
    );

    // A page asking for something else does not take a kept listing: a
    // different prefix, then a different start.
    let first = page(layer, "pages", None, 10).await;
    let marker = first.next_marker.clone().unwrap();
    let other = ListOptions {
        prefix: "k/0".to_owned(),
        delimiter: None,
        start_after: Some(marker.clone()),
        max_keys: 10,
    };
    let result = layer.list_objects("pages", &other).await.unwrap();
    assert_eq!(keys(&result), expected[10..20]);
    let result = page(layer, "pages", Some("k/004"), 10).await;
    assert_eq!(keys(&result), expected[5..15]);
    // The kept listing is still there for its own next page.
    let before = layer.list_read_ahead_stats();
    let result = page(layer, "pages", Some(&marker), 10).await;
    assert_eq!(keys(&result), expected[10..20]);
    assert_eq!(layer.list_read_ahead_stats().resumed, before.resumed + 1);
}

#[tokio::test]
async fn issue_6_a_write_between_pages_is_in_the_next_page() {
    let layer = layer("read-ahead-writes").await;
    let layer = &layer.layer;
    layer.make_bucket("pages").await.unwrap();
    layer.make_bucket("other").await.unwrap();
    let mut expected = Vec::new();
    for i in 0..30 {
        put(layer, "pages", &key(i), i).await;
        expected.push((key(i), i as u64));
    }

    // Each change lands in the page after the one just listed: an object
    // added, one deleted, one overwritten with another size.
    for what in ["add", "delete", "overwrite"] {
        let before = layer.list_read_ahead_stats();
        let first = page(layer, "pages", None, 10).await;
        assert_eq!(keys(&first), expected[..10], "{what}");
        match what {
            "add" => {
                put(layer, "pages", "k/0125", 7).await;
                expected.insert(13, ("k/0125".to_owned(), 7));
            }
            "delete" => {
                layer.delete_object("pages", &key(14)).await.unwrap();
                expected.retain(|(k, _)| *k != key(14));
            }
            _ => {
                put(layer, "pages", &key(15), 99).await;
                let idx = expected.iter().position(|(k, _)| *k == key(15)).unwrap();
                expected[idx].1 = 99;
            }
        }
        let second = page(layer, "pages", first.next_marker.as_deref(), 10).await;
        assert_eq!(keys(&second), expected[10..20], "{what}");
        let stats = layer.list_read_ahead_stats();
        assert_eq!(
            stats.resumed, before.resumed,
            "{what}: the kept page was stale"
        );
        assert_eq!(stats.stale, before.stale + 1, "{what}");
    }

    // A write to another bucket leaves the kept listing in use.
    let before = layer.list_read_ahead_stats();
    let first = page(layer, "pages", None, 10).await;
    put(layer, "other", "k/000", 1).await;
    let second = page(layer, "pages", first.next_marker.as_deref(), 10).await;
    assert_eq!(keys(&second), expected[10..20]);
    assert_eq!(layer.list_read_ahead_stats().resumed, before.resumed + 1);
}
