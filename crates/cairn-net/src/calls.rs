//! Every internode call, declared once: its path under
//! [`PREFIX`](crate::proto::PREFIX), the protocol version that brought it,
//! whether it names a drive, and the types of its arguments and answer.
//!
//! The client sends a call as `Peer::call::<calls::ReadObject>(..)` and the
//! server routes it with `Router::add::<calls::ReadObject>(..)`: both take
//! the declaration, so a path, an argument or an answer that differs
//! between the two sides does not compile, and a declared call the server
//! does not route fails a test (`every_declared_call_is_routed`).
//!
//! Arguments and answers are MessagePack with named fields, so a field a
//! later version adds is ignored by an earlier one. Two calls stream:
//! [`ShardWrite`] sends its arguments and then the shard's frames in one
//! body, and [`ShardRead`] answers raw bytes; their declarations fix their
//! paths and arguments, and the server routes them apart.

use cairn_disk::{
    BucketRecord, DiskSpace, Format, ListPage, ListQuery, ListUploadsQuery, MetaOp, MetaOutcome,
    ReadObject as ReadObjectAnswer, UploadPartRecord, UploadRecord, UploadsPage,
};
use cairn_object::worker::WorkerInfo;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::proto::{WireDiskError, args};

/// One internode call.
pub trait Call: 'static {
    /// The path under the internode prefix.
    const PATH: &'static str;
    /// The first protocol version that has the call.
    const SINCE: u32;
    /// Whether the call concerns one drive, named in a header.
    const DRIVE: bool;
    type Args: Serialize + DeserializeOwned + Send + Sync + 'static;
    type Answer: Serialize + DeserializeOwned + Send + 'static;
}

/// What a drive call answers: its result, or the drive's error.
pub type DiskAnswer<T> = Result<T, WireDiskError>;

macro_rules! calls {
    ($(
        $(#[$doc:meta])*
        $name:ident = $path:literal, since $since:literal, $kind:ident: $args:ty => $answer:ty;
    )*) => {
        $(
            $(#[$doc])*
            pub struct $name;

            impl Call for $name {
                const PATH: &'static str = $path;
                const SINCE: u32 = $since;
                const DRIVE: bool = calls!(@drive $kind);
                type Args = $args;
                type Answer = $answer;
            }
        )*

        /// The path of every declared call.
        pub const ALL: &[&str] = &[$($path),*];
    };
    (@drive drive) => { true };
    (@drive node) => { false };
}

calls! {
    /// `format.json`, or `None` on an unformatted drive.
    ReadFormat = "disk/read-format", since 1, drive: () => DiskAnswer<Option<Format>>;
    WriteFormat = "disk/write-format", since 1, drive: Format => DiskAnswer<()>;
    Connect = "disk/connect", since 1, drive: Format => DiskAnswer<()>;
    Space = "disk/space", since 1, drive: () => DiskAnswer<DiskSpace>;
    Commit = "disk/commit", since 1, drive: MetaOp => DiskAnswer<MetaOutcome>;
    ListBuckets = "disk/list-buckets", since 1, drive: () => DiskAnswer<Vec<BucketRecord>>;
    GetBucket = "disk/get-bucket", since 1, drive: args::Bucket => DiskAnswer<BucketRecord>;
    ReadObject = "disk/read-object", since 1, drive: args::ReadObject => DiskAnswer<ReadObjectAnswer>;
    ListObjects = "disk/list-objects", since 1, drive: ListQuery => DiskAnswer<ListPage>;
    ReadUpload = "disk/read-upload", since 1, drive: args::ReadUpload => DiskAnswer<UploadRecord>;
    ListParts = "disk/list-parts", since 1, drive: args::ListParts => DiskAnswer<Vec<UploadPartRecord>>;
    ListUploads = "disk/list-uploads", since 1, drive: ListUploadsQuery => DiskAnswer<UploadsPage>;
    DeleteShards = "disk/delete-shards", since 1, drive: args::Shards => DiskAnswer<()>;
    RemoveShards = "disk/remove-shards", since 1, drive: args::Shards => DiskAnswer<()>;
    PurgeTrash = "disk/purge-trash", since 1, drive: args::Grace => DiskAnswer<u64>;
    RemoveOrphans = "disk/remove-orphans", since 1, drive: args::Grace => DiskAnswer<u64>;
    /// Opens a shard file for reading; answers the handle [`ShardRead`] reads by.
    ShardOpen = "disk/shard-open", since 1, drive: args::Shard => DiskAnswer<u64>;
    ShardClose = "disk/shard-close", since 1, drive: args::Handle => DiskAnswer<()>;
    /// Streamed: `[u32 length][arguments]`, then `[tag][u32 length][frame]`
    /// records, ending with a finish record (`proto::FRAME_FINISH`).
    ShardWrite = "disk/shard-write", since 1, drive: args::Shard => DiskAnswer<()>;
    /// Answers the bytes read, raw (`proto::HEADER_RESULT` says `ok`), or a
    /// MessagePack drive error.
    ShardRead = "disk/shard-read", since 1, drive: args::ReadAt => DiskAnswer<()>;
    /// Whether the lock was granted.
    LockAcquire = "lock/acquire", since 1, node: args::Lock => bool;
    LockRelease = "lock/release", since 1, node: args::Unlock => ();
    /// One answer per lock: still held.
    LockRefreshBatch = "lock/refresh-batch", since 2, node: args::RefreshBatch => Vec<bool>;
    /// A node that has just started asks to have its drives taken back.
    Rejoin = "rejoin", since 1, node: () => ();
    /// The node's background workers (for the admin API of any node).
    Workers = "workers/list", since 3, node: () => Vec<WorkerInfo>;
    /// Pauses or resumes a worker; whether the node has one of that name.
    PauseWorker = "workers/pause", since 3, node: args::PauseWorker => bool;
    /// A bucket's state (existence, configuration) changed: drop your copy.
    BucketChanged = "bucket/changed", since 3, node: args::Bucket => ();
}

/// Whether `path` names a declared call.
pub fn is_declared(path: &str) -> bool {
    ALL.contains(&path)
}
