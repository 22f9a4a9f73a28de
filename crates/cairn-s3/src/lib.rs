//! Cairn's S3 API: the only crate that speaks S3 or imports `s3s`.
//!
//! [`S3Handler`] turns HTTP requests into calls on `cairn_object::ObjectLayer`
//! through the `s3s` protocol crate: s3s parses requests, checks SigV4
//! signatures (header, presigned, streaming chunked, unsigned with trailers)
//! and serializes responses; [`CairnS3`] implements the operations, one
//! file per area (`bucket.rs`, `object.rs`, `list.rs`), and `error.rs` maps
//! every object-layer error to its S3 code in one place.
//!
//! s3s is pre-1.0 and breaks at every minor release, so nothing outside this
//! crate may name its types: the server sees [`S3Handler`] and [`ResponseBody`].

mod auth;
mod bucket;
mod checksum;
mod error;
mod list;
mod object;
mod range;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use cairn_object::ObjectLayer;
use s3s::dto::*;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3, S3Request, S3Response, S3Result};

pub use auth::Credentials;

/// The body type of every response this crate produces.
pub type ResponseBody = s3s::Body;

/// Settings of the S3 API.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// The region this server answers for (`CAIRN_REGION`, default `us-east-1`).
    pub region: String,
    /// The root credentials; the only identity until IAM arrives.
    pub root: Credentials,
}

/// The S3 operations over one object layer.
pub struct CairnS3 {
    layer: Arc<ObjectLayer>,
    region: String,
}

fn owner() -> Owner {
    Owner {
        display_name: Some("cairn".to_owned()),
        id: Some("cairn-root".to_owned()),
    }
}

#[async_trait::async_trait]
impl S3 for CairnS3 {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.do_create_bucket(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.do_head_bucket(req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.do_delete_bucket(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.do_list_buckets(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.do_get_bucket_location(req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.do_put_object(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.do_get_object(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.do_head_object(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.do_delete_object(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.do_list_objects(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.do_list_objects_v2(req).await
    }
}

/// Serves S3 requests: checks what s3s leaves unchecked, then hands over.
#[derive(Clone)]
pub struct S3Handler {
    service: S3Service,
}

impl S3Handler {
    pub fn new(layer: Arc<ObjectLayer>, settings: &S3Settings) -> S3Handler {
        let s3 = || CairnS3 {
            layer: layer.clone(),
            region: settings.region.clone(),
        };
        let mut builder = S3ServiceBuilder::new(s3());
        builder.set_auth(auth::RootAuth::new(settings.root.clone()));
        builder.set_route(range::IgnoreUnusableRange {
            trusted: S3ServiceBuilder::new(s3()).build(),
        });
        S3Handler {
            service: builder.build(),
        }
    }

    pub async fn handle(
        &self,
        req: http::Request<hyper::body::Incoming>,
    ) -> http::Response<ResponseBody> {
        if let Some(err) = auth::precheck(req.headers(), req.uri().query()) {
            return error_response(err);
        }
        let (req, body_read) = track_body(req);
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
            resp.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        resp
    }
}

/// A request body that records whether it was read to its end.
struct TrackedBody {
    inner: hyper::body::Incoming,
    read: Arc<AtomicBool>,
}

impl http_body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        // Decoders that know where the body ends (aws-chunked) may stop
        // polling after the last frame, so the end is noticed there too.
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            _ => false,
        };
        if ended {
            self.read.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn track_body(
    req: http::Request<hyper::body::Incoming>,
) -> (http::Request<s3s::Body>, Arc<AtomicBool>) {
    use http_body::Body as _;
    let read = Arc::new(AtomicBool::new(req.body().is_end_stream()));
    let tracked = read.clone();
    let req = req.map(|inner| {
        s3s::Body::http_body(TrackedBody {
            inner,
            read: tracked,
        })
    });
    (req, read)
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
