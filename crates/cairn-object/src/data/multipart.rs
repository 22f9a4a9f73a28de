//! Multipart uploads: parts are erasure coded into their own shard files as
//! they arrive (any order, in parallel, re-uploads replace), and completing
//! an upload writes only metadata that references the parts' files.
//!
//! An upload lives on the set its key maps to. Its header (layout, future
//! object metadata) and one record per part are stored on every drive of the
//! set; both are resolved by read quorum like object versions.

use cairn_disk::{
    DiskError, ListUploadsQuery, MetaOp, ObjectVersion, PartMeta, UploadEntry, UploadPartRecord,
    UploadRecord,
};
use md5::{Digest, Md5};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

use crate::data::conditions::Preconditions;
use crate::data::write::{ShardTarget, Stored, VersionCommit, delete_removed, remove_shards_on};
use crate::error::{BodyError, Error, Result};
use crate::options::PutOptions;
use crate::quorum::Strategy;
use crate::set::nslock::{part_resource, upload_resource};
use crate::set::{ErasureSet, fan_out, write_failed};
use crate::shared::Shared;
use crate::types::{BodyStream, ObjectInfo};
use crate::util::hex;

/// Every part but the last must be at least this large (S3's limit).
pub const MIN_PART_SIZE: u64 = 5 << 20;
/// Part numbers run from 1 to this (S3's limit).
pub const MAX_PART_NUMBER: u32 = 10_000;
/// The largest part (S3's limit).
pub const MAX_PART_SIZE: u64 = 5 << 30;

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    pub bucket: String,
    pub key: String,
    pub upload_id: Uuid,
    pub initiated_ns: i64,
    /// Headers and user metadata the object will get.
    pub meta: BTreeMap<String, String>,
}

/// One uploaded part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    pub number: u32,
    pub size: u64,
    /// Without quotes.
    pub etag: String,
    pub mod_time_ns: i64,
    pub checksum: Option<String>,
}

/// A part named in a completion request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletePart {
    pub number: u32,
    pub etag: String,
    /// The checksum the client says the part has, checked by the finalizer.
    pub checksum: Option<String>,
}

/// Called with the parts being assembled (in order) before the completion
/// commits; returns metadata to add (an object checksum), or an error.
pub type CompleteFinalizer = Box<
    dyn FnOnce(
            &[PartInfo],
            &BTreeMap<String, String>,
        ) -> Result<BTreeMap<String, String>, BodyError>
        + Send,
>;

#[derive(Default)]
pub struct CompleteOptions {
    pub preconditions: Preconditions,
    pub finalizer: Option<CompleteFinalizer>,
}

/// A ListMultipartUploads request.
#[derive(Debug, Clone, Default)]
pub struct ListUploadsOptions {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub key_marker: Option<String>,
    pub upload_id_marker: Option<Uuid>,
    pub max_uploads: usize,
}

#[derive(Debug, Clone, Default)]
pub struct ListUploadsResult {
    pub uploads: Vec<UploadInfo>,
    pub prefixes: Vec<String>,
    pub truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_upload_id_marker: Option<Uuid>,
}

/// An upload as its set resolves it.
pub(crate) struct ResolvedUpload {
    record: UploadRecord,
    /// Per slot: whether the drive holds the upload.
    holds: Vec<bool>,
}

/// The ETag of a multipart object: MD5 of the parts' binary MD5s, a dash,
/// and the part count, as S3 computes it.
pub fn multipart_etag<'a>(part_etags: impl IntoIterator<Item = &'a str>) -> String {
    let mut md5 = Md5::new();
    let mut count = 0;
    for etag in part_etags {
        let bytes: Vec<u8> = (0..etag.len() / 2)
            .filter_map(|i| u8::from_str_radix(etag.get(2 * i..2 * i + 2)?, 16).ok())
            .collect();
        md5.update(&bytes);
        count += 1;
    }
    format!("{}-{count}", hex(&md5.finalize()))
}

fn part_info(record: &UploadPartRecord) -> PartInfo {
    PartInfo {
        number: record.number,
        size: record.size,
        etag: record.etag.clone(),
        mod_time_ns: record.mod_time_ns,
        checksum: record.checksum.clone(),
    }
}

fn upload_info(bucket: &str, key: &str, record: &UploadRecord) -> UploadInfo {
    UploadInfo {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        upload_id: record.upload_id,
        initiated_ns: record.initiated_ns,
        meta: record.meta.clone(),
    }
}

impl ErasureSet {
    pub(crate) async fn resolve_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: Uuid,
    ) -> Result<ResolvedUpload> {
        let reads = fan_out(&self.disks, Strategy::all(), |_, disk| {
            disk.read_upload(bucket, key, upload_id)
        })
        .await;
        let found = reads.ok();
        let missing = reads.failed_with(|e| matches!(e, DiskError::NotFound));
        let bucket_missing = reads.failed_with(|e| matches!(e, DiskError::BucketNotFound));
        let read_quorum = self.read_quorum();
        if found >= read_quorum {
            let holds = reads.iter().map(|r| r.is_ok()).collect();
            let record = reads
                .into_vec()
                .into_iter()
                .flatten()
                .next()
                .expect("found above");
            return Ok(ResolvedUpload { record, holds });
        }
        if bucket_missing >= read_quorum {
            return Err(Error::BucketNotFound);
        }
        let unanswered = self.size() - found - missing - bucket_missing;
        if found + unanswered >= read_quorum {
            return Err(Error::ReadQuorum {
                ok: found + missing,
                needed: read_quorum,
                errors: reads.errors(&self.disks),
            });
        }
        Err(Error::NoSuchUpload)
    }

    /// The parts that read quorum agrees on, by number.
    async fn resolve_parts(
        &self,
        upload: &ResolvedUpload,
    ) -> Result<BTreeMap<u32, UploadPartRecord>> {
        let upload_id = upload.record.upload_id;
        let lists = fan_out(&self.disks, Strategy::all(), |slot, disk| {
            let holds = upload.holds[slot];
            async move {
                if !holds {
                    return Err(DiskError::NotFound);
                }
                disk.list_parts(upload_id, 0, MAX_PART_NUMBER as usize + 1)
                    .await
            }
        })
        .await;
        let read_quorum = usize::from(upload.record.erasure.data_shards).max(1);
        lists.check_read(&self.disks, read_quorum)?;
        let mut votes: HashMap<(u32, Uuid), (usize, UploadPartRecord)> = HashMap::new();
        for part in lists.into_vec().into_iter().flatten().flatten() {
            votes
                .entry((part.number, part.data_id))
                .or_insert((0, part))
                .0 += 1;
        }
        let mut parts: BTreeMap<u32, UploadPartRecord> = BTreeMap::new();
        for (count, part) in votes.into_values() {
            if count < read_quorum {
                continue;
            }
            // Two uploads of one part that both reached quorum: the newer wins.
            match parts.get(&part.number) {
                Some(existing) if existing.mod_time_ns >= part.mod_time_ns => {}
                _ => {
                    parts.insert(part.number, part);
                }
            }
        }
        Ok(parts)
    }

    pub(crate) async fn create_upload(
        &self,
        shared: &Shared,
        bucket: &str,
        key: &str,
        meta: BTreeMap<String, String>,
    ) -> Result<UploadInfo> {
        self.bucket_info(bucket).await?;
        let layout = self.new_layout(shared, bucket, key);
        let upload = UploadRecord {
            upload_id: Uuid::now_v7(),
            initiated_ns: shared.clock.now_ns(),
            erasure: layout.erasure_meta(0),
            meta,
        };
        let results = fan_out(
            &layout.disks_by_shard,
            Strategy::all(),
            |shard_idx, disk| {
                let mut upload = upload.clone();
                upload.erasure = layout.erasure_meta(shard_idx);
                async move {
                    disk.commit(MetaOp::CreateUpload {
                        bucket: bucket.to_owned(),
                        key: key.to_owned(),
                        upload,
                    })
                    .await
                }
            },
        )
        .await;
        let ok = results.ok();
        if ok < layout.write_quorum() {
            let bucket_missing = results.failed_with(|e| matches!(e, DiskError::BucketNotFound));
            if bucket_missing >= layout.write_quorum() {
                return Err(Error::BucketNotFound);
            }
            // What did get written is below read quorum: invisible, and
            // removed by the stale-upload cleaner.
            return Err(write_failed(
                &layout.disks_by_shard,
                &results,
                ok,
                layout.write_quorum(),
            ));
        }
        Ok(upload_info(bucket, key, &upload))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn upload_part(
        &self,
        shared: &Shared,
        bucket: &str,
        key: &str,
        upload_id: Uuid,
        number: u32,
        body: BodyStream,
        mut opts: PutOptions,
    ) -> Result<PartInfo> {
        if !(1..=MAX_PART_NUMBER).contains(&number) {
            return Err(Error::InvalidArgument(format!(
                "Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive"
            )));
        }
        if let Some(size) = opts.size
            && size > MAX_PART_SIZE
        {
            return Err(Error::EntityTooLarge {
                size,
                max: MAX_PART_SIZE,
            });
        }
        let upload = self.resolve_upload(bucket, key, upload_id).await?;
        let layout = self.stored_layout(&upload.record.erasure);
        let data_id = Uuid::new_v4();
        let encoded = self
            .encode_body(
                shared,
                &layout,
                body,
                &mut opts,
                ShardTarget {
                    data_id,
                    part: number,
                    allow_inline: false,
                },
            )
            .await?;
        let Stored::Files(written) = encoded.stored else {
            return Err(Error::Internal("a part was stored inline".to_owned()));
        };
        let part = UploadPartRecord {
            number,
            data_id,
            size: encoded.size,
            etag: hex(&encoded.md5),
            mod_time_ns: shared.clock.now_ns(),
            checksum: opts
                .meta
                .iter()
                .find(|(k, _)| k.starts_with("x-amz-checksum-"))
                .map(|(_, v)| v.clone()),
        };
        let upload_guard = shared
            .locks
            .read(self.lock_set(), upload_resource(upload_id))
            .await?;
        let part_guard = shared
            .locks
            .write(self.lock_set(), part_resource(upload_id, number))
            .await?;
        let results = fan_out(
            &layout.disks_by_shard,
            Strategy::all(),
            |shard_idx, disk| {
                let wrote = written[shard_idx].is_ok();
                let part = part.clone();
                async move {
                    if !wrote {
                        return Err(DiskError::Offline("its shard was not written".to_owned()));
                    }
                    disk.commit(MetaOp::PutPart {
                        bucket: bucket.to_owned(),
                        key: key.to_owned(),
                        upload_id,
                        part,
                    })
                    .await
                }
            },
        )
        .await;
        drop((part_guard, upload_guard));
        let ok = results.ok();
        if ok < layout.write_quorum() {
            remove_shards_on(&layout.disks_by_shard, data_id, number, &written).await;
            let missing = results.failed_with(|e| matches!(e, DiskError::NotFound));
            if missing >= layout.write_quorum() {
                return Err(Error::NoSuchUpload);
            }
            return Err(write_failed(
                &layout.disks_by_shard,
                &results,
                ok,
                layout.write_quorum(),
            ));
        }
        delete_removed(&layout.disks_by_shard, &results, None).await;
        Ok(part_info(&part))
    }

    pub(crate) async fn list_upload_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: Uuid,
        after: u32,
        max_parts: usize,
    ) -> Result<(UploadInfo, Vec<PartInfo>, bool)> {
        let upload = self.resolve_upload(bucket, key, upload_id).await?;
        let parts = self.resolve_parts(&upload).await?;
        let mut listed: Vec<PartInfo> = parts
            .range(after.saturating_add(1)..)
            .map(|(_, p)| part_info(p))
            .take(max_parts + 1)
            .collect();
        let truncated = listed.len() > max_parts;
        listed.truncate(max_parts);
        Ok((upload_info(bucket, key, &upload.record), listed, truncated))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn complete_upload(
        &self,
        shared: &Shared,
        bucket: &str,
        key: &str,
        upload_id: Uuid,
        requested: &[CompletePart],
        opts: CompleteOptions,
    ) -> Result<ObjectInfo> {
        if requested.is_empty() {
            return Err(Error::MalformedXml(
                "You must specify at least one part".to_owned(),
            ));
        }
        for pair in requested.windows(2) {
            if pair[1].number <= pair[0].number {
                return Err(Error::InvalidPartOrder);
            }
        }
        // Parts cannot change while the upload completes.
        let upload_guard = shared
            .locks
            .write(self.lock_set(), upload_resource(upload_id))
            .await?;
        let upload = self.resolve_upload(bucket, key, upload_id).await?;
        let stored = self.resolve_parts(&upload).await?;
        let mut chosen = Vec::with_capacity(requested.len());
        for (idx, want) in requested.iter().enumerate() {
            let Some(part) = stored.get(&want.number) else {
                return Err(Error::InvalidPart {
                    number: want.number,
                    reason: "it was not uploaded".to_owned(),
                });
            };
            if want.etag.trim_matches('"') != part.etag {
                return Err(Error::InvalidPart {
                    number: want.number,
                    reason: "its ETag does not match".to_owned(),
                });
            }
            let is_last = idx + 1 == requested.len();
            if !is_last && part.size < MIN_PART_SIZE {
                return Err(Error::EntityTooSmall {
                    number: part.number,
                    size: part.size,
                    min: MIN_PART_SIZE,
                });
            }
            chosen.push(part.clone());
        }
        let infos: Vec<PartInfo> = chosen.iter().map(part_info).collect();
        let mut meta = upload.record.meta.clone();
        if let Some(finalizer) = opts.finalizer {
            meta.extend(finalizer(&infos, &meta).map_err(Error::Body)?);
        }
        let layout = self.stored_layout(&upload.record.erasure);
        let version = ObjectVersion {
            version_id: Uuid::nil(),
            data_id: Uuid::new_v4(),
            mod_time_ns: 0,
            delete_marker: false,
            size: chosen.iter().map(|p| p.size).sum(),
            etag: multipart_etag(chosen.iter().map(|p| p.etag.as_str())),
            erasure: layout.erasure_meta(0),
            inline: false,
            parts: chosen
                .iter()
                .map(|p| PartMeta {
                    number: p.number,
                    size: p.size,
                    etag: p.etag.clone(),
                    data_id: Some(p.data_id),
                    checksum: p.checksum.clone(),
                })
                .collect(),
            meta,
        };
        let ops = (0..layout.disks_by_shard.len())
            .map(|shard_idx| Some((layout.erasure_meta(shard_idx), None)))
            .collect();
        let commit = VersionCommit {
            bucket,
            key,
            version,
            disks_by_shard: &layout.disks_by_shard,
            ops,
            preconditions: &opts.preconditions,
        };
        upload_guard.check()?;
        self.commit_version(shared, commit, |version, _| MetaOp::CompleteUpload {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upload_id,
            version,
        })
        .await
    }

    pub(crate) async fn abort_upload(
        &self,
        shared: &Shared,
        bucket: &str,
        key: &str,
        upload_id: Uuid,
    ) -> Result<()> {
        let _upload_guard = shared
            .locks
            .write(self.lock_set(), upload_resource(upload_id))
            .await?;
        let results = fan_out(&self.disks, Strategy::all(), |_, disk| {
            disk.commit(MetaOp::AbortUpload {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                upload_id,
            })
        })
        .await;
        let ok = results.ok();
        let missing = results.failed_with(|e| matches!(e, DiskError::NotFound));
        delete_removed(&self.disks, &results, None).await;
        if ok == 0 && missing >= self.read_quorum() {
            return Err(Error::NoSuchUpload);
        }
        if ok + missing < self.write_quorum() {
            return Err(Error::WriteQuorum {
                ok,
                needed: self.write_quorum(),
                errors: results.errors(&self.disks),
            });
        }
        Ok(())
    }

    /// Uploads of this set in order, resolved by read quorum: up to
    /// `limit` entries and whether more follow.
    pub(crate) async fn list_set_uploads(
        &self,
        bucket: &str,
        opts: &ListUploadsOptions,
        limit: usize,
    ) -> Result<(Vec<ListedUpload>, bool)> {
        let read_quorum = self.read_quorum();
        let mut key_marker = opts.key_marker.clone();
        let mut upload_id_marker = opts.upload_id_marker;
        let mut out: Vec<ListedUpload> = Vec::new();
        for _ in 0..10_000 {
            let query = ListUploadsQuery {
                bucket: bucket.to_owned(),
                prefix: opts.prefix.clone(),
                key_marker: key_marker.clone(),
                upload_id_marker,
                delimiter: opts.delimiter.clone(),
                limit: limit + 1,
            };
            let pages = fan_out(&self.disks, Strategy::all(), |_, disk| {
                disk.list_uploads(&query)
            })
            .await;
            if pages.failed_with(|e| matches!(e, DiskError::BucketNotFound)) >= read_quorum {
                return Err(Error::BucketNotFound);
            }
            pages.check_read(&self.disks, read_quorum)?;
            // Entries past the end of a truncated page are unknown to that
            // drive: only entries up to the earliest such end are counted.
            let horizon: Option<ListedUpload> = pages
                .iter()
                .flatten()
                .filter(|p| p.truncated)
                .filter_map(|p| p.entries.last().map(ListedUpload::from_entry))
                .min();
            let mut votes: BTreeMap<ListedUpload, usize> = BTreeMap::new();
            for page in pages.into_vec().into_iter().flatten() {
                for entry in &page.entries {
                    let listed = ListedUpload::from_entry(entry);
                    if horizon.as_ref().is_some_and(|h| listed > *h) {
                        continue;
                    }
                    *votes.entry(listed).or_default() += 1;
                }
            }
            out.extend(
                votes
                    .into_iter()
                    .filter(|(_, count)| *count >= read_quorum)
                    .map(|(listed, _)| listed),
            );
            match horizon {
                Some(horizon) if out.len() <= limit => {
                    key_marker = Some(horizon.name().to_owned());
                    upload_id_marker = horizon.upload_id();
                }
                _ => break,
            }
        }
        let truncated = out.len() > limit;
        out.truncate(limit);
        Ok((out, truncated))
    }
}

/// An upload or a common prefix, compared and ordered as listings return
/// them: by name, then upload id (time-ordered); a prefix sorts as its name.
#[derive(Debug, Clone)]
pub(crate) enum ListedUpload {
    Upload {
        key: String,
        upload_id: Uuid,
        initiated_ns: i64,
        meta: BTreeMap<String, String>,
    },
    Prefix(String),
}

impl PartialEq for ListedUpload {
    fn eq(&self, other: &Self) -> bool {
        self.sort_key() == other.sort_key()
    }
}

impl Eq for ListedUpload {}

impl PartialOrd for ListedUpload {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ListedUpload {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

impl ListedUpload {
    fn from_entry(entry: &UploadEntry) -> ListedUpload {
        match entry {
            UploadEntry::Upload { key, upload } => ListedUpload::Upload {
                key: key.clone(),
                upload_id: upload.upload_id,
                initiated_ns: upload.initiated_ns,
                meta: upload.meta.clone(),
            },
            UploadEntry::Prefix(prefix) => ListedUpload::Prefix(prefix.clone()),
        }
    }

    pub(crate) fn name(&self) -> &str {
        match self {
            ListedUpload::Upload { key, .. } => key,
            ListedUpload::Prefix(prefix) => prefix,
        }
    }

    fn upload_id(&self) -> Option<Uuid> {
        match self {
            ListedUpload::Upload { upload_id, .. } => Some(*upload_id),
            ListedUpload::Prefix(_) => None,
        }
    }

    pub(crate) fn sort_key(&self) -> (&str, Option<Uuid>) {
        (self.name(), self.upload_id())
    }

    pub(crate) fn into_info(self, bucket: &str) -> Result<UploadInfo, String> {
        match self {
            ListedUpload::Upload {
                key,
                upload_id,
                initiated_ns,
                meta,
            } => Ok(UploadInfo {
                bucket: bucket.to_owned(),
                key,
                upload_id,
                initiated_ns,
                meta,
            }),
            ListedUpload::Prefix(prefix) => Err(prefix),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_etag_matches_s3() {
        // Two parts whose MD5s are those of "a" and "b".
        let a = "0cc175b9c0f1b6a831c399e269772661";
        let b = "92eb5ffee6ae2fec3ad71c777531578f";
        let etag = multipart_etag([a, b]);
        assert!(etag.ends_with("-2"), "{etag}");
        let mut md5 = Md5::new();
        md5.update([
            0x0c, 0xc1, 0x75, 0xb9, 0xc0, 0xf1, 0xb6, 0xa8, 0x31, 0xc3, 0x99, 0xe2, 0x69, 0x77,
            0x26, 0x61,
        ]);
        md5.update([
            0x92, 0xeb, 0x5f, 0xfe, 0xe6, 0xae, 0x2f, 0xec, 0x3a, 0xd7, 0x1c, 0x77, 0x75, 0x31,
            0x57, 0x8f,
        ]);
        assert_eq!(etag, format!("{}-2", hex(&md5.finalize())));
    }
}
