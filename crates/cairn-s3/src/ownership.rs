//! The one owner of every bucket and object, and the one ACL Cairn
//! accepts: the owner has full control.
//!
//! Put, Copy, CreateMultipartUpload, CreateBucket and browser uploads all
//! check the ACL a request asks for, so the check lives here rather than
//! in `acl.rs`, which would otherwise become every operation's import.

use s3s::dto::*;
use s3s::{S3Result, s3_error};

/// The owner every answer names: root, the only identity until IAM arrives.
pub(crate) fn owner() -> Owner {
    Owner {
        display_name: Some("cairn".to_owned()),
        id: Some("cairn-root".to_owned()),
    }
}

/// Accepts the canned ACLs that, with one owner, all mean "the owner has
/// full control" (`private`, `bucket-owner-full-control`,
/// `bucket-owner-read`), or a policy granting only the owner full control;
/// anything else needs access control Cairn does not have.
pub(crate) fn check_private_acl(
    canned: Option<&str>,
    policy: Option<&AccessControlPolicy>,
) -> S3Result<()> {
    if let Some(canned) = canned
        && !matches!(
            canned,
            "private" | "bucket-owner-full-control" | "bucket-owner-read"
        )
    {
        return Err(s3_error!(
            NotImplemented,
            "Only the private ACL is supported; use bucket policies when they arrive"
        ));
    }
    if let Some(policy) = policy {
        let only_owner = policy.grants.iter().flatten().all(|g| {
            g.permission.as_ref().map(|p| p.as_str()) == Some(Permission::FULL_CONTROL)
                && g.grantee.as_ref().and_then(|g| g.id.as_deref()) == owner().id.as_deref()
        });
        if !only_owner {
            return Err(s3_error!(
                NotImplemented,
                "Only an ACL granting the owner full control is supported"
            ));
        }
    }
    Ok(())
}
