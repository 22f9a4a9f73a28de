//! Reading objects: GetObject, HeadObject and GetObjectAttributes.

use cairn_object::{ByteRange, GetOptions, ObjectInfo};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::CairnS3;
use crate::checksum;
use crate::error::s3_err;
use crate::meta::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_ENCODING, CONTENT_LANGUAGE, CONTENT_TYPE,
    DEFAULT_CONTENT_TYPE, EXPIRES, check_version_id, parse_http_date, preconditions, stored_tags,
    timestamp, user_metadata,
};
use crate::upload::part_number;

fn range_of(range: Range) -> ByteRange {
    match range {
        Range::Int { first, last } => ByteRange::FromTo { first, last },
        Range::Suffix { length } => ByteRange::Suffix(length),
    }
}

/// An object-answer struct (`GetObjectOutput`, `HeadObjectOutput`) with
/// the given fields and the headers every GET and HEAD carries about the
/// object; the part count only when a part was asked for, as in S3.
macro_rules! object_answer {
    ($output:ident, $info:expr, $checksums:expr, $part_asked:expr, { $($field:ident: $value:expr),* $(,)? }) => {{
        let info: &ObjectInfo = $info;
        let part_asked: bool = $part_asked;
        let get = |name: &str| info.meta.get(name).cloned();
        let checksums: bool = $checksums;
        let checksum = |name: &str| if checksums { get(name) } else { None };
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
            parts_count: (part_asked && info.parts_count > 1).then_some(info.parts_count as i32),
            checksum_crc32: checksum("x-amz-checksum-crc32"),
            checksum_crc32c: checksum("x-amz-checksum-crc32c"),
            checksum_crc64nvme: checksum("x-amz-checksum-crc64nvme"),
            checksum_sha1: checksum("x-amz-checksum-sha1"),
            checksum_sha256: checksum("x-amz-checksum-sha256"),
            checksum_type: checksum(checksum::TYPE_KEY).map(ChecksumType::from),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        }
    }};
}

/// `Content-Range` of a ranged answer.
fn content_range(range: &std::ops::Range<u64>, size: u64) -> String {
    format!("bytes {}-{}/{size}", range.start, range.end - 1)
}

fn checksum_mode(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str() == ChecksumMode::ENABLED)
}

impl CairnS3 {
    pub(crate) async fn do_get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        check_version_id(input.version_id.as_deref())?;
        let opts = GetOptions {
            range: input.range.map(range_of),
            part_number: input.part_number.map(part_number).transpose()?,
            preconditions: preconditions(
                input.if_match.as_ref(),
                input.if_none_match.as_ref(),
                input.if_modified_since.as_ref(),
                input.if_unmodified_since.as_ref(),
            ),
        };
        let got = self
            .layer
            .get_object(&input.bucket, &input.key, &opts)
            .await
            .map_err(s3_err)?;
        let size = got.info.size;
        let partial = opts.range.is_some() || opts.part_number.is_some();
        let content_range = partial.then(|| content_range(&got.range, size));
        let length = got.range.end - got.range.start;
        // A part or range of an object has no whole-object checksum.
        let checksums = checksum_mode(input.checksum_mode.as_ref()) && !partial;
        let tag_count = stored_tags(&got.info).len();
        let output = object_answer!(GetObjectOutput, &got.info, checksums, opts.part_number.is_some(), {
            tag_count: (tag_count > 0).then_some(tag_count as i32),
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
        check_version_id(input.version_id.as_deref())?;
        input.part_number.map(part_number).transpose()?;
        let conditions = preconditions(
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        );
        let (info, parts) = self
            .layer
            .object_parts(&input.bucket, &input.key)
            .await
            .map_err(s3_err)?;
        conditions.check_read(&info).map_err(s3_err)?;
        let range = match (input.part_number, input.range.map(range_of)) {
            (Some(_), Some(_)) => {
                return Err(s3_error!(
                    InvalidRequest,
                    "Cannot specify both Range header and partNumber query parameter"
                ));
            }
            (Some(number), None) => {
                let mut offset = 0;
                let mut found = None;
                for part in &parts {
                    if i32::try_from(part.number).ok() == Some(number) {
                        found = Some(offset..offset + part.size);
                    }
                    offset += part.size;
                }
                match found {
                    Some(r) if !r.is_empty() => Some(r),
                    Some(_) => {
                        return Err(s3_err(cairn_object::Error::InvalidRange {
                            size: info.size,
                        }));
                    }
                    None => {
                        return Err(s3_err(cairn_object::Error::InvalidPartNumber {
                            number: number.max(0) as u32,
                            parts: parts.len(),
                        }));
                    }
                }
            }
            (None, Some(range)) => match range.resolve(info.size) {
                Some(r) => Some(r),
                None => {
                    return Err(s3_err(cairn_object::Error::InvalidRange {
                        size: info.size,
                    }));
                }
            },
            (None, None) => None,
        };
        let (content_length, content_range) = match &range {
            Some(r) => (r.end - r.start, Some(content_range(r, info.size))),
            None => (info.size, None),
        };
        let checksums = checksum_mode(input.checksum_mode.as_ref()) && range.is_none();
        let output = object_answer!(HeadObjectOutput, &info, checksums, input.part_number.is_some(), {
            content_length: Some(content_length as i64),
            content_range: content_range,
        });
        let mut resp = S3Response::new(output);
        // S3 gives the tag count on HEAD too; s3s's HEAD output has no field.
        let tag_count = stored_tags(&info).len();
        if tag_count > 0 {
            resp.headers
                .insert("x-amz-tagging-count", http::HeaderValue::from(tag_count));
        }
        Ok(resp)
    }

    pub(crate) async fn do_get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let input = req.input;
        check_version_id(input.version_id.as_deref())?;
        let (info, parts) = self
            .layer
            .object_parts(&input.bucket, &input.key)
            .await
            .map_err(s3_err)?;
        // SDKs send the list in one header, comma separated.
        let wants = |name: &str| {
            input
                .object_attributes
                .iter()
                .flat_map(|a| a.as_str().split(','))
                .any(|a| a.trim() == name)
        };
        let get = |name: &str| info.meta.get(name).cloned();
        let mut output = GetObjectAttributesOutput {
            last_modified: Some(timestamp(info.mod_time_ns)),
            ..Default::default()
        };
        if wants(ObjectAttributes::ETAG) {
            output.e_tag = Some(ETag::Strong(info.etag.clone()));
        }
        if wants(ObjectAttributes::OBJECT_SIZE) {
            output.object_size = Some(info.size as i64);
        }
        if wants(ObjectAttributes::STORAGE_CLASS) {
            output.storage_class = Some(StorageClass::from_static(StorageClass::STANDARD));
        }
        if wants(ObjectAttributes::CHECKSUM) && get(checksum::TYPE_KEY).is_some() {
            output.checksum = Some(Checksum {
                checksum_crc32: get("x-amz-checksum-crc32"),
                checksum_crc32c: get("x-amz-checksum-crc32c"),
                checksum_crc64nvme: get("x-amz-checksum-crc64nvme"),
                checksum_sha1: get("x-amz-checksum-sha1"),
                checksum_sha256: get("x-amz-checksum-sha256"),
                checksum_type: get(checksum::TYPE_KEY).map(ChecksumType::from),
            });
        }
        // Parts are reported for objects that were uploaded in parts.
        if wants(ObjectAttributes::OBJECT_PARTS) && info.etag.contains('-') {
            let marker = input.part_number_marker.unwrap_or(0).max(0) as u32;
            let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
            let algorithm = get(checksum::ALGORITHM_KEY);
            let after: Vec<_> = parts.iter().filter(|p| p.number > marker).collect();
            let page: Vec<ObjectPart> = after
                .iter()
                .take(max)
                .map(|p| {
                    let mut part = ObjectPart {
                        part_number: Some(p.number as i32),
                        size: Some(p.size as i64),
                        ..Default::default()
                    };
                    if let (Some(algo), Some(value)) = (algorithm.as_deref(), p.checksum.clone()) {
                        checksum::set_part_checksum(&mut part, algo, value);
                    }
                    part
                })
                .collect();
            let truncated = after.len() > max;
            output.object_parts = Some(GetObjectAttributesParts {
                total_parts_count: Some(parts.len() as i32),
                part_number_marker: Some(marker as i32),
                next_part_number_marker: page.last().and_then(|p| p.part_number),
                max_parts: Some(max as i32),
                is_truncated: Some(truncated),
                parts: Some(page),
            });
        }
        Ok(S3Response::new(output))
    }
}
