//! DeleteObject and DeleteObjects.

use futures::StreamExt;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::CairnS3;
use crate::error::s3_err;
use crate::meta::check_version_id;

/// At most this many keys in one DeleteObjects request, as in S3.
const MAX_DELETE_KEYS: usize = 1000;

impl CairnS3 {
    pub(crate) async fn do_delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        check_version_id(input.version_id.as_deref())?;
        self.layer
            .delete_object(&input.bucket, &input.key)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    pub(crate) async fn do_delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        let objects = input.delete.objects;
        if objects.len() > MAX_DELETE_KEYS {
            return Err(s3_error!(
                MalformedXML,
                "The request may not contain more than {MAX_DELETE_KEYS} keys"
            ));
        }
        if objects.is_empty() {
            return Err(s3_error!(
                MalformedXML,
                "The request must contain at least one key"
            ));
        }
        // A missing bucket fails the request as a whole, as in S3.
        self.layer
            .bucket_info(&input.bucket)
            .await
            .map_err(s3_err)?;
        let quiet = input.delete.quiet == Some(true);
        let bucket = input.bucket.as_str();
        let results: Vec<(ObjectIdentifier, S3Result<()>)> = futures::stream::iter(objects)
            .map(|object| async move {
                let result = match check_version_id(object.version_id.as_deref()) {
                    Ok(()) => self
                        .layer
                        .delete_object(bucket, &object.key)
                        .await
                        .map_err(s3_err),
                    Err(err) => Err(err),
                };
                (object, result)
            })
            .buffered(16)
            .collect()
            .await;
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for (object, result) in results {
            match result {
                Ok(()) => {
                    if !quiet {
                        deleted.push(DeletedObject {
                            key: Some(object.key),
                            version_id: object.version_id,
                            ..Default::default()
                        });
                    }
                }
                Err(err) => errors.push(Error {
                    code: Some(err.code().as_str().to_owned()),
                    message: err.message().map(str::to_owned),
                    key: Some(object.key),
                    version_id: object.version_id,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    }
}
