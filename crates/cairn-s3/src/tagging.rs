//! Object tagging: GetObjectTagging, PutObjectTagging and
//! DeleteObjectTagging. Tags are stored with the object's metadata, under
//! [`TAGGING`]; `meta.rs` parses, checks and encodes them, since Put and
//! Copy take tags too.

use cairn_object::{MetaUpdate, Preconditions};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use crate::CairnS3;
use crate::error::s3_err;
use crate::meta::{TAGGING, check_version_id, encode_tags, stored_tags, validate_tags};

impl CairnS3 {
    pub(crate) async fn do_get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let input = req.input;
        check_version_id(input.version_id.as_deref())?;
        let info = self
            .layer
            .head_object(&input.bucket, &input.key)
            .await
            .map_err(s3_err)?;
        let tag_set = stored_tags(&info)
            .into_iter()
            .map(|(key, value)| Tag {
                key: Some(key),
                value: Some(value),
            })
            .collect();
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set,
            version_id: None,
        }))
    }

    pub(crate) async fn do_put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let input = req.input;
        check_version_id(input.version_id.as_deref())?;
        let tags: Vec<(String, String)> = input
            .tagging
            .tag_set
            .into_iter()
            .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
            .collect();
        validate_tags(&tags)?;
        self.set_tags(&input.bucket, &input.key, tags).await?;
        Ok(S3Response::new(PutObjectTaggingOutput::default()))
    }

    /// Replaces an object's tags, keeping its data and other metadata.
    async fn set_tags(&self, bucket: &str, key: &str, tags: Vec<(String, String)>) -> S3Result<()> {
        let update: MetaUpdate = Box::new(move |info| {
            let mut meta = info.meta.clone();
            meta.remove(TAGGING);
            if !tags.is_empty() {
                meta.insert(TAGGING.to_owned(), encode_tags(&tags));
            }
            Ok(meta)
        });
        self.layer
            .update_object_meta(bucket, key, update, false, &Preconditions::default())
            .await
            .map_err(s3_err)?;
        Ok(())
    }

    pub(crate) async fn do_delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let input = req.input;
        check_version_id(input.version_id.as_deref())?;
        self.set_tags(&input.bucket, &input.key, Vec::new()).await?;
        Ok(S3Response::new(DeleteObjectTaggingOutput::default()))
    }
}
