//! Object operations: Put, Get, Head, Delete, Copy, DeleteObjects,
//! GetObjectAttributes, tagging and ACLs.

use std::collections::BTreeMap;

use cairn_object::{ByteRange, GetOptions, MetaUpdate, ObjectInfo, Preconditions, PutOptions};
use futures::StreamExt;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::CairnS3;
use crate::checksum::{self, ChecksumBody, ChecksumPlan};
use crate::error::s3_err;

/// Stored header names, besides `x-amz-meta-*` and `x-amz-checksum-*`.
pub(crate) const CONTENT_TYPE: &str = "content-type";
pub(crate) const CONTENT_ENCODING: &str = "content-encoding";
pub(crate) const CONTENT_DISPOSITION: &str = "content-disposition";
pub(crate) const CONTENT_LANGUAGE: &str = "content-language";
pub(crate) const CACHE_CONTROL: &str = "cache-control";
pub(crate) const EXPIRES: &str = "expires";
pub(crate) const USER_META_PREFIX: &str = "x-amz-meta-";
/// The object's tags, URL-encoded as in the `x-amz-tagging` header.
pub(crate) const TAGGING: &str = "x-amz-tagging";

/// What S3 reports for objects stored without a Content-Type.
const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";
/// The largest source CopyObject accepts, as in S3.
const MAX_COPY_SOURCE: u64 = 5 << 30;
/// At most this many keys in one DeleteObjects request, as in S3.
const MAX_DELETE_KEYS: usize = 1000;

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

/// An HTTP date for a time in nanoseconds.
pub(crate) fn http_date(ns: i64) -> Option<String> {
    format_http_date(&timestamp(ns))
}

fn parse_http_date(value: &str) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, value).ok()
}

fn unix_secs(ts: &Timestamp) -> i64 {
    time::OffsetDateTime::from(ts.clone()).unix_timestamp()
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

/// Headers of a new object, as a PUT, a copy with `REPLACE` or a multipart
/// upload gives them.
pub(crate) struct NewObjectHeaders<'a> {
    pub(crate) content_type: Option<&'a str>,
    pub(crate) content_encoding: Option<&'a str>,
    pub(crate) content_disposition: Option<&'a str>,
    pub(crate) content_language: Option<&'a str>,
    pub(crate) cache_control: Option<&'a str>,
    pub(crate) expires: Option<&'a Timestamp>,
    pub(crate) metadata: Option<&'a Metadata>,
    pub(crate) tagging: Option<&'a str>,
    pub(crate) storage_class: Option<&'a StorageClass>,
}

impl NewObjectHeaders<'_> {
    /// The metadata to store; refuses bad tags and storage classes.
    pub(crate) fn into_meta(self) -> S3Result<BTreeMap<String, String>> {
        if let Some(class) = self.storage_class
            && class.as_str() != StorageClass::STANDARD
        {
            return Err(s3_error!(
                InvalidStorageClass,
                "The storage class you specified is not valid: only STANDARD is offered"
            ));
        }
        let mut meta = BTreeMap::new();
        meta.insert(
            CONTENT_TYPE.to_owned(),
            self.content_type.unwrap_or(DEFAULT_CONTENT_TYPE).to_owned(),
        );
        let optional = [
            (
                CONTENT_ENCODING,
                stored_content_encoding(self.content_encoding),
            ),
            (
                CONTENT_DISPOSITION,
                self.content_disposition.map(str::to_owned),
            ),
            (CONTENT_LANGUAGE, self.content_language.map(str::to_owned)),
            (CACHE_CONTROL, self.cache_control.map(str::to_owned)),
            (EXPIRES, self.expires.and_then(format_http_date)),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                meta.insert(name.to_owned(), value);
            }
        }
        for (name, value) in self.metadata.into_iter().flatten() {
            meta.insert(
                format!("{USER_META_PREFIX}{}", name.to_ascii_lowercase()),
                value.clone(),
            );
        }
        if let Some(tagging) = self.tagging
            && !tagging.is_empty()
        {
            let tags = parse_tagging(tagging)?;
            meta.insert(TAGGING.to_owned(), encode_tags(&tags));
        }
        Ok(meta)
    }
}

/// Parses tags in `x-amz-tagging` form (`k1=v1&k2=v2`) and checks S3's limits.
fn parse_tagging(value: &str) -> S3Result<Vec<(String, String)>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(value).map_err(|_| {
        s3_error!(
            InvalidArgument,
            "The x-amz-tagging header is not a valid query string"
        )
    })?;
    validate_tags(&pairs)?;
    Ok(pairs)
}

fn validate_tags(tags: &[(String, String)]) -> S3Result<()> {
    if tags.len() > 10 {
        return Err(s3_error!(
            InvalidTag,
            "Object tags cannot be greater than 10"
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > 128 {
            return Err(s3_error!(
                InvalidTag,
                "The TagKey you have provided is invalid"
            ));
        }
        if value.chars().count() > 256 {
            return Err(s3_error!(
                InvalidTag,
                "The TagValue you have provided is too long"
            ));
        }
        if !seen.insert(key) {
            return Err(s3_error!(
                InvalidTag,
                "Cannot provide multiple Tags with the same key"
            ));
        }
    }
    Ok(())
}

fn encode_tags(tags: &[(String, String)]) -> String {
    serde_urlencoded::to_string(tags).unwrap_or_default()
}

fn stored_tags(info: &ObjectInfo) -> Vec<(String, String)> {
    info.meta
        .get(TAGGING)
        .and_then(|v| serde_urlencoded::from_str(v).ok())
        .unwrap_or_default()
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

fn etag_condition(condition: &ETagCondition) -> String {
    match condition {
        ETagCondition::ETag(etag) => etag.value().to_owned(),
        ETagCondition::Any => "*".to_owned(),
    }
}

/// Preconditions from the four conditional headers.
pub(crate) fn preconditions(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> Preconditions {
    Preconditions {
        if_match: if_match.map(etag_condition),
        if_none_match: if_none_match.map(etag_condition),
        if_modified_since: if_modified_since.map(unix_secs),
        if_unmodified_since: if_unmodified_since.map(unix_secs),
    }
}

/// Refuses a version id other than `null`: buckets are not versioned yet.
pub(crate) fn check_version_id(version_id: Option<&str>) -> S3Result<()> {
    match version_id {
        None | Some("null") => Ok(()),
        Some(_) => Err(s3_error!(InvalidArgument, "Invalid version id specified")),
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
        crate::check_private_acl(input.acl.as_ref().map(|a| a.as_str()), None)?;
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
        let meta = NewObjectHeaders {
            content_type: input.content_type.as_deref(),
            content_encoding: input.content_encoding.as_deref(),
            content_disposition: input.content_disposition.as_deref(),
            content_language: input.content_language.as_deref(),
            cache_control: input.cache_control.as_deref(),
            expires: input.expires.as_ref(),
            metadata: input.metadata.as_ref(),
            tagging: input.tagging.as_deref(),
            storage_class: input.storage_class.as_ref(),
        }
        .into_meta()?;
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

    pub(crate) async fn do_get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        check_version_id(input.version_id.as_deref())?;
        let opts = GetOptions {
            range: input.range.map(range_of),
            part_number: input.part_number.map(|n| n.max(0) as u32),
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
        Ok(S3Response::new(output))
    }

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
        crate::check_private_acl(input.acl.as_ref().map(|a| a.as_str()), None)?;
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
        let update: MetaUpdate = Box::new(move |info| {
            let mut meta = info.meta.clone();
            meta.remove(TAGGING);
            if !tags.is_empty() {
                meta.insert(TAGGING.to_owned(), encode_tags(&tags));
            }
            Ok(meta)
        });
        self.layer
            .update_object_meta(
                &input.bucket,
                &input.key,
                update,
                false,
                &Preconditions::default(),
            )
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(PutObjectTaggingOutput::default()))
    }

    pub(crate) async fn do_delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let input = req.input;
        check_version_id(input.version_id.as_deref())?;
        let update: MetaUpdate = Box::new(|info| {
            let mut meta = info.meta.clone();
            meta.remove(TAGGING);
            Ok(meta)
        });
        self.layer
            .update_object_meta(
                &input.bucket,
                &input.key,
                update,
                false,
                &Preconditions::default(),
            )
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(DeleteObjectTaggingOutput::default()))
    }

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
            grants: Some(crate::owner_full_control()),
            owner: Some(crate::owner()),
            ..Default::default()
        }))
    }

    pub(crate) async fn do_put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        let input = req.input;
        check_version_id(input.version_id.as_deref())?;
        crate::check_private_acl(
            input.acl.as_ref().map(|a| a.as_str()),
            input.access_control_policy.as_ref(),
        )?;
        self.layer
            .head_object(&input.bucket, &input.key)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(PutObjectAclOutput::default()))
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

    #[test]
    fn tags_parse_validate_and_round_trip() {
        let tags = parse_tagging("a=1&b=two%20words&empty=").unwrap();
        assert_eq!(
            tags,
            [
                ("a".into(), "1".into()),
                ("b".into(), "two words".into()),
                ("empty".into(), String::new())
            ]
        );
        assert_eq!(parse_tagging(&encode_tags(&tags)).unwrap(), tags);
        assert!(parse_tagging("a=1&a=2").is_err());
        assert!(parse_tagging(&"k=v&".repeat(11)).is_err());
        assert!(parse_tagging(&format!("{}=v", "k".repeat(129))).is_err());
        assert!(parse_tagging(&format!("k={}", "v".repeat(257))).is_err());
        assert!(parse_tagging("=v").is_err());
    }
}
