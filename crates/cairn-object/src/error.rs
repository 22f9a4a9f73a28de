use cairn_disk::DiskError;

/// An error from a request body stream, as the protocol layer produced it.
/// The S3 layer downcasts it back to turn it into the right S3 error.
pub type BodyError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the object layer. The S3 layer maps each variant to one S3
/// error code in one place (`cairn-s3/src/error.rs`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid bucket name {0:?}")]
    InvalidBucketName(String),
    #[error("invalid object name: {0}")]
    InvalidObjectName(String),
    #[error("object key is {len} bytes, the limit is 1024")]
    KeyTooLong { len: usize },
    #[error("bucket not found")]
    BucketNotFound,
    #[error("bucket already exists")]
    BucketExists,
    #[error("bucket is not empty")]
    BucketNotEmpty,
    #[error("object not found")]
    ObjectNotFound,
    #[error("multipart upload not found")]
    NoSuchUpload,
    #[error("part {number}: {reason}")]
    InvalidPart { number: u32, reason: String },
    #[error("part {number} was asked for; the object has {parts} parts")]
    InvalidPartNumber { number: u32, parts: usize },
    #[error("the parts are not in ascending order")]
    InvalidPartOrder,
    #[error("part {number} is {size} bytes; every part but the last must be at least {min}")]
    EntityTooSmall { number: u32, size: u64, min: u64 },
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("not modified")]
    NotModified { etag: String, mod_time_ns: i64 },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("malformed XML: {0}")]
    MalformedXml(String),
    #[error("range not satisfiable for an object of {size} bytes")]
    InvalidRange { size: u64 },
    #[error("body MD5 {computed} does not match Content-MD5 {expected}")]
    BadDigest { expected: String, computed: String },
    #[error("body has {received} bytes, {expected} were declared")]
    IncompleteBody { expected: u64, received: u64 },
    #[error("object of {size} bytes exceeds the limit of {max} bytes")]
    EntityTooLarge { size: u64, max: u64 },
    #[error("write quorum not reached: {ok} of {needed} drives succeeded ({})", errors.join("; "))]
    WriteQuorum {
        ok: usize,
        needed: usize,
        errors: Vec<String>,
    },
    /// Too many drives had no space left for write quorum.
    #[error("storage full: {full} drives have no space left and write quorum needs {needed} ({})", errors.join("; "))]
    StorageFull {
        full: usize,
        needed: usize,
        errors: Vec<String>,
    },
    #[error("read quorum not reached: {ok} of {needed} drives answered ({})", errors.join("; "))]
    ReadQuorum {
        ok: usize,
        needed: usize,
        errors: Vec<String>,
    },
    #[error("timed out waiting for the lock on {resource}")]
    LockTimeout { resource: String },
    /// The lease of a cluster lock could not be refreshed on a quorum of
    /// nodes, so the operation holding it was abandoned before committing.
    #[error("lost the lock on {resource}: its lease could not be refreshed on a quorum of nodes")]
    LockLost { resource: String },
    #[error("request body: {0}")]
    Body(BodyError),
    #[error("drive {endpoint}: {source}")]
    Disk {
        endpoint: String,
        #[source]
        source: DiskError,
    },
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// True for the errors that mean "try again later": lost quorum, lock timeouts.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Error::WriteQuorum { .. }
                | Error::ReadQuorum { .. }
                | Error::LockTimeout { .. }
                | Error::LockLost { .. }
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
