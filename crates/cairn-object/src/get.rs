//! GET and HEAD: resolve the version by quorum, open its shards, then stream
//! the requested range block by block, verifying every frame's hash and
//! reconstructing from parity when a shard is missing or corrupt.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use cairn_disk::{Disk, DiskError, ReadData, ShardReader};
use cairn_erasure::{BitrotAlgo, Erasure, HASH_LEN};
use futures::Stream;
use futures::future::join_all;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::layer::Shared;
use crate::nslock::object_resource;
use crate::put::object_info;
use crate::set::{ErasureSet, Resolved, fan_out};
use crate::types::{ByteRange, ObjectInfo};

/// Blocks decoded ahead of the client.
const READ_AHEAD: usize = 2;

/// Where one shard's frames come from.
enum Source {
    Inline(Bytes),
    File(Box<dyn ShardReader>),
}

impl Source {
    async fn read_frame(&self, offset: u64, len: usize) -> Result<Bytes, DiskError> {
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
}

struct BlockSource {
    erasure: Erasure,
    algo: BitrotAlgo,
    size: u64,
    sources: Vec<Option<Source>>,
    /// Shards whose reads failed: not asked again for later blocks.
    failed: HashSet<usize>,
    /// Frames that failed their hash, as (block, shard). Corruption is per
    /// frame, so a shard with one bad frame still serves the other blocks.
    corrupt: Vec<(u64, usize)>,
}

impl BlockSource {
    /// Reads and verifies enough shards of block `block_idx`, preferring data
    /// shards, and returns the bytes `within` of the block as chunks.
    async fn read_block(
        &mut self,
        block_idx: u64,
        within: std::ops::Range<usize>,
    ) -> Result<Vec<Bytes>> {
        let data_shards = self.erasure.data_shards();
        let total = self.erasure.total_shards();
        let block_len = self.erasure.block_len(self.size, block_idx);
        let frame_len = self.erasure.frame_size(block_len);
        let offset = self.erasure.frame_offset(block_idx);
        let mut payloads: Vec<Option<Bytes>> = vec![None; total];
        let mut tried = vec![false; total];
        loop {
            let have = payloads.iter().filter(|p| p.is_some()).count();
            if have >= data_shards {
                break;
            }
            let picks: Vec<usize> = (0..total)
                .filter(|&idx| {
                    !tried[idx] && self.sources[idx].is_some() && !self.failed.contains(&idx)
                })
                .take(data_shards - have)
                .collect();
            if picks.is_empty() {
                return Err(Error::ReadQuorum {
                    ok: have,
                    needed: data_shards,
                    errors: vec![format!("block {block_idx}: only {have} shards readable")],
                });
            }
            let reads = join_all(picks.iter().map(|&idx| {
                let source = self.sources[idx].as_ref().expect("picked sources exist");
                source.read_frame(offset, frame_len)
            }))
            .await;
            for (idx, read) in picks.into_iter().zip(reads) {
                tried[idx] = true;
                match read {
                    Ok(frame) if self.algo.open(&frame).is_some() => {
                        payloads[idx] = Some(frame.slice(HASH_LEN..));
                    }
                    Ok(_) => {
                        tracing::warn!(
                            shard = idx,
                            block = block_idx,
                            "bitrot detected: shard hash mismatch"
                        );
                        self.corrupt.push((block_idx, idx));
                    }
                    Err(err) => {
                        tracing::warn!(shard = idx, block = block_idx, %err, "shard read failed");
                        self.failed.insert(idx);
                    }
                }
            }
        }
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
}

impl ErasureSet {
    pub(crate) async fn head_object(
        &self,
        shared: &Shared,
        bucket: &str,
        key: &str,
    ) -> Result<ObjectInfo> {
        let _guard = shared.locks.read(object_resource(bucket, key)).await?;
        let resolved = self.read_resolved(bucket, key, ReadData::None).await?;
        Ok(object_info(bucket, key, &resolved.version))
    }

    pub(crate) async fn get_object(
        &self,
        shared: &Shared,
        bucket: &str,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<GetObject> {
        let guard = shared.locks.read(object_resource(bucket, key)).await?;
        let resolved = self.read_resolved(bucket, key, ReadData::Latest).await?;
        let info = object_info(bucket, key, &resolved.version);
        let size = resolved.version.size;
        let range = match range {
            Some(range) => range.resolve(size).ok_or(Error::InvalidRange { size })?,
            None => 0..size,
        };
        let (sources, holders) = self.open_sources(bucket, key, &resolved).await?;
        // Shard files are open: a concurrent overwrite can no longer take them away.
        drop(guard);
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let version = &resolved.version;
        let algo = BitrotAlgo::from_id(version.erasure.bitrot).ok_or_else(|| {
            Error::Internal(format!(
                "unknown bitrot algorithm {}",
                version.erasure.bitrot
            ))
        })?;
        let erasure = Erasure::new(
            usize::from(version.erasure.data_shards),
            usize::from(version.erasure.parity_shards),
            version.erasure.block_size as usize,
            algo,
        )
        .map_err(|e| Error::Internal(e.to_string()))?;
        let mut source = BlockSource {
            erasure,
            algo,
            size,
            sources,
            failed: HashSet::new(),
            corrupt: Vec::new(),
        };
        let full_redundancy = holders == self.size();
        let (bucket_name, key_name, set_name) = (bucket.to_owned(), key.to_owned(), self.name());
        let block_size = version.erasure.block_size as u64;
        let range_for_task = range.clone();
        tokio::spawn(async move {
            let range = range_for_task;
            if range.is_empty() {
                return;
            }
            let first_block = range.start / block_size;
            let last_block = (range.end - 1) / block_size;
            for block_idx in first_block..=last_block {
                let block_start = block_idx * block_size;
                let within = (range.start.max(block_start) - block_start) as usize
                    ..(range.end.min(block_start + block_size) - block_start) as usize;
                match source.read_block(block_idx, within).await {
                    Ok(chunks) => {
                        for chunk in chunks {
                            if tx.send(Ok(chunk)).await.is_err() {
                                return; // The client went away.
                            }
                        }
                    }
                    Err(err) => {
                        tracing::error!(bucket = %bucket_name, key = %key_name, set = %set_name, %err, "object unreadable");
                        let _ = tx.send(Err(err)).await;
                        return;
                    }
                }
            }
            if !source.failed.is_empty() || !source.corrupt.is_empty() || !full_redundancy {
                tracing::warn!(
                    bucket = %bucket_name, key = %key_name, set = %set_name,
                    failed_shards = ?source.failed, corrupt_frames = ?source.corrupt, "object read in degraded mode; it needs healing",
                );
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
        Ok(GetObject { info, range, body })
    }

    /// Opens every shard of the resolved version that its holders have;
    /// returns them by shard index, and how many drives held the version.
    async fn open_sources(
        &self,
        bucket: &str,
        key: &str,
        resolved: &Resolved,
    ) -> Result<(Vec<Option<Source>>, usize)> {
        let version = &resolved.version;
        let total =
            usize::from(version.erasure.data_shards) + usize::from(version.erasure.parity_shards);
        let data_shards = usize::from(version.erasure.data_shards);
        let mut sources: Vec<Option<Source>> = (0..total).map(|_| None).collect();
        let holders = resolved.holders();
        if version.size == 0 {
            return Ok((sources, holders));
        }
        if version.inline {
            let mut missing: Vec<(usize, usize)> = Vec::new();
            for (slot, shard) in resolved.shard_of_slot.iter().enumerate() {
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
                let reads = fan_out(&disks, |_, disk| disk.read_object(bucket, key, data)).await;
                for ((_, shard), read) in missing.into_iter().zip(reads) {
                    if let Ok(read) = read
                        && let Some(bytes) = read.inline
                        && shard < total
                    {
                        sources[shard] = Some(Source::Inline(bytes));
                    }
                }
            }
        } else {
            let opened = fan_out(&self.disks, |slot, disk| {
                let holds = resolved.shard_of_slot[slot].is_some();
                async move {
                    if !holds {
                        return Err(DiskError::NotFound);
                    }
                    disk.open_shard(version.data_id, 1).await
                }
            })
            .await;
            for (slot, opened) in opened.into_iter().enumerate() {
                if let (Some(shard), Ok(reader)) = (resolved.shard_of_slot[slot], opened)
                    && shard < total
                {
                    sources[shard] = Some(Source::File(reader));
                }
            }
        }
        let available = sources.iter().filter(|s| s.is_some()).count();
        if available < data_shards {
            return Err(Error::ReadQuorum {
                ok: available,
                needed: data_shards,
                errors: vec![format!(
                    "only {available} of the object's shards could be opened"
                )],
            });
        }
        Ok((sources, holders))
    }
}
