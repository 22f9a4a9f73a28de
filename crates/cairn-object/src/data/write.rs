//! PUT: stream a body through the erasure coder onto a set's drives, make
//! the shards durable, then commit metadata under the object's lock.
//!
//! Order of durability (docs/design.md section 4): every shard file is fsynced
//! before any drive's metadata names it, so a crash leaves at worst orphan
//! shard files, never metadata that points at missing data. Small objects
//! skip shard files and go into the metadata commit itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use cairn_disk::{
    Disk, DiskError, ErasureMeta, MetaOp, MetaOutcome, ObjectVersion, ReadData, RemovedVersion,
};
use cairn_erasure::{BitrotAlgo, Erasure, Frame};
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::data::conditions::Preconditions;
use crate::data::etag_md5::{HashingStopped, Md5Stream};
use crate::error::{Error, Result};
use crate::options::PutOptions;
use crate::quorum::{self, Strategy};
use crate::set::{DriveAnswers, ErasureSet, fan_out, write_failed};
use crate::shared::Shared;
use crate::types::{BodyStream, MAX_OBJECT_SIZE, ObjectInfo, object_info};
use crate::util::hex;

/// Frames queued per drive ahead of its writer: bounds memory per request
/// while letting body reads, encoding and drive writes overlap.
const WRITER_QUEUE: usize = 1;

/// Blocks up to this size are encoded on the request's own thread.
const INLINE_ENCODE_MAX: usize = 64 << 10;

/// The unit of the server-wide write budget (`Shared::write_budget`).
pub(crate) const BUDGET_UNIT: usize = 64 << 10;

/// A frame on its way to a drive, holding its block's share of the write
/// budget until the drive has it.
type QueuedFrame = (Bytes, Arc<OwnedSemaphorePermit>);

/// Cuts a body stream into erasure blocks.
struct BlockReader {
    body: BodyStream,
    block_size: usize,
    pending: Bytes,
    total: u64,
    declared: Option<u64>,
    done: bool,
}

impl BlockReader {
    fn new(body: BodyStream, block_size: usize, declared: Option<u64>) -> BlockReader {
        BlockReader {
            body,
            block_size,
            pending: Bytes::new(),
            total: 0,
            declared,
            done: false,
        }
    }

    /// The next block: full-sized except the last; `None` at the end.
    async fn next_block(&mut self) -> Result<Option<Block>> {
        let mut block = Block::default();
        while block.len < self.block_size {
            if self.pending.is_empty() {
                if self.done {
                    break;
                }
                match self.body.next().await {
                    Some(Ok(chunk)) => {
                        self.total += chunk.len() as u64;
                        if let Some(declared) = self.declared
                            && self.total > declared
                        {
                            return Err(Error::IncompleteBody {
                                expected: declared,
                                received: self.total,
                            });
                        }
                        if self.total > MAX_OBJECT_SIZE {
                            return Err(Error::EntityTooLarge {
                                size: self.total,
                                max: MAX_OBJECT_SIZE,
                            });
                        }
                        self.pending = chunk;
                    }
                    Some(Err(err)) => return Err(Error::Body(err)),
                    None => {
                        self.done = true;
                        break;
                    }
                }
            }
            let take = (self.block_size - block.len).min(self.pending.len());
            block.chunks.push(self.pending.split_to(take));
            block.len += take;
        }
        if block.len == 0 {
            return Ok(None);
        }
        Ok(Some(block))
    }
}

/// One erasure block as the body delivered it: its chunks, not copied into
/// one buffer (the encoder copies each byte once, into its shard's frame).
#[derive(Default)]
struct Block {
    chunks: Vec<Bytes>,
    len: usize,
}

/// Encodes blocks off the async runtime, carrying the codec and the body's
/// MD5 along. A large block's MD5 is computed on a hashing thread
/// (`etag_md5`) behind the body's earlier blocks, while this one is encoded
/// and the next read; only the end of the body waits for it.
struct Encoder {
    erasure: Option<Erasure>,
    md5: Md5Stream,
    /// The next block's number: where its frames go in the shard files.
    block_idx: u64,
}

impl Encoder {
    fn new(erasure: Erasure) -> Encoder {
        Encoder {
            erasure: Some(erasure),
            md5: Md5Stream::default(),
            block_idx: 0,
        }
    }

    /// The block's frames, one per shard. A large block's frames are
    /// placed for direct writes (`Erasure::encode_placed`).
    async fn encode(
        &mut self,
        block: Block,
        budget: Option<&Arc<OwnedSemaphorePermit>>,
    ) -> Result<Vec<Frame>> {
        let block_idx = self.block_idx;
        self.block_idx += 1;
        if block.len <= INLINE_ENCODE_MAX {
            // A small block is encoded in microseconds: cheaper here than
            // a hand-off to the blocking pool and back.
            self.md5.update(&block.chunks);
            let erasure = self.erasure.as_mut().expect("encoder in use");
            let frames = erasure
                .encode_chunks(&block.chunks)
                .map_err(|e| Error::Internal(e.to_string()))?;
            return Ok(frames.into_iter().map(Frame::from).collect());
        }
        // With no hashing thread, the block is hashed beside its encoding.
        let mut unhashed = None;
        if self.md5.threaded() {
            // The hashing thread holds the block's share of the write budget
            // while it holds the block's bytes.
            self.md5.push(block.chunks.clone(), budget.cloned());
        } else {
            unhashed = Some(std::mem::take(&mut self.md5));
        }
        let mut erasure = self.erasure.take().expect("encoder in use");
        let (erasure, md5, frames) = tokio::task::spawn_blocking(move || {
            if let Some(md5) = &mut unhashed {
                md5.update(&block.chunks);
            }
            let frames = erasure.encode_placed(&block.chunks, block_idx);
            (erasure, unhashed, frames)
        })
        .await
        .map_err(|e| Error::Internal(format!("encoder task: {e}")))?;
        self.erasure = Some(erasure);
        if let Some(md5) = md5 {
            self.md5 = md5;
        }
        frames.map_err(|e| Error::Internal(e.to_string()))
    }

    async fn md5(self) -> Result<[u8; 16]> {
        let state =
            self.md5.finish().await.map_err(|_: HashingStopped| {
                Error::Internal("the MD5 thread stopped".to_owned())
            })?;
        Ok(state.finalize())
    }
}

/// One writer task per shard, fed through a bounded queue.
struct ShardFanOut {
    senders: Vec<Option<mpsc::Sender<QueuedFrame>>>,
    tasks: Vec<Option<JoinHandle<Result<(), DiskError>>>>,
    errors: Vec<Option<DiskError>>,
    abort: Arc<AtomicBool>,
}

impl ShardFanOut {
    async fn open(disks_by_shard: &[Arc<dyn Disk>], data_id: Uuid, part: u32) -> ShardFanOut {
        let abort = Arc::new(AtomicBool::new(false));
        let created = fan_out(disks_by_shard, Strategy::all(), |_, disk| {
            disk.create_shard(data_id, part)
        })
        .await
        .into_vec();
        let mut fan = ShardFanOut {
            senders: Vec::new(),
            tasks: Vec::new(),
            errors: Vec::new(),
            abort: abort.clone(),
        };
        for created in created {
            match created {
                Ok(mut writer) => {
                    let (tx, mut rx) = mpsc::channel::<QueuedFrame>(WRITER_QUEUE);
                    let abort = abort.clone();
                    let task = tokio::spawn(async move {
                        while let Some((frame, _budget)) = rx.recv().await {
                            if let Err(err) = writer.write(frame).await {
                                writer.abort().await;
                                return Err(err);
                            }
                        }
                        if abort.load(Ordering::Acquire) {
                            writer.abort().await;
                            return Ok(());
                        }
                        writer.finish().await
                    });
                    fan.senders.push(Some(tx));
                    fan.tasks.push(Some(task));
                    fan.errors.push(None);
                }
                Err(err) => {
                    fan.senders.push(None);
                    fan.tasks.push(None);
                    fan.errors.push(Some(err));
                }
            }
        }
        fan
    }

    fn alive(&self) -> usize {
        self.senders.iter().filter(|s| s.is_some()).count()
    }

    /// Queues frame `i` for shard `i`; a writer that failed stops receiving.
    /// `budget` is released once every drive has its frame.
    async fn send(&mut self, frames: Vec<Frame>, budget: Arc<OwnedSemaphorePermit>) {
        let sends = self.senders.iter().zip(frames).map(|(sender, frame)| {
            let budget = budget.clone();
            // Where it was placed, not copied: the writer writes its whole
            // pages from there.
            let (buf, start) = frame.into_parts();
            let frame = Bytes::from(buf).slice(start..);
            async move {
                match sender {
                    Some(sender) => sender.send((frame, budget)).await.map_err(|_| ()),
                    None => Err(()),
                }
            }
        });
        // Each writer takes its frame as soon as its drive took the last
        // one; a drive that stops taking frames fails its writer at its
        // deadline (`cairn_disk::WatchedDisk`), which closes its queue.
        let sent = quorum::call_many(sends, Strategy::all()).await;
        for (sender, ok) in self.senders.iter_mut().zip(sent.results()) {
            if !matches!(ok, Some(Ok(()))) {
                sender.take();
            }
        }
    }

    /// Closes every queue and waits for the writers: with `commit`, each
    /// makes its file durable; without, each deletes it.
    async fn finish(mut self, commit: bool) -> Vec<Result<(), DiskError>> {
        self.abort.store(!commit, Ordering::Release);
        self.senders.clear();
        let mut results = Vec::with_capacity(self.tasks.len());
        for (task, error) in self.tasks.into_iter().zip(self.errors) {
            let result = match (task, error) {
                (Some(task), _) => match task.await {
                    Ok(result) => result,
                    Err(err) => Err(DiskError::Store(format!("shard writer task: {err}"))),
                },
                (None, Some(err)) => Err(err),
                (None, None) => Err(DiskError::Store("shard writer missing".to_owned())),
            };
            results.push(result);
        }
        results
    }
}

/// A body that has been read whole, before its shards are committed.
enum Pending {
    /// Per shard: all frames of the object, to go into the metadata store.
    Inline(Vec<Vec<u8>>),
    /// Shard files still open for writing.
    Files(ShardFanOut),
}

/// Where a body's shards went.
pub(crate) enum Stored {
    /// Per shard: all frames, to go into the metadata store.
    Inline(Vec<Vec<u8>>),
    /// Per shard: whether its shard file is durable.
    Files(Vec<Result<(), DiskError>>),
}

/// A body erasure coded onto a set's drives and checked, not yet committed.
pub(crate) struct Encoded {
    pub(crate) size: u64,
    pub(crate) md5: [u8; 16],
    pub(crate) stored: Stored,
}

/// How one object (or upload) lies on its set: the drive of each shard and
/// the erasure layout.
pub(crate) struct Layout {
    pub(crate) disks_by_shard: Vec<Arc<dyn Disk>>,
    pub(crate) data_shards: usize,
    pub(crate) parity_shards: usize,
    pub(crate) block_size: usize,
    pub(crate) rotation: usize,
}

impl Layout {
    pub(crate) fn erasure_meta(&self, shard_idx: usize) -> ErasureMeta {
        ErasureMeta {
            data_shards: self.data_shards as u8,
            parity_shards: self.parity_shards as u8,
            block_size: self.block_size as u32,
            shard_index: shard_idx as u8,
            rotation: self.rotation as u8,
            bitrot: BitrotAlgo::DEFAULT.id(),
        }
    }

    pub(crate) fn write_quorum(&self) -> usize {
        crate::set::write_quorum(self.data_shards, self.parity_shards)
    }

    pub(crate) fn erasure(&self) -> Result<Erasure> {
        Erasure::new(
            self.data_shards,
            self.parity_shards,
            self.block_size,
            BitrotAlgo::DEFAULT,
        )
        .map_err(|e| Error::Internal(e.to_string()))
    }
}

/// Whether a body of the declared `size` goes into the metadata store
/// instead of shard files, when its target allows that: its shard is at
/// most `threshold` bytes on each drive.
pub(crate) fn stores_inline(erasure: &Erasure, size: Option<u64>, threshold: usize) -> bool {
    size.is_some_and(|size| erasure.shard_file_size(size) <= threshold as u64)
}

impl ErasureSet {
    /// Slot of the drive that holds shard `shard_idx` under `rotation`.
    pub(crate) fn slot_of_shard(&self, rotation: usize, shard_idx: usize) -> usize {
        (rotation + shard_idx) % self.size()
    }

    /// The layout a new object or upload of `bucket/key` gets.
    pub(crate) fn new_layout(&self, shared: &Shared, bucket: &str, key: &str) -> Layout {
        let rotation = shared.placement.rotation(bucket, key, self.size());
        Layout {
            disks_by_shard: (0..self.size())
                .map(|shard_idx| self.disks[self.slot_of_shard(rotation, shard_idx)].clone())
                .collect(),
            data_shards: self.data_shards,
            parity_shards: self.parity_shards,
            block_size: shared.config.block_size,
            rotation,
        }
    }

    /// The layout an existing upload was created with.
    pub(crate) fn stored_layout(&self, erasure: &ErasureMeta) -> Layout {
        let rotation = usize::from(erasure.rotation);
        Layout {
            disks_by_shard: (0..self.size())
                .map(|shard_idx| self.disks[self.slot_of_shard(rotation, shard_idx)].clone())
                .collect(),
            data_shards: usize::from(erasure.data_shards),
            parity_shards: usize::from(erasure.parity_shards),
            block_size: erasure.block_size as usize,
            rotation,
        }
    }

    /// Reads `body` whole, erasure coding it as it arrives: into the
    /// metadata store when `allow_inline` and the declared size is small,
    /// else into shard file `(data_id, part)` on every drive, fsynced. Checks
    /// size, Content-MD5 and the finalizer before anything is durable; fails
    /// (and removes what it wrote) below write quorum.
    pub(crate) async fn encode_body(
        &self,
        shared: &Shared,
        layout: &Layout,
        body: BodyStream,
        opts: &mut PutOptions,
        target: ShardTarget,
    ) -> Result<Encoded> {
        let ShardTarget {
            data_id,
            part,
            allow_inline,
        } = target;
        if let Some(size) = opts.size
            && size > MAX_OBJECT_SIZE
        {
            return Err(Error::EntityTooLarge {
                size,
                max: MAX_OBJECT_SIZE,
            });
        }
        let n = layout.disks_by_shard.len();
        let erasure = layout.erasure()?;
        let inline =
            allow_inline && stores_inline(&erasure, opts.size, shared.config.inline_threshold);
        let mut encoder = Encoder::new(erasure);
        let mut blocks = BlockReader::new(body, layout.block_size, opts.size);
        let write_quorum = layout.write_quorum();
        let disks_by_shard = &layout.disks_by_shard;

        let pending = if inline {
            let mut shards: Vec<Vec<u8>> = vec![Vec::new(); n];
            while let Some(block) = blocks.next_block().await? {
                for (shard, frame) in shards.iter_mut().zip(encoder.encode(block, None).await?) {
                    shard.extend_from_slice(&frame);
                }
            }
            Pending::Inline(shards)
        } else {
            let mut fan = ShardFanOut::open(disks_by_shard, data_id, part).await;
            let streamed: Result<()> = async {
                if fan.alive() < write_quorum {
                    return Err(Error::WriteQuorum {
                        ok: fan.alive(),
                        needed: write_quorum,
                        errors: Vec::new(),
                    });
                }
                // A block's raw bytes and its frames on every drive.
                let bytes = layout.block_size + n * layout.block_size.div_ceil(layout.data_shards);
                let total = (shared.config.write_buffer / BUDGET_UNIT).max(1);
                let cost = bytes.div_ceil(BUDGET_UNIT).clamp(1, total) as u32;
                loop {
                    let budget = shared
                        .write_budget
                        .clone()
                        .acquire_many_owned(cost)
                        .await
                        .map_err(|e| Error::Internal(format!("write budget: {e}")))?;
                    let Some(block) = blocks.next_block().await? else {
                        break;
                    };
                    let budget = Arc::new(budget);
                    let frames = encoder.encode(block, Some(&budget)).await?;
                    fan.send(frames, budget).await;
                    if fan.alive() < write_quorum {
                        return Err(Error::WriteQuorum {
                            ok: fan.alive(),
                            needed: write_quorum,
                            errors: Vec::new(),
                        });
                    }
                }
                Ok(())
            }
            .await;
            if let Err(err) = streamed {
                let results = fan.finish(false).await;
                return Err(match err {
                    Error::WriteQuorum { ok, needed, .. } => {
                        write_failed(disks_by_shard, &results, ok, needed)
                    }
                    other => other,
                });
            }
            Pending::Files(fan)
        };
        let size = blocks.total;

        // The body is complete: check it before anything becomes durable.
        let checked = encoder
            .md5()
            .await
            .and_then(|md5| check_body(opts, size, &md5).map(|()| md5));
        let (stored, md5) = match (pending, checked) {
            (Pending::Inline(shards), Ok(md5)) => (Stored::Inline(shards), md5),
            (Pending::Files(fan), Ok(md5)) => (Stored::Files(fan.finish(true).await), md5),
            (Pending::Inline(_), Err(err)) => return Err(err),
            (Pending::Files(fan), Err(err)) => {
                fan.finish(false).await;
                return Err(err);
            }
        };
        if let Stored::Files(results) = &stored
            && let Err(err) = DriveAnswers::check_write_of(results, disks_by_shard, write_quorum)
        {
            remove_shards_on(disks_by_shard, data_id, part, results).await;
            return Err(err);
        }
        Ok(Encoded { size, md5, stored })
    }

    /// Commits a version on the drives given a shard in `commit.ops`
    /// (indexed by shard), under the object's lock, after checking
    /// preconditions against the current version; rolls back if write
    /// quorum fails. On success, deletes the data of what it replaced.
    pub(crate) async fn commit_version(
        &self,
        shared: &Shared,
        commit: VersionCommit<'_>,
        op: impl Fn(ObjectVersion, Option<Bytes>) -> MetaOp,
    ) -> Result<ObjectInfo> {
        let VersionCommit {
            bucket,
            key,
            mut version,
            disks_by_shard,
            ops,
            preconditions,
        } = commit;
        let write_quorum = crate::set::write_quorum(
            usize::from(version.erasure.data_shards),
            usize::from(version.erasure.parity_shards),
        );
        let guard = shared.lock_object_write(self, bucket, key).await?;
        if !preconditions.is_empty() {
            let current = match self.read_resolved(bucket, key, ReadData::None).await {
                Ok(resolved) => Some(object_info(bucket, key, &resolved.version)),
                Err(Error::ObjectNotFound) => None,
                Err(err) => return Err(err),
            };
            preconditions.check_write(current.as_ref())?;
        }
        // A writer that lost its lease must not commit: another may hold the key now.
        guard.check()?;
        version.mod_time_ns = shared.clock.now_ns();
        let results = fan_out(disks_by_shard, Strategy::all(), |shard_idx, disk| {
            let commit = ops[shard_idx].clone();
            let mut version = version.clone();
            let op = &op;
            async move {
                let Some((erasure, inline)) = commit else {
                    return Err(DiskError::Offline("its shard was not written".to_owned()));
                };
                version.erasure = erasure;
                disk.commit(op(version, inline)).await
            }
        })
        .await;
        let ok = results.ok();
        if ok < write_quorum {
            let bucket_missing = results.failed_with(|e| matches!(e, DiskError::BucketNotFound));
            let removed: Vec<Result<Vec<RemovedVersion>, DiskError>> = results
                .iter()
                .map(|r| match r {
                    Ok(outcome) => Ok(outcome.removed.clone()),
                    Err(_) => Err(DiskError::NotFound),
                })
                .collect();
            self.revert(bucket, key, version.data_id, disks_by_shard, &removed)
                .await;
            drop(guard);
            if bucket_missing >= write_quorum {
                shared.buckets.forget(bucket);
                return Err(Error::BucketNotFound);
            }
            return Err(write_failed(disks_by_shard, &results, ok, write_quorum));
        }
        drop(guard);
        if ok < disks_by_shard.len() {
            tracing::warn!(
                bucket, key, set = %self.name(), ok, drives = disks_by_shard.len(),
                errors = ?results.errors(disks_by_shard),
                                "object written below full redundancy; queued for healing",
            );
            shared.heal.push(bucket, key);
        }
        delete_removed(disks_by_shard, &results, Some(&version)).await;
        Ok(object_info(bucket, key, &version))
    }

    /// Undoes a `PutVersion` on every drive where it succeeded.
    pub(crate) async fn revert(
        &self,
        bucket: &str,
        key: &str,
        data_id: Uuid,
        disks: &[Arc<dyn Disk>],
        results: &[Result<Vec<RemovedVersion>, DiskError>],
    ) {
        let reverts = fan_out(disks, Strategy::all(), |idx, disk| {
            let previous = results[idx].as_ref().ok().cloned();
            async move {
                let Some(previous) = previous else {
                    return Ok(());
                };
                disk.commit(MetaOp::RevertPut {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    data_id,
                    previous,
                })
                .await
                .map(|_| ())
            }
        })
        .await;
        for (res, disk) in reverts.iter().zip(disks) {
            if let Err(err) = res {
                tracing::warn!(drive = disk.endpoint(), bucket, key, %err, "rollback of a failed write did not complete; the scanner will clean up");
            }
        }
    }
}

/// Where [`ErasureSet::encode_body`] puts a body: shard file
/// `(data_id, part)`, or the metadata store when `allow_inline` and small.
#[derive(Clone, Copy)]
pub(crate) struct ShardTarget {
    pub(crate) data_id: Uuid,
    pub(crate) part: u32,
    pub(crate) allow_inline: bool,
}

/// What one shard's drive commits: its erasure metadata and inline data.
pub(crate) type ShardCommit = (ErasureMeta, Option<Bytes>);

/// A version to commit, and where.
pub(crate) struct VersionCommit<'a> {
    pub(crate) bucket: &'a str,
    pub(crate) key: &'a str,
    pub(crate) version: ObjectVersion,
    pub(crate) disks_by_shard: &'a [Arc<dyn Disk>],
    pub(crate) ops: Vec<Option<ShardCommit>>,
    pub(crate) preconditions: &'a Preconditions,
}

/// Removes shard file `(data_id, part)`, which no reader has seen, on the
/// drives whose result is `Ok`.
pub(crate) async fn remove_shards_on<T>(
    disks: &[Arc<dyn Disk>],
    data_id: Uuid,
    part: u32,
    results: &[Result<T, DiskError>],
) {
    fan_out(disks, Strategy::all(), |idx, disk| {
        let wrote = results[idx].is_ok();
        async move {
            if wrote {
                disk.remove_shards(data_id, &[part]).await
            } else {
                Ok(())
            }
        }
    })
    .await;
}

/// Deletes, drive by drive, the data of what a metadata change removed:
/// replaced or deleted versions and unused or replaced upload parts. Data
/// `kept` still references (a metadata-only update) is left alone.
pub(crate) async fn delete_removed(
    disks: &[Arc<dyn Disk>],
    results: &[Result<MetaOutcome, DiskError>],
    kept: Option<&ObjectVersion>,
) {
    fan_out(disks, Strategy::all(), |idx, disk| {
        let outcome = results[idx].as_ref().ok().cloned().unwrap_or_default();
        async move {
                        // Replaced versions go to the trash (a GET may have resolved
            // them); upload parts were never readable and go at once.
            let mut files: Vec<(Uuid, u32)> = Vec::new();
            for old in outcome.removed.iter().filter(|old| !old.version.inline) {
                for part in &old.version.parts {
                    let file = old.version.part_file(part);
                    if !kept.is_some_and(|kept| kept.parts.iter().any(|p| kept.part_file(p) == file)) {
                        files.push(file);
                    }
                }
            }
                        for (data_id, part) in files {
                if let Err(err) = disk.delete_shards(data_id, &[part]).await {
                    tracing::warn!(drive = disk.endpoint(), %err, "could not delete replaced shard files; the scanner will");
                }
            }
            for part in &outcome.removed_parts {
                if let Err(err) = disk.remove_shards(part.data_id, &[part.number]).await {
                    tracing::warn!(drive = disk.endpoint(), %err, "could not remove upload part files; the scanner will");
                }
            }
            Ok::<(), DiskError>(())
        }
    })
    .await;
}

fn check_body(opts: &mut PutOptions, size: u64, md5: &[u8; 16]) -> Result<()> {
    if let Some(declared) = opts.size
        && declared != size
    {
        return Err(Error::IncompleteBody {
            expected: declared,
            received: size,
        });
    }
    if let Some(expected) = opts.content_md5
        && expected != *md5
    {
        return Err(Error::BadDigest {
            expected: hex(&expected),
            computed: hex(md5),
        });
    }
    if let Some(finalizer) = opts.finalizer.take() {
        let extra = finalizer().map_err(Error::Body)?;
        opts.meta.extend(extra);
    }
    Ok(())
}
