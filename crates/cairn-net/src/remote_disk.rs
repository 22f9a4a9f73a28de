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
use http::StatusCode;
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::auth;
use crate::calls::{self, Call, DiskAnswer};
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

    /// Drive call `C` on the peer.
    async fn call<C, T>(&self, args: &C::Args) -> Result<T>
    where
        C: Call<Answer = DiskAnswer<T>>,
    {
        let answer = self
            .peer
            .call::<C>(Some(&self.path), args)
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
        let prepared = self
            .peer
            .prepare::<calls::ShardWrite>(Some(&self.path), auth::digest(&args), body.boxed())
            .await
            .map_err(|e| self.offline(&e))?;
        let mut writer = RemoteShardWriter {
            tx: Some(tx),
            task: None,
            mac: prepared.token.as_deref().map(|t| self.peer.stream_mac(t)),
        };
        writer
            .send(Bytes::from((args.len() as u32).to_be_bytes().to_vec()))
            .await?;
        writer.send(args).await?;
        let peer = self.peer.clone();
        let node = self.peer.node.clone();
        writer.task = Some(tokio::spawn(async move {
            let resp = peer
                .send(prepared)
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
            let answer: DiskAnswer<()> = proto::decode(&bytes)
                .map_err(|e| DiskError::Offline(format!("node {node}: {e}")))?;
            answer.map_err(WireDiskError::into_disk_error)
        }));
        Ok(Box::new(writer))
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

    fn streams_buffer(&self) -> bool {
        // Frames go into the connection's windows (megabytes) first.
        true
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
        self.call::<calls::ReadFormat, _>(&()).await
    }

    async fn write_format(&self, format: &Format) -> Result<()> {
        self.call::<calls::WriteFormat, _>(format).await
    }

    async fn connect(&self, expected: &Format) -> Result<()> {
        let result = self.call::<calls::Connect, _>(expected).await;
        if result.is_ok() {
            self.online.store(true, Ordering::Relaxed);
            *self.reason.lock().expect("reason") = None;
        }
        result
    }

    async fn space(&self) -> Result<DiskSpace> {
        self.call::<calls::Space, _>(&()).await
    }

    async fn commit(&self, op: MetaOp) -> Result<MetaOutcome> {
        self.call::<calls::Commit, _>(&op).await
    }

    async fn list_buckets(&self) -> Result<Vec<BucketRecord>> {
        self.call::<calls::ListBuckets, _>(&()).await
    }

    async fn get_bucket(&self, bucket: &str) -> Result<BucketRecord> {
        let args = args::Bucket {
            bucket: bucket.to_owned(),
        };
        self.call::<calls::GetBucket, _>(&args).await
    }

    async fn read_object(&self, bucket: &str, key: &str, data: ReadData) -> Result<ReadObject> {
        let args = args::ReadObject {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            data,
        };
        self.call::<calls::ReadObject, _>(&args).await
    }

    async fn list_objects(&self, query: &ListQuery) -> Result<ListPage> {
        self.call::<calls::ListObjects, _>(query).await
    }

    async fn read_upload(&self, bucket: &str, key: &str, upload_id: Uuid) -> Result<UploadRecord> {
        let args = args::ReadUpload {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upload_id,
        };
        self.call::<calls::ReadUpload, _>(&args).await
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
        self.call::<calls::ListParts, _>(&args).await
    }

    async fn list_uploads(&self, query: &ListUploadsQuery) -> Result<UploadsPage> {
        self.call::<calls::ListUploads, _>(query).await
    }

    async fn create_shard(&self, data_id: Uuid, part: u32) -> Result<Box<dyn ShardWriter>> {
        self.write_shard(data_id, part, false).await
    }

    async fn replace_shard(&self, data_id: Uuid, part: u32) -> Result<Box<dyn ShardWriter>> {
        self.write_shard(data_id, part, true).await
    }

    async fn open_shard(&self, data_id: Uuid, part: u32) -> Result<Box<dyn ShardReader>> {
        let handle: u64 = self
            .call::<calls::ShardOpen, _>(&args::Shard {
                data_id,
                part,
                replace: false,
            })
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
        self.call::<calls::DeleteShards, _>(&args).await
    }

    async fn remove_shards(&self, data_id: Uuid, parts: &[u32]) -> Result<()> {
        let args = args::Shards {
            data_id,
            parts: parts.to_vec(),
        };
        self.call::<calls::RemoveShards, _>(&args).await
    }

    async fn remove_orphans(&self, grace: std::time::Duration) -> Result<usize> {
        let args = args::Grace {
            grace_ms: grace.as_millis() as u64,
        };
        self.call::<calls::RemoveOrphans, _>(&args)
            .await
            .map(|n| n as usize)
    }

    async fn purge_trash(&self, grace: std::time::Duration) -> Result<usize> {
        let args = args::Grace {
            grace_ms: grace.as_millis() as u64,
        };
        self.call::<calls::PurgeTrash, _>(&args)
            .await
            .map(|n| n as usize)
    }
}

struct RemoteShardWriter {
    tx: Option<mpsc::Sender<std::result::Result<Bytes, io::Error>>>,
    task: Option<JoinHandle<Result<()>>>,
    /// The MAC over everything sent, that the finish record carries
    /// (protocol version 3).
    mac: Option<auth::StreamMac>,
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
        if let Some(mac) = &mut self.mac {
            mac.update(&chunk);
        }
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
        let record = match self.mac.take() {
            Some(mac) => {
                let mac = mac.finish();
                let mut record = Vec::with_capacity(5 + mac.len());
                record.push(FRAME_FINISH);
                record.extend_from_slice(&(mac.len() as u32).to_be_bytes());
                record.extend_from_slice(&mac);
                Bytes::from(record)
            }
            None => Bytes::from_static(&[FRAME_FINISH, 0, 0, 0, 0]),
        };
        // The MAC is taken: the record that carries it is not part of it.
        self.send(record).await?;
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
                .request::<calls::ShardRead>(Some(&self.path), &args)
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
                let _ = peer
                    .call::<calls::ShardClose>(Some(&path), &args::Handle { handle })
                    .await;
            });
        }
    }
}
