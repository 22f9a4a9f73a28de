//! Cairn's S3 API: the only crate that speaks S3 or imports `s3s`.
//!
//! [`S3Handler`] turns HTTP requests into calls on `cairn_object::ObjectLayer`
//! through the `s3s` protocol crate: s3s parses requests, checks SigV4
//! signatures (header, presigned, streaming chunked, unsigned with trailers)
//! and serializes responses; [`CairnS3`] implements the operations, one
//! file per S3 feature, as Garage's `src/api/s3/` does:
//!
//! * `bucket.rs`: create, head, delete, list, location, and the reads of
//!   configurations Cairn does not offer (versioning, policy, tagging, ...);
//! * `cors.rs`: bucket CORS, its configuration and its enforcement;
//! * `put.rs`, `get.rs` (Get, Head, GetObjectAttributes), `delete.rs`
//!   (DeleteObject, DeleteObjects), `copy.rs` (CopyObject, UploadPartCopy);
//! * `tagging.rs` (object tags), `acl.rs` (object and bucket ACLs);
//! * `multipart.rs` (the other multipart operations), `list.rs` (listings);
//! * `post.rs`: browser uploads (POST forms), which s3s does not parse.
//!
//! Operation files import shared helpers, not each other: `meta.rs`
//! (stored headers, tags, conditions, version ids), `ownership.rs` (the one
//! owner and its ACL check), `upload.rs` (upload ids, part numbers),
//! `checksum.rs`, and `error.rs`, which maps every object-layer error to its
//! S3 code in one place. (One exception remains: ListMultipartUploads
//! borrows `list.rs`'s `encoding-type=url` helpers.)
//!
//! s3s is pre-1.0 and breaks at every minor release, so nothing outside this
//! crate may name its types: the server sees [`S3Handler`] and [`ResponseBody`].

// The operations, one file per S3 feature.
mod acl;
mod bucket;
mod copy;
mod cors;
mod delete;
mod get;
mod list;
mod multipart;
mod post;
mod put;
mod tagging;

// What the operations share, below them: they import these rather than each other.
mod checksum;
mod error;
mod meta;
mod ownership;
mod upload;

// Around the operations: authentication, addressing, routes s3s does not have.
mod auth;
mod host;
mod limits;
mod list_route;
mod range;
pub mod sigv4;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use cairn_object::ObjectLayer;
use s3s::dto::*;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3, S3Request, S3Response, S3Result};

pub use auth::Credentials;
pub use error::complete_error;

/// The body type of every response this crate produces.
pub type ResponseBody = s3s::Body;

/// Settings of the S3 API.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// The region this server answers for (`CAIRN_REGION`, default `us-east-1`).
    pub region: String,
    /// The root credentials; the only identity until IAM arrives.
    pub root: Credentials,
    /// Domains for virtual-host-style requests (`CAIRN_DOMAIN`, comma
    /// separated): `bucket.<domain>` addresses a bucket. Path style always works.
    pub domains: Vec<String>,
    /// Largest browser (POST) upload, in bytes, whatever its policy allows.
    pub post_max_bytes: u64,
    /// How long a request body may send nothing before the request fails
    /// with `RequestTimeout` (`CAIRN_BODY_TIMEOUT`).
    pub body_timeout: Duration,
}

/// The S3 operations over one object layer.
pub struct CairnS3 {
    layer: Arc<ObjectLayer>,
    region: String,
    cors: Arc<cors::CorsRules>,
}

impl CairnS3 {
    /// Fails as S3 does (`NoSuchBucket`) unless the bucket exists: the
    /// configuration reads answer for existing buckets only.
    async fn existing_bucket(&self, bucket: &str) -> S3Result<()> {
        self.layer
            .bucket_info(bucket)
            .await
            .map_err(error::s3_err)
            .map(|_| ())
    }
}

/// Delegates each supported operation to its `do_*` implementation; every
/// other operation keeps s3s's default answer, `501 NotImplemented`.
macro_rules! operations {
    ($($op:ident => $imp:ident: $input:ident => $output:ident),* $(,)?) => {
        #[async_trait::async_trait]
        impl S3 for CairnS3 {
            $(
                async fn $op(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    self.$imp(req).await
                }
            )*
        }
    };
}

operations! {
    create_bucket => do_create_bucket: CreateBucketInput => CreateBucketOutput,
    head_bucket => do_head_bucket: HeadBucketInput => HeadBucketOutput,
    delete_bucket => do_delete_bucket: DeleteBucketInput => DeleteBucketOutput,
    list_buckets => do_list_buckets: ListBucketsInput => ListBucketsOutput,
    get_bucket_location => do_get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput,
    get_bucket_versioning => do_get_bucket_versioning: GetBucketVersioningInput => GetBucketVersioningOutput,
    get_bucket_acl => do_get_bucket_acl: GetBucketAclInput => GetBucketAclOutput,
    put_bucket_acl => do_put_bucket_acl: PutBucketAclInput => PutBucketAclOutput,
    get_bucket_policy_status => do_get_bucket_policy_status: GetBucketPolicyStatusInput => GetBucketPolicyStatusOutput,
    get_bucket_policy => do_get_bucket_policy: GetBucketPolicyInput => GetBucketPolicyOutput,
    get_bucket_tagging => do_get_bucket_tagging: GetBucketTaggingInput => GetBucketTaggingOutput,
    get_bucket_encryption => do_get_bucket_encryption: GetBucketEncryptionInput => GetBucketEncryptionOutput,
    get_bucket_lifecycle_configuration => do_get_bucket_lifecycle_configuration: GetBucketLifecycleConfigurationInput => GetBucketLifecycleConfigurationOutput,
    get_object_lock_configuration => do_get_object_lock_configuration: GetObjectLockConfigurationInput => GetObjectLockConfigurationOutput,
    get_bucket_website => do_get_bucket_website: GetBucketWebsiteInput => GetBucketWebsiteOutput,
    get_bucket_request_payment => do_get_bucket_request_payment: GetBucketRequestPaymentInput => GetBucketRequestPaymentOutput,
    get_bucket_ownership_controls => do_get_bucket_ownership_controls: GetBucketOwnershipControlsInput => GetBucketOwnershipControlsOutput,
    get_public_access_block => do_get_public_access_block: GetPublicAccessBlockInput => GetPublicAccessBlockOutput,
    put_bucket_cors => do_put_bucket_cors: PutBucketCorsInput => PutBucketCorsOutput,
    get_bucket_cors => do_get_bucket_cors: GetBucketCorsInput => GetBucketCorsOutput,
    delete_bucket_cors => do_delete_bucket_cors: DeleteBucketCorsInput => DeleteBucketCorsOutput,
    put_object => do_put_object: PutObjectInput => PutObjectOutput,
    get_object => do_get_object: GetObjectInput => GetObjectOutput,
    head_object => do_head_object: HeadObjectInput => HeadObjectOutput,
    delete_object => do_delete_object: DeleteObjectInput => DeleteObjectOutput,
    delete_objects => do_delete_objects: DeleteObjectsInput => DeleteObjectsOutput,
    copy_object => do_copy_object: CopyObjectInput => CopyObjectOutput,
    get_object_attributes => do_get_object_attributes: GetObjectAttributesInput => GetObjectAttributesOutput,
    get_object_tagging => do_get_object_tagging: GetObjectTaggingInput => GetObjectTaggingOutput,
    put_object_tagging => do_put_object_tagging: PutObjectTaggingInput => PutObjectTaggingOutput,
    delete_object_tagging => do_delete_object_tagging: DeleteObjectTaggingInput => DeleteObjectTaggingOutput,
    get_object_acl => do_get_object_acl: GetObjectAclInput => GetObjectAclOutput,
    put_object_acl => do_put_object_acl: PutObjectAclInput => PutObjectAclOutput,
    list_objects => do_list_objects: ListObjectsInput => ListObjectsOutput,
    list_objects_v2 => do_list_objects_v2: ListObjectsV2Input => ListObjectsV2Output,
    list_object_versions => do_list_object_versions: ListObjectVersionsInput => ListObjectVersionsOutput,
    create_multipart_upload => do_create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput,
    upload_part => do_upload_part: UploadPartInput => UploadPartOutput,
    upload_part_copy => do_upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput,
    complete_multipart_upload => do_complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput,
    abort_multipart_upload => do_abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput,
    list_parts => do_list_parts: ListPartsInput => ListPartsOutput,
    list_multipart_uploads => do_list_multipart_uploads: ListMultipartUploadsInput => ListMultipartUploadsOutput,
}

/// The custom routes, which s3s checks once a request is authenticated.
struct Routes {
    range: range::IgnoreUnusableRange,
    list: list_route::ListV2Route,
}

/// Marks a request [`Routes`] gave to the listing route.
#[derive(Clone, Copy)]
struct ListRoute;

#[async_trait::async_trait]
impl s3s::route::S3Route for Routes {
    fn is_match(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        extensions: &mut http::Extensions,
    ) -> bool {
        if self.list.is_match(method, uri, headers, extensions) {
            extensions.insert(ListRoute);
            return true;
        }
        self.range.is_match(method, uri, headers, extensions)
    }

    async fn call(
        &self,
        req: s3s::S3Request<s3s::Body>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::Body>> {
        if req.extensions.get::<ListRoute>().is_some() {
            self.list.call(req).await
        } else {
            self.range.call(req).await
        }
    }
}

/// Serves S3 requests: checks what s3s leaves unchecked, answers CORS
/// preflights, then hands over.
#[derive(Clone)]
pub struct S3Handler {
    service: S3Service,
    cors: Arc<cors::CorsRules>,
    hosts: host::VirtualHosts,
    post: Arc<post::PostUploads>,
    gate: Arc<auth::Gate>,
    body_timeout: Duration,
}

impl S3Handler {
    pub fn new(layer: Arc<ObjectLayer>, settings: &S3Settings) -> Result<S3Handler, String> {
        let cors = Arc::new(cors::CorsRules::new(layer.clone()));
        let s3 = || CairnS3 {
            layer: layer.clone(),
            region: settings.region.clone(),
            cors: cors.clone(),
        };
        let hosts = host::VirtualHosts::new(&settings.domains)?;
        let host = || -> Result<Option<host::VirtualHosts>, String> {
            Ok((!settings.domains.is_empty()).then(|| hosts.clone()))
        };
        let mut config = s3s::config::S3Config::default();
        config.post_object_max_file_size = settings.post_max_bytes;
        config.xml_max_body_size = limits::XML_MAX;
        let config: Arc<dyn s3s::config::S3ConfigProvider> =
            Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(config)));
        let mut trusted = S3ServiceBuilder::new(s3());
        trusted.set_config(config.clone());
        if let Some(host) = host()? {
            trusted.set_host(host);
        }
        let mut builder = S3ServiceBuilder::new(s3());
        builder.set_config(config);
        if let Some(host) = host()? {
            builder.set_host(host);
        }
        builder.set_auth(auth::RootAuth::new(settings.root.clone()));
        builder.set_route(Routes {
            range: range::IgnoreUnusableRange {
                trusted: trusted.build(),
            },
            list: list_route::ListV2Route {
                s3: s3(),
                hosts: host()?,
            },
        });
        Ok(S3Handler {
            service: builder.build(),
            cors,
            hosts,
            post: Arc::new(post::PostUploads {
                layer,
                root: settings.root.clone(),
                max_bytes: settings.post_max_bytes,
                region: settings.region.clone(),
            }),
            gate: Arc::new(auth::Gate {
                region: settings.region.clone(),
            }),
            body_timeout: settings.body_timeout,
        })
    }

    /// The bucket a request addresses and the rest of its path (the key,
    /// or empty).
    fn addressed(&self, req: &http::Request<hyper::body::Incoming>) -> Option<(String, String)> {
        if let Some(host) = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            && let Some(bucket) = self.hosts.bucket(host)
        {
            let rest = req.uri().path().trim_start_matches('/');
            return Some((bucket.into_owned(), rest.to_owned()));
        }
        let path = req.uri().path().trim_start_matches('/');
        let (bucket, rest) = path.split_once('/').unwrap_or((path, ""));
        (!bucket.is_empty()).then(|| (bucket.to_owned(), rest.to_owned()))
    }

    pub async fn handle(
        &self,
        req: http::Request<hyper::body::Incoming>,
    ) -> http::Response<ResponseBody> {
        let addressed = self.addressed(&req);
        let bucket = addressed.as_ref().map(|(bucket, _)| bucket.clone());
        if req.method() == http::Method::OPTIONS {
            return self.cors.preflight(bucket.as_deref(), req.headers()).await;
        }
        // Authorization data and S3's limits, before any body is read.
        let key = addressed.as_ref().map(|(_, key)| key.as_str());
        let (headers, query) = (req.headers(), req.uri().query());
        if let Some(refusal) = self
            .gate
            .check(headers, query, std::time::SystemTime::now())
            .or_else(|| limits::check(req.method(), headers, query, key))
        {
            tracing::debug!(?refusal, "request refused before it was read");
            let mut resp = refusal.into_response();
            close_connection(&mut resp);
            return resp;
        }
        // Browser uploads: POST to a bucket with a form and no query.
        if req.method() == http::Method::POST
            && req.uri().query().is_none_or(str::is_empty)
            && let Some(boundary) = post::form_boundary(req.headers())
            && let Some((bucket, rest)) = addressed
            && rest.is_empty()
        {
            let origin = req
                .headers()
                .get(http::header::ORIGIN)
                .and_then(|o| o.to_str().ok())
                .map(str::to_owned);
            let (req, _) = tracked(req, self.body_timeout);
            let mut resp = match self.post.upload(req.into_body(), &boundary, &bucket).await {
                Ok(resp) => resp,
                Err(err) => {
                    let mut resp = error_response(err);
                    // The rest of the form may not have been read.
                    close_connection(&mut resp);
                    resp
                }
            };
            if let Some(origin) = origin {
                self.cors
                    .decorate(&bucket, &origin, &http::Method::POST, resp.headers_mut())
                    .await;
            }
            return resp;
        }
        let origin = req
            .headers()
            .get(http::header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .map(str::to_owned);
        let method = req.method().clone();
        let attributes = method == http::Method::GET
            && req.uri().query().is_some_and(|q| {
                q.split('&')
                    .any(|p| p == "attributes" || p.starts_with("attributes="))
            });
        let (req, body_read) = track_body(req, self.body_timeout);
        let mut resp = match self.service.call(req).await {
            Ok(resp) => resp,
            Err(err) => {
                tracing::error!(?err, "s3 service failed");
                let mut resp = http::Response::new(ResponseBody::empty());
                *resp.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                resp
            }
        };
        // Answered before the body was read (an error, usually): the rest of
        // the body may still arrive, or never (`Expect: 100-continue`), so
        // the connection cannot carry another request.
        if !body_read.load(Ordering::Acquire) {
            close_connection(&mut resp);
        }
        if attributes && resp.status() == http::StatusCode::OK {
            unquote_attribute_etag(&mut resp).await;
        }
        // A 304 has no body.
        if resp.status() == http::StatusCode::NOT_MODIFIED {
            *resp.body_mut() = ResponseBody::empty();
            resp.headers_mut().remove(http::header::CONTENT_TYPE);
            resp.headers_mut().remove(http::header::CONTENT_LENGTH);
        }
        if let (Some(origin), Some(bucket)) = (origin, bucket) {
            self.cors
                .decorate(&bucket, &origin, &method, resp.headers_mut())
                .await;
        }
        resp
    }
}

/// GetObjectAttributes is the one answer where S3 writes the ETag without
/// quotes (s3s always quotes it). The body is a few hundred bytes of XML.
async fn unquote_attribute_etag(resp: &mut http::Response<ResponseBody>) {
    const LIMIT: usize = 1 << 20;
    let Ok(xml) = resp.body_mut().store_all_limited(LIMIT).await else {
        *resp.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        *resp.body_mut() = ResponseBody::empty();
        return;
    };
    let text = String::from_utf8_lossy(&xml);
    let fixed = match (text.find("<ETag>\""), text.find("\"</ETag>")) {
        (Some(start), Some(end)) if start + 7 <= end => format!(
            "{}<ETag>{}</ETag>{}",
            &text[..start],
            &text[start + 7..end],
            &text[end + 8..]
        ),
        _ => text.into_owned(),
    };
    resp.headers_mut().insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(fixed.len()),
    );
    *resp.body_mut() = ResponseBody::from(fixed);
}

/// A request body that records whether it was read to its end, and fails
/// with `RequestTimeout` when the client sends nothing for `idle`: a
/// stalled upload must not hold its request slot and buffers for ever.
struct TrackedBody {
    inner: hyper::body::Incoming,
    read: Arc<AtomicBool>,
    idle: Duration,
    /// When data last arrived (or the body was first polled).
    last_data: Option<tokio::time::Instant>,
    /// Armed while the body waits for data; it may fire early after data
    /// arrived in between, and is then moved to `last_data + idle`.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl http_body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let now = tokio::time::Instant::now();
        let last = *this.last_data.get_or_insert(now);
        match polled {
            Poll::Pending => {
                let deadline = last + this.idle;
                if deadline <= now {
                    return Poll::Ready(Some(Err(Box::new(limits::BodyTimedOut(this.idle)))));
                }
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(Box::new(limits::BodyTimedOut(this.idle)))));
                }
                Poll::Pending
            }
            Poll::Ready(polled) => {
                this.last_data = Some(now);
                // Decoders that know where the body ends (aws-chunked) may
                // stop polling after the last frame, so the end is noticed
                // there too.
                let ended = match &polled {
                    None => true,
                    Some(Ok(_)) => this.inner.is_end_stream(),
                    Some(Err(_)) => false,
                };
                if ended {
                    this.read.store(true, Ordering::Release);
                }
                Poll::Ready(polled.map(|frame| frame.map_err(Into::into)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn tracked(
    req: http::Request<hyper::body::Incoming>,
    idle: Duration,
) -> (http::Request<TrackedBody>, Arc<AtomicBool>) {
    use http_body::Body as _;
    let read = Arc::new(AtomicBool::new(req.body().is_end_stream()));
    let flag = read.clone();
    let req = req.map(|inner| TrackedBody {
        inner,
        read: flag,
        idle,
        last_data: None,
        timer: None,
    });
    (req, read)
}

fn track_body(
    req: http::Request<hyper::body::Incoming>,
    idle: Duration,
) -> (http::Request<s3s::Body>, Arc<AtomicBool>) {
    let (req, read) = tracked(req, idle);
    (req.map(s3s::Body::http_body), read)
}

/// Asks the client to close the connection: the request's body was not read.
fn close_connection(resp: &mut http::Response<ResponseBody>) {
    resp.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
}

/// An S3 XML error response, for errors found before s3s sees the request.
fn error_response(err: s3s::S3Error) -> http::Response<ResponseBody> {
    match err.to_http_response() {
        Ok(resp) => resp,
        Err(_) => {
            let mut resp = http::Response::new(ResponseBody::empty());
            *resp.status_mut() = http::StatusCode::BAD_REQUEST;
            resp
        }
    }
}

/// A plain-text response for the non-S3 endpoints the server adds (health).
pub fn text_response(status: http::StatusCode, text: &str) -> http::Response<ResponseBody> {
    let mut resp = http::Response::new(ResponseBody::from(text.to_owned()));
    *resp.status_mut() = status;
    resp
}

/// An S3-style XML error for the server's own refusals (overload, shutdown).
pub fn service_unavailable(message: &str) -> http::Response<ResponseBody> {
    let mut err = s3s::S3Error::with_message(s3s::S3ErrorCode::SlowDown, message.to_owned());
    err.set_status_code(http::StatusCode::SERVICE_UNAVAILABLE);
    error_response(err)
}
