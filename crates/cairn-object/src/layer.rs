//! [`ObjectLayer`]: pools of erasure sets behind one bucket and object API.

use std::collections::BTreeMap;
use std::sync::Arc;

use cairn_disk::{BucketRecord, DiskError, MetaOp};
use futures::future::join_all;
use uuid::Uuid;

use crate::data::conditions::Preconditions;
use crate::data::get::GetObject;
use crate::data::list::{Listed, MergedLister, ReadAheadStats, SetLister};
use crate::data::multipart::{
    CompleteOptions, CompletePart, ListUploadsOptions, ListUploadsResult, ListedUpload, PartInfo,
    UploadInfo,
};
use crate::data::update::MetaUpdate;
use crate::error::{Error, Result};
use crate::maintenance::heal::HealReport;
use crate::options::{GetOptions, PutOptions};
use crate::quorum::Strategy;
use crate::set::nslock::bucket_resource;
use crate::set::{ErasureSet, fan_out};
use crate::shared::Shared;
use crate::types::SYSTEM_BUCKET;
use crate::types::{BodyStream, BucketInfo, ListOptions, ListResult, ObjectInfo, SetHealth};

/// One server pool: erasure sets of equal size.
pub(crate) struct Pool {
    pub(crate) sets: Vec<Arc<ErasureSet>>,
}

/// Every pool of the deployment, behind one bucket and object API.
pub struct ObjectLayer {
    pub(crate) pools: Vec<Pool>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) deployment_id: Uuid,
}

/// Bucket names as S3 allows them for new buckets: 3 to 63 characters of
/// lower-case letters, digits, dots and hyphens, starting and ending with a
/// letter or digit, no `..`, not an IP address.
pub fn check_bucket_name(name: &str) -> Result<()> {
    let bytes = name.as_bytes();
    let valid = (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
        && !name.contains(".-")
        && !name.contains("-.")
        && name.parse::<std::net::Ipv4Addr>().is_err();
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidBucketName(name.to_owned()))
    }
}

/// Names a new bucket may not take, though an existing bucket keeps working:
/// the server's own routes (`/cairn/...`, `/minio/...`), and the prefixes
/// and suffixes S3 reserves for its access points and directory buckets.
const RESERVED_BUCKETS: &[&str] = &["cairn", "minio"];
const RESERVED_PREFIXES: &[&str] = &["xn--", "sthree-", "amzn-s3-demo-"];
const RESERVED_SUFFIXES: &[&str] = &["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];

/// [`check_bucket_name`], and not a reserved name.
pub fn check_new_bucket_name(name: &str) -> Result<()> {
    check_bucket_name(name)?;
    if RESERVED_BUCKETS.contains(&name)
        || RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
        || RESERVED_SUFFIXES.iter().any(|s| name.ends_with(s))
    {
        return Err(Error::InvalidBucketName(name.to_owned()));
    }
    Ok(())
}

/// Object keys as S3 allows them: 1 to 1024 bytes of UTF-8. Any such key
/// is stored as given; none ever becomes a path.
pub fn check_object_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidObjectName("empty key".to_owned()));
    }
    if key.len() > 1024 {
        return Err(Error::KeyTooLong { len: key.len() });
    }
    Ok(())
}

impl ObjectLayer {
    pub fn deployment_id(&self) -> Uuid {
        self.deployment_id
    }

    /// The heal queue's counters.
    pub fn heal_queue_stats(&self) -> crate::maintenance::heal_queue::HealQueueStats {
        self.shared.heal.stats()
    }

    fn all_sets(&self) -> impl Iterator<Item = &Arc<ErasureSet>> {
        self.pools.iter().flat_map(|pool| pool.sets.iter())
    }

    /// Availability of every set.
    pub fn health(&self) -> Vec<SetHealth> {
        self.all_sets().map(|set| set.health()).collect()
    }

    fn set_in_pool(&self, pool: &Pool, bucket: &str, key: &str) -> Arc<ErasureSet> {
        let idx = self
            .shared
            .placement
            .set_index(bucket, key, pool.sets.len());
        pool.sets[idx].clone()
    }

    /// The set that holds (or will hold) `bucket/key`: the pool that has the
    /// object, else the pool with the most free space.
    pub(crate) async fn set_for(
        &self,
        bucket: &str,
        key: &str,
        for_write: bool,
    ) -> Result<Arc<ErasureSet>> {
        if self.pools.len() == 1 {
            return Ok(self.set_in_pool(&self.pools[0], bucket, key));
        }
        let candidates: Vec<Arc<ErasureSet>> = self
            .pools
            .iter()
            .map(|p| self.set_in_pool(p, bucket, key))
            .collect();
        let heads = join_all(
            candidates
                .iter()
                .map(|set| set.head_object(&self.shared, bucket, key)),
        )
        .await;
        let mut newest: Option<(i64, usize)> = None;
        for (idx, head) in heads.iter().enumerate() {
            if let Ok(info) = head
                && newest.is_none_or(|(t, _)| info.mod_time_ns > t)
            {
                newest = Some((info.mod_time_ns, idx));
            }
        }
        if let Some((_, idx)) = newest {
            return Ok(candidates[idx].clone());
        }
        if !for_write {
            return Ok(candidates[0].clone());
        }
        let mut best = (0u64, 0usize);
        for (idx, set) in candidates.iter().enumerate() {
            let spaces = fan_out(&set.disks, Strategy::all(), |_, disk| disk.space()).await;
            let free: u64 = spaces.iter().flatten().map(|s| s.free).sum();
            if free > best.0 {
                best = (free, idx);
            }
        }
        Ok(candidates[best.1].clone())
    }

    pub async fn make_bucket(&self, bucket: &str) -> Result<()> {
        check_new_bucket_name(bucket)?;
        self.make_bucket_unchecked(bucket).await
    }

    /// Creates a bucket without checking its name: for the system bucket.
    pub(crate) async fn make_bucket_unchecked(&self, bucket: &str) -> Result<()> {
        let _guard = self
            .shared
            .locks
            .write(self.shared.bucket_lock_set(bucket), bucket_resource(bucket))
            .await?;
        match self.bucket_info(bucket).await {
            Ok(_) => return Err(Error::BucketExists),
            Err(Error::BucketNotFound) => {}
            Err(err) => return Err(err),
        }
        let record = BucketRecord {
            name: bucket.to_owned(),
            created_ns: self.shared.clock.now_ns(),
        };
        let sets: Vec<Arc<ErasureSet>> = self.all_sets().cloned().collect();
        let results = join_all(sets.iter().map(|set| {
            let record = record.clone();
            async move {
                fan_out(&set.disks, Strategy::all(), |_, disk| {
                    let record = record.clone();
                    async move {
                        match disk.commit(MetaOp::MakeBucket(record)).await {
                            Err(DiskError::BucketExists) => Ok(()),
                            other => other.map(|_| ()),
                        }
                    }
                })
                .await
            }
        }))
        .await;
        for (set, set_results) in sets.iter().zip(&results) {
            let Err(err) = set_results.check_write(&set.disks, set.write_quorum()) else {
                continue;
            };
            // Undo, so that a bucket exists everywhere or nowhere.
            for (undo_set, undo_results) in sets.iter().zip(&results) {
                fan_out(&undo_set.disks, Strategy::all(), |idx, disk| {
                    let created = undo_results[idx].is_ok();
                    async move {
                        if created {
                            disk.commit(MetaOp::DeleteBucket {
                                name: bucket.to_owned(),
                                force: false,
                            })
                            .await
                            .map(|_| ())
                        } else {
                            Ok(())
                        }
                    }
                })
                .await;
            }
            return Err(err);
        }
        Ok(())
    }

    /// A bucket, resolved by quorum in the first set that answers.
    pub async fn bucket_info(&self, bucket: &str) -> Result<BucketInfo> {
        check_bucket_name(bucket).map_err(|_| Error::BucketNotFound)?;
        let mut last_err = None;
        for set in self.all_sets() {
            match set.bucket_info(bucket).await {
                Ok(info) => return Ok(info),
                Err(err @ Error::BucketNotFound) => return Err(err),
                Err(err) => last_err = Some(err),
            }
        }
        Err(last_err.unwrap_or(Error::BucketNotFound))
    }

    pub async fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        let mut last_err = None;
        for set in self.all_sets() {
            let results = fan_out(&set.disks, Strategy::all(), |_, disk| disk.list_buckets()).await;
            if let Err(err) = results.check_read(&set.disks, set.read_quorum()) {
                last_err = Some(err);
                continue;
            }
            let answered = results.ok();
            let mut counts: std::collections::BTreeMap<String, (usize, i64)> = Default::default();
            for record in results
                .into_vec()
                .into_iter()
                .flatten()
                .flatten()
                .filter(|r| r.name != SYSTEM_BUCKET)
            {
                let entry = counts.entry(record.name).or_insert((0, record.created_ns));
                entry.0 += 1;
            }
            let missing_allowed = answered;
            return Ok(counts
                .into_iter()
                .filter(|(_, (count, _))| *count > 0 && *count * 2 >= missing_allowed)
                .map(|(name, (_, created_ns))| BucketInfo { name, created_ns })
                .collect());
        }
        Err(last_err.unwrap_or_else(|| Error::Internal("no erasure sets".to_owned())))
    }

    pub async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        let _guard = self
            .shared
            .locks
            .write(self.shared.bucket_lock_set(bucket), bucket_resource(bucket))
            .await?;
        self.bucket_info(bucket).await?;
        let probe = ListOptions {
            max_keys: 1,
            ..Default::default()
        };
        // Every drive, not the fewest a client listing starts on: emptiness
        // decides whether records are destroyed, so it is never inferred.
        if !self
            .list_with(bucket, &probe, SetLister::new, false)
            .await?
            .objects
            .is_empty()
        {
            return Err(Error::BucketNotEmpty);
        }
        for set in self.all_sets() {
            let results = fan_out(&set.disks, Strategy::all(), |_, disk| async move {
                match disk
                    .commit(MetaOp::DeleteBucket {
                        name: bucket.to_owned(),
                        force: true,
                    })
                    .await
                {
                    Err(DiskError::BucketNotFound) => Ok(Default::default()),
                    other => other,
                }
            })
            .await;
            results.check_write(&set.disks, set.write_quorum())?;
            // Leftovers the drives dropped with the bucket: writes that never
            // reached quorum, and uploads in progress.
            crate::data::write::delete_removed(&set.disks, &results, None).await;
        }
        self.delete_bucket_configs(bucket).await;
        self.shared.buckets.forget(bucket);
        drop(_guard);
        self.tell_nodes(bucket).await;
        Ok(())
    }

    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: BodyStream,
        opts: PutOptions,
    ) -> Result<ObjectInfo> {
        check_object_key(key)?;
        // What a write must know of its bucket, from this node's copy.
        self.bucket_state(bucket).await?;
        let set = self.set_for(bucket, key, true).await?;
        set.put_object(&self.shared, bucket, key, body, opts).await
    }

    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        opts: &GetOptions,
    ) -> Result<GetObject> {
        check_object_key(key)?;
        let set = self.set_for(bucket, key, false).await?;
        set.get_object(&self.shared, bucket, key, opts).await
    }

    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<ObjectInfo> {
        check_object_key(key)?;
        let set = self.set_for(bucket, key, false).await?;
        set.head_object(&self.shared, bucket, key).await
    }

    /// Heals one object on its set (issue 5): rebuilds what drives lack,
    /// removes versions that never reached quorum. `deep` verifies every
    /// shard's frames.
    pub async fn heal_object(&self, bucket: &str, key: &str, deep: bool) -> Result<HealReport> {
        check_object_key(key)?;
        let set = self.set_for(bucket, key, false).await?;
        set.heal_object(&self.shared, bucket, key, deep).await
    }

    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<()> {
        check_object_key(key)?;
        let set = self.set_for(bucket, key, false).await?;
        set.delete_object(&self.shared, bucket, key).await
    }

    /// The set that holds upload `upload_id` of `bucket/key`.
    async fn set_for_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: Uuid,
    ) -> Result<Arc<ErasureSet>> {
        check_object_key(key)?;
        if self.pools.len() == 1 {
            return Ok(self.set_in_pool(&self.pools[0], bucket, key));
        }
        for pool in &self.pools {
            let set = self.set_in_pool(pool, bucket, key);
            if set.resolve_upload(bucket, key, upload_id).await.is_ok() {
                return Ok(set);
            }
        }
        Err(Error::NoSuchUpload)
    }

    pub async fn create_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        meta: BTreeMap<String, String>,
    ) -> Result<UploadInfo> {
        check_object_key(key)?;
        let set = self.set_for(bucket, key, true).await?;
        set.create_upload(&self.shared, bucket, key, meta).await
    }

    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: Uuid,
        number: u32,
        body: BodyStream,
        opts: PutOptions,
    ) -> Result<PartInfo> {
        let set = self.set_for_upload(bucket, key, upload_id).await?;
        set.upload_part(&self.shared, bucket, key, upload_id, number, body, opts)
            .await
    }

    /// An upload and its parts numbered above `after`, at most `max_parts`;
    /// the flag says whether more follow.
    pub async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: Uuid,
        after: u32,
        max_parts: usize,
    ) -> Result<(UploadInfo, Vec<PartInfo>, bool)> {
        let set = self.set_for_upload(bucket, key, upload_id).await?;
        set.list_upload_parts(bucket, key, upload_id, after, max_parts)
            .await
    }

    pub async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: Uuid,
        parts: &[CompletePart],
        opts: CompleteOptions,
    ) -> Result<ObjectInfo> {
        let set = self.set_for_upload(bucket, key, upload_id).await?;
        set.complete_upload(&self.shared, bucket, key, upload_id, parts, opts)
            .await
    }

    pub async fn abort_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: Uuid,
    ) -> Result<()> {
        let set = self.set_for_upload(bucket, key, upload_id).await?;
        set.abort_upload(&self.shared, bucket, key, upload_id).await
    }

    pub async fn list_multipart_uploads(
        &self,
        bucket: &str,
        opts: &ListUploadsOptions,
    ) -> Result<ListUploadsResult> {
        let mut result = ListUploadsResult::default();
        if opts.max_uploads == 0 {
            self.bucket_info(bucket).await?;
            return Ok(result);
        }
        let sets: Vec<Arc<ErasureSet>> = self.all_sets().cloned().collect();
        let listed = join_all(
            sets.iter()
                .map(|set| set.list_set_uploads(bucket, opts, opts.max_uploads)),
        )
        .await;
        let mut merged: std::collections::BTreeSet<ListedUpload> =
            std::collections::BTreeSet::new();
        let mut any_truncated = false;
        for one in listed {
            let (entries, truncated) = one?;
            any_truncated |= truncated;
            merged.extend(entries);
        }
        let total = merged.len();
        let mut last: Option<(String, Option<Uuid>)> = None;
        for entry in merged.into_iter().take(opts.max_uploads) {
            let (name, upload_id) = entry.sort_key();
            last = Some((name.to_owned(), upload_id));
            match entry.into_info(bucket) {
                Ok(upload) => result.uploads.push(upload),
                Err(prefix) => result.prefixes.push(prefix),
            }
        }
        result.truncated = any_truncated || total > opts.max_uploads;
        if result.truncated
            && let Some((name, upload_id)) = last
        {
            result.next_key_marker = Some(name);
            result.next_upload_id_marker = upload_id;
        }
        Ok(result)
    }

    /// Replaces an object's metadata, keeping its data (tagging, and copying
    /// an object onto itself); `touch` moves its modification time to now.
    pub async fn update_object_meta(
        &self,
        bucket: &str,
        key: &str,
        update: MetaUpdate,
        touch: bool,
        preconditions: &Preconditions,
    ) -> Result<ObjectInfo> {
        check_object_key(key)?;
        let set = self.set_for(bucket, key, false).await?;
        set.update_meta(&self.shared, bucket, key, update, touch, preconditions)
            .await
    }

    /// An object and its parts, in order.
    pub async fn object_parts(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<(ObjectInfo, Vec<PartInfo>)> {
        check_object_key(key)?;
        let set = self.set_for(bucket, key, false).await?;
        let version = set.head_version(&self.shared, bucket, key).await?;
        let parts = version
            .parts
            .iter()
            .map(|p| PartInfo {
                number: p.number,
                size: p.size,
                etag: p.etag.clone(),
                mod_time_ns: version.mod_time_ns,
                checksum: p.checksum.clone(),
            })
            .collect();
        Ok((crate::types::object_info(bucket, key, &version), parts))
    }

    pub async fn list_objects(&self, bucket: &str, opts: &ListOptions) -> Result<ListResult> {
        // Only where every drive is this process's. The fewest-drives
        // argument needs every acknowledged version to stay on write
        // quorum; in a 4-node cluster under rolling restarts
        // (tests/cluster.rs) an acknowledged key can drop out of even a
        // full listing, for a cause not found yet (ARCHITECTURE.md), while
        // a single process applies each drive's changes in the order its
        // object locks gave them.
        let single_process = self
            .all_sets()
            .all(|set| set.disks.iter().all(|disk| disk.reads_block()));
        let lister = if single_process {
            SetLister::fewest_drives
        } else {
            SetLister::new
        };
        self.list_with(bucket, opts, lister, true).await
    }

    /// How the listing read-ahead ([`crate::data::list::ReadAhead`]) has fared.
    pub fn list_read_ahead_stats(&self) -> ReadAheadStats {
        self.shared.read_ahead.stats()
    }

    /// One page of a listing, each set listed by a lister from `lister`;
    /// with `read_ahead`, continuing a kept listing where one starts at
    /// the page, and keeping this one when the page is truncated.
    async fn list_with(
        &self,
        bucket: &str,
        opts: &ListOptions,
        lister: fn(&ErasureSet, &str, &ListOptions) -> SetLister,
        read_ahead: bool,
    ) -> Result<ListResult> {
        let mut result = ListResult::default();
        if opts.max_keys == 0 {
            self.bucket_info(bucket).await?;
            return Ok(result);
        }
        let resumed = if read_ahead {
            self.shared.read_ahead.resume(bucket, opts).await
        } else {
            None
        };
        let (mut merged, mut pending) = match resumed {
            Some((merged, next)) => (merged, Some(next)),
            None => {
                let listers = self
                    .all_sets()
                    .map(|set| lister(set, bucket, opts))
                    .collect();
                (MergedLister::new(listers), None)
            }
        };
        let mut count = 0;
        while count < opts.max_keys {
            let next = match pending.take() {
                Some(next) => Some(next),
                None => merged.next().await?,
            };
            match next {
                Some(Listed::Object(info)) => result.objects.push(info),
                Some(Listed::Prefix(prefix)) => result.prefixes.push(prefix),
                None => return Ok(result),
            }
            count += 1;
        }
        if let Some(next) = merged.next().await? {
            result.truncated = true;
            let last_object = result.objects.last().map(|o| o.key.as_str());
            let last_prefix = result.prefixes.last().map(String::as_str);
            let last = last_object.max(last_prefix).map(str::to_owned);
            if read_ahead && let Some(last) = &last {
                self.shared
                    .read_ahead
                    .keep(bucket, opts, last, merged, next);
            }
            result.next_marker = last;
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        for good in ["abc", "my-bucket.2024", "a1b", &"a".repeat(63)] {
            assert!(check_bucket_name(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "ABC",
            "a_b",
            "-ab",
            "ab-",
            "a..b",
            "a.-b",
            "192.168.1.1",
            &"a".repeat(64),
            ".cairn.sys",
            "",
        ] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reserved_names_are_refused_for_new_buckets() {
        for reserved in [
            "cairn",
            "minio",
            "xn--bucket",
            "sthree-bucket",
            "amzn-s3-demo-bucket",
            "bucket-s3alias",
            "bucket--ol-s3",
            "bucket.mrap",
            "bucket--x-s3",
            "bucket--table-s3",
        ] {
            assert!(check_bucket_name(reserved).is_ok(), "{reserved}");
            assert!(check_new_bucket_name(reserved).is_err(), "{reserved}");
        }
        for fine in ["cairn-data", "minio2", "my-s3alias-bucket"] {
            assert!(check_new_bucket_name(fine).is_ok(), "{fine}");
        }
    }

    #[test]
    fn keys_up_to_1024_bytes() {
        assert!(check_object_key(&"k".repeat(1024)).is_ok());
        assert!(matches!(
            check_object_key(&"k".repeat(1025)),
            Err(Error::KeyTooLong { len: 1025 })
        ));
        assert!(check_object_key("").is_err());
        assert!(check_object_key("../../etc/passwd").is_ok());
    }
}
