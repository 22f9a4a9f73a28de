//! The listener: one HTTP endpoint for S3 and the health checks, with a
//! bound on concurrent requests and a graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use cairn_net::InternodeServer;
use cairn_object::ObjectLayer;
use cairn_s3::{ResponseBody, S3Handler};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// An S3 request whose answer takes this long to begin is logged: more
/// than one drive deadline's worth of waiting is worth an operator's look.
const SLOW_ANSWER: Duration = Duration::from_secs(5);

/// What serves S3 once the node has started.
pub struct Serving {
    pub s3: S3Handler,
    pub layer: Arc<ObjectLayer>,
    /// This node's background workers.
    pub workers: Arc<cairn_object::worker::Workers>,
    /// This node, `host:port`.
    pub node: String,
    /// The other nodes of the cluster, for admin calls that ask them all.
    pub peers: Vec<Arc<cairn_net::Peer>>,
}

/// Everything a request needs.
pub struct App {
    /// Set once the drives are formatted and the object layer is built; a
    /// cluster node serves internode requests before that, so that its
    /// peers can read its drives' formats while everyone starts.
    pub serving: OnceLock<Serving>,
    pub internode: Option<Arc<InternodeServer>>,
    /// Bounds concurrent S3 requests, and with them memory: a permit lives
    /// until the response body is sent.
    pub limiter: Arc<Semaphore>,
    pub requests_max: usize,
    pub deadline: Duration,
    pub waiting: AtomicUsize,
    pub request_ids: AtomicU64,
    /// Who may call the admin API.
    pub root: cairn_s3::Credentials,
}

/// A response body that holds its request's concurrency permit.
struct PermitBody {
    inner: ResponseBody,
    _permit: Option<OwnedSemaphorePermit>,
}

impl http_body::Body for PermitBody {
    type Data = Bytes;
    type Error = <ResponseBody as http_body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl App {
    /// True when the request queue is not saturated.
    fn accepting(&self) -> bool {
        self.limiter.available_permits() > 0
            || self.waiting.load(Ordering::Relaxed) < self.requests_max
    }

    async fn route(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<PermitBody> {
        if let Some(internode) = &self.internode
            && InternodeServer::is_internode(req.uri().path())
        {
            // Not counted against the S3 request limit: a node whose S3
            // slots wait on its peers must still answer its peers.
            return internode.handle(req, peer).await.map(|body| PermitBody {
                inner: ResponseBody::from(body),
                _permit: None,
            });
        }
        let request_id = format!("{:016X}", self.request_ids.fetch_add(1, Ordering::Relaxed));
        let path = req.uri().path();
        let mut resp = if let Some(check) = path.strip_prefix("/minio/health/") {
            self.health(check, req.method()).map(|inner| PermitBody {
                inner,
                _permit: None,
            })
        } else if path.starts_with("/cairn/admin/") {
            // Not behind the S3 request limit: an operator must be able to
            // see what a saturated node is doing.
            crate::admin::handle(req, self.serving.get(), &self.root)
                .await
                .map(|inner| PermitBody {
                    inner,
                    _permit: None,
                })
        } else {
            let began = std::time::Instant::now();
            let (method, uri) = (req.method().clone(), req.uri().clone());
            let resp = self.s3(req).await;
            if began.elapsed() >= SLOW_ANSWER {
                tracing::warn!(
                    %method, path = uri.path(), status = resp.status().as_u16(), %request_id,
                    took = ?began.elapsed(), "slow request: its answer began late"
                );
            }
            resp
        };
        let headers = resp.headers_mut();
        headers.insert(
            http::header::SERVER,
            http::HeaderValue::from_static("Cairn"),
        );
        if let Ok(value) = http::HeaderValue::from_str(&request_id) {
            headers.insert("x-amz-request-id", value);
        }
        resp
    }

    async fn s3(&self, req: Request<Incoming>) -> Response<PermitBody> {
        let Some(serving) = self.serving.get() else {
            return cairn_s3::service_unavailable(
                "The server is starting: it is waiting for its drives and peer nodes.",
            )
            .map(|inner| PermitBody {
                inner,
                _permit: None,
            });
        };
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let permit =
            tokio::time::timeout(self.deadline, self.limiter.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        let Ok(Ok(permit)) = permit else {
            tracing::warn!(deadline = ?self.deadline, "request refused: too many requests in flight");
            return cairn_s3::service_unavailable("Please reduce your request rate.").map(
                |inner| PermitBody {
                    inner,
                    _permit: None,
                },
            );
        };
        serving.s3.handle(req).await.map(|inner| PermitBody {
            inner,
            _permit: Some(permit),
        })
    }

    fn health(&self, check: &str, method: &Method) -> Response<ResponseBody> {
        if method != Method::GET && method != Method::HEAD {
            return cairn_s3::text_response(StatusCode::METHOD_NOT_ALLOWED, "");
        }
        let Some(serving) = self.serving.get() else {
            let status = match check {
                "live" => StatusCode::OK,
                "ready" | "cluster" | "cluster/read" => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::NOT_FOUND,
            };
            return cairn_s3::text_response(status, "");
        };
        let sets = serving.layer.health();
        let ok = match check {
            // The process answers: it is alive.
            "live" => true,
            // Drives are formatted (the server got this far) and the request
            // queue is not saturated.
            "ready" => self.accepting(),
            "cluster" => sets.iter().all(|s| s.can_write()),
            "cluster/read" => sets.iter().all(|s| s.can_read()),
            _ => return cairn_s3::text_response(StatusCode::NOT_FOUND, ""),
        };
        let status = if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        cairn_s3::text_response(status, "")
    }
}

/// Serves until `shutdown` turns true, then lets in-flight requests finish
/// for up to `grace`.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // Internode traffic is HTTP/2 with wide windows for streamed shards.
    builder
        .http2()
        .initial_stream_window_size(cairn_net::STREAM_WINDOW)
        .initial_connection_window_size(cairn_net::CONNECTION_WINDOW)
        .max_frame_size(cairn_net::MAX_FRAME_SIZE)
        .max_concurrent_streams(4096);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let (stream, peer): (_, SocketAddr) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.route(req, peer).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(%peer, %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!(?grace, "shutdown grace period over; closing remaining connections"),
    }
}
