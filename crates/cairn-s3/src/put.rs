//! PutObject.

use cairn_object::PutOptions;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::CairnS3;
use crate::checksum::{self, ChecksumBody, ChecksumPlan};
use crate::error::s3_err;
use crate::meta::{new_object_headers, preconditions, refuse_unsupported_object_settings};

fn decode_content_md5(value: &str) -> S3Result<[u8; 16]> {
    base64_simd::STANDARD
        .decode_to_vec(value)
        .ok()
        .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
        .ok_or_else(|| s3_error!(InvalidDigest, "The Content-MD5 you specified is not valid"))
}

impl CairnS3 {
    pub(crate) async fn do_put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let S3Request {
            input,
            headers,
            trailing_headers,
            ..
        } = req;
        refuse_unsupported_object_settings!(input);
        if input.write_offset_bytes.is_some() {
            return Err(s3_error!(NotImplemented, "Appends are not supported"));
        }
        let size = match input.content_length {
            Some(len) if len < 0 => {
                return Err(s3_error!(InvalidArgument, "negative Content-Length"));
            }
            Some(len) => Some(len as u64),
            None => None,
        };
        let content_md5 = input
            .content_md5
            .as_deref()
            .map(decode_content_md5)
            .transpose()?;
        let meta = new_object_headers!(input, tagging: input.tagging.as_deref()).into_meta()?;
        let given = Checksum {
            checksum_crc32: input.checksum_crc32.clone(),
            checksum_crc32c: input.checksum_crc32c.clone(),
            checksum_crc64nvme: input.checksum_crc64nvme.clone(),
            checksum_sha1: input.checksum_sha1.clone(),
            checksum_sha256: input.checksum_sha256.clone(),
            ..Default::default()
        };
        let plan = ChecksumPlan::from_request(&headers, &given, input.checksum_algorithm.as_ref())?;
        let body = input.body.unwrap_or_else(|| {
            StreamingBlob::wrap(futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>())
        });
        let (body, verified) = ChecksumBody::wrap(body, plan, trailing_headers);
        let opts = PutOptions {
            size,
            content_md5,
            meta,
            finalizer: Some(Box::new(move || Ok(checksum::take_verified(&verified)))),
            preconditions: preconditions(
                input.if_match.as_ref(),
                input.if_none_match.as_ref(),
                None,
                None,
            ),
        };
        let info = self
            .layer
            .put_object(&input.bucket, &input.key, body, opts)
            .await
            .map_err(s3_err)?;
        let get = |name: &str| info.meta.get(name).cloned();
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(info.etag.clone())),
            checksum_crc32: get("x-amz-checksum-crc32"),
            checksum_crc32c: get("x-amz-checksum-crc32c"),
            checksum_crc64nvme: get("x-amz-checksum-crc64nvme"),
            checksum_sha1: get("x-amz-checksum-sha1"),
            checksum_sha256: get("x-amz-checksum-sha256"),
            checksum_type: get(checksum::TYPE_KEY).map(ChecksumType::from),
            ..Default::default()
        }))
    }
}
