//! Browser uploads: POST Object from an HTML form with a signed policy.
//!
//! s3s would hold the whole file in memory before calling us, so these
//! requests are taken before s3s sees them: the form is parsed as it
//! arrives, the policy's signature and conditions are checked on the
//! fields (which precede the file), and the file streams into the object
//! layer with `content-length-range` enforced on the way.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use cairn_object::{ObjectLayer, PutOptions};
use futures::{Stream, StreamExt};

use http::{HeaderMap, StatusCode};
use s3s::dto::{StorageClass, Timestamp, TimestampFormat};
use s3s::post_policy::{PostPolicy, PostPolicyCondition};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

use crate::auth::Credentials;
use crate::error::s3_err;
use crate::meta::NewObjectHeaders;
use crate::ownership::check_private_acl;
use crate::sigv4::{constant_time_eq, hex, hmac_sha256, signing_key};

/// Largest part header block, and largest form field value.
const MAX_PART_HEADERS: usize = 8 << 10;
const MAX_FIELD: usize = 64 << 10;
/// All fields before the file together.
const MAX_FIELDS: usize = 1 << 20;

/// What a POST upload needs from the server.
pub(crate) struct PostUploads {
    pub(crate) layer: Arc<ObjectLayer>,
    pub(crate) root: Credentials,
    /// Largest file accepted, whatever the policy allows.
    pub(crate) max_bytes: u64,
    /// The region credential scopes must name.
    pub(crate) region: String,
}

/// The boundary of a `multipart/form-data` request, if it is one.
pub(crate) fn form_boundary(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(http::header::CONTENT_TYPE)?.to_str().ok()?;
    let (mime, params) = value.split_once(';')?;
    if !mime.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty() && b.len() <= 200)
    })
}

/// A request body as a stream of data chunks.
type BodyChunks = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

fn body_chunks<B>(mut body: B) -> BodyChunks
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    Box::pin(futures::stream::poll_fn(move |cx| {
        loop {
            return match Pin::new(&mut body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => Poll::Ready(Some(Ok(data))),
                    Err(_) => continue,
                },
                Poll::Ready(Some(Err(err))) => {
                    Poll::Ready(Some(Err(std::io::Error::other(err.to_string()))))
                }
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            };
        }
    }))
}

fn malformed(message: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::MalformedPOSTRequest,
        format!("The body of your POST request is not well-formed multipart/form-data: {message}"),
    )
}

/// A `multipart/form-data` body read part by part.
struct FormReader {
    body: BodyChunks,
    buf: BytesMut,
    /// `\r\n--boundary`: what ends every part.
    delimiter: Vec<u8>,
    finder: memchr::memmem::Finder<'static>,
    eof: bool,
}

/// One part's name and file name.
struct PartHeaders {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
}

impl FormReader {
    fn new(body: BodyChunks, boundary: &str) -> FormReader {
        let delimiter = format!("\r\n--{boundary}").into_bytes();
        let finder = memchr::memmem::Finder::new(&delimiter).into_owned();
        // The first delimiter has no CRLF before it: pretend it does.
        let mut buf = BytesMut::with_capacity(64 << 10);
        buf.extend_from_slice(b"\r\n");
        FormReader {
            body,
            buf,
            delimiter,
            finder,
            eof: false,
        }
    }

    /// Reads one more chunk into the buffer; false at the end of the body.
    async fn fill(&mut self) -> S3Result<bool> {
        if self.eof {
            return Ok(false);
        }
        match self.body.next().await {
            Some(Ok(chunk)) => {
                self.buf.extend_from_slice(&chunk);
                Ok(true)
            }
            Some(Err(err)) => Err(crate::error::body_failure(&err)),
            None => {
                self.eof = true;
                Ok(false)
            }
        }
    }

    /// Skips the preamble up to the first delimiter.
    async fn start(&mut self) -> S3Result<()> {
        loop {
            if let Some(at) = self.finder.find(&self.buf) {
                self.buf.advance(at + self.delimiter.len());
                return Ok(());
            }
            let keep = self.delimiter.len() - 1;
            if self.buf.len() > keep {
                let drop = self.buf.len() - keep;
                self.buf.advance(drop);
            }
            if !self.fill().await? {
                return Err(malformed("no boundary found"));
            }
        }
    }

    /// After a delimiter: the next part's headers, or `None` at the end.
    async fn next_part(&mut self) -> S3Result<Option<PartHeaders>> {
        while self.buf.len() < 2 {
            if !self.fill().await? {
                return Err(malformed("the body ends inside a boundary"));
            }
        }
        if self.buf.starts_with(b"--") {
            return Ok(None);
        }
        if !self.buf.starts_with(b"\r\n") {
            return Err(malformed("a boundary is not followed by a line end"));
        }
        self.buf.advance(2);
        let end = loop {
            if let Some(at) = memchr::memmem::find(&self.buf, b"\r\n\r\n") {
                break at;
            }
            if self.buf.len() > MAX_PART_HEADERS {
                return Err(malformed("part headers are too long"));
            }
            if !self.fill().await? {
                return Err(malformed("the body ends inside part headers"));
            }
        };
        let head = self.buf.split_to(end + 4);
        let head = std::str::from_utf8(&head[..end])
            .map_err(|_| malformed("part headers are not UTF-8"))?;
        let mut name = None;
        let mut filename = None;
        let mut content_type = None;
        for line in head.split("\r\n") {
            let Some((header, value)) = line.split_once(':') else {
                continue;
            };
            if header.trim().eq_ignore_ascii_case("content-disposition") {
                for param in value.split(';').skip(1) {
                    let Some((key, val)) = param.split_once('=') else {
                        continue;
                    };
                    let val = val.trim().trim_matches('"').to_owned();
                    match key.trim().to_ascii_lowercase().as_str() {
                        "name" => name = Some(val),
                        "filename" => filename = Some(val),
                        _ => {}
                    }
                }
            } else if header.trim().eq_ignore_ascii_case("content-type") {
                content_type = Some(value.trim().to_owned());
            }
        }
        let name = name.ok_or_else(|| malformed("a part has no name"))?;
        Ok(Some(PartHeaders {
            name,
            filename,
            content_type,
        }))
    }

    /// Reads a field's value, up to the next delimiter.
    async fn field_value(&mut self) -> S3Result<String> {
        loop {
            if let Some(at) = self.finder.find(&self.buf) {
                let value = self.buf.split_to(at);
                self.buf.advance(self.delimiter.len());
                return String::from_utf8(value.to_vec())
                    .map_err(|_| malformed("a form field is not UTF-8"));
            }
            if self.buf.len() > MAX_FIELD + self.delimiter.len() {
                return Err(s3_error!(
                    MaxPostPreDataLengthExceededError,
                    "Your POST request fields preceding the upload file were too large"
                ));
            }
            if !self.fill().await? {
                return Err(malformed("the body ends inside a field"));
            }
        }
    }

    /// The file's bytes as a stream that ends at the next delimiter.
    fn file_stream(self) -> impl Stream<Item = S3Result<Bytes>> + Send {
        futures::stream::unfold(Some(self), |state| async move {
            let mut reader = state?;
            loop {
                if let Some(at) = reader.finder.find(&reader.buf) {
                    let data = reader.buf.split_to(at).freeze();
                    return if data.is_empty() {
                        None
                    } else {
                        Some((Ok(data), None))
                    };
                }
                let keep = reader.delimiter.len() - 1;
                if reader.buf.len() > keep + (16 << 10) {
                    let take = reader.buf.len() - keep;
                    let data = reader.buf.split_to(take).freeze();
                    return Some((Ok(data), Some(reader)));
                }
                match reader.fill().await {
                    Ok(true) => {}
                    Ok(false) => {
                        return Some((Err(malformed("the body ends inside the file")), None));
                    }
                    Err(err) => return Some((Err(err), None)),
                }
            }
        })
    }
}

/// The form's fields, by lower-case name, with the value as sent.
type Fields = BTreeMap<String, String>;

fn policy_failed(detail: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::AccessDenied,
        format!("Invalid according to Policy: {detail}"),
    )
}

impl PostUploads {
    /// Checks the form's signature over its policy (SigV4).
    fn check_signature(&self, fields: &Fields) -> S3Result<()> {
        let field = |name: &str| fields.get(name).map(String::as_str);
        let Some(policy) = field("policy") else {
            return Err(s3_error!(
                AccessDenied,
                "Anonymous POST uploads are not allowed: the form needs a signed policy"
            ));
        };
        match field("x-amz-algorithm") {
            Some("AWS4-HMAC-SHA256") => {}
            Some(other) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "The x-amz-algorithm {other:?} is not supported: use AWS4-HMAC-SHA256"
                ));
            }
            None if field("awsaccesskeyid").is_some() => {
                return Err(s3_error!(
                    NotImplemented,
                    "POST uploads signed with signature version 2 are not supported: use SigV4"
                ));
            }
            None => {
                return Err(s3_error!(
                    InvalidArgument,
                    "Bucket POST must contain a field named 'x-amz-algorithm'"
                ));
            }
        }
        let credential = field("x-amz-credential").ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "Bucket POST must contain a field named 'x-amz-credential'"
            )
        })?;
        let signature = field("x-amz-signature").ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "Bucket POST must contain a field named 'x-amz-signature'"
            )
        })?;
        let parts: Vec<&str> = credential.split('/').collect();
        let [access_key, date, region, service, "aws4_request"] = parts[..] else {
            return Err(s3_error!(
                InvalidArgument,
                "The x-amz-credential {credential:?} is malformed"
            ));
        };
        if service != "s3" || !crate::auth::region_matches(region, &self.region) {
            return Err(s3_error!(
                AuthorizationHeaderMalformed,
                "The authorization header is malformed; the x-amz-credential scope {region}/{service} is wrong; expecting '{}/s3'",
                self.region
            ));
        }
        if access_key != self.root.access_key {
            return Err(s3_error!(
                InvalidAccessKeyId,
                "The Access Key Id you provided does not exist in our records"
            ));
        }
        let key = signing_key(&self.root.secret_key, date, region, service);
        let expected = hex(&hmac_sha256(&key, policy.as_bytes()));
        if !constant_time_eq(
            expected.as_bytes(),
            signature.to_ascii_lowercase().as_bytes(),
        ) {
            return Err(s3_error!(
                SignatureDoesNotMatch,
                "The request signature we calculated does not match the signature you provided"
            ));
        }
        Ok(())
    }

    /// Checks the policy's expiry and conditions against the fields;
    /// returns the allowed file sizes.
    fn check_policy(&self, fields: &Fields, bucket: &str) -> S3Result<(u64, u64)> {
        let encoded = &fields["policy"];
        let policy = PostPolicy::from_base64(encoded).map_err(|e| {
            S3Error::with_message(
                S3ErrorCode::InvalidPolicyDocument,
                format!("Invalid Policy: {e}"),
            )
        })?;
        let expiration: time::OffsetDateTime = policy.expiration.clone().into();
        if time::OffsetDateTime::now_utc() >= expiration {
            return Err(policy_failed("Policy expired."));
        }
        let value = |name: &str| -> Option<&str> {
            if name == "bucket" {
                Some(bucket)
            } else {
                fields.get(name).map(String::as_str)
            }
        };
        let mut sizes = (0, u64::MAX);
        let mut covered: Vec<&str> = Vec::new();
        for condition in &policy.conditions {
            match condition {
                PostPolicyCondition::Eq { field, value: want } => {
                    covered.push(field);
                    if value(field) != Some(want.as_str()) {
                        return Err(policy_failed(&format!(
                            "Policy Condition failed: [\"eq\", \"${field}\", \"{want}\"]"
                        )));
                    }
                }
                PostPolicyCondition::StartsWith { field, prefix } => {
                    covered.push(field);
                    let actual = value(field).unwrap_or_default();
                    // Content-Type may list several values, each checked.
                    let ok = if field == "content-type" {
                        actual
                            .split(',')
                            .all(|v| v.trim().starts_with(prefix.as_str()))
                    } else {
                        actual.starts_with(prefix.as_str())
                    };
                    if !ok {
                        return Err(policy_failed(&format!(
                            "Policy Condition failed: [\"starts-with\", \"${field}\", \"{prefix}\"]"
                        )));
                    }
                }
                PostPolicyCondition::ContentLengthRange { min, max } => {
                    sizes = (*min, *max);
                }
            }
        }
        // Every field the form sends must be allowed by a condition.
        let exempt = |name: &str| {
            matches!(name, "policy" | "x-amz-signature" | "file") || name.starts_with("x-ignore-")
        };
        let extra: Vec<&str> = fields
            .keys()
            .map(String::as_str)
            .filter(|name| !exempt(name) && !covered.contains(name))
            .collect();
        if !extra.is_empty() {
            return Err(policy_failed(&format!(
                "Extra input fields: {}",
                extra.join(", ")
            )));
        }
        Ok(sizes)
    }

    /// Handles one POST upload to `bucket`.
    pub(crate) async fn upload<B>(
        &self,
        body: B,
        boundary: &str,
        bucket: &str,
    ) -> S3Result<http::Response<s3s::Body>>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        let mut form = FormReader::new(body_chunks(body), boundary);
        form.start().await?;
        let mut fields = Fields::new();
        let mut total = 0usize;
        let file = loop {
            let Some(part) = form.next_part().await? else {
                return Err(s3_error!(
                    InvalidArgument,
                    "POST requires exactly one file upload per request"
                ));
            };
            let name = part.name.to_ascii_lowercase();
            if name == "file" {
                break part;
            }
            let value = form.field_value().await?;
            total += name.len() + value.len();
            if total > MAX_FIELDS {
                return Err(s3_error!(
                    MaxPostPreDataLengthExceededError,
                    "Your POST request fields preceding the upload file were too large"
                ));
            }
            fields.insert(name, value);
        };

        self.check_signature(&fields)?;
        let (min, max) = self.check_policy(&fields, bucket)?;
        let max = max.min(self.max_bytes);
        let key = fields.get("key").ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields."
            )
        })?;
        let key = key.replace("${filename}", file.filename.as_deref().unwrap_or_default());
        if key.is_empty() {
            return Err(s3_error!(InvalidArgument, "The key may not be empty"));
        }
        let meta = self.object_meta(&fields, file.content_type.as_deref())?;

        let limited = SizeLimited {
            inner: Box::pin(form.file_stream()),
            seen: 0,
            min,
            max,
        };
        let body: cairn_object::BodyStream = Box::pin(limited);
        let info = self
            .layer
            .put_object(
                bucket,
                &key,
                body,
                PutOptions {
                    meta,
                    ..Default::default()
                },
            )
            .await
            .map_err(s3_err)?;
        Ok(success_response(&fields, bucket, &key, &info.etag))
    }

    fn object_meta(
        &self,
        fields: &Fields,
        file_type: Option<&str>,
    ) -> S3Result<BTreeMap<String, String>> {
        let field = |name: &str| fields.get(name).map(String::as_str);
        check_private_acl(field("acl"), None)?;
        let expires = field("expires")
            .map(|v| {
                Timestamp::parse(TimestampFormat::HttpDate, v).map_err(|_| {
                    s3_error!(
                        InvalidArgument,
                        "The Expires field {v:?} is not an HTTP date"
                    )
                })
            })
            .transpose()?;
        let metadata: HashMap<String, String> = fields
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("x-amz-meta-")
                    .map(|name| (name.to_owned(), v.clone()))
            })
            .collect();
        let storage_class = field("x-amz-storage-class").map(|s| StorageClass::from(s.to_owned()));
        NewObjectHeaders {
            content_type: field("content-type").or(file_type),
            content_encoding: field("content-encoding"),
            content_disposition: field("content-disposition"),
            content_language: field("content-language"),
            cache_control: field("cache-control"),
            expires: expires.as_ref(),
            metadata: Some(&metadata),
            tagging: None,
            storage_class: storage_class.as_ref(),
        }
        .into_meta()
    }
}

/// The answer S3 gives a successful POST: a redirect, or the status asked
/// for (204 by default; 201 with an XML document).
fn success_response(
    fields: &Fields,
    bucket: &str,
    key: &str,
    etag: &str,
) -> http::Response<s3s::Body> {
    let quoted = format!("\"{etag}\"");
    let location = format!("/{bucket}/{}", encode_path(key));
    let builder = http::Response::builder()
        .header(http::header::ETAG, &quoted)
        .header(http::header::LOCATION, &location);
    let redirect = fields
        .get("success_action_redirect")
        .or_else(|| fields.get("redirect"))
        .filter(|url| url.starts_with("http://") || url.starts_with("https://"));
    if let Some(url) = redirect {
        let query =
            serde_urlencoded::to_string([("bucket", bucket), ("key", key), ("etag", &quoted)])
                .unwrap_or_default();
        let separator = if url.contains('?') { '&' } else { '?' };
        return http::Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(http::header::ETAG, &quoted)
            .header(http::header::LOCATION, format!("{url}{separator}{query}"))
            .body(s3s::Body::empty())
            .expect("a valid response");
    }
    match fields.get("success_action_status").map(String::as_str) {
        Some("200") => builder
            .status(StatusCode::OK)
            .body(s3s::Body::empty())
            .expect("a valid response"),
        Some("201") => {
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
                xml_escape(&location),
                xml_escape(bucket),
                xml_escape(key),
                xml_escape(&quoted)
            );
            builder
                .status(StatusCode::CREATED)
                .header(http::header::CONTENT_TYPE, "application/xml")
                .body(s3s::Body::from(xml))
                .expect("a valid response")
        }
        _ => builder
            .status(StatusCode::NO_CONTENT)
            .body(s3s::Body::empty())
            .expect("a valid response"),
    }
}

fn encode_path(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The file stream, refused as soon as it passes `max` and at its end if
/// it is under `min`, so an upload outside the policy is never committed.
struct SizeLimited {
    inner: Pin<Box<dyn Stream<Item = S3Result<Bytes>> + Send>>,
    seen: u64,
    min: u64,
    max: u64,
}

impl Stream for SizeLimited {
    type Item = Result<Bytes, cairn_object::BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                self.seen += bytes.len() as u64;
                if self.seen > self.max {
                    let err = s3_error!(
                        EntityTooLarge,
                        "Your proposed upload exceeds the maximum allowed size of {} bytes",
                        self.max
                    );
                    return Poll::Ready(Some(Err(Box::new(err))));
                }
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(Box::new(err)))),
            Poll::Ready(None) if self.seen < self.min => {
                let err = s3_error!(
                    EntityTooSmall,
                    "Your proposed upload is smaller than the minimum allowed size of {} bytes",
                    self.min
                );
                Poll::Ready(Some(Err(Box::new(err))))
            }
            other => {
                other.map(|o| o.map(|r| r.map_err(|e| -> cairn_object::BodyError { Box::new(e) })))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            "multipart/form-data; boundary=----abc123".parse().unwrap(),
        );
        assert_eq!(form_boundary(&headers).as_deref(), Some("----abc123"));
        headers.insert(
            http::header::CONTENT_TYPE,
            "Multipart/Form-Data; charset=utf-8; boundary=\"q q\""
                .parse()
                .unwrap(),
        );
        assert_eq!(form_boundary(&headers).as_deref(), Some("q q"));
        headers.insert(
            http::header::CONTENT_TYPE,
            "application/xml".parse().unwrap(),
        );
        assert_eq!(form_boundary(&headers), None);
        headers.insert(
            http::header::CONTENT_TYPE,
            "multipart/form-data".parse().unwrap(),
        );
        assert_eq!(form_boundary(&headers), None);
    }

    fn reader(chunks: Vec<&'static [u8]>, boundary: &str) -> FormReader {
        let stream = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c))),
        );
        FormReader::new(Box::pin(stream), boundary)
    }

    #[tokio::test]
    async fn form_parts_split_anywhere() {
        let body: &[u8] = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nuploads/${filename}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"Policy\"\r\n\r\nabc\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--X world\r\n--XyZ--\r\n";
        // Every split point of the body into two chunks parses the same.
        for split in 0..body.len() {
            let (a, b) = body.split_at(split);
            let a: &'static [u8] = Box::leak(a.to_vec().into_boxed_slice());
            let b: &'static [u8] = Box::leak(b.to_vec().into_boxed_slice());
            let mut form = reader(vec![a, b], "XyZ");
            form.start().await.unwrap();
            let part = form.next_part().await.unwrap().unwrap();
            assert_eq!(part.name, "key");
            assert_eq!(form.field_value().await.unwrap(), "uploads/${filename}");
            let part = form.next_part().await.unwrap().unwrap();
            assert_eq!(part.name, "Policy");
            assert_eq!(form.field_value().await.unwrap(), "abc");
            let part = form.next_part().await.unwrap().unwrap();
            assert_eq!(part.name, "file");
            assert_eq!(part.filename.as_deref(), Some("a.txt"));
            assert_eq!(part.content_type.as_deref(), Some("text/plain"));
            let data: Vec<u8> = form
                .file_stream()
                .map(|c| c.unwrap().to_vec())
                .concat()
                .await;
            assert_eq!(data, b"hello\r\n--X world", "split at {split}");
        }
    }

    #[tokio::test]
    async fn truncated_forms_are_malformed() {
        let mut form = reader(
            vec![b"--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc"],
            "b",
        );
        form.start().await.unwrap();
        form.next_part().await.unwrap().unwrap();
        let items: Vec<S3Result<Bytes>> = form.file_stream().collect().await;
        assert!(items.last().unwrap().is_err());
        let mut form = reader(vec![b"no boundary here"], "b");
        assert!(form.start().await.is_err());
    }
}
