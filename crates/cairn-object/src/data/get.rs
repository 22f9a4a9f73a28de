//! GET and HEAD: resolve the version by quorum, open its shards, then stream
//! the requested range block by block, verifying every frame's hash and
//! reconstructing from parity when a shard is missing or corrupt.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use cairn_disk::{Disk, DiskError, ObjectVersion, ReadData, ShardReader};
use cairn_erasure::{BitrotAlgo, Erasure, HASH_LEN};
use futures::Stream;
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::options::GetOptions;
use crate::quorum::{self, Verdict};
use crate::set::nslock::object_resource;
use crate::set::{ErasureSet, ReadWait, Resolved, read_records, slow_drives};
use crate::shared::Shared;
use crate::types::ObjectInfo;
use crate::types::object_info;

/// Blocks decoded ahead of the client.
const READ_AHEAD: usize = 2;

/// Where one shard's frames come from.
pub(crate) enum Source {
    Inline(Bytes),
    File(Box<dyn ShardReader>),
}

impl Source {
    pub(crate) async fn read_frame(&self, offset: u64, len: usize) -> Result<Bytes, DiskError> {
        match self {
            Source::Inline(bytes) => {
                let start = offset as usize;
                bytes
                    .get(start..start + len)
                    .map(|_| bytes.slice(start..start + len))
                    .ok_or_else(|| DiskError::Corrupt {
                        what: "inline shard",
                        detail: format!("{} bytes, frame at {start}+{len}", bytes.len()),
                    })
            }
            Source::File(reader) => reader.read_at(offset, len).await,
        }
    }
}

/// The body of a GET: verified, decoded bytes of the requested range.
pub struct ObjectStream {
    first: Option<Bytes>,
    rx: mpsc::Receiver<Result<Bytes>>,
}

impl Stream for ObjectStream {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        self.rx.poll_recv(cx)
    }
}

/// A GET's answer: what the object is, which bytes of it follow, and them.
pub struct GetObject {
    pub info: ObjectInfo,
    pub range: std::ops::Range<u64>,
    pub body: ObjectStream,
    /// Sizes of the object's parts, in order.
    pub part_sizes: Vec<u64>,
}

pub(crate) struct BlockSource {
    pub(crate) erasure: Erasure,
    pub(crate) algo: BitrotAlgo,
    /// Size of the part (or object) the shards code.
    pub(crate) size: u64,
    pub(crate) sources: Vec<Option<Source>>,
    /// Shards whose reads failed: not asked again for later blocks.
    pub(crate) failed: HashSet<usize>,
    /// Shards on drives that answer slowly: asked last, and not waited for
    /// when other shards answer first (a hedged read).
    pub(crate) slow: Vec<bool>,
    /// Frames that failed their hash, as (block, shard). Corruption is per
    /// frame, so a shard with one bad frame still serves the other blocks.
    pub(crate) corrupt: Vec<(u64, usize)>,
    /// Shards whose files were still being opened when the read began
    /// (`PartSources::open`), by shard index, as they open.
    late: Option<mpsc::UnboundedReceiver<(usize, Source)>>,
}

/// The least a block read waits for a slow shard before it reads another
/// one instead, however fast the first answers came.
const HEDGE_MIN: Duration = Duration::from_millis(50);

impl BlockSource {
    pub(crate) fn new(
        erasure: Erasure,
        algo: BitrotAlgo,
        size: u64,
        sources: Vec<Option<Source>>,
    ) -> BlockSource {
        let total = sources.len();
        BlockSource {
            erasure,
            algo,
            size,
            sources,
            failed: HashSet::new(),
            slow: vec![false; total],
            corrupt: Vec::new(),
            late: None,
        }
    }

    /// Takes the shards still opening as they open.
    fn with_late(mut self, late: Option<mpsc::UnboundedReceiver<(usize, Source)>>) -> BlockSource {
        self.late = late;
        self
    }

    /// Adds the shards opened since; with `wait`, waits for the next one
    /// unless none is still opening. True when one was added.
    async fn take_late(&mut self, wait: bool) -> bool {
        let Some(late) = &mut self.late else {
            return false;
        };
        let mut added = false;
        while let Ok((idx, source)) = late.try_recv() {
            self.sources[idx] = Some(source);
            added = true;
        }
        if !added && wait {
            match late.recv().await {
                Some((idx, source)) => {
                    self.sources[idx] = Some(source);
                    added = true;
                }
                None => self.late = None,
            }
        }
        added
    }

    /// Marks the shards on drives known to be slow.
    pub(crate) fn with_slow(mut self, slow: Vec<bool>) -> BlockSource {
        if slow.len() == self.slow.len() {
            self.slow = slow;
        }
        self
    }

    /// Reads and verifies enough shards of block `block_idx`, preferring data
    /// shards, and returns the bytes `within` of the block as chunks.
    async fn read_block(
        &mut self,
        block_idx: u64,
        within: std::ops::Range<usize>,
    ) -> Result<Vec<Bytes>> {
        let payloads = self.gather(block_idx).await?;
        let data_shards = self.erasure.data_shards();
        let block_len = self.erasure.block_len(self.size, block_idx);
        let shard_size = self.erasure.shard_size(block_len);
        if payloads[..data_shards].iter().all(|p| p.is_some()) {
            // Healthy: hand out slices of the data shards, no copy.
            let mut chunks = Vec::new();
            for (shard_idx, payload) in payloads[..data_shards].iter().enumerate() {
                let shard_start = shard_idx * shard_size;
                let start = within.start.max(shard_start);
                let end = within.end.min(shard_start + shard_size);
                if start < end {
                    let payload = payload.as_ref().expect("checked above");
                    chunks.push(payload.slice(start - shard_start..end - shard_start));
                }
            }
            return Ok(chunks);
        }
        // Degraded: rebuild the block from what verified. Decoding a block
        // takes well under a millisecond, so it stays on this task.
        let refs: Vec<Option<&[u8]>> = payloads.iter().map(|p| p.as_deref()).collect();
        let mut block = Vec::with_capacity(block_len);
        self.erasure
            .decode_into(&refs, block_len, &mut block)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let block = Bytes::from(block);
        Ok(vec![block.slice(within)])
    }

    /// Reads and verifies at least `data_shards` shards of block
    /// `block_idx`, data shards of fast drives first; returns the verified
    /// payloads by shard index. A read still out well after the others
    /// answered (four times their time, at least [`HEDGE_MIN`]) is given up
    /// for another shard, and its drive counted slow for later blocks; only
    /// when no other shard is left is a slow one waited for.
    pub(crate) async fn gather(&mut self, block_idx: u64) -> Result<Vec<Option<Bytes>>> {
        let data_shards = self.erasure.data_shards();
        let total = self.erasure.total_shards();
        let block_len = self.erasure.block_len(self.size, block_idx);
        let frame_len = self.erasure.frame_size(block_len);
        let offset = self.erasure.frame_offset(block_idx);
        let mut payloads: Vec<Option<Bytes>> = vec![None; total];
        let mut tried = vec![false; total];
        let mut given_up: Vec<usize> = Vec::new();
        let mut patient = false;
        loop {
            let have = payloads.iter().filter(|p| p.is_some()).count();
            if have >= data_shards {
                break;
            }
            let mut candidates: Vec<usize> = (0..total)
                .filter(|&idx| {
                    !tried[idx] && self.sources[idx].is_some() && !self.failed.contains(&idx)
                })
                .collect();
            candidates.sort_by_key(|&idx| (self.slow[idx], idx >= data_shards, idx));
            let picks: Vec<usize> = candidates.into_iter().take(data_shards - have).collect();
            if picks.is_empty() {
                if self.take_late(true).await {
                    continue;
                }
                if !patient && !given_up.is_empty() {
                    // Nothing else to read: wait for the slow ones after all.
                    patient = true;
                    for idx in given_up.drain(..) {
                        tried[idx] = false;
                    }
                    continue;
                }
                return Err(Error::ReadQuorum {
                    ok: have,
                    needed: data_shards,
                    errors: vec![format!("block {block_idx}: only {have} shards readable")],
                });
            }
            let reads = picks.iter().map(|&idx| {
                let source = self.sources[idx].as_ref().expect("picked sources exist");
                source.read_frame(offset, frame_len)
            });
            let started = Instant::now();
            let mut first_answer: Option<Instant> = None;
            let answers = quorum::gather(reads, None, |answers| {
                if answers.pending() == 0 {
                    return Verdict::Done;
                }
                if patient || answers.pending() == answers.results().len() {
                    return Verdict::Wait;
                }
                let first = *first_answer.get_or_insert_with(Instant::now);
                Verdict::DoneBy(first + ((first - started) * 4).max(HEDGE_MIN))
            })
            .await;
            for (idx, read) in picks.into_iter().zip(answers.into_options()) {
                tried[idx] = true;
                match read {
                    None => {
                        self.slow[idx] = true;
                        given_up.push(idx);
                    }
                    Some(Ok(frame)) if self.algo.open(&frame).is_some() => {
                        payloads[idx] = Some(frame.slice(HASH_LEN..));
                    }
                    Some(Ok(_)) => {
                        tracing::warn!(
                            shard = idx,
                            block = block_idx,
                            "bitrot detected: shard hash mismatch"
                        );
                        self.corrupt.push((block_idx, idx));
                    }
                    Some(Err(err)) => {
                        tracing::warn!(shard = idx, block = block_idx, %err, "shard read failed");
                        self.failed.insert(idx);
                    }
                }
            }
        }
        Ok(payloads)
    }
}

/// Where the parts of a version start, in object offsets.
fn part_offsets(version: &ObjectVersion) -> Vec<u64> {
    let mut offsets = Vec::with_capacity(version.parts.len());
    let mut offset = 0;
    for part in &version.parts {
        offsets.push(offset);
        offset += part.size;
    }
    offsets
}

/// What the producer task needs to read any part of one version.
struct PartSources {
    disks: Vec<Arc<dyn Disk>>,
    shard_of_slot: Vec<Option<usize>>,
    version: ObjectVersion,
}

impl PartSources {
    /// By shard index: whether the shard's drive is lately slow.
    fn slow_shards(&self) -> Vec<bool> {
        let total = usize::from(self.version.erasure.data_shards)
            + usize::from(self.version.erasure.parity_shards);
        let mut slow = vec![false; total];
        for (slot, is_slow) in slow_drives(&self.disks).into_iter().enumerate() {
            if let Some(shard) = self.shard_of_slot[slot]
                && shard < total
            {
                slow[shard] = is_slow;
            }
        }
        slow
    }

    /// Opens the shard files of part `part_idx` on every drive that holds
    /// the version. Once `data_shards` are open, the others get a grace
    /// (four times what the quorum took, at least [`HEDGE_MIN`]); those
    /// still opening then are handed over as they open (the second value),
    /// so that a slow drive does not hold up a read that can do without it,
    /// and a read that loses a drive midway still finds the others.
    async fn open(&self, part_idx: usize) -> Result<(Vec<Option<Source>>, LateSources)> {
        let version = &self.version;
        let total =
            usize::from(version.erasure.data_shards) + usize::from(version.erasure.parity_shards);
        let data_shards = usize::from(version.erasure.data_shards);
        let (data_id, number) = version.part_file(&version.parts[part_idx]);
        let calls = self.disks.iter().enumerate().map(|(slot, disk)| {
            let holds = self.shard_of_slot[slot].is_some();
            let disk = disk.clone();
            async move {
                if !holds {
                    return Err(DiskError::NotFound);
                }
                disk.open_shard(data_id, number).await
            }
        });
        let started = Instant::now();
        let mut quorum_at: Option<Instant> = None;
        let (opened, rest) = quorum::gather_keeping_rest(calls, None, |answers| {
            if answers.ok() < data_shards {
                return Verdict::Wait;
            }
            let at = *quorum_at.get_or_insert_with(Instant::now);
            Verdict::DoneBy(at + ((at - started) * 4).max(HEDGE_MIN))
        })
        .await;
        let late = (opened.pending() > 0).then(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let shard_of_slot = self.shard_of_slot.clone();
            tokio::spawn(async move {
                let mut rest = rest;
                while let Some((slot, opened)) = futures::StreamExt::next(&mut rest).await {
                    if let (Some(shard), Ok(reader)) = (shard_of_slot[slot], opened)
                        && shard < total
                        && tx.send((shard, Source::File(reader))).is_err()
                    {
                        return;
                    }
                }
            });
            rx
        });
        let mut sources: Vec<Option<Source>> = (0..total).map(|_| None).collect();
        for (slot, opened) in opened.into_options().into_iter().enumerate() {
            if let (Some(shard), Some(Ok(reader))) = (self.shard_of_slot[slot], opened)
                && shard < total
            {
                sources[shard] = Some(Source::File(reader));
            }
        }
        enough_sources(&sources, data_shards, &format!("part {number}"))?;
        Ok((sources, late))
    }
}

/// `Ok` when at least `data_shards` of a read's shards can be read.
fn enough_sources(sources: &[Option<Source>], data_shards: usize, what: &str) -> Result<()> {
    let available = sources.iter().filter(|s| s.is_some()).count();
    if available >= data_shards {
        return Ok(());
    }
    Err(Error::ReadQuorum {
        ok: available,
        needed: data_shards,
        errors: vec![format!("only {available} shards of {what} could be read")],
    })
}

/// Shards of a part that were still opening when its read began.
type LateSources = Option<mpsc::UnboundedReceiver<(usize, Source)>>;

impl ErasureSet {
    pub(crate) async fn head_object(
        &self,
        shared: &Shared,
        bucket: &str,
        key: &str,
    ) -> Result<ObjectInfo> {
        let _guard = shared
            .locks
            .read(self.lock_set(), object_resource(bucket, key))
            .await?;
        let resolved = self.read_resolved(bucket, key, ReadData::None).await?;
        Ok(object_info(bucket, key, &resolved.version))
    }

    /// The resolved current version, for callers that need its parts.
    pub(crate) async fn head_version(
        &self,
        shared: &Shared,
        bucket: &str,
        key: &str,
    ) -> Result<ObjectVersion> {
        let _guard = shared
            .locks
            .read(self.lock_set(), object_resource(bucket, key))
            .await?;
        Ok(self
            .read_resolved(bucket, key, ReadData::None)
            .await?
            .version)
    }

    pub(crate) async fn get_object(
        &self,
        shared: &Shared,
        bucket: &str,
        key: &str,
        opts: &GetOptions,
    ) -> Result<GetObject> {
        let guard = shared
            .locks
            .read(self.lock_set(), object_resource(bucket, key))
            .await?;
        let resolved = self.read_resolved(bucket, key, ReadData::Latest).await?;
        let info = object_info(bucket, key, &resolved.version);
        opts.preconditions.check_read(&info)?;
        let version = resolved.version.clone();
        let size = version.size;
        let offsets = part_offsets(&version);
        let range = match (opts.part_number, opts.range) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidRequest(
                    "Cannot specify both Range header and partNumber query parameter".to_owned(),
                ));
            }
            (Some(number), None) => {
                let idx = version
                    .parts
                    .iter()
                    .position(|p| p.number == number)
                    .filter(|_| number >= 1)
                    .ok_or(Error::InvalidPartNumber {
                        number,
                        parts: version.parts.len(),
                    })?;
                if version.parts[idx].size == 0 {
                    return Err(Error::InvalidRange { size });
                }
                offsets[idx]..offsets[idx] + version.parts[idx].size
            }
            (None, Some(range)) => range.resolve(size).ok_or(Error::InvalidRange { size })?,
            (None, None) => 0..size,
        };
        let holders = resolved.holders() + resolved.pending();
        let parts = PartSources {
            disks: self.disks.clone(),
            shard_of_slot: resolved.shard_sources(),
            version: version.clone(),
        };
        // The first part's shards are opened under the lock; later parts
        // open as the stream reaches them, finding replaced files in the
        // drives' trash.
        let first_part = offsets
            .partition_point(|o| *o <= range.start)
            .saturating_sub(1);
        let first_sources = if range.is_empty() {
            (Vec::new(), None)
        } else if version.inline {
            (self.open_inline(bucket, key, &resolved).await?, None)
        } else {
            parts.open(first_part).await?
        };
        drop(guard);
        // Validate the layout now, while the error can still become a status.
        let algo = erasure_of(&version)?.algo();
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let full_redundancy = holders == self.size();
        let heal = shared.heal.clone();
        let (bucket_name, key_name, set_name) = (bucket.to_owned(), key.to_owned(), self.name());
        let block_size = u64::from(version.erasure.block_size);
        let task_range = range.clone();
        let data_shards = usize::from(version.erasure.data_shards);
        let parity_shards = usize::from(version.erasure.parity_shards);
        let block_size_usize = version.erasure.block_size as usize;
        tokio::spawn(async move {
            let range = task_range;
            if range.is_empty() {
                return;
            }
            let mut first_sources = Some(first_sources);
            let mut degraded = Vec::new();
            for (part_idx, part) in parts.version.parts.iter().enumerate().skip(first_part) {
                let part_start = offsets[part_idx];
                let part_end = part_start + part.size;
                if part_start >= range.end {
                    break;
                }
                if part_end <= range.start || part.size == 0 {
                    continue;
                }
                let sources = match first_sources.take() {
                    Some(sources) => Ok(sources),
                    None => parts.open(part_idx).await,
                };
                let erasure = Erasure::new(data_shards, parity_shards, block_size_usize, algo);
                let ((sources, late), erasure) = match (sources, erasure) {
                    (Ok(sources), Ok(erasure)) => (sources, erasure),
                    (Err(err), _) => {
                        tracing::error!(bucket = %bucket_name, key = %key_name, set = %set_name, %err, "object unreadable");
                        let _ = tx.send(Err(err)).await;
                        return;
                    }
                    (_, Err(err)) => {
                        let _ = tx.send(Err(Error::Internal(err.to_string()))).await;
                        return;
                    }
                };
                let mut source = BlockSource::new(erasure, algo, part.size, sources)
                    .with_slow(parts.slow_shards())
                    .with_late(late);
                // The range, in offsets within this part.
                let from = range.start.max(part_start) - part_start;
                let to = range.end.min(part_end) - part_start;
                for block_idx in from / block_size..=(to - 1) / block_size {
                    let block_start = block_idx * block_size;
                    let within = (from.max(block_start) - block_start) as usize
                        ..(to.min(block_start + block_size) - block_start) as usize;
                    match source.read_block(block_idx, within).await {
                        Ok(chunks) => {
                            for chunk in chunks {
                                if tx.send(Ok(chunk)).await.is_err() {
                                    return; // The client went away.
                                }
                            }
                        }
                        Err(err) => {
                            tracing::error!(bucket = %bucket_name, key = %key_name, set = %set_name, part = part.number, %err, "object unreadable");
                            let _ = tx.send(Err(err)).await;
                            return;
                        }
                    }
                }
                if !source.failed.is_empty() || !source.corrupt.is_empty() {
                    degraded.push((part.number, source.failed, source.corrupt));
                }
            }
            if !degraded.is_empty() || !full_redundancy {
                tracing::warn!(
                    bucket = %bucket_name, key = %key_name, set = %set_name,
                                        degraded_parts = ?degraded, "object read in degraded mode; queued for healing",
                );
                heal.push(&bucket_name, &key_name);
            }
        });
        let mut body = ObjectStream { first: None, rx };
        if !range.is_empty() {
            // Wait for the first bytes so that an unreadable object fails
            // with a proper status, not a truncated 200.
            match futures::StreamExt::next(&mut body).await {
                Some(Ok(first)) => body.first = Some(first),
                Some(Err(err)) => return Err(err),
                None => return Err(Error::Internal("object stream ended early".to_owned())),
            }
        }
        Ok(GetObject {
            info,
            range,
            body,
            part_sizes: version.parts.iter().map(|p| p.size).collect(),
        })
    }

    /// The inline shards of a small object, by shard index.
    async fn open_inline(
        &self,
        bucket: &str,
        key: &str,
        resolved: &Resolved,
    ) -> Result<Vec<Option<Source>>> {
        let version = &resolved.version;
        let total =
            usize::from(version.erasure.data_shards) + usize::from(version.erasure.parity_shards);
        let data_shards = usize::from(version.erasure.data_shards);
        let mut sources: Vec<Option<Source>> = (0..total).map(|_| None).collect();
        let mut missing: Vec<(usize, usize)> = Vec::new();
        for (slot, shard) in resolved.shard_sources().iter().enumerate() {
            let Some(shard) = *shard else { continue };
            match &resolved.inline[slot] {
                Some(bytes) if shard < total => {
                    sources[shard] = Some(Source::Inline(bytes.clone()))
                }
                _ => missing.push((slot, shard)),
            }
        }
        let have = sources.iter().filter(|s| s.is_some()).count();
        if have < data_shards && !missing.is_empty() {
            let data = ReadData::Version(version.data_id);
            let disks: Vec<Arc<dyn Disk>> = missing
                .iter()
                .map(|(slot, _)| self.disks[*slot].clone())
                .collect();
            let reads =
                read_records(&disks, bucket, key, data, ReadWait::All, self.call_deadline).await;
            for ((_, shard), read) in missing.into_iter().zip(reads) {
                if let Some(Ok(read)) = read
                    && let Some(bytes) = read.inline
                    && shard < total
                {
                    sources[shard] = Some(Source::Inline(bytes));
                }
            }
        }
        enough_sources(&sources, data_shards, "the object")?;
        Ok(sources)
    }
}

/// The erasure coder a stored version was written with.
pub(crate) fn erasure_of(version: &ObjectVersion) -> Result<Erasure> {
    let algo = BitrotAlgo::from_id(version.erasure.bitrot).ok_or_else(|| {
        Error::Internal(format!(
            "unknown bitrot algorithm {}",
            version.erasure.bitrot
        ))
    })?;
    Erasure::new(
        usize::from(version.erasure.data_shards),
        usize::from(version.erasure.parity_shards),
        version.erasure.block_size as usize,
        algo,
    )
    .map_err(|e| Error::Internal(e.to_string()))
}
