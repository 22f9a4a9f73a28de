//! DELETE of an object: remove its version from every drive under the
//! object's lock, roll back if write quorum fails, then delete its data.

use cairn_disk::{DiskError, MetaOp};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::layer::Shared;
use crate::put::delete_removed;
use crate::set::{ErasureSet, describe_errors, fan_out};

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
        let guard = self.lock_object_write(shared, bucket, key).await?;
        let results = fan_out(&self.disks, |_, disk| async move {
            disk.commit(MetaOp::DeleteVersion {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                version_id: Uuid::nil(),
            })
            .await
        })
        .await;
        let ok = results.iter().filter(|r| r.is_ok()).count();
        let bucket_missing = results
            .iter()
            .filter(|r| matches!(r, Err(DiskError::BucketNotFound)))
            .count();
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
                errors: describe_errors(&self.disks, &results),
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
