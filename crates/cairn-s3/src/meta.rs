//! Object metadata and headers: how a new object's headers and tags are
//! stored, how stored metadata reads back, and the request values
//! (conditional headers, version ids) that several operations share.
//!
//! The operation files (`put.rs`, `get.rs`, `copy.rs`, ...) import from
//! here and never from each other, so that a helper one of them needs does
//! not make every other operation depend on it.

use std::collections::BTreeMap;

use cairn_object::{ObjectInfo, Preconditions};
use s3s::dto::*;
use s3s::{S3Result, s3_error};

/// Stored header names, besides `x-amz-meta-*` and `x-amz-checksum-*`.
pub(crate) const CONTENT_TYPE: &str = "content-type";
pub(crate) const CONTENT_ENCODING: &str = "content-encoding";
pub(crate) const CONTENT_DISPOSITION: &str = "content-disposition";
pub(crate) const CONTENT_LANGUAGE: &str = "content-language";
pub(crate) const CACHE_CONTROL: &str = "cache-control";
pub(crate) const EXPIRES: &str = "expires";
pub(crate) const USER_META_PREFIX: &str = "x-amz-meta-";

/// The multipart upload an object was completed from (internal, never
/// answered): a CompleteMultipartUpload sent again succeeds while it is
/// still the object there, as in S3.
pub(crate) const COMPLETED_UPLOAD: &str = "x-cairn-completed-upload";
/// The object's tags, URL-encoded as in the `x-amz-tagging` header.
pub(crate) const TAGGING: &str = "x-amz-tagging";

/// What S3 reports for objects stored without a Content-Type.
pub(crate) const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

/// An S3 timestamp for a time in nanoseconds.
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

/// Reads back a date stored as [`http_date`] writes it.
pub(crate) fn parse_http_date(value: &str) -> Option<Timestamp> {
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

/// [`NewObjectHeaders`] from a request input with PutObject's fields
/// (PutObject, CreateMultipartUpload, CopyObject with `REPLACE`): s3s gives
/// each its own input type, with the same field names.
macro_rules! new_object_headers {
    ($input:expr, tagging: $tagging:expr) => {
        $crate::meta::NewObjectHeaders {
            content_type: $input.content_type.as_deref(),
            content_encoding: $input.content_encoding.as_deref(),
            content_disposition: $input.content_disposition.as_deref(),
            content_language: $input.content_language.as_deref(),
            cache_control: $input.cache_control.as_deref(),
            expires: $input.expires.as_ref(),
            metadata: $input.metadata.as_ref(),
            tagging: $tagging,
            storage_class: $input.storage_class.as_ref(),
        }
    };
}
pub(crate) use new_object_headers;

/// Refuses what a request creating an object (PutObject,
/// CreateMultipartUpload) asks that Cairn does not do yet: object lock,
/// server-side encryption, and an ACL other than private.
macro_rules! refuse_unsupported_object_settings {
    ($input:expr) => {
        if $input.object_lock_mode.is_some() || $input.object_lock_retain_until_date.is_some() {
            return Err(s3s::s3_error!(
                NotImplemented,
                "Object Lock is not supported yet"
            ));
        }
        $crate::ownership::check_private_acl($input.acl.as_ref().map(|a| a.as_str()), None)?;
        if $input.sse_customer_algorithm.is_some() || $input.server_side_encryption.is_some() {
            return Err(s3s::s3_error!(
                NotImplemented,
                "Server-side encryption is not supported yet"
            ));
        }
    };
}
pub(crate) use refuse_unsupported_object_settings;

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
        let user_size = crate::limits::user_metadata_size(
            self.metadata
                .into_iter()
                .flatten()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        );
        if user_size > crate::limits::USER_METADATA_MAX {
            return Err(s3_error!(
                MetadataTooLarge,
                "Your metadata headers exceed the maximum allowed metadata size: {user_size} bytes of x-amz-meta-* names and values, the limit is {}",
                crate::limits::USER_METADATA_MAX
            ));
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
pub(crate) fn parse_tagging(value: &str) -> S3Result<Vec<(String, String)>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(value).map_err(|_| {
        s3_error!(
            InvalidArgument,
            "The x-amz-tagging header is not a valid query string"
        )
    })?;
    validate_tags(&pairs)?;
    Ok(pairs)
}

/// Checks S3's limits on a tag set: at most 10 tags, keys of 1 to 128
/// characters, values of at most 256, no key twice.
pub(crate) fn validate_tags(tags: &[(String, String)]) -> S3Result<()> {
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

/// Tags as stored under [`TAGGING`], in `x-amz-tagging` form.
pub(crate) fn encode_tags(tags: &[(String, String)]) -> String {
    serde_urlencoded::to_string(tags).unwrap_or_default()
}

/// The tags stored with an object; none if they do not parse.
pub(crate) fn stored_tags(info: &ObjectInfo) -> Vec<(String, String)> {
    info.meta
        .get(TAGGING)
        .and_then(|v| serde_urlencoded::from_str(v).ok())
        .unwrap_or_default()
}

/// The object's `x-amz-meta-*` entries without the prefix, as answers
/// report them; `None` when there are none.
pub(crate) fn user_metadata(info: &ObjectInfo) -> Option<Metadata> {
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
