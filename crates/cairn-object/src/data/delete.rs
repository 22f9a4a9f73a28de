//! DELETE of an object: remove its version from every drive under the
//! object's lock, roll back if write quorum fails, then delete its data.

use cairn_disk::{DiskError, MetaOp};
use uuid::Uuid;

use crate::data::write::delete_removed;
use crate::error::{Error, Result};
use crate::quorum::Strategy;
use crate::set::{ErasureSet, fan_out};
use crate::shared::Shared;

impl ErasureSet {
    /// Deletes the null version of `bucket/key`. Deleting a missing key
    /// succeeds, as in S3.
    pub(crate) async fn delete_object(
        &self,
        shared: &Shared,
        bucket: &str,
        key: &str,
    ) -> Result<()> {
        let write_quorum = self.write_quorum();
        let guard = shared.lock_object_write(self, bucket, key).await?;
        let results = fan_out(&self.disks, Strategy::all(), |_, disk| async move {
            disk.commit(MetaOp::DeleteVersion {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                version_id: Uuid::nil(),
            })
            .await
        })
        .await;
        let ok = results.ok();
        let bucket_missing = results.failed_with(|e| matches!(e, DiskError::BucketNotFound));
        if bucket_missing >= self.read_quorum() && bucket_missing > ok {
            return Err(Error::BucketNotFound);
        }
        if ok < write_quorum {
            // Put back what was removed, with a nil data id that matches nothing.
            let removed: Vec<_> = results
                .iter()
                .map(|r| {
                    r.as_ref()
                        .map(|o| o.removed.clone())
                        .map_err(|_| DiskError::NotFound)
                })
                .collect();
            self.revert(bucket, key, Uuid::nil(), &self.disks, &removed)
                .await;
            return Err(Error::WriteQuorum {
                ok,
                needed: write_quorum,
                errors: results.errors(&self.disks),
            });
        }
        drop(guard);
        if ok < self.size() {
            tracing::warn!(bucket, key, set = %self.name(), ok, "delete reached quorum with drives failing; queued for healing");
            shared.heal.push(bucket, key);
        }
        delete_removed(&self.disks, &results, None).await;
        Ok(())
    }
}
