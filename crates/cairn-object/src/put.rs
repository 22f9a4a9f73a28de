//! PUT: stream a body through the erasure coder onto a set's drives, make
//! the shards durable, then commit metadata under the object's lock.
//!
//! Order of durability (DESIGN.md section 4): every shard file is fsynced
//! before any drive's metadata names it, so a crash leaves at worst orphan
//! shard files, never metadata that points at missing data. Small objects
//! skip shard files and go into the metadata commit itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use cairn_disk::{Disk, DiskError, ErasureMeta, MetaOp, ObjectVersion, PartMeta, RemovedVersion};
use cairn_erasure::{BitrotAlgo, Erasure};
use futures::StreamExt;
use md5::{Digest, Md5};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::layer::Shared;
use crate::nslock::{bucket_resource, object_resource};
use crate::set::{ErasureSet, describe_errors, fan_out};
use crate::types::{BodyStream, MAX_OBJECT_SIZE, ObjectInfo, PutOptions};

/// Frames queued per drive ahead of its writer: bounds memory per request
/// while letting body reads, encoding and drive writes overlap.
const WRITER_QUEUE: usize = 2;

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
    async fn next_block(&mut self) -> Result<Option<Vec<u8>>> {
        let mut block = Vec::with_capacity(self.block_size);
        while block.len() < self.block_size {
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
            let take = (self.block_size - block.len()).min(self.pending.len());
            block.extend_from_slice(&self.pending.split_to(take));
        }
        if block.is_empty() {
            return Ok(None);
        }
        Ok(Some(block))
    }
}

/// Encodes blocks off the async runtime, carrying the codec and MD5 state along.
struct Encoder {
    erasure: Option<Erasure>,
    md5: Option<Md5>,
}

impl Encoder {
    async fn encode(&mut self, block: Vec<u8>) -> Result<Vec<Vec<u8>>> {
        let mut erasure = self.erasure.take().expect("encoder in use");
        let mut md5 = self.md5.take().expect("encoder in use");
        let (erasure, md5, frames) = tokio::task::spawn_blocking(move || {
            md5.update(&block);
            let frames = erasure.encode(&block);
            (erasure, md5, frames)
        })
        .await
        .map_err(|e| Error::Internal(format!("encoder task: {e}")))?;
        self.erasure = Some(erasure);
        self.md5 = Some(md5);
        frames.map_err(|e| Error::Internal(e.to_string()))
    }

    fn md5(self) -> [u8; 16] {
        self.md5.expect("encoder in use").finalize().into()
    }
}

/// One writer task per shard, fed through a bounded queue.
struct ShardFanOut {
    senders: Vec<Option<mpsc::Sender<Bytes>>>,
    tasks: Vec<Option<JoinHandle<Result<(), DiskError>>>>,
    errors: Vec<Option<DiskError>>,
    abort: Arc<AtomicBool>,
}

impl ShardFanOut {
    async fn open(disks_by_shard: &[Arc<dyn Disk>], data_id: Uuid) -> ShardFanOut {
        let abort = Arc::new(AtomicBool::new(false));
        let created = fan_out(disks_by_shard, |_, disk| disk.create_shard(data_id, 1)).await;
        let mut fan = ShardFanOut {
            senders: Vec::new(),
            tasks: Vec::new(),
            errors: Vec::new(),
            abort: abort.clone(),
        };
        for created in created {
            match created {
                Ok(mut writer) => {
                    let (tx, mut rx) = mpsc::channel::<Bytes>(WRITER_QUEUE);
                    let abort = abort.clone();
                    let task = tokio::spawn(async move {
                        while let Some(frame) = rx.recv().await {
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
    async fn send(&mut self, frames: Vec<Vec<u8>>) {
        let sends = self
            .senders
            .iter()
            .zip(frames)
            .map(|(sender, frame)| async move {
                match sender {
                    Some(sender) => sender.send(Bytes::from(frame)).await.is_ok(),
                    None => false,
                }
            });
        let sent = futures::future::join_all(sends).await;
        for (sender, ok) in self.senders.iter_mut().zip(sent) {
            if !ok {
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn object_info(bucket: &str, key: &str, version: &ObjectVersion) -> ObjectInfo {
    ObjectInfo {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size: version.size,
        etag: version.etag.clone(),
        mod_time_ns: version.mod_time_ns,
        version_id: (!version.version_id.is_nil()).then_some(version.version_id),
        meta: version.meta.clone(),
        parts_count: version.parts.len(),
    }
}

impl ErasureSet {
    /// Slot of the drive that holds shard `shard_idx` under `rotation`.
    pub(crate) fn slot_of_shard(&self, rotation: usize, shard_idx: usize) -> usize {
        (rotation + shard_idx) % self.size()
    }

    pub(crate) async fn put_object(
        &self,
        shared: &Shared,
        bucket: &str,
        key: &str,
        body: BodyStream,
        mut opts: PutOptions,
    ) -> Result<ObjectInfo> {
        // Fail fast on a missing bucket, before reading a large body.
        self.bucket_info(bucket).await?;
        if let Some(size) = opts.size
            && size > MAX_OBJECT_SIZE
        {
            return Err(Error::EntityTooLarge {
                size,
                max: MAX_OBJECT_SIZE,
            });
        }
        let n = self.size();
        let rotation = shared.placement.rotation(bucket, key, n);
        let disks_by_shard: Vec<Arc<dyn Disk>> = (0..n)
            .map(|shard_idx| self.disks[self.slot_of_shard(rotation, shard_idx)].clone())
            .collect();
        let erasure = Erasure::new(
            self.data_shards,
            self.parity_shards,
            shared.config.block_size,
            BitrotAlgo::DEFAULT,
        )
        .map_err(|e| Error::Internal(e.to_string()))?;
        let inline = opts.size.is_some_and(|size| {
            erasure.shard_file_size(size) <= shared.config.inline_threshold as u64
        });
        let mut encoder = Encoder {
            erasure: Some(erasure),
            md5: Some(Md5::new()),
        };
        let mut blocks = BlockReader::new(body, shared.config.block_size, opts.size);
        let data_id = Uuid::new_v4();
        let write_quorum = self.write_quorum();

        let pending = if inline {
            let mut shards: Vec<Vec<u8>> = vec![Vec::new(); n];
            while let Some(block) = blocks.next_block().await? {
                for (shard, frame) in shards.iter_mut().zip(encoder.encode(block).await?) {
                    shard.extend_from_slice(&frame);
                }
            }
            Pending::Inline(shards)
        } else {
            let mut fan = ShardFanOut::open(&disks_by_shard, data_id).await;
            let streamed: Result<()> = async {
                while let Some(block) = blocks.next_block().await? {
                    let frames = encoder.encode(block).await?;
                    fan.send(frames).await;
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
                    Error::WriteQuorum { ok, needed, .. } => Error::WriteQuorum {
                        ok,
                        needed,
                        errors: describe_errors(&disks_by_shard, &results),
                    },
                    other => other,
                });
            }
            Pending::Files(fan)
        };
        let size = blocks.total;
        let erasure_meta = |shard_idx: usize| ErasureMeta {
            data_shards: self.data_shards as u8,
            parity_shards: self.parity_shards as u8,
            block_size: shared.config.block_size as u32,
            shard_index: shard_idx as u8,
            rotation: rotation as u8,
            bitrot: BitrotAlgo::DEFAULT.id(),
        };
        let md5 = encoder.md5();

        // The body is complete: check it before anything becomes durable.
        let checked = check_body(&mut opts, size, &md5);
        let (inline_shards, file_results) = match (pending, checked) {
            (Pending::Inline(shards), Ok(())) => (Some(shards), None),
            (Pending::Files(fan), Ok(())) => (None, Some(fan.finish(true).await)),
            (Pending::Inline(_), Err(err)) => return Err(err),
            (Pending::Files(fan), Err(err)) => {
                fan.finish(false).await;
                return Err(err);
            }
        };
        if let Some(results) = &file_results {
            let ok = results.iter().filter(|r| r.is_ok()).count();
            if ok < write_quorum {
                self.delete_shards_on(&disks_by_shard, data_id, results)
                    .await;
                return Err(Error::WriteQuorum {
                    ok,
                    needed: write_quorum,
                    errors: describe_errors(&disks_by_shard, results),
                });
            }
        }

        let version = ObjectVersion {
            version_id: Uuid::nil(),
            data_id,
            mod_time_ns: 0,
            delete_marker: false,
            size,
            etag: hex(&md5),
            erasure: erasure_meta(0),
            inline: inline_shards.is_some(),
            parts: vec![PartMeta {
                number: 1,
                size,
                etag: hex(&md5),
            }],
            meta: std::mem::take(&mut opts.meta),
        };
        // What each shard's drive commits; drives whose shard file failed commit nothing.
        let ops: Vec<Option<(ErasureMeta, Option<Bytes>)>> = match (inline_shards, &file_results) {
            (Some(shards), _) => shards
                .into_iter()
                .enumerate()
                .map(|(shard_idx, frames)| {
                    Some((erasure_meta(shard_idx), Some(Bytes::from(frames))))
                })
                .collect(),
            (None, Some(results)) => results
                .iter()
                .enumerate()
                .map(|(shard_idx, res)| res.is_ok().then(|| (erasure_meta(shard_idx), None)))
                .collect(),
            (None, None) => unreachable!("a body is stored inline or in files"),
        };
        let committed = self
            .commit_version(shared, bucket, key, version, &disks_by_shard, ops)
            .await;
        if committed.is_err() && file_results.is_some() {
            let all_ok: Vec<Result<(), DiskError>> = (0..n).map(|_| Ok(())).collect();
            self.delete_shards_on(&disks_by_shard, data_id, &all_ok)
                .await;
        }
        committed
    }

    /// Commits `version` on the drives given a shard in `ops` (indexed by
    /// shard), under the object's lock; rolls back if write quorum fails.
    /// On success, deletes the data of the versions it replaced.
    async fn commit_version(
        &self,
        shared: &Shared,
        bucket: &str,
        key: &str,
        mut version: ObjectVersion,
        disks_by_shard: &[Arc<dyn Disk>],
        ops: Vec<Option<(ErasureMeta, Option<Bytes>)>>,
    ) -> Result<ObjectInfo> {
        let write_quorum = self.write_quorum();
        let bucket_guard = shared.locks.read(bucket_resource(bucket)).await?;
        let object_guard = shared.locks.write(object_resource(bucket, key)).await?;
        version.mod_time_ns = shared.clock.now_ns();
        let results = fan_out(disks_by_shard, |shard_idx, disk| {
            let op = ops[shard_idx].clone();
            let mut version = version.clone();
            async move {
                let Some((erasure, inline)) = op else {
                    return Err(DiskError::Offline("its shard was not written".to_owned()));
                };
                version.erasure = erasure;
                disk.commit(MetaOp::PutVersion {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    version,
                    inline,
                })
                .await
                .map(|outcome| outcome.into_removed())
            }
        })
        .await;
        let ok = results.iter().filter(|r| r.is_ok()).count();
        if ok < write_quorum {
            let bucket_missing = results
                .iter()
                .filter(|r| matches!(r, Err(DiskError::BucketNotFound)))
                .count();
            self.revert(bucket, key, version.data_id, disks_by_shard, &results)
                .await;
            drop((object_guard, bucket_guard));
            if bucket_missing >= write_quorum {
                return Err(Error::BucketNotFound);
            }
            return Err(Error::WriteQuorum {
                ok,
                needed: write_quorum,
                errors: describe_errors(disks_by_shard, &results),
            });
        }
        drop((object_guard, bucket_guard));
        if ok < disks_by_shard.len() {
            tracing::warn!(
                bucket, key, set = %self.name(), ok, drives = disks_by_shard.len(),
                errors = ?describe_errors(disks_by_shard, &results),
                "object written below full redundancy; it needs healing",
            );
        }
        delete_replaced(disks_by_shard, &results).await;
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
        let reverts = fan_out(disks, |idx, disk| {
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

    /// Deletes shard files of `data_id` on the drives whose result is `Ok`.
    async fn delete_shards_on<T>(
        &self,
        disks: &[Arc<dyn Disk>],
        data_id: Uuid,
        results: &[Result<T, DiskError>],
    ) {
        fan_out(disks, |idx, disk| {
            let wrote = results[idx].is_ok();
            async move {
                if wrote {
                    disk.delete_shards(data_id, &[1]).await
                } else {
                    Ok(())
                }
            }
        })
        .await;
    }
}

/// Deletes the shard files of versions a commit replaced, drive by drive.
pub(crate) async fn delete_replaced(
    disks: &[Arc<dyn Disk>],
    results: &[Result<Vec<RemovedVersion>, DiskError>],
) {
    fan_out(disks, |idx, disk| {
        let removed: Vec<RemovedVersion> = results[idx].as_ref().map(|r| r.clone()).unwrap_or_default();
        async move {
            for old in removed.iter().filter(|old| !old.version.inline) {
                let parts: Vec<u32> = old.version.parts.iter().map(|p| p.number).collect();
                if let Err(err) = disk.delete_shards(old.version.data_id, &parts).await {
                    tracing::warn!(drive = disk.endpoint(), %err, "could not delete replaced shard files; the scanner will");
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
