//! A small SigV4 client: the few S3 calls `cairn bench` makes, over one
//! kept-alive HTTP/1.1 connection per worker as an SDK would, and the
//! admin API calls of `cairn admin`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail};
use bytes::Bytes;
use cairn_s3::Credentials;
use cairn_s3::sigv4;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::bench::payload::{CHUNK, ChecksumAlgorithm, Generator, PayloadBody, digests};

type ReqBody = BoxBody<Bytes, std::convert::Infallible>;

/// How request bodies are signed and checked, as real clients do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PayloadMode {
    /// `x-amz-content-sha256` is the body's SHA-256 (the SDKs over http).
    Signed,
    /// `UNSIGNED-PAYLOAD` (the SDKs over https, s5cmd, rclone).
    Unsigned,
}

/// Where and as whom to send requests.
#[derive(Clone)]
pub struct Target {
    /// `host:port`.
    pub authority: String,
    pub credentials: Credentials,
    pub region: String,
    pub payload: PayloadMode,
    pub content_md5: bool,
    pub checksum: Option<ChecksumAlgorithm>,
    pub timeout: Duration,
}

/// Why one operation failed: the S3 error code, or what went wrong below it.
#[derive(Debug)]
pub struct OpError {
    pub code: String,
    pub message: String,
}

impl OpError {
    fn new(code: impl Into<String>, message: impl Into<String>) -> OpError {
        OpError {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

pub type OpResult<T> = std::result::Result<T, OpError>;

/// The value of `<tag>` in an XML document, if present.
pub fn xml_value<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    xml_values(xml, tag).next()
}

/// Every value of `<tag>` in `xml`, in order (one pass over the text).
fn xml_values<'a>(xml: &'a str, tag: &str) -> impl Iterator<Item = &'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest[start..].find(&close)?;
        let value = &rest[start..start + len];
        rest = &rest[start + len + close.len()..];
        Some(value)
    })
}

fn xml_unescape(text: &str) -> String {
    // Most keys have no entity: one copy instead of seven passes.
    if !text.contains('&') {
        return text.to_owned();
    }
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#xD;", "\r")
        .replace("&#13;", "\r")
        .replace("&amp;", "&")
}

/// Percent-encodes a key for a path (keeping `/`) or a query value.
pub fn uri_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The error an S3 answer carries: `<Code>` from its XML, or the status.
fn answer_error(status: StatusCode, body: &[u8]) -> OpError {
    let text = String::from_utf8_lossy(body);
    match xml_value(&text, "Code") {
        Some(code) => OpError::new(
            code,
            xml_value(&text, "Message").unwrap_or_default().to_owned(),
        ),
        None => {
            let code = match status {
                StatusCode::NOT_FOUND => "NotFound".to_owned(),
                StatusCode::FORBIDDEN => "Forbidden".to_owned(),
                other => format!("HTTP{}", other.as_u16()),
            };
            OpError::new(code, format!("{status} without an S3 error body"))
        }
    }
}

/// One worker's connection; reconnects after a failure.
pub struct Conn {
    target: std::sync::Arc<Target>,
    sender: Option<SendRequest<ReqBody>>,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
}

impl Answer {
    /// Reads the whole (small) body.
    pub async fn text(self) -> OpResult<String> {
        let bytes = self
            .body
            .collect()
            .await
            .map_err(|e| OpError::new("ConnectionError", e.to_string()))?
            .to_bytes();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Reads the body to its end frame by frame, keeping none of it; with
    /// `verify`, compares it with the bytes the generator gives the object.
    pub async fn drain(mut self, verify: Option<(&Generator, u64)>) -> OpResult<u64> {
        let mut received = 0u64;
        // The generator's chunk that byte `received` falls in, by index.
        let mut current: Option<(u64, Bytes)> = None;
        while let Some(frame) = self.body.frame().await {
            let frame = frame.map_err(|e| OpError::new("ConnectionError", e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let Some((generator, seed)) = verify else {
                received += data.len() as u64;
                continue;
            };
            let mut rest = &data[..];
            while !rest.is_empty() {
                let idx = received / CHUNK as u64;
                let at = (received % CHUNK as u64) as usize;
                if current.as_ref().is_none_or(|(i, _)| *i != idx) {
                    current = Some((idx, generator.chunk(seed, idx, CHUNK)));
                }
                let chunk = &current.as_ref().expect("chunk just made").1;
                let n = rest.len().min(CHUNK - at);
                if rest[..n] != chunk[at..at + n] {
                    return Err(OpError::new(
                        "BadContent",
                        format!("the body differs from what was written near byte {received}"),
                    ));
                }
                received += n as u64;
                rest = &rest[n..];
            }
        }
        Ok(received)
    }
}

impl Conn {
    pub fn new(target: std::sync::Arc<Target>) -> Conn {
        Conn {
            target,
            sender: None,
        }
    }

    async fn sender(&mut self) -> OpResult<&mut SendRequest<ReqBody>> {
        if let Some(sender) = &self.sender
            && !sender.is_closed()
        {
            return Ok(self.sender.as_mut().expect("sender"));
        }
        let stream = tokio::net::TcpStream::connect(&self.target.authority)
            .await
            .map_err(|e| {
                OpError::new(
                    "ConnectionError",
                    format!("cannot connect to {}: {e}", self.target.authority),
                )
            })?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| OpError::new("ConnectionError", e.to_string()))?;
        tokio::spawn(conn);
        Ok(self.sender.insert(sender))
    }

    /// Sends one request. `path` is already percent-encoded; `payload_hash`
    /// is what `x-amz-content-sha256` says.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        query: &str,
        extra: Vec<(String, String)>,
        payload_hash: &str,
        body: ReqBody,
    ) -> OpResult<Answer> {
        let target = self.target.clone();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        let amz_date = sigv4::format_amz_date(now);
        let mut headers = vec![
            ("host".to_owned(), target.authority.clone()),
            ("x-amz-content-sha256".to_owned(), payload_hash.to_owned()),
            ("x-amz-date".to_owned(), amz_date.clone()),
        ];
        headers.extend(extra);
        let request = sigv4::Request {
            method: method.as_str(),
            path,
            query,
            headers: headers.clone(),
            payload_hash,
        };
        let authorization = sigv4::sign(
            &request,
            &target.credentials,
            &amz_date,
            &target.region,
            "s3",
        );
        let uri = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (name, value) in &headers {
            builder = builder.header(name, value);
        }
        let req = builder
            .header("authorization", authorization)
            .body(body)
            .map_err(|e| OpError::new("BadRequest", e.to_string()))?;
        let sent = async {
            let sender = self.sender().await?;
            sender
                .ready()
                .await
                .map_err(|e| OpError::new("ConnectionError", e.to_string()))?;
            sender
                .send_request(req)
                .await
                .map_err(|e| OpError::new("ConnectionError", e.to_string()))
        };
        let resp = match tokio::time::timeout(target.timeout, sent).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(err)) => {
                self.sender = None;
                return Err(err);
            }
            Err(_) => {
                self.sender = None;
                return Err(OpError::new(
                    "Timeout",
                    format!("no answer within {:?}", target.timeout),
                ));
            }
        };
        let (parts, body) = resp.into_parts();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// Sends a request without a body; returns the status and the body
    /// as text, whatever the status (the admin API answers errors in JSON).
    pub async fn call_raw(
        &mut self,
        method: Method,
        path: &str,
        query: &str,
    ) -> OpResult<(StatusCode, String)> {
        let empty = sigv4::sha256_hex(b"");
        let answer = self
            .send(method, path, query, Vec::new(), &empty, empty_body())
            .await?;
        let status = answer.status;
        Ok((status, answer.text().await?))
    }

    /// Sends a request without a body and fails on an error answer.
    async fn call(&mut self, method: Method, path: &str, query: &str) -> OpResult<Answer> {
        let empty = sigv4::sha256_hex(b"");
        let answer = self
            .send(method, path, query, Vec::new(), &empty, empty_body())
            .await?;
        ok_or_error(answer).await
    }

    /// PUT of an object (or of a part, with `query`) whose bytes come from
    /// the generator; returns the ETag.
    pub async fn put(
        &mut self,
        generator: &Generator,
        path: &str,
        query: &str,
        seed: u64,
        size: u64,
    ) -> OpResult<String> {
        let target = self.target.clone();
        let signed = target.payload == PayloadMode::Signed;
        if signed && target.checksum.is_some() {
            return Err(OpError::new(
                "BadRequest",
                "trailing checksums are sent with unsigned payloads",
            ));
        }
        // Hashing 64 MiB takes a while: off the runtime, like an SDK's own thread.
        let (sha, md5) = if signed || target.content_md5 {
            let generator = generator.clone();
            let md5 = target.content_md5;
            tokio::task::spawn_blocking(move || digests(&generator, seed, size, signed, md5))
                .await
                .map_err(|e| OpError::new("ClientError", e.to_string()))?
        } else {
            (None, None)
        };
        let mut extra = Vec::new();
        if let Some(md5) = md5 {
            extra.push(("content-md5".to_owned(), md5));
        }
        let body = PayloadBody::new(generator.clone(), seed, size, target.checksum);
        let payload_hash = match (sha, target.checksum) {
            (Some(sha), _) => sha,
            (None, Some(alg)) => {
                extra.push(("content-encoding".to_owned(), "aws-chunked".to_owned()));
                extra.push(("x-amz-decoded-content-length".to_owned(), size.to_string()));
                extra.push(("x-amz-trailer".to_owned(), alg.header().to_owned()));
                extra.push((
                    "x-amz-sdk-checksum-algorithm".to_owned(),
                    alg.name().to_owned(),
                ));
                "STREAMING-UNSIGNED-PAYLOAD-TRAILER".to_owned()
            }
            (None, None) => "UNSIGNED-PAYLOAD".to_owned(),
        };
        extra.push(("content-length".to_owned(), body.wire_len().to_string()));
        let answer = self
            .send(Method::PUT, path, query, extra, &payload_hash, body.boxed())
            .await?;
        let answer = ok_or_error(answer).await?;
        let etag = answer
            .headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        answer.text().await?;
        Ok(etag)
    }

    /// GET of a whole object; returns the bytes received.
    pub async fn get(&mut self, path: &str, verify: Option<(&Generator, u64)>) -> OpResult<u64> {
        let answer = self.call(Method::GET, path, "").await?;
        let drained = answer.drain(verify).await;
        if drained.is_err() {
            // A body left half read leaves the connection unusable.
            self.sender = None;
        }
        drained
    }

    /// HEAD of an object; returns its size.
    pub async fn stat(&mut self, path: &str) -> OpResult<u64> {
        let answer = self.call(Method::HEAD, path, "").await?;
        let size = answer
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_default();
        answer.drain(None).await?;
        Ok(size)
    }

    pub async fn delete(&mut self, path: &str) -> OpResult<()> {
        let answer = self.call(Method::DELETE, path, "").await?;
        answer.drain(None).await?;
        Ok(())
    }

    /// One page of ListObjectsV2: the keys (and common prefixes) it listed
    /// and the token for the next page, if any.
    pub async fn list_page(
        &mut self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        max_keys: u32,
        token: Option<&str>,
    ) -> OpResult<(Vec<String>, Option<String>)> {
        let mut query = vec![
            ("list-type", "2".to_owned()),
            ("max-keys", max_keys.to_string()),
            ("prefix", prefix.to_owned()),
        ];
        if let Some(delimiter) = delimiter {
            query.push(("delimiter", delimiter.to_owned()));
        }
        if let Some(token) = token {
            query.push(("continuation-token", token.to_owned()));
        }
        query.sort();
        let query: Vec<String> = query
            .iter()
            .map(|(n, v)| format!("{n}={}", uri_encode(v, false)))
            .collect();
        let answer = self
            .call(Method::GET, &format!("/{bucket}"), &query.join("&"))
            .await?;
        let xml = answer.text().await?;
        // The load generator parses no more than it needs, so that its
        // own CPU stays small beside the server's.
        let mut keys: Vec<String> = xml_values(&xml, "Key").map(xml_unescape).collect();
        keys.extend(
            xml_values(&xml, "CommonPrefixes")
                .filter_map(|prefixes| xml_value(prefixes, "Prefix"))
                .map(xml_unescape),
        );
        let truncated = xml_value(&xml, "IsTruncated") == Some("true");
        let next = xml_value(&xml, "NextContinuationToken").map(xml_unescape);
        if truncated && next.is_none() {
            return Err(OpError::new(
                "BadAnswer",
                "a truncated listing without NextContinuationToken",
            ));
        }
        Ok((keys, next.filter(|_| truncated)))
    }

    /// Creates the bucket; false when it was already there (and ours).
    pub async fn make_bucket(&mut self, bucket: &str) -> OpResult<bool> {
        match self.call(Method::PUT, &format!("/{bucket}"), "").await {
            Ok(answer) => {
                answer.drain(None).await?;
                Ok(true)
            }
            Err(err) if err.code == "BucketAlreadyOwnedByYou" => Ok(false),
            Err(err) => Err(err),
        }
    }

    pub async fn delete_bucket(&mut self, bucket: &str) -> OpResult<()> {
        self.call(Method::DELETE, &format!("/{bucket}"), "")
            .await?
            .drain(None)
            .await?;
        Ok(())
    }

    /// A whole multipart upload: create, parts one after another, complete.
    pub async fn multipart(
        &mut self,
        generator: &Generator,
        path: &str,
        seeds: impl Iterator<Item = (u64, u64)>,
    ) -> OpResult<()> {
        let created = self
            .call(Method::POST, path, "uploads=")
            .await?
            .text()
            .await?;
        let upload_id = xml_value(&created, "UploadId")
            .map(xml_unescape)
            .ok_or_else(|| OpError::new("BadAnswer", "CreateMultipartUpload without UploadId"))?;
        let id = uri_encode(&upload_id, false);
        let mut completed = String::from("<CompleteMultipartUpload>");
        let mut result = Ok(());
        for (number, (seed, size)) in seeds.enumerate() {
            let number = number + 1;
            let query = format!("partNumber={number}&uploadId={id}");
            match self.put(generator, path, &query, seed, size).await {
                Ok(etag) => completed.push_str(&format!(
                    "<Part><PartNumber>{number}</PartNumber><ETag>{etag}</ETag></Part>"
                )),
                Err(err) => {
                    result = Err(err);
                    break;
                }
            }
        }
        if let Err(err) = result {
            let _ = self
                .call(Method::DELETE, path, &format!("uploadId={id}"))
                .await;
            return Err(err);
        }
        completed.push_str("</CompleteMultipartUpload>");
        let body = Bytes::from(completed);
        let hash = sigv4::sha256_hex(&body);
        let extra = vec![("content-length".to_owned(), body.len().to_string())];
        let answer = self
            .send(
                Method::POST,
                path,
                &format!("uploadId={id}"),
                extra,
                &hash,
                Full::new(body).boxed(),
            )
            .await?;
        let answer = ok_or_error(answer).await?;
        // CompleteMultipartUpload may fail with 200 and an error body.
        let text = answer.text().await?;
        if text.contains("<Error>") {
            return Err(answer_error(StatusCode::OK, text.as_bytes()));
        }
        Ok(())
    }
}

fn empty_body() -> ReqBody {
    Full::new(Bytes::new()).boxed()
}

/// The answer if it is a success, else its S3 error.
async fn ok_or_error(answer: Answer) -> OpResult<Answer> {
    if answer.status.is_success() {
        return Ok(answer);
    }
    let status = answer.status;
    let body = answer
        .body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Err(answer_error(status, &body))
}

/// `http://host[:port]` as `host:port`, refusing what is not loopback
/// unless `allow_remote`.
pub fn parse_endpoint(url: &str, allow_remote: bool) -> Result<String> {
    if url.starts_with("https://") {
        bail!("{url}: TLS is not supported by this cairn yet; use http://");
    }
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("{url}: the endpoint must look like http://host:port"))?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        bail!("{url}: the endpoint must look like http://host:port");
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !port.contains(']') => (
            host.to_owned(),
            port.parse::<u16>()
                .with_context(|| format!("{url}: bad port"))?,
        ),
        _ => (authority.to_owned(), 80),
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback && !allow_remote {
        bail!(
            "{url} is not a loopback address; cairn bench loads a server hard, so pass --allow-remote to run it against another machine"
        );
    }
    Ok(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_other_than_loopback_need_allow_remote() {
        assert_eq!(
            parse_endpoint("http://127.0.0.1:9000", false).unwrap(),
            "127.0.0.1:9000"
        );
        assert_eq!(
            parse_endpoint("http://127.3.4.5:9000/", false).unwrap(),
            "127.3.4.5:9000"
        );
        assert_eq!(
            parse_endpoint("http://localhost", false).unwrap(),
            "localhost:80"
        );
        assert_eq!(
            parse_endpoint("http://[::1]:9000", false).unwrap(),
            "[::1]:9000"
        );
        for remote in [
            "http://10.0.0.1:9000",
            "http://s3.example.com",
            "http://[2001:db8::1]:9000",
        ] {
            let err = parse_endpoint(remote, false).unwrap_err().to_string();
            assert!(err.contains("--allow-remote"), "{remote}: {err}");
            parse_endpoint(remote, true).unwrap();
        }
        assert_eq!(parse_endpoint("http://minio", true).unwrap(), "minio:80");
        assert!(parse_endpoint("https://127.0.0.1:9000", false).is_err());
        assert!(parse_endpoint("http://a:1/path", true).is_err());
        assert!(parse_endpoint("127.0.0.1:9000", false).is_err());
        assert!(parse_endpoint("http://127.0.0.1:99999", false).is_err());
    }

    #[test]
    fn error_answers_name_their_code() {
        let err = answer_error(
            StatusCode::NOT_FOUND,
            b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>gone</Message></Error>",
        );
        assert_eq!(
            (err.code.as_str(), err.message.as_str()),
            ("NoSuchKey", "gone")
        );
        assert_eq!(answer_error(StatusCode::NOT_FOUND, b"").code, "NotFound");
        assert_eq!(answer_error(StatusCode::BAD_GATEWAY, b"").code, "HTTP502");
    }

    #[test]
    fn listing_values_are_found_in_order_and_unescaped() {
        let xml = "<ListBucketResult><Prefix>p</Prefix><Contents><Key>a&amp;b</Key></Contents>\
                   <Contents><Key>c</Key></Contents><CommonPrefixes><Prefix>d/&lt;</Prefix>\
                   </CommonPrefixes><CommonPrefixes><Prefix>e/</Prefix></CommonPrefixes>\
                   </ListBucketResult>";
        let keys: Vec<String> = xml_values(xml, "Key").map(xml_unescape).collect();
        assert_eq!(keys, ["a&b", "c"]);
        let prefixes: Vec<String> = xml_values(xml, "CommonPrefixes")
            .filter_map(|p| xml_value(p, "Prefix"))
            .map(xml_unescape)
            .collect();
        assert_eq!(prefixes, ["d/<", "e/"]);
        assert_eq!(xml_values("<Key>unclosed", "Key").count(), 0);
    }
}
