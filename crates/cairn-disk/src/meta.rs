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

/// Decodes an object record for a listing: each version's identity, flags,
/// size, ETag and erasure layout, skipping its part list and metadata
/// (`parts` and `meta` come back empty), which a listing does not show.
///
/// A listing page decodes a record per key on every drive, and the general
/// decoder's allocations (a map and strings per version), and their frees on
/// another thread, were most of a page's server CPU; this reads the
/// MessagePack in place. The result equals [`decode`]'s with `parts` and
/// `meta` emptied (a property test holds the two together).
pub fn decode_for_listing(bytes: &[u8]) -> Result<ObjectRecord> {
    let corrupt = |detail: String| DiskError::Corrupt {
        what: "object record",
        detail,
    };
    match bytes.split_first() {
        Some((&RECORD_VERSION, body)) => {
            let mut reader = listing::Reader::new(body);
            let record = reader.object_record().map_err(corrupt)?;
            Ok(record)
        }
        Some((version, _)) => Err(corrupt(format!("unknown record version {version}"))),
        None => Err(corrupt("empty record".to_owned())),
    }
}

/// A MessagePack reader for the fields of [`ObjectRecord`] a listing needs.
mod listing {
    use super::{ErasureMeta, ObjectRecord, ObjectVersion};
    use std::collections::BTreeMap;
    use uuid::Uuid;

    type Result<T> = std::result::Result<T, String>;

    /// A field name of at most 3 bytes as one integer (its length, then its
    /// bytes), so that telling the fields apart is an integer compare
    /// rather than a `memcmp` per name; every name this reader knows is
    /// that short, and longer ones map to `u32::MAX`, which none is.
    const fn name_code(name: &[u8]) -> u32 {
        if name.len() > 3 {
            return u32::MAX;
        }
        let mut code = name.len() as u32;
        let mut i = 0;
        while i < name.len() {
            code = (code << 8) | name[i] as u32;
            i += 1;
        }
        code
    }

    const V: u32 = name_code(b"v");
    const VID: u32 = name_code(b"vid");
    const DID: u32 = name_code(b"did");
    const MT: u32 = name_code(b"mt");
    const DM: u32 = name_code(b"dm");
    const SZ: u32 = name_code(b"sz");
    const ET: u32 = name_code(b"et");
    const EC: u32 = name_code(b"ec");
    const IN: u32 = name_code(b"in");
    const ERASURE_FIELDS: [u32; 6] = [
        name_code(b"d"),
        name_code(b"p"),
        name_code(b"b"),
        name_code(b"i"),
        name_code(b"r"),
        name_code(b"h"),
    ];

    pub(super) struct Reader<'a> {
        buf: &'a [u8],
    }

    impl<'a> Reader<'a> {
        pub(super) fn new(buf: &'a [u8]) -> Reader<'a> {
            Reader { buf }
        }

        fn take(&mut self, n: usize) -> Result<&'a [u8]> {
            if self.buf.len() < n {
                return Err("truncated".to_owned());
            }
            let (head, rest) = self.buf.split_at(n);
            self.buf = rest;
            Ok(head)
        }

        fn byte(&mut self) -> Result<u8> {
            Ok(self.take(1)?[0])
        }

        fn be(&mut self, n: usize) -> Result<u64> {
            let bytes = self.take(n)?;
            Ok(match *bytes {
                [a] => u64::from(a),
                [a, b] => u64::from(u16::from_be_bytes([a, b])),
                [a, b, c, d] => u64::from(u32::from_be_bytes([a, b, c, d])),
                _ => bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
            })
        }

        fn map_len(&mut self) -> Result<usize> {
            match self.byte()? {
                m @ 0x80..=0x8f => Ok(usize::from(m & 0x0f)),
                0xde => Ok(self.be(2)? as usize),
                0xdf => Ok(self.be(4)? as usize),
                m => Err(format!("expected a map, found marker {m:#04x}")),
            }
        }

        fn array_len(&mut self) -> Result<usize> {
            match self.byte()? {
                m @ 0x90..=0x9f => Ok(usize::from(m & 0x0f)),
                0xdc => Ok(self.be(2)? as usize),
                0xdd => Ok(self.be(4)? as usize),
                m => Err(format!("expected an array, found marker {m:#04x}")),
            }
        }

        /// A string's bytes, not checked for UTF-8: for field names,
        /// compared with the few this reader knows.
        fn str_bytes(&mut self) -> Result<&'a [u8]> {
            let len = match self.byte()? {
                m @ 0xa0..=0xbf => usize::from(m & 0x1f),
                0xd9 => self.be(1)? as usize,
                0xda => self.be(2)? as usize,
                0xdb => self.be(4)? as usize,
                m => return Err(format!("expected a string, found marker {m:#04x}")),
            };
            self.take(len)
        }

        fn str(&mut self) -> Result<&'a str> {
            std::str::from_utf8(self.str_bytes()?).map_err(|e| e.to_string())
        }

        fn bool(&mut self) -> Result<bool> {
            match self.byte()? {
                0xc2 => Ok(false),
                0xc3 => Ok(true),
                m => Err(format!("expected a bool, found marker {m:#04x}")),
            }
        }

        /// Any integer marker, as i128 so every u64 and i64 fits.
        fn int(&mut self) -> Result<i128> {
            Ok(match self.byte()? {
                m @ 0x00..=0x7f => i128::from(m),
                m @ 0xe0..=0xff => i128::from(m as i8),
                0xcc => i128::from(self.be(1)?),
                0xcd => i128::from(self.be(2)?),
                0xce => i128::from(self.be(4)?),
                0xcf => i128::from(self.be(8)?),
                0xd0 => i128::from(self.be(1)? as u8 as i8),
                0xd1 => i128::from(self.be(2)? as u16 as i16),
                0xd2 => i128::from(self.be(4)? as u32 as i32),
                0xd3 => i128::from(self.be(8)? as i64),
                m => return Err(format!("expected an integer, found marker {m:#04x}")),
            })
        }

        fn int_as<T: TryFrom<i128>>(&mut self, field: &str) -> Result<T> {
            let value = self.int()?;
            T::try_from(value).map_err(|_| format!("{field}: {value} out of range"))
        }

        /// A UUID as serde writes it here: 16 bytes, or its text form.
        fn uuid(&mut self) -> Result<Uuid> {
            let len = match self.buf.first() {
                Some(0xc4) => {
                    self.take(1)?;
                    self.be(1)? as usize
                }
                Some(0xc5) => {
                    self.take(1)?;
                    self.be(2)? as usize
                }
                Some(0xc6) => {
                    self.take(1)?;
                    self.be(4)? as usize
                }
                _ => {
                    let text = self.str()?;
                    return Uuid::parse_str(text).map_err(|e| e.to_string());
                }
            };
            let bytes: [u8; 16] = self
                .take(len)?
                .try_into()
                .map_err(|_| format!("a UUID of {len} bytes"))?;
            Ok(Uuid::from_bytes(bytes))
        }

        /// Skips one value of any type, containers and all, without
        /// recursion: `pending` counts the values still to pass over.
        fn skip(&mut self) -> Result<()> {
            let mut pending: usize = 1;
            while pending > 0 {
                // Every value takes at least one byte.
                if pending > self.buf.len() {
                    return Err("truncated".to_owned());
                }
                pending -= 1;
                let marker = self.byte()?;
                let (len, children) = match marker {
                    0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
                    0x80..=0x8f => (0, 2 * usize::from(marker & 0x0f)),
                    0x90..=0x9f => (0, usize::from(marker & 0x0f)),
                    0xa0..=0xbf => (usize::from(marker & 0x1f), 0),
                    0xcc | 0xd0 => (1, 0),
                    0xcd | 0xd1 => (2, 0),
                    0xce | 0xd2 | 0xca => (4, 0),
                    0xcf | 0xd3 | 0xcb => (8, 0),
                    0xd4 => (2, 0),
                    0xd5 => (3, 0),
                    0xd6 => (5, 0),
                    0xd7 => (9, 0),
                    0xd8 => (17, 0),
                    0xc4 | 0xd9 => (self.be(1)? as usize, 0),
                    0xc5 | 0xda => (self.be(2)? as usize, 0),
                    0xc6 | 0xdb => (self.be(4)? as usize, 0),
                    0xc7 => (self.be(1)? as usize + 1, 0),
                    0xc8 => (self.be(2)? as usize + 1, 0),
                    0xc9 => (self.be(4)? as usize + 1, 0),
                    0xdc => (0, self.be(2)? as usize),
                    0xdd => (0, self.be(4)? as usize),
                    0xde => (0, 2 * self.be(2)? as usize),
                    0xdf => (0, 2 * self.be(4)? as usize),
                    0xc1 => return Err("reserved marker 0xc1".to_owned()),
                };
                self.take(len)?;
                pending += children;
            }
            Ok(())
        }

        pub(super) fn object_record(&mut self) -> Result<ObjectRecord> {
            let mut versions = None;
            let fields = self.map_len()?;
            for field in 0..fields {
                match name_code(self.str_bytes()?) {
                    V => {
                        let count = self.array_len()?;
                        // Each version takes at least a few bytes: a corrupt
                        // count cannot reserve more than the record holds.
                        let mut list = Vec::with_capacity(count.min(self.buf.len()));
                        for idx in 0..count {
                            // Nothing a listing needs follows the last
                            // version of the last field.
                            let last = field + 1 == fields && idx + 1 == count;
                            list.push(self.version(last)?);
                        }
                        versions = Some(list);
                    }
                    _ => self.skip()?,
                }
            }
            Ok(ObjectRecord {
                versions: versions.ok_or("missing field `v`")?,
            })
        }

        /// One version's listing fields. With `last` (nothing the listing
        /// reads follows this version), it stops once it has them all,
        /// leaving the part list and user metadata that a record writes
        /// after them unread: a third of the decode's time otherwise.
        fn version(&mut self, last: bool) -> Result<ObjectVersion> {
            let (mut vid, mut did, mut mt, mut sz, mut et, mut ec, mut inline) =
                (None, None, None, None, None, None, None);
            let mut delete_marker = None;
            for _ in 0..self.map_len()? {
                match name_code(self.str_bytes()?) {
                    VID => vid = Some(self.uuid()?),
                    DID => did = Some(self.uuid()?),
                    MT => mt = Some(self.int_as::<i64>("mt")?),
                    DM => delete_marker = Some(self.bool()?),
                    SZ => sz = Some(self.int_as::<u64>("sz")?),
                    ET => et = Some(self.str()?.to_owned()),
                    EC => ec = Some(self.erasure()?),
                    IN => inline = Some(self.bool()?),
                    _ => self.skip()?,
                }
                if last
                    && vid.is_some()
                    && did.is_some()
                    && mt.is_some()
                    && delete_marker.is_some()
                    && sz.is_some()
                    && et.is_some()
                    && ec.is_some()
                    && inline.is_some()
                {
                    break;
                }
            }
            let delete_marker = delete_marker.unwrap_or(false);
            let missing = |field: &str| format!("missing field `{field}`");
            Ok(ObjectVersion {
                version_id: vid.ok_or_else(|| missing("vid"))?,
                data_id: did.ok_or_else(|| missing("did"))?,
                mod_time_ns: mt.ok_or_else(|| missing("mt"))?,
                delete_marker,
                size: sz.ok_or_else(|| missing("sz"))?,
                etag: et.ok_or_else(|| missing("et"))?,
                erasure: ec.ok_or_else(|| missing("ec"))?,
                inline: inline.ok_or_else(|| missing("in"))?,
                parts: Vec::new(),
                meta: BTreeMap::new(),
            })
        }

        fn erasure(&mut self) -> Result<ErasureMeta> {
            let mut fields: [Option<u32>; 6] = [None; 6];
            for _ in 0..self.map_len()? {
                let code = name_code(self.str_bytes()?);
                let Some(slot) = ERASURE_FIELDS.iter().position(|&f| f == code) else {
                    self.skip()?;
                    continue;
                };
                fields[slot] = Some(if slot == 2 {
                    self.int_as::<u32>("b")?
                } else {
                    u32::from(self.int_as::<u8>("erasure")?)
                });
            }
            let get = |slot: usize, name: &str| {
                fields[slot].ok_or_else(|| format!("missing field `{name}`"))
            };
            let small = |slot: usize, name: &str| get(slot, name).map(|v| v as u8);
            Ok(ErasureMeta {
                data_shards: small(0, "d")?,
                parity_shards: small(1, "p")?,
                block_size: get(2, "b")?,
                shard_index: small(3, "i")?,
                rotation: small(4, "r")?,
                bitrot: small(5, "h")?,
            })
        }
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

    /// What [`decode_for_listing`] should give for `record`: all of it but
    /// part lists and metadata.
    fn listing_view(record: ObjectRecord) -> ObjectRecord {
        ObjectRecord {
            versions: record
                .versions
                .into_iter()
                .map(|v| ObjectVersion {
                    parts: Vec::new(),
                    meta: BTreeMap::new(),
                    ..v
                })
                .collect(),
        }
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
        fn a_listing_decodes_all_but_parts_and_metadata(versions in proptest::collection::vec(arb_version(), 0..4)) {
            let record = ObjectRecord { versions };
            let listed = decode_for_listing(&encode(&record)).unwrap();
            prop_assert_eq!(listed, listing_view(record));
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode::<ObjectRecord>("object record", &bytes);
            let _ = decode_for_listing(&bytes);
        }

        /// A record cut short fails the full decoder, and the listing's
        /// too unless the cut falls after every field a listing reads
        /// (in the last version's part list or metadata), where the
        /// listing decoder stops; what it then returns is still right.
        #[test]
        fn a_damaged_record_fails_the_full_decoder_and_never_misleads_a_listing(
            versions in proptest::collection::vec(arb_version(), 1..3),
            cut in any::<proptest::sample::Index>(),
        ) {
            let record = ObjectRecord { versions };
            let bytes = encode(&record);
            let truncated = &bytes[..cut.index(bytes.len())];
            prop_assert!(decode::<ObjectRecord>("object record", truncated).is_err());
            if let Ok(listed) = decode_for_listing(truncated) {
                prop_assert_eq!(listed, listing_view(record));
            }
        }
    }

    /// Issue 6: a listing stops reading a record once it has the last
    /// version's listing fields; the user metadata after them is not read.
    #[test]
    fn issue_6_a_listing_does_not_read_past_the_fields_it_shows() {
        let version = ObjectVersion {
            version_id: Uuid::from_u128(1),
            data_id: Uuid::from_u128(2),
            mod_time_ns: 3,
            delete_marker: false,
            size: 4,
            etag: "0123456789abcdef0123456789abcdef".to_owned(),
            erasure: ErasureMeta {
                data_shards: 2,
                parity_shards: 2,
                block_size: 1 << 20,
                shard_index: 1,
                rotation: 0,
                bitrot: 1,
            },
            inline: true,
            parts: Vec::new(),
            meta: BTreeMap::from([("content-type".to_owned(), "text/plain".to_owned())]),
        };
        let bytes = encode(&ObjectRecord {
            versions: vec![version.clone()],
        });
        // Cut inside the metadata map's value: only a reader that stops
        // before it can decode what is left.
        let cut = &bytes[..bytes.len() - 3];
        assert!(decode::<ObjectRecord>("object record", cut).is_err());
        let listed = decode_for_listing(cut).unwrap();
        assert_eq!(
            listed.versions,
            vec![ObjectVersion {
                meta: BTreeMap::new(),
                ..version
            }]
        );
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
