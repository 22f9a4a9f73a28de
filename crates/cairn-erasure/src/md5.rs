//! MD5, the ETag of a PUT body, for one stream or four side by side.
//!
//! MD5 is one long chain of dependent steps, so one stream cannot be hashed
//! faster than about 600 MiB/s on a core here, and on a 2-core machine it
//! was 45% of a large PUT's server CPU. The same steps can carry several
//! independent streams in the lanes of one SIMD register, as MinIO's
//! `md5-simd` does with hand-written assembly: four 32-bit lanes fit the
//! 128-bit SSE2 registers every x86_64 CPU has, whose intrinsics are safe
//! to call, so [`Md5Lanes::compress`] needs no `unsafe` and no CPU
//! detection (other targets run the same steps as loops over the lanes).
//! `bench hashes` (docs/benchmarks.md) compares it with one stream.
//! Bringing the streams together is the caller's business (cairn-object's
//! hashing threads).

use md5::block_api::compress;

/// Streams [`Md5Lanes`] hashes side by side.
pub const MD5_LANES: usize = 4;

/// An MD5 computation in progress: the chaining state, the byte count and
/// the bytes of an unfinished 64-byte block.
#[derive(Clone, Debug)]
pub struct Md5State {
    h: [u32; 4],
    len: u64,
    carry: [u8; 64],
    carry_len: usize,
}

impl Default for Md5State {
    fn default() -> Self {
        Md5State {
            h: [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476],
            len: 0,
            carry: [0; 64],
            carry_len: 0,
        }
    }
}

impl Md5State {
    /// Hashes `data`.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.carry_len > 0 {
            let take = (64 - self.carry_len).min(data.len());
            self.carry[self.carry_len..self.carry_len + take].copy_from_slice(&data[..take]);
            self.carry_len += take;
            data = &data[take..];
            if self.carry_len < 64 {
                return;
            }
            compress(&mut self.h, &[self.carry]);
            self.carry_len = 0;
        }
        let (blocks, rest) = data.as_chunks::<64>();
        compress(&mut self.h, blocks);
        self.carry[..rest.len()].copy_from_slice(rest);
        self.carry_len = rest.len();
    }

    /// Bytes of an unfinished block held since the last whole one: a state
    /// joins [`Md5Lanes`] only without them.
    pub fn partial_len(&self) -> usize {
        self.carry_len
    }

    /// Pads the message (RFC 1321 section 3) and returns the digest.
    pub fn finalize(mut self) -> [u8; 16] {
        let mut tail = [0u8; 128];
        tail[..self.carry_len].copy_from_slice(&self.carry[..self.carry_len]);
        tail[self.carry_len] = 0x80;
        let end = if self.carry_len < 56 { 64 } else { 128 };
        tail[end - 8..end].copy_from_slice(&self.len.wrapping_mul(8).to_le_bytes());
        compress(&mut self.h, tail[..end].as_chunks::<64>().0);
        let mut digest = [0u8; 16];
        for (out, word) in digest.chunks_exact_mut(4).zip(self.h) {
            out.copy_from_slice(&word.to_le_bytes());
        }
        digest
    }
}

/// Up to [`MD5_LANES`] streams hashed side by side, one block each per
/// [`compress`](Md5Lanes::compress). Unused lanes hash whatever they are
/// given, for nothing.
pub struct Md5Lanes {
    /// `h[word][lane]`: each lane's chaining state.
    h: [[u32; MD5_LANES]; 4],
}

impl Md5Lanes {
    /// Lanes that continue `states` (at most [`MD5_LANES`], none holding a
    /// partial block).
    pub fn new<'a>(states: impl IntoIterator<Item = &'a Md5State>) -> Md5Lanes {
        let mut h = [[0u32; MD5_LANES]; 4];
        for (lane, state) in states.into_iter().enumerate() {
            assert_eq!(state.carry_len, 0, "a state joins the lanes between blocks");
            for (w, word) in state.h.iter().enumerate() {
                h[w][lane] = *word;
            }
        }
        Md5Lanes { h }
    }

    /// Writes lane `lane` back into `state`, which it continued for
    /// `blocks` blocks.
    pub fn store(&self, lane: usize, blocks: usize, state: &mut Md5State) {
        for (w, word) in state.h.iter_mut().enumerate() {
            *word = self.h[w][lane];
        }
        state.len += 64 * blocks as u64;
    }

    /// The MD5 compression function (RFC 1321 section 3.4) on every lane:
    /// `blocks[lane]` is lane `lane`'s next block, borrowed where it lies
    /// (most of a stream's blocks are whole within one chunk of its body).
    /// Every operation of a step works on all four lanes at once.
    #[inline]
    pub fn compress(&mut self, blocks: [&[u8; 64]; MD5_LANES]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `compress_lanes` needs SSE2, which is part of the x86_64
        // baseline: every x86_64 CPU has it, and this target enables it
        // everywhere (Rust still asks for `unsafe` to call a function that
        // names a target feature).
        #[allow(unsafe_code)]
        unsafe {
            compress_lanes(&mut self.h, blocks);
        }
        #[cfg(not(target_arch = "x86_64"))]
        compress_lanes(&mut self.h, blocks);
    }
}

/// [`Md5Lanes::compress`].
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "sse2"))]
fn compress_lanes(h: &mut [[u32; MD5_LANES]; 4], blocks: [&[u8; 64]; MD5_LANES]) {
    let words = blocks.map(|block| block.as_chunks::<4>().0);
    let mut m = [Lanes::splat(0); 16];
    for (w, m) in m.iter_mut().enumerate() {
        *m = Lanes::from_words([
            u32::from_le_bytes(words[0][w]),
            u32::from_le_bytes(words[1][w]),
            u32::from_le_bytes(words[2][w]),
            u32::from_le_bytes(words[3][w]),
        ]);
    }
    let start = [
        Lanes::from_words(h[0]),
        Lanes::from_words(h[1]),
        Lanes::from_words(h[2]),
        Lanes::from_words(h[3]),
    ];
    let [mut a, mut b, mut c, mut d] = start;
    macro_rules! step {
        ($f:ident, $a:ident, $b:ident, $c:ident, $d:ident, $g:expr, $k:expr, $s:literal) => {
            let f = step!(@$f $b $c $d);
            let t = $a.add(f).add(Lanes::splat($k).add(m[$g]));
            $a = $b.add(t.rotate_left::<$s, { 32 - $s }>());
        };
        (@F $x:ident $y:ident $z:ident) => { $z.xor($x.and($y.xor($z))) };
        (@G $x:ident $y:ident $z:ident) => { $y.xor($z.and($x.xor($y))) };
        (@H $x:ident $y:ident $z:ident) => { $x.xor($y).xor($z) };
        (@I $x:ident $y:ident $z:ident) => { $y.xor($x.or($z.not())) };
    }
    step!(F, a, b, c, d, 0, 0xd76aa478, 7);
    step!(F, d, a, b, c, 1, 0xe8c7b756, 12);
    step!(F, c, d, a, b, 2, 0x242070db, 17);
    step!(F, b, c, d, a, 3, 0xc1bdceee, 22);
    step!(F, a, b, c, d, 4, 0xf57c0faf, 7);
    step!(F, d, a, b, c, 5, 0x4787c62a, 12);
    step!(F, c, d, a, b, 6, 0xa8304613, 17);
    step!(F, b, c, d, a, 7, 0xfd469501, 22);
    step!(F, a, b, c, d, 8, 0x698098d8, 7);
    step!(F, d, a, b, c, 9, 0x8b44f7af, 12);
    step!(F, c, d, a, b, 10, 0xffff5bb1, 17);
    step!(F, b, c, d, a, 11, 0x895cd7be, 22);
    step!(F, a, b, c, d, 12, 0x6b901122, 7);
    step!(F, d, a, b, c, 13, 0xfd987193, 12);
    step!(F, c, d, a, b, 14, 0xa679438e, 17);
    step!(F, b, c, d, a, 15, 0x49b40821, 22);
    step!(G, a, b, c, d, 1, 0xf61e2562, 5);
    step!(G, d, a, b, c, 6, 0xc040b340, 9);
    step!(G, c, d, a, b, 11, 0x265e5a51, 14);
    step!(G, b, c, d, a, 0, 0xe9b6c7aa, 20);
    step!(G, a, b, c, d, 5, 0xd62f105d, 5);
    step!(G, d, a, b, c, 10, 0x02441453, 9);
    step!(G, c, d, a, b, 15, 0xd8a1e681, 14);
    step!(G, b, c, d, a, 4, 0xe7d3fbc8, 20);
    step!(G, a, b, c, d, 9, 0x21e1cde6, 5);
    step!(G, d, a, b, c, 14, 0xc33707d6, 9);
    step!(G, c, d, a, b, 3, 0xf4d50d87, 14);
    step!(G, b, c, d, a, 8, 0x455a14ed, 20);
    step!(G, a, b, c, d, 13, 0xa9e3e905, 5);
    step!(G, d, a, b, c, 2, 0xfcefa3f8, 9);
    step!(G, c, d, a, b, 7, 0x676f02d9, 14);
    step!(G, b, c, d, a, 12, 0x8d2a4c8a, 20);
    step!(H, a, b, c, d, 5, 0xfffa3942, 4);
    step!(H, d, a, b, c, 8, 0x8771f681, 11);
    step!(H, c, d, a, b, 11, 0x6d9d6122, 16);
    step!(H, b, c, d, a, 14, 0xfde5380c, 23);
    step!(H, a, b, c, d, 1, 0xa4beea44, 4);
    step!(H, d, a, b, c, 4, 0x4bdecfa9, 11);
    step!(H, c, d, a, b, 7, 0xf6bb4b60, 16);
    step!(H, b, c, d, a, 10, 0xbebfbc70, 23);
    step!(H, a, b, c, d, 13, 0x289b7ec6, 4);
    step!(H, d, a, b, c, 0, 0xeaa127fa, 11);
    step!(H, c, d, a, b, 3, 0xd4ef3085, 16);
    step!(H, b, c, d, a, 6, 0x04881d05, 23);
    step!(H, a, b, c, d, 9, 0xd9d4d039, 4);
    step!(H, d, a, b, c, 12, 0xe6db99e5, 11);
    step!(H, c, d, a, b, 15, 0x1fa27cf8, 16);
    step!(H, b, c, d, a, 2, 0xc4ac5665, 23);
    step!(I, a, b, c, d, 0, 0xf4292244, 6);
    step!(I, d, a, b, c, 7, 0x432aff97, 10);
    step!(I, c, d, a, b, 14, 0xab9423a7, 15);
    step!(I, b, c, d, a, 5, 0xfc93a039, 21);
    step!(I, a, b, c, d, 12, 0x655b59c3, 6);
    step!(I, d, a, b, c, 3, 0x8f0ccc92, 10);
    step!(I, c, d, a, b, 10, 0xffeff47d, 15);
    step!(I, b, c, d, a, 1, 0x85845dd1, 21);
    step!(I, a, b, c, d, 8, 0x6fa87e4f, 6);
    step!(I, d, a, b, c, 15, 0xfe2ce6e0, 10);
    step!(I, c, d, a, b, 6, 0xa3014314, 15);
    step!(I, b, c, d, a, 13, 0x4e0811a1, 21);
    step!(I, a, b, c, d, 4, 0xf7537e82, 6);
    step!(I, d, a, b, c, 11, 0xbd3af235, 10);
    step!(I, c, d, a, b, 2, 0x2ad7d2bb, 15);
    step!(I, b, c, d, a, 9, 0xeb86d391, 21);
    for (h, (x, s)) in h.iter_mut().zip([a, b, c, d].into_iter().zip(start)) {
        *h = x.add(s).words();
    }
}

/// One 32-bit word of each of the four lanes. On x86_64 an SSE2 register:
/// SSE2 is part of every x86_64 CPU, so its intrinsics are safe to call
/// and need no CPU detection. (The compiler did not vectorise the same
/// operations written as loops over four `u32`s: it interleaved four
/// scalar streams instead, at 1.3 to 2 times one stream's rate where SSE2
/// gives about 3.)
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Lanes(std::arch::x86_64::__m128i);

#[cfg(target_arch = "x86_64")]
impl Lanes {
    #[inline]
    #[target_feature(enable = "sse2")]
    fn from_words(w: [u32; MD5_LANES]) -> Lanes {
        use std::arch::x86_64::_mm_set_epi32;
        Lanes(_mm_set_epi32(
            w[3] as i32,
            w[2] as i32,
            w[1] as i32,
            w[0] as i32,
        ))
    }

    #[target_feature(enable = "sse2")]
    fn words(self) -> [u32; MD5_LANES] {
        use std::arch::x86_64::{_mm_cvtsi128_si32, _mm_shuffle_epi32};
        let v = self.0;
        [
            _mm_cvtsi128_si32(v) as u32,
            _mm_cvtsi128_si32(_mm_shuffle_epi32::<0x55>(v)) as u32,
            _mm_cvtsi128_si32(_mm_shuffle_epi32::<0xaa>(v)) as u32,
            _mm_cvtsi128_si32(_mm_shuffle_epi32::<0xff>(v)) as u32,
        ]
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn splat(k: u32) -> Lanes {
        Lanes(std::arch::x86_64::_mm_set1_epi32(k as i32))
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn add(self, other: Lanes) -> Lanes {
        Lanes(std::arch::x86_64::_mm_add_epi32(self.0, other.0))
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn xor(self, other: Lanes) -> Lanes {
        Lanes(std::arch::x86_64::_mm_xor_si128(self.0, other.0))
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn and(self, other: Lanes) -> Lanes {
        Lanes(std::arch::x86_64::_mm_and_si128(self.0, other.0))
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn or(self, other: Lanes) -> Lanes {
        Lanes(std::arch::x86_64::_mm_or_si128(self.0, other.0))
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn not(self) -> Lanes {
        self.xor(Lanes::splat(u32::MAX))
    }

    /// Rotates every lane left by `L` bits; `R` is `32 - L`.
    #[inline]
    #[target_feature(enable = "sse2")]
    fn rotate_left<const L: i32, const R: i32>(self) -> Lanes {
        use std::arch::x86_64::{_mm_or_si128, _mm_slli_epi32, _mm_srli_epi32};
        Lanes(_mm_or_si128(
            _mm_slli_epi32::<L>(self.0),
            _mm_srli_epi32::<R>(self.0),
        ))
    }
}

/// One 32-bit word of each of the four lanes, elsewhere: plain loops over
/// the lanes (aarch64's compiler may vectorise them to NEON).
#[cfg(not(target_arch = "x86_64"))]
#[derive(Clone, Copy)]
struct Lanes([u32; MD5_LANES]);

#[cfg(not(target_arch = "x86_64"))]
impl Lanes {
    #[inline(always)]
    fn from_words(w: [u32; MD5_LANES]) -> Lanes {
        Lanes(w)
    }

    fn words(self) -> [u32; MD5_LANES] {
        self.0
    }

    #[inline(always)]
    fn splat(k: u32) -> Lanes {
        Lanes([k; MD5_LANES])
    }

    #[inline(always)]
    fn zip(self, other: Lanes, f: impl Fn(u32, u32) -> u32) -> Lanes {
        Lanes(std::array::from_fn(|l| f(self.0[l], other.0[l])))
    }

    #[inline(always)]
    fn add(self, other: Lanes) -> Lanes {
        self.zip(other, u32::wrapping_add)
    }

    #[inline(always)]
    fn xor(self, other: Lanes) -> Lanes {
        self.zip(other, |x, y| x ^ y)
    }

    #[inline(always)]
    fn and(self, other: Lanes) -> Lanes {
        self.zip(other, |x, y| x & y)
    }

    #[inline(always)]
    fn or(self, other: Lanes) -> Lanes {
        self.zip(other, |x, y| x | y)
    }

    #[inline(always)]
    fn not(self) -> Lanes {
        Lanes(self.0.map(|x| !x))
    }

    /// Rotates every lane left by `L` bits; `R` is `32 - L`.
    #[inline(always)]
    fn rotate_left<const L: i32, const R: i32>(self) -> Lanes {
        Lanes(self.0.map(|x| x.rotate_left(L as u32)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::{Digest, Md5};
    use proptest::prelude::*;

    /// Bytes that differ by stream and position.
    fn bytes(seed: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 8) as u8)
            .collect()
    }

    #[test]
    fn known_digests() {
        // RFC 1321 appendix A.5.
        let hex = |d: [u8; 16]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        for (input, digest) in [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ] {
            let mut state = Md5State::default();
            state.update(input.as_bytes());
            assert_eq!(hex(state.finalize()), digest, "{input:?}");
        }
    }

    proptest! {
        /// Any input fed in any pieces hashes as one `md-5` pass does.
        #[test]
        fn pieces_hash_like_md5(len in 0usize..5000, cuts in prop::collection::vec(any::<usize>(), 0..8)) {
            let data = bytes(len as u8, len);
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (len + 1)).collect();
            points.extend([0, len]);
            points.sort_unstable();
            let mut state = Md5State::default();
            for w in points.windows(2) {
                state.update(&data[w[0]..w[1]]);
            }
            prop_assert_eq!(state.finalize(), <[u8; 16]>::from(Md5::digest(&data)));
        }

        /// Four lanes, joined by states that already hashed different
        /// amounts, continue each stream as one-stream code would.
        #[test]
        fn four_lanes_hash_like_one(heads in prop::array::uniform4(0usize..4), blocks in 1usize..12) {
            let streams: Vec<Vec<u8>> = (0..MD5_LANES as u8).map(|s| bytes(s, 64 * 16)).collect();
            let mut states: Vec<Md5State> = heads.iter().zip(&streams).map(|(&head, data)| {
                let mut state = Md5State::default();
                state.update(&data[..64 * head]);
                state
            }).collect();
            let mut lanes = Md5Lanes::new(&states);
            for block in 0..blocks {
                let next: [&[u8; 64]; MD5_LANES] = std::array::from_fn(|l| {
                    let at = 64 * (heads[l] + block);
                    streams[l][at..].first_chunk::<64>().unwrap()
                });
                lanes.compress(next);
            }
            for (lane, state) in states.iter_mut().enumerate() {
                lanes.store(lane, blocks, state);
                let end = 64 * (heads[lane] + blocks);
                prop_assert_eq!(
                    state.clone().finalize(),
                    <[u8; 16]>::from(Md5::digest(&streams[lane][..end])),
                    "lane {}", lane
                );
            }
        }
    }
}
