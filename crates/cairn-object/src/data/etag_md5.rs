//! The hashing threads where concurrent PUTs' MD5s (their ETags) meet, so
//! that up to four streams are hashed side by side
//! (`cairn_erasure::Md5Lanes`: 3.2 to 3.7 times the rate of one stream on a
//! core with SSE2, 4.2 with AVX-512, `bench hashes`).
//!
//! A PUT opens an [`Md5Stream`] and pushes each large block into it without
//! waiting: the block is queued behind the stream's earlier blocks, and the
//! PUT reads and encodes the next one meanwhile. A thread takes up to four
//! streams with queued blocks and hashes them side by side (or one alone),
//! carrying on with a stream's next queued block when one ends. When fewer
//! than four streams have blocks queued but other PUTs are still sending
//! theirs, the thread waits for them up to [`GATHER_WAIT`]: idle lanes cost
//! as much as full ones, and no PUT waits for its MD5 until its body ends. A
//! queued block keeps its share of the write budget until it is hashed, so
//! the queues hold no memory the budget does not count, and a PUT that runs
//! ahead of the hashing thread stops at the budget.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_erasure::{MD5_LANES as LANES, Md5Lanes, Md5State};
use tokio::sync::oneshot;

/// Blocks of 64 bytes a thread hashes before it looks for newly queued work.
const SLICE_BLOCKS: usize = 1024;

/// How long a thread with fewer than four streams in hand waits for the next
/// block of another stream in progress. A stream at 100 MiB/s hands over a
/// 1 MiB block every 10 ms; the PUTs themselves do not wait, as their blocks
/// are already queued.
const GATHER_WAIT: Duration = Duration::from_millis(8);

/// The hashing threads stopped (a panic while hashing this stream).
#[derive(Debug)]
pub struct HashingStopped;

/// One body's MD5, hashed on the hashing threads beside other bodies'.
/// Until the first [`push`](Md5Stream::push) it is hashed on the caller's
/// thread; dropping it unfinished drops its queued blocks.
pub struct Md5Stream {
    at: At,
    threads: Option<&'static Threads>,
}

/// Where a stream's state is.
enum At {
    /// Here: nothing was handed to the threads yet.
    Here(Md5State),
    /// In slot `id` on the threads.
    Threads(u64),
    /// Taken by `finish`.
    Done,
}

impl Default for Md5Stream {
    fn default() -> Self {
        Md5Stream::on(threads())
    }
}

impl Md5Stream {
    fn on(threads: Option<&'static Threads>) -> Md5Stream {
        Md5Stream {
            at: At::Here(Md5State::default()),
            threads,
        }
    }

    /// Whether blocks pushed go to a hashing thread; if none could be
    /// started, the caller hashes with [`update`](Md5Stream::update).
    pub fn threaded(&self) -> bool {
        self.threads.is_some()
    }

    /// Hashes `chunks` after everything before: on this thread when nothing
    /// was handed over yet, else queued behind what was.
    pub fn update(&mut self, chunks: &[Bytes]) {
        match &mut self.at {
            At::Here(state) => chunks.iter().for_each(|chunk| state.update(chunk)),
            _ => self.push(chunks.to_vec(), ()),
        }
    }

    /// Queues `chunks` to be hashed after everything before, on a hashing
    /// thread; `hold` is dropped with them once they are hashed (a PUT's
    /// share of the write budget, which counts their memory). Hashes here
    /// when no hashing thread could be started.
    pub fn push(&mut self, chunks: Vec<Bytes>, hold: impl Send + 'static) {
        let Some(threads) = self.threads else {
            if let At::Here(state) = &mut self.at {
                chunks.iter().for_each(|chunk| state.update(chunk));
            }
            return;
        };
        let mut inner = threads.lock();
        let id = match std::mem::replace(&mut self.at, At::Done) {
            At::Threads(id) => id,
            At::Here(state) => {
                let id = inner.next_id;
                inner.next_id += 1;
                inner.slots.insert(
                    id,
                    Slot {
                        state: Some(state),
                        queued: VecDeque::new(),
                        done: None,
                    },
                );
                id
            }
            At::Done => unreachable!("`finish` takes the stream"),
        };
        self.at = At::Threads(id);
        // The slot is gone only if a panic on a hashing thread dropped it;
        // `finish` reports that.
        if let Some(slot) = inner.slots.get_mut(&id) {
            slot.queued.push_back(Queued {
                chunks,
                _hold: Box::new(hold),
            });
            if slot.state.is_some() && slot.queued.len() == 1 {
                inner.runnable.push_back(id);
            }
        }
        drop(inner);
        threads.ready.notify_all();
    }

    /// The state after every block, once the threads have hashed them.
    pub async fn finish(mut self) -> Result<Md5State, HashingStopped> {
        let id = match std::mem::replace(&mut self.at, At::Done) {
            At::Here(state) => return Ok(state),
            At::Threads(id) => id,
            At::Done => unreachable!("`finish` takes the stream"),
        };
        let threads = self.threads.ok_or(HashingStopped)?;
        let received = {
            let mut inner = threads.lock();
            let Some(slot) = inner.slots.get_mut(&id) else {
                return Err(HashingStopped);
            };
            if slot.queued.is_empty()
                && let Some(state) = slot.state.take()
            {
                inner.slots.remove(&id);
                return Ok(state);
            }
            let (done, received) = oneshot::channel();
            slot.done = Some(done);
            received
        };
        // A thread waiting to fill its lanes must not keep this PUT waiting.
        threads.ready.notify_all();
        received.await.map_err(|_| HashingStopped)
    }
}

impl Drop for Md5Stream {
    fn drop(&mut self) {
        if let (At::Threads(id), Some(threads)) = (&self.at, self.threads) {
            // Frees the queued blocks and their budget; a thread hashing
            // one of them drops it when it finds the slot gone.
            threads.lock().slots.remove(id);
        }
    }
}

/// A block waiting in its stream's queue.
struct Queued {
    chunks: Vec<Bytes>,
    _hold: Box<dyn Send>,
}

/// A stream as the threads see it.
struct Slot {
    /// `None` while a thread hashes the stream.
    state: Option<Md5State>,
    queued: VecDeque<Queued>,
    /// Set when the PUT waits for the final state.
    done: Option<oneshot::Sender<Md5State>>,
}

struct Inner {
    slots: HashMap<u64, Slot>,
    /// Streams with blocks queued and no thread hashing them, oldest first.
    runnable: VecDeque<u64>,
    next_id: u64,
}

/// The queue the hashing threads take their work from.
struct Threads {
    inner: Mutex<Inner>,
    ready: Condvar,
}

/// The hashing threads, started on first use: one per four cores, so that on
/// a small machine the streams of concurrent PUTs meet on one thread (two
/// threads hashing two streams each would save nothing), and on a large one
/// hashing does not cap PUT throughput.
fn threads() -> Option<&'static Threads> {
    static THREADS: OnceLock<Option<&'static Threads>> = OnceLock::new();
    *THREADS.get_or_init(|| {
        let count = std::thread::available_parallelism().map_or(1, |n| n.get().div_ceil(4));
        start_threads(count)
    })
}

/// `count` hashing threads around a queue of their own, which lives as long
/// as the process.
fn start_threads(count: usize) -> Option<&'static Threads> {
    let threads: &'static Threads = Box::leak(Box::new(Threads {
        inner: Mutex::new(Inner {
            slots: HashMap::new(),
            runnable: VecDeque::new(),
            next_id: 0,
        }),
        ready: Condvar::new(),
    }));
    let mut started = 0;
    for i in 0..count {
        let spawned = std::thread::Builder::new()
            .name(format!("cairn-md5-{i}"))
            .spawn(move || threads.run());
        match spawned {
            Ok(_) => started += 1,
            Err(err) => tracing::warn!("cannot start an MD5 thread: {err}"),
        }
    }
    (started > 0).then_some(threads)
}

impl Threads {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self) {
        let mut lanes: Vec<Stream> = Vec::with_capacity(LANES);
        // Since when the lanes, short of four, have waited for other
        // streams' next blocks.
        let mut short_since: Option<Instant> = None;
        loop {
            let mut inner = self.lock();
            if inner.settle(&mut lanes) {
                // A stream caught up with its PUT: give its next block the
                // whole wait.
                short_since = None;
            }
            loop {
                inner.fill(&mut lanes);
                if lanes.len() == LANES {
                    short_since = None;
                    break;
                }
                if lanes.is_empty() {
                    short_since = None;
                    inner = self
                        .ready
                        .wait(inner)
                        .unwrap_or_else(PoisonError::into_inner);
                    continue;
                }
                if !inner.worth_waiting(&lanes) {
                    break;
                }
                let since = *short_since.get_or_insert_with(Instant::now);
                let left = GATHER_WAIT.saturating_sub(since.elapsed());
                if left.is_zero() {
                    break;
                }
                inner = self
                    .ready
                    .wait_timeout(inner, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            drop(inner);
            // A bug here must not leave every later PUT waiting on a dead
            // thread: the streams in hand are dropped (their PUTs fail with
            // an internal error) and the thread goes on.
            let hashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                hash_slice(&mut lanes, SLICE_BLOCKS)
            }));
            if hashed.is_err() {
                tracing::error!("the MD5 thread panicked; failing {} PUTs", lanes.len());
                let mut inner = self.lock();
                for stream in lanes.drain(..) {
                    inner.slots.remove(&stream.id);
                }
            }
        }
    }
}

impl Inner {
    /// Takes streams with queued blocks into `lanes`, up to four.
    fn fill(&mut self, lanes: &mut Vec<Stream>) {
        while lanes.len() < LANES {
            let Some(id) = self.runnable.pop_front() else {
                break;
            };
            let Some(state) = self.slots.get_mut(&id).and_then(|slot| slot.state.take()) else {
                continue;
            };
            if let Some(stream) = self.next(id, state) {
                lanes.push(stream);
            }
        }
    }

    /// Moves streams whose block is hashed on to their next queued block, or
    /// gives their state back; true if a stream left the lanes to wait for
    /// its PUT's next block.
    fn settle(&mut self, lanes: &mut Vec<Stream>) -> bool {
        let mut caught_up = false;
        let mut i = 0;
        while i < lanes.len() {
            if lanes[i].blocks_left > 0 {
                i += 1;
                continue;
            }
            let stream = lanes.swap_remove(i);
            let id = stream.id;
            match self.next(id, stream.into_state()) {
                Some(next) => lanes.push(next),
                None => caught_up |= self.slots.contains_key(&id),
            }
        }
        caught_up
    }

    /// Stream `id`'s next queued block with whole 64-byte blocks in it,
    /// continuing `state`; or, when none is queued, the state goes back to
    /// the slot (or to the PUT, if it waits for it).
    fn next(&mut self, id: u64, mut state: Md5State) -> Option<Stream> {
        loop {
            // The PUT was dropped meanwhile: its blocks go with the state.
            let slot = self.slots.get_mut(&id)?;
            if let Some(block) = slot.queued.pop_front() {
                let stream = Stream::new(id, state, block);
                if stream.blocks_left > 0 {
                    return Some(stream);
                }
                state = stream.into_state();
                continue;
            }
            match slot.done.take() {
                Some(done) => {
                    self.slots.remove(&id);
                    // The PUT may have been abandoned meanwhile.
                    let _ = done.send(state);
                }
                None => slot.state = Some(state),
            }
            return None;
        }
    }

    /// Whether lanes that are not all full should wait for other streams'
    /// next blocks: some stream in progress has none queued yet (its PUT is
    /// still reading it), and no PUT waits for a stream in hand.
    fn worth_waiting(&self, lanes: &[Stream]) -> bool {
        lanes.len() < LANES
            && lanes.iter().all(|s| {
                self.slots
                    .get(&s.id)
                    .is_some_and(|slot| slot.done.is_none())
            })
            && self
                .slots
                .values()
                .any(|slot| slot.state.is_some() && slot.queued.is_empty() && slot.done.is_none())
    }
}

/// Hashes up to `max` blocks of each stream in `lanes`.
fn hash_slice(lanes: &mut [Stream], max: usize) {
    if let [alone] = lanes {
        alone.hash_alone(max);
    } else {
        hash_side_by_side(lanes, max);
    }
}

/// One stream's block in a thread's hands: where it is in the block's
/// chunks, and how many whole 64-byte blocks are left.
struct Stream {
    id: u64,
    state: Md5State,
    chunks: Vec<Bytes>,
    _hold: Box<dyn Send>,
    chunk: usize,
    offset: usize,
    blocks_left: usize,
}

impl Stream {
    fn new(id: u64, state: Md5State, block: Queued) -> Stream {
        let Queued { chunks, _hold } = block;
        let mut stream = Stream {
            id,
            state,
            chunks,
            _hold,
            chunk: 0,
            offset: 0,
            blocks_left: 0,
        };
        // Complete the state's unfinished block first, so that the rest
        // is whole blocks read straight from the chunks.
        while stream.state.partial_len() > 0 && stream.chunk < stream.chunks.len() {
            let data = &stream.chunks[stream.chunk][stream.offset..];
            let take = (64 - stream.state.partial_len()).min(data.len());
            stream.state.update(&data[..take]);
            stream.advance(take);
        }
        let left: usize = stream.chunks[stream.chunk.min(stream.chunks.len())..]
            .iter()
            .map(Bytes::len)
            .sum::<usize>()
            - stream.offset;
        stream.blocks_left = left / 64;
        stream
    }

    /// The next 64 bytes: borrowed from the chunk that holds them whole, or
    /// copied into `scratch` when they straddle two.
    fn next_block<'a>(&'a mut self, scratch: &'a mut [u8; 64]) -> &'a [u8; 64] {
        let (chunk, offset) = (self.chunk, self.offset);
        if self.chunks[chunk].len() - offset >= 64 {
            self.advance(64);
            let this: &'a Stream = self;
            return this.chunks[chunk][offset..]
                .first_chunk()
                .expect("64 bytes left in the chunk");
        }
        let mut filled = 0;
        while filled < 64 {
            let data = &self.chunks[self.chunk][self.offset..];
            let take = (64 - filled).min(data.len());
            scratch[filled..filled + take].copy_from_slice(&data[..take]);
            filled += take;
            self.advance(take);
        }
        scratch
    }

    fn advance(&mut self, bytes: usize) {
        self.offset += bytes;
        while self.chunk < self.chunks.len() && self.offset >= self.chunks[self.chunk].len() {
            self.offset -= self.chunks[self.chunk].len();
            self.chunk += 1;
        }
    }

    /// Hashes up to `max` blocks of this stream with one-stream code.
    fn hash_alone(&mut self, max: usize) {
        let want = max.min(self.blocks_left);
        let mut done = 0;
        while done < want {
            let data = &self.chunks[self.chunk][self.offset..];
            let n = (data.len() / 64).min(want - done);
            if n > 0 {
                self.state.update(&data[..64 * n]);
                self.advance(64 * n);
            } else {
                // The block straddles two chunks.
                let mut scratch = [0u8; 64];
                let block = *self.next_block(&mut scratch);
                self.state.update(&block);
            }
            done += n.max(1);
        }
        self.blocks_left -= done;
    }

    /// Hashes what is left of the block (under 64 bytes) and returns the
    /// state; the chunks, and what was held with them, are dropped.
    fn into_state(mut self) -> Md5State {
        for chunk in &self.chunks[self.chunk.min(self.chunks.len())..] {
            self.state.update(&chunk[self.offset..]);
            self.offset = 0;
        }
        self.state
    }
}

/// Hashes the streams' next blocks in lanes, as many as all of them have
/// (at most `max`).
fn hash_side_by_side(lanes: &mut [Stream], max: usize) {
    let n = lanes
        .iter()
        .map(|s| s.blocks_left)
        .min()
        .unwrap_or(0)
        .min(max);
    let mut hashing = Md5Lanes::new(lanes.iter().map(|s| &s.state));
    let mut scratch = [[0u8; 64]; LANES];
    for _ in 0..n {
        let mut blocks = [&[0u8; 64]; LANES];
        for ((stream, scratch), block) in lanes.iter_mut().zip(&mut scratch).zip(&mut blocks) {
            *block = stream.next_block(scratch);
        }
        hashing.compress(blocks);
    }
    for (lane, stream) in lanes.iter_mut().enumerate() {
        hashing.store(lane, n, &mut stream.state);
        stream.blocks_left -= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::{Digest, Md5};
    use proptest::prelude::*;

    fn reference(data: &[u8]) -> [u8; 16] {
        Md5::digest(data).into()
    }

    /// Bytes that differ by stream and position.
    fn bytes(seed: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 8) as u8)
            .collect()
    }

    /// Cuts `data` at the given points (taken modulo its length).
    fn cut(data: &[u8], cuts: &[usize]) -> Vec<Bytes> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        points.push(0);
        points.push(data.len());
        points.sort_unstable();
        points
            .windows(2)
            .map(|w| Bytes::copy_from_slice(&data[w[0]..w[1]]))
            .collect()
    }

    /// Runs `inner`'s streams as a thread does, without waiting: fill the
    /// lanes, hash a slice of `max` blocks, settle; `push` is called between
    /// slices to queue late blocks.
    fn drain(inner: &mut Inner, max: usize, mut push: impl FnMut(&mut Inner, usize)) {
        let mut lanes = Vec::new();
        for round in 0..100_000 {
            push(inner, round);
            inner.settle(&mut lanes);
            inner.fill(&mut lanes);
            if lanes.is_empty() && inner.runnable.is_empty() && inner.slots.is_empty() {
                return;
            }
            hash_slice(&mut lanes, max);
        }
        panic!("streams left unhashed");
    }

    fn queue(inner: &mut Inner, id: u64, chunks: Vec<Bytes>) {
        let slot = inner.slots.get_mut(&id).expect("open stream");
        slot.queued.push_back(Queued {
            chunks,
            _hold: Box::new(()),
        });
        if slot.state.is_some() && slot.queued.len() == 1 {
            inner.runnable.push_back(id);
        }
    }

    /// Streams of different lengths, each cut into several blocks and each
    /// block into chunks anywhere, some blocks queued late, joining and
    /// leaving the lanes at slice boundaries as a thread runs them.
    #[test]
    fn uneven_streams_side_by_side() {
        let lengths = [
            64 * 40 + 7,
            3,
            64 * 5,
            64 * 70 + 63,
            64 * 12 + 1,
            0,
            64 * 33,
        ];
        let mut inner = Inner {
            slots: HashMap::new(),
            runnable: VecDeque::new(),
            next_id: 0,
        };
        let mut late = Vec::new();
        let mut results = Vec::new();
        for (s, &len) in lengths.iter().enumerate() {
            let data = bytes(s as u8, len);
            // A state that already holds an unfinished block.
            let (head, rest) = data.split_at((s * 13).min(len));
            let mut state = Md5State::default();
            state.update(head);
            let (done, received) = oneshot::channel();
            let id = s as u64;
            inner.slots.insert(
                id,
                Slot {
                    state: Some(state),
                    queued: VecDeque::new(),
                    done: Some(done),
                },
            );
            // Three blocks: two queued now, the last after `s` slices.
            let (a, rest) = rest.split_at(rest.len() / 3);
            let (b, c) = rest.split_at(rest.len() / 2);
            queue(&mut inner, id, cut(a, &[s * 17, 5]));
            queue(&mut inner, id, cut(b, &[s * 101 + 5, 64 * s + 1]));
            late.push((s, id, cut(c, &[s * 7 + 3])));
            results.push((data, received));
        }
        // A stream only sends its state once its last block is hashed, so
        // hold the states back until every block is queued.
        for slot in inner.slots.values_mut() {
            slot.done = None;
        }
        let mut dones: Vec<_> = results
            .iter_mut()
            .map(|(_, received)| {
                let (done, rx) = oneshot::channel();
                *received = rx;
                Some(done)
            })
            .collect();
        drain(&mut inner, 5, |inner, round| {
            for (s, id, chunks) in &mut late {
                if *s == round {
                    queue(inner, *id, std::mem::take(chunks));
                    let slot = inner.slots.get_mut(id).expect("open stream");
                    slot.done = dones[*s].take();
                    // As `finish` does when the stream is idle.
                    if slot.queued.is_empty()
                        && let Some(state) = slot.state.take()
                    {
                        let _ = slot.done.take().expect("done").send(state);
                        inner.slots.remove(id);
                    }
                }
            }
        });
        for (data, mut received) in results {
            let state = received
                .try_recv()
                .expect("a finished stream sends its state");
            assert_eq!(state.finalize(), reference(&data), "{} bytes", data.len());
        }
    }

    /// Polls `done` every millisecond for up to five seconds.
    fn eventually(done: impl Fn() -> bool) -> bool {
        for _ in 0..5000 {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    /// A PUT that fails drops its stream: the blocks it queued, and the
    /// write budget they hold, are freed without being hashed to the end.
    #[test]
    fn issue_6_a_dropped_stream_frees_its_queued_blocks() {
        let held = std::sync::Arc::new(());
        let mut md5 = Md5Stream::default();
        for block in 0..16u8 {
            md5.push(vec![Bytes::from(bytes(block, 1 << 20))], held.clone());
        }
        drop(md5);
        assert!(
            eventually(|| std::sync::Arc::strong_count(&held) == 1),
            "{} holds left",
            std::sync::Arc::strong_count(&held) - 1
        );
    }

    /// A stream whose PUT has stopped sending (a slow client) keeps the
    /// hashing thread waiting at most `GATHER_WAIT` for each of the others'
    /// blocks: theirs are hashed before anyone waits for them.
    #[test]
    fn a_stalled_stream_does_not_hold_up_the_others() {
        // Threads of its own: other tests' streams would fill the lanes.
        let threads = start_threads(1);
        let open = || Md5Stream::on(threads);
        let mut stalled = open();
        stalled.push(vec![Bytes::from(bytes(9, 100_000))], ());
        let data = bytes(1, 3 << 20);
        let held = std::sync::Arc::new(());
        let mut md5 = open();
        for block in data.chunks(1 << 20) {
            md5.push(vec![Bytes::copy_from_slice(block)], held.clone());
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(
            eventually(|| std::sync::Arc::strong_count(&held) == 1),
            "blocks hashed while another stream stalls"
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let state = runtime.block_on(md5.finish()).expect("hashing thread");
        assert_eq!(state.finalize(), reference(&data));
        drop(stalled);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any number of concurrent streams, each cut into blocks and chunks
        /// anywhere, some blocks hashed on the caller's thread before the
        /// first hand-over, hash on the threads to what one `md-5` pass
        /// gives.
        #[test]
        fn issue_6_streams_hashed_side_by_side_match_md5(
            streams in prop::collection::vec(
                (0usize..300_000, prop::collection::vec(any::<usize>(), 0..6), prop::collection::vec(any::<usize>(), 0..8)),
                1..7,
            ),
            here_first in any::<bool>(),
        ) {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap();
            runtime.block_on(async {
                let tasks: Vec<_> = streams.into_iter().enumerate().map(|(s, (len, block_cuts, chunk_cuts))| {
                    tokio::spawn(async move {
                        let data = bytes(s as u8, len);
                        let mut md5 = Md5Stream::default();
                        let mut points: Vec<usize> = block_cuts.iter().map(|c| c % (len + 1)).collect();
                        points.push(0);
                        points.push(len);
                        points.sort_unstable();
                        for (b, w) in points.windows(2).enumerate() {
                            let chunks = cut(&data[w[0]..w[1]], &chunk_cuts);
                            if here_first && b == 0 || b % 3 == 2 {
                                // Hashed here, or queued behind blocks handed over.
                                md5.update(&chunks);
                            } else {
                                md5.push(chunks, ());
                            }
                            tokio::task::yield_now().await;
                        }
                        let state = tokio::time::timeout(Duration::from_secs(10), md5.finish()).await;
                        (state.expect("hashed in time").expect("hashing thread").finalize(), reference(&data))
                    })
                }).collect();
                for task in tasks {
                    let (got, want) = task.await.unwrap();
                    prop_assert_eq!(got, want);
                }
                Ok(())
            })?;
        }
    }
}
