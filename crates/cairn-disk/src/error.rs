use std::io;

/// Errors of one drive. The object layer counts these per drive to decide
/// quorum, so the variants separate "this drive is unusable" ([`DiskError::Offline`])
/// from answers about the data ([`DiskError::NotFound`] and friends).
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The drive cannot be used at all right now: its directory is gone,
    /// unreadable, or holds another drive. Nothing was changed on it.
    #[error("drive offline: {0}")]
    Offline(String),
    /// The drive is reachable but has no `format.json` yet.
    #[error("drive is not formatted")]
    Unformatted,
    #[error("bucket not found")]
    BucketNotFound,
    #[error("bucket already exists")]
    BucketExists,
    #[error("bucket not empty")]
    BucketNotEmpty,
    /// The object, version or shard file asked for is not on this drive.
    #[error("not found")]
    NotFound,
    /// A stored record failed to decode: a bug or on-disk corruption.
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("metadata store: {0}")]
    Store(String),
    /// The drive has no space left for what was asked. Nothing of it was kept.
    #[error("drive full: {0}")]
    Full(String),
}

impl DiskError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> DiskError {
        if source.kind() == io::ErrorKind::StorageFull {
            return DiskError::Full(format!("{}: {source}", context.into()));
        }
        DiskError::Io {
            context: context.into(),
            source,
        }
    }

    /// True when the error says the drive is unusable rather than something
    /// about the data asked for.
    pub fn is_offline(&self) -> bool {
        matches!(self, DiskError::Offline(_) | DiskError::Unformatted)
    }
}

pub type Result<T, E = DiskError> = std::result::Result<T, E>;
