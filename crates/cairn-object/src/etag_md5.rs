//! The hashing threads where concurrent PUTs' MD5s (their ETags) meet, so
//! that up to four streams are hashed side by side
//! (`cairn_erasure::Md5Lanes`, 2.2 times the rate of one stream on a core).
//!
//! A PUT hands each large block to [`submit`] and keeps encoding it
//! meanwhile; a thread takes up to four streams' blocks from one queue and
//! hashes them side by side, or alone when only one is waiting, taking in
//! newly queued blocks between slices of 64 KiB. A stream has at most one
//! block queued, since it waits for its state before handing over the next
//! one, and the block keeps its share of the write budget until it is
//! hashed, so the queue holds no memory the budget does not count.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};

use bytes::Bytes;
use cairn_erasure::{MD5_LANES as LANES, Md5Lanes, Md5State};
use tokio::sync::oneshot;

/// Blocks of 64 bytes a thread hashes before it looks for newly queued work.
const SLICE_BLOCKS: usize = 1024;

/// Hashes `chunks` after `state` on a hashing thread, beside other streams'
/// blocks; the receiver gets the state back. `hold` is dropped with the
/// chunks once they are hashed (a PUT's share of the write budget, which
/// counts their memory). `Err` returns the state when no hashing thread
/// could be started: the caller then hashes the chunks itself.
pub fn submit(
    state: Md5State,
    chunks: Vec<Bytes>,
    hold: impl Send + 'static,
) -> Result<oneshot::Receiver<Md5State>, Md5State> {
    let Some(threads) = threads() else {
        return Err(state);
    };
    let (done, received) = oneshot::channel();
    threads
        .queue
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push_back(Job {
            state,
            chunks,
            _hold: Box::new(hold),
            done,
        });
    threads.ready.notify_one();
    Ok(received)
}

struct Job {
    state: Md5State,
    chunks: Vec<Bytes>,
    _hold: Box<dyn Send>,
    done: oneshot::Sender<Md5State>,
}

/// The queue the hashing threads take their work from.
struct Threads {
    queue: Mutex<VecDeque<Job>>,
    ready: Condvar,
}

/// The hashing threads, started on first use: one per four cores, so that on
/// a small machine the streams of concurrent PUTs meet on one thread (two
/// threads hashing two streams each would save nothing), and on a large one
/// hashing does not cap PUT throughput.
fn threads() -> Option<&'static Threads> {
    static THREADS: OnceLock<Option<&'static Threads>> = OnceLock::new();
    *THREADS.get_or_init(|| {
        let threads: &'static Threads = Box::leak(Box::new(Threads {
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
        }));
        let count = std::thread::available_parallelism().map_or(1, |n| n.get().div_ceil(4));
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
    })
}

impl Threads {
    fn run(&self) {
        let mut lanes: Vec<Stream> = Vec::with_capacity(LANES);
        loop {
            {
                let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                while lanes.is_empty() && queue.is_empty() {
                    queue = self
                        .ready
                        .wait(queue)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                while lanes.len() < LANES {
                    let Some(job) = queue.pop_front() else { break };
                    lanes.push(Stream::new(job));
                }
            }
            // A bug here must not leave every later PUT waiting on a dead
            // thread: the streams in hand are dropped (their PUTs fail with
            // an internal error) and the thread goes on.
            let hashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                hash_slice(&mut lanes, SLICE_BLOCKS)
            }));
            if hashed.is_err() {
                tracing::error!("the MD5 thread panicked; failing {} PUTs", lanes.len());
                lanes.clear();
            }
        }
    }
}

/// Hashes up to `max` blocks of each stream in `lanes`, then returns the
/// states of those that are done.
fn hash_slice(lanes: &mut Vec<Stream>, max: usize) {
    if let [alone] = lanes.as_mut_slice() {
        alone.hash_alone(max);
    } else {
        hash_side_by_side(lanes, max);
    }
    let mut i = 0;
    while i < lanes.len() {
        if lanes[i].blocks_left == 0 {
            lanes.swap_remove(i).finish();
        } else {
            i += 1;
        }
    }
}

/// One stream's job on a hashing thread: where it is in its chunks, and how
/// many whole 64-byte blocks are left.
struct Stream {
    job: Job,
    chunk: usize,
    offset: usize,
    blocks_left: usize,
}

impl Stream {
    fn new(mut job: Job) -> Stream {
        // Complete the state's unfinished block first, so that the rest
        // is whole blocks read straight from the chunks.
        let (mut chunk, mut offset) = (0, 0);
        while job.state.partial_len() > 0 && chunk < job.chunks.len() {
            let data = &job.chunks[chunk][offset..];
            let take = (64 - job.state.partial_len()).min(data.len());
            job.state.update(&data[..take]);
            offset += take;
            if offset == job.chunks[chunk].len() {
                chunk += 1;
                offset = 0;
            }
        }
        let left: usize = job.chunks[chunk.min(job.chunks.len())..]
            .iter()
            .map(Bytes::len)
            .sum::<usize>()
            - offset;
        Stream {
            job,
            chunk,
            offset,
            blocks_left: left / 64,
        }
    }

    /// Copies the next 64 bytes into `block`.
    fn next_block(&mut self, block: &mut [u8; 64]) {
        let mut filled = 0;
        while filled < 64 {
            let data = &self.job.chunks[self.chunk][self.offset..];
            let take = (64 - filled).min(data.len());
            block[filled..filled + take].copy_from_slice(&data[..take]);
            filled += take;
            self.advance(take);
        }
    }

    fn advance(&mut self, bytes: usize) {
        self.offset += bytes;
        while self.chunk < self.job.chunks.len() && self.offset >= self.job.chunks[self.chunk].len()
        {
            self.offset -= self.job.chunks[self.chunk].len();
            self.chunk += 1;
        }
    }

    /// Hashes up to `max` blocks of this stream with one-stream code.
    fn hash_alone(&mut self, max: usize) {
        let want = max.min(self.blocks_left);
        let mut done = 0;
        while done < want {
            let data = &self.job.chunks[self.chunk][self.offset..];
            let n = (data.len() / 64).min(want - done);
            if n > 0 {
                self.job.state.update(&data[..64 * n]);
                self.advance(64 * n);
            } else {
                // The block straddles two chunks.
                let mut block = [0u8; 64];
                self.next_block(&mut block);
                self.job.state.update(&block);
            }
            done += n.max(1);
        }
        self.blocks_left -= done;
    }

    /// Hashes what is left (under one block) and returns the state.
    fn finish(mut self) {
        for chunk in &self.job.chunks[self.chunk.min(self.job.chunks.len())..] {
            self.job.state.update(&chunk[self.offset..]);
            self.offset = 0;
        }
        // The PUT may have been abandoned meanwhile: nobody to tell then.
        let _ = self.job.done.send(self.job.state);
        // Dropping the job frees the chunks and what `submit` was asked to
        // hold with them.
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
    if n == 0 {
        // A stream is done (and may hold a partial block).
        return;
    }
    let mut hashing = Md5Lanes::new(lanes.iter().map(|s| &s.job.state));
    let mut blocks = [[0u8; 64]; LANES];
    for _ in 0..n {
        for (stream, block) in lanes.iter_mut().zip(blocks.iter_mut()) {
            stream.next_block(block);
        }
        hashing.compress(&blocks);
    }
    for (lane, stream) in lanes.iter_mut().enumerate() {
        hashing.store(lane, n, &mut stream.job.state);
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

    /// Streams of different lengths, cut into chunks anywhere, joining and
    /// leaving the lanes at slice boundaries, as the thread runs them.
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
        let mut waiting: VecDeque<(Job, Vec<u8>, oneshot::Receiver<Md5State>)> = lengths
            .iter()
            .enumerate()
            .map(|(s, &len)| {
                let data = bytes(s as u8, len);
                // A state that already holds an unfinished block.
                let (head, rest) = data.split_at((s * 13).min(len));
                let mut state = Md5State::default();
                state.update(head);
                let chunks = cut(rest, &[s * 17, s * 101 + 5, 64 * s + 1]);
                let (done, received) = oneshot::channel();
                let job = Job {
                    state,
                    chunks,
                    _hold: Box::new(()),
                    done,
                };
                (job, data, received)
            })
            .collect();
        let mut lanes = Vec::new();
        let mut results = Vec::new();
        for _ in 0..1000 {
            while lanes.len() < LANES {
                let Some((job, data, received)) = waiting.pop_front() else {
                    break;
                };
                lanes.push(Stream::new(job));
                results.push((data, received));
            }
            if lanes.is_empty() {
                break;
            }
            hash_slice(&mut lanes, 5);
        }
        assert!(
            lanes.is_empty() && waiting.is_empty(),
            "every stream finished"
        );
        for (data, mut received) in results {
            let state = received
                .try_recv()
                .expect("a finished stream sends its state");
            assert_eq!(state.finalize(), reference(&data), "{} bytes", data.len());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any number of concurrent streams, each cut into blocks and chunks
        /// anywhere, hash on the threads to what one `md-5` pass gives.
        #[test]
        fn issue_6_streams_hashed_side_by_side_match_md5(
            streams in prop::collection::vec(
                (0usize..300_000, prop::collection::vec(any::<usize>(), 0..6), prop::collection::vec(any::<usize>(), 0..8)),
                1..7,
            ),
            inline_first in any::<bool>(),
        ) {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
            runtime.block_on(async {
                let tasks: Vec<_> = streams.into_iter().enumerate().map(|(s, (len, block_cuts, chunk_cuts))| {
                    tokio::spawn(async move {
                        let data = bytes(s as u8, len);
                        let mut state = Md5State::default();
                        let mut points: Vec<usize> = block_cuts.iter().map(|c| c % (len + 1)).collect();
                        points.push(0);
                        points.push(len);
                        points.sort_unstable();
                        for (b, w) in points.windows(2).enumerate() {
                            let block = &data[w[0]..w[1]];
                            if inline_first && b == 0 {
                                state.update(block);
                                continue;
                            }
                            let chunks = cut(block, &chunk_cuts);
                            state = match submit(state, chunks, ()) {
                                Ok(received) => received.await.expect("hashing thread answers"),
                                Err(_) => panic!("no hashing thread"),
                            };
                        }
                        (state.finalize(), reference(&data))
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
