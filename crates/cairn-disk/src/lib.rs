//! Drives: the [`Disk`] trait through which the object layer reaches every
//! drive, and [`LocalDisk`], its implementation for a directory on this node.
//!
//! A drive holds two kinds of state (docs/design.md section 3):
//! * metadata (buckets, object versions, the data of small objects) in an
//!   embedded transactional key-value store, batched into group commits;
//! * shard files for larger objects under `.cairn.sys/data/`, named by a fresh
//!   data id and never by the object key, each block framed with its bitrot hash.
//!
//! The trait is the seam for distribution: a remote drive implements the same
//! trait over the internode protocol, so the object layer sees
//! `Vec<Arc<dyn Disk>>` and never asks where a drive lives.
//!
//! This crate knows nothing of erasure coding, quorum or S3.

mod direct;
mod error;
pub mod faults;
mod format;
mod local;
pub mod meta;
mod store;
mod watched;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use error::{DiskError, Result};
pub use faults::{Faults, FaultyDisk};
pub use format::{DISTRIBUTION, FORMAT_VERSION, Format};
pub use local::{LocalDisk, LocalDiskOptions, MAX_DRIVE_META_MEMORY};
pub use meta::{
    BucketRecord, ErasureMeta, ObjectRecord, ObjectVersion, PartMeta, UploadPartRecord,
    UploadRecord, VersionIdentity,
};
pub use watched::{DEFAULT_CALL_DEADLINE, Deadlines, REMOTE_MARGIN, WatchedDisk};

/// One drive, local or remote.
///
/// Every method fails fast with [`DiskError::Offline`] while the drive is
/// unusable; the object layer counts such failures against quorum.
#[async_trait]
pub trait Disk: Send + Sync + 'static {
    /// Where the drive is, for logs and errors: a path, or a URL for remote drives.
    fn endpoint(&self) -> &str;

    /// Whether the drive was usable at its last operation.
    fn is_online(&self) -> bool;

    /// Why the drive is offline, if it is.
    fn offline_reason(&self) -> Option<String>;

    /// How long the drive's calls have lately taken (a moving average), when
    /// known: readers prefer drives that answer fast ([`WatchedDisk`]).
    fn latency(&self) -> Option<std::time::Duration> {
        None
    }

    /// Tells the drive that a caller gave up waiting for it. A
    /// [`WatchedDisk`] then fails calls fast until the drive answers its
    /// monitor again; a remote drive drops its node's connection, which
    /// every drive of that node shares.
    fn stall(&self, reason: &str) {
        let _ = reason;
    }

    /// Reads `format.json` without changing the drive's state.
    /// `Ok(None)` means the drive is reachable and unformatted.
    async fn read_format(&self) -> Result<Option<Format>>;

    /// Writes `format.json` durably (a fresh or replaced drive joining its
    /// slot). A format already on the drive is never replaced: the same
    /// format is accepted as written, any other is refused.
    async fn write_format(&self, format: &Format) -> Result<()>;

    /// Brings the drive online as the drive `expected.this` of `expected`'s
    /// deployment, refusing (and staying offline) if it holds anything else.
    async fn connect(&self, expected: &Format) -> Result<()>;

    /// Capacity figures, when the platform gives them.
    async fn space(&self) -> Result<DiskSpace>;

    /// Applies one metadata change durably. Concurrent calls are batched
    /// into one commit; the call returns once its change is durable.
    async fn commit(&self, op: MetaOp) -> Result<MetaOutcome>;

    async fn list_buckets(&self) -> Result<Vec<BucketRecord>>;

    async fn get_bucket(&self, bucket: &str) -> Result<BucketRecord>;

    /// Reads an object's record and, when asked, the inline data of one version.
    async fn read_object(&self, bucket: &str, key: &str, data: ReadData) -> Result<ReadObject>;

    /// True when this drive's reads are blocking I/O on this machine, so a
    /// caller may batch several drives' reads into one blocking task with
    /// [`Disk::read_object_blocking`]; false for drives read over the network.
    fn reads_block(&self) -> bool {
        false
    }

    /// True when a shard stream takes frames into buffers on the way before
    /// the drive has them (a drive on another node, whose stream holds
    /// megabytes): a frame taken then says nothing of the drive.
    fn streams_buffer(&self) -> bool {
        false
    }

    /// [`Disk::read_object`] on the calling thread, which must be one that
    /// may block (the blocking pool). Only drives whose [`Disk::reads_block`]
    /// is true implement it.
    fn read_object_blocking(&self, bucket: &str, key: &str, data: ReadData) -> Result<ReadObject> {
        let _ = (bucket, key, data);
        Err(DiskError::Store(format!(
            "{}: a blocking read of a drive that reads asynchronously",
            self.endpoint()
        )))
    }

    /// One page of this drive's object records in key order.
    async fn list_objects(&self, query: &ListQuery) -> Result<ListPage>;

    /// A value that changes whenever a commit to this drive may have
    /// changed a listing of `bucket`, read before a listing to tell later
    /// whether its pages are still what the drive holds: if two readings
    /// are equal, no commit touched the bucket between them. The new value
    /// is in place before the commit's caller hears it is done. `None`
    /// when the drive cannot tell (drives on other nodes, which other
    /// nodes write to, and offline drives).
    fn list_generation(&self, bucket: &str) -> Option<u64> {
        let _ = bucket;
        None
    }

    /// A multipart upload's record; [`DiskError::NotFound`] if it is not here.
    async fn read_upload(&self, bucket: &str, key: &str, upload_id: Uuid) -> Result<UploadRecord>;

    /// Parts of an upload numbered above `after`, in order, at most `limit`.
    async fn list_parts(
        &self,
        upload_id: Uuid,
        after: u32,
        limit: usize,
    ) -> Result<Vec<UploadPartRecord>>;

    /// One page of this drive's multipart uploads, by key then initiation.
    async fn list_uploads(&self, query: &ListUploadsQuery) -> Result<UploadsPage>;

    /// Creates shard file `part` of `data_id` for writing.
    async fn create_shard(&self, data_id: Uuid, part: u32) -> Result<Box<dyn ShardWriter>>;

    /// Writes shard file `part` of `data_id` anew, replacing any file of that
    /// name atomically when finished (healing a corrupt or partial shard):
    /// readers see the old file or the whole new one, never a partial one.
    async fn replace_shard(&self, data_id: Uuid, part: u32) -> Result<Box<dyn ShardWriter>>;

    /// Opens shard file `part` of `data_id` for reading. The returned reader
    /// keeps reading the file even if it is deleted afterwards, so a GET that
    /// opened its shards survives a concurrent overwrite.
    async fn open_shard(&self, data_id: Uuid, part: u32) -> Result<Box<dyn ShardReader>>;

    /// Deletes the shard files of `data_id`. Missing files are not an error.
    /// Deleted files stay readable through [`Disk::open_shard`] until
    /// [`Disk::purge_trash`] removes them, so that a GET which resolved an
    /// object before it was overwritten can still read its later parts.
    async fn delete_shards(&self, data_id: Uuid, parts: &[u32]) -> Result<()>;

    /// Removes the shard files of `data_id` at once, for data no reader can
    /// have resolved: upload parts (aborted, replaced, left out of the
    /// completed object) and writes that failed. Missing files are not an error.
    async fn remove_shards(&self, data_id: Uuid, parts: &[u32]) -> Result<()>;

    /// Removes deleted shard files older than `grace`; returns how many.
    async fn purge_trash(&self, grace: std::time::Duration) -> Result<usize>;

    /// Removes shard files that no metadata on this drive names and that
    /// are older than `grace` (left by crashed writes or interrupted heals);
    /// returns how many.
    async fn remove_orphans(&self, grace: std::time::Duration) -> Result<usize>;
}

/// Writes one shard file. Dropping it without [`ShardWriter::finish`] leaves
/// an orphan that the scanner removes; call [`ShardWriter::abort`] to remove it now.
#[async_trait]
pub trait ShardWriter: Send {
    async fn write(&mut self, frame: Bytes) -> Result<()>;
    /// Makes everything written durable (file and directory entry).
    async fn finish(self: Box<Self>) -> Result<()>;
    async fn abort(self: Box<Self>);
}

/// Reads ranges of one shard file.
#[async_trait]
pub trait ShardReader: Send + Sync {
    /// Reads exactly `len` bytes at `offset`.
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes>;
}

/// Drive capacity in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskSpace {
    pub total: u64,
    pub free: u64,
}

/// A metadata change, applied atomically on one drive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MetaOp {
    /// Creates a bucket; [`DiskError::BucketExists`] if present.
    MakeBucket(BucketRecord),
    /// Deletes a bucket; unless `force`, [`DiskError::BucketNotEmpty`] if it
    /// holds object records. With `force` its records go with it.
    DeleteBucket { name: String, force: bool },
    /// Adds `version`, replacing any version with the same version id;
    /// returns the replaced versions.
    PutVersion {
        bucket: String,
        key: String,
        version: ObjectVersion,
        inline: Option<Bytes>,
    },
    /// Removes every version with `version_id`; returns them.
    DeleteVersion {
        bucket: String,
        key: String,
        version_id: Uuid,
    },
    /// Undoes a `PutVersion` that did not reach quorum: removes the version
    /// with `data_id` and puts `previous` (what that put replaced) back.
    RevertPut {
        bucket: String,
        key: String,
        data_id: Uuid,
        previous: Vec<RemovedVersion>,
    },
    /// Starts a multipart upload.
    CreateUpload {
        bucket: String,
        key: String,
        upload: UploadRecord,
    },
    /// Records an uploaded part, replacing any earlier upload of its number;
    /// [`DiskError::NotFound`] if the upload is not here.
    PutPart {
        bucket: String,
        key: String,
        upload_id: Uuid,
        part: UploadPartRecord,
    },
    /// Completes an upload: `version` (whose parts reference the upload's
    /// part files) replaces the key's version like `PutVersion`, and the
    /// upload's records go; parts it does not use are returned.
    CompleteUpload {
        bucket: String,
        key: String,
        upload_id: Uuid,
        version: ObjectVersion,
    },
    /// Removes an upload and returns its parts.
    AbortUpload {
        bucket: String,
        key: String,
        upload_id: Uuid,
    },
    /// Replaces the metadata of the version written with `data_id` (and,
    /// when given, its modification time), keeping its data;
    /// [`DiskError::NotFound`] if that version is not here.
    UpdateMeta {
        bucket: String,
        key: String,
        data_id: Uuid,
        meta: std::collections::BTreeMap<String, String>,
        mod_time_ns: Option<i64>,
    },
    /// Records that this drive holds every object of its set that was
    /// acknowledged before the call: its set was created on it, or a refill
    /// rebuilt it. A drive formatted into its slot lacks the mark until then
    /// ([`ListPage::complete`]).
    MarkComplete,
}

impl MetaOp {
    /// The bucket whose listings the change may alter; `None` for changes
    /// to the drive itself, which may alter any listing.
    pub fn bucket(&self) -> Option<&str> {
        match self {
            MetaOp::MakeBucket(record) => Some(&record.name),
            MetaOp::DeleteBucket { name, .. } => Some(name),
            MetaOp::PutVersion { bucket, .. }
            | MetaOp::DeleteVersion { bucket, .. }
            | MetaOp::RevertPut { bucket, .. }
            | MetaOp::CreateUpload { bucket, .. }
            | MetaOp::PutPart { bucket, .. }
            | MetaOp::CompleteUpload { bucket, .. }
            | MetaOp::AbortUpload { bucket, .. }
            | MetaOp::UpdateMeta { bucket, .. } => Some(bucket),
            MetaOp::MarkComplete => None,
        }
    }
}

/// A version removed by a metadata change, with its inline data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemovedVersion {
    pub version: ObjectVersion,
    pub inline: Option<Bytes>,
}

/// What a metadata change removed, for the caller to delete its data.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MetaOutcome {
    /// Object versions replaced or deleted.
    pub removed: Vec<RemovedVersion>,
    /// Multipart parts replaced, aborted or left unused by a completion.
    pub removed_parts: Vec<UploadPartRecord>,
}

/// Which inline data [`Disk::read_object`] returns with the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadData {
    None,
    /// That of the newest version, if it is inline.
    Latest,
    /// That of the version written with this data id.
    Version(Uuid),
}

/// An object record and the inline data asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadObject {
    pub record: ObjectRecord,
    pub inline: Option<Bytes>,
}

/// A page request over one bucket's keys, in key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    pub bucket: String,
    /// Only keys starting with this.
    pub prefix: String,
    /// Only entries (keys or common prefixes) after this.
    pub start_after: Option<String>,
    /// Roll keys that contain this after `prefix` up into one common prefix.
    pub delimiter: Option<String>,
    /// Most entries in the page.
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListEntry {
    /// A key and its versions as a listing needs them: identities, flags,
    /// sizes, ETags and layouts, without part lists and metadata
    /// ([`meta::decode_for_listing`]).
    Object {
        key: String,
        record: ObjectRecord,
    },
    Prefix(String),
}

impl ListEntry {
    /// The key, or the common prefix: the position of the entry in the listing.
    pub fn name(&self) -> &str {
        match self {
            ListEntry::Object { key, .. } => key,
            ListEntry::Prefix(prefix) => prefix,
        }
    }
}

/// A page request over one bucket's multipart uploads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListUploadsQuery {
    pub bucket: String,
    pub prefix: String,
    /// Only uploads after this key (and, for this key, after `upload_id_marker`).
    pub key_marker: Option<String>,
    pub upload_id_marker: Option<Uuid>,
    pub delimiter: Option<String>,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UploadEntry {
    Upload { key: String, upload: UploadRecord },
    Prefix(String),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UploadsPage {
    pub entries: Vec<UploadEntry>,
    pub truncated: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListPage {
    pub entries: Vec<ListEntry>,
    /// More entries may follow the last one.
    pub truncated: bool,
    /// The drive carries the mark of [`MetaOp::MarkComplete`]: it misses at
    /// most the writes made while it was offline, never whole sets of
    /// objects. A listing may rely on fewer drives only when they are
    /// complete; absent from old peers' answers, which read as incomplete.
    #[serde(default)]
    pub complete: bool,
}
