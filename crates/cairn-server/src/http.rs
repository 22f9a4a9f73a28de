//! The listener: one HTTP endpoint for S3 and the health checks, with a
//! bound on concurrent requests and a graceful shutdown.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use cairn_net::InternodeServer;
use cairn_object::ObjectLayer;
use cairn_s3::{ResponseBody, S3Handler};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
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
    /// The endpoints of this node's own drives.
    pub local_drives: std::collections::HashSet<String>,
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
    pub deadline: Duration,
    pub request_ids: AtomicU64,
    /// Who may call the admin API.
    pub root: cairn_s3::Credentials,
    /// The client connections open now.
    pub connections: Arc<Connections>,
}

/// Counts client connections and admits new ones up to a cap, shared
/// fairly between client addresses: past the cap, an address that holds
/// less than its share still gets in (up to an eighth more), so one client
/// opening thousands of connections cannot lock the others out.
pub struct Connections {
    max: usize,
    state: Mutex<ConnectionCounts>,
}

#[derive(Default)]
struct ConnectionCounts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it gives its place back.
pub struct Admitted {
    connections: Arc<Connections>,
    address: IpAddr,
}

impl Connections {
    pub fn new(max: usize) -> Arc<Connections> {
        Arc::new(Connections {
            max,
            state: Mutex::new(ConnectionCounts::default()),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.state.lock().unwrap().total
    }

    /// Admits a connection from `address`, or `None` to close it.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Option<Admitted> {
        let mut state = self.state.lock().unwrap();
        let held = state.by_address.get(&address).copied().unwrap_or(0);
        if state.total >= self.max {
            let addresses = state.by_address.len() + usize::from(held == 0);
            let share = self.max / addresses.max(1);
            if held >= share || state.total >= self.max + self.max / 8 {
                return None;
            }
        }
        state.total += 1;
        *state.by_address.entry(address).or_default() += 1;
        Some(Admitted {
            connections: self.clone(),
            address,
        })
    }

    /// True when the cap is reached: new clients may be turned away.
    fn saturated(&self) -> bool {
        self.open() >= self.max
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut state = self.connections.state.lock().unwrap();
        state.total -= 1;
        if let Some(held) = state.by_address.get_mut(&self.address) {
            *held -= 1;
            if *held == 0 {
                state.by_address.remove(&self.address);
            }
        }
    }
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
    /// True when a new request would start at once and a new client could
    /// connect: no request slot is free (stalled or slow requests hold them
    /// all) or the connection cap is reached means saturated.
    fn accepting(&self) -> bool {
        self.limiter.available_permits() > 0 && !self.connections.saturated()
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
            let maintenance = req
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|p| p == "maintenance=true"));
            self.health(check, req.method(), maintenance)
                .map(|inner| PermitBody {
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
            let resp = self.s3(req, &request_id).await;
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

    async fn s3(&self, req: Request<Incoming>, request_id: &str) -> Response<PermitBody> {
        let path = req.uri().path().to_owned();
        let (mut resp, permit) = self.s3_answer(req).await;
        cairn_s3::complete_error(&mut resp, &path, request_id);
        resp.map(|inner| PermitBody {
            inner,
            _permit: permit,
        })
    }

    /// The S3 answer, and the request slot its body holds while it is sent.
    async fn s3_answer(
        &self,
        req: Request<Incoming>,
    ) -> (Response<ResponseBody>, Option<OwnedSemaphorePermit>) {
        let Some(serving) = self.serving.get() else {
            let resp = cairn_s3::service_unavailable(
                "The server is starting: it is waiting for its drives and peer nodes.",
            );
            return (resp, None);
        };
        let permit =
            tokio::time::timeout(self.deadline, self.limiter.clone().acquire_owned()).await;
        let Ok(Ok(permit)) = permit else {
            tracing::warn!(deadline = ?self.deadline, "request refused: too many requests in flight");
            return (
                cairn_s3::service_unavailable("Please reduce your request rate."),
                None,
            );
        };
        (serving.s3.handle(req).await, Some(permit))
    }

    /// The health checks of MinIO's API. `maintenance` (on `cluster`): could
    /// this node be taken down now and every set still take writes? 412 if
    /// not, as MinIO answers, so rolling restarts can wait for it.
    fn health(&self, check: &str, method: &Method, maintenance: bool) -> Response<ResponseBody> {
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
            "cluster" if maintenance => {
                let without_this_node = |s: &cairn_object::SetHealth| {
                    let here = s
                        .endpoints
                        .iter()
                        .filter(|(endpoint, online)| {
                            *online && serving.local_drives.contains(endpoint)
                        })
                        .count();
                    s.online - here
                };
                if !sets.iter().all(|s| without_this_node(s) >= s.write_quorum) {
                    return cairn_s3::text_response(StatusCode::PRECONDITION_FAILED, "");
                }
                true
            }
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

/// How the listener treats connections.
#[derive(Debug, Clone, Copy)]
pub struct ListenSettings {
    /// How long in-flight requests may finish after shutdown begins.
    pub grace: Duration,
    /// How long an HTTP/1 connection may wait for a complete request head.
    pub idle_timeout: Duration,
}

/// The most headers a request may have: S3 limits their total size (8 KB,
/// checked per request), not their number.
const MAX_HEADERS: usize = 512;

/// Serves until `shutdown` turns true, then lets in-flight requests finish
/// for up to `settings.grace`.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    settings: ListenSettings,
) {
    let grace = settings.grace;
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // A client that opens a connection and sends no complete request head,
    // first or next, is cut off: slow headers and idle keep-alive alike.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.idle_timeout)
        .max_headers(MAX_HEADERS);
    // Internode traffic is HTTP/2 with wide windows for streamed shards.
    builder
        .http2()
        .initial_stream_window_size(cairn_net::STREAM_WINDOW)
        .initial_connection_window_size(cairn_net::CONNECTION_WINDOW)
        .max_frame_size(cairn_net::MAX_FRAME_SIZE)
        .max_concurrent_streams(4096);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut accept_errors = AcceptBackoff::default();
    let mut refused = RateLimitedWarning::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let (stream, peer): (_, SocketAddr) = match accepted {
            Ok(accepted) => {
                accept_errors.reset();
                accepted
            }
            Err(err) => {
                // Out of file descriptors, usually: wait for some to close
                // rather than spin, and say so once in a while, not at
                // every attempt.
                let pause = accept_errors.failed(&err);
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => break,
                }
                continue;
            }
        };
        let Some(admitted) = app.connections.admit(peer.ip()) else {
            refused.warn(|count| {
                tracing::warn!(
                    %peer, refused = count, max = app.connections.max(),
                    "connection refused: the connection cap is reached and this client holds its share (CAIRN_MAX_CONNECTIONS)"
                );
            });
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.route(req, peer).await) }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let idle_timeout = settings.idle_timeout;
        tokio::spawn(async move {
            let _admitted = admitted;
            // The protocol is told by the first bytes, and hyper's header
            // timeout starts only after them: a client that sends nothing
            // is cut off here.
            let mut first = [0u8; 1];
            match tokio::time::timeout(idle_timeout, stream.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => return, // closed by the client
                Err(_) => {
                    tracing::debug!(%peer, "connection closed: nothing sent");
                    return;
                }
            }
            let conn = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            if let Err(err) = watcher.watch(conn).await {
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

/// Pauses after failed accepts, doubling from 10 ms to 1 s, and logs them
/// at most every 5 s.
#[derive(Default)]
struct AcceptBackoff {
    pause: Duration,
    warning: RateLimitedWarning,
}

impl AcceptBackoff {
    fn failed(&mut self, err: &std::io::Error) -> Duration {
        self.pause = (self.pause * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
        self.warning.warn(|count| {
            tracing::warn!(%err, failures = count, "cannot accept connections (is the open-file limit reached?); backing off");
        });
        self.pause
    }

    fn reset(&mut self) {
        self.pause = Duration::ZERO;
    }
}

/// A warning given at most every 5 s, with the count of occurrences since.
#[derive(Default)]
struct RateLimitedWarning {
    last: Option<std::time::Instant>,
    count: u64,
}

impl RateLimitedWarning {
    fn warn(&mut self, log: impl FnOnce(u64)) {
        self.count += 1;
        if self
            .last
            .is_none_or(|last| last.elapsed() >= Duration::from_secs(5))
        {
            log(self.count);
            self.count = 0;
            self.last = Some(std::time::Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_past_the_cap_go_to_clients_below_their_share() {
        let conns = Connections::new(16);
        let flood: IpAddr = "127.0.0.2".parse().unwrap();
        let other: IpAddr = "127.0.0.3".parse().unwrap();
        let mut held: Vec<Admitted> = (0..16).map(|_| conns.admit(flood).unwrap()).collect();
        // The flooding client is at the cap and holds every place.
        assert!(conns.admit(flood).is_none());
        // Another client still gets in, up to its share.
        let others: Vec<Admitted> = (0..2).map(|_| conns.admit(other).unwrap()).collect();
        assert_eq!(conns.open(), 18);
        // But never past an eighth over the cap.
        let many: Vec<Admitted> = (0..32)
            .filter_map(|i| conns.admit(IpAddr::from([127, 1, 0, i])))
            .collect();
        assert_eq!(conns.open(), 16 + 2, "{}", many.len());
        drop(many);
        drop(others);
        held.truncate(10);
        assert_eq!(conns.open(), 10);
        assert!(conns.admit(flood).is_some());
    }
}
