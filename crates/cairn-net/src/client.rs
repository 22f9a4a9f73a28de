//! The client side of the internode protocol: one multiplexed HTTP/2
//! connection per peer, opened lazily, re-opened after failures, with the
//! protocol version negotiated by a hello on every new connection.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::mpsc;

use crate::auth::{self, Binding, ClusterKey};
use crate::calls::Call;
use crate::proto::{
    self, HEADER_DISK, HEADER_REFUSAL, Hello, PREFIX, Refusal, VERSION_BOUND_TOKENS, VersionRange,
};
use cairn_disk::Faults;

pub type ReqBody = BoxBody<Bytes, io::Error>;

/// How long opening a connection may take: the TCP connection, and then
/// the hello's answer. A frozen node's kernel still accepts connections, so
/// only the hello's deadline tells that nobody answers.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// After a failed connection, calls fail at once for this long instead of
/// each waiting for their own connection attempt; it doubles with every
/// failed attempt in a row, up to [`MAX_RETRY_AFTER`].
const RETRY_AFTER: Duration = Duration::from_millis(500);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(4);
/// HTTP/2 flow-control windows: wide enough for several 1 MiB shard frames
/// in flight per stream.
pub const STREAM_WINDOW: u32 = 4 << 20;
pub const CONNECTION_WINDOW: u32 = 32 << 20;
pub const MAX_FRAME_SIZE: u32 = 1 << 20;

/// Why a call did not get an answer from the peer's drive or lock table.
#[derive(Debug, Clone)]
pub enum CallError {
    /// The peer cannot be reached, or the connection failed mid-call.
    Unreachable(String),
    /// This request's stream was reset (by either side: an aborted shard
    /// write resets its own) while the connection stays up: the request
    /// failed, the peer did not.
    Stream(String),
    /// The peer refused the request before running it.
    Refused(Refusal, String),
    /// The peer answered something this node cannot decode.
    Protocol(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(why) => write!(f, "unreachable: {why}"),
            CallError::Stream(why) => write!(f, "request failed: {why}"),
            CallError::Refused(_, why) => write!(f, "refused our request: {why}"),
            CallError::Protocol(why) => write!(f, "protocol error: {why}"),
        }
    }
}

#[derive(Clone)]
struct Conn {
    send: http2::SendRequest<ReqBody>,
    version: u32,
    /// The peer's run, from its hello (version 3); requests name it.
    boot: u64,
    alive: Arc<AtomicBool>,
}

impl Conn {
    fn usable(&self) -> bool {
        self.alive.load(Ordering::Relaxed) && !self.send.is_closed()
    }
}

/// Identity and settings this node uses towards every peer.
pub struct LocalNode {
    /// `host:port` of this node, as in the drive arguments.
    pub node: String,
    pub key: ClusterKey,
    /// The versions this node announces (capped in tests).
    pub versions: VersionRange,
    pub faults: Arc<Faults>,
    /// How long a call to a peer (a lock call, or one drive call) may take
    /// before the peer counts as unreachable: a drive's deadline plus
    /// [`cairn_disk::REMOTE_MARGIN`], since the peer answers for its own
    /// hung drives within the drive deadline.
    pub call_timeout: Duration,
    /// This run of the node: a random id, so that its peers accept each of
    /// its requests once and none sent to an earlier run of theirs
    /// (`auth.rs`).
    pub boot: u64,
}

impl LocalNode {
    pub fn new(
        node: String,
        key: ClusterKey,
        versions: VersionRange,
        faults: Arc<Faults>,
        call_timeout: Duration,
    ) -> LocalNode {
        let id = uuid::Uuid::new_v4();
        LocalNode {
            node,
            key,
            versions,
            faults,
            call_timeout,
            boot: u64::from_le_bytes(id.as_bytes()[..8].try_into().expect("8 bytes")),
        }
    }
}

/// A request built for a connection, with the token it carries.
pub struct Prepared {
    conn: Conn,
    req: Request<ReqBody>,
    /// The version 3 token, which a streamed body's closing MAC covers;
    /// `None` on an older connection.
    pub token: Option<String>,
}

/// One peer node.
pub struct Peer {
    /// `host:port`, as in the drive arguments.
    pub node: String,
    local: Arc<LocalNode>,
    conn: Mutex<Option<Conn>>,
    connecting: tokio::sync::Mutex<()>,
    /// The last connection failure, to fail fast and to explain.
    failure: Mutex<Option<Failure>>,
    /// Whether the last state change was logged as up.
    logged_up: AtomicBool,
    /// Set while a connection attempt runs in the background.
    reconnecting: AtomicBool,
    /// The last sequence number this node gave a request to the peer.
    seq: AtomicU64,
    me: std::sync::Weak<Peer>,
}

/// Why the connection to a peer failed, when, and how long to wait before
/// the next attempt.
struct Failure {
    at: Instant,
    err: CallError,
    retry_after: Duration,
}

impl Peer {
    pub fn new(node: String, local: Arc<LocalNode>) -> Arc<Peer> {
        Arc::new_cyclic(|me| Peer {
            node,
            local,
            conn: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            failure: Mutex::new(None),
            // The first failure is not news: start-up reports peers itself.
            logged_up: AtomicBool::new(false),
            reconnecting: AtomicBool::new(false),
            seq: AtomicU64::new(0),
            me: me.clone(),
        })
    }

    /// A caller gave up waiting for this peer (it missed a deadline): drop
    /// the connection, so that every call to the peer fails fast until a
    /// new connection's hello is answered.
    pub fn stall(&self, reason: &str) {
        if self.current().is_some() {
            self.fail(CallError::Unreachable(reason.to_owned()));
        }
    }

    /// True while a connection to the peer is open.
    pub fn is_connected(&self) -> bool {
        if self.local.faults.blocks(&self.node) {
            return false;
        }
        self.current().is_some()
    }

    /// How long one call may take.
    pub fn call_timeout(&self) -> Duration {
        self.local.call_timeout
    }

    /// The protocol version in use, while connected.
    pub fn version(&self) -> Option<u32> {
        self.current().map(|c| c.version)
    }

    /// Why the peer is not connected, if a connection failed.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .expect("peer failure")
            .as_ref()
            .map(|failure| failure.err.to_string())
    }

    /// Forgets the last connection failure, so that the next call connects
    /// at once instead of failing fast: the peer has said it is back.
    pub fn forget_failure(&self) {
        *self.failure.lock().expect("peer failure") = None;
    }

    fn current(&self) -> Option<Conn> {
        let mut conn = self.conn.lock().expect("peer connection");
        match &*conn {
            Some(c) if c.usable() => Some(c.clone()),
            Some(_) => {
                *conn = None;
                None
            }
            None => None,
        }
    }

    fn fail(&self, err: CallError) -> CallError {
        *self.conn.lock().expect("peer connection") = None;
        if self.logged_up.swap(false, Ordering::Relaxed) {
            tracing::warn!(node = %self.node, %err, "lost contact with node");
        }
        let mut failure = self.failure.lock().expect("peer failure");
        // Attempts that fail in a row wait longer and longer, so that a
        // frozen node, whose hellos go unanswered, costs one attempt every
        // few seconds rather than one per call.
        // (Calls failing together on one broken connection count once.)
        let retry_after = match &*failure {
            Some(last) if last.at.elapsed() >= last.retry_after => {
                (last.retry_after * 2).min(MAX_RETRY_AFTER)
            }
            Some(last) => last.retry_after,
            None => RETRY_AFTER,
        };
        *failure = Some(Failure {
            at: Instant::now(),
            err: err.clone(),
            retry_after,
        });
        err
    }

    /// The open connection. With none, a peer never reached before is
    /// connected to by the caller; after a failure, callers fail fast with
    /// it while one attempt at a time reconnects in the background, so no
    /// request waits on a peer that stopped answering.
    async fn connection(&self) -> Result<Conn, CallError> {
        if self.local.faults.blocks(&self.node) {
            *self.conn.lock().expect("peer connection") = None;
            return Err(CallError::Unreachable(
                "cut off by the test fault injection (CAIRN_TEST_FAULTS_FILE)".to_owned(),
            ));
        }
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let last_failure = self
            .failure
            .lock()
            .expect("peer failure")
            .as_ref()
            .map(|f| (f.err.clone(), f.at.elapsed() >= f.retry_after));
        if let Some((err, due)) = last_failure {
            if due
                && !self.reconnecting.swap(true, Ordering::AcqRel)
                && let Some(peer) = self.me.upgrade()
            {
                tokio::spawn(async move {
                    let _ = peer.reconnect().await;
                    peer.reconnecting.store(false, Ordering::Release);
                });
            }
            return Err(err);
        }
        self.reconnect().await
    }

    /// Opens a connection unless another caller just did.
    async fn reconnect(&self) -> Result<Conn, CallError> {
        let _connecting = self.connecting.lock().await;
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        match self.connect().await {
            Ok(conn) => {
                *self.conn.lock().expect("peer connection") = Some(conn.clone());
                *self.failure.lock().expect("peer failure") = None;
                // New connections are rare (start-up, a peer's restart), so each is logged.
                self.logged_up.store(true, Ordering::Relaxed);
                tracing::info!(node = %self.node, version = conn.version, "connected to node");
                Ok(conn)
            }
            Err(err) => Err(self.fail(err)),
        }
    }

    async fn connect(&self) -> Result<Conn, CallError> {
        let stream =
            tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&self.node))
                .await
                .map_err(|_| {
                    CallError::Unreachable(format!("no connection within {CONNECT_TIMEOUT:?}"))
                })?
                .map_err(|e| CallError::Unreachable(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (send, connection) = http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_frame_size(MAX_FRAME_SIZE)
            .keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(20))
            .keep_alive_while_idle(true)
            .timer(hyper_util::rt::TokioTimer::new())
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| {
                CallError::Unreachable(format!("HTTP/2 handshake: {}", with_causes(&e)))
            })?;
        let alive = Arc::new(AtomicBool::new(true));
        let flag = alive.clone();
        let node = self.node.clone();
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%node, %err, "internode connection ended");
            }
            flag.store(false, Ordering::Relaxed);
        });
        let mut conn = Conn {
            send,
            version: 0,
            boot: 0,
            alive,
        };
        let req = self.hello_request()?;
        let hello = async {
            let resp = self.send_on(&mut conn, req).await?;
            read_body(resp).await
        };
        let body = tokio::time::timeout(CONNECT_TIMEOUT, hello)
            .await
            .map_err(|_| {
                CallError::Unreachable(format!("no answer to hello within {CONNECT_TIMEOUT:?}"))
            })??;
        let hello: Hello = proto::decode(&body).map_err(CallError::Protocol)?;
        let Some(version) = self.local.versions.common(&hello.versions) else {
            let message = self.local.versions.mismatch(
                &format!("this node ({})", self.local.node),
                &hello.versions,
                &format!("node {}", self.node),
            );
            tracing::error!("{message}");
            return Err(CallError::Refused(Refusal::Version, message));
        };
        if version >= VERSION_BOUND_TOKENS && hello.boot.is_none() {
            return Err(CallError::Protocol(format!(
                "node {} speaks protocol version {version} but did not say which run it is",
                self.node
            )));
        }
        conn.version = version;
        conn.boot = hello.boot.unwrap_or(0);
        Ok(conn)
    }

    /// The hello: a version 2 token (the peer's run is not known yet), the
    /// range of versions this node speaks, and this node's run.
    fn hello_request(&self) -> Result<Request<ReqBody>, CallError> {
        let path = format!("{PREFIX}hello");
        let time = self.local.key.now_ms();
        let range = self.local.versions.to_string_short();
        let token = self
            .local
            .key
            .token("GET", &path, &self.local.node, time, &range);
        let mut builder = Request::builder()
            .method(Method::GET)
            .uri(format!("http://{}{path}", self.node))
            .header(auth::HEADER_NODE, &self.local.node)
            .header(auth::HEADER_TIME, time.to_string())
            .header(auth::HEADER_PROTO, &range)
            .header(auth::HEADER_TOKEN, token);
        if self.local.versions.max >= VERSION_BOUND_TOKENS {
            builder = builder.header(auth::HEADER_RUN, format!("{:x}", self.local.boot));
        }
        builder
            .body(empty())
            .map_err(|e| CallError::Protocol(e.to_string()))
    }

    /// A request on `conn` for `op`, whose body has SHA-256 `digest`, with
    /// the token of the connection's version: from version 3 bound to the
    /// peer, both runs, a fresh sequence number and the digest.
    fn build(
        &self,
        conn: &Conn,
        op: &str,
        disk: Option<&str>,
        digest: [u8; 32],
        body: ReqBody,
    ) -> Result<(Request<ReqBody>, Option<String>), CallError> {
        let method = Method::POST;
        let path = format!("{PREFIX}{op}");
        let time = self.local.key.now_ms();
        let proto = conn.version.to_string();
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(format!("http://{}{path}", self.node))
            .header(auth::HEADER_NODE, &self.local.node)
            .header(auth::HEADER_TIME, time.to_string())
            .header(auth::HEADER_PROTO, &proto);
        let (token, bound) = if conn.version >= VERSION_BOUND_TOKENS {
            let binding = Binding {
                to_node: &self.node,
                to_boot: conn.boot,
                from_boot: self.local.boot,
                seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
                digest,
            };
            builder = builder
                .header(auth::HEADER_RUN, binding.run_header())
                .header(auth::HEADER_DIGEST, auth::digest_hex(&digest));
            let token = self.local.key.token_v3(
                method.as_str(),
                &path,
                &self.local.node,
                time,
                &proto,
                &binding,
            );
            (token.clone(), Some(token))
        } else {
            let token =
                self.local
                    .key
                    .token(method.as_str(), &path, &self.local.node, time, &proto);
            (token, None)
        };
        builder = builder.header(auth::HEADER_TOKEN, token);
        if let Some(disk) = disk {
            builder = builder.header(HEADER_DISK, proto::encode_path(disk));
        }
        let req = builder
            .body(body)
            .map_err(|e| CallError::Protocol(e.to_string()))?;
        Ok((req, bound))
    }

    async fn send_on(
        &self,
        conn: &mut Conn,
        req: Request<ReqBody>,
    ) -> Result<Response<Incoming>, CallError> {
        conn.send
            .ready()
            .await
            .map_err(|e| CallError::Unreachable(with_causes(&e)))?;
        let resp = conn
            .send
            .send_request(req)
            .await
            .map_err(|e| classify(&e, conn))?;
        if let Some(refusal) = resp
            .headers()
            .get(HEADER_REFUSAL)
            .and_then(|v| v.to_str().ok())
            .map(|v| Refusal::parse(v).unwrap_or(Refusal::Malformed))
        {
            let status = resp.status();
            let text = read_body(resp).await.unwrap_or_default();
            let message = String::from_utf8_lossy(&text).into_owned();
            let message = if message.is_empty() {
                format!("status {status}")
            } else {
                message
            };
            if matches!(
                refusal,
                Refusal::BadToken | Refusal::ClockSkew | Refusal::Version
            ) {
                tracing::error!(node = %self.node, "node {} refused this node's request: {message}", self.node);
            }
            return Err(CallError::Refused(refusal, message));
        }
        Ok(resp)
    }

    /// Builds a request for call `C` with a body of SHA-256 `digest`, on
    /// the current connection (opening one if needed).
    pub async fn prepare<C: Call>(
        &self,
        disk: Option<&str>,
        digest: [u8; 32],
        body: ReqBody,
    ) -> Result<Prepared, CallError> {
        let conn = self.connection().await?;
        if conn.version < C::SINCE {
            return Err(CallError::Refused(
                Refusal::Version,
                format!(
                    "{} needs internode protocol version {}; node {} speaks {}",
                    C::PATH,
                    C::SINCE,
                    self.node,
                    conn.version
                ),
            ));
        }
        let (req, token) = self.build(&conn, C::PATH, disk, digest, body)?;
        Ok(Prepared { conn, req, token })
    }

    /// Sends a prepared request and returns the response, whatever its status.
    pub async fn send(&self, prepared: Prepared) -> Result<Response<Incoming>, CallError> {
        let Prepared { mut conn, req, .. } = prepared;
        match self.send_on(&mut conn, req).await {
            Ok(resp) => Ok(resp),
            Err(err @ CallError::Unreachable(_)) => Err(self.fail(err)),
            Err(
                err @ CallError::Refused(
                    Refusal::BadToken | Refusal::ClockSkew | Refusal::Version | Refusal::Stale,
                    _,
                ),
            ) => Err(self.fail(err)),
            Err(err) => Err(err),
        }
    }

    /// The MAC a streamed body sent with `token` ends with.
    pub fn stream_mac(&self, token: &str) -> auth::StreamMac {
        self.local.key.stream_mac(token)
    }

    /// Sends call `C` with its MessagePack arguments and returns the raw
    /// response, whatever its status (for [`crate::calls::ShardRead`]).
    pub async fn request<C: Call>(
        &self,
        disk: Option<&str>,
        args: &C::Args,
    ) -> Result<Response<Incoming>, CallError> {
        let body = proto::encode(args);
        let digest = auth::digest(&body);
        let prepared = self.prepare::<C>(disk, digest, full(body)).await?;
        self.send(prepared).await
    }

    /// Call `C`: its arguments sent, its answer decoded, within the call
    /// timeout (a peer that misses it is dropped: see [`Peer::stall`]).
    pub async fn call<C: Call>(
        &self,
        disk: Option<&str>,
        args: &C::Args,
    ) -> Result<C::Answer, CallError> {
        let op = C::PATH;
        let call = async {
            let resp = self.request::<C>(disk, args).await?;
            if resp.status() != StatusCode::OK {
                let status = resp.status();
                let text = read_body(resp).await.unwrap_or_default();
                return Err(CallError::Protocol(format!(
                    "{op}: status {status}: {}",
                    String::from_utf8_lossy(&text)
                )));
            }
            let bytes = read_body(resp).await?;
            proto::decode(&bytes).map_err(|e| CallError::Protocol(format!("{op}: {e}")))
        };
        let timeout = self.local.call_timeout;
        match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(self.fail(CallError::Unreachable(format!(
                "{op}: no answer within {timeout:?}"
            )))),
        }
    }
}

impl VersionRange {
    /// `min-max`, as the hello carries it.
    pub fn to_string_short(&self) -> String {
        format!("{}-{}", self.min, self.max)
    }
}

/// A failed request's error: a reset of its own stream on a connection
/// that is still up is the request's failure ([`CallError::Stream`]);
/// anything else is the connection's.
fn classify(err: &hyper::Error, conn: &Conn) -> CallError {
    let reset = std::error::Error::source(err)
        .and_then(|source| source.downcast_ref::<h2::Error>())
        .is_some_and(h2::Error::is_reset);
    if reset && conn.usable() {
        CallError::Stream(with_causes(err))
    } else {
        CallError::Unreachable(with_causes(err))
    }
}

/// An error and its causes: hyper's own text ("http2 error") says nothing
/// of what happened.
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

pub async fn read_body(resp: Response<Incoming>) -> Result<Bytes, CallError> {
    resp.into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| CallError::Unreachable(format!("reading the answer: {}", with_causes(&e))))
}

pub fn full(bytes: Bytes) -> ReqBody {
    Full::new(bytes)
        .map_err(|never: Infallible| match never {})
        .boxed()
}

pub fn empty() -> ReqBody {
    full(Bytes::new())
}

/// A request body fed through a channel: for streamed shard writes.
pub struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, io::Error>>,
}

impl ChannelBody {
    pub fn new(capacity: usize) -> (mpsc::Sender<Result<Bytes, io::Error>>, ChannelBody) {
        let (tx, rx) = mpsc::channel(capacity);
        (tx, ChannelBody { rx })
    }
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|chunk| chunk.map(Frame::data)))
    }
}
