//! [`WatchedDisk`]: every call to a drive, local or remote, under a deadline
//! (docs/design.md section 5: a request never waits on a drive that does not
//! answer).
//!
//! A call that misses its deadline fails with [`DiskError::Offline`] for the
//! request that made it, and the drive is marked stalled: until it answers
//! again, every other call fails at once instead of waiting out its own
//! deadline. A drive that is busy rather than hung is given time: a call
//! past its deadline is waited for while the drive keeps completing other
//! calls (one in the last half deadline), up to [`Deadlines::patience`]
//! deadlines, so that heavy load (many large PUTs sharing one disk) is not
//! mistaken for a hung drive. Only the drive monitor's probe
//! (`read_format`, then `connect`) still reaches a stalled drive; when the
//! probe is answered the mark goes.
//! A remote drive that misses a deadline is also reported to its node's
//! connection ([`Disk::stall`]), so that every drive of a frozen node fails
//! fast, not only the one that was asked first.
//!
//! The wrapper also keeps a moving average of each drive's call latency,
//! which readers use to prefer fast drives ([`Disk::latency`]).
//!
//! What it cannot do: stop a blocking call that hangs. That thread stays
//! blocked (on a real hung disk it would be stuck in the kernel anyway); the
//! request stops waiting for it, and nothing else is sent to the drive.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use uuid::Uuid;

use crate::{
    BucketRecord, Disk, DiskError, DiskSpace, Format, ListPage, ListQuery, ListUploadsQuery,
    MetaOp, MetaOutcome, ReadData, ReadObject, Result, ShardReader, ShardWriter, UploadPartRecord,
    UploadRecord, UploadsPage,
};

/// How long drive calls may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// One call: a metadata read or commit, a shard file opened, created or
    /// deleted, one frame of a shard written or read, a shard file made
    /// durable (`CAIRN_DRIVE_MAX_TIMEOUT`).
    pub call: Duration,
    /// A pass over a whole drive: emptying its trash, removing orphan files.
    pub scan: Duration,
    /// How many deadlines a call may take while its drive completes other
    /// calls meanwhile (busy, not hung).
    pub patience: u32,
}

/// The default deadline of one drive call. The slowest drive calls seen on
/// this project's machines under benchmark load took well under a second
/// (commits behind a compaction's fsyncs: docs/benchmarks.md, "Deadlines"),
/// and a request through a frozen node should wait at most one deadline.
pub const DEFAULT_CALL_DEADLINE: Duration = Duration::from_secs(5);

/// What a remote drive's caller adds to the deadline: the drive's own node
/// answers a call to a hung drive within the deadline itself, so a caller
/// that waits this much longer and hears nothing knows the node is gone.
pub const REMOTE_MARGIN: Duration = Duration::from_secs(1);

/// The default [`Deadlines::patience`].
pub const DEFAULT_PATIENCE: u32 = 6;

/// How fast a shard file is assumed, at the least, to reach the disk when
/// it is made durable: its flush's deadline grows by its size at this rate.
const MIN_FLUSH_RATE: u64 = 16 << 20;

impl Default for Deadlines {
    fn default() -> Deadlines {
        Deadlines {
            call: DEFAULT_CALL_DEADLINE,
            scan: Duration::from_secs(3600),
            patience: DEFAULT_PATIENCE,
        }
    }
}

impl Deadlines {
    /// The deadlines of a caller of a drive on another node.
    pub fn remote(self) -> Deadlines {
        Deadlines {
            call: self.call + REMOTE_MARGIN,
            scan: self.scan + REMOTE_MARGIN,
            patience: self.patience,
        }
    }

    /// The longest one call is ever waited for: its deadline, as long as
    /// the drive keeps answering other calls.
    pub fn max_wait(&self) -> Duration {
        self.call * self.patience.max(1)
    }
}

/// The drive's health as its calls show it, shared with its open shard
/// readers and writers.
struct Watch {
    inner: Arc<dyn Disk>,
    patience: u32,
    stalled: AtomicBool,
    reason: Mutex<Option<String>>,
    /// Moving average of call latency, in microseconds (0: none yet).
    latency_us: AtomicU64,
    /// When the drive last completed a call, in microseconds since
    /// [`Watch::born`] (0: never): a call past its deadline on a drive that
    /// answered others lately is on a busy drive, not a hung one.
    last_answer_us: AtomicU64,
    born: Instant,
}

impl Watch {
    fn check(&self) -> Result<()> {
        if !self.stalled.load(Ordering::Acquire) {
            return Ok(());
        }
        let reason = self
            .reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Err(DiskError::Offline(format!(
            "{}; not asked again until it answers",
            reason.unwrap_or_else(|| "stalled".to_owned())
        )))
    }

    fn note_latency(&self, took: Duration) {
        let sample = took.as_micros().min(u128::from(u64::MAX / 2)) as u64;
        let old = self.latency_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample.max(1)
        } else {
            // An eighth of each new sample: a drive that turns slow is seen
            // within a few calls, one slow call does not mark a drive slow.
            (old - old / 8 + sample / 8).max(1)
        };
        self.latency_us.store(new, Ordering::Relaxed);
    }

    /// Counts an answer as the drive's progress: one that says the drive is
    /// offline (its node answering for a hung drive) is none.
    fn note_answer<T>(&self, result: &Result<T>) {
        if !matches!(result, Err(err) if err.is_offline()) {
            let us = self.born.elapsed().as_micros().max(1) as u64;
            self.last_answer_us.fetch_max(us, Ordering::AcqRel);
        }
    }

    /// Whether the drive completed a call within the last `window`.
    fn answered_within(&self, window: Duration) -> bool {
        match self.last_answer_us.load(Ordering::Acquire) {
            0 => false,
            us => {
                self.born
                    .elapsed()
                    .saturating_sub(Duration::from_micros(us))
                    < window
            }
        }
    }

    fn stall(&self, reason: &str) {
        {
            let mut held = self.reason.lock().unwrap_or_else(|e| e.into_inner());
            if held.is_none() {
                tracing::warn!(
                    drive = self.inner.endpoint(), %reason,
                    "drive missed its deadline: treated as offline until it answers again"
                );
            }
            *held = Some(reason.to_owned());
            self.stalled.store(true, Ordering::Release);
        }
        self.inner.stall(reason);
    }

    fn answered(&self) {
        if self.stalled.swap(false, Ordering::AcqRel) {
            self.reason.lock().unwrap_or_else(|e| e.into_inner()).take();
            tracing::info!(
                drive = self.inner.endpoint(),
                "drive answers again after missing a deadline"
            );
        }
    }

    /// Runs `call` under `deadline`, extended half a deadline at a time
    /// while the drive keeps completing other calls (up to `patience`
    /// deadlines in all); a miss stalls the drive.
    ///
    /// Only answers in the last half deadline count: a drive that hangs
    /// may still finish the calls it had begun, just after it hung, and
    /// those must not buy the calls that wait on it another deadline.
    async fn bounded<T>(
        &self,
        op: &str,
        deadline: Duration,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.bounded_as(op, deadline, Shows::Progress, call).await
    }

    /// [`Watch::bounded`], for a call whose success may show nothing of the
    /// drive ([`Shows`]).
    async fn bounded_as<T>(
        &self,
        op: &str,
        deadline: Duration,
        shows: Shows,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let started = Instant::now();
        let mut call = std::pin::pin!(call);
        let most = deadline * self.patience.max(1);
        let window = deadline / 2;
        let mut wait = deadline;
        loop {
            if let Ok(result) = tokio::time::timeout(wait, &mut call).await {
                if shows == Shows::Progress {
                    self.note_answer(&result);
                    self.note_latency(started.elapsed());
                }
                return result;
            }
            // Busy, not hung: it answered other calls lately.
            let left = most.saturating_sub(started.elapsed());
            if left.is_zero() || !self.answered_within(window) {
                break;
            }
            wait = window.min(left);
        }
        self.note_latency(started.elapsed());
        let reason = format!(
            "{} did not answer {op} within {:.1?}",
            self.inner.endpoint(),
            started.elapsed()
        );
        self.stall(&reason);
        Err(DiskError::Offline(reason))
    }
}

/// What a call that succeeds says of its drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shows {
    /// The drive answered it: the drive is at work.
    Progress,
    /// Nothing: a frame handed to a shard stream, or the stream opened, may
    /// only have gone into buffers on the way (a peer's stream takes
    /// megabytes before anyone reads them, a frozen peer's too).
    Nothing,
}

/// A drive whose every call runs under a deadline (module docs).
pub struct WatchedDisk {
    watch: Arc<Watch>,
    deadlines: Deadlines,
}

impl WatchedDisk {
    pub fn new(inner: Arc<dyn Disk>, deadlines: Deadlines) -> WatchedDisk {
        WatchedDisk {
            watch: Arc::new(Watch {
                inner,
                patience: deadlines.patience,
                stalled: AtomicBool::new(false),
                reason: Mutex::new(None),
                latency_us: AtomicU64::new(0),
                last_answer_us: AtomicU64::new(0),
                born: Instant::now(),
            }),
            deadlines,
        }
    }

    fn inner(&self) -> &dyn Disk {
        self.watch.inner.as_ref()
    }

    fn watched_writer(&self, inner: Box<dyn ShardWriter>) -> Box<dyn ShardWriter> {
        Box::new(WatchedWriter {
            inner,
            watch: self.watch.clone(),
            deadline: self.deadlines.call,
            written: 0,
            frames_show: self.streams_shows(),
        })
    }

    /// What a frame taken, or a stream opened, says of this drive.
    fn streams_shows(&self) -> Shows {
        if self.inner().streams_buffer() {
            Shows::Nothing
        } else {
            Shows::Progress
        }
    }

    /// A call that a stalled drive is not asked.
    async fn call<T>(&self, op: &str, call: impl Future<Output = Result<T>>) -> Result<T> {
        self.watch.check()?;
        self.watch.bounded(op, self.deadlines.call, call).await
    }

    /// A shard stream opened for writing: a call that a stalled drive is
    /// not asked, and whose success may show nothing ([`Shows`]).
    async fn open_stream(
        &self,
        op: &str,
        call: impl Future<Output = Result<Box<dyn ShardWriter>>>,
    ) -> Result<Box<dyn ShardWriter>> {
        self.watch.check()?;
        self.watch
            .bounded_as(op, self.deadlines.call, self.streams_shows(), call)
            .await
    }
}

#[async_trait]
impl Disk for WatchedDisk {
    fn endpoint(&self) -> &str {
        self.inner().endpoint()
    }

    fn is_online(&self) -> bool {
        !self.watch.stalled.load(Ordering::Acquire) && self.inner().is_online()
    }

    fn offline_reason(&self) -> Option<String> {
        self.watch
            .check()
            .err()
            .map(|e| e.to_string())
            .or_else(|| self.inner().offline_reason())
    }

    fn latency(&self) -> Option<Duration> {
        match self.watch.latency_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    fn stall(&self, reason: &str) {
        self.watch.stall(reason);
    }

    // The monitor's probe: asked even while stalled.
    async fn read_format(&self) -> Result<Option<Format>> {
        let deadline = self.deadlines.call;
        self.watch
            .bounded("read-format", deadline, self.inner().read_format())
            .await
    }

    async fn write_format(&self, format: &Format) -> Result<()> {
        let deadline = self.deadlines.call;
        self.watch
            .bounded("write-format", deadline, self.inner().write_format(format))
            .await
    }

    async fn connect(&self, expected: &Format) -> Result<()> {
        // Opening a metadata store replays its journal: a scan's deadline.
        let deadline = self.deadlines.scan;
        let result = self
            .watch
            .bounded("connect", deadline, self.inner().connect(expected))
            .await;
        if result.is_ok() {
            self.watch.answered();
        }
        result
    }

    async fn space(&self) -> Result<DiskSpace> {
        self.call("space", self.inner().space()).await
    }

    async fn commit(&self, op: MetaOp) -> Result<MetaOutcome> {
        self.call("commit", self.inner().commit(op)).await
    }

    async fn list_buckets(&self) -> Result<Vec<BucketRecord>> {
        self.call("list-buckets", self.inner().list_buckets()).await
    }

    async fn get_bucket(&self, bucket: &str) -> Result<BucketRecord> {
        self.call("get-bucket", self.inner().get_bucket(bucket))
            .await
    }

    async fn read_object(&self, bucket: &str, key: &str, data: ReadData) -> Result<ReadObject> {
        self.call("read-object", self.inner().read_object(bucket, key, data))
            .await
    }

    fn reads_block(&self) -> bool {
        self.inner().reads_block()
    }

    fn streams_buffer(&self) -> bool {
        self.inner().streams_buffer()
    }

    /// Not bounded: the caller bounds the blocking task it runs in
    /// (`read_records` in the object layer) and stalls the drive it finds
    /// hung there.
    fn read_object_blocking(&self, bucket: &str, key: &str, data: ReadData) -> Result<ReadObject> {
        self.watch.check()?;
        let started = Instant::now();
        let result = self.inner().read_object_blocking(bucket, key, data);
        self.watch.note_answer(&result);
        self.watch.note_latency(started.elapsed());
        result
    }

    async fn list_objects(&self, query: &ListQuery) -> Result<ListPage> {
        self.call("list-objects", self.inner().list_objects(query))
            .await
    }

    fn list_generation(&self, bucket: &str) -> Option<u64> {
        if self.watch.stalled.load(Ordering::Acquire) {
            return None;
        }
        self.inner().list_generation(bucket)
    }

    async fn read_upload(&self, bucket: &str, key: &str, upload_id: Uuid) -> Result<UploadRecord> {
        self.call(
            "read-upload",
            self.inner().read_upload(bucket, key, upload_id),
        )
        .await
    }

    async fn list_parts(
        &self,
        upload_id: Uuid,
        after: u32,
        limit: usize,
    ) -> Result<Vec<UploadPartRecord>> {
        self.call(
            "list-parts",
            self.inner().list_parts(upload_id, after, limit),
        )
        .await
    }

    async fn list_uploads(&self, query: &ListUploadsQuery) -> Result<UploadsPage> {
        self.call("list-uploads", self.inner().list_uploads(query))
            .await
    }

    async fn create_shard(&self, data_id: Uuid, part: u32) -> Result<Box<dyn ShardWriter>> {
        let opened = self.inner().create_shard(data_id, part);
        let inner = self.open_stream("create-shard", opened).await?;
        Ok(self.watched_writer(inner))
    }

    async fn replace_shard(&self, data_id: Uuid, part: u32) -> Result<Box<dyn ShardWriter>> {
        let opened = self.inner().replace_shard(data_id, part);
        let inner = self.open_stream("replace-shard", opened).await?;
        Ok(self.watched_writer(inner))
    }

    async fn open_shard(&self, data_id: Uuid, part: u32) -> Result<Box<dyn ShardReader>> {
        let inner = self
            .call("open-shard", self.inner().open_shard(data_id, part))
            .await?;
        Ok(Box::new(WatchedReader {
            inner,
            watch: self.watch.clone(),
            deadline: self.deadlines.call,
        }))
    }

    async fn delete_shards(&self, data_id: Uuid, parts: &[u32]) -> Result<()> {
        self.call("delete-shards", self.inner().delete_shards(data_id, parts))
            .await
    }

    async fn remove_shards(&self, data_id: Uuid, parts: &[u32]) -> Result<()> {
        self.call("remove-shards", self.inner().remove_shards(data_id, parts))
            .await
    }

    async fn purge_trash(&self, grace: Duration) -> Result<usize> {
        self.watch.check()?;
        let deadline = self.deadlines.scan;
        self.watch
            .bounded("purge-trash", deadline, self.inner().purge_trash(grace))
            .await
    }

    async fn remove_orphans(&self, grace: Duration) -> Result<usize> {
        self.watch.check()?;
        let deadline = self.deadlines.scan;
        self.watch
            .bounded(
                "remove-orphans",
                deadline,
                self.inner().remove_orphans(grace),
            )
            .await
    }
}

/// A shard writer whose every frame, and the final flush, has a deadline:
/// a stream to a drive that stops taking frames fails instead of waiting.
struct WatchedWriter {
    inner: Box<dyn ShardWriter>,
    watch: Arc<Watch>,
    deadline: Duration,
    /// Bytes written so far: making them durable may take longer than one
    /// call's deadline.
    written: u64,
    /// What a frame taken says of the drive.
    frames_show: Shows,
}

#[async_trait]
impl ShardWriter for WatchedWriter {
    async fn write(&mut self, frame: Bytes) -> Result<()> {
        let (watch, deadline) = (self.watch.clone(), self.deadline);
        self.written += frame.len() as u64;
        watch
            .bounded_as(
                "a shard frame",
                deadline,
                self.frames_show,
                self.inner.write(frame),
            )
            .await
    }

    async fn finish(self: Box<Self>) -> Result<()> {
        let WatchedWriter {
            inner,
            watch,
            deadline,
            written,
            frames_show: _,
        } = *self;
        let deadline = deadline + Duration::from_millis(written * 1000 / MIN_FLUSH_RATE);
        watch
            .bounded("a shard file's flush", deadline, inner.finish())
            .await
    }

    async fn abort(self: Box<Self>) {
        let WatchedWriter {
            inner,
            watch: _,
            deadline,
            written: _,
            frames_show: _,
        } = *self;
        // Best effort: what an abort leaves behind the scanner removes.
        let _ = tokio::time::timeout(deadline, inner.abort()).await;
    }
}

struct WatchedReader {
    inner: Box<dyn ShardReader>,
    watch: Arc<Watch>,
    deadline: Duration,
}

#[async_trait]
impl ShardReader for WatchedReader {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        self.watch.check()?;
        self.watch
            .bounded(
                "a shard read",
                self.deadline,
                self.inner.read_at(offset, len),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LocalDisk, LocalDiskOptions};

    const DEADLINE: Duration = Duration::from_secs(1);

    fn watched() -> WatchedDisk {
        // Never connected: the calls below are the test's own futures.
        let inner = LocalDisk::new(
            "/nonexistent/cairn-watch",
            LocalDiskOptions::default(),
            false,
        )
        .expect("drive");
        WatchedDisk::new(
            Arc::new(inner),
            Deadlines {
                call: DEADLINE,
                scan: DEADLINE,
                patience: DEFAULT_PATIENCE,
            },
        )
    }

    fn never() -> impl Future<Output = Result<()>> {
        std::future::pending()
    }

    #[tokio::test]
    async fn issue_26_a_call_on_a_drive_that_answers_nothing_fails_at_its_deadline() {
        let disk = watched();
        let began = Instant::now();
        let result = disk.watch.bounded("test", DEADLINE, never()).await;
        assert!(matches!(result, Err(DiskError::Offline(_))), "{result:?}");
        assert!(began.elapsed() < DEADLINE * 3 / 2, "{:?}", began.elapsed());
        assert!(disk.watch.check().is_err(), "the drive is stalled");
    }

    #[tokio::test]
    async fn issue_26_calls_a_drive_finished_as_it_hung_buy_no_second_deadline() {
        let disk = watched();
        // A call begun before the hang ends just after this one began.
        let watch = disk.watch.clone();
        let straggler = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            watch.note_answer(&Ok::<(), DiskError>(()));
        });
        let began = Instant::now();
        let result = disk.watch.bounded("test", DEADLINE, never()).await;
        assert!(matches!(result, Err(DiskError::Offline(_))), "{result:?}");
        assert!(began.elapsed() < DEADLINE * 3 / 2, "{:?}", began.elapsed());
        straggler.await.unwrap();
    }

    /// A shard stream that takes every frame at once, as a peer's stream
    /// does into its buffers while the peer is frozen.
    struct Buffered;

    #[async_trait]
    impl ShardWriter for Buffered {
        async fn write(&mut self, _frame: Bytes) -> Result<()> {
            Ok(())
        }
        async fn finish(self: Box<Self>) -> Result<()> {
            std::future::pending().await
        }
        async fn abort(self: Box<Self>) {}
    }

    #[tokio::test]
    async fn issue_26_frames_taken_into_buffers_are_no_answer_of_a_frozen_drive() {
        let disk = watched();
        // As a drive on another node streams (`Disk::streams_buffer`).
        let mut writer = WatchedWriter {
            inner: Box::new(Buffered),
            watch: disk.watch.clone(),
            deadline: DEADLINE,
            written: 0,
            frames_show: Shows::Nothing,
        };
        let streaming = tokio::spawn(async move {
            for _ in 0..30 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if writer.write(Bytes::from_static(b"frame")).await.is_err() {
                    break;
                }
            }
        });
        let began = Instant::now();
        let result = disk.watch.bounded("test", DEADLINE, never()).await;
        assert!(matches!(result, Err(DiskError::Offline(_))), "{result:?}");
        assert!(began.elapsed() < DEADLINE * 3 / 2, "{:?}", began.elapsed());
        streaming.abort();
    }

    #[tokio::test]
    async fn issue_26_a_busy_drive_is_waited_for_past_the_deadline() {
        let disk = watched();
        let watch = disk.watch.clone();
        // Other calls keep completing, one every 100 ms, for 3 deadlines.
        let busy = tokio::spawn(async move {
            for _ in 0..30 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                watch.note_answer(&Ok::<(), DiskError>(()));
            }
        });
        let slow = async {
            tokio::time::sleep(DEADLINE * 5 / 2).await;
            Ok::<u32, DiskError>(7)
        };
        let result = disk.watch.bounded("test", DEADLINE, slow).await;
        assert_eq!(result.ok(), Some(7));
        assert!(disk.watch.check().is_ok(), "a busy drive is not stalled");
        busy.abort();
    }
}
