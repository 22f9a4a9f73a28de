//! LocalDisk against a real directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use cairn_disk::{
    BucketRecord, Disk, DiskError, ErasureMeta, Format, ListEntry, ListQuery, LocalDisk,
    LocalDiskOptions, MetaOp, ObjectVersion, PartMeta, ReadData,
};
use uuid::Uuid;

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let path =
            std::env::temp_dir().join(format!("cairn-disk-test-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn formatted_disk(dir: &TempDir) -> (LocalDisk, Format) {
    formatted_disk_with(dir, LocalDiskOptions::default()).await
}

async fn formatted_disk_with(dir: &TempDir, options: LocalDiskOptions) -> (LocalDisk, Format) {
    let disk = LocalDisk::new(dir.0.join("d1"), options, true).unwrap();
    assert!(disk.read_format().await.unwrap().is_none());
    let format = Format::new_pool(Uuid::new_v4(), 1, 1).for_slot(0, 0);
    disk.write_format(&format).await.unwrap();
    disk.connect(&format).await.unwrap();
    (disk, format)
}

/// The drive of `dir` opened again after its last handle was dropped.
async fn reopened_disk(dir: &TempDir, options: LocalDiskOptions, format: &Format) -> LocalDisk {
    let reopened = LocalDisk::new(dir.0.join("d1"), options, false).unwrap();
    let mut attempts = 0;
    while let Err(err) = reopened.connect(format).await {
        // The committer thread of the first handle may still hold the file lock.
        attempts += 1;
        assert!(attempts < 50, "reopen failed: {err}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    reopened
}

fn version(size: u64, inline: bool) -> ObjectVersion {
    ObjectVersion {
        version_id: Uuid::nil(),
        data_id: Uuid::new_v4(),
        mod_time_ns: 1,
        delete_marker: false,
        size,
        etag: "d41d8cd98f00b204e9800998ecf8427e".into(),
        erasure: ErasureMeta {
            data_shards: 1,
            parity_shards: 0,
            block_size: 1 << 20,
            shard_index: 0,
            rotation: 0,
            bitrot: 1,
        },
        inline,
        parts: vec![PartMeta {
            number: 1,
            size,
            etag: String::new(),
            data_id: None,
            checksum: None,
        }],
        meta: BTreeMap::new(),
    }
}

fn put(bucket: &str, key: &str, version: ObjectVersion, inline: Option<&'static [u8]>) -> MetaOp {
    MetaOp::PutVersion {
        bucket: bucket.into(),
        key: key.into(),
        version,
        inline: inline.map(Bytes::from_static),
    }
}

async fn make_bucket(disk: &LocalDisk, name: &str) {
    disk.commit(MetaOp::MakeBucket(BucketRecord {
        name: name.into(),
        created_ns: 1,
    }))
    .await
    .unwrap();
}

#[tokio::test]
async fn format_connect_and_refuse_other_drives() {
    let dir = TempDir::new();
    let (disk, format) = formatted_disk(&dir).await;
    assert!(disk.is_online());
    assert_eq!(disk.read_format().await.unwrap(), Some(format.clone()));

    let other = Format::new_pool(Uuid::new_v4(), 1, 1).for_slot(0, 0);
    let err = disk.connect(&other).await.unwrap_err();
    assert!(err.to_string().contains("belongs to deployment"), "{err}");
    assert!(!disk.is_online());

    // The same deployment, another slot.
    let mut wrong_slot = Format::new_pool(format.deployment_id, 1, 2);
    wrong_slot.sets[0][1] = format.this;
    let err = disk.connect(&wrong_slot.for_slot(0, 0)).await.unwrap_err();
    assert!(err.to_string().contains("expected set 1 drive 1"), "{err}");
    disk.connect(&format).await.unwrap();
    assert!(disk.is_online());
}

/// Two nodes formatting the same fresh drive at once (the first node of a
/// new cluster and a peer that met it half formatted) must not take it
/// offline: the second, identical format is accepted without replacing the
/// file, and a different one is refused.
#[tokio::test]
async fn issue_4_a_second_format_never_replaces_the_first() {
    let dir = TempDir::new();
    let (disk, format) = formatted_disk(&dir).await;
    make_bucket(&disk, "b").await;
    disk.write_format(&format).await.unwrap();
    assert!(disk.is_online());
    disk.list_buckets().await.unwrap();
    assert!(disk.is_online(), "{:?}", disk.offline_reason());

    let other = Format::new_pool(format.deployment_id, 1, 1).for_slot(0, 0);
    let err = disk.write_format(&other).await.unwrap_err();
    assert!(err.to_string().contains("formatted meanwhile"), "{err}");
    assert_eq!(disk.read_format().await.unwrap(), Some(format));
    disk.list_buckets().await.unwrap();
    assert!(disk.is_online(), "{:?}", disk.offline_reason());
    let staged = std::fs::read_dir(dir.0.join("d1/.cairn.sys/tmp"))
        .unwrap()
        .count();
    assert_eq!(staged, 0, "no staging file left behind");
}

#[tokio::test]
async fn put_read_replace_delete() {
    let dir = TempDir::new();
    let (disk, _) = formatted_disk(&dir).await;
    let err = disk
        .commit(put("nob", "k", version(1, false), None))
        .await
        .unwrap_err();
    assert!(matches!(err, DiskError::BucketNotFound), "{err}");
    make_bucket(&disk, "b1").await;
    assert!(matches!(
        disk.commit(MetaOp::MakeBucket(BucketRecord {
            name: "b1".into(),
            created_ns: 2
        }))
        .await,
        Err(DiskError::BucketExists)
    ));

    let v1 = version(3, true);
    disk.commit(put("b1", "a/../x", v1.clone(), Some(b"abc")))
        .await
        .unwrap();
    let read = disk
        .read_object("b1", "a/../x", ReadData::Latest)
        .await
        .unwrap();
    assert_eq!(read.record.versions, vec![v1.clone()]);
    assert_eq!(read.inline.as_deref(), Some(&b"abc"[..]));

    let v2 = version(5, false);
    let removed = disk
        .commit(put("b1", "a/../x", v2.clone(), None))
        .await
        .unwrap()
        .removed;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].version, v1);
    assert_eq!(removed[0].inline.as_deref(), Some(&b"abc"[..]));
    // The replaced version's inline data is gone with it.
    let read = disk
        .read_object("b1", "a/../x", ReadData::Version(v1.data_id))
        .await
        .unwrap();
    assert!(read.inline.is_none());

    // Revert puts the replaced version back with its data.
    disk.commit(MetaOp::RevertPut {
        bucket: "b1".into(),
        key: "a/../x".into(),
        data_id: v2.data_id,
        previous: removed,
    })
    .await
    .unwrap();
    let read = disk
        .read_object("b1", "a/../x", ReadData::Latest)
        .await
        .unwrap();
    assert_eq!(read.record.versions, vec![v1.clone()]);
    assert_eq!(read.inline.as_deref(), Some(&b"abc"[..]));

    disk.commit(MetaOp::DeleteVersion {
        bucket: "b1".into(),
        key: "a/../x".into(),
        version_id: Uuid::nil(),
    })
    .await
    .unwrap();
    assert!(matches!(
        disk.read_object("b1", "a/../x", ReadData::None).await,
        Err(DiskError::NotFound)
    ));
    assert!(matches!(
        disk.read_object("zz", "a", ReadData::None).await,
        Err(DiskError::BucketNotFound)
    ));
}

#[tokio::test]
async fn listing_orders_keys_and_rolls_up_prefixes() {
    let dir = TempDir::new();
    let (disk, _) = formatted_disk(&dir).await;
    make_bucket(&disk, "b").await;
    make_bucket(&disk, "b.x").await;
    let keys = ["a.txt", "a/1", "a/2", "a/b/c", "b", "c/", "c/d", "z"];
    for key in keys {
        disk.commit(put("b", key, version(0, false), None))
            .await
            .unwrap();
    }
    disk.commit(put("b.x", "a/1", version(0, false), None))
        .await
        .unwrap();

    let list =
        |prefix: &str, start_after: Option<&str>, delimiter: Option<&str>, limit| ListQuery {
            bucket: "b".into(),
            prefix: prefix.into(),
            start_after: start_after.map(str::to_owned),
            delimiter: delimiter.map(str::to_owned),
            limit,
        };
    let names = |page: cairn_disk::ListPage| -> Vec<String> {
        page.entries
            .iter()
            .map(|e| match e {
                ListEntry::Object { key, .. } => key.clone(),
                ListEntry::Prefix(p) => format!("{p}*"),
            })
            .collect()
    };

    let page = disk.list_objects(&list("", None, None, 100)).await.unwrap();
    assert!(!page.truncated);
    assert_eq!(names(page), keys);

    let page = disk
        .list_objects(&list("", None, Some("/"), 100))
        .await
        .unwrap();
    assert_eq!(names(page), ["a.txt", "a/*", "b", "c/*", "z"]);

    let page = disk
        .list_objects(&list("a/", None, Some("/"), 100))
        .await
        .unwrap();
    assert_eq!(names(page), ["a/1", "a/2", "a/b/*"]);

    // A marker that is a common prefix skips everything under it.
    let page = disk
        .list_objects(&list("", Some("a/"), Some("/"), 100))
        .await
        .unwrap();
    assert_eq!(names(page), ["b", "c/*", "z"]);
    let page = disk
        .list_objects(&list("", Some("a/1"), Some("/"), 100))
        .await
        .unwrap();
    assert_eq!(names(page), ["b", "c/*", "z"]);

    let page = disk
        .list_objects(&list("", Some("a/2"), None, 2))
        .await
        .unwrap();
    assert!(page.truncated);
    assert_eq!(names(page), ["a/b/c", "b"]);

    let page = disk.list_objects(&list("q", None, None, 10)).await.unwrap();
    assert!(page.entries.is_empty());
}

#[tokio::test]
async fn delete_bucket_refuses_when_not_empty_unless_forced() {
    let dir = TempDir::new();
    let (disk, _) = formatted_disk(&dir).await;
    make_bucket(&disk, "b").await;
    disk.commit(put("b", "k", version(1, true), Some(b"x")))
        .await
        .unwrap();
    let delete = |force| MetaOp::DeleteBucket {
        name: "b".into(),
        force,
    };
    assert!(matches!(
        disk.commit(delete(false)).await,
        Err(DiskError::BucketNotEmpty)
    ));
    disk.commit(delete(true)).await.unwrap();
    assert!(matches!(
        disk.get_bucket("b").await,
        Err(DiskError::BucketNotFound)
    ));
    assert!(disk.list_buckets().await.unwrap().is_empty());
}

#[tokio::test]
async fn concurrent_commits_are_all_durable() {
    let dir = TempDir::new();
    let (disk, format) = formatted_disk(&dir).await;
    make_bucket(&disk, "b").await;
    let disk = Arc::new(disk);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let disk = disk.clone();
        tasks.push(tokio::spawn(async move {
            disk.commit(put("b", &format!("k{i:03}"), version(1, false), None))
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    drop(disk);
    // Reopen: every acknowledged commit is there.
    let reopened = reopened_disk(&dir, LocalDiskOptions::default(), &format).await;
    let page = reopened
        .list_objects(&ListQuery {
            bucket: "b".into(),
            prefix: String::new(),
            start_after: None,
            delimiter: None,
            limit: 1000,
        })
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 200);
}

#[tokio::test]
async fn shard_files_round_trip_and_survive_deletion_while_open() {
    let dir = TempDir::new();
    let (disk, _) = formatted_disk(&dir).await;
    let data_id = Uuid::new_v4();
    let mut writer = disk.create_shard(data_id, 1).await.unwrap();
    writer.write(Bytes::from_static(b"hello ")).await.unwrap();
    writer.write(Bytes::from_static(b"world")).await.unwrap();
    writer.finish().await.unwrap();
    let reader = disk.open_shard(data_id, 1).await.unwrap();
    disk.delete_shards(data_id, &[1]).await.unwrap();
    assert_eq!(&reader.read_at(6, 5).await.unwrap()[..], b"world");
    assert!(
        reader.read_at(8, 5).await.is_err(),
        "reading past the end fails"
    );
    // Deleted files stay readable from the trash until it is purged.
    let late = disk.open_shard(data_id, 1).await.unwrap();
    assert_eq!(&late.read_at(0, 5).await.unwrap()[..], b"hello");
    assert_eq!(
        disk.purge_trash(std::time::Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        disk.purge_trash(std::time::Duration::ZERO).await.unwrap(),
        1
    );
    assert!(matches!(
        disk.open_shard(data_id, 1).await,
        Err(DiskError::NotFound)
    ));
}

#[tokio::test]
async fn removed_directory_takes_the_drive_offline_and_back() {
    let dir = TempDir::new();
    let (disk, format) = formatted_disk(&dir).await;
    make_bucket(&disk, "b").await;
    let moved = dir.0.join("moved");
    std::fs::rename(dir.0.join("d1"), &moved).unwrap();
    let err = disk
        .commit(put("b", "k", version(1, false), None))
        .await
        .unwrap_err();
    assert!(err.is_offline(), "{err}");
    assert!(!disk.is_online());
    assert!(disk.list_buckets().await.unwrap_err().is_offline());

    std::fs::rename(&moved, dir.0.join("d1")).unwrap();
    let mut attempts = 0;
    while let Err(err) = disk.connect(&format).await {
        attempts += 1;
        assert!(attempts < 50, "reconnect failed: {err}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(disk.list_buckets().await.unwrap().len(), 1);

    // Removed and recreated empty: unformatted.
    std::fs::remove_dir_all(dir.0.join("d1")).unwrap();
    assert!(disk.get_bucket("b").await.unwrap_err().is_offline());
    std::fs::create_dir(dir.0.join("d1")).unwrap();
    assert!(matches!(
        disk.connect(&format).await,
        Err(DiskError::Unformatted)
    ));
    assert_eq!(disk.read_format().await.unwrap(), None);
}

/// A commit is checked against the drive's identity by the drive's committer
/// just before it writes, not before it queues: a `format.json` replaced by
/// another file (the directory and its store still in place) fails the
/// commit as offline, takes the drive offline, and writes nothing.
#[tokio::test]
async fn issue_6_a_commit_after_the_format_was_replaced_writes_nothing() {
    let dir = TempDir::new();
    let (disk, format) = formatted_disk(&dir).await;
    make_bucket(&disk, "b").await;
    let format_path = dir.0.join("d1/.cairn.sys/format.json");
    let copy = dir.0.join("format.copy");
    std::fs::copy(&format_path, &copy).unwrap();
    std::fs::rename(&copy, &format_path).unwrap();

    let err = disk
        .commit(put("b", "k", version(1, false), None))
        .await
        .unwrap_err();
    assert!(err.is_offline(), "{err}");
    assert!(err.to_string().contains("replaced"), "{err}");
    assert!(!disk.is_online());

    // The same drive, connected anew through its new `format.json`.
    disk.connect(&format).await.unwrap();
    assert!(matches!(
        disk.read_object("b", "k", ReadData::None).await,
        Err(DiskError::NotFound)
    ));
    disk.commit(put("b", "k", version(1, false), None))
        .await
        .unwrap();
    assert!(disk.read_object("b", "k", ReadData::None).await.is_ok());
}

fn upload(upload_id: Uuid) -> cairn_disk::UploadRecord {
    cairn_disk::UploadRecord {
        upload_id,
        initiated_ns: 1,
        erasure: version(0, false).erasure,
        meta: BTreeMap::new(),
    }
}

fn part(number: u32) -> cairn_disk::UploadPartRecord {
    cairn_disk::UploadPartRecord {
        number,
        data_id: Uuid::new_v4(),
        size: u64::from(number) * 10,
        etag: format!("etag-{number}"),
        mod_time_ns: 1,
        checksum: None,
    }
}

#[tokio::test]
async fn multipart_upload_records() {
    let dir = TempDir::new();
    let (disk, _) = formatted_disk(&dir).await;
    make_bucket(&disk, "b").await;
    let id1 = Uuid::now_v7();
    let id2 = Uuid::now_v7();
    for (key, id) in [
        ("x/one", id1),
        ("x/one", id2),
        ("x/two", Uuid::now_v7()),
        ("y", Uuid::now_v7()),
    ] {
        disk.commit(MetaOp::CreateUpload {
            bucket: "b".into(),
            key: key.into(),
            upload: upload(id),
        })
        .await
        .unwrap();
    }
    let put_part = |p: cairn_disk::UploadPartRecord, id: Uuid| MetaOp::PutPart {
        bucket: "b".into(),
        key: "x/one".into(),
        upload_id: id,
        part: p,
    };
    for n in [3, 1, 2] {
        let out = disk.commit(put_part(part(n), id1)).await.unwrap();
        assert!(out.removed_parts.is_empty());
    }
    // A re-upload replaces the part and hands back the old one.
    let old_two = disk.list_parts(id1, 1, 1).await.unwrap();
    let out = disk.commit(put_part(part(2), id1)).await.unwrap();
    assert_eq!(out.removed_parts, old_two);
    let parts = disk.list_parts(id1, 0, 100).await.unwrap();
    assert_eq!(
        parts.iter().map(|p| p.number).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(disk.list_parts(id1, 1, 1).await.unwrap()[0].number, 2);
    // Parts of an unknown upload are refused.
    assert!(matches!(
        disk.commit(put_part(part(1), Uuid::now_v7())).await,
        Err(DiskError::NotFound)
    ));

    let names = |page: cairn_disk::UploadsPage| -> Vec<String> {
        page.entries
            .into_iter()
            .map(|e| match e {
                cairn_disk::UploadEntry::Upload { key, upload } => {
                    format!("{key}#{}", upload.upload_id == id2)
                }
                cairn_disk::UploadEntry::Prefix(p) => format!("{p}*"),
            })
            .collect()
    };
    let query = |key_marker: Option<&str>,
                 upload_id_marker: Option<Uuid>,
                 delimiter: Option<&str>| cairn_disk::ListUploadsQuery {
        bucket: "b".into(),
        prefix: String::new(),
        key_marker: key_marker.map(str::to_owned),
        upload_id_marker,
        delimiter: delimiter.map(str::to_owned),
        limit: 100,
    };
    assert_eq!(
        names(disk.list_uploads(&query(None, None, None)).await.unwrap()),
        ["x/one#false", "x/one#true", "x/two#false", "y#false"]
    );
    assert_eq!(
        names(
            disk.list_uploads(&query(None, None, Some("/")))
                .await
                .unwrap()
        ),
        ["x/*", "y#false"]
    );
    assert_eq!(
        names(
            disk.list_uploads(&query(Some("x/one"), Some(id1), None))
                .await
                .unwrap()
        ),
        ["x/one#true", "x/two#false", "y#false"]
    );
    assert_eq!(
        names(
            disk.list_uploads(&query(Some("x/one"), None, None))
                .await
                .unwrap()
        ),
        ["x/two#false", "y#false"]
    );

    // Completion keeps the used parts' files and returns the unused ones.
    let mut object = version(30, false);
    object.parts = parts[..2]
        .iter()
        .map(|p| PartMeta {
            number: p.number,
            size: p.size,
            etag: p.etag.clone(),
            data_id: Some(p.data_id),
            checksum: None,
        })
        .collect();
    let out = disk
        .commit(MetaOp::CompleteUpload {
            bucket: "b".into(),
            key: "x/one".into(),
            upload_id: id1,
            version: object.clone(),
        })
        .await
        .unwrap();
    assert_eq!(out.removed_parts, vec![parts[2].clone()]);
    assert_eq!(
        disk.read_object("b", "x/one", ReadData::None)
            .await
            .unwrap()
            .record
            .versions,
        vec![object]
    );
    assert!(disk.list_parts(id1, 0, 100).await.unwrap().is_empty());
    assert!(matches!(
        disk.read_upload("b", "x/one", id1).await,
        Err(DiskError::NotFound)
    ));
    disk.read_upload("b", "x/one", id2).await.unwrap();

    // Abort returns every part; a deleted bucket takes its uploads along.
    let out = disk
        .commit(MetaOp::AbortUpload {
            bucket: "b".into(),
            key: "x/one".into(),
            upload_id: id2,
        })
        .await
        .unwrap();
    assert!(out.removed_parts.is_empty());
    assert!(matches!(
        disk.commit(MetaOp::AbortUpload {
            bucket: "b".into(),
            key: "x/one".into(),
            upload_id: id2,
        })
        .await,
        Err(DiskError::NotFound)
    ));
    disk.commit(MetaOp::DeleteBucket {
        name: "b".into(),
        force: true,
    })
    .await
    .unwrap();
    make_bucket(&disk, "b").await;
    assert!(
        disk.list_uploads(&query(None, None, None))
            .await
            .unwrap()
            .entries
            .is_empty()
    );
}

fn list_query(bucket: &str) -> ListQuery {
    ListQuery {
        bucket: bucket.into(),
        prefix: String::new(),
        start_after: None,
        delimiter: None,
        limit: 10,
    }
}

/// Issue 6: a drive says in each listing page whether it holds its whole
/// set; the mark survives a restart and goes with the drive's contents.
#[tokio::test]
async fn issue_6_the_completeness_mark_is_kept_and_goes_with_the_contents() {
    let dir = TempDir::new();
    let (disk, format) = formatted_disk(&dir).await;
    make_bucket(&disk, "b").await;
    assert!(!disk.list_objects(&list_query("b")).await.unwrap().complete);
    disk.commit(MetaOp::MarkComplete).await.unwrap();
    assert!(disk.list_objects(&list_query("b")).await.unwrap().complete);
    // Marking again changes nothing.
    disk.commit(MetaOp::MarkComplete).await.unwrap();

    // Another process opening the drive: the mark is durable.
    drop(disk);
    let disk = LocalDisk::new(dir.0.join("d1"), LocalDiskOptions::default(), true).unwrap();
    disk.connect(&format).await.unwrap();
    let page = disk.list_objects(&list_query("b")).await.unwrap();
    assert!(page.complete);

    // Wiped and formatted into its slot again: the mark went with it.
    std::fs::remove_dir_all(dir.0.join("d1")).unwrap();
    std::fs::create_dir(dir.0.join("d1")).unwrap();
    assert!(disk.get_bucket("b").await.unwrap_err().is_offline());
    disk.write_format(&format).await.unwrap();
    disk.connect(&format).await.unwrap();
    make_bucket(&disk, "b").await;
    assert!(!disk.list_objects(&list_query("b")).await.unwrap().complete);
}

/// Inline shards in a store whose memtables hold 1 MiB, so that thousands
/// of them go through flushes (to blob files) and compactions: every live
/// shard reads back byte-exact, before and after reopening, and replaced
/// or deleted ones are gone.
#[tokio::test]
async fn issue_6_inline_data_survives_flushes_compactions_and_reopening() {
    const KEYS: usize = 3_000;
    let dir = TempDir::new();
    let options = LocalDiskOptions::with_meta_memory(4 << 20);
    let (disk, format) = formatted_disk_with(&dir, options.clone()).await;
    make_bucket(&disk, "b").await;
    let disk = Arc::new(disk);
    // Key i's shard in generation g: 2 KiB that differ by key and generation.
    let shard = |i: usize, g: u8| -> Bytes {
        (0..2048u32)
            .map(|j| (j as u8) ^ (i as u8) ^ ((i >> 8) as u8).wrapping_mul(31) ^ g)
            .collect()
    };
    let write = |i: usize, g: u8| {
        let disk = disk.clone();
        let data = shard(i, g);
        tokio::spawn(async move {
            disk.commit(MetaOp::PutVersion {
                bucket: "b".into(),
                key: format!("k{i:05}"),
                version: version(data.len() as u64, true),
                inline: Some(data),
            })
            .await
            .unwrap();
        })
    };
    for start in (0..KEYS).step_by(50) {
        let tasks: Vec<_> = (start..start + 50).map(|i| write(i, 0)).collect();
        for task in tasks {
            task.await.unwrap();
        }
    }
    // Every third key gets a new shard, every third after it is deleted.
    for start in (0..KEYS).step_by(50) {
        let tasks: Vec<_> = (start..start + 50)
            .filter(|i| i % 3 == 1)
            .map(|i| write(i, 1))
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        for i in (start..start + 50).filter(|i| i % 3 == 2) {
            disk.commit(MetaOp::DeleteVersion {
                bucket: "b".into(),
                key: format!("k{i:05}"),
                version_id: Uuid::nil(),
            })
            .await
            .unwrap();
        }
    }
    // The flushed shards are in blob files.
    let blob_files: usize = std::fs::read_dir(dir.0.join("d1/.cairn.sys/meta/keyspaces"))
        .unwrap()
        .filter_map(|ks| std::fs::read_dir(ks.unwrap().path().join("blobs")).ok())
        .map(|files| files.count())
        .sum();
    assert!(blob_files > 0, "no blob files after 5,000 inline shards");

    async fn check(disk: &LocalDisk, shard: &dyn Fn(usize, u8) -> Bytes, when: &str) {
        for i in 0..KEYS {
            let key = format!("k{i:05}");
            let read = disk.read_object("b", &key, ReadData::Latest).await;
            match i % 3 {
                2 => assert!(
                    matches!(read, Err(DiskError::NotFound)),
                    "{key} {when}: deleted, but {read:?}"
                ),
                g => assert_eq!(
                    read.unwrap().inline.as_deref(),
                    Some(&shard(i, g as u8)[..]),
                    "{key} {when}"
                ),
            }
        }
    }
    check(&disk, &shard, "before reopening").await;
    drop(disk);
    let reopened = reopened_disk(&dir, options, &format).await;
    check(&reopened, &shard, "after reopening").await;
}
