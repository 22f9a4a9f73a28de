//! The server side of the internode protocol: authenticates each request,
//! checks its protocol version, and routes it by its declaration
//! (`calls.rs`) to this node's drives or lock table.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use cairn_disk::{Disk, DiskError, ShardReader};
use futures::future::BoxFuture;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use cairn_object::ObjectLayer;
use cairn_object::worker::Workers;

use crate::auth::{self, AuthError, Binding, ReplayGuard};
use crate::calls::{self, Call};
use crate::client::LocalNode;
use crate::locktable::LockTable;
use crate::proto::{
    self, FRAME_DATA, FRAME_FINISH, HEADER_DISK, HEADER_REFUSAL, HEADER_RESULT, Hello, MAX_FRAME,
    PREFIX, Refusal, VERSION_BOUND_TOKENS, VersionRange, WireDiskError, args,
};

/// The largest MessagePack request body (a commit with inline data is the biggest).
const MAX_ARGS: usize = 8 << 20;
/// Shard read handles unused for this long are closed.
const HANDLE_IDLE: Duration = Duration::from_secs(600);
/// The same refusal is logged at most this often per peer.
const LOG_EVERY: Duration = Duration::from_secs(30);
/// How long a peer's `rejoin` waits for this node to take its drives back.
const REJOIN_WAIT: Duration = Duration::from_secs(10);

/// What this node does when a peer says it has (re)started: bring that
/// peer's drives back into service now. Its argument is the peer's
/// `host:port`.
pub type RejoinHook = Arc<dyn Fn(String) -> BoxFuture<'static, ()> + Send + Sync>;

type Answer = Response<Bytes>;

/// A shard file a peer is reading, and when it last did.
type OpenShard = (Arc<dyn ShardReader>, Instant);

/// The shard files peers hold open, by handle.
#[derive(Default)]
struct Handles {
    open: Mutex<HashMap<u64, OpenShard>>,
    next: AtomicU64,
}

impl Handles {
    fn add(&self, reader: Arc<dyn ShardReader>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut open = self.open.lock().expect("handles");
        open.retain(|_, (_, used)| used.elapsed() < HANDLE_IDLE);
        open.insert(id, (reader, Instant::now()));
        id
    }

    fn get(&self, handle: u64) -> Option<Arc<dyn ShardReader>> {
        self.open
            .lock()
            .expect("handles")
            .get_mut(&handle)
            .map(|(reader, used)| {
                *used = Instant::now();
                reader.clone()
            })
    }

    fn close(&self, handle: u64) {
        self.open.lock().expect("handles").remove(&handle);
    }
}

/// Who asked, and the drive a drive call names.
struct Ctx {
    caller: String,
    disk: Option<Arc<dyn Disk>>,
}

/// Runs one call: its context and MessagePack arguments in, its MessagePack
/// answer out (or why the arguments did not decode).
type Handler = Box<dyn Fn(Ctx, Bytes) -> BoxFuture<'static, Result<Bytes, String>> + Send + Sync>;

struct Route {
    since: u32,
    drive: bool,
    handler: Handler,
}

/// The calls this node serves, each registered with its declaration, so
/// that its handler takes the declared arguments and returns the declared
/// answer.
#[derive(Default)]
struct Router {
    routes: HashMap<&'static str, Route>,
}

impl Router {
    fn insert<C: Call>(&mut self, handler: Handler) {
        let replaced = self.routes.insert(
            C::PATH,
            Route {
                since: C::SINCE,
                drive: C::DRIVE,
                handler,
            },
        );
        assert!(replaced.is_none(), "{} routed twice", C::PATH);
    }

    /// Routes drive call `C` to `handler`.
    fn drive<C, F, Fut>(&mut self, handler: F)
    where
        C: Call,
        F: Fn(Arc<dyn Disk>, C::Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = C::Answer> + Send + 'static,
    {
        assert!(C::DRIVE, "{} is not a drive call", C::PATH);
        self.insert::<C>(Box::new(move |ctx, bytes| {
            let disk = ctx.disk.expect("drive calls name a drive");
            match proto::decode::<C::Args>(&bytes) {
                Ok(args) => {
                    let answer = handler(disk, args);
                    Box::pin(async move { Ok(proto::encode(&answer.await)) })
                }
                Err(why) => Box::pin(async move { Err(format!("{}: {why}", C::PATH)) }),
            }
        }));
    }

    /// Routes node call `C` to `handler`, which gets the calling node too.
    fn node<C, F, Fut>(&mut self, handler: F)
    where
        C: Call,
        F: Fn(String, C::Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = C::Answer> + Send + 'static,
    {
        assert!(!C::DRIVE, "{} is a drive call", C::PATH);
        self.insert::<C>(Box::new(move |ctx, bytes| {
            match proto::decode::<C::Args>(&bytes) {
                Ok(args) => {
                    let answer = handler(ctx.caller, args);
                    Box::pin(async move { Ok(proto::encode(&answer.await)) })
                }
                Err(why) => Box::pin(async move { Err(format!("{}: {why}", C::PATH)) }),
            }
        }));
    }
}

/// A drive call's answer on the wire.
fn wire<T>(result: cairn_disk::Result<T>) -> calls::DiskAnswer<T> {
    result.map_err(|e| WireDiskError::from(&e))
}

/// What the server answers for that is set up after it starts.
#[derive(Default)]
struct Later {
    /// Set once the object layer is up; until then a `rejoin` has nothing
    /// to bring back.
    rejoin: OnceLock<RejoinHook>,
    workers: OnceLock<Arc<Workers>>,
    layer: OnceLock<Arc<ObjectLayer>>,
}

/// The drive, lock and node calls, each routed by its declaration.
fn routes(locks: Arc<LockTable>, handles: Arc<Handles>, later: Arc<Later>) -> Router {
    let mut router = Router::default();
    router
        .drive::<calls::ReadFormat, _, _>(|disk, ()| async move { wire(disk.read_format().await) });
    router.drive::<calls::WriteFormat, _, _>(|disk, format| async move {
        wire(disk.write_format(&format).await)
    });
    router.drive::<calls::Connect, _, _>(|disk, format| async move {
        wire(disk.connect(&format).await)
    });
    router.drive::<calls::Space, _, _>(|disk, ()| async move { wire(disk.space().await) });
    router.drive::<calls::Commit, _, _>(|disk, op| async move { wire(disk.commit(op).await) });
    router.drive::<calls::ListBuckets, _, _>(
        |disk, ()| async move { wire(disk.list_buckets().await) },
    );
    router.drive::<calls::GetBucket, _, _>(|disk, a| async move {
        wire(disk.get_bucket(&a.bucket).await)
    });
    router.drive::<calls::ReadObject, _, _>(|disk, a| async move {
        wire(disk.read_object(&a.bucket, &a.key, a.data).await)
    });
    router.drive::<calls::ListObjects, _, _>(|disk, query| async move {
        wire(disk.list_objects(&query).await)
    });
    router.drive::<calls::ReadUpload, _, _>(|disk, a| async move {
        wire(disk.read_upload(&a.bucket, &a.key, a.upload_id).await)
    });
    router.drive::<calls::ListParts, _, _>(|disk, a| async move {
        wire(
            disk.list_parts(a.upload_id, a.after, a.limit as usize)
                .await,
        )
    });
    router.drive::<calls::ListUploads, _, _>(|disk, query| async move {
        wire(disk.list_uploads(&query).await)
    });
    router.drive::<calls::DeleteShards, _, _>(|disk, a| async move {
        wire(disk.delete_shards(a.data_id, &a.parts).await)
    });
    router.drive::<calls::RemoveShards, _, _>(|disk, a| async move {
        wire(disk.remove_shards(a.data_id, &a.parts).await)
    });
    router.drive::<calls::PurgeTrash, _, _>(|disk, a| async move {
        let grace = Duration::from_millis(a.grace_ms);
        wire(disk.purge_trash(grace).await.map(|n| n as u64))
    });
    router.drive::<calls::RemoveOrphans, _, _>(|disk, a| async move {
        let grace = Duration::from_millis(a.grace_ms);
        wire(disk.remove_orphans(grace).await.map(|n| n as u64))
    });
    let open = handles.clone();
    router.drive::<calls::ShardOpen, _, _>(move |disk, a| {
        let handles = open.clone();
        async move {
            wire(
                disk.open_shard(a.data_id, a.part)
                    .await
                    .map(|reader| handles.add(reader.into())),
            )
        }
    });
    router.drive::<calls::ShardClose, _, _>(move |_, a| {
        handles.close(a.handle);
        async { Ok(()) }
    });
    let table = locks.clone();
    router.node::<calls::LockAcquire, _, _>(move |_, a| {
        let granted = table.acquire(&a.resource, a.uid, a.write, Duration::from_millis(a.ttl_ms));
        async move { granted }
    });
    let table = locks.clone();
    router.node::<calls::LockRelease, _, _>(move |_, a| {
        table.release(&a.resource, a.uid);
        async {}
    });
    router.node::<calls::LockRefreshBatch, _, _>(move |_, a| {
        let ttl = Duration::from_millis(a.ttl_ms);
        let held: Vec<bool> = a
            .locks
            .iter()
            .map(|(resource, uid)| locks.refresh(resource, *uid, ttl))
            .collect();
        async move { held }
    });
    let workers = later.clone();
    router.node::<calls::Workers, _, _>(move |_, ()| {
        let list = workers.workers.get().map(|w| w.list()).unwrap_or_default();
        async move { list }
    });
    let workers = later.clone();
    router.node::<calls::PauseWorker, _, _>(move |_, a| {
        let found = workers
            .workers
            .get()
            .is_some_and(|w| w.pause(&a.name, a.paused));
        async move { found }
    });
    let layer = later.clone();
    router.node::<calls::BucketChanged, _, _>(move |_, a| {
        if let Some(layer) = layer.layer.get() {
            layer.bucket_changed_elsewhere(&a.bucket);
        }
        async {}
    });
    router.node::<calls::Rejoin, _, _>(move |node, ()| {
        let later = later.clone();
        async move {
            // A peer that has just started asks this node to take its
            // drives back before it reports ready, so that a rolling
            // restart moving on at its "ready" never finds this node still
            // counting them offline.
            if let Some(hook) = later.rejoin.get()
                && tokio::time::timeout(REJOIN_WAIT, hook(node.clone()))
                    .await
                    .is_err()
            {
                tracing::warn!(%node, "node restarted, but its drives did not all come back within {REJOIN_WAIT:?}; the drive monitor keeps trying");
            }
        }
    });
    router
}

pub struct InternodeServer {
    local: Arc<LocalNode>,
    drives: HashMap<String, Arc<dyn Disk>>,
    router: Router,
    handles: Arc<Handles>,
    /// Which sequence numbers each sender's run has used.
    replay: ReplayGuard,
    /// The versions each peer announced in its latest hello.
    announced: Mutex<HashMap<String, VersionRange>>,
    logged: Mutex<HashMap<(String, &'static str), Instant>>,
    later: Arc<Later>,
}

fn answer(status: StatusCode, body: Bytes) -> Answer {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp
}

fn refuse(refusal: Refusal, status: StatusCode, message: String) -> Answer {
    let mut resp = answer(status, Bytes::from(message));
    resp.headers_mut().insert(
        HEADER_REFUSAL,
        http::HeaderValue::from_static(refusal.as_str()),
    );
    resp
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// How a request authenticated: a version 3 request names its body's
/// digest and token, which a streamed body's closing MAC covers.
struct Authenticated {
    version: u32,
    bound: Option<(String, [u8; 32])>,
}

impl InternodeServer {
    pub fn new(
        local: Arc<LocalNode>,
        drives: HashMap<String, Arc<dyn Disk>>,
        locks: Arc<LockTable>,
    ) -> InternodeServer {
        let handles = Arc::new(Handles::default());
        let later = Arc::new(Later::default());
        InternodeServer {
            local,
            drives,
            router: routes(locks, handles.clone(), later.clone()),
            handles,
            replay: ReplayGuard::default(),
            announced: Mutex::new(HashMap::new()),
            logged: Mutex::new(HashMap::new()),
            later,
        }
    }

    /// Sets what a peer's `rejoin` runs (once; later calls are ignored).
    pub fn on_rejoin(&self, hook: RejoinHook) {
        let _ = self.later.rejoin.set(hook);
    }

    /// Sets the workers peers may list and pause (once).
    pub fn serve_workers(&self, workers: Arc<Workers>) {
        let _ = self.later.workers.set(workers);
    }

    /// Sets the object layer whose bucket states peers' notices invalidate
    /// (once).
    pub fn serve_layer(&self, layer: Arc<ObjectLayer>) {
        let _ = self.later.layer.set(layer);
    }

    pub fn is_internode(path: &str) -> bool {
        path.starts_with(PREFIX)
    }

    /// Whether this server answers `path` (a call's path under the prefix).
    pub fn serves(&self, path: &str) -> bool {
        self.router.routes.contains_key(path)
            || path == calls::ShardWrite::PATH
            || path == calls::ShardRead::PATH
    }

    fn log_once(&self, node: &str, kind: &'static str) -> bool {
        let mut logged = self.logged.lock().expect("refusal log");
        let key = (node.to_owned(), kind);
        match logged.get(&key) {
            Some(at) if at.elapsed() < LOG_EVERY => false,
            _ => {
                logged.insert(key, Instant::now());
                true
            }
        }
    }

    /// Serves one internode request from `peer`.
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Answer {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_owned();
        let op = path.strip_prefix(PREFIX).unwrap_or_default().to_owned();
        let headers = &parts.headers;
        let node = header(headers, auth::HEADER_NODE).to_owned();
        if self.local.faults.blocks(&node) {
            return refuse(
                Refusal::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "node {} is cut off from {node} by the test fault injection",
                    self.local.node
                ),
            );
        }
        let authenticated =
            match self.authenticate(parts.method.as_str(), &path, &op, headers, &node, peer) {
                Ok(Some(authenticated)) => authenticated,
                Ok(None) => return self.hello(&node, headers),
                Err(refused) => return *refused,
            };
        if op == calls::ShardWrite::PATH {
            return match self.drive(headers) {
                Ok(disk) => self.shard_write(disk, body, authenticated.bound).await,
                Err(refused) => *refused,
            };
        }
        let is_read = op == calls::ShardRead::PATH;
        let route = self.router.routes.get(op.as_str());
        let (since, drive) = match (route, is_read) {
            (Some(route), _) => (route.since, route.drive),
            (None, true) => (calls::ShardRead::SINCE, true),
            (None, false) => {
                return refuse(
                    Refusal::Malformed,
                    StatusCode::NOT_FOUND,
                    format!("no internode operation {op:?}"),
                );
            }
        };
        if authenticated.version < since {
            return refuse(
                Refusal::Malformed,
                StatusCode::BAD_REQUEST,
                format!(
                    "{op} needs internode protocol version {since}, the request used {}",
                    authenticated.version
                ),
            );
        }
        let disk = if drive {
            match self.drive(headers) {
                Ok(disk) => Some(disk),
                Err(refused) => return *refused,
            }
        } else {
            None
        };
        let bytes = match read_limited(body, MAX_ARGS).await {
            Ok(bytes) => bytes,
            Err(why) => return refuse(Refusal::Malformed, StatusCode::BAD_REQUEST, why),
        };
        if let Some((_, digest)) = &authenticated.bound
            && auth::digest(&bytes) != *digest
        {
            return refuse(
                Refusal::BadToken,
                StatusCode::FORBIDDEN,
                format!("the body of {op} from {node} does not match the digest its token covers"),
            );
        }
        if is_read {
            return self.shard_read(&bytes).await;
        }
        let route = route.expect("routed above");
        let handled = (route.handler)(Ctx { caller: node, disk }, bytes).await;
        match handled {
            Ok(body) => answer(StatusCode::OK, body),
            Err(why) => refuse(Refusal::Malformed, StatusCode::BAD_REQUEST, why),
        }
    }

    /// The drive a drive call names.
    fn drive(&self, headers: &HeaderMap) -> Result<Arc<dyn Disk>, Box<Answer>> {
        let Some(drive_path) = proto::decode_path(header(headers, HEADER_DISK)) else {
            return Err(Box::new(refuse(
                Refusal::Malformed,
                StatusCode::BAD_REQUEST,
                "bad drive header".to_owned(),
            )));
        };
        self.drives.get(&drive_path).cloned().ok_or_else(|| {
            Box::new(refuse(
                Refusal::UnknownDrive,
                StatusCode::NOT_FOUND,
                format!("node {} has no drive {drive_path:?}", self.local.node),
            ))
        })
    }

    /// Checks a request's token, time, version and (version 3) runs and
    /// sequence number. `Ok(None)` for a hello, whose token was checked.
    fn authenticate(
        &self,
        method: &str,
        path: &str,
        op: &str,
        headers: &HeaderMap,
        node: &str,
        peer: SocketAddr,
    ) -> Result<Option<Authenticated>, Box<Answer>> {
        let proto_field = header(headers, auth::HEADER_PROTO);
        let time = header(headers, auth::HEADER_TIME);
        let token = header(headers, auth::HEADER_TOKEN);
        if op == "hello" {
            self.local
                .key
                .verify(method, path, node, time, proto_field, token)
                .map_err(|err| Box::new(self.refuse_auth(err, node, peer)))?;
            return Ok(None);
        }
        let Ok(version) = proto_field.parse::<u32>() else {
            return Err(Box::new(refuse(
                Refusal::Malformed,
                StatusCode::BAD_REQUEST,
                "no protocol version".to_owned(),
            )));
        };
        if !self.local.versions.contains(version) {
            let message = format!(
                "node {node} used internode protocol version {version}, but node {} speaks {}; it must reconnect",
                self.local.node, self.local.versions
            );
            return Err(Box::new(refuse(
                Refusal::Version,
                StatusCode::UPGRADE_REQUIRED,
                message,
            )));
        }
        if version < VERSION_BOUND_TOKENS {
            self.local
                .key
                .verify(method, path, node, time, proto_field, token)
                .map_err(|err| Box::new(self.refuse_auth(err, node, peer)))?;
            // A node uses the highest version both speak: an older token is
            // taken only from a node that speaks nothing newer, so that no
            // request can be downgraded to escape the replay check.
            let theirs = self.announced.lock().expect("announced").get(node).copied();
            let expected = theirs.and_then(|theirs| self.local.versions.common(&theirs));
            if expected != Some(version) {
                return Err(Box::new(refuse(
                    Refusal::Version,
                    StatusCode::UPGRADE_REQUIRED,
                    format!(
                        "node {node} sent a version {version} request, but the version both nodes speak is {}; it must reconnect",
                        expected.map_or_else(|| "unknown (no hello)".to_owned(), |v| v.to_string())
                    ),
                )));
            }
            return Ok(Some(Authenticated {
                version,
                bound: None,
            }));
        }
        let malformed = |what: &str| {
            Box::new(refuse(
                Refusal::Malformed,
                StatusCode::BAD_REQUEST,
                format!("version {version} request without a valid {what} header"),
            ))
        };
        let (from_boot, seq, to_boot) = Binding::parse_run(header(headers, auth::HEADER_RUN))
            .ok_or_else(|| malformed(auth::HEADER_RUN))?;
        let digest = auth::parse_digest(header(headers, auth::HEADER_DIGEST))
            .ok_or_else(|| malformed(auth::HEADER_DIGEST))?;
        let binding = Binding {
            to_node: &self.local.node,
            to_boot,
            from_boot,
            seq,
            digest,
        };
        self.local
            .key
            .verify_v3(method, path, node, time, proto_field, &binding, token)
            .map_err(|err| Box::new(self.refuse_auth(err, node, peer)))?;
        if to_boot != self.local.boot {
            return Err(Box::new(self.refuse_auth(AuthError::Stale, node, peer)));
        }
        self.replay
            .check(node, from_boot, seq)
            .map_err(|err| Box::new(self.refuse_auth(err, node, peer)))?;
        Ok(Some(Authenticated {
            version,
            bound: Some((token.to_owned(), digest)),
        }))
    }

    fn refuse_auth(&self, err: AuthError, node: &str, peer: SocketAddr) -> Answer {
        match err {
            AuthError::Missing => refuse(
                Refusal::Malformed,
                StatusCode::UNAUTHORIZED,
                "internode request without a timestamp".to_owned(),
            ),
            AuthError::BadToken => {
                let message = format!(
                    "node {} refused an internode request from {node} ({peer}): its token does not match this node's cluster secret; every node needs the same CAIRN_ROOT_USER and CAIRN_ROOT_PASSWORD (or CAIRN_INTERNODE_SECRET)",
                    self.local.node
                );
                if self.log_once(node, "token") {
                    tracing::error!("{message}");
                }
                refuse(Refusal::BadToken, StatusCode::FORBIDDEN, message)
            }
            AuthError::ClockSkew {
                sender_ms,
                receiver_ms,
            } => {
                let message = format!(
                    "clock skew between nodes: node {node} stamped its request {}, node {}'s clock says {}, a difference of {:.1} s where at most {} s is allowed; synchronise the clocks (NTP)",
                    auth::show_time(sender_ms),
                    self.local.node,
                    auth::show_time(receiver_ms),
                    (sender_ms - receiver_ms).abs() as f64 / 1000.0,
                    auth::MAX_CLOCK_SKEW_MS / 1000
                );
                if self.log_once(node, "skew") {
                    tracing::error!("{message}");
                }
                refuse(Refusal::ClockSkew, StatusCode::FORBIDDEN, message)
            }
            AuthError::Stale => refuse(
                Refusal::Stale,
                StatusCode::FORBIDDEN,
                format!(
                    "node {} refused a request from {node}: it was sent to an earlier run of this node, or from a run of {node} that has not said hello; reconnect",
                    self.local.node
                ),
            ),
            AuthError::Replayed => {
                let message = format!(
                    "node {} refused a request from {node} ({peer}) that it has already served: a replayed internode request",
                    self.local.node
                );
                if self.log_once(node, "replay") {
                    tracing::error!("{message}");
                }
                refuse(Refusal::Replayed, StatusCode::FORBIDDEN, message)
            }
        }
    }

    fn hello(&self, node: &str, headers: &HeaderMap) -> Answer {
        let range = header(headers, auth::HEADER_PROTO);
        let Some(theirs) = VersionRange::parse(range) else {
            return refuse(
                Refusal::Malformed,
                StatusCode::BAD_REQUEST,
                format!("bad version range {range:?}"),
            );
        };
        if self.local.versions.common(&theirs).is_none() {
            let message = self.local.versions.mismatch(
                &format!("node {}", self.local.node),
                &theirs,
                &format!("node {node}"),
            );
            if self.log_once(node, "version") {
                tracing::error!("refused node {node}: {message}");
            }
            return refuse(Refusal::Version, StatusCode::UPGRADE_REQUIRED, message);
        }
        self.announced
            .lock()
            .expect("announced")
            .insert(node.to_owned(), theirs);
        // A peer connecting anew may have failed to tell this node of
        // changes while they were apart: this node reads every bucket's
        // state again.
        if let Some(layer) = self.later.layer.get() {
            layer.peer_reconnected();
        }
        if let Ok(boot) = u64::from_str_radix(header(headers, auth::HEADER_RUN), 16) {
            self.replay.hello(node, boot);
        }
        let hello = Hello {
            node: self.local.node.clone(),
            versions: self.local.versions,
            time_ms: self.local.key.now_ms(),
            boot: (self.local.versions.max >= VERSION_BOUND_TOKENS).then_some(self.local.boot),
        };
        answer(StatusCode::OK, proto::encode(&hello))
    }

    /// [`calls::ShardRead`]: raw bytes, or a MessagePack drive error.
    async fn shard_read(&self, bytes: &[u8]) -> Answer {
        let a: args::ReadAt = match proto::decode(bytes) {
            Ok(a) => a,
            Err(why) => return refuse(Refusal::Malformed, StatusCode::BAD_REQUEST, why),
        };
        let result = match self.handles.get(a.handle) {
            Some(reader) => reader.read_at(a.offset, a.len as usize).await,
            None => Err(DiskError::Offline(format!(
                "shard read handle {} is not open (the node restarted or closed it)",
                a.handle
            ))),
        };
        let (body, result) = match result {
            Ok(data) => (data, "ok"),
            Err(err) => (proto::encode(&WireDiskError::from(&err)), "err"),
        };
        let mut resp = answer(StatusCode::OK, body);
        resp.headers_mut()
            .insert(HEADER_RESULT, http::HeaderValue::from_static(result));
        resp
    }

    /// [`calls::ShardWrite`]: `[u32 length][arguments]`, then frames. With
    /// a version 3 token (`bound`), the arguments must match the digest it
    /// covers and the finish record must carry the MAC of everything before
    /// it; the file is made durable only then.
    async fn shard_write(
        &self,
        disk: Arc<dyn Disk>,
        mut body: Incoming,
        bound: Option<(String, [u8; 32])>,
    ) -> Answer {
        let mut mac = bound
            .as_ref()
            .map(|(token, _)| self.local.key.stream_mac(token));
        let mut buf = BytesMut::new();
        let mut writer: Option<Box<dyn cairn_disk::ShardWriter>> = None;
        let outcome: Result<(), DiskError> = async {
            loop {
                // Parse what is buffered.
                loop {
                    if writer.is_none() {
                        if buf.len() < 4 {
                            break;
                        }
                        let len =
                            u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
                        if len > MAX_ARGS {
                            return Err(DiskError::Offline(
                                "shard write arguments too large".to_owned(),
                            ));
                        }
                        if buf.len() < 4 + len {
                            break;
                        }
                        let record = buf.split_to(4 + len);
                        let raw = &record[4..];
                        if let Some((_, digest)) = &bound
                            && auth::digest(raw) != *digest
                        {
                            return Err(DiskError::Offline(
                                "shard write arguments do not match the digest their token covers"
                                    .to_owned(),
                            ));
                        }
                        if let Some(mac) = &mut mac {
                            mac.update(&record);
                        }
                        let a: args::Shard = proto::decode(raw).map_err(DiskError::Offline)?;
                        writer = Some(if a.replace {
                            disk.replace_shard(a.data_id, a.part).await?
                        } else {
                            disk.create_shard(a.data_id, a.part).await?
                        });
                        continue;
                    }
                    if buf.len() < 5 {
                        break;
                    }
                    let tag = buf[0];
                    let len = u32::from_be_bytes(buf[1..5].try_into().expect("4 bytes")) as usize;
                    match tag {
                        FRAME_FINISH => {
                            if buf.len() < 5 + len {
                                break;
                            }
                            buf.advance(5);
                            let sent = buf.split_to(len);
                            if let Some(mac) = mac.take()
                                && !mac.verify(&sent)
                            {
                                return Err(DiskError::Offline(
                                    "shard write stream does not match the MAC it ends with"
                                        .to_owned(),
                                ));
                            }
                            let w = writer.take().expect("writer");
                            return w.finish().await;
                        }
                        FRAME_DATA if len <= MAX_FRAME => {
                            if buf.len() < 5 + len {
                                buf.reserve(5 + len - buf.len());
                                break;
                            }
                            if let Some(mac) = &mut mac {
                                mac.update(&buf[..5 + len]);
                            }
                            buf.advance(5);
                            let frame = buf.split_to(len).freeze();
                            writer.as_mut().expect("writer").write(frame).await?;
                        }
                        _ => {
                            return Err(DiskError::Offline(format!(
                                "bad shard frame tag {tag} or length {len}"
                            )));
                        }
                    }
                }
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            buf.extend_from_slice(&data);
                        }
                    }
                    Some(Err(err)) => {
                        return Err(DiskError::Offline(format!(
                            "shard write stream broke: {err}"
                        )));
                    }
                    None => {
                        return Err(DiskError::Offline(
                            "shard write ended without finishing".to_owned(),
                        ));
                    }
                }
            }
        }
        .await;
        if outcome.is_err()
            && let Some(w) = writer.take()
        {
            w.abort().await;
        }
        answer(StatusCode::OK, proto::encode(&wire(outcome)))
    }
}

async fn read_limited(body: Incoming, limit: usize) -> Result<Bytes, String> {
    let limited = http_body_util::Limited::new(body, limit);
    limited
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| format!("reading the request: {e}"))
}

impl std::fmt::Debug for InternodeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternodeServer")
            .field("node", &self.local.node)
            .field("drives", &self.drives.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClusterKey;

    #[test]
    fn every_declared_call_is_routed() {
        let local = Arc::new(LocalNode::new(
            "127.0.0.1:1".to_owned(),
            ClusterKey::new("secret", 0),
            VersionRange::THIS_RELEASE,
            Arc::new(cairn_disk::Faults::none()),
            Duration::from_secs(1),
        ));
        let server = InternodeServer::new(local, HashMap::new(), Arc::new(LockTable::new()));
        for path in calls::ALL {
            assert!(server.serves(path), "{path} is declared but not routed");
        }
        for path in server.router.routes.keys() {
            assert!(
                calls::is_declared(path),
                "{path} is routed but not declared"
            );
        }
    }
}
