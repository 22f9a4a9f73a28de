//! CreateBucket, HeadBucket, DeleteBucket, ListBuckets, GetBucketLocation.

use s3s::dto::{
    Bucket, BucketLocationConstraint, CreateBucketInput, CreateBucketOutput, DeleteBucketInput,
    DeleteBucketOutput, GetBucketLocationInput, GetBucketLocationOutput, HeadBucketInput,
    HeadBucketOutput, ListBucketsInput, ListBucketsOutput,
};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::error::s3_err;
use crate::object::timestamp;
use crate::{CairnS3, owner};

impl CairnS3 {
    pub(crate) async fn do_create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let input = req.input;
        if input.object_lock_enabled_for_bucket == Some(true) {
            return Err(s3_error!(
                NotImplemented,
                "Object Lock is not supported yet"
            ));
        }
        if let Some(constraint) = input
            .create_bucket_configuration
            .as_ref()
            .and_then(|c| c.location_constraint.as_ref())
        {
            let asked = constraint.as_str();
            let ours = self.region.as_str();
            // us-east-1 is spelled as an empty constraint; "EU" is eu-west-1's old name.
            let matches = asked == ours || (asked.is_empty() && ours == "us-east-1");
            if !matches {
                return Err(s3_error!(
                    IllegalLocationConstraintException,
                    "The {asked} location constraint is incompatible for the region specific endpoint this request was sent to ({ours})"
                ));
            }
        }
        self.layer
            .make_bucket(&input.bucket)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{}", input.bucket)),
        }))
    }

    pub(crate) async fn do_head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.layer
            .bucket_info(&req.input.bucket)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..Default::default()
        }))
    }

    pub(crate) async fn do_delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.layer
            .delete_bucket(&req.input.bucket)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    pub(crate) async fn do_list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let prefix = req.input.prefix.unwrap_or_default();
        let buckets = self.layer.list_buckets().await.map_err(s3_err)?;
        let buckets = buckets
            .into_iter()
            .filter(|b| b.name.starts_with(&prefix))
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(timestamp(b.created_ns)),
                bucket_region: None,
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner()),
            ..Default::default()
        }))
    }

    pub(crate) async fn do_get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.layer
            .bucket_info(&req.input.bucket)
            .await
            .map_err(s3_err)?;
        // S3 answers an empty constraint for us-east-1.
        let location_constraint = (self.region != "us-east-1")
            .then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint,
        }))
    }
}
