//! Issue 26, item 5: what a write must know of its bucket (its existence,
//! and next its versioning and object-lock state) comes from this node's
//! copy, without a drive round trip, once the node has read it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_disk::{Disk, Faults, FaultyDisk};
use cairn_object::{BodyStream, PutOptions};

fn body(data: &'static [u8]) -> BodyStream {
    Box::pin(futures::stream::iter([Ok(Bytes::from_static(data))]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_26_a_bucket_state_is_read_without_a_drive_round_trip() {
    let dir = std::env::temp_dir().join(format!(
        "cairn-bucket-state-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let faults_file = dir.join("faults");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&faults_file, "").unwrap();
    let faults = Arc::new(Faults::from_file(&faults_file));
    let paths: Vec<String> = (0..4)
        .map(|i| dir.join(format!("d{i}")).display().to_string())
        .collect();
    let drives: Vec<Arc<dyn Disk>> = common::four_local_drives(&dir)
        .into_iter()
        .zip(&paths)
        .map(|(disk, path)| Arc::new(FaultyDisk::new(disk, path, faults.clone())) as Arc<dyn Disk>)
        .collect();
    let layer = common::one_set(drives).await;
    layer.make_bucket("cached").await.unwrap();
    layer.make_bucket("unread").await.unwrap();
    layer
        .put_object("cached", "k", body(b"v"), PutOptions::default())
        .await
        .unwrap();

    // Every drive hangs now: any call to one waits until the fault goes.
    let hang: String = paths.iter().map(|p| format!("hang {p}\n")).collect();
    std::fs::write(&faults_file, hang).unwrap();
    tokio::time::sleep(Duration::from_millis(450)).await;

    let state = tokio::time::timeout(Duration::from_secs(1), layer.bucket_state("cached")).await;
    let unread =
        tokio::time::timeout(Duration::from_millis(500), layer.bucket_state("unread")).await;
    std::fs::write(&faults_file, "").unwrap();

    let state = state
        .expect("the state of a bucket this node wrote to waited on the drives")
        .unwrap();
    assert_eq!(state.name, "cached");
    // The drives did hang: a bucket this node never read waits on them.
    assert!(
        unread.is_err(),
        "a bucket never read came back while every drive hung: {unread:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
