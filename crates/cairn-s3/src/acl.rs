//! ACLs: GetObjectAcl, PutObjectAcl, GetBucketAcl and PutBucketAcl. There
//! is one ACL, the owner's full control; these answer it and accept only
//! requests for it (`ownership.rs` holds the check, which creating
//! requests share).

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use crate::CairnS3;
use crate::error::s3_err;
use crate::meta::check_version_id;
use crate::ownership::{check_private_acl, owner};

/// The only ACL there is: the owner has full control.
fn owner_full_control() -> Grants {
    vec![Grant {
        grantee: Some(Grantee {
            display_name: owner().display_name,
            id: owner().id,
            type_: Type::from_static(Type::CANONICAL_USER),
            email_address: None,
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    }]
}

impl CairnS3 {
    pub(crate) async fn do_get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        let input = req.input;
        check_version_id(input.version_id.as_deref())?;
        self.layer
            .head_object(&input.bucket, &input.key)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(GetObjectAclOutput {
            grants: Some(owner_full_control()),
            owner: Some(owner()),
            ..Default::default()
        }))
    }

    pub(crate) async fn do_put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        let input = req.input;
        check_version_id(input.version_id.as_deref())?;
        check_private_acl(
            input.acl.as_ref().map(|a| a.as_str()),
            input.access_control_policy.as_ref(),
        )?;
        self.layer
            .head_object(&input.bucket, &input.key)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(PutObjectAclOutput::default()))
    }

    pub(crate) async fn do_get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        self.existing_bucket(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketAclOutput {
            grants: Some(owner_full_control()),
            owner: Some(owner()),
        }))
    }

    pub(crate) async fn do_put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        let input = req.input;
        check_private_acl(
            input.acl.as_ref().map(|a| a.as_str()),
            input.access_control_policy.as_ref(),
        )?;
        self.existing_bucket(&input.bucket).await?;
        Ok(S3Response::new(PutBucketAclOutput::default()))
    }
}
