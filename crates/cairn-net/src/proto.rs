//! The internode protocol: paths, versions, and the wire form of requests,
//! answers and errors.
//!
//! Every request is an HTTP/2 request on the main listener under
//! [`PREFIX`], authenticated as `auth.rs` describes. Arguments and answers
//! are MessagePack with named fields, so a field added by a later version
//! is ignored by an earlier one. Shard data is never MessagePack: writes
//! stream frames in the request body, reads return raw bytes.
//!
//! ## Versions
//!
//! Each node speaks a range of versions and announces it in its hello; two
//! peers use the highest version both speak. A release must keep speaking
//! its predecessor's version, so a cluster stays available while its nodes
//! are upgraded one at a time (docs/design.md section 5).
//!
//! * 1: drives (metadata, streamed shard writes, shard reads by handle),
//!   locks with one refresh request per lock. No longer spoken.
//! * 2: adds `lock/refresh-batch`: one request refreshes every lock this
//!   node holds on a peer.
//! * 3: tokens bound to the receiving node's run, the sender's run and a
//!   sequence number, and a digest of the body, so that no request can be
//!   replayed (`auth.rs`); a streamed shard write ends with a MAC over all
//!   it sent. The hello names each side's run.
//!
//! Every call is declared once, in `calls.rs`.

use serde::{Deserialize, Serialize};

use cairn_disk::DiskError;

/// Every internode path starts with this; S3 never sees it.
pub const PREFIX: &str = "/cairn/internode/";

/// The lowest version this release speaks: the previous release's highest.
pub const VERSION_MIN: u32 = 2;
/// The highest version this release speaks.
pub const VERSION_MAX: u32 = 3;

/// The first version whose tokens bind runs, sequence numbers and body
/// digests.
pub const VERSION_BOUND_TOKENS: u32 = 3;

/// A range of protocol versions, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRange {
    pub min: u32,
    pub max: u32,
}

impl VersionRange {
    pub const THIS_RELEASE: VersionRange = VersionRange {
        min: VERSION_MIN,
        max: VERSION_MAX,
    };

    /// Parses `min-max` or a single version.
    pub fn parse(text: &str) -> Option<VersionRange> {
        let (min, max) = match text.split_once('-') {
            Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
            None => {
                let v = text.trim().parse().ok()?;
                (v, v)
            }
        };
        (min <= max).then_some(VersionRange { min, max })
    }

    pub fn contains(&self, version: u32) -> bool {
        (self.min..=self.max).contains(&version)
    }

    /// The highest version both ranges contain.
    pub fn common(&self, other: &VersionRange) -> Option<u32> {
        let high = self.max.min(other.max);
        (high >= self.min.max(other.min)).then_some(high)
    }

    /// Why two ranges cannot talk, and what to do, for logs and refusals.
    pub fn mismatch(&self, this_node: &str, other: &VersionRange, other_node: &str) -> String {
        let remedy = if other.max < self.min {
            format!(
                "upgrade {other_node} to this release (or one that speaks version {})",
                self.min
            )
        } else {
            format!(
                "upgrade {this_node} to a release that speaks version {}",
                other.min
            )
        };
        format!(
            "internode protocol versions do not overlap: {other_node} speaks {other}, {this_node} speaks {self}; {remedy}; nodes are upgraded one release at a time, as each release speaks its predecessor's protocol"
        )
    }
}

impl std::fmt::Display for VersionRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.min == self.max {
            write!(f, "version {}", self.min)
        } else {
            write!(f, "versions {} to {}", self.min, self.max)
        }
    }
}

/// What a node answers to a hello.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    pub node: String,
    pub versions: VersionRange,
    pub time_ms: i64,
    /// The answering node's run (version 3), which requests to it name.
    #[serde(default)]
    pub boot: Option<u64>,
}

/// Response header naming why a request was refused before it ran.
pub const HEADER_REFUSAL: &str = "x-cairn-refusal";

/// Why a peer refused a request before running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The token does not verify: the nodes have different secrets.
    BadToken,
    ClockSkew,
    /// The version range or the version used does not fit.
    Version,
    /// The request names a drive that is not on that node.
    UnknownDrive,
    /// The node is not serving internode requests (it is shutting down).
    Unavailable,
    Malformed,
    /// Sent to an earlier run of the node, or from a run it has had no
    /// hello from: reconnect.
    Stale,
    /// A request this node has already served: a replay.
    Replayed,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::BadToken => "bad-token",
            Refusal::ClockSkew => "clock-skew",
            Refusal::Version => "version",
            Refusal::UnknownDrive => "unknown-drive",
            Refusal::Unavailable => "unavailable",
            Refusal::Malformed => "malformed",
            Refusal::Stale => "stale",
            Refusal::Replayed => "replayed",
        }
    }

    pub fn parse(text: &str) -> Option<Refusal> {
        Some(match text {
            "bad-token" => Refusal::BadToken,
            "clock-skew" => Refusal::ClockSkew,
            "version" => Refusal::Version,
            "unknown-drive" => Refusal::UnknownDrive,
            "unavailable" => Refusal::Unavailable,
            "malformed" => Refusal::Malformed,
            "stale" => Refusal::Stale,
            "replayed" => Refusal::Replayed,
            _ => return None,
        })
    }
}

/// A drive error on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WireDiskError {
    Offline(String),
    Unformatted,
    BucketNotFound,
    BucketExists,
    BucketNotEmpty,
    NotFound,
    Corrupt { what: String, detail: String },
    Io { context: String, message: String },
    Store(String),
    Full(String),
}

impl From<&DiskError> for WireDiskError {
    fn from(err: &DiskError) -> WireDiskError {
        match err {
            DiskError::Offline(reason) => WireDiskError::Offline(reason.clone()),
            DiskError::Unformatted => WireDiskError::Unformatted,
            DiskError::BucketNotFound => WireDiskError::BucketNotFound,
            DiskError::BucketExists => WireDiskError::BucketExists,
            DiskError::BucketNotEmpty => WireDiskError::BucketNotEmpty,
            DiskError::NotFound => WireDiskError::NotFound,
            DiskError::Corrupt { what, detail } => WireDiskError::Corrupt {
                what: (*what).to_owned(),
                detail: detail.clone(),
            },
            DiskError::Io { context, source } => WireDiskError::Io {
                context: context.clone(),
                message: source.to_string(),
            },
            DiskError::Store(msg) => WireDiskError::Store(msg.clone()),
            DiskError::Full(msg) => WireDiskError::Full(msg.clone()),
        }
    }
}

impl WireDiskError {
    /// Back to a drive error; `node` names where it happened.
    pub fn into_disk_error(self) -> DiskError {
        match self {
            WireDiskError::Offline(reason) => DiskError::Offline(reason),
            WireDiskError::Unformatted => DiskError::Unformatted,
            WireDiskError::BucketNotFound => DiskError::BucketNotFound,
            WireDiskError::BucketExists => DiskError::BucketExists,
            WireDiskError::BucketNotEmpty => DiskError::BucketNotEmpty,
            WireDiskError::NotFound => DiskError::NotFound,
            WireDiskError::Corrupt { what, detail } => DiskError::Corrupt {
                what: static_what(&what),
                detail,
            },
            WireDiskError::Io { context, message } => DiskError::Io {
                context,
                source: std::io::Error::other(message),
            },
            WireDiskError::Store(msg) => DiskError::Store(msg),
            WireDiskError::Full(msg) => DiskError::Full(msg),
        }
    }
}

/// `DiskError::Corrupt` names what is corrupt with a static string.
fn static_what(what: &str) -> &'static str {
    match what {
        "format.json" => "format.json",
        "object record" => "object record",
        "bucket record" => "bucket record",
        "upload record" => "upload record",
        "part record" => "part record",
        "object key" => "object key",
        "upload key" => "upload key",
        _ => "record",
    }
}

pub fn encode<T: Serialize>(value: &T) -> bytes::Bytes {
    rmp_serde::to_vec_named(value)
        .expect("internode messages always encode")
        .into()
}

pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, String> {
    rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
}

/// Percent-encodes a drive path for a header value.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn decode_path(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_use_the_highest_common_version() {
        let this = VersionRange { min: 1, max: 2 };
        assert_eq!(this.common(&VersionRange { min: 1, max: 1 }), Some(1));
        assert_eq!(this.common(&VersionRange { min: 2, max: 3 }), Some(2));
        assert_eq!(this.common(&VersionRange { min: 1, max: 2 }), Some(2));
        assert_eq!(this.common(&VersionRange { min: 3, max: 4 }), None);
        assert_eq!(VersionRange::parse("1-2"), Some(this));
        // This release speaks the previous one's highest version.
        assert!(VersionRange::THIS_RELEASE.contains(2));
        assert_eq!(
            VersionRange::parse("3"),
            Some(VersionRange { min: 3, max: 3 })
        );
        assert_eq!(VersionRange::parse("2-1"), None);
        let msg = this.mismatch("node a", &VersionRange { min: 3, max: 4 }, "node b");
        assert!(
            msg.contains("versions 3 to 4") && msg.contains("versions 1 to 2"),
            "{msg}"
        );
        assert!(msg.contains("upgrade node a"), "{msg}");
    }

    #[test]
    fn drive_paths_survive_headers() {
        for path in ["/tmp/n1/d1", "/mnt/disk 1/ü", "/a%b"] {
            let encoded = encode_path(path);
            assert!(encoded.bytes().all(|b| b.is_ascii_graphic()));
            assert_eq!(decode_path(&encoded).as_deref(), Some(path));
        }
    }
}

/// Arguments of the drive calls, by path under `disk/`.
pub mod args {
    use cairn_disk::ReadData;
    use serde::{Deserialize, Serialize};
    use uuid::Uuid;

    #[derive(Debug, Serialize, Deserialize)]
    pub struct Bucket {
        pub bucket: String,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct ReadObject {
        pub bucket: String,
        pub key: String,
        pub data: ReadData,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct ReadUpload {
        pub bucket: String,
        pub key: String,
        pub upload_id: Uuid,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct ListParts {
        pub upload_id: Uuid,
        pub after: u32,
        pub limit: u64,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct Shard {
        pub data_id: Uuid,
        pub part: u32,
        /// For a shard write: replace an existing file atomically (healing).
        #[serde(default)]
        pub replace: bool,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct Shards {
        pub data_id: Uuid,
        pub parts: Vec<u32>,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct ReadAt {
        pub handle: u64,
        pub offset: u64,
        pub len: u64,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct Handle {
        pub handle: u64,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct Grace {
        pub grace_ms: u64,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct Lock {
        pub resource: String,
        pub uid: Uuid,
        pub write: bool,
        pub ttl_ms: u64,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct Unlock {
        pub resource: String,
        pub uid: Uuid,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct PauseWorker {
        pub name: String,
        pub paused: bool,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct RefreshBatch {
        pub locks: Vec<(String, Uuid)>,
        pub ttl_ms: u64,
    }
}

/// Frame tags of a streamed shard write: `[tag][u32 big-endian length][payload]`.
pub const FRAME_DATA: u8 = 1;
/// Ends a shard write: the receiver makes the file durable and answers.
/// A stream that ends without it is an aborted write.
pub const FRAME_FINISH: u8 = 2;
/// The largest frame a shard write may carry.
pub const MAX_FRAME: usize = 64 << 20;

/// Response header of `disk/shard-read`: `ok` (raw bytes follow) or `err`.
pub const HEADER_RESULT: &str = "x-cairn-result";
/// Request header naming the drive (percent-encoded path).
pub const HEADER_DISK: &str = "x-cairn-disk";
