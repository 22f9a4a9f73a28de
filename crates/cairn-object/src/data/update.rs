//! Metadata-only changes of an existing object: tagging, and a copy of an
//! object onto itself that replaces its metadata. The data stays where it is.

use std::collections::BTreeMap;
use std::sync::Arc;

use cairn_disk::{Disk, DiskError, MetaOp, ReadData};

use crate::data::conditions::Preconditions;
use crate::error::Result;
use crate::quorum::Strategy;
use crate::set::{ErasureSet, ReadWait, fan_out, write_failed, write_quorum};
use crate::shared::Shared;
use crate::types::ObjectInfo;
use crate::types::object_info;

/// Computes an object's new metadata from its current state.
pub type MetaUpdate = Box<dyn FnOnce(&ObjectInfo) -> Result<BTreeMap<String, String>> + Send>;

impl ErasureSet {
    /// Replaces the metadata of `bucket/key` with what `update` returns,
    /// after `preconditions` pass against the current object. With `touch`
    /// the object's modification time moves to now, as a copy does.
    pub(crate) async fn update_meta(
        &self,
        shared: &Shared,
        bucket: &str,
        key: &str,
        update: MetaUpdate,
        touch: bool,
        preconditions: &Preconditions,
    ) -> Result<ObjectInfo> {
        let guard = shared.lock_object_write(self, bucket, key).await?;
        let resolved = self
            .read_resolved_waiting(bucket, key, ReadData::None, ReadWait::All)
            .await?;
        let old = resolved.version;
        let info = object_info(bucket, key, &old);
        preconditions.check_read(&info)?;
        let meta = update(&info)?;
        let mod_time_ns = touch.then(|| shared.clock.now_ns());
        let holders: Vec<Arc<dyn Disk>> = resolved
            .shard_of_slot
            .iter()
            .zip(&self.disks)
            .filter(|(shard, _)| shard.is_some())
            .map(|(_, disk)| disk.clone())
            .collect();
        let change =
            |meta: BTreeMap<String, String>, mod_time_ns: Option<i64>| MetaOp::UpdateMeta {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                data_id: old.data_id,
                meta,
                mod_time_ns,
            };
        // A writer that lost its lease must not commit: another may hold the key now.
        guard.check()?;
        let results = fan_out(&holders, Strategy::all(), |_, disk| {
            disk.commit(change(meta.clone(), mod_time_ns))
        })
        .await;
        let ok = results.ok();
        let needed = write_quorum(
            usize::from(old.erasure.data_shards),
            usize::from(old.erasure.parity_shards),
        );
        if ok < needed {
            // Put the old metadata back, so that the drives agree on one version.
            let undo = fan_out(&holders, Strategy::all(), |idx, disk| {
                let changed = results[idx].is_ok();
                let op = change(old.meta.clone(), mod_time_ns.map(|_| old.mod_time_ns));
                async move {
                    if changed {
                        disk.commit(op).await.map(|_| ())
                    } else {
                        Ok::<(), DiskError>(())
                    }
                }
            })
            .await;
            if undo.iter().any(|r| r.is_err()) {
                tracing::warn!(
                    bucket,
                    key,
                    "undoing a failed metadata update did not complete everywhere"
                );
            }
            return Err(write_failed(&holders, &results, ok, needed));
        }
        let mut version = old;
        version.meta = meta;
        if let Some(mod_time_ns) = mod_time_ns {
            version.mod_time_ns = mod_time_ns;
        }
        Ok(object_info(bucket, key, &version))
    }
}
