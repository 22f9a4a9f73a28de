use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

use crate::bitrot::{BitrotAlgo, HASH_LEN};
use crate::error::Error;

/// The erasure block size new objects are written with: 1 MiB, as in MinIO.
pub const DEFAULT_BLOCK_SIZE: usize = 1 << 20;

/// The most shards one set can have (docs/design.md section 2 caps sets at 16 drives).
const MAX_SHARDS: usize = 256;

/// The alignment [`Erasure::encode_placed`] places frames for: a page,
/// what `O_DIRECT` needs of memory and file offsets alike.
pub const PLACE_ALIGN: usize = 4096;

/// One framed shard in its buffer: `buf[start..]`, with `start` chosen when
/// the frame is placed ([`Erasure::encode_placed`]), else 0.
#[derive(Debug)]
pub struct Frame {
    buf: Vec<u8>,
    start: usize,
}

impl Frame {
    /// An empty frame with room for `len` bytes, whose first byte will lie
    /// at an address congruent to `skew` modulo [`PLACE_ALIGN`] (`None`:
    /// anywhere, at the buffer's start).
    fn new(len: usize, skew: Option<usize>) -> Frame {
        let Some(skew) = skew else {
            return Frame {
                buf: Vec::with_capacity(len),
                start: 0,
            };
        };
        let mut buf = Vec::with_capacity(len + PLACE_ALIGN - 1);
        let addr = buf.as_ptr() as usize;
        let start = (skew + PLACE_ALIGN - addr % PLACE_ALIGN) % PLACE_ALIGN;
        // The gap before the frame: within the capacity, so the buffer
        // does not move.
        buf.resize(start, 0);
        Frame { buf, start }
    }

    /// The buffer and where the frame starts in it.
    pub fn into_parts(self) -> (Vec<u8>, usize) {
        (self.buf, self.start)
    }
}

/// An unplaced frame.
impl From<Vec<u8>> for Frame {
    fn from(buf: Vec<u8>) -> Frame {
        Frame { buf, start: 0 }
    }
}

impl std::ops::Deref for Frame {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// Reed-Solomon coding of one object's blocks into framed shards.
///
/// Block `b` of an object is split into `data_shards` payloads of
/// [`Erasure::shard_size`] bytes (the last one zero-padded), `parity_shards`
/// parity payloads are computed from them, and each payload is framed with its
/// bitrot hash. Shard `i` of every block goes to the same drive, so a drive's
/// shard file is the concatenation of its frames.
///
/// Holds reusable encoder and decoder state, so keep one per stream.
pub struct Erasure {
    data_shards: usize,
    parity_shards: usize,
    block_size: usize,
    algo: BitrotAlgo,
    encoder: Option<ReedSolomonEncoder>,
    decoder: Option<ReedSolomonDecoder>,
}

impl std::fmt::Debug for Erasure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Erasure")
            .field("data_shards", &self.data_shards)
            .field("parity_shards", &self.parity_shards)
            .field("block_size", &self.block_size)
            .field("algo", &self.algo)
            .finish_non_exhaustive()
    }
}

impl Erasure {
    /// Creates a codec for `data_shards + parity_shards` shards over blocks of
    /// `block_size` bytes.
    pub fn new(
        data_shards: usize,
        parity_shards: usize,
        block_size: usize,
        algo: BitrotAlgo,
    ) -> Result<Erasure, Error> {
        let invalid = |reason| Error::InvalidLayout {
            data_shards,
            parity_shards,
            reason,
        };
        if data_shards == 0 {
            return Err(invalid("at least one data shard is needed"));
        }
        if data_shards + parity_shards > MAX_SHARDS {
            return Err(invalid("more than 256 shards"));
        }
        if parity_shards > data_shards {
            return Err(invalid("parity may not exceed data"));
        }
        if block_size < data_shards {
            return Err(invalid("block size smaller than the data shard count"));
        }
        if parity_shards > 0 && !ReedSolomonEncoder::supports(data_shards, parity_shards) {
            return Err(invalid("shard counts not supported by the codec"));
        }
        Ok(Erasure {
            data_shards,
            parity_shards,
            block_size,
            algo,
            encoder: None,
            decoder: None,
        })
    }

    pub fn data_shards(&self) -> usize {
        self.data_shards
    }

    pub fn parity_shards(&self) -> usize {
        self.parity_shards
    }

    pub fn total_shards(&self) -> usize {
        self.data_shards + self.parity_shards
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn algo(&self) -> BitrotAlgo {
        self.algo
    }

    /// Payload bytes per shard for a block of `block_len` bytes: the block
    /// divided by the data shard count, rounded up to an even number (the
    /// codec works on 16-bit symbols).
    pub fn shard_size(&self, block_len: usize) -> usize {
        let size = block_len.div_ceil(self.data_shards);
        size + (size & 1)
    }

    /// Bytes of one framed shard (hash plus payload) for a block of `block_len` bytes.
    pub fn frame_size(&self, block_len: usize) -> usize {
        HASH_LEN + self.shard_size(block_len)
    }

    /// Number of blocks of an object of `object_size` bytes.
    pub fn block_count(&self, object_size: u64) -> u64 {
        object_size.div_ceil(self.block_size as u64)
    }

    /// Length of block `block_idx` of an object of `object_size` bytes.
    pub fn block_len(&self, object_size: u64, block_idx: u64) -> usize {
        let start = block_idx * self.block_size as u64;
        (object_size.saturating_sub(start)).min(self.block_size as u64) as usize
    }

    /// Offset of block `block_idx`'s frame within a shard file. Only the last
    /// block can be shorter than the block size, so this holds for every block.
    pub fn frame_offset(&self, block_idx: u64) -> u64 {
        block_idx * self.frame_size(self.block_size) as u64
    }

    /// Size of one drive's shard file for an object of `object_size` bytes.
    pub fn shard_file_size(&self, object_size: u64) -> u64 {
        let blocks = self.block_count(object_size);
        if blocks == 0 {
            return 0;
        }
        let last_len = self.block_len(object_size, blocks - 1);
        self.frame_offset(blocks - 1) + self.frame_size(last_len) as u64
    }

    /// Encodes one block into `total_shards()` framed shards, data shards first.
    pub fn encode(&mut self, block: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        self.encode_chunks(&[block])
    }

    /// Encodes the block that is the concatenation of `chunks` (as a body
    /// arrives: the pieces need not be copied into one buffer first) into
    /// `total_shards()` framed shards, data shards first.
    pub fn encode_chunks<C: AsRef<[u8]>>(&mut self, chunks: &[C]) -> Result<Vec<Vec<u8>>, Error> {
        let frames = self.encode_frames(chunks, None)?;
        Ok(frames.into_iter().map(|frame| frame.buf).collect())
    }

    /// [`Erasure::encode_chunks`] for block `block_idx` of a shard file,
    /// each frame placed in its buffer at an address that is congruent to
    /// its offset in the file modulo [`PLACE_ALIGN`]. A writer that goes
    /// around the page cache (`O_DIRECT`, which wants memory and file
    /// aligned alike) can then write a frame's whole pages from where they
    /// lie, and copy only the partial pages at its two ends.
    pub fn encode_placed<C: AsRef<[u8]>>(
        &mut self,
        chunks: &[C],
        block_idx: u64,
    ) -> Result<Vec<Frame>, Error> {
        let skew = (self.frame_offset(block_idx) % PLACE_ALIGN as u64) as usize;
        self.encode_frames(chunks, Some(skew))
    }

    fn encode_frames<C: AsRef<[u8]>>(
        &mut self,
        chunks: &[C],
        skew: Option<usize>,
    ) -> Result<Vec<Frame>, Error> {
        let block_len: usize = chunks.iter().map(|c| c.as_ref().len()).sum();
        if block_len > self.block_size {
            return Err(Error::BlockTooLarge {
                len: block_len,
                block_size: self.block_size,
            });
        }
        let shard_size = self.shard_size(block_len);
        let frame_len = HASH_LEN + shard_size;
        let mut frames = Vec::with_capacity(self.total_shards());
        let mut pieces = chunks.iter().map(|c| c.as_ref());
        let mut piece: &[u8] = &[];
        for _ in 0..self.data_shards {
            // Filled from the chunks, not zeroed first; only the last data
            // shard's padding is written twice.
            let mut frame = Frame::new(frame_len, skew);
            let buf = &mut frame.buf;
            buf.extend_from_slice(&[0u8; HASH_LEN]);
            while buf.len() < frame.start + frame_len {
                if piece.is_empty() {
                    match pieces.next() {
                        Some(next) => piece = next,
                        None => break,
                    }
                    continue;
                }
                let take = (frame.start + frame_len - buf.len()).min(piece.len());
                buf.extend_from_slice(&piece[..take]);
                piece = &piece[take..];
            }
            buf.resize(frame.start + frame_len, 0);
            frames.push(frame);
        }
        if self.parity_shards > 0 && shard_size > 0 {
            let encoder = match &mut self.encoder {
                Some(encoder) => {
                    encoder
                        .reset(self.data_shards, self.parity_shards, shard_size)
                        .map_err(codec_err)?;
                    encoder
                }
                None => self.encoder.insert(
                    ReedSolomonEncoder::new(self.data_shards, self.parity_shards, shard_size)
                        .map_err(codec_err)?,
                ),
            };
            for frame in &frames {
                encoder
                    .add_original_shard(&frame[HASH_LEN..])
                    .map_err(codec_err)?;
            }
            let result = encoder.encode().map_err(codec_err)?;
            for parity in result.recovery_iter() {
                let mut frame = Frame::new(frame_len, skew);
                frame.buf.extend_from_slice(&[0u8; HASH_LEN]);
                frame.buf.extend_from_slice(parity);
                frames.push(frame);
            }
        } else {
            for _ in 0..self.parity_shards {
                let mut frame = Frame::new(frame_len, skew);
                frame.buf.resize(frame.start + frame_len, 0);
                frames.push(frame);
            }
        }
        for frame in &mut frames {
            self.algo.seal(&mut frame.buf[frame.start..]);
        }
        Ok(frames)
    }

    /// Rebuilds one block of `block_len` bytes from verified shard payloads
    /// (`shards[i]` is shard `i`'s payload, `None` when missing or corrupt)
    /// and appends it to `out`. Needs any `data_shards` of them.
    pub fn decode_into(
        &mut self,
        shards: &[Option<&[u8]>],
        block_len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let restored = self.restore_data(shards, block_len)?;
        let mut remaining = block_len;
        for shard_idx in 0..self.data_shards {
            if remaining == 0 {
                break;
            }
            let payload = match shards[shard_idx] {
                Some(payload) => payload,
                None => restored[shard_idx]
                    .as_deref()
                    .expect("restore_data fills every missing data shard"),
            };
            let take = remaining.min(payload.len());
            out.extend_from_slice(&payload[..take]);
            remaining -= take;
        }
        Ok(())
    }

    /// Rebuilds every shard of one block, framed, from any `data_shards`
    /// verified payloads. Healing writes these to drives that lost theirs.
    pub fn reconstruct(
        &mut self,
        shards: &[Option<&[u8]>],
        block_len: usize,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let mut block = Vec::with_capacity(block_len);
        self.decode_into(shards, block_len, &mut block)?;
        self.encode(&block)
    }

    /// Returns, for each data shard missing from `shards`, its restored payload.
    fn restore_data(
        &mut self,
        shards: &[Option<&[u8]>],
        block_len: usize,
    ) -> Result<Vec<Option<Vec<u8>>>, Error> {
        if shards.len() != self.total_shards() {
            return Err(Error::ShardCount {
                expected: self.total_shards(),
                got: shards.len(),
            });
        }
        let shard_size = self.shard_size(block_len);
        for (shard_idx, shard) in shards.iter().enumerate() {
            if let Some(payload) = shard
                && payload.len() != shard_size
            {
                return Err(Error::ShardSize {
                    shard_idx,
                    expected: shard_size,
                    got: payload.len(),
                });
            }
        }
        let mut restored: Vec<Option<Vec<u8>>> = vec![None; self.data_shards];
        let missing_data = shards[..self.data_shards]
            .iter()
            .filter(|s| s.is_none())
            .count();
        if missing_data == 0 {
            return Ok(restored);
        }
        let available = shards.iter().filter(|s| s.is_some()).count();
        if available < self.data_shards {
            return Err(Error::TooFewShards {
                available,
                needed: self.data_shards,
            });
        }
        if shard_size == 0 {
            for slot in restored.iter_mut() {
                *slot = Some(Vec::new());
            }
            return Ok(restored);
        }
        let decoder = match &mut self.decoder {
            Some(decoder) => {
                decoder
                    .reset(self.data_shards, self.parity_shards, shard_size)
                    .map_err(codec_err)?;
                decoder
            }
            None => self.decoder.insert(
                ReedSolomonDecoder::new(self.data_shards, self.parity_shards, shard_size)
                    .map_err(codec_err)?,
            ),
        };
        for (shard_idx, shard) in shards.iter().enumerate() {
            let Some(payload) = shard else { continue };
            if shard_idx < self.data_shards {
                decoder
                    .add_original_shard(shard_idx, payload)
                    .map_err(codec_err)?;
            } else {
                decoder
                    .add_recovery_shard(shard_idx - self.data_shards, payload)
                    .map_err(codec_err)?;
            }
        }
        let result = decoder.decode().map_err(codec_err)?;
        for (shard_idx, slot) in restored.iter_mut().enumerate() {
            if shards[shard_idx].is_none() {
                let payload = result
                    .restored_original(shard_idx)
                    .ok_or(Error::TooFewShards {
                        available,
                        needed: self.data_shards,
                    })?;
                *slot = Some(payload.to_vec());
            }
        }
        Ok(restored)
    }
}

fn codec_err(err: reed_solomon_simd::Error) -> Error {
    Error::Codec(err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn payloads(erasure: &Erasure, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
        frames
            .iter()
            .map(|f| {
                erasure
                    .algo()
                    .open(f)
                    .expect("fresh frame verifies")
                    .to_vec()
            })
            .collect()
    }

    fn decode(erasure: &mut Erasure, shards: &[Option<Vec<u8>>], len: usize) -> Vec<u8> {
        let refs: Vec<Option<&[u8]>> = shards.iter().map(|s| s.as_deref()).collect();
        let mut out = Vec::new();
        erasure.decode_into(&refs, len, &mut out).unwrap();
        out
    }

    #[test]
    fn sizes_follow_the_layout() {
        let erasure = Erasure::new(2, 2, DEFAULT_BLOCK_SIZE, BitrotAlgo::DEFAULT).unwrap();
        assert_eq!(erasure.shard_size(DEFAULT_BLOCK_SIZE), 512 * 1024);
        assert_eq!(erasure.shard_size(3), 2);
        assert_eq!(erasure.shard_size(0), 0);
        assert_eq!(erasure.block_count(0), 0);
        assert_eq!(erasure.block_count(1), 1);
        assert_eq!(erasure.block_count(DEFAULT_BLOCK_SIZE as u64 + 1), 2);
        assert_eq!(erasure.block_len(DEFAULT_BLOCK_SIZE as u64 + 1, 1), 1);
        let size = 3 * DEFAULT_BLOCK_SIZE as u64 + 10;
        assert_eq!(
            erasure.shard_file_size(size),
            3 * (16 + 512 * 1024) + 16 + 6
        );
        let erasure = Erasure::new(12, 4, DEFAULT_BLOCK_SIZE, BitrotAlgo::DEFAULT).unwrap();
        assert_eq!(erasure.shard_size(DEFAULT_BLOCK_SIZE), 87382);
    }

    #[test]
    fn rejects_bad_layouts() {
        assert!(Erasure::new(0, 1, 1024, BitrotAlgo::DEFAULT).is_err());
        assert!(Erasure::new(2, 3, 1024, BitrotAlgo::DEFAULT).is_err());
        assert!(Erasure::new(200, 100, 1 << 20, BitrotAlgo::DEFAULT).is_err());
        assert!(Erasure::new(4, 0, 2, BitrotAlgo::DEFAULT).is_err());
    }

    #[test]
    fn single_drive_layout_is_identity() {
        let mut erasure = Erasure::new(1, 0, 1024, BitrotAlgo::DEFAULT).unwrap();
        let block: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let frames = erasure.encode(&block).unwrap();
        assert_eq!(frames.len(), 1);
        let shards: Vec<Option<Vec<u8>>> =
            payloads(&erasure, &frames).into_iter().map(Some).collect();
        assert_eq!(decode(&mut erasure, &shards, block.len()), block);
    }

    #[test]
    fn one_data_one_parity_mirrors() {
        let mut erasure = Erasure::new(1, 1, 1024, BitrotAlgo::DEFAULT).unwrap();
        let block = vec![7u8; 999];
        let frames = erasure.encode(&block).unwrap();
        let mut shards: Vec<Option<Vec<u8>>> =
            payloads(&erasure, &frames).into_iter().map(Some).collect();
        shards[0] = None;
        assert_eq!(decode(&mut erasure, &shards, block.len()), block);
    }

    #[test]
    fn too_few_shards_is_an_error() {
        let mut erasure = Erasure::new(2, 2, 1024, BitrotAlgo::DEFAULT).unwrap();
        let block = vec![1u8; 1000];
        let frames = erasure.encode(&block).unwrap();
        let mut shards: Vec<Option<Vec<u8>>> =
            payloads(&erasure, &frames).into_iter().map(Some).collect();
        shards[0] = None;
        shards[1] = None;
        shards[3] = None;
        let refs: Vec<Option<&[u8]>> = shards.iter().map(|s| s.as_deref()).collect();
        let err = erasure
            .decode_into(&refs, block.len(), &mut Vec::new())
            .unwrap_err();
        assert_eq!(
            err,
            Error::TooFewShards {
                available: 1,
                needed: 2
            }
        );
    }

    #[test]
    fn reconstruct_rebuilds_identical_frames() {
        let mut erasure = Erasure::new(3, 2, 4096, BitrotAlgo::DEFAULT).unwrap();
        let block: Vec<u8> = (0..4000u32).map(|i| (i * 7) as u8).collect();
        let frames = erasure.encode(&block).unwrap();
        let mut shards: Vec<Option<Vec<u8>>> =
            payloads(&erasure, &frames).into_iter().map(Some).collect();
        shards[1] = None;
        shards[4] = None;
        let refs: Vec<Option<&[u8]>> = shards.iter().map(|s| s.as_deref()).collect();
        assert_eq!(erasure.reconstruct(&refs, block.len()).unwrap(), frames);
    }

    fn layouts() -> impl Strategy<Value = (usize, usize)> {
        (1usize..=16)
            .prop_flat_map(|n| {
                let max_parity = n / 2;
                (Just(n), 0..=max_parity)
            })
            .prop_map(|(n, parity)| (n - parity, parity))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Any loss of up to `parity_shards` shards reconstructs byte-exact.
        #[test]
        fn any_parity_losses_decode(
            (data_shards, parity_shards) in layouts(),
            len in 0usize..20_000,
            seed in any::<u64>(),
            lost in proptest::collection::vec(any::<proptest::sample::Index>(), 0..=8),
        ) {
            let mut erasure = Erasure::new(data_shards, parity_shards, 16 * 1024, BitrotAlgo::DEFAULT).unwrap();
            let len = len.min(erasure.block_size());
            let mut state = seed;
            let block: Vec<u8> = (0..len).map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (state >> 33) as u8
            }).collect();
            let frames = erasure.encode(&block).unwrap();
            prop_assert_eq!(frames.len(), data_shards + parity_shards);
            let mut shards: Vec<Option<Vec<u8>>> = payloads(&erasure, &frames).into_iter().map(Some).collect();
            let mut removed = 0;
            for idx in lost {
                if removed == parity_shards { break; }
                let i = idx.index(shards.len());
                if shards[i].take().is_some() { removed += 1; }
            }
            prop_assert_eq!(decode(&mut erasure, &shards, len), block);
        }

        /// Encoding then decoding with every shard present is the identity,
        /// and every frame's hash verifies.
        #[test]
        fn encode_decode_identity(block in proptest::collection::vec(any::<u8>(), 0..5000), data_shards in 1usize..=8) {
            let parity_shards = data_shards / 2;
            let mut erasure = Erasure::new(data_shards, parity_shards, 8192, BitrotAlgo::DEFAULT).unwrap();
            let frames = erasure.encode(&block).unwrap();
            for frame in &frames {
                prop_assert_eq!(frame.len(), erasure.frame_size(block.len()));
            }
            let shards: Vec<Option<Vec<u8>>> = payloads(&erasure, &frames).into_iter().map(Some).collect();
            prop_assert_eq!(decode(&mut erasure, &shards, block.len()), block);
        }

        /// A block given in pieces, cut anywhere, encodes to the same frames
        /// as the block in one piece (issue 6: PUTs no longer copy a body's
        /// chunks into one buffer first).
        #[test]
        fn issue_6_chunks_encode_like_the_whole_block(
            block in proptest::collection::vec(any::<u8>(), 0..5000),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..12),
            data_shards in 1usize..=8,
        ) {
            let parity_shards = data_shards / 2;
            let mut erasure = Erasure::new(data_shards, parity_shards, 8192, BitrotAlgo::DEFAULT).unwrap();
            let whole = erasure.encode(&block).unwrap();
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(block.len() + 1)).collect();
            at.push(0);
            at.push(block.len());
            at.sort_unstable();
            let chunks: Vec<&[u8]> = at.windows(2).map(|w| &block[w[0]..w[1]]).collect();
            prop_assert_eq!(erasure.encode_chunks(&chunks).unwrap(), whole);
        }

        /// Placed frames hold the same bytes as unplaced ones, each at an
        /// address congruent to its offset in the shard file (issue 6:
        /// direct writes from where the frames lie).
        #[test]
        fn issue_6_placed_frames_are_the_frames_at_their_file_offsets(
            block in proptest::collection::vec(any::<u8>(), 0..5000),
            block_idx in 0u64..1000,
            data_shards in 1usize..=8,
        ) {
            let parity_shards = data_shards / 2;
            let mut erasure = Erasure::new(data_shards, parity_shards, 8192, BitrotAlgo::DEFAULT).unwrap();
            let whole = erasure.encode(&block).unwrap();
            let placed = erasure.encode_placed(&[&block], block_idx).unwrap();
            prop_assert_eq!(placed.len(), whole.len());
            let offset = erasure.frame_offset(block_idx) as usize;
            for (frame, expected) in placed.iter().zip(&whole) {
                prop_assert_eq!(&frame[..], &expected[..]);
                prop_assert_eq!(frame.as_ptr() as usize % PLACE_ALIGN, offset % PLACE_ALIGN);
            }
        }
    }
}
