//! ListObjects (v1), ListObjectsV2, and ListObjectVersions (buckets are not
//! versioned yet, so every object is its one `null` version).

use cairn_object::{ListOptions, ListResult};
use s3s::dto::{
    CommonPrefix, ETag, EncodingType, ListObjectVersionsInput, ListObjectVersionsOutput,
    ListObjectsInput, ListObjectsOutput, ListObjectsV2Input, ListObjectsV2Output, Object,
    ObjectStorageClass, ObjectVersion, ObjectVersionStorageClass,
};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::CairnS3;
use crate::error::s3_err;
use crate::meta::timestamp;
use crate::ownership::owner;

/// The most keys one page returns, as in S3.
const MAX_KEYS: i32 = 1000;

/// Percent-encodes a key for `encoding-type=url`, leaving unreserved
/// characters and `/` as they are, like S3.
pub(crate) fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn max_keys(value: Option<i32>) -> S3Result<usize> {
    match value {
        None => Ok(MAX_KEYS as usize),
        Some(n) if n < 0 => Err(s3_error!(
            InvalidArgument,
            "max-keys must be a non-negative integer"
        )),
        Some(n) => Ok(n.min(MAX_KEYS) as usize),
    }
}

pub(crate) fn encoding(value: Option<&EncodingType>) -> S3Result<bool> {
    match value.map(EncodingType::as_str) {
        None => Ok(false),
        Some("url") => Ok(true),
        Some(other) => Err(s3_error!(
            InvalidArgument,
            "Invalid Encoding Method specified in Request: {other:?}"
        )),
    }
}

/// Continuation tokens are opaque to clients: the hex of the last name
/// returned, behind a version tag.
fn encode_token(marker: &str) -> String {
    let mut out = String::from("1");
    for byte in marker.bytes() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

fn decode_token(token: &str) -> S3Result<String> {
    let invalid = || {
        s3_error!(
            InvalidArgument,
            "The continuation token provided is incorrect"
        )
    };
    let hex = token.strip_prefix('1').ok_or_else(invalid)?;
    if hex.len() % 2 != 0 {
        return Err(invalid());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(invalid)?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

struct Page {
    contents: Vec<Object>,
    common_prefixes: Vec<CommonPrefix>,
}

/// The page's entries, moved out of `result` (a page of 1000 keys would
/// otherwise copy 2000 strings).
fn page(result: &mut ListResult, url: bool, with_owner: bool) -> Page {
    let enc = |s: String| if url { url_encode(&s) } else { s };
    let contents = std::mem::take(&mut result.objects)
        .into_iter()
        .map(|info| Object {
            key: Some(enc(info.key)),
            e_tag: Some(ETag::Strong(info.etag)),
            last_modified: Some(timestamp(info.mod_time_ns)),
            size: Some(info.size as i64),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            owner: with_owner.then(owner),
            ..Default::default()
        })
        .collect();
    let common_prefixes = std::mem::take(&mut result.prefixes)
        .into_iter()
        .map(|p| CommonPrefix {
            prefix: Some(enc(p)),
        })
        .collect();
    Page {
        contents,
        common_prefixes,
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

impl CairnS3 {
    pub(crate) async fn do_list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let url = encoding(input.encoding_type.as_ref())?;
        let max_keys = max_keys(input.max_keys)?;
        let options = ListOptions {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: non_empty(input.delimiter.clone()),
            start_after: non_empty(input.marker.clone()),
            max_keys,
        };
        let mut result = self
            .layer
            .list_objects(&input.bucket, &options)
            .await
            .map_err(s3_err)?;
        let page = page(&mut result, url, true);
        let enc = |s: String| if url { url_encode(&s) } else { s };
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(enc(options.prefix)),
            marker: Some(input.marker.map(enc).unwrap_or_default()),
            delimiter: options.delimiter.map(enc),
            max_keys: Some(max_keys as i32),
            is_truncated: Some(result.truncated),
            next_marker: result.next_marker.map(enc),
            contents: Some(page.contents),
            common_prefixes: Some(page.common_prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    pub(crate) async fn do_list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let url = encoding(input.encoding_type.as_ref())?;
        let max_keys = max_keys(input.max_keys)?;
        let start_after = match non_empty(input.continuation_token.clone()) {
            Some(token) => Some(decode_token(&token)?),
            None => non_empty(input.start_after.clone()),
        };
        let options = ListOptions {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: non_empty(input.delimiter.clone()),
            start_after,
            max_keys,
        };
        let mut result = self
            .layer
            .list_objects(&input.bucket, &options)
            .await
            .map_err(s3_err)?;
        let page = page(&mut result, url, input.fetch_owner == Some(true));
        let key_count = (page.contents.len() + page.common_prefixes.len()) as i32;
        let enc = |s: String| if url { url_encode(&s) } else { s };
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(enc(options.prefix)),
            delimiter: options.delimiter.map(enc),
            max_keys: Some(max_keys as i32),
            key_count: Some(key_count),
            continuation_token: input.continuation_token,
            next_continuation_token: result
                .truncated
                .then(|| result.next_marker.as_deref().map(encode_token))
                .flatten(),
            start_after: input.start_after.map(enc),
            is_truncated: Some(result.truncated),
            contents: Some(page.contents),
            common_prefixes: Some(page.common_prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }
}

impl CairnS3 {
    pub(crate) async fn do_list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let input = req.input;
        let url = encoding(input.encoding_type.as_ref())?;
        let max_keys = max_keys(input.max_keys)?;
        // One version per key: a version-id marker other than `null` names
        // nothing, and `null` means the key marker's own version is done.
        if let Some(marker) = non_empty(input.version_id_marker.clone()) {
            if marker != "null" {
                return Err(s3_error!(InvalidArgument, "Invalid version id specified"));
            }
            if non_empty(input.key_marker.clone()).is_none() {
                return Err(s3_error!(
                    InvalidArgument,
                    "A version-id marker cannot be specified without a key marker."
                ));
            }
        }
        let options = ListOptions {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: non_empty(input.delimiter.clone()),
            start_after: non_empty(input.key_marker.clone()),
            max_keys,
        };
        let result = self
            .layer
            .list_objects(&input.bucket, &options)
            .await
            .map_err(s3_err)?;
        let enc = |s: &str| if url { url_encode(s) } else { s.to_owned() };
        let versions: Vec<ObjectVersion> = result
            .objects
            .iter()
            .map(|info| ObjectVersion {
                key: Some(enc(&info.key)),
                version_id: Some("null".to_owned()),
                is_latest: Some(true),
                e_tag: Some(ETag::Strong(info.etag.clone())),
                last_modified: Some(timestamp(info.mod_time_ns)),
                size: Some(info.size as i64),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                owner: Some(owner()),
                ..Default::default()
            })
            .collect();
        let common_prefixes = result
            .prefixes
            .iter()
            .map(|p| CommonPrefix {
                prefix: Some(enc(p)),
            })
            .collect();
        let next = result.truncated.then_some(result.next_marker).flatten();
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: Some(enc(&options.prefix)),
            delimiter: options.delimiter.as_deref().map(enc),
            key_marker: Some(input.key_marker.as_deref().map(enc).unwrap_or_default()),
            version_id_marker: Some(input.version_id_marker.unwrap_or_default()),
            max_keys: Some(max_keys as i32),
            is_truncated: Some(result.truncated),
            next_version_id_marker: next.is_some().then(|| "null".to_owned()),
            next_key_marker: next.as_deref().map(enc),
            versions: Some(versions),
            common_prefixes: Some(common_prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_matches_s3() {
        assert_eq!(url_encode("a b/c+d%é"), "a%20b/c%2Bd%25%C3%A9");
        assert_eq!(url_encode("plain-key_1.txt~"), "plain-key_1.txt~");
    }

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        for marker in ["", "a/b/c", "ключ/файл", "x\u{1}y"] {
            assert_eq!(decode_token(&encode_token(marker)).unwrap(), marker);
        }
        for bad in ["", "2abcd", "1abc", "1zz", "1ff"] {
            assert!(decode_token(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn max_keys_is_capped_and_validated() {
        assert_eq!(max_keys(None).unwrap(), 1000);
        assert_eq!(max_keys(Some(5000)).unwrap(), 1000);
        assert_eq!(max_keys(Some(0)).unwrap(), 0);
        assert!(max_keys(Some(-1)).is_err());
    }
}
