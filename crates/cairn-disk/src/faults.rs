//! Test-only fault injection: network partitions between nodes, and drives
//! that hang or answer slowly.
//!
//! When `CAIRN_TEST_FAULTS_FILE` names a file, each line of it is a fault:
//! * `block NODE` cuts this node off from `NODE` (`host:port` as in the
//!   drive arguments): requests to it fail as unreachable and requests from
//!   it are refused (the internode crate asks [`Faults::blocks`]);
//! * `hang PATH` makes every call to this node's drive at `PATH` wait until
//!   the line is gone (a hung disk, which cannot be made for real here);
//! * `slow MS PATH` delays every call to that drive by `MS` milliseconds.
//!
//! The file is re-read at most every 200 ms, so a test changes the faults of
//! a running server by rewriting it. Without the variable, a node's drives
//! are not wrapped at all and partitions cost one branch per request.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use uuid::Uuid;

use crate::{
    BucketRecord, Disk, DiskSpace, Format, ListPage, ListQuery, ListUploadsQuery, MetaOp,
    MetaOutcome, ReadData, ReadObject, Result, ShardReader, ShardWriter, UploadPartRecord,
    UploadRecord, UploadsPage,
};

pub const ENV: &str = "CAIRN_TEST_FAULTS_FILE";

const RELOAD: Duration = Duration::from_millis(200);

/// How long a hung call waits at most for its fault to be lifted, so that
/// a forgotten fault file cannot keep a thread forever.
const MAX_HANG: Duration = Duration::from_secs(600);

/// What is wrong with one drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveFault {
    Hang,
    Slow(Duration),
}

#[derive(Default)]
struct Rules {
    blocked: HashSet<String>,
    drives: Vec<(String, DriveFault)>,
}

fn parse(text: &str) -> Rules {
    let mut rules = Rules::default();
    for line in text.lines().map(str::trim) {
        if let Some(node) = line.strip_prefix("block ") {
            rules.blocked.insert(node.trim().to_owned());
        } else if let Some(path) = line.strip_prefix("hang ") {
            rules
                .drives
                .push((path.trim().to_owned(), DriveFault::Hang));
        } else if let Some(rest) = line.strip_prefix("slow ")
            && let Some((ms, path)) = rest.trim().split_once(' ')
            && let Ok(ms) = ms.parse()
        {
            let fault = DriveFault::Slow(Duration::from_millis(ms));
            rules.drives.push((path.trim().to_owned(), fault));
        }
    }
    rules
}

/// The faults file, re-read as it changes.
pub struct Faults {
    file: Option<PathBuf>,
    cached: Mutex<(Option<Instant>, Arc<Rules>)>,
}

impl Faults {
    pub fn from_env() -> Faults {
        Faults::at(std::env::var_os(ENV).map(PathBuf::from))
    }

    pub fn none() -> Faults {
        Faults::at(None)
    }

    /// The faults `file` names (tests that build drives themselves).
    pub fn from_file(file: impl Into<PathBuf>) -> Faults {
        Faults::at(Some(file.into()))
    }

    fn at(file: Option<PathBuf>) -> Faults {
        Faults {
            file,
            cached: Mutex::new((None, Arc::default())),
        }
    }

    /// True when a faults file is configured.
    pub fn enabled(&self) -> bool {
        self.file.is_some()
    }

    fn rules(&self) -> Arc<Rules> {
        let Some(file) = &self.file else {
            return Arc::default();
        };
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if cached.0.is_none_or(|at| at.elapsed() >= RELOAD) {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            *cached = (Some(Instant::now()), Arc::new(parse(&text)));
        }
        cached.1.clone()
    }

    /// True when traffic to or from `node` is cut.
    pub fn blocks(&self, node: &str) -> bool {
        self.file.is_some() && self.rules().blocked.contains(node)
    }

    /// The fault of the drive at `path`, if it has one.
    pub fn drive(&self, path: &str) -> Option<DriveFault> {
        self.file.as_ref()?;
        let rules = self.rules();
        rules
            .drives
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, fault)| *fault)
    }
}

/// A drive with the faults the faults file gives its path.
pub struct FaultyDisk {
    inner: Arc<dyn Disk>,
    path: String,
    faults: Arc<Faults>,
}

impl FaultyDisk {
    pub fn new(inner: Arc<dyn Disk>, path: &str, faults: Arc<Faults>) -> FaultyDisk {
        FaultyDisk {
            inner,
            path: path.to_owned(),
            faults,
        }
    }
}

/// Waits as the drive's fault says, on the async runtime.
async fn suffer(faults: &Faults, path: &str) {
    let started = Instant::now();
    loop {
        match faults.drive(path) {
            None => return,
            Some(DriveFault::Slow(delay)) => return tokio::time::sleep(delay).await,
            Some(DriveFault::Hang) if started.elapsed() < MAX_HANG => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Some(DriveFault::Hang) => return,
        }
    }
}

/// [`suffer`] on a thread that may block, as a real hung disk blocks it.
fn suffer_blocking(faults: &Faults, path: &str) {
    let started = Instant::now();
    loop {
        match faults.drive(path) {
            None => return,
            Some(DriveFault::Slow(delay)) => return std::thread::sleep(delay),
            Some(DriveFault::Hang) if started.elapsed() < MAX_HANG => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Some(DriveFault::Hang) => return,
        }
    }
}

#[async_trait]
impl Disk for FaultyDisk {
    fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    fn is_online(&self) -> bool {
        self.inner.is_online()
    }

    fn offline_reason(&self) -> Option<String> {
        self.inner.offline_reason()
    }

    async fn read_format(&self) -> Result<Option<Format>> {
        suffer(&self.faults, &self.path).await;
        self.inner.read_format().await
    }

    async fn write_format(&self, format: &Format) -> Result<()> {
        suffer(&self.faults, &self.path).await;
        self.inner.write_format(format).await
    }

    async fn connect(&self, expected: &Format) -> Result<()> {
        suffer(&self.faults, &self.path).await;
        self.inner.connect(expected).await
    }

    async fn space(&self) -> Result<DiskSpace> {
        suffer(&self.faults, &self.path).await;
        self.inner.space().await
    }

    async fn commit(&self, op: MetaOp) -> Result<MetaOutcome> {
        suffer(&self.faults, &self.path).await;
        self.inner.commit(op).await
    }

    async fn list_buckets(&self) -> Result<Vec<BucketRecord>> {
        suffer(&self.faults, &self.path).await;
        self.inner.list_buckets().await
    }

    async fn get_bucket(&self, bucket: &str) -> Result<BucketRecord> {
        suffer(&self.faults, &self.path).await;
        self.inner.get_bucket(bucket).await
    }

    async fn read_object(&self, bucket: &str, key: &str, data: ReadData) -> Result<ReadObject> {
        suffer(&self.faults, &self.path).await;
        self.inner.read_object(bucket, key, data).await
    }

    fn reads_block(&self) -> bool {
        self.inner.reads_block()
    }

    fn streams_buffer(&self) -> bool {
        self.inner.streams_buffer()
    }

    fn read_object_blocking(&self, bucket: &str, key: &str, data: ReadData) -> Result<ReadObject> {
        suffer_blocking(&self.faults, &self.path);
        self.inner.read_object_blocking(bucket, key, data)
    }

    async fn list_objects(&self, query: &ListQuery) -> Result<ListPage> {
        suffer(&self.faults, &self.path).await;
        self.inner.list_objects(query).await
    }

    fn list_generation(&self, bucket: &str) -> Option<u64> {
        self.inner.list_generation(bucket)
    }

    async fn read_upload(&self, bucket: &str, key: &str, upload_id: Uuid) -> Result<UploadRecord> {
        suffer(&self.faults, &self.path).await;
        self.inner.read_upload(bucket, key, upload_id).await
    }

    async fn list_parts(
        &self,
        upload_id: Uuid,
        after: u32,
        limit: usize,
    ) -> Result<Vec<UploadPartRecord>> {
        suffer(&self.faults, &self.path).await;
        self.inner.list_parts(upload_id, after, limit).await
    }

    async fn list_uploads(&self, query: &ListUploadsQuery) -> Result<UploadsPage> {
        suffer(&self.faults, &self.path).await;
        self.inner.list_uploads(query).await
    }

    async fn create_shard(&self, data_id: Uuid, part: u32) -> Result<Box<dyn ShardWriter>> {
        suffer(&self.faults, &self.path).await;
        let inner = self.inner.create_shard(data_id, part).await?;
        Ok(Box::new(FaultyWriter {
            inner,
            path: self.path.clone(),
            faults: self.faults.clone(),
        }))
    }

    async fn replace_shard(&self, data_id: Uuid, part: u32) -> Result<Box<dyn ShardWriter>> {
        suffer(&self.faults, &self.path).await;
        let inner = self.inner.replace_shard(data_id, part).await?;
        Ok(Box::new(FaultyWriter {
            inner,
            path: self.path.clone(),
            faults: self.faults.clone(),
        }))
    }

    async fn open_shard(&self, data_id: Uuid, part: u32) -> Result<Box<dyn ShardReader>> {
        suffer(&self.faults, &self.path).await;
        let inner = self.inner.open_shard(data_id, part).await?;
        Ok(Box::new(FaultyReader {
            inner,
            path: self.path.clone(),
            faults: self.faults.clone(),
        }))
    }

    async fn delete_shards(&self, data_id: Uuid, parts: &[u32]) -> Result<()> {
        suffer(&self.faults, &self.path).await;
        self.inner.delete_shards(data_id, parts).await
    }

    async fn remove_shards(&self, data_id: Uuid, parts: &[u32]) -> Result<()> {
        suffer(&self.faults, &self.path).await;
        self.inner.remove_shards(data_id, parts).await
    }

    async fn purge_trash(&self, grace: Duration) -> Result<usize> {
        suffer(&self.faults, &self.path).await;
        self.inner.purge_trash(grace).await
    }

    async fn remove_orphans(&self, grace: Duration) -> Result<usize> {
        suffer(&self.faults, &self.path).await;
        self.inner.remove_orphans(grace).await
    }
}

struct FaultyWriter {
    inner: Box<dyn ShardWriter>,
    path: String,
    faults: Arc<Faults>,
}

#[async_trait]
impl ShardWriter for FaultyWriter {
    async fn write(&mut self, frame: Bytes) -> Result<()> {
        suffer(&self.faults, &self.path).await;
        self.inner.write(frame).await
    }

    async fn finish(self: Box<Self>) -> Result<()> {
        suffer(&self.faults, &self.path).await;
        self.inner.finish().await
    }

    async fn abort(self: Box<Self>) {
        self.inner.abort().await
    }
}

struct FaultyReader {
    inner: Box<dyn ShardReader>,
    path: String,
    faults: Arc<Faults>,
}

#[async_trait]
impl ShardReader for FaultyReader {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        suffer(&self.faults, &self.path).await;
        self.inner.read_at(offset, len).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_faults_file_names_nodes_and_drives() {
        let rules = parse("block 127.0.0.1:9001\nhang /tmp/d1\nslow 2000 /tmp/d 2\nslow x /y\n");
        assert!(rules.blocked.contains("127.0.0.1:9001"));
        assert_eq!(
            rules.drives,
            vec![
                ("/tmp/d1".to_owned(), DriveFault::Hang),
                (
                    "/tmp/d 2".to_owned(),
                    DriveFault::Slow(Duration::from_secs(2))
                ),
            ]
        );
    }
}
