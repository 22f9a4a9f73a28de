//! What one request may carry, checked before anything is read or stored:
//! S3's limits on headers and on XML bodies, each refused with S3's answer.

use http::{HeaderMap, Method, StatusCode};
use s3s::S3ErrorCode;

use crate::error::Refusal;

/// The most an XML request body may hold. The largest real ones are a
/// CompleteMultipartUpload of 10,000 parts with checksums (about 2.5 MB)
/// and a DeleteObjects of 1,000 keys of 1,024 bytes (about 1.1 MB).
pub(crate) const XML_MAX: usize = 5 << 20;

/// S3's limit on a request's header section: 8 KB.
pub(crate) const HEADER_SECTION_MAX: usize = 8 << 10;

/// S3's limit on user-defined metadata: 2 KB, counted as the UTF-8 bytes of
/// each name (without `x-amz-meta-`) and value.
pub(crate) const USER_METADATA_MAX: usize = 2 << 10;

/// How an idle request body's error names itself, so that it is still
/// recognised after s3s's body decoders have wrapped it.
pub(crate) const BODY_TIMEOUT: &str = "RequestTimeout:";

/// A request body that sent nothing for longer than its allowance.
#[derive(Debug)]
pub(crate) struct BodyTimedOut(pub(crate) std::time::Duration);

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{BODY_TIMEOUT} no request body data for {:?}", self.0)
    }
}

impl std::error::Error for BodyTimedOut {}

/// Sub-resources whose PUT or POST body on an object is an XML document.
const OBJECT_XML: &[&str] = &[
    "tagging",
    "acl",
    "retention",
    "legal-hold",
    "restore",
    "select",
    "uploadId",
];

/// Refuses a request whose headers or XML body exceed S3's limits.
/// `key` is the rest of the path after the bucket (empty for a bucket).
pub(crate) fn check(
    method: &Method,
    headers: &HeaderMap,
    query: Option<&str>,
    key: Option<&str>,
) -> Option<Refusal> {
    let section: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if section > HEADER_SECTION_MAX {
        return Some(
            Refusal::new(
                S3ErrorCode::RequestHeaderSectionTooLarge,
                format!(
                    "Your request header section exceeds the maximum allowed size: {section} bytes, the limit is {HEADER_SECTION_MAX}."
                ),
            )
            .status(StatusCode::BAD_REQUEST),
        );
    }
    if !xml_body(method, query, key) {
        return None;
    }
    let length = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match length {
        None if headers.contains_key(http::header::TRANSFER_ENCODING) => Some(
            Refusal::new(
                S3ErrorCode::MissingContentLength,
                "You must provide the Content-Length HTTP header.",
            )
            .status(StatusCode::LENGTH_REQUIRED),
        ),
        Some(length) if length > XML_MAX as u64 => Some(Refusal::new(
            S3ErrorCode::MalformedXML,
            format!(
                "The XML you provided was not well-formed or did not validate against our published schema: the body is {length} bytes, the limit is {XML_MAX}."
            ),
        )),
        _ => None,
    }
}

/// Whether the request's body is an XML document s3s reads whole: a PUT
/// or POST on a bucket (its creation or a configuration), or on an
/// object's sub-resource; not object data.
fn xml_body(method: &Method, query: Option<&str>, key: Option<&str>) -> bool {
    if method != Method::PUT && method != Method::POST {
        return false;
    }
    let Some(key) = key else {
        return false; // ListBuckets and other service-level requests
    };
    if key.is_empty() {
        return true;
    }
    let names = query
        .unwrap_or_default()
        .split('&')
        .map(|pair| pair.split_once('=').map_or(pair, |(name, _)| name));
    let mut xml = false;
    for name in names {
        match name {
            // Object data, whatever else the query says.
            "partNumber" | "uploads" => return false,
            name if OBJECT_XML.contains(&name) => xml = true,
            _ => {}
        }
    }
    xml
}

/// The size S3 counts for user-defined metadata.
pub(crate) fn user_metadata_size<'a>(entries: impl Iterator<Item = (&'a str, &'a str)>) -> usize {
    entries.map(|(name, value)| name.len() + value.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn code(refusal: Option<Refusal>) -> Option<S3ErrorCode> {
        refusal.map(|r| r.code().clone())
    }

    #[test]
    fn xml_bodies_are_told_from_object_data() {
        let put = Method::PUT;
        let post = Method::POST;
        assert!(xml_body(&put, None, Some("")));
        assert!(xml_body(&put, Some("cors"), Some("")));
        assert!(xml_body(&post, Some("delete"), Some("")));
        assert!(xml_body(&put, Some("tagging"), Some("key")));
        assert!(xml_body(&post, Some("uploadId=abc"), Some("key")));
        assert!(!xml_body(&put, None, Some("key")));
        assert!(!xml_body(
            &put,
            Some("partNumber=1&uploadId=abc"),
            Some("key")
        ));
        assert!(!xml_body(&post, Some("uploads"), Some("key")));
        assert!(!xml_body(&Method::GET, Some("tagging"), Some("key")));
        assert!(!xml_body(&put, None, None));
    }

    #[test]
    fn oversized_xml_and_headers_are_refused() {
        let at = |len: usize| headers(&[("content-length", len.to_string())]);
        let put = Method::PUT;
        assert!(check(&put, &at(XML_MAX), Some("cors"), Some("")).is_none());
        assert_eq!(
            code(check(&put, &at(XML_MAX + 1), Some("cors"), Some(""))),
            Some(S3ErrorCode::MalformedXML)
        );
        // Object data is not XML: any size.
        assert!(check(&put, &at(1 << 30), None, Some("key")).is_none());
        let chunked = headers(&[("transfer-encoding", "chunked".into())]);
        assert_eq!(
            code(check(&Method::POST, &chunked, Some("delete"), Some(""))),
            Some(S3ErrorCode::MissingContentLength)
        );
        let many: Vec<(&'static str, String)> =
            (0..200).map(|_| ("x-amz-meta-a", "b".repeat(40))).collect();
        assert_eq!(
            code(check(&Method::GET, &headers(&many), None, Some("key"))),
            Some(S3ErrorCode::RequestHeaderSectionTooLarge)
        );
    }
}
