//! The records each drive stores in its metadata store.
//!
//! Every encoded record is one format-version byte followed by MessagePack
//! with named fields, so fields can be added (with `#[serde(default)]`)
//! without a migration, and a layout change bumps [`RECORD_VERSION`] and adds
//! an explicit migration in [`decode`].

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{DiskError, Result};

/// Format version of every record written by this build.
pub const RECORD_VERSION: u8 = 1;

/// A bucket as one drive knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    #[serde(rename = "n")]
    pub name: String,
    /// Creation time, nanoseconds since the Unix epoch.
    #[serde(rename = "c")]
    pub created_ns: i64,
}

/// Everything one drive holds about one object key: its versions, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ObjectRecord {
    #[serde(rename = "v")]
    pub versions: Vec<ObjectVersion>,
}

/// One version of an object, as stored on one drive.
///
/// All drives of a set store the same version except for
/// [`ErasureMeta::shard_index`], which says which shard this drive holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectVersion {
    /// The S3 version id; nil is the "null" version of unversioned buckets.
    #[serde(rename = "vid")]
    pub version_id: Uuid,
    /// Fresh for every write: names the shard files and inline data, and
    /// tells two writes of the same version id apart.
    #[serde(rename = "did")]
    pub data_id: Uuid,
    /// Modification time, nanoseconds since the Unix epoch.
    #[serde(rename = "mt")]
    pub mod_time_ns: i64,
    #[serde(rename = "dm", default)]
    pub delete_marker: bool,
    /// Object size in bytes.
    #[serde(rename = "sz")]
    pub size: u64,
    /// ETag without quotes.
    #[serde(rename = "et")]
    pub etag: String,
    #[serde(rename = "ec")]
    pub erasure: ErasureMeta,
    /// True when the shard data lives in the metadata store, not in shard files.
    #[serde(rename = "in")]
    pub inline: bool,
    #[serde(rename = "pt")]
    pub parts: Vec<PartMeta>,
    /// User metadata (`x-amz-meta-*`, lower-case names) and the stored
    /// standard headers (`content-type`, ...), by header name.
    #[serde(rename = "md")]
    pub meta: BTreeMap<String, String>,
}

impl ObjectVersion {
    /// What must agree across drives for them to hold "the same" version.
    pub fn identity(&self) -> VersionIdentity {
        VersionIdentity {
            version_id: self.version_id,
            data_id: self.data_id,
            mod_time_ns: self.mod_time_ns,
        }
    }
}

/// The identity of one written version, compared across drives for quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionIdentity {
    pub mod_time_ns: i64,
    pub version_id: Uuid,
    pub data_id: Uuid,
}

/// How a version's data was erasure coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureMeta {
    #[serde(rename = "d")]
    pub data_shards: u8,
    #[serde(rename = "p")]
    pub parity_shards: u8,
    #[serde(rename = "b")]
    pub block_size: u32,
    /// Which shard of each block this drive holds.
    #[serde(rename = "i")]
    pub shard_index: u8,
    /// Shard `s` lives on drive `(rotation + s) % set_size` of the set.
    #[serde(rename = "r")]
    pub rotation: u8,
    /// Bitrot algorithm id (see `cairn_erasure::BitrotAlgo`).
    #[serde(rename = "h")]
    pub bitrot: u8,
}

/// One part of an object: a single PUT has one part, number 1.
///
/// Each part is erasure coded on its own (its blocks start at its first
/// byte) into shard file `(data id, part number)`, where the data id is the
/// part's own for parts of a multipart upload, else the version's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartMeta {
    #[serde(rename = "n")]
    pub number: u32,
    #[serde(rename = "s")]
    pub size: u64,
    #[serde(rename = "e")]
    pub etag: String,
    /// Set for parts written by a multipart upload.
    #[serde(rename = "d", default)]
    pub data_id: Option<Uuid>,
    /// The part's checksum (base64), for composite multipart checksums.
    #[serde(rename = "c", default)]
    pub checksum: Option<String>,
}

impl ObjectVersion {
    /// The shard file of `part`: its data id and part number.
    pub fn part_file(&self, part: &PartMeta) -> (Uuid, u32) {
        (part.data_id.unwrap_or(self.data_id), part.number)
    }
}

/// A multipart upload in progress, as one drive knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    /// Time-ordered (UUID v7), so one key's uploads list in initiation order.
    #[serde(rename = "u")]
    pub upload_id: Uuid,
    /// Initiation time, nanoseconds since the Unix epoch.
    #[serde(rename = "t")]
    pub initiated_ns: i64,
    /// The layout every part is coded with; `shard_index` is this drive's.
    #[serde(rename = "ec")]
    pub erasure: ErasureMeta,
    /// Headers and user metadata the object will get.
    #[serde(rename = "md")]
    pub meta: BTreeMap<String, String>,
}

/// One uploaded part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadPartRecord {
    #[serde(rename = "n")]
    pub number: u32,
    /// Fresh for every upload of the part: a re-upload never overwrites files.
    #[serde(rename = "d")]
    pub data_id: Uuid,
    #[serde(rename = "s")]
    pub size: u64,
    #[serde(rename = "e")]
    pub etag: String,
    #[serde(rename = "mt")]
    pub mod_time_ns: i64,
    #[serde(rename = "c", default)]
    pub checksum: Option<String>,
}

/// Encodes a record with its format-version byte.
pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    let mut out = vec![RECORD_VERSION];
    rmp_serde::encode::write_named(&mut out, record)
        .expect("records serialize into a Vec without error");
    out
}

/// Decodes a record written by [`encode`] of this or an older build.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    let corrupt = |detail: String| DiskError::Corrupt { what, detail };
    match bytes.split_first() {
        Some((&RECORD_VERSION, body)) => {
            rmp_serde::from_slice(body).map_err(|err| corrupt(err.to_string()))
        }
        Some((version, _)) => Err(corrupt(format!("unknown record version {version}"))),
        None => Err(corrupt("empty record".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_version() -> impl Strategy<Value = ObjectVersion> {
        (
            any::<u128>(),
            any::<u128>(),
            any::<i64>(),
            any::<bool>(),
            any::<u64>(),
            "[0-9a-f]{32}(-[0-9]{1,5})?",
            (
                1u8..16,
                0u8..8,
                any::<u32>(),
                any::<u8>(),
                any::<u8>(),
                any::<u8>(),
            ),
            any::<bool>(),
            proptest::collection::vec(
                (
                    1u32..10_000,
                    any::<u64>(),
                    "[0-9a-f]{32}",
                    proptest::option::of(any::<u128>()),
                ),
                0..4,
            ),
            proptest::collection::btree_map("[a-z-]{1,20}", "\\PC{0,40}", 0..5),
        )
            .prop_map(
                |(vid, did, mt, dm, size, etag, (d, p, b, i, r, h), inline, parts, meta)| {
                    ObjectVersion {
                        version_id: Uuid::from_u128(vid),
                        data_id: Uuid::from_u128(did),
                        mod_time_ns: mt,
                        delete_marker: dm,
                        size,
                        etag,
                        erasure: ErasureMeta {
                            data_shards: d,
                            parity_shards: p,
                            block_size: b,
                            shard_index: i,
                            rotation: r,
                            bitrot: h,
                        },
                        inline,
                        parts: parts
                            .into_iter()
                            .map(|(number, size, etag, data_id)| PartMeta {
                                number,
                                size,
                                checksum: data_id.map(|d| format!("{d:x}")),
                                etag,
                                data_id: data_id.map(Uuid::from_u128),
                            })
                            .collect(),
                        meta,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn object_records_round_trip(versions in proptest::collection::vec(arb_version(), 0..4)) {
            let record = ObjectRecord { versions };
            let bytes = encode(&record);
            prop_assert_eq!(bytes[0], RECORD_VERSION);
            let back: ObjectRecord = decode("object record", &bytes).unwrap();
            prop_assert_eq!(back, record);
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode::<ObjectRecord>("object record", &bytes);
        }
    }

    #[test]
    fn bucket_record_round_trips_and_unknown_versions_are_refused() {
        let record = BucketRecord {
            name: "photos".into(),
            created_ns: 42,
        };
        let mut bytes = encode(&record);
        assert_eq!(decode::<BucketRecord>("bucket", &bytes).unwrap(), record);
        bytes[0] = 99;
        let err = decode::<BucketRecord>("bucket", &bytes).unwrap_err();
        assert!(
            err.to_string().contains("unknown record version 99"),
            "{err}"
        );
        assert!(decode::<BucketRecord>("bucket", &[]).is_err());
    }
}
