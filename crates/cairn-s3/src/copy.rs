//! Copies: CopyObject and UploadPartCopy.
//!
//! Both read a source object named by `x-amz-copy-source` under the four
//! `x-amz-copy-source-if-*` conditions. [`CopySource`] parses that once and
//! [`CairnS3::read_source`] reads it once for both, so the two operations
//! cannot drift apart on which sources they refuse or how a failed source
//! condition is answered.

use std::collections::BTreeMap;

use cairn_object::{
    BodyStream, ByteRange, GetOptions, MetaUpdate, ObjectInfo, Preconditions, PutOptions,
};
use futures::StreamExt;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::CairnS3;
use crate::checksum;
use crate::error::s3_err;
use crate::meta::{
    TAGGING, check_version_id, encode_tags, new_object_headers, parse_tagging, preconditions,
    timestamp,
};
use crate::ownership::check_private_acl;
use crate::upload::{parse_upload_id, part_number};

/// The largest source CopyObject accepts, as in S3.
const MAX_COPY_SOURCE: u64 = 5 << 30;

/// The object a copy reads: the bucket and key of `x-amz-copy-source`, and
/// the conditions of the `x-amz-copy-source-if-*` headers.
struct CopySource {
    bucket: String,
    key: String,
    conditions: Preconditions,
}

impl CopySource {
    /// Refuses a version other than `null` (buckets are not versioned yet)
    /// and access points, which Cairn does not have.
    fn parse(source: &s3s::dto::CopySource, conditions: Preconditions) -> S3Result<CopySource> {
        match source {
            s3s::dto::CopySource::Bucket {
                bucket,
                key,
                version_id,
            } => {
                check_version_id(version_id.as_deref())?;
                Ok(CopySource {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                    conditions,
                })
            }
            _ => Err(s3_error!(
                NotImplemented,
                "Access point copy sources are not supported"
            )),
        }
    }
}

/// The [`CopySource`] of a CopyObject or UploadPartCopy input. A macro,
/// because s3s gives the two operations distinct input types that merely
/// name their copy-source fields alike.
macro_rules! copy_source {
    ($input:expr) => {
        CopySource::parse(
            &$input.copy_source,
            preconditions(
                $input.copy_source_if_match.as_ref(),
                $input.copy_source_if_none_match.as_ref(),
                $input.copy_source_if_modified_since.as_ref(),
                $input.copy_source_if_unmodified_since.as_ref(),
            ),
        )
    };
}

/// A copy's source conditions fail with 412, never 304.
fn source_failed(err: cairn_object::Error) -> cairn_object::Error {
    match err {
        cairn_object::Error::NotModified { .. } => cairn_object::Error::PreconditionFailed,
        other => other,
    }
}

/// A copy source being read: what the object is, which of its bytes
/// follow, and those bytes as a body the object layer can write.
struct SourceRead {
    info: ObjectInfo,
    range: std::ops::Range<u64>,
    body: BodyStream,
}

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
    /// Reads `range` of the source, or all of it, under the source's
    /// conditions. The error stays an object-layer error because each
    /// operation answers some of them its own way.
    async fn read_source(
        &self,
        source: CopySource,
        range: Option<ByteRange>,
    ) -> cairn_object::Result<SourceRead> {
        let got = self
            .layer
            .get_object(
                &source.bucket,
                &source.key,
                &GetOptions {
                    range,
                    preconditions: source.conditions,
                    ..Default::default()
                },
            )
            .await
            .map_err(source_failed)?;
        let body = got
            .body
            .map(|chunk| chunk.map_err(|e| -> cairn_object::BodyError { Box::new(e) }))
            .boxed();
        Ok(SourceRead {
            info: got.info,
            range: got.range,
            body,
        })
    }

    pub(crate) async fn do_copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = req.input;
        let source = copy_source!(input)?;
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
        let new_meta = replace_meta
            .then(|| new_object_headers!(input, tagging: None).into_meta())
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
                    .filter(|(k, _)| {
                        !k.starts_with("x-amz-checksum-")
                            && k.as_str() != TAGGING
                            && k.as_str() != crate::meta::COMPLETED_UPLOAD
                    })
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
        let info = if source.bucket == input.bucket && source.key == input.key {
            if !replace_meta && !replace_tags {
                return Err(s3_error!(
                    InvalidRequest,
                    "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
                ));
            }
            let update: MetaUpdate = Box::new(move |current| Ok(merge(current)));
            self.layer
                .update_object_meta(&input.bucket, &input.key, update, true, &source.conditions)
                .await
                .map_err(|e| s3_err(source_failed(e)))?
        } else {
            let got = self.read_source(source, None).await.map_err(s3_err)?;
            if got.info.size > MAX_COPY_SOURCE {
                return Err(s3_error!(
                    InvalidRequest,
                    "The specified copy source is larger than the maximum allowable size for a copy source: {MAX_COPY_SOURCE}"
                ));
            }
            let opts = PutOptions {
                size: Some(got.info.size),
                meta: merge(&got.info),
                ..Default::default()
            };
            self.layer
                .put_object(&input.bucket, &input.key, got.body, opts)
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
        let source = copy_source!(input)?;
        let range = input
            .copy_source_range
            .as_deref()
            .map(parse_copy_range)
            .transpose()?;
        // The upload must exist before the source is read.
        self.layer
            .list_parts(&input.bucket, &input.key, upload_id, u32::MAX, 0)
            .await
            .map_err(s3_err)?;
        // Past the source's end: S3's `416 InvalidRange`.
        let out_of_range = |size: u64| {
            s3_error!(
                InvalidRange,
                "The requested range is not satisfiable: the source object is {size} bytes"
            )
        };
        let got = self.read_source(source, range).await.map_err(|e| match e {
            cairn_object::Error::InvalidRange { size } => out_of_range(size),
            other => s3_err(other),
        })?;
        if let Some(ByteRange::FromTo {
            last: Some(last), ..
        }) = range
            && last >= got.info.size
        {
            return Err(out_of_range(got.info.size));
        }
        let opts = PutOptions {
            size: Some(got.range.end - got.range.start),
            ..Default::default()
        };
        let part = self
            .layer
            .upload_part(&input.bucket, &input.key, upload_id, number, got.body, opts)
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
