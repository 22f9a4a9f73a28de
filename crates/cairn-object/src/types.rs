//! The object layer's request and result types.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use uuid::Uuid;

use cairn_disk::ObjectVersion;

use crate::error::BodyError;

/// A request body: a stream of byte chunks of any size.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>> + Send>>;

/// Called once the body has been read whole and before anything is
/// committed; returns extra metadata to store (checksums the protocol layer
/// verified), or an error that aborts the write.
pub type Finalizer = Box<dyn FnOnce() -> Result<BTreeMap<String, String>, BodyError> + Send>;

/// The reserved bucket that holds system objects (`system.rs`): its leading
/// dot makes it an invalid S3 bucket name, so no client can create, list or
/// address it.
pub const SYSTEM_BUCKET: &str = ".cairn.sys";

/// The largest object a single PUT may create: 5 TiB, S3's largest object
/// and MinIO's single-PUT limit (S3 itself stops a single PUT at 5 GiB).
pub const MAX_OBJECT_SIZE: u64 = 5 << 40;

/// Settings of the object layer.
#[derive(Debug, Clone)]
pub struct ObjectConfig {
    /// Parity shards per object for every set; `None` for the default by set
    /// size of docs/design.md section 2 (`CAIRN_STORAGE_CLASS_STANDARD=EC:N`).
    pub parity: Option<usize>,
    /// Objects whose per-drive shard data is at most this many bytes are
    /// stored inside the metadata store (default 128 KiB).
    pub inline_threshold: usize,
    /// Erasure block size in bytes (default 1 MiB).
    pub block_size: usize,
    /// How long a request waits for a namespace lock before giving up with 503.
    pub lock_timeout: Duration,
    /// How often offline drives are probed for their return.
    pub monitor_interval: Duration,
    /// Multipart uploads older than this are removed (default 24 h).
    pub stale_upload_expiry: Duration,
    /// How often stale uploads are looked for and the trash purged (default 1 h).
    pub janitor_interval: Duration,
    /// How long deleted shard files stay readable for GETs already under
    /// way (default 1 h).
    pub trash_grace: Duration,
    /// Where the heal queue keeps its journal (a directory on one of this
    /// node's drives); `None` keeps the queue in memory only.
    pub heal_queue_dir: Option<std::path::PathBuf>,
    /// Most objects the heal queue holds (`CAIRN_HEAL_QUEUE_MAX`).
    pub heal_queue_max: usize,
    /// Share of the time a drive refill may spend healing; it rests the
    /// rest, so foreground requests keep their latency (`CAIRN_HEAL_DUTY`).
    pub heal_duty: f64,
    /// Objects a heal job (refill, operator heal, scanner pass) heals side
    /// by side (`CAIRN_HEAL_CONCURRENCY`).
    pub heal_concurrency: usize,
    /// How often the scanner passes over each set (`CAIRN_SCANNER_INTERVAL`).
    pub scanner_interval: Duration,
    /// Share of objects, in percent, whose shards a pass verifies frame by
    /// frame (`CAIRN_SCANNER_DEEP_PERCENT`).
    pub scanner_deep_percent: u8,
    /// Shard files no metadata names are removed once older than this
    /// (`CAIRN_SCANNER_ORPHAN_GRACE`).
    pub orphan_grace: Duration,
    /// Most bytes of PUT data in flight between the request bodies and the
    /// drives (blocks being encoded, frames queued or being written),
    /// across all requests (`CAIRN_WRITE_BUFFER_MB`, default 64 MiB): the
    /// server's memory stays bounded however many PUTs arrive at once.
    pub write_buffer: usize,
    /// How long drive calls may take (`CAIRN_DRIVE_MAX_TIMEOUT`); the
    /// drives enforce them (`cairn_disk::WatchedDisk`), and fan-outs wait
    /// at most a remote call's deadline for calls that carry none.
    pub deadlines: cairn_disk::Deadlines,
}

impl Default for ObjectConfig {
    fn default() -> Self {
        ObjectConfig {
            parity: None,
            inline_threshold: 128 << 10,
            block_size: cairn_erasure::DEFAULT_BLOCK_SIZE,
            lock_timeout: Duration::from_secs(30),
            monitor_interval: Duration::from_secs(2),
            stale_upload_expiry: Duration::from_secs(24 * 3600),
            janitor_interval: Duration::from_secs(3600),
            trash_grace: Duration::from_secs(3600),
            heal_queue_dir: None,
            heal_queue_max: 100_000,
            heal_duty: 0.5,
            heal_concurrency: 4,
            write_buffer: 64 << 20,
            deadlines: cairn_disk::Deadlines::default(),
            scanner_interval: Duration::from_secs(3600),
            scanner_deep_percent: 10,
            orphan_grace: Duration::from_secs(3600),
        }
    }
}

/// The default parity for a set of `set_size` drives (docs/design.md section 2).
pub fn default_parity(set_size: usize) -> usize {
    match set_size {
        0 | 1 => 0,
        2 | 3 => 1,
        4 | 5 => 2,
        6 | 7 => 3,
        _ => 4,
    }
}

/// Metadata of one object, as the protocol layer reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    /// Without quotes.
    pub etag: String,
    /// Nanoseconds since the Unix epoch.
    pub mod_time_ns: i64,
    /// `None` for the null version of unversioned buckets.
    pub version_id: Option<Uuid>,
    /// Stored headers (`content-type`, ...) and user metadata (`x-amz-meta-*`).
    pub meta: BTreeMap<String, String>,
    pub parts_count: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    pub name: String,
    pub created_ns: i64,
}

/// A byte range of a GET, before it is checked against the object size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `first..=last`, `last` clamped to the end; `None` means to the end.
    FromTo { first: u64, last: Option<u64> },
    /// The last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The half-open range this selects of an object of `size` bytes, or
    /// `None` when it selects nothing (HTTP 416).
    pub fn resolve(self, size: u64) -> Option<std::ops::Range<u64>> {
        match self {
            ByteRange::FromTo { first, last } => {
                if first >= size {
                    return None;
                }
                let end = match last {
                    Some(last) if last < first => return None,
                    Some(last) => last.min(size - 1) + 1,
                    None => size,
                };
                Some(first..end)
            }
            ByteRange::Suffix(n) if n == 0 || size == 0 => None,
            ByteRange::Suffix(n) => Some(size.saturating_sub(n)..size),
        }
    }
}

/// A listing request over one bucket.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Only entries after this key or common prefix.
    pub start_after: Option<String>,
    pub max_keys: usize,
}

#[derive(Debug, Clone, Default)]
pub struct ListResult {
    pub objects: Vec<ObjectInfo>,
    pub prefixes: Vec<String>,
    /// More entries follow; continue after `next_marker`.
    pub truncated: bool,
    /// The last key or common prefix returned, when truncated.
    pub next_marker: Option<String>,
}

/// Availability of one erasure set, for health endpoints and the start-up log.
#[derive(Debug, Clone)]
pub struct SetHealth {
    pub pool: usize,
    pub set: usize,
    pub drives: usize,
    pub online: usize,
    pub data_shards: usize,
    pub parity_shards: usize,
    pub read_quorum: usize,
    pub write_quorum: usize,
    /// Each drive's endpoint and whether it is online, in slot order.
    pub endpoints: Vec<(String, bool)>,
}

impl SetHealth {
    pub fn can_read(&self) -> bool {
        self.online >= self.read_quorum
    }

    pub fn can_write(&self) -> bool {
        self.online >= self.write_quorum
    }
}

/// [`object_info`] of a version and key that are no longer needed: their
/// strings are moved, not copied.
pub(crate) fn into_object_info(
    bucket: &str,
    key: String,
    mut version: ObjectVersion,
) -> ObjectInfo {
    let etag = std::mem::take(&mut version.etag);
    let meta = std::mem::take(&mut version.meta);
    info_of(bucket, key, etag, meta, &version)
}

pub(crate) fn object_info(bucket: &str, key: &str, version: &ObjectVersion) -> ObjectInfo {
    let (etag, meta) = (version.etag.clone(), version.meta.clone());
    info_of(bucket, key.to_owned(), etag, meta, version)
}

fn info_of(
    bucket: &str,
    key: String,
    etag: String,
    meta: BTreeMap<String, String>,
    version: &ObjectVersion,
) -> ObjectInfo {
    ObjectInfo {
        bucket: bucket.to_owned(),
        key,
        size: version.size,
        etag,
        mod_time_ns: version.mod_time_ns,
        version_id: (!version.version_id.is_nil()).then_some(version.version_id),
        meta,
        parts_count: version.parts.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_like_http() {
        let r = |first, last| ByteRange::FromTo { first, last };
        assert_eq!(r(0, Some(0)).resolve(10), Some(0..1));
        assert_eq!(r(5, None).resolve(10), Some(5..10));
        assert_eq!(r(5, Some(100)).resolve(10), Some(5..10));
        assert_eq!(r(10, None).resolve(10), None);
        assert_eq!(r(0, Some(0)).resolve(0), None);
        assert_eq!(r(3, Some(2)).resolve(10), None);
        assert_eq!(ByteRange::Suffix(3).resolve(10), Some(7..10));
        assert_eq!(ByteRange::Suffix(30).resolve(10), Some(0..10));
        assert_eq!(ByteRange::Suffix(0).resolve(10), None);
        assert_eq!(ByteRange::Suffix(5).resolve(0), None);
    }

    #[test]
    fn default_parity_follows_the_design() {
        let got: Vec<usize> = (1..=16).map(default_parity).collect();
        assert_eq!(got, [0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4]);
    }
}
