//! Healing one object (issue 5, item 1): rebuild missing or corrupt shards
//! and metadata on every drive of the set from the good ones, remove
//! versions that never reached quorum, and leave a healthy object alone.
//!
//! Healing runs under the object's write lock, so no writer changes the
//! object meanwhile. Data is rebuilt block by block from verified frames
//! (never more than one block in memory per drive), written under the
//! version's own data id, made durable, and only then is metadata written to
//! drives that lacked it: the same order as a PUT, so a crash mid-heal
//! leaves at worst an orphan shard file.

use std::sync::Arc;

use bytes::Bytes;
use cairn_disk::{Disk, DiskError, MetaOp, ObjectRecord, ObjectVersion, ReadData, ShardWriter};
use cairn_erasure::Erasure;

use crate::data::get::{BlockSource, Source, erasure_of};
use crate::error::{Error, Result};
use crate::set::read::shard_index_of_slot;
use crate::set::{ErasureSet, ReadWait, read_records, resolve};
use crate::shared::Shared;

/// What healing one object found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealResult {
    /// Every reachable drive holds the version with verified data.
    Healthy,
    /// Shards or metadata were rebuilt on this many drives.
    Healed { drives: usize },
    /// Versions no read quorum holds (writes that never succeeded) were
    /// removed from this many drives.
    Removed { drives: usize },
    /// No drive holds the object.
    NotFound,
}

/// What healing one object did on one drive of its set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveHeal {
    /// Held the object (or nothing was to be done).
    Ok,
    /// Shards or metadata were rebuilt on it: this many bytes written.
    Healed(u64),
    /// It lacked the object but could not be written.
    Failed,
    /// Unreachable: checked and healed later.
    Offline,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealReport {
    pub result: HealResult,
    /// Per drive of the set, in slot order.
    pub drives: Vec<DriveHeal>,
    /// Bytes of shard data written.
    pub bytes: u64,
    /// Bytes of the object checked.
    pub size: u64,
    /// Drives that could not be checked or healed now (offline).
    pub offline: usize,
}

/// What one drive lacks of the resolved version.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lack {
    /// Holds it, with verified (or, without a deep check, present) data.
    Nothing,
    /// Its metadata lacks the version: metadata and data are rebuilt.
    Version,
    /// Has the version's metadata, but these parts' shards (by index into
    /// `parts`; all of them for inline data) are missing or corrupt.
    Data(Vec<usize>),
    /// Unreachable now.
    Offline,
}

/// Checks every frame of one shard (file or inline bytes) of `size` bytes.
async fn verify_shard(source: &Source, erasure: &Erasure, size: u64) -> bool {
    for block_idx in 0..erasure.block_count(size) {
        let len = erasure.frame_size(erasure.block_len(size, block_idx));
        match source
            .read_frame(erasure.frame_offset(block_idx), len)
            .await
        {
            Ok(frame) if erasure.algo().open(&frame).is_some() => {}
            _ => return false,
        }
    }
    true
}

impl ErasureSet {
    /// Heals `bucket/key` on this set. `deep` verifies every shard's frames
    /// against their hashes; otherwise shard files are only checked to exist
    /// (inline data, being small, is always verified).
    pub(crate) async fn heal_object(
        &self,
        shared: &Shared,
        bucket: &str,
        key: &str,
        deep: bool,
    ) -> Result<HealReport> {
        let _guard = shared.lock_object_write(self, bucket, key).await?;
        let n = self.size();
        let reads = read_records(
            &self.disks,
            bucket,
            key,
            ReadData::Latest,
            ReadWait::All,
            self.call_deadline,
        )
        .await;
        let records: Vec<Option<ObjectRecord>> = reads
            .iter()
            .map(|r| match r {
                Some(Ok(read)) => Some(read.record.clone()),
                Some(Err(DiskError::NotFound)) => Some(ObjectRecord::default()),
                Some(Err(_)) | None => None,
            })
            .collect();
        let offline = records.iter().filter(|r| r.is_none()).count();
        let Some(resolved) = resolve(&self.disks, self.read_quorum(), ReadData::Latest, reads)?
        else {
            return self.remove_dangling(bucket, key, &records, offline).await;
        };
        let version = resolved.version.clone();
        let identity = version.identity();
        let erasure = erasure_of(&version)?;
        let total = erasure.total_shards();
        if total != n {
            return Err(Error::Internal(format!(
                "{bucket}/{key}: version coded for {total} shards on a set of {n} drives"
            )));
        }

        // What each drive lacks.
        let mut lacks = vec![Lack::Nothing; n];
        for slot in 0..n {
            if records[slot].is_none() || !self.disks[slot].is_online() {
                lacks[slot] = Lack::Offline;
                continue;
            }
            let Some(shard) = resolved.shard_of_slot[slot] else {
                lacks[slot] = Lack::Version;
                continue;
            };
            if shard != shard_index_of_slot(&version, slot, n) {
                // Metadata that puts the shard in the wrong place: rewrite it.
                lacks[slot] = Lack::Version;
                continue;
            }
            if version.inline {
                let good = match &resolved.inline[slot] {
                    Some(bytes) => {
                        verify_shard(&Source::Inline(bytes.clone()), &erasure, version.size).await
                    }
                    None => false,
                };
                if !good {
                    lacks[slot] = Lack::Data(vec![0]);
                }
                continue;
            }
            let mut bad = Vec::new();
            for (idx, part) in version.parts.iter().enumerate() {
                let (data_id, number) = version.part_file(part);
                let ok = match self.disks[slot].open_shard(data_id, number).await {
                    Ok(reader) => {
                        !deep || verify_shard(&Source::File(reader), &erasure, part.size).await
                    }
                    Err(err) if err.is_offline() => {
                        lacks[slot] = Lack::Offline;
                        break;
                    }
                    Err(_) => false,
                };
                if !ok {
                    bad.push(idx);
                }
            }
            if lacks[slot] == Lack::Nothing && !bad.is_empty() {
                lacks[slot] = Lack::Data(bad);
            }
        }
        let offline = lacks
            .iter()
            .filter(|l| **l == Lack::Offline)
            .count()
            .max(offline);
        let targets: Vec<usize> = (0..n)
            .filter(|slot| matches!(lacks[*slot], Lack::Version | Lack::Data(_)))
            .collect();
        if targets.is_empty() {
            return Ok(HealReport {
                result: HealResult::Healthy,
                drives: lacks
                    .iter()
                    .map(|l| {
                        if *l == Lack::Offline {
                            DriveHeal::Offline
                        } else {
                            DriveHeal::Ok
                        }
                    })
                    .collect(),
                bytes: 0,
                size: version.size,
                offline,
            });
        }
        // Sources: every drive holding the version, including those with
        // bad frames: frames are verified one by one, so a shard with one
        // corrupt block still gives its good ones (and a replaced shard is
        // written aside, so it can be read while it is rebuilt).
        let source_slots: Vec<usize> = (0..n)
            .filter(|s| matches!(lacks[*s], Lack::Nothing | Lack::Data(_)))
            .collect();
        let mut written = vec![0u64; n];
        let mut inline_out: Vec<Vec<u8>> = vec![Vec::new(); n];
        if version.inline {
            let mut sources: Vec<Option<Source>> = (0..total).map(|_| None).collect();
            for &slot in &source_slots {
                if let Some(bytes) = &resolved.inline[slot] {
                    sources[shard_index_of_slot(&version, slot, n)] =
                        Some(Source::Inline(bytes.clone()));
                }
            }
            let mut blocks =
                BlockSource::new(erasure_of(&version)?, erasure.algo(), version.size, sources);
            let mut coder = erasure_of(&version)?;
            for block_idx in 0..coder.block_count(version.size) {
                let frames = rebuild_block(&mut blocks, &mut coder, block_idx).await?;
                for &slot in &targets {
                    inline_out[slot]
                        .extend_from_slice(&frames[shard_index_of_slot(&version, slot, n)]);
                }
            }
            for (slot, out) in inline_out.iter().enumerate() {
                written[slot] += out.len() as u64;
            }
        } else {
            for (part_idx, part) in version.parts.iter().enumerate() {
                let part_targets: Vec<usize> = targets
                    .iter()
                    .copied()
                    .filter(|slot| match &lacks[*slot] {
                        Lack::Version => true,
                        Lack::Data(parts) => parts.contains(&part_idx),
                        _ => false,
                    })
                    .collect();
                if part_targets.is_empty() || part.size == 0 {
                    continue;
                }
                for (slot, bytes) in self
                    .rebuild_part(&version, part_idx, &source_slots, &part_targets)
                    .await?
                {
                    written[slot] += bytes;
                }
            }
        }

        // Metadata last, on drives that lacked the version (or its inline data).
        let mut drives: Vec<DriveHeal> = lacks
            .iter()
            .map(|l| match l {
                Lack::Offline => DriveHeal::Offline,
                Lack::Nothing => DriveHeal::Ok,
                // Until shown otherwise below.
                Lack::Version | Lack::Data(_) => DriveHeal::Failed,
            })
            .collect();
        let mut healed = 0;
        for &slot in &targets {
            let needs_meta = lacks[slot] == Lack::Version || version.inline;
            let data_written =
                version.inline || version.parts.iter().all(|p| p.size == 0) || written[slot] > 0;
            if !data_written {
                continue;
            }
            if !needs_meta {
                healed += 1;
                drives[slot] = DriveHeal::Healed(written[slot]);
                continue;
            }
            let mut held = version.clone();
            held.erasure.shard_index = shard_index_of_slot(&version, slot, n) as u8;
            let inline = version
                .inline
                .then(|| Bytes::from(std::mem::take(&mut inline_out[slot])));
            let disk = &self.disks[slot];
            match disk
                .commit(MetaOp::PutVersion {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    version: held,
                    inline,
                })
                .await
            {
                Ok(outcome) => {
                    healed += 1;
                    drives[slot] = DriveHeal::Healed(written[slot]);
                    let results = [Ok(outcome)];
                    crate::data::write::delete_removed(
                        std::slice::from_ref(disk),
                        &results,
                        Some(&version),
                    )
                    .await;
                }
                Err(err) => {
                    tracing::warn!(bucket, key, drive = disk.endpoint(), %err, "heal could not write the object's metadata");
                }
            }
        }
        let written: u64 = written.iter().sum();
        tracing::info!(
            bucket, key, set = %self.name(), drives = healed, bytes = written,
            version = %identity.data_id, "object healed"
        );
        Ok(HealReport {
            result: HealResult::Healed { drives: healed },
            drives,
            bytes: written,
            size: version.size,
            offline,
        })
    }

    /// Rebuilds part `part_idx` of `version` onto `targets` from `sources`;
    /// returns the bytes written to each target that took them.
    async fn rebuild_part(
        &self,
        version: &ObjectVersion,
        part_idx: usize,
        source_slots: &[usize],
        targets: &[usize],
    ) -> Result<Vec<(usize, u64)>> {
        let n = self.size();
        let part = &version.parts[part_idx];
        let (data_id, number) = version.part_file(part);
        let mut sources: Vec<Option<Source>> = (0..n).map(|_| None).collect();
        for &slot in source_slots {
            if let Ok(reader) = self.disks[slot].open_shard(data_id, number).await {
                sources[shard_index_of_slot(version, slot, n)] = Some(Source::File(reader));
            }
        }
        let mut writers: Vec<(usize, Box<dyn ShardWriter>)> = Vec::new();
        for &slot in targets {
            let disk = &self.disks[slot];
            // Written aside and renamed over a corrupt or partial file when
            // done, so that concurrent readers never meet a partial one.
            match disk.replace_shard(data_id, number).await {
                Ok(writer) => writers.push((slot, writer)),
                Err(err) => {
                    tracing::warn!(drive = disk.endpoint(), %err, "heal cannot write to drive")
                }
            }
        }
        if writers.is_empty() {
            return Err(Error::Internal(
                "no target drive accepted the healed shards".to_owned(),
            ));
        }
        let mut blocks = BlockSource::new(
            erasure_of(version)?,
            erasure_of(version)?.algo(),
            part.size,
            sources,
        );
        let mut coder = erasure_of(version)?;
        let mut written = vec![0u64; n];
        let result: Result<()> = async {
            for block_idx in 0..coder.block_count(part.size) {
                let frames = rebuild_block(&mut blocks, &mut coder, block_idx).await?;
                for (slot, writer) in &mut writers {
                    let frame = &frames[shard_index_of_slot(version, *slot, n)];
                    written[*slot] += frame.len() as u64;
                    writer
                        .write(Bytes::copy_from_slice(frame))
                        .await
                        .map_err(|source| Error::Disk {
                            endpoint: self.disks[*slot].endpoint().to_owned(),
                            source,
                        })?;
                }
            }
            Ok(())
        }
        .await;
        if let Err(err) = result {
            for (_, writer) in writers {
                writer.abort().await;
            }
            return Err(err);
        }
        let mut done = Vec::with_capacity(writers.len());
        for (slot, writer) in writers {
            writer.finish().await.map_err(|source| Error::Disk {
                endpoint: self.disks[slot].endpoint().to_owned(),
                source,
            })?;
            done.push((slot, written[slot]));
        }
        Ok(done)
    }

    /// Removes versions that no read quorum holds, once every drive answered
    /// (a version on unreachable drives might still be readable).
    async fn remove_dangling(
        &self,
        bucket: &str,
        key: &str,
        records: &[Option<ObjectRecord>],
        offline: usize,
    ) -> Result<HealReport> {
        let holders: Vec<usize> = (0..self.size())
            .filter(|s| records[*s].as_ref().is_some_and(|r| !r.versions.is_empty()))
            .collect();
        if holders.is_empty() {
            return Ok(HealReport {
                result: HealResult::NotFound,
                drives: vec![DriveHeal::Ok; self.size()],
                bytes: 0,
                size: 0,
                offline,
            });
        }
        if offline > 0 {
            return Err(Error::ReadQuorum {
                ok: self.size() - offline,
                needed: self.size(),
                errors: vec![format!(
                    "{bucket}/{key}: a version below read quorum is removed only when every drive answers"
                )],
            });
        }
        let mut removed = 0;
        for slot in holders {
            let disk: &Arc<dyn Disk> = &self.disks[slot];
            let record = records[slot].as_ref().expect("holder");
            for version in &record.versions {
                match disk
                    .commit(MetaOp::DeleteVersion {
                        bucket: bucket.to_owned(),
                        key: key.to_owned(),
                        version_id: version.version_id,
                    })
                    .await
                {
                    Ok(outcome) => {
                        for old in outcome.removed.iter().filter(|v| !v.version.inline) {
                            for part in &old.version.parts {
                                let (data_id, number) = old.version.part_file(part);
                                let _ = disk.remove_shards(data_id, &[number]).await;
                            }
                        }
                    }
                    Err(DiskError::NotFound) => {}
                    Err(err) => {
                        return Err(Error::Disk {
                            endpoint: disk.endpoint().to_owned(),
                            source: err,
                        });
                    }
                }
            }
            removed += 1;
        }
        tracing::info!(bucket, key, set = %self.name(), drives = removed, "removed a version that never reached quorum");
        Ok(HealReport {
            result: HealResult::Removed { drives: removed },
            drives: vec![DriveHeal::Ok; self.size()],
            bytes: 0,
            size: 0,
            offline,
        })
    }
}

/// Gathers `data_shards` verified payloads of one block and re-encodes
/// every shard's frame.
async fn rebuild_block(
    blocks: &mut BlockSource,
    coder: &mut Erasure,
    block_idx: u64,
) -> Result<Vec<Vec<u8>>> {
    let payloads = blocks.gather(block_idx).await?;
    let refs: Vec<Option<&[u8]>> = payloads.iter().map(|p| p.as_deref()).collect();
    let block_len = coder.block_len(blocks.size, block_idx);
    let frames = coder
        .reconstruct(&refs, block_len)
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(frames)
}
