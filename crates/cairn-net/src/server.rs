//! The server side of the internode protocol: authenticates each request,
//! checks its protocol version, and runs it against this node's drives or
//! lock table.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use cairn_disk::{Disk, DiskError, Format, ListQuery, ListUploadsQuery, MetaOp, ShardReader};
use futures::future::BoxFuture;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::{self, AuthError};
use crate::client::LocalNode;
use crate::locktable::LockTable;
use crate::proto::{
    self, FRAME_DATA, FRAME_FINISH, HEADER_DISK, HEADER_REFUSAL, HEADER_RESULT, Hello, MAX_FRAME,
    PREFIX, Refusal, VERSION_BATCH_REFRESH, VersionRange, WireDiskError, args,
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

pub struct InternodeServer {
    local: Arc<LocalNode>,
    drives: HashMap<String, Arc<dyn Disk>>,
    locks: Arc<LockTable>,
    handles: Mutex<HashMap<u64, OpenShard>>,
    next_handle: AtomicU64,
    logged: Mutex<HashMap<(String, &'static str), Instant>>,
    /// Set once the object layer is up; until then a `rejoin` has nothing
    /// to bring back.
    rejoin: OnceLock<RejoinHook>,
}

type Answer = Response<Bytes>;

/// A shard file a peer is reading, and when it last did.
type OpenShard = (Arc<dyn ShardReader>, Instant);

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

fn reply<T: Serialize>(result: Result<T, DiskError>) -> Answer {
    let wire = result.map_err(|e| WireDiskError::from(&e));
    answer(StatusCode::OK, proto::encode(&wire))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

impl InternodeServer {
    pub fn new(
        local: Arc<LocalNode>,
        drives: HashMap<String, Arc<dyn Disk>>,
        locks: Arc<LockTable>,
    ) -> InternodeServer {
        InternodeServer {
            local,
            drives,
            locks,
            handles: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            logged: Mutex::new(HashMap::new()),
            rejoin: OnceLock::new(),
        }
    }

    /// Sets what a peer's `rejoin` runs (once; later calls are ignored).
    pub fn on_rejoin(&self, hook: RejoinHook) {
        let _ = self.rejoin.set(hook);
    }

    pub fn is_internode(path: &str) -> bool {
        path.starts_with(PREFIX)
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
        let proto_field = header(headers, auth::HEADER_PROTO).to_owned();
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
        if let Err(err) = self.local.key.verify(
            parts.method.as_str(),
            &path,
            &node,
            header(headers, auth::HEADER_TIME),
            &proto_field,
            header(headers, auth::HEADER_TOKEN),
        ) {
            return self.refuse_auth(err, &node, peer);
        }
        if op == "hello" {
            return self.hello(&node, &proto_field);
        }
        let Ok(version) = proto_field.parse::<u32>() else {
            return refuse(
                Refusal::Malformed,
                StatusCode::BAD_REQUEST,
                "no protocol version".to_owned(),
            );
        };
        if !self.local.versions.contains(version) {
            let message = format!(
                "node {node} used internode protocol version {version}, but node {} speaks {}; it must reconnect",
                self.local.node, self.local.versions
            );
            return refuse(Refusal::Version, StatusCode::UPGRADE_REQUIRED, message);
        }
        if op == "rejoin" {
            return self.rejoin(&node).await;
        }
        if let Some(lock_op) = op.strip_prefix("lock/") {
            return self.lock_op(lock_op, version, body).await;
        }
        let Some(disk_op) = op.strip_prefix("disk/") else {
            return refuse(
                Refusal::Malformed,
                StatusCode::NOT_FOUND,
                format!("no internode operation {op:?}"),
            );
        };
        let Some(drive_path) = proto::decode_path(header(headers, HEADER_DISK)) else {
            return refuse(
                Refusal::Malformed,
                StatusCode::BAD_REQUEST,
                "bad drive header".to_owned(),
            );
        };
        let Some(disk) = self.drives.get(&drive_path).cloned() else {
            return refuse(
                Refusal::UnknownDrive,
                StatusCode::NOT_FOUND,
                format!("node {} has no drive {drive_path:?}", self.local.node),
            );
        };
        if disk_op == "shard-write" {
            return self.shard_write(disk, body).await;
        }
        let bytes = match read_limited(body, MAX_ARGS).await {
            Ok(bytes) => bytes,
            Err(why) => return refuse(Refusal::Malformed, StatusCode::BAD_REQUEST, why),
        };
        match self.disk_op(disk_op, disk, &bytes).await {
            Ok(resp) => resp,
            Err(why) => refuse(Refusal::Malformed, StatusCode::BAD_REQUEST, why),
        }
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
        }
    }

    fn hello(&self, node: &str, range: &str) -> Answer {
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
        let hello = Hello {
            node: self.local.node.clone(),
            versions: self.local.versions,
            time_ms: self.local.key.now_ms(),
        };
        answer(StatusCode::OK, proto::encode(&hello))
    }

    /// A peer that has just started asks this node to take its drives back
    /// before it reports ready, so that a rolling restart moving on at its
    /// "ready" never finds this node still counting them offline.
    async fn rejoin(&self, node: &str) -> Answer {
        if let Some(hook) = self.rejoin.get()
            && tokio::time::timeout(REJOIN_WAIT, hook(node.to_owned()))
                .await
                .is_err()
        {
            tracing::warn!(%node, "node restarted, but its drives did not all come back within {REJOIN_WAIT:?}; the drive monitor keeps trying");
        }
        answer(StatusCode::OK, proto::encode(&()))
    }

    async fn lock_op(&self, op: &str, version: u32, body: Incoming) -> Answer {
        let bytes = match read_limited(body, MAX_ARGS).await {
            Ok(bytes) => bytes,
            Err(why) => return refuse(Refusal::Malformed, StatusCode::BAD_REQUEST, why),
        };
        let result: Result<Bytes, String> = (|| {
            Ok(match op {
                "acquire" => {
                    let a: args::Lock = proto::decode(&bytes)?;
                    let ttl = Duration::from_millis(a.ttl_ms);
                    proto::encode(&self.locks.acquire(&a.resource, a.uid, a.write, ttl))
                }
                "release" => {
                    let a: args::Unlock = proto::decode(&bytes)?;
                    self.locks.release(&a.resource, a.uid);
                    proto::encode(&())
                }
                "refresh" => {
                    let a: args::Refresh = proto::decode(&bytes)?;
                    proto::encode(&self.locks.refresh(
                        &a.resource,
                        a.uid,
                        Duration::from_millis(a.ttl_ms),
                    ))
                }
                "refresh-batch" if version >= VERSION_BATCH_REFRESH => {
                    let a: args::RefreshBatch = proto::decode(&bytes)?;
                    let ttl = Duration::from_millis(a.ttl_ms);
                    let held: Vec<bool> = a
                        .locks
                        .iter()
                        .map(|(resource, uid)| self.locks.refresh(resource, *uid, ttl))
                        .collect();
                    proto::encode(&held)
                }
                _ => {
                    return Err(format!(
                        "no lock operation {op:?} in protocol version {version}"
                    ));
                }
            })
        })();
        match result {
            Ok(body) => answer(StatusCode::OK, body),
            Err(why) => refuse(Refusal::Malformed, StatusCode::BAD_REQUEST, why),
        }
    }

    async fn disk_op(&self, op: &str, disk: Arc<dyn Disk>, bytes: &[u8]) -> Result<Answer, String> {
        fn arg<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
            proto::decode(bytes)
        }
        Ok(match op {
            "read-format" => reply(disk.read_format().await),
            "write-format" => reply(disk.write_format(&arg::<Format>(bytes)?).await),
            "connect" => reply(disk.connect(&arg::<Format>(bytes)?).await),
            "space" => reply(disk.space().await),
            "commit" => reply(disk.commit(arg::<MetaOp>(bytes)?).await),
            "list-buckets" => reply(disk.list_buckets().await),
            "get-bucket" => reply(disk.get_bucket(&arg::<args::Bucket>(bytes)?.bucket).await),
            "read-object" => {
                let a: args::ReadObject = arg(bytes)?;
                reply(disk.read_object(&a.bucket, &a.key, a.data).await)
            }
            "list-objects" => reply(disk.list_objects(&arg::<ListQuery>(bytes)?).await),
            "read-upload" => {
                let a: args::ReadUpload = arg(bytes)?;
                reply(disk.read_upload(&a.bucket, &a.key, a.upload_id).await)
            }
            "list-parts" => {
                let a: args::ListParts = arg(bytes)?;
                reply(
                    disk.list_parts(a.upload_id, a.after, a.limit as usize)
                        .await,
                )
            }
            "list-uploads" => reply(disk.list_uploads(&arg::<ListUploadsQuery>(bytes)?).await),
            "delete-shards" => {
                let a: args::Shards = arg(bytes)?;
                reply(disk.delete_shards(a.data_id, &a.parts).await)
            }
            "remove-shards" => {
                let a: args::Shards = arg(bytes)?;
                reply(disk.remove_shards(a.data_id, &a.parts).await)
            }
            "purge-trash" => {
                let a: args::Grace = arg(bytes)?;
                reply(
                    disk.purge_trash(Duration::from_millis(a.grace_ms))
                        .await
                        .map(|n| n as u64),
                )
            }
            "remove-orphans" => {
                let a: args::Grace = arg(bytes)?;
                reply(
                    disk.remove_orphans(Duration::from_millis(a.grace_ms))
                        .await
                        .map(|n| n as u64),
                )
            }
            "shard-open" => {
                let a: args::Shard = arg(bytes)?;
                reply(match disk.open_shard(a.data_id, a.part).await {
                    Ok(reader) => Ok(self.add_handle(reader.into())),
                    Err(err) => Err(err),
                })
            }
            "shard-read" => {
                let a: args::ReadAt = arg(bytes)?;
                let reader = self
                    .handles
                    .lock()
                    .expect("handles")
                    .get_mut(&a.handle)
                    .map(|(r, used)| {
                        *used = Instant::now();
                        r.clone()
                    });
                let result = match reader {
                    Some(reader) => reader.read_at(a.offset, a.len as usize).await,
                    None => Err(DiskError::Offline(format!(
                        "shard read handle {} is not open (the node restarted or closed it)",
                        a.handle
                    ))),
                };
                match result {
                    Ok(data) => {
                        let mut resp = answer(StatusCode::OK, data);
                        resp.headers_mut()
                            .insert(HEADER_RESULT, http::HeaderValue::from_static("ok"));
                        resp
                    }
                    Err(err) => {
                        let mut resp =
                            answer(StatusCode::OK, proto::encode(&WireDiskError::from(&err)));
                        resp.headers_mut()
                            .insert(HEADER_RESULT, http::HeaderValue::from_static("err"));
                        resp
                    }
                }
            }
            "shard-close" => {
                let a: args::Handle = arg(bytes)?;
                self.handles.lock().expect("handles").remove(&a.handle);
                reply(Ok(()))
            }
            _ => return Err(format!("no drive operation {op:?}")),
        })
    }

    fn add_handle(&self, reader: Arc<dyn ShardReader>) -> u64 {
        let id = self.next_handle.fetch_add(1, Ordering::Relaxed);
        let mut handles = self.handles.lock().expect("handles");
        handles.retain(|_, (_, used)| used.elapsed() < HANDLE_IDLE);
        handles.insert(id, (reader, Instant::now()));
        id
    }

    /// A streamed shard write: `[u32 length][arguments]`, then frames.
    async fn shard_write(&self, disk: Arc<dyn Disk>, mut body: Incoming) -> Answer {
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
                        buf.advance(4);
                        let raw = buf.split_to(len);
                        let a: args::Shard = proto::decode(&raw).map_err(DiskError::Offline)?;
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
                            let w = writer.take().expect("writer");
                            return w.finish().await;
                        }
                        FRAME_DATA if len <= MAX_FRAME => {
                            if buf.len() < 5 + len {
                                buf.reserve(5 + len - buf.len());
                                break;
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
        reply(outcome)
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
