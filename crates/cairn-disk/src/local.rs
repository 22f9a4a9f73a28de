//! [`LocalDisk`]: a drive that is a directory on this node.
//!
//! Layout under the drive's root:
//! ```text
//! .cairn.sys/format.json              drive identity (docs/design.md section 3)
//! .cairn.sys/meta/                    metadata store (fjall)
//! .cairn.sys/data/<xx>/<data-id>.<n>  shard file of part n; xx = first byte of the id
//! .cairn.sys/trash/<data-id>.<n>      deleted shard files, purged after a grace period
//! .cairn.sys/tmp/                     staging for format.json
//! ```
//!
//! Every operation first checks that the root still holds the drive that was
//! connected (its `format.json` is the same file). A removed, replaced or
//! unreadable directory takes the drive offline at its next operation, not at
//! the next health poll, and a file handle opened before the drive vanished
//! cannot make a write look successful.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use uuid::Uuid;

use crate::direct::Stage;
use crate::error::{DiskError, Result};
use crate::format::Format;
use crate::meta::BucketRecord;
use crate::meta::{UploadPartRecord, UploadRecord};
use crate::store::{LivenessCheck, MetaStore, StoreMemory};
use crate::{
    Disk, DiskSpace, ListPage, ListQuery, ListUploadsQuery, MetaOp, MetaOutcome, ReadData,
    ReadObject, ShardReader, ShardWriter, UploadsPage,
};

const SYS_DIR: &str = ".cairn.sys";
const FORMAT_FILE: &str = "format.json";
const META_DIR: &str = "meta";

/// Tuning of a local drive.
#[derive(Debug, Clone)]
pub struct LocalDiskOptions {
    /// Block cache of the metadata store, in bytes (default 16 MiB).
    pub meta_cache_bytes: u64,
    /// Unflushed metadata writes kept in memory per keyspace, in bytes (default 8 MiB).
    pub meta_memtable_bytes: u64,
}

impl Default for LocalDiskOptions {
    fn default() -> Self {
        LocalDiskOptions::with_meta_memory(MAX_DRIVE_META_MEMORY)
    }
}

/// The most metadata memory one drive's store takes: a 16 MiB block cache
/// and 8 MiB memtables. Smaller memtables flush more often, which costs
/// small PUTs tail latency (docs/benchmarks.md, "Memory").
pub const MAX_DRIVE_META_MEMORY: u64 = 32 << 20;

impl LocalDiskOptions {
    /// Options whose metadata store holds about `bytes` of memory: half for
    /// its block cache, and a quarter for each keyspace's unflushed writes
    /// (two keyspaces, object records and inline data, take nearly all of
    /// them). Each part is at least 1 MiB, the least the store takes.
    pub fn with_meta_memory(bytes: u64) -> LocalDiskOptions {
        const MIN: u64 = 1 << 20;
        LocalDiskOptions {
            meta_cache_bytes: (bytes / 2).max(MIN),
            meta_memtable_bytes: (bytes / 4).max(MIN),
        }
    }

    /// Each of a node's `drives` local drives' share of a node-wide metadata
    /// memory budget of `node_bytes` (`CAIRN_META_MEMORY_MB`), so that a
    /// node's metadata memory does not grow with its drive count. A share
    /// is at most [`MAX_DRIVE_META_MEMORY`]: more buys a drive little.
    pub fn node_share(node_bytes: u64, drives: usize) -> LocalDiskOptions {
        let share = node_bytes / drives.max(1) as u64;
        LocalDiskOptions::with_meta_memory(share.min(MAX_DRIVE_META_MEMORY))
    }
}

/// A drive that is a directory on this node.
pub struct LocalDisk {
    root: PathBuf,
    endpoint: String,
    options: LocalDiskOptions,
    state: RwLock<State>,
    /// One connection attempt at a time: in a cluster, this node and its
    /// peers may all bring the drive online at once.
    connecting: tokio::sync::Mutex<()>,
    relief: Arc<Relief>,
    /// The drive's file system takes `O_DIRECT` writes, as far as known
    /// (tmpfs before Linux 6.6 does not); shared with its shard writers
    /// ([`crate::direct`]).
    direct_ok: Arc<AtomicBool>,
}

/// Frees a full drive's trash at once. Shard files of replaced and deleted
/// versions wait an hour in the trash for reads that resolved them; on a
/// full drive that hour would keep every DELETE from making room, so the
/// first write that finds no space empties the trash (a read that already
/// opened a file keeps it; one that resolved a deleted version but has not
/// opened its next part yet fails instead), and until a shard write
/// completes again, deleted shard files are removed instead of trashed.
struct Relief {
    trash: PathBuf,
    endpoint: String,
    busy: AtomicBool,
    /// Set when a write found the drive full, cleared by the next shard
    /// write that completes: meanwhile deleted shard files skip the trash.
    full: AtomicBool,
}

impl Relief {
    /// Frees the trash when `err` says the drive is full.
    fn on_error(self: &Arc<Self>, err: &DiskError) {
        if matches!(err, DiskError::Full(_)) {
            self.free_trash();
        }
    }

    fn free_trash(self: &Arc<Self>) {
        self.full.store(true, Ordering::Release);
        if self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.busy.store(false, Ordering::Release);
            return;
        };
        let relief = self.clone();
        runtime.spawn_blocking(move || {
            let (files, freed) = empty_trash(&relief.trash, 0).unwrap_or_default();
            tracing::warn!(
                drive = %relief.endpoint, files, freed_bytes = freed,
                "drive full: emptied its trash of deleted and replaced data at once instead of after an hour"
            );
            relief.busy.store(false, Ordering::Release);
        });
    }
}

enum State {
    Offline(String),
    Online(Arc<Online>),
}

struct Online {
    format: Format,
    store: MetaStore,
    liveness: Arc<Liveness>,
}

/// Identifies the `format.json` a drive was connected with.
struct Liveness {
    format_path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Liveness {
    fn check(&self) -> Result<()> {
        match fs::metadata(&self.format_path) {
            Ok(meta) if meta.dev() == self.dev && meta.ino() == self.ino => Ok(()),
            Ok(_) => Err(DiskError::Offline(format!(
                "{} was replaced by another file",
                self.format_path.display()
            ))),
            Err(err) => Err(DiskError::Offline(format!(
                "{}: {err}",
                self.format_path.display()
            ))),
        }
    }
}

fn sys_dir(root: &Path) -> PathBuf {
    root.join(SYS_DIR)
}

fn fsync_dir(path: &Path) -> io::Result<()> {
    fs::File::open(path)?.sync_all()
}

/// Runs blocking drive I/O off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DiskError::Store(format!("drive task failed: {e}")))?
}

impl LocalDisk {
    /// A drive at `root`, offline until [`Disk::connect`]. When `create` is
    /// set, a missing root directory is created; only do that at start-up, so
    /// that an unmounted drive never turns into a directory on the root disk.
    pub fn new(
        root: impl Into<PathBuf>,
        options: LocalDiskOptions,
        create: bool,
    ) -> Result<LocalDisk> {
        let root = root.into();
        if create && !root.exists() {
            fs::create_dir_all(&root).map_err(|e| {
                DiskError::io(format!("creating drive directory {}", root.display()), e)
            })?;
        }
        let endpoint = root.display().to_string();
        let relief = Arc::new(Relief {
            trash: sys_dir(&root).join("trash"),
            endpoint: endpoint.clone(),
            busy: AtomicBool::new(false),
            full: AtomicBool::new(false),
        });
        Ok(LocalDisk {
            root,
            endpoint,
            options,
            state: RwLock::new(State::Offline("not connected yet".to_owned())),
            connecting: tokio::sync::Mutex::new(()),
            relief,
            direct_ok: Arc::new(AtomicBool::new(true)),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The drive's open store, once its `format.json` is checked to be the
    /// file it connected with.
    fn online(&self) -> Result<Arc<Online>> {
        let online = self.connected()?;
        if let Err(err) = online.liveness.check() {
            self.go_offline(&err.to_string());
            return Err(err);
        }
        Ok(online)
    }

    /// The drive's open store, without the `format.json` check. Commits take
    /// it so: the committer checks just before it writes, and a check here
    /// too was 4 of a 4 KiB PUT's 10 `statx` calls. A commit that finds the
    /// drive gone takes it offline through [`LocalDisk::note_error`].
    fn connected(&self) -> Result<Arc<Online>> {
        match &*self.state.read().expect("drive state lock") {
            State::Online(online) => Ok(online.clone()),
            State::Offline(reason) => Err(DiskError::Offline(reason.clone())),
        }
    }

    fn go_offline(&self, reason: &str) {
        let mut state = self.state.write().expect("drive state lock");
        if matches!(*state, State::Online(_)) {
            tracing::warn!(drive = %self.endpoint, %reason, "drive went offline");
            *state = State::Offline(reason.to_owned());
        }
    }

    /// Records an I/O failure: a drive whose root vanished goes offline at once.
    fn note_error(&self, err: DiskError) -> DiskError {
        if matches!(err, DiskError::Full(_)) {
            self.relief.free_trash();
            return err;
        }
        let check = match &*self.state.read().expect("drive state lock") {
            State::Online(online) => online.liveness.check(),
            State::Offline(_) => return err,
        };
        match check {
            Ok(()) => err,
            Err(offline) => {
                self.go_offline(&offline.to_string());
                offline
            }
        }
    }

    fn shard_path(root: &Path, data_id: Uuid, part: u32) -> PathBuf {
        let id = data_id.simple().to_string();
        sys_dir(root)
            .join("data")
            .join(&id[..2])
            .join(format!("{id}.{part}"))
    }

    fn trash_path(root: &Path, data_id: Uuid, part: u32) -> PathBuf {
        sys_dir(root)
            .join("trash")
            .join(format!("{}.{part}", data_id.simple()))
    }
}

fn read_format_at(root: &Path) -> Result<Option<Format>> {
    let path = sys_dir(root).join(FORMAT_FILE);
    match fs::read(&path) {
        Ok(bytes) => Format::from_json(&bytes)
            .map(Some)
            .map_err(|detail| DiskError::Corrupt {
                what: "format.json",
                detail: format!("{}: {detail}", path.display()),
            }),
        Err(err) if err.kind() == io::ErrorKind::NotFound => match fs::metadata(root) {
            Ok(meta) if meta.is_dir() => Ok(None),
            Ok(_) => Err(DiskError::Offline(format!(
                "{} is not a directory",
                root.display()
            ))),
            Err(err) => Err(DiskError::Offline(format!("{}: {err}", root.display()))),
        },
        Err(err) => Err(DiskError::Offline(format!("{}: {err}", path.display()))),
    }
}

fn write_format_at(root: &Path, format: &Format) -> Result<()> {
    let meta =
        fs::metadata(root).map_err(|e| DiskError::Offline(format!("{}: {e}", root.display())))?;
    if !meta.is_dir() {
        return Err(DiskError::Offline(format!(
            "{} is not a directory",
            root.display()
        )));
    }
    let sys = sys_dir(root);
    let tmp = sys.join("tmp");
    fs::create_dir_all(&tmp)
        .map_err(|e| DiskError::io(format!("creating {}", tmp.display()), e))?;
    fsync_dir(root).map_err(|e| DiskError::io(format!("syncing {}", root.display()), e))?;
    let staging = tmp.join(format!("format-{}.json", Uuid::new_v4().simple()));
    let target = sys.join(FORMAT_FILE);
    // Linked, not renamed, into place: a format already there (another
    // node formatted the drive first) is never replaced, because replacing
    // it would make the drive's liveness check take it offline.
    let result = (|| {
        let mut file = fs::File::create(&staging)?;
        file.write_all(&format.to_json())?;
        file.sync_all()?;
        let linked = fs::hard_link(&staging, &target);
        fs::remove_file(&staging)?;
        linked?;
        fsync_dir(&sys)
    })();
    match result {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            let _ = fs::remove_file(&staging);
            match read_format_at(root)? {
                Some(found) if found == *format => Ok(()),
                Some(found) => Err(DiskError::Offline(format!(
                    "{} was formatted meanwhile as drive {} of deployment {}",
                    root.display(),
                    found.this,
                    found.deployment_id
                ))),
                None => Err(DiskError::Offline(format!(
                    "{} changed while it was being formatted",
                    target.display()
                ))),
            }
        }
        Err(err) => {
            let _ = fs::remove_file(&staging);
            Err(DiskError::io(format!("writing {}", target.display()), err))
        }
    }
}

#[async_trait]
impl Disk for LocalDisk {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn is_online(&self) -> bool {
        matches!(
            *self.state.read().expect("drive state lock"),
            State::Online(_)
        )
    }

    fn offline_reason(&self) -> Option<String> {
        match &*self.state.read().expect("drive state lock") {
            State::Online(_) => None,
            State::Offline(reason) => Some(reason.clone()),
        }
    }

    async fn read_format(&self) -> Result<Option<Format>> {
        let root = self.root.clone();
        blocking(move || read_format_at(&root)).await
    }

    async fn write_format(&self, format: &Format) -> Result<()> {
        let root = self.root.clone();
        let format = format.clone();
        blocking(move || write_format_at(&root, &format)).await
    }

    async fn connect(&self, expected: &Format) -> Result<()> {
        if let Ok(online) = self.online()
            && online.format == *expected
        {
            return Ok(());
        }
        let _connecting = self.connecting.lock().await;
        if let Ok(online) = self.online()
            && online.format == *expected
        {
            return Ok(());
        }
        // Close the current store first, so that reopening the same file can
        // take its lock.
        *self.state.write().expect("drive state lock") = State::Offline("reconnecting".to_owned());
        let root = self.root.clone();
        let expected = expected.clone();
        let memory = StoreMemory {
            cache_bytes: self.options.meta_cache_bytes,
            memtable_bytes: self.options.meta_memtable_bytes,
        };
        let opened = blocking(move || -> Result<Online> {
            let found = read_format_at(&root)?.ok_or(DiskError::Unformatted)?;
            if found.deployment_id != expected.deployment_id {
                return Err(DiskError::Offline(format!(
                    "drive belongs to deployment {}, expected deployment {}",
                    found.deployment_id, expected.deployment_id
                )));
            }
            if found.this != expected.this || !found.same_layout(&expected) {
                let slot = |f: &Format| match f.slot_of(f.this) {
                    Some((set, disk)) => format!("set {} drive {}", set + 1, disk + 1),
                    None => "no slot".to_owned(),
                };
                return Err(DiskError::Offline(format!(
                    "drive is {} (id {}), expected {} (id {})",
                    slot(&found),
                    found.this,
                    slot(&expected),
                    expected.this
                )));
            }
            let format_path = sys_dir(&root).join(FORMAT_FILE);
            let meta = fs::metadata(&format_path)
                .map_err(|e| DiskError::Offline(format!("{}: {e}", format_path.display())))?;
            let liveness = Arc::new(Liveness {
                format_path,
                dev: meta.dev(),
                ino: meta.ino(),
            });
            let check = liveness.clone();
            let check: LivenessCheck = Arc::new(move || check.check());
            let store = MetaStore::open(&sys_dir(&root).join(META_DIR), memory, check)?;
            Ok(Online {
                format: expected,
                store,
                liveness,
            })
        })
        .await;
        match opened {
            Ok(online) => {
                *self.state.write().expect("drive state lock") = State::Online(Arc::new(online));
                Ok(())
            }
            Err(err) => {
                *self.state.write().expect("drive state lock") = State::Offline(err.to_string());
                Err(err)
            }
        }
    }

    async fn space(&self) -> Result<DiskSpace> {
        self.online()?;
        let root = self.root.clone();
        blocking(move || {
            let stat = rustix::fs::statvfs(&root)
                .map_err(|e| DiskError::io(format!("statvfs {}", root.display()), e.into()))?;
            Ok(DiskSpace {
                total: stat.f_blocks * stat.f_frsize,
                free: stat.f_bavail * stat.f_frsize,
            })
        })
        .await
    }

    async fn commit(&self, op: MetaOp) -> Result<MetaOutcome> {
        let online = self.connected()?;
        online
            .store
            .commit(op)
            .await
            .map_err(|e| self.note_error(e))
    }

    async fn list_buckets(&self) -> Result<Vec<BucketRecord>> {
        let online = self.online()?;
        blocking(move || online.store.list_buckets()).await
    }

    async fn get_bucket(&self, bucket: &str) -> Result<BucketRecord> {
        // A point read of the buckets keyspace, which is a few records and
        // always in memory: cheaper on this thread than a hand-off to the
        // blocking pool, which every PUT and GET paid 4 times (once per
        // drive) to check that its bucket exists.
        self.online()?.store.get_bucket(bucket)
    }

    async fn read_object(&self, bucket: &str, key: &str, data: ReadData) -> Result<ReadObject> {
        let online = self.online()?;
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        blocking(move || online.store.read_object(&bucket, &key, data)).await
    }

    fn reads_block(&self) -> bool {
        true
    }

    fn read_object_blocking(&self, bucket: &str, key: &str, data: ReadData) -> Result<ReadObject> {
        self.online()?.store.read_object(bucket, key, data)
    }

    async fn list_objects(&self, query: &ListQuery) -> Result<ListPage> {
        let online = self.online()?;
        let query = query.clone();
        blocking(move || online.store.list_objects(&query)).await
    }

    fn list_generation(&self, bucket: &str) -> Option<u64> {
        Some(self.online().ok()?.store.list_generation(bucket))
    }

    async fn create_shard(&self, data_id: Uuid, part: u32) -> Result<Box<dyn ShardWriter>> {
        let online = self.online()?;
        let path = Self::shard_path(&self.root, data_id, part);
        let relief = self.relief.clone();
        let direct_ok = self.direct_ok.clone();
        let result = blocking(move || {
            let dir = path.parent().expect("shard path has a parent").to_owned();
            if !dir.exists() {
                fs::create_dir_all(&dir)
                    .map_err(|e| DiskError::io(format!("creating {}", dir.display()), e))?;
                let data_dir = dir.parent().expect("fan-out dir has a parent");
                fsync_dir(data_dir)
                    .map_err(|e| DiskError::io(format!("syncing {}", data_dir.display()), e))?;
            }
            LocalShardWriter::create(path, dir, online.liveness.clone(), None, relief, direct_ok)
        })
        .await;
        match result {
            Ok(writer) => Ok(Box::new(writer)),
            Err(err) => Err(self.note_error(err)),
        }
    }

    async fn replace_shard(&self, data_id: Uuid, part: u32) -> Result<Box<dyn ShardWriter>> {
        let online = self.online()?;
        let target = Self::shard_path(&self.root, data_id, part);
        let relief = self.relief.clone();
        let direct_ok = self.direct_ok.clone();
        let result = blocking(move || {
            let dir = target.parent().expect("shard path has a parent").to_owned();
            fs::create_dir_all(&dir)
                .map_err(|e| DiskError::io(format!("creating {}", dir.display()), e))?;
            let name = target
                .file_name()
                .expect("shard file name")
                .to_string_lossy();
            let path = dir.join(format!(".{name}.{}.new", Uuid::new_v4().simple()));
            LocalShardWriter::create(
                path,
                dir,
                online.liveness.clone(),
                Some(target),
                relief,
                direct_ok,
            )
        })
        .await;
        match result {
            Ok(writer) => Ok(Box::new(writer)),
            Err(err) => Err(self.note_error(err)),
        }
    }

    async fn open_shard(&self, data_id: Uuid, part: u32) -> Result<Box<dyn ShardReader>> {
        self.online()?;
        let paths = [
            Self::shard_path(&self.root, data_id, part),
            Self::trash_path(&self.root, data_id, part),
        ];
        let result = blocking(move || {
            for path in paths {
                match fs::File::open(&path) {
                    Ok(file) => {
                        return Ok(LocalShardReader {
                            file: Arc::new(file),
                            path,
                        });
                    }
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => {
                        return Err(DiskError::io(format!("opening {}", path.display()), err));
                    }
                }
            }
            Err(DiskError::NotFound)
        })
        .await;
        match result {
            Ok(reader) => Ok(Box::new(reader)),
            Err(DiskError::NotFound) => Err(DiskError::NotFound),
            Err(err) => Err(self.note_error(err)),
        }
    }

    async fn delete_shards(&self, data_id: Uuid, parts: &[u32]) -> Result<()> {
        self.online()?;
        let moves: Vec<(PathBuf, PathBuf)> = parts
            .iter()
            .map(|part| {
                (
                    Self::shard_path(&self.root, data_id, *part),
                    Self::trash_path(&self.root, data_id, *part),
                )
            })
            .collect();
        let trash = sys_dir(&self.root).join("trash");
        let full = self.relief.full.load(Ordering::Acquire);
        blocking(move || {
            fs::create_dir_all(&trash)
                .map_err(|e| DiskError::io(format!("creating {}", trash.display()), e))?;
            for (from, to) in moves {
                // A drive that ran out of space frees deleted data at once.
                let moved = if full {
                    fs::remove_file(&from)
                } else {
                    fs::rename(&from, &to)
                };
                match moved {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => {
                        return Err(DiskError::io(
                            format!("moving {} to the trash", from.display()),
                            err,
                        ));
                    }
                }
            }
            Ok(())
        })
        .await
    }

    async fn remove_shards(&self, data_id: Uuid, parts: &[u32]) -> Result<()> {
        self.online()?;
        let paths: Vec<PathBuf> = parts
            .iter()
            .map(|part| Self::shard_path(&self.root, data_id, *part))
            .collect();
        blocking(move || {
            for path in paths {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => {
                        return Err(DiskError::io(format!("removing {}", path.display()), err));
                    }
                }
            }
            Ok(())
        })
        .await
    }

    async fn purge_trash(&self, grace: std::time::Duration) -> Result<usize> {
        self.online()?;
        let trash = sys_dir(&self.root).join("trash");
        blocking(move || empty_trash(&trash, grace.as_secs() as i64).map(|(files, _)| files)).await
    }

    async fn remove_orphans(&self, grace: std::time::Duration) -> Result<usize> {
        let online = self.online()?;
        let data = sys_dir(&self.root).join("data");
        blocking(move || {
            // The metadata is read first: a shard file written after this
            // snapshot is younger than the grace period, so it is kept.
            let referenced = online.store.referenced_data_ids()?;
            let now = std::time::SystemTime::now();
            let mut removed = 0;
            let fanouts = match fs::read_dir(&data) {
                Ok(entries) => entries,
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(0),
                Err(err) => return Err(DiskError::io(format!("reading {}", data.display()), err)),
            };
            for fanout in fanouts.flatten() {
                let Ok(files) = fs::read_dir(fanout.path()) else { continue };
                for file in files.flatten() {
                    let name = file.file_name().to_string_lossy().into_owned();
                    // `<data-id>.<part>`; anything else (the staging file of
                    // an interrupted heal) is named by no metadata.
                    let id = name
                        .split_once('.')
                        .and_then(|(id, part)| part.parse::<u32>().ok().and(Uuid::try_parse(id).ok()));
                    if id.is_some_and(|id| referenced.contains(&id)) {
                        continue;
                    }
                    let Ok(meta) = file.metadata() else { continue };
                    let age = meta
                        .modified()
                        .ok()
                        .and_then(|m| now.duration_since(m).ok())
                        .unwrap_or_default();
                    if age >= grace && fs::remove_file(file.path()).is_ok() {
                        tracing::info!(file = %file.path().display(), age_s = age.as_secs(), "removed an orphan shard file");
                        removed += 1;
                    }
                }
            }
            Ok(removed)
        })
        .await
    }

    async fn read_upload(&self, bucket: &str, key: &str, upload_id: Uuid) -> Result<UploadRecord> {
        let online = self.online()?;
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        blocking(move || online.store.read_upload(&bucket, &key, upload_id)).await
    }

    async fn list_parts(
        &self,
        upload_id: Uuid,
        after: u32,
        limit: usize,
    ) -> Result<Vec<UploadPartRecord>> {
        let online = self.online()?;
        blocking(move || online.store.list_parts(upload_id, after, limit)).await
    }

    async fn list_uploads(&self, query: &ListUploadsQuery) -> Result<UploadsPage> {
        let online = self.online()?;
        let query = query.clone();
        blocking(move || online.store.list_uploads(&query)).await
    }
}

/// Removes the files in `trash` that went there at least `grace_secs`
/// ago; returns how many, and their bytes.
fn empty_trash(trash: &Path, grace_secs: i64) -> Result<(usize, u64)> {
    let entries = match fs::read_dir(trash) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(err) => return Err(DiskError::io(format!("reading {}", trash.display()), err)),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (mut files, mut bytes) = (0, 0);
    for entry in entries.flatten() {
        // The rename into the trash set the change time.
        let Ok(meta) = entry.metadata() else { continue };
        if now - meta.ctime() >= grace_secs && fs::remove_file(entry.path()).is_ok() {
            files += 1;
            bytes += meta.len();
        }
    }
    Ok((files, bytes))
}

struct LocalShardWriter {
    file: Option<fs::File>,
    /// Where frames wait to be written around the page cache; `None` when
    /// every staging buffer was in use, and the file is written through it.
    stage: Option<Stage>,
    path: PathBuf,
    dir: PathBuf,
    liveness: Arc<Liveness>,
    /// For a replacement: the final path, which the finished file is renamed over.
    replaces: Option<PathBuf>,
    relief: Arc<Relief>,
    direct_ok: Arc<AtomicBool>,
}

impl LocalShardWriter {
    /// Creates the file at `path` (which must not exist) in `dir`.
    fn create(
        path: PathBuf,
        dir: PathBuf,
        liveness: Arc<Liveness>,
        replaces: Option<PathBuf>,
        relief: Arc<Relief>,
        direct_ok: Arc<AtomicBool>,
    ) -> Result<LocalShardWriter> {
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| DiskError::io(format!("creating {}", path.display()), e))?;
        Ok(LocalShardWriter {
            file: Some(file),
            stage: Stage::take(),
            path,
            dir,
            liveness,
            replaces,
            relief,
            direct_ok,
        })
    }
}

#[async_trait]
impl ShardWriter for LocalShardWriter {
    async fn write(&mut self, frame: Bytes) -> Result<()> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| DiskError::Store("shard writer used after a failed write".to_owned()))?;
        let path = self.path.clone();
        let mut stage = self.stage.take();
        let direct_ok = self.direct_ok.clone();
        let (file, stage) = blocking(move || {
            match &mut stage {
                Some(stage) => stage.write(&file, &frame, &direct_ok),
                None => file.write_all(&frame),
            }
            .map_err(|e| DiskError::io(format!("writing {}", path.display()), e))?;
            Ok((file, stage))
        })
        .await
        .inspect_err(|err| self.relief.on_error(err))?;
        self.file = Some(file);
        self.stage = stage;
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<()> {
        let file = self
            .file
            .take()
            .ok_or_else(|| DiskError::Store("shard writer used after a failed write".to_owned()))?;
        let mut stage = self.stage.take();
        let direct_ok = self.direct_ok.clone();
        // What is still staged is written here: a full drive can show here.
        let relief = self.relief.clone();
        blocking(move || {
            if let Some(stage) = &mut stage {
                stage
                    .flush(&file, &direct_ok)
                    .map_err(|e| DiskError::io(format!("writing {}", self.path.display()), e))?;
            }
            file.sync_data()
                .map_err(|e| DiskError::io(format!("syncing {}", self.path.display()), e))?;
            if let Some(target) = &self.replaces {
                fs::rename(&self.path, target)
                    .map_err(|e| DiskError::io(format!("renaming over {}", target.display()), e))?;
            }
            fsync_dir(&self.dir)
                .map_err(|e| DiskError::io(format!("syncing {}", self.dir.display()), e))?;
            // A file written into a directory that was since removed is not durable anywhere.
            self.liveness.check()?;
            self.relief.full.store(false, Ordering::Release);
            Ok(())
        })
        .await
        .inspect_err(|err| relief.on_error(err))
    }

    async fn abort(mut self: Box<Self>) {
        self.file.take();
        let path = self.path.clone();
        let _ = blocking(move || {
            let _ = fs::remove_file(&path);
            Ok(())
        })
        .await;
    }
}

struct LocalShardReader {
    file: Arc<fs::File>,
    path: PathBuf,
}

#[async_trait]
impl ShardReader for LocalShardReader {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        let file = self.file.clone();
        let path = self.path.clone();
        blocking(move || {
            // Read into the vector's spare capacity: zeroing a buffer the
            // read then overwrites was 8% of a large GET's CPU.
            let mut buf = Vec::with_capacity(len);
            while buf.len() < len {
                let at = offset + buf.len() as u64;
                let read = rustix::io::pread(&*file, rustix::buffer::spare_capacity(&mut buf), at);
                match read {
                    Ok(0) => {
                        let err = io::Error::from(io::ErrorKind::UnexpectedEof);
                        return Err(DiskError::io(
                            format!("reading {} at {at}", path.display()),
                            err,
                        ));
                    }
                    Ok(_) => {}
                    Err(rustix::io::Errno::INTR) => {}
                    Err(err) => {
                        return Err(DiskError::io(
                            format!("reading {} at {at}", path.display()),
                            err.into(),
                        ));
                    }
                }
            }
            buf.truncate(len);
            Ok(Bytes::from(buf))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_6_drives_share_the_node_metadata_budget() {
        // The default is what a drive had before the node budget.
        let one = LocalDiskOptions::default();
        assert_eq!(
            (one.meta_cache_bytes, one.meta_memtable_bytes),
            (16 << 20, 8 << 20)
        );
        // 64 MiB over 4 drives: 16 MiB each, 8 of cache and 4 per keyspace.
        let four = LocalDiskOptions::node_share(64 << 20, 4);
        assert_eq!(
            (four.meta_cache_bytes, four.meta_memtable_bytes),
            (8 << 20, 4 << 20)
        );
        // The more drives, the smaller each share, down to the store's least.
        let many = LocalDiskOptions::node_share(64 << 20, 100);
        assert_eq!(
            (many.meta_cache_bytes, many.meta_memtable_bytes),
            (1 << 20, 1 << 20)
        );
        // A node with few drives gives each at most what one drive had.
        let few = LocalDiskOptions::node_share(128 << 20, 1);
        assert_eq!(
            (few.meta_cache_bytes, few.meta_memtable_bytes),
            (16 << 20, 8 << 20)
        );
        let none = LocalDiskOptions::node_share(8 << 20, 0);
        assert_eq!(
            (none.meta_cache_bytes, none.meta_memtable_bytes),
            (4 << 20, 2 << 20)
        );
    }
}
