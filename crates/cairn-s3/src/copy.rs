//! Copies: CopyObject and UploadPartCopy.

use std::collections::BTreeMap;

use cairn_object::{ByteRange, GetOptions, MetaUpdate, ObjectInfo, PutOptions};
use futures::StreamExt;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::CairnS3;
use crate::checksum;
use crate::error::s3_err;
use crate::meta::{
    NewObjectHeaders, TAGGING, check_version_id, encode_tags, parse_tagging, preconditions,
    timestamp,
};
use crate::ownership::check_private_acl;
use crate::upload::{parse_upload_id, part_number};

/// The largest source CopyObject accepts, as in S3.
const MAX_COPY_SOURCE: u64 = 5 << 30;

/// `bytes=first-last` of x-amz-copy-source-range (no open or suffix forms).
fn parse_copy_range(value: &str) -> S3Result<ByteRange> {
    let invalid = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
        )
    };
    let spec = value.strip_prefix("bytes=").ok_or_else(invalid)?;
    let (first, last) = spec.split_once('-').ok_or_else(invalid)?;
    let first: u64 = first.parse().map_err(|_| invalid())?;
    let last: u64 = last.parse().map_err(|_| invalid())?;
    if last < first {
        return Err(invalid());
    }
    Ok(ByteRange::FromTo {
        first,
        last: Some(last),
    })
}

impl CairnS3 {
    pub(crate) async fn do_copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = req.input;
        let (src_bucket, src_key) = match &input.copy_source {
            CopySource::Bucket {
                bucket,
                key,
                version_id,
            } => {
                check_version_id(version_id.as_deref())?;
                (bucket.to_string(), key.to_string())
            }
            _ => {
                return Err(s3_error!(
                    NotImplemented,
                    "Access point copy sources are not supported"
                ));
            }
        };
        if input.sse_customer_algorithm.is_some() || input.server_side_encryption.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "Server-side encryption is not supported yet"
            ));
        }
        check_private_acl(input.acl.as_ref().map(|a| a.as_str()), None)?;
        let replace_meta = match input.metadata_directive.as_ref().map(|d| d.as_str()) {
            None | Some("COPY") => false,
            Some("REPLACE") => true,
            Some(other) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "Unknown metadata directive {other:?}"
                ));
            }
        };
        let replace_tags = match input.tagging_directive.as_ref().map(|d| d.as_str()) {
            None | Some("COPY") => false,
            Some("REPLACE") => true,
            Some(other) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "Unknown tagging directive {other:?}"
                ));
            }
        };
        let source_conditions = preconditions(
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        );
        let new_meta = replace_meta
            .then(|| {
                NewObjectHeaders {
                    content_type: input.content_type.as_deref(),
                    content_encoding: input.content_encoding.as_deref(),
                    content_disposition: input.content_disposition.as_deref(),
                    content_language: input.content_language.as_deref(),
                    cache_control: input.cache_control.as_deref(),
                    expires: input.expires.as_ref(),
                    metadata: input.metadata.as_ref(),
                    tagging: None,
                    storage_class: input.storage_class.as_ref(),
                }
                .into_meta()
            })
            .transpose()?;
        let new_tags = match (&input.tagging, replace_tags) {
            (Some(tagging), true) => Some(parse_tagging(tagging)?),
            (None, true) => Some(Vec::new()),
            (_, false) => None,
        };
        // A copy's metadata: the source's (COPY) or the request's (REPLACE),
        // then the tags by their own directive; checksums of the whole
        // object carry over, composite ones do not.
        let merge = move |source: &ObjectInfo| -> BTreeMap<String, String> {
            let mut meta = match &new_meta {
                Some(meta) => meta.clone(),
                None => source
                    .meta
                    .iter()
                    .filter(|(k, _)| !k.starts_with("x-amz-checksum-") && k.as_str() != TAGGING)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            };
            meta.extend(checksum::full_object_checksums(&source.meta));
            match &new_tags {
                Some(tags) if !tags.is_empty() => {
                    meta.insert(TAGGING.to_owned(), encode_tags(tags));
                }
                Some(_) => {}
                None => {
                    if let Some(tags) = source.meta.get(TAGGING) {
                        meta.insert(TAGGING.to_owned(), tags.clone());
                    }
                }
            }
            meta
        };
        // A copy's source conditions fail with 412, never 304.
        let source_failed = |err: cairn_object::Error| match err {
            cairn_object::Error::NotModified { .. } => cairn_object::Error::PreconditionFailed,
            other => other,
        };
        let info = if src_bucket == input.bucket && src_key == input.key {
            if !replace_meta && !replace_tags {
                return Err(s3_error!(
                    InvalidRequest,
                    "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
                ));
            }
            let update: MetaUpdate = Box::new(move |source| Ok(merge(source)));
            self.layer
                .update_object_meta(&input.bucket, &input.key, update, true, &source_conditions)
                .await
                .map_err(|e| s3_err(source_failed(e)))?
        } else {
            let got = self
                .layer
                .get_object(
                    &src_bucket,
                    &src_key,
                    &GetOptions {
                        preconditions: source_conditions,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| s3_err(source_failed(e)))?;
            if got.info.size > MAX_COPY_SOURCE {
                return Err(s3_error!(
                    InvalidRequest,
                    "The specified copy source is larger than the maximum allowable size for a copy source: {MAX_COPY_SOURCE}"
                ));
            }
            let meta = merge(&got.info);
            let size = got.info.size;
            let body = got
                .body
                .map(|chunk| chunk.map_err(|e| -> cairn_object::BodyError { Box::new(e) }))
                .boxed();
            let opts = PutOptions {
                size: Some(size),
                meta,
                ..Default::default()
            };
            self.layer
                .put_object(&input.bucket, &input.key, body, opts)
                .await
                .map_err(s3_err)?
        };
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(ETag::Strong(info.etag.clone())),
                last_modified: Some(timestamp(info.mod_time_ns)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    pub(crate) async fn do_upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = req.input;
        let upload_id = parse_upload_id(&input.upload_id)?;
        let number = part_number(input.part_number)?;
        let (src_bucket, src_key) = match &input.copy_source {
            CopySource::Bucket {
                bucket,
                key,
                version_id,
            } => {
                check_version_id(version_id.as_deref())?;
                (bucket.to_string(), key.to_string())
            }
            _ => {
                return Err(s3_error!(
                    NotImplemented,
                    "Access point copy sources are not supported"
                ));
            }
        };
        let range = input
            .copy_source_range
            .as_deref()
            .map(parse_copy_range)
            .transpose()?;
        let conditions = preconditions(
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        );
        // The upload must exist before the source is read.
        self.layer
            .list_parts(&input.bucket, &input.key, upload_id, u32::MAX, 0)
            .await
            .map_err(s3_err)?;
        let got = self
            .layer
            .get_object(
                &src_bucket,
                &src_key,
                &GetOptions {
                    range,
                    preconditions: conditions,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| match e {
                cairn_object::Error::NotModified { .. } => {
                    s3_err(cairn_object::Error::PreconditionFailed)
                }
                cairn_object::Error::InvalidRange { size } => s3_error!(
                    InvalidArgument,
                    "Range specified is not valid for source object of size: {size}"
                ),
                other => s3_err(other),
            })?;
        if let Some(ByteRange::FromTo {
            last: Some(last), ..
        }) = range
            && last >= got.info.size
        {
            return Err(s3_error!(
                InvalidArgument,
                "Range specified is not valid for source object of size: {}",
                got.info.size
            ));
        }
        let size = got.range.end - got.range.start;
        let body = got
            .body
            .map(|chunk| chunk.map_err(|e| -> cairn_object::BodyError { Box::new(e) }))
            .boxed();
        let opts = PutOptions {
            size: Some(size),
            ..Default::default()
        };
        let part = self
            .layer
            .upload_part(&input.bucket, &input.key, upload_id, number, body, opts)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(part.etag)),
                last_modified: Some(timestamp(part.mod_time_ns)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_ranges() {
        assert_eq!(
            parse_copy_range("bytes=0-9").unwrap(),
            ByteRange::FromTo {
                first: 0,
                last: Some(9)
            }
        );
        for bad in ["bytes=9-0", "bytes=-5", "bytes=5-", "0-9", "bytes=a-b"] {
            assert!(parse_copy_range(bad).is_err(), "{bad}");
        }
    }
}
