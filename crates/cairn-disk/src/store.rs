//! The per-drive metadata store: `fjall` (an LSM tree with a journal), with
//! one committer thread per drive that batches concurrent writers into one
//! durable commit (group commit).
//!
//! Keyspaces:
//! * `buckets`: bucket name -> [`BucketRecord`]
//! * `objects`: `bucket/key` -> [`ObjectRecord`]; bucket names cannot contain
//!   `/`, so one bucket's keys form one contiguous range in S3 listing order.
//! * `inline`: data id -> shard bytes of small objects, kept apart from
//!   `objects` so listings do not read inline data. Created with key-value
//!   separation: flushes write the shards to blob files, and compactions
//!   rewrite only the keys (data ids are random, so without it every
//!   compaction of this keyspace rewrote the shards of all it merged).
//! * `uploads`: `bucket/key` 0x00 upload id -> [`UploadRecord`]: multipart
//!   uploads in progress, in key order and, per key, initiation order.
//! * `upload_parts`: upload id, part number (big-endian) -> [`UploadPartRecord`]:
//!   one key per part, so uploading a part never rewrites the others.
//! * `drive`: facts about the drive itself; `complete` is present once the
//!   drive holds its whole set ([`MetaOp::MarkComplete`]). It lives in the
//!   store, not beside `format.json`, so that it goes with the metadata.
//!
//! Every commit is written with `PersistMode::SyncAll`: fjall's default only
//! hands the journal to the OS, which survives a killed process but not a
//! power cut. Why fjall over redb: `docs/benchmarks.md` and ARCHITECTURE.md.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use fjall::{
    KeyspaceCreateOptions, KvSeparationOptions, PersistMode, Readable, SingleWriterTxDatabase,
    SingleWriterTxKeyspace,
};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::error::{DiskError, Result};
use crate::meta::{
    self, BucketRecord, ObjectRecord, ObjectVersion, UploadPartRecord, UploadRecord,
};
use crate::{
    ListEntry, ListPage, ListQuery, ListUploadsQuery, MetaOp, MetaOutcome, ReadData, ReadObject,
    RemovedVersion, UploadEntry, UploadsPage,
};

/// What a listing of one bucket under a prefix reads.
struct ListingRange {
    snapshot: fjall::Snapshot,
    /// The length of the keys' `bucket/` part.
    base_len: usize,
    /// The first key under the prefix.
    first: Vec<u8>,
    /// The bound after the last, if any.
    end: Option<Vec<u8>>,
}

/// Most operations applied in one commit.
const MAX_BATCH: usize = 512;

/// Checked before every commit; fails when the drive's directory no longer
/// holds the drive this store was opened for.
pub(crate) type LivenessCheck = Arc<dyn Fn() -> Result<()> + Send + Sync>;

/// Memory a drive's store may use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoreMemory {
    /// Block cache, in bytes.
    pub(crate) cache_bytes: u64,
    /// Unflushed writes kept in memory per keyspace, in bytes.
    pub(crate) memtable_bytes: u64,
}

struct Commit {
    op: MetaOp,
    reply: oneshot::Sender<Result<MetaOutcome>>,
}

#[derive(Clone)]
struct Keyspaces {
    buckets: SingleWriterTxKeyspace,
    objects: SingleWriterTxKeyspace,
    inline: SingleWriterTxKeyspace,
    uploads: SingleWriterTxKeyspace,
    upload_parts: SingleWriterTxKeyspace,
    drive: SingleWriterTxKeyspace,
}

/// Key in `drive` of the completeness mark.
const COMPLETE: &[u8] = b"complete";

pub(crate) struct MetaStore {
    db: SingleWriterTxDatabase,
    ks: Keyspaces,
    commits: mpsc::Sender<Commit>,
    generations: Arc<Generations>,
}

/// Buckets share this many listing generations, by a hash of their names.
const GENERATION_SLOTS: usize = 64;

/// Where listing generations come from: every value is used once in the
/// process, so a store opened anew never repeats one an earlier store gave.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

fn fresh_generation() -> u64 {
    NEXT_GENERATION.fetch_add(1, Ordering::SeqCst)
}

/// The drive's listing generations ([`crate::Disk::list_generation`]): one
/// value per slot of bucket names, replaced with a fresh one after every
/// commit that touched a bucket of that slot, before the commit's callers
/// hear that it is done.
struct Generations {
    slots: [AtomicU64; GENERATION_SLOTS],
}

impl Generations {
    fn new() -> Generations {
        Generations {
            slots: std::array::from_fn(|_| AtomicU64::new(fresh_generation())),
        }
    }

    fn get(&self, bucket: &str) -> u64 {
        self.slots[slot_of(bucket)].load(Ordering::SeqCst)
    }

    /// Marks the listings of `bucket` changed; of every bucket for `None`.
    fn bump(&self, bucket: Option<&str>) {
        match bucket {
            Some(bucket) => self.slots[slot_of(bucket)].store(fresh_generation(), Ordering::SeqCst),
            None => {
                for slot in &self.slots {
                    slot.store(fresh_generation(), Ordering::SeqCst);
                }
            }
        }
    }
}

/// Which generation slot holds `bucket`: FNV-1a of the name.
fn slot_of(bucket: &str) -> usize {
    let hash = bucket
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    (hash % GENERATION_SLOTS as u64) as usize
}

fn store_err(err: fjall::Error) -> DiskError {
    DiskError::Store(err.to_string())
}

fn object_key(bucket: &str, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(bucket.len() + 1 + key.len());
    out.extend_from_slice(bucket.as_bytes());
    out.push(b'/');
    out.extend_from_slice(key.as_bytes());
    out
}

/// Key of an upload: its object key, a 0x00, and the 16 id bytes. Parsed
/// from the end, so object keys may contain anything.
fn upload_key(bucket: &str, key: &str, upload_id: Uuid) -> Vec<u8> {
    let mut out = object_key(bucket, key);
    out.push(0);
    out.extend_from_slice(upload_id.as_bytes());
    out
}

/// Key of a part record.
fn part_key(upload_id: Uuid, number: u32) -> Vec<u8> {
    let mut out = upload_id.as_bytes().to_vec();
    out.extend_from_slice(&number.to_be_bytes());
    out
}

/// The smallest byte string greater than every string starting with `prefix`,
/// or `None` when there is none (`prefix` is empty or all 0xFF).
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < 0xFF {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

impl MetaStore {
    /// Opens (creating if needed) the store in directory `path`. Blocking:
    /// replays the journal when the last process did not close it cleanly.
    pub(crate) fn open(
        path: &Path,
        memory: StoreMemory,
        liveness: LivenessCheck,
    ) -> Result<MetaStore> {
        // A store this process closed a moment ago may still be held by its
        // committer or background threads, finishing their last work.
        let mut attempts = 0;
        let db = loop {
            let opened = SingleWriterTxDatabase::builder(path)
                .cache_size(memory.cache_bytes)
                // The journal is replayed after a crash: keep it short.
                .max_journaling_size(64 << 20)
                .worker_threads(1)
                .open();
            match opened {
                Ok(db) => break db,
                Err(fjall::Error::Locked) if attempts < 250 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(err) => return Err(store_err(err)),
            }
        };
        let memtable = memory.memtable_bytes.max(1 << 20);
        let options = || KeyspaceCreateOptions::default().max_memtable_size(memtable);
        // Options apply when a keyspace is created; an existing one keeps
        // those it was created with.
        let keyspace = |name: &str, options: KeyspaceCreateOptions| {
            db.keyspace(name, || options).map_err(store_err)
        };
        let ks = Keyspaces {
            buckets: keyspace("buckets", options())?,
            objects: keyspace("objects", options())?,
            // Inline shards are written once more, to blob files, when their
            // memtable is flushed; compactions then move only their keys and
            // pointers, not the shards (docs/benchmarks.md, issue 6).
            inline: keyspace(
                "inline",
                options().with_kv_separation(Some(KvSeparationOptions::default())),
            )?,
            uploads: keyspace("uploads", options())?,
            upload_parts: keyspace("upload_parts", options())?,
            drive: keyspace("drive", options())?,
        };
        let (tx, mut rx) = mpsc::channel(MAX_BATCH * 2);
        let (committer_db, committer_ks) = (db.clone(), ks.clone());
        let generations = Arc::new(Generations::new());
        let committer_generations = generations.clone();
        std::thread::Builder::new()
            .name("cairn-meta-commit".to_owned())
            .spawn(move || {
                committer(
                    &committer_db,
                    &committer_ks,
                    &committer_generations,
                    &mut rx,
                    &liveness,
                )
            })
            .map_err(|e| DiskError::io("starting the metadata committer", e))?;
        Ok(MetaStore {
            db,
            ks,
            commits: tx,
            generations,
        })
    }

    /// The listing generation of `bucket` ([`crate::Disk::list_generation`]).
    pub(crate) fn list_generation(&self, bucket: &str) -> u64 {
        self.generations.get(bucket)
    }

    /// Applies `op` durably, batched with concurrent callers into one commit.
    pub(crate) async fn commit(&self, op: MetaOp) -> Result<MetaOutcome> {
        let (reply, rx) = oneshot::channel();
        self.commits
            .send(Commit { op, reply })
            .await
            .map_err(|_| DiskError::Offline("metadata committer stopped".to_owned()))?;
        rx.await
            .map_err(|_| DiskError::Offline("metadata committer stopped".to_owned()))?
    }

    pub(crate) fn list_buckets(&self) -> Result<Vec<BucketRecord>> {
        let snapshot = self.db.read_tx();
        let mut out = Vec::new();
        for entry in snapshot.iter(&self.ks.buckets) {
            let (_, value) = entry.into_inner().map_err(store_err)?;
            out.push(meta::decode("bucket record", &value)?);
        }
        Ok(out)
    }

    /// Every data id this drive's metadata names: versions' shard files and
    /// upload parts. A shard file whose id is not here is an orphan.
    pub(crate) fn referenced_data_ids(&self) -> Result<std::collections::HashSet<Uuid>> {
        let snapshot = self.db.read_tx();
        let mut out = std::collections::HashSet::new();
        for entry in snapshot.iter(&self.ks.objects) {
            let (_, value) = entry.into_inner().map_err(store_err)?;
            let record: ObjectRecord = meta::decode("object record", &value)?;
            for version in &record.versions {
                out.insert(version.data_id);
                for part in &version.parts {
                    out.insert(version.part_file(part).0);
                }
            }
        }
        for entry in snapshot.iter(&self.ks.upload_parts) {
            let (_, value) = entry.into_inner().map_err(store_err)?;
            let part: UploadPartRecord = meta::decode("part record", &value)?;
            out.insert(part.data_id);
        }
        Ok(out)
    }

    pub(crate) fn get_bucket(&self, bucket: &str) -> Result<BucketRecord> {
        let snapshot = self.db.read_tx();
        match snapshot.get(&self.ks.buckets, bucket).map_err(store_err)? {
            Some(value) => meta::decode("bucket record", &value),
            None => Err(DiskError::BucketNotFound),
        }
    }

    pub(crate) fn read_object(
        &self,
        bucket: &str,
        key: &str,
        data: ReadData,
    ) -> Result<ReadObject> {
        let snapshot = self.db.read_tx();
        let record: ObjectRecord = match snapshot
            .get(&self.ks.objects, object_key(bucket, key))
            .map_err(store_err)?
        {
            Some(value) => meta::decode("object record", &value)?,
            None => {
                if snapshot
                    .get(&self.ks.buckets, bucket)
                    .map_err(store_err)?
                    .is_none()
                {
                    return Err(DiskError::BucketNotFound);
                }
                return Err(DiskError::NotFound);
            }
        };
        let data_id = match data {
            ReadData::None => None,
            ReadData::Latest => record
                .versions
                .first()
                .filter(|v| v.inline)
                .map(|v| v.data_id),
            ReadData::Version(data_id) => Some(data_id),
        };
        let inline = match data_id {
            Some(data_id) => snapshot
                .get(&self.ks.inline, data_id.as_bytes())
                .map_err(store_err)?
                .map(|v| Bytes::copy_from_slice(&v)),
            None => None,
        };
        Ok(ReadObject { record, inline })
    }

    /// A snapshot for a listing of `bucket` under `prefix`, once the bucket
    /// is found in it.
    fn listing_range(&self, bucket: &str, prefix: &str) -> Result<ListingRange> {
        let snapshot = self.db.read_tx();
        if snapshot
            .get(&self.ks.buckets, bucket)
            .map_err(store_err)?
            .is_none()
        {
            return Err(DiskError::BucketNotFound);
        }
        let first = object_key(bucket, prefix);
        Ok(ListingRange {
            snapshot,
            base_len: bucket.len() + 1,
            end: prefix_successor(&first),
            first,
        })
    }

    pub(crate) fn list_objects(&self, query: &ListQuery) -> Result<ListPage> {
        let ListingRange {
            snapshot,
            base_len,
            first: full_prefix,
            end,
        } = self.listing_range(&query.bucket, &query.prefix)?;
        let mut cursor: Bound<Vec<u8>> = Bound::Included(full_prefix.clone());
        if let Some(start_after) = &query.start_after {
            let start = object_key(&query.bucket, start_after);
            if start >= full_prefix {
                cursor = Bound::Excluded(start);
            }
        }
        let complete = snapshot
            .get(&self.ks.drive, COMPLETE)
            .map_err(store_err)?
            .is_some();
        let delimiter = query.delimiter.as_deref().filter(|d| !d.is_empty());
        let mut entries = Vec::with_capacity(query.limit.min(1024));
        'scan: loop {
            let upper = match &end {
                Some(end) => Bound::Excluded(end.clone()),
                None => Bound::Unbounded,
            };
            for entry in snapshot.range(&self.ks.objects, (cursor.clone(), upper)) {
                let (raw_key, value) = entry.into_inner().map_err(store_err)?;
                let key =
                    std::str::from_utf8(&raw_key[base_len..]).map_err(|e| DiskError::Corrupt {
                        what: "object key",
                        detail: e.to_string(),
                    })?;
                if entries.len() == query.limit {
                    return Ok(ListPage {
                        entries,
                        truncated: true,
                        complete,
                    });
                }
                if let Some(delimiter) = delimiter
                    && let Some(pos) = key[query.prefix.len()..].find(delimiter)
                {
                    let common = &key[..query.prefix.len() + pos + delimiter.len()];
                    let skip_past = object_key(&query.bucket, common);
                    let is_new = query.start_after.as_deref().is_none_or(|s| common > s);
                    if is_new {
                        entries.push(ListEntry::Prefix(common.to_owned()));
                    }
                    match prefix_successor(&skip_past) {
                        Some(next) => {
                            cursor = Bound::Included(next);
                            continue 'scan;
                        }
                        None => break 'scan,
                    }
                }
                let record = meta::decode_for_listing(&value)?;
                entries.push(ListEntry::Object {
                    key: key.to_owned(),
                    record,
                });
            }
            break;
        }
        Ok(ListPage {
            entries,
            truncated: false,
            complete,
        })
    }

    pub(crate) fn read_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: Uuid,
    ) -> Result<UploadRecord> {
        let snapshot = self.db.read_tx();
        match snapshot
            .get(&self.ks.uploads, upload_key(bucket, key, upload_id))
            .map_err(store_err)?
        {
            Some(value) => meta::decode("upload record", &value),
            None => {
                if snapshot
                    .get(&self.ks.buckets, bucket)
                    .map_err(store_err)?
                    .is_none()
                {
                    return Err(DiskError::BucketNotFound);
                }
                Err(DiskError::NotFound)
            }
        }
    }

    pub(crate) fn list_parts(
        &self,
        upload_id: Uuid,
        after: u32,
        limit: usize,
    ) -> Result<Vec<UploadPartRecord>> {
        let snapshot = self.db.read_tx();
        let Some(first) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let range = part_key(upload_id, first)..=part_key(upload_id, u32::MAX);
        let mut out = Vec::new();
        for entry in snapshot.range(&self.ks.upload_parts, range).take(limit) {
            let (_, value) = entry.into_inner().map_err(store_err)?;
            out.push(meta::decode("part record", &value)?);
        }
        Ok(out)
    }

    pub(crate) fn list_uploads(&self, query: &ListUploadsQuery) -> Result<UploadsPage> {
        let ListingRange {
            snapshot,
            base_len,
            first: full_prefix,
            end,
        } = self.listing_range(&query.bucket, &query.prefix)?;
        let mut cursor: Bound<Vec<u8>> = Bound::Included(full_prefix.clone());
        if let Some(marker) = &query.key_marker {
            let after = match query.upload_id_marker {
                // After that upload of the marker key.
                Some(upload_id) => upload_key(&query.bucket, marker, upload_id),
                // After every upload of the marker key: its key, 0x00, then 16 bytes of 0xFF.
                None => {
                    let mut k = object_key(&query.bucket, marker);
                    k.push(0);
                    k.extend_from_slice(&[0xFF; 16]);
                    k
                }
            };
            if after >= full_prefix {
                cursor = Bound::Excluded(after);
            }
        }
        let delimiter = query.delimiter.as_deref().filter(|d| !d.is_empty());
        let mut entries = Vec::new();
        'scan: loop {
            let upper = match &end {
                Some(end) => Bound::Excluded(end.clone()),
                None => Bound::Unbounded,
            };
            for entry in snapshot.range(&self.ks.uploads, (cursor.clone(), upper)) {
                let (raw_key, value) = entry.into_inner().map_err(store_err)?;
                let Some(key_end) = raw_key.len().checked_sub(17).filter(|e| *e >= base_len) else {
                    return Err(DiskError::Corrupt {
                        what: "upload key",
                        detail: format!("{} bytes", raw_key.len()),
                    });
                };
                let key = std::str::from_utf8(&raw_key[base_len..key_end]).map_err(|e| {
                    DiskError::Corrupt {
                        what: "upload key",
                        detail: e.to_string(),
                    }
                })?;
                if entries.len() == query.limit {
                    return Ok(UploadsPage {
                        entries,
                        truncated: true,
                    });
                }
                if let Some(delimiter) = delimiter
                    && let Some(pos) = key[query.prefix.len()..].find(delimiter)
                {
                    let common = &key[..query.prefix.len() + pos + delimiter.len()];
                    let is_new = query.key_marker.as_deref().is_none_or(|m| common > m);
                    if is_new {
                        entries.push(UploadEntry::Prefix(common.to_owned()));
                    }
                    match prefix_successor(&object_key(&query.bucket, common)) {
                        Some(next) => {
                            cursor = Bound::Included(next);
                            continue 'scan;
                        }
                        None => break 'scan,
                    }
                }
                let upload: UploadRecord = meta::decode("upload record", &value)?;
                entries.push(UploadEntry::Upload {
                    key: key.to_owned(),
                    upload,
                });
            }
            break;
        }
        Ok(UploadsPage {
            entries,
            truncated: false,
        })
    }
}

fn committer(
    db: &SingleWriterTxDatabase,
    ks: &Keyspaces,
    generations: &Generations,
    rx: &mut mpsc::Receiver<Commit>,
    liveness: &LivenessCheck,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(commit) => batch.push(commit),
                Err(_) => break,
            }
        }
        let results = match liveness() {
            Ok(()) => apply_batch(db, ks, &batch),
            Err(err) => Err(err),
        };
        // Failed batches too: a commit that failed may still have changed
        // what a listing reads.
        for commit in &batch {
            generations.bump(commit.op.bucket());
        }
        match results {
            Ok(results) => {
                for (commit, result) in batch.into_iter().zip(results) {
                    let _ = commit.reply.send(result);
                }
            }
            Err(err) => {
                let message = err.to_string();
                let offline = err.is_offline();
                for commit in batch {
                    let err = if offline {
                        DiskError::Offline(message.clone())
                    } else {
                        DiskError::Store(message.clone())
                    };
                    let _ = commit.reply.send(Err(err));
                }
            }
        }
    }
}

/// Applies every op of a batch in one durable transaction. Each op checks its
/// preconditions before it writes, so a failed op changes nothing and does
/// not fail the others.
fn apply_batch(
    db: &SingleWriterTxDatabase,
    ks: &Keyspaces,
    batch: &[Commit],
) -> Result<Vec<Result<MetaOutcome>>> {
    let mut tx = db.write_tx().durability(Some(PersistMode::SyncAll));
    let mut results = Vec::with_capacity(batch.len());
    {
        let mut tables = Tables { tx: &mut tx, ks };
        for commit in batch {
            results.push(apply(&mut tables, &commit.op));
        }
    }
    tx.commit().map_err(store_err)?;
    Ok(results)
}

/// The keyspaces as seen through one write transaction, which reads its own writes.
struct Tables<'a, 'tx> {
    tx: &'a mut fjall::SingleWriterWriteTx<'tx>,
    ks: &'a Keyspaces,
}

impl Tables<'_, '_> {
    fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        Ok(self
            .tx
            .get(&self.ks.buckets, bucket)
            .map_err(store_err)?
            .is_some())
    }

    fn put_bucket(&mut self, record: &BucketRecord) {
        self.tx
            .insert(&self.ks.buckets, record.name.as_str(), meta::encode(record));
    }

    fn read_record(&self, key: &[u8]) -> Result<Option<ObjectRecord>> {
        match self.tx.get(&self.ks.objects, key).map_err(store_err)? {
            Some(value) => Ok(Some(meta::decode("object record", &value)?)),
            None => Ok(None),
        }
    }

    fn write_record(&mut self, key: &[u8], record: &ObjectRecord) {
        if record.versions.is_empty() {
            self.tx.remove(&self.ks.objects, key);
        } else {
            self.tx.insert(&self.ks.objects, key, meta::encode(record));
        }
    }

    /// Removes `version`'s inline data and returns it with the version.
    fn take_version(&mut self, version: ObjectVersion) -> Result<RemovedVersion> {
        let inline = if version.inline {
            self.tx
                .take(&self.ks.inline, version.data_id.as_bytes().as_slice())
                .map_err(store_err)?
                .map(|v| Bytes::copy_from_slice(&v))
        } else {
            None
        };
        Ok(RemovedVersion { version, inline })
    }

    fn put_inline(&mut self, data_id: Uuid, data: &[u8]) {
        self.tx
            .insert(&self.ks.inline, data_id.as_bytes().as_slice(), data);
    }

    fn upload_exists(&self, bucket: &str, key: &str, upload_id: Uuid) -> Result<bool> {
        Ok(self
            .tx
            .get(&self.ks.uploads, upload_key(bucket, key, upload_id))
            .map_err(store_err)?
            .is_some())
    }

    /// Removes an upload's header and every part record; returns the parts.
    fn take_upload(
        &mut self,
        bucket: &str,
        key: &str,
        upload_id: Uuid,
    ) -> Result<Vec<UploadPartRecord>> {
        let mut parts = Vec::new();
        let mut keys = Vec::new();
        let range = part_key(upload_id, 0)..=part_key(upload_id, u32::MAX);
        for entry in self.tx.range(&self.ks.upload_parts, range) {
            let (raw, value) = entry.into_inner().map_err(store_err)?;
            if let Ok(part) = meta::decode::<UploadPartRecord>("part record", &value) {
                parts.push(part);
            }
            keys.push(raw);
        }
        for raw in keys {
            self.tx.remove(&self.ks.upload_parts, raw);
        }
        self.tx
            .remove(&self.ks.uploads, upload_key(bucket, key, upload_id));
        Ok(parts)
    }

    /// `PutVersion`: adds `version`, replacing any with its version id.
    fn put_version(
        &mut self,
        bucket: &str,
        key: &str,
        version: &ObjectVersion,
        inline: Option<&[u8]>,
    ) -> Result<Vec<RemovedVersion>> {
        let raw_key = object_key(bucket, key);
        let mut record = self.read_record(&raw_key)?.unwrap_or_default();
        let (replaced, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut record.versions)
            .into_iter()
            .partition(|v| v.version_id == version.version_id);
        record.versions = kept;
        let mut removed = Vec::with_capacity(replaced.len());
        for old in replaced {
            removed.push(self.take_version(old)?);
        }
        if let Some(data) = inline {
            self.put_inline(version.data_id, data);
        }
        insert_sorted(&mut record, version.clone());
        self.write_record(&raw_key, &record);
        Ok(removed)
    }
}

fn insert_sorted(record: &mut ObjectRecord, version: ObjectVersion) {
    let pos = record
        .versions
        .iter()
        .position(|v| v.identity() < version.identity())
        .unwrap_or(record.versions.len());
    record.versions.insert(pos, version);
}

fn apply(tables: &mut Tables<'_, '_>, op: &MetaOp) -> Result<MetaOutcome> {
    match op {
        MetaOp::MakeBucket(record) => {
            if tables.bucket_exists(&record.name)? {
                return Err(DiskError::BucketExists);
            }
            tables.put_bucket(record);
            Ok(MetaOutcome::default())
        }
        MetaOp::DeleteBucket { name, force } => {
            if !tables.bucket_exists(name)? {
                return Err(DiskError::BucketNotFound);
            }
            let start = object_key(name, "");
            let end = prefix_successor(&start).expect("bucket prefix ends with '/'");
            let mut doomed = Vec::new();
            let mut removed = Vec::new();
            for entry in tables
                .tx
                .range(&tables.ks.objects, start.clone()..end.clone())
            {
                let (key, value) = entry.into_inner().map_err(store_err)?;
                if !force {
                    return Err(DiskError::BucketNotEmpty);
                }
                // A record that fails to decode is dropped with its bucket;
                // its data, if any, is left for the scanner.
                if let Ok(record) = meta::decode::<ObjectRecord>("object record", &value) {
                    removed.extend(record.versions);
                }
                doomed.push(key);
            }
            for key in doomed {
                tables.tx.remove(&tables.ks.objects, key);
            }
            let mut outcome = MetaOutcome::default();
            for version in removed {
                outcome.removed.push(tables.take_version(version)?);
            }
            // Uploads in progress go with their bucket.
            let mut uploads = Vec::new();
            for entry in tables.tx.range(&tables.ks.uploads, start..end) {
                let (raw, value) = entry.into_inner().map_err(store_err)?;
                let key = std::str::from_utf8(&raw[name.len() + 1..raw.len().saturating_sub(17)])
                    .map(str::to_owned)
                    .unwrap_or_default();
                if let Ok(upload) = meta::decode::<UploadRecord>("upload record", &value) {
                    uploads.push((key, upload.upload_id));
                }
            }
            for (key, upload_id) in uploads {
                outcome
                    .removed_parts
                    .extend(tables.take_upload(name, &key, upload_id)?);
            }
            tables.tx.remove(&tables.ks.buckets, name.as_str());
            Ok(outcome)
        }
        MetaOp::PutVersion {
            bucket,
            key,
            version,
            inline,
        } => {
            if !tables.bucket_exists(bucket)? {
                return Err(DiskError::BucketNotFound);
            }
            let removed = tables.put_version(bucket, key, version, inline.as_deref())?;
            Ok(MetaOutcome {
                removed,
                ..MetaOutcome::default()
            })
        }
        MetaOp::DeleteVersion {
            bucket,
            key,
            version_id,
        } => {
            if !tables.bucket_exists(bucket)? {
                return Err(DiskError::BucketNotFound);
            }
            let raw_key = object_key(bucket, key);
            let Some(mut record) = tables.read_record(&raw_key)? else {
                return Ok(MetaOutcome::default());
            };
            let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut record.versions)
                .into_iter()
                .partition(|v| v.version_id == *version_id);
            record.versions = kept;
            let mut removed = Vec::with_capacity(gone.len());
            for old in gone {
                removed.push(tables.take_version(old)?);
            }
            tables.write_record(&raw_key, &record);
            Ok(MetaOutcome {
                removed,
                ..MetaOutcome::default()
            })
        }
        MetaOp::RevertPut {
            bucket,
            key,
            data_id,
            previous,
        } => {
            if !tables.bucket_exists(bucket)? {
                return Err(DiskError::BucketNotFound);
            }
            let raw_key = object_key(bucket, key);
            let mut record = tables.read_record(&raw_key)?.unwrap_or_default();
            let (ours, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut record.versions)
                .into_iter()
                .partition(|v| v.data_id == *data_id);
            record.versions = kept;
            for version in ours {
                tables.take_version(version)?;
            }
            for prev in previous {
                if let Some(data) = &prev.inline {
                    tables.put_inline(prev.version.data_id, data);
                }
                insert_sorted(&mut record, prev.version.clone());
            }
            tables.write_record(&raw_key, &record);
            Ok(MetaOutcome::default())
        }
        MetaOp::CreateUpload {
            bucket,
            key,
            upload,
        } => {
            if !tables.bucket_exists(bucket)? {
                return Err(DiskError::BucketNotFound);
            }
            tables.tx.insert(
                &tables.ks.uploads,
                upload_key(bucket, key, upload.upload_id),
                meta::encode(upload),
            );
            Ok(MetaOutcome::default())
        }
        MetaOp::PutPart {
            bucket,
            key,
            upload_id,
            part,
        } => {
            if !tables.upload_exists(bucket, key, *upload_id)? {
                return Err(DiskError::NotFound);
            }
            let raw = part_key(*upload_id, part.number);
            let replaced = match tables
                .tx
                .get(&tables.ks.upload_parts, &raw)
                .map_err(store_err)?
            {
                Some(value) => vec![meta::decode::<UploadPartRecord>("part record", &value)?],
                None => Vec::new(),
            };
            tables
                .tx
                .insert(&tables.ks.upload_parts, raw, meta::encode(part));
            Ok(MetaOutcome {
                removed_parts: replaced,
                ..MetaOutcome::default()
            })
        }
        MetaOp::CompleteUpload {
            bucket,
            key,
            upload_id,
            version,
        } => {
            if !tables.bucket_exists(bucket)? {
                return Err(DiskError::BucketNotFound);
            }
            if !tables.upload_exists(bucket, key, *upload_id)? {
                return Err(DiskError::NotFound);
            }
            let parts = tables.take_upload(bucket, key, *upload_id)?;
            let used: std::collections::HashSet<Uuid> =
                version.parts.iter().filter_map(|p| p.data_id).collect();
            let removed_parts = parts
                .into_iter()
                .filter(|p| !used.contains(&p.data_id))
                .collect();
            let removed = tables.put_version(bucket, key, version, None)?;
            Ok(MetaOutcome {
                removed,
                removed_parts,
            })
        }
        MetaOp::UpdateMeta {
            bucket,
            key,
            data_id,
            meta,
            mod_time_ns,
        } => {
            let raw_key = object_key(bucket, key);
            let Some(mut record) = tables.read_record(&raw_key)? else {
                return Err(DiskError::NotFound);
            };
            let Some(pos) = record.versions.iter().position(|v| v.data_id == *data_id) else {
                return Err(DiskError::NotFound);
            };
            let mut version = record.versions.remove(pos);
            version.meta = meta.clone();
            if let Some(mod_time_ns) = mod_time_ns {
                version.mod_time_ns = *mod_time_ns;
            }
            insert_sorted(&mut record, version);
            tables.write_record(&raw_key, &record);
            Ok(MetaOutcome::default())
        }
        MetaOp::AbortUpload {
            bucket,
            key,
            upload_id,
        } => {
            if !tables.upload_exists(bucket, key, *upload_id)? {
                return Err(DiskError::NotFound);
            }
            let removed_parts = tables.take_upload(bucket, key, *upload_id)?;
            Ok(MetaOutcome {
                removed_parts,
                ..MetaOutcome::default()
            })
        }
        MetaOp::MarkComplete => {
            tables.tx.insert(&tables.ks.drive, COMPLETE, b"1");
            Ok(MetaOutcome::default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_successor_skips_the_whole_prefix() {
        assert_eq!(prefix_successor(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
        assert_eq!(prefix_successor(b""), None);
    }
}
