//! [`RemoteDisk`]: a drive of another node, behind the same [`Disk`] trait
//! as a local one. Metadata calls are MessagePack requests; shard writes
//! stream their frames in one request body; shard reads go by a handle the
//! peer keeps open, so a GET survives a concurrent overwrite there too.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use cairn_disk::{
    BucketRecord, Disk, DiskError, DiskSpace, Format, ListPage, ListQuery, ListUploadsQuery,
    MetaOp, MetaOutcome, ReadData, ReadObject, Result, ShardReader, ShardWriter, UploadPartRecord,
    UploadRecord, UploadsPage,
};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::client::{CallError, ChannelBody, Peer, read_body};
use crate::proto::{self, FRAME_DATA, FRAME_FINISH, HEADER_RESULT, WireDiskError, args};

pub struct RemoteDisk {
    peer: Arc<Peer>,
    /// The drive's path on its node.
    path: String,
    /// `http://host:port/path`, for logs.
    endpoint: String,
    online: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl RemoteDisk {
    pub fn new(peer: Arc<Peer>, path: String) -> RemoteDisk {
        let endpoint = format!("http://{}{path}", peer.node);
        RemoteDisk {
            peer,
            path,
            endpoint,
            online: AtomicBool::new(false),
            reason: Mutex::new(Some("not contacted yet".to_owned())),
        }
    }

    fn offline(&self, err: &CallError) -> DiskError {
        let reason = format!("node {} {err}", self.peer.node);
        if matches!(err, CallError::Stream(_)) {
            // This request failed; the drive and its node did not.
            return DiskError::Offline(reason);
        }
        self.online.store(false, Ordering::Relaxed);
        *self.reason.lock().expect("reason") = Some(reason.clone());
        DiskError::Offline(reason)
    }

    /// Records what an answer says about the drive's state.
    fn observe<T>(&self, result: Result<T>) -> Result<T> {
        match &result {
            Err(err) if err.is_offline() => {
                self.online.store(false, Ordering::Relaxed);
                *self.reason.lock().expect("reason") = Some(err.to_string());
            }
            _ => {}
        }
        result
    }

    async fn call<A: Serialize, T: DeserializeOwned>(&self, op: &str, args: &A) -> Result<T> {
        let answer: std::result::Result<T, WireDiskError> = self
            .peer
            .call(&format!("disk/{op}"), Some(&self.path), args)
            .await
            .map_err(|e| self.offline(&e))?;
        self.observe(answer.map_err(WireDiskError::into_disk_error))
    }
}

impl RemoteDisk {
    async fn write_shard(
        &self,
        data_id: Uuid,
        part: u32,
        replace: bool,
    ) -> Result<Box<dyn ShardWriter>> {
        let args = proto::encode(&args::Shard {
            data_id,
            part,
            replace,
        });
        // Two chunks per frame (header, payload) plus the arguments: a
        // capacity of 5 keeps at most about two frames queued per drive.
        let (tx, body) = ChannelBody::new(5);
        tx.send(Ok(Bytes::from((args.len() as u32).to_be_bytes().to_vec())))
            .await
            .map_err(|_| DiskError::Offline("shard write channel closed".to_owned()))?;
        tx.send(Ok(args))
            .await
            .map_err(|_| DiskError::Offline("shard write channel closed".to_owned()))?;
        let peer = self.peer.clone();
        let path = self.path.clone();
        let node = self.peer.node.clone();
        let task = tokio::spawn(async move {
            let resp = peer
                .request(Method::POST, "disk/shard-write", Some(&path), body.boxed())
                .await
                .map_err(|e| DiskError::Offline(format!("node {node} {e}")))?;
            let status = resp.status();
            let bytes = read_body(resp)
                .await
                .map_err(|e| DiskError::Offline(format!("node {node} {e}")))?;
            if status != StatusCode::OK {
                return Err(DiskError::Offline(format!(
                    "node {node}: shard write answered {status}"
                )));
            }
            let answer: std::result::Result<(), WireDiskError> = proto::decode(&bytes)
                .map_err(|e| DiskError::Offline(format!("node {node}: {e}")))?;
            answer.map_err(WireDiskError::into_disk_error)
        });
        Ok(Box::new(RemoteShardWriter {
            tx: Some(tx),
            task: Some(task),
        }))
    }
}

#[async_trait]
impl Disk for RemoteDisk {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn is_online(&self) -> bool {
        self.online.load(Ordering::Relaxed) && self.peer.is_connected()
    }

    fn stall(&self, reason: &str) {
        // Its node answers for a hung drive within the drive's deadline:
        // a caller that heard nothing for longer lost the node.
        self.peer.stall(reason);
    }

    fn offline_reason(&self) -> Option<String> {
        if !self.peer.is_connected() {
            return Some(match self.peer.failure() {
                Some(why) => format!("node {} {why}", self.peer.node),
                None => format!("node {} is not connected", self.peer.node),
            });
        }
        if self.online.load(Ordering::Relaxed) {
            None
        } else {
            self.reason.lock().expect("reason").clone()
        }
    }

    async fn read_format(&self) -> Result<Option<Format>> {
        self.call("read-format", &()).await
    }

    async fn write_format(&self, format: &Format) -> Result<()> {
        self.call("write-format", format).await
    }

    async fn connect(&self, expected: &Format) -> Result<()> {
        let result = self.call("connect", expected).await;
        if result.is_ok() {
            self.online.store(true, Ordering::Relaxed);
            *self.reason.lock().expect("reason") = None;
        }
        result
    }

    async fn space(&self) -> Result<DiskSpace> {
        self.call("space", &()).await
    }

    async fn commit(&self, op: MetaOp) -> Result<MetaOutcome> {
        self.call("commit", &op).await
    }

    async fn list_buckets(&self) -> Result<Vec<BucketRecord>> {
        self.call("list-buckets", &()).await
    }

    async fn get_bucket(&self, bucket: &str) -> Result<BucketRecord> {
        let args = args::Bucket {
            bucket: bucket.to_owned(),
        };
        self.call("get-bucket", &args).await
    }

    async fn read_object(&self, bucket: &str, key: &str, data: ReadData) -> Result<ReadObject> {
        let args = args::ReadObject {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            data,
        };
        self.call("read-object", &args).await
    }

    async fn list_objects(&self, query: &ListQuery) -> Result<ListPage> {
        self.call("list-objects", query).await
    }

    async fn read_upload(&self, bucket: &str, key: &str, upload_id: Uuid) -> Result<UploadRecord> {
        let args = args::ReadUpload {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upload_id,
        };
        self.call("read-upload", &args).await
    }

    async fn list_parts(
        &self,
        upload_id: Uuid,
        after: u32,
        limit: usize,
    ) -> Result<Vec<UploadPartRecord>> {
        let args = args::ListParts {
            upload_id,
            after,
            limit: limit as u64,
        };
        self.call("list-parts", &args).await
    }

    async fn list_uploads(&self, query: &ListUploadsQuery) -> Result<UploadsPage> {
        self.call("list-uploads", query).await
    }

    async fn create_shard(&self, data_id: Uuid, part: u32) -> Result<Box<dyn ShardWriter>> {
        self.write_shard(data_id, part, false).await
    }

    async fn replace_shard(&self, data_id: Uuid, part: u32) -> Result<Box<dyn ShardWriter>> {
        self.write_shard(data_id, part, true).await
    }

    async fn open_shard(&self, data_id: Uuid, part: u32) -> Result<Box<dyn ShardReader>> {
        let handle: u64 = self
            .call(
                "shard-open",
                &args::Shard {
                    data_id,
                    part,
                    replace: false,
                },
            )
            .await?;
        Ok(Box::new(RemoteShardReader {
            peer: self.peer.clone(),
            path: self.path.clone(),
            handle,
        }))
    }

    async fn delete_shards(&self, data_id: Uuid, parts: &[u32]) -> Result<()> {
        let args = args::Shards {
            data_id,
            parts: parts.to_vec(),
        };
        self.call("delete-shards", &args).await
    }

    async fn remove_shards(&self, data_id: Uuid, parts: &[u32]) -> Result<()> {
        let args = args::Shards {
            data_id,
            parts: parts.to_vec(),
        };
        self.call("remove-shards", &args).await
    }

    async fn remove_orphans(&self, grace: std::time::Duration) -> Result<usize> {
        let args = args::Grace {
            grace_ms: grace.as_millis() as u64,
        };
        self.call::<_, u64>("remove-orphans", &args)
            .await
            .map(|n| n as usize)
    }

    async fn purge_trash(&self, grace: std::time::Duration) -> Result<usize> {
        let args = args::Grace {
            grace_ms: grace.as_millis() as u64,
        };
        self.call::<_, u64>("purge-trash", &args)
            .await
            .map(|n| n as usize)
    }
}

struct RemoteShardWriter {
    tx: Option<mpsc::Sender<std::result::Result<Bytes, io::Error>>>,
    task: Option<JoinHandle<Result<()>>>,
}

impl RemoteShardWriter {
    /// The outcome of the request, once it has ended.
    async fn outcome(&mut self) -> Result<()> {
        self.tx.take();
        match self.task.take() {
            Some(task) => task
                .await
                .unwrap_or_else(|e| Err(DiskError::Offline(format!("shard write task: {e}")))),
            None => Err(DiskError::Offline("shard write already ended".to_owned())),
        }
    }

    async fn send(&mut self, chunk: Bytes) -> Result<()> {
        let sent = match &self.tx {
            Some(tx) => tx.send(Ok(chunk)).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The request ended early: its outcome says why.
        match self.outcome().await {
            Ok(()) => Err(DiskError::Offline(
                "the peer ended the shard write early".to_owned(),
            )),
            Err(err) => Err(err),
        }
    }
}

#[async_trait]
impl ShardWriter for RemoteShardWriter {
    async fn write(&mut self, frame: Bytes) -> Result<()> {
        let mut header = Vec::with_capacity(5);
        header.push(FRAME_DATA);
        header.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        self.send(Bytes::from(header)).await?;
        self.send(frame).await
    }

    async fn finish(mut self: Box<Self>) -> Result<()> {
        self.send(Bytes::from_static(&[FRAME_FINISH, 0, 0, 0, 0]))
            .await?;
        self.outcome().await
    }

    async fn abort(mut self: Box<Self>) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(io::Error::other("shard write aborted"))).await;
        }
        let _ = self.outcome().await;
    }
}

struct RemoteShardReader {
    peer: Arc<Peer>,
    path: String,
    handle: u64,
}

#[async_trait]
impl ShardReader for RemoteShardReader {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        let node = &self.peer.node;
        let args = args::ReadAt {
            handle: self.handle,
            offset,
            len: len as u64,
        };
        let offline = |e: CallError| DiskError::Offline(format!("node {node} {e}"));
        let read = async {
            let resp = self
                .peer
                .request(
                    Method::POST,
                    "disk/shard-read",
                    Some(&self.path),
                    crate::client::full(proto::encode(&args)),
                )
                .await
                .map_err(offline)?;
            let ok = resp
                .headers()
                .get(HEADER_RESULT)
                .is_some_and(|v| v.as_bytes() == b"ok");
            let bytes = read_body(resp).await.map_err(offline)?;
            if ok {
                if bytes.len() != len {
                    return Err(DiskError::Offline(format!(
                        "node {node}: shard read returned {} bytes, {len} asked",
                        bytes.len()
                    )));
                }
                return Ok(bytes);
            }
            let err: WireDiskError = proto::decode(&bytes)
                .map_err(|e| DiskError::Offline(format!("node {node}: {e}")))?;
            Err(err.into_disk_error())
        };
        tokio::time::timeout(self.peer.call_timeout(), read)
            .await
            .unwrap_or_else(|_| {
                Err(DiskError::Offline(format!(
                    "node {node}: shard read timed out"
                )))
            })
    }
}

impl Drop for RemoteShardReader {
    fn drop(&mut self) {
        let peer = self.peer.clone();
        let path = std::mem::take(&mut self.path);
        let handle = self.handle;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _: std::result::Result<(), CallError> = peer
                    .call("disk/shard-close", Some(&path), &args::Handle { handle })
                    .await;
            });
        }
    }
}
