//! PUT: a body erasure coded onto a set's drives ([`super::write`]), then
//! its version committed under the object's lock.

use bytes::Bytes;
use cairn_disk::{DiskError, MetaOp, ObjectVersion, PartMeta};
use uuid::Uuid;

use crate::data::write::{
    ShardCommit, ShardTarget, Stored, VersionCommit, remove_shards_on, stores_inline,
};
use crate::error::Result;
use crate::options::PutOptions;
use crate::set::ErasureSet;
use crate::shared::Shared;
use crate::types::{BodyStream, ObjectInfo};
use crate::util::hex;

impl ErasureSet {
    pub(crate) async fn put_object(
        &self,
        shared: &Shared,
        bucket: &str,
        key: &str,
        body: BodyStream,
        mut opts: PutOptions,
    ) -> Result<ObjectInfo> {
        let layout = self.new_layout(shared, bucket, key);
        // Fail fast on a missing bucket, before reading the body. A body
        // stored inline touches no drive before its commit, which checks the
        // bucket on every drive itself (`commit_version`): for a bucket this
        // node holds the state of (`bucket_config.rs`), that check is
        // enough. A larger body is not read for a bucket the drives do not
        // have, even if this node's copy missed its deletion.
        let inline = stores_inline(
            &layout.erasure()?,
            opts.size,
            shared.config.inline_threshold,
        );
        if !(inline && shared.buckets.cached(bucket).is_some()) {
            self.bucket_info(bucket).await?;
        }
        let data_id = Uuid::new_v4();
        let encoded = self
            .encode_body(
                shared,
                &layout,
                body,
                &mut opts,
                ShardTarget {
                    data_id,
                    part: 1,
                    allow_inline: true,
                },
            )
            .await?;
        let etag = hex(&encoded.md5);
        let version = ObjectVersion {
            version_id: Uuid::nil(),
            data_id,
            mod_time_ns: 0,
            delete_marker: false,
            size: encoded.size,
            etag: etag.clone(),
            erasure: layout.erasure_meta(0),
            inline: matches!(encoded.stored, Stored::Inline(_)),
            parts: vec![PartMeta {
                number: 1,
                size: encoded.size,
                etag,
                data_id: None,
                checksum: None,
            }],
            meta: std::mem::take(&mut opts.meta),
        };
        let is_files = matches!(encoded.stored, Stored::Files(_));
        // What each shard's drive commits; drives whose shard file failed commit nothing.
        let ops: Vec<Option<ShardCommit>> = match encoded.stored {
            Stored::Inline(shards) => shards
                .into_iter()
                .enumerate()
                .map(|(shard_idx, frames)| {
                    Some((layout.erasure_meta(shard_idx), Some(Bytes::from(frames))))
                })
                .collect(),
            Stored::Files(results) => results
                .iter()
                .enumerate()
                .map(|(shard_idx, res)| res.is_ok().then(|| (layout.erasure_meta(shard_idx), None)))
                .collect(),
        };
        let commit = VersionCommit {
            bucket,
            key,
            version,
            disks_by_shard: &layout.disks_by_shard,
            ops,
            preconditions: &opts.preconditions,
        };
        let committed = self.commit_version(shared, commit, |version, inline| MetaOp::PutVersion {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version,
            inline,
        });
        let committed = committed.await;
        if committed.is_err() && is_files {
            let all_ok: Vec<Result<(), DiskError>> =
                (0..layout.disks_by_shard.len()).map(|_| Ok(())).collect();
            remove_shards_on(&layout.disks_by_shard, data_id, 1, &all_ok).await;
        }
        committed
    }
}
