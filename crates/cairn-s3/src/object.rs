//! PutObject, GetObject, HeadObject, DeleteObject.

use std::collections::BTreeMap;

use cairn_object::{ByteRange, ObjectInfo, PutOptions};
use s3s::dto::{
    Checksum, DeleteObjectInput, DeleteObjectOutput, ETag, GetObjectInput, GetObjectOutput,
    HeadObjectInput, HeadObjectOutput, Metadata, PutObjectInput, PutObjectOutput, Range,
    StreamingBlob, Timestamp, TimestampFormat,
};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::CairnS3;
use crate::checksum::{ChecksumBody, ChecksumPlan};
use crate::error::s3_err;

/// Stored header names, besides `x-amz-meta-*` and `x-amz-checksum-*`.
const CONTENT_TYPE: &str = "content-type";
const CONTENT_ENCODING: &str = "content-encoding";
const CONTENT_DISPOSITION: &str = "content-disposition";
const CONTENT_LANGUAGE: &str = "content-language";
const CACHE_CONTROL: &str = "cache-control";
const EXPIRES: &str = "expires";
const USER_META_PREFIX: &str = "x-amz-meta-";

/// What S3 reports for objects stored without a Content-Type.
const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

pub(crate) fn timestamp(ns: i64) -> Timestamp {
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(time)
}

fn format_http_date(ts: &Timestamp) -> Option<String> {
    let mut out = Vec::new();
    ts.format(TimestampFormat::HttpDate, &mut out).ok()?;
    String::from_utf8(out).ok()
}

fn parse_http_date(value: &str) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, value).ok()
}

/// The Content-Encoding to store: `aws-chunked` describes the transfer, not
/// the object, and S3 drops it.
fn stored_content_encoding(value: Option<&str>) -> Option<String> {
    let kept: Vec<&str> = value?
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

fn decode_content_md5(value: &str) -> S3Result<[u8; 16]> {
    base64_simd::STANDARD
        .decode_to_vec(value)
        .ok()
        .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
        .ok_or_else(|| s3_error!(InvalidDigest, "The Content-MD5 you specified is not valid"))
}

fn user_metadata(info: &ObjectInfo) -> Option<Metadata> {
    let meta: Metadata = info
        .meta
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(USER_META_PREFIX)
                .map(|k| (k.to_owned(), v.clone()))
        })
        .collect();
    (!meta.is_empty()).then_some(meta)
}

fn range_of(range: Range) -> ByteRange {
    match range {
        Range::Int { first, last } => ByteRange::FromTo { first, last },
        Range::Suffix { length } => ByteRange::Suffix(length),
    }
}

/// An object-answer struct (`GetObjectOutput`, `HeadObjectOutput`) with
/// the given fields and the headers every GET and HEAD carries about the object.
macro_rules! object_answer {
    ($output:ident, $info:expr, { $($field:ident: $value:expr),* $(,)? }) => {{
        let info: &ObjectInfo = $info;
        let get = |name: &str| info.meta.get(name).cloned();
        $output {
            $($field: $value,)*
            accept_ranges: Some("bytes".to_owned()),
            content_type: Some(get(CONTENT_TYPE).unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned())),
            content_encoding: get(CONTENT_ENCODING),
            content_disposition: get(CONTENT_DISPOSITION),
            content_language: get(CONTENT_LANGUAGE),
            cache_control: get(CACHE_CONTROL),
            expires: info.meta.get(EXPIRES).and_then(|v| parse_http_date(v)),
            metadata: user_metadata(info),
            e_tag: Some(ETag::Strong(info.etag.clone())),
            last_modified: Some(timestamp(info.mod_time_ns)),
            ..Default::default()
        }
    }};
}

/// `Content-Range` of a ranged answer.
fn content_range(range: &std::ops::Range<u64>, size: u64) -> String {
    format!("bytes {}-{}/{size}", range.start, range.end - 1)
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
        if input.object_lock_mode.is_some() || input.object_lock_retain_until_date.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "Object Lock is not supported yet"
            ));
        }
        if input.sse_customer_algorithm.is_some() || input.server_side_encryption.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "Server-side encryption is not supported yet"
            ));
        }
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

        let mut meta = BTreeMap::new();
        meta.insert(
            CONTENT_TYPE.to_owned(),
            input
                .content_type
                .clone()
                .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
        );
        let optional = [
            (
                CONTENT_ENCODING,
                stored_content_encoding(input.content_encoding.as_deref()),
            ),
            (CONTENT_DISPOSITION, input.content_disposition.clone()),
            (CONTENT_LANGUAGE, input.content_language.clone()),
            (CACHE_CONTROL, input.cache_control.clone()),
            (EXPIRES, input.expires.as_ref().and_then(format_http_date)),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                meta.insert(name.to_owned(), value);
            }
        }
        for (name, value) in input.metadata.iter().flatten() {
            meta.insert(
                format!("{USER_META_PREFIX}{}", name.to_ascii_lowercase()),
                value.clone(),
            );
        }

        let given = Checksum {
            checksum_crc32: input.checksum_crc32.clone(),
            checksum_crc32c: input.checksum_crc32c.clone(),
            checksum_crc64nvme: input.checksum_crc64nvme.clone(),
            checksum_sha1: input.checksum_sha1.clone(),
            checksum_sha256: input.checksum_sha256.clone(),
            ..Default::default()
        };
        let plan = ChecksumPlan::from_request(&headers, &given)?;
        let body = input.body.unwrap_or_else(|| {
            StreamingBlob::wrap(futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>())
        });
        let (body, verified) = ChecksumBody::wrap(body, plan, trailing_headers);
        let opts = PutOptions {
            size,
            content_md5,
            meta,
            finalizer: Some(Box::new(move || {
                Ok(verified.lock().expect("checksum slot").clone())
            })),
        };
        let info = self
            .layer
            .put_object(&input.bucket, &input.key, body, opts)
            .await
            .map_err(s3_err)?;
        let output = PutObjectOutput {
            e_tag: Some(ETag::Strong(info.etag.clone())),
            checksum_crc32: info.meta.get("x-amz-checksum-crc32").cloned(),
            checksum_crc32c: info.meta.get("x-amz-checksum-crc32c").cloned(),
            checksum_crc64nvme: info.meta.get("x-amz-checksum-crc64nvme").cloned(),
            checksum_sha1: info.meta.get("x-amz-checksum-sha1").cloned(),
            checksum_sha256: info.meta.get("x-amz-checksum-sha256").cloned(),
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    pub(crate) async fn do_get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        if input.part_number.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "GET by part number is not supported yet"
            ));
        }
        let range = input.range.map(range_of);
        let got = self
            .layer
            .get_object(&input.bucket, &input.key, range)
            .await
            .map_err(s3_err)?;
        let content_range = range.map(|_| content_range(&got.range, got.info.size));
        let length = got.range.end - got.range.start;
        let output = object_answer!(GetObjectOutput, &got.info, {
            body: Some(StreamingBlob::wrap(got.body)),
            content_length: Some(length as i64),
            content_range: content_range,
        });
        Ok(S3Response::new(output))
    }

    pub(crate) async fn do_head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        if input.part_number.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "HEAD by part number is not supported yet"
            ));
        }
        let info = self
            .layer
            .head_object(&input.bucket, &input.key)
            .await
            .map_err(s3_err)?;
        let (content_length, content_range) = match input.range.map(range_of) {
            Some(range) => match range.resolve(info.size) {
                Some(r) => (r.end - r.start, Some(content_range(&r, info.size))),
                None => {
                    return Err(s3_err(cairn_object::Error::InvalidRange {
                        size: info.size,
                    }));
                }
            },
            None => (info.size, None),
        };
        let output = object_answer!(HeadObjectOutput, &info, {
            content_length: Some(content_length as i64),
            content_range: content_range,
        });
        Ok(S3Response::new(output))
    }

    pub(crate) async fn do_delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        if input.version_id.is_some() {
            return Err(s3_error!(NotImplemented, "Versioning is not supported yet"));
        }
        self.layer
            .delete_object(&input.bucket, &input.key)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_chunked_is_not_stored_as_content_encoding() {
        assert_eq!(stored_content_encoding(Some("aws-chunked")), None);
        assert_eq!(
            stored_content_encoding(Some("gzip,aws-chunked")).as_deref(),
            Some("gzip")
        );
        assert_eq!(
            stored_content_encoding(Some("aws-chunked, br")).as_deref(),
            Some("br")
        );
        assert_eq!(
            stored_content_encoding(Some("gzip")).as_deref(),
            Some("gzip")
        );
        assert_eq!(stored_content_encoding(None), None);
    }
}
