//! MD5, the ETag of a PUT body, for one stream or four side by side.
//!
//! MD5 is one long chain of dependent steps, so one stream cannot be hashed
//! faster than about 600 MiB/s on a core here, and on a 2-core machine it
//! was 45% of a large PUT's server CPU. The same steps can carry several
//! independent streams in the lanes of one SIMD register, as MinIO's
//! `md5-simd` does with hand-written assembly: four 32-bit lanes fit a
//! 128-bit register. Four lanes are still bound by the chain's latency,
//! not by how many instructions a core issues, so what counts is how many
//! dependent instructions a step takes: six with SSE2, which every x86_64
//! CPU has, and four with AVX-512VL, used where the CPU has it ([`Path`]).
//! Other targets run the same steps as loops over the lanes.
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
    path: Path,
}

/// Which instructions [`Md5Lanes::compress`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Plain loops over the lanes: what targets other than x86_64 run
    /// (x86_64 runs it too, for tests and `bench hashes`).
    Loops,
    /// SSE2, which every x86_64 CPU has.
    Sse2,
    /// AVX-512F with AVX-512VL on the same 128-bit registers: one
    /// instruction for each round's boolean function (`vpternlogd`) and
    /// one for the rotation (`vprold`), where SSE2 needs two or three of
    /// each. A step's chain of dependent instructions, which is what bounds
    /// MD5, goes from six to four.
    Avx512,
}

impl Path {
    /// The fastest path this CPU runs.
    pub fn best() -> Path {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                return Path::Avx512;
            }
            Path::Sse2
        }
        #[cfg(not(target_arch = "x86_64"))]
        Path::Loops
    }

    /// Every path this CPU runs, the slowest first (for tests and `bench
    /// hashes`).
    pub fn available() -> Vec<Path> {
        [Path::Loops, Path::Sse2, Path::Avx512]
            .into_iter()
            .filter(|path| path.runs_here())
            .collect()
    }

    /// Whether this CPU runs this path.
    pub fn runs_here(self) -> bool {
        match self {
            Path::Loops => true,
            Path::Sse2 => cfg!(target_arch = "x86_64"),
            Path::Avx512 => Path::best() == Path::Avx512,
        }
    }
}

impl Md5Lanes {
    /// Lanes that continue `states` (at most [`MD5_LANES`], none holding a
    /// partial block), on the fastest path this CPU runs.
    pub fn new<'a>(states: impl IntoIterator<Item = &'a Md5State>) -> Md5Lanes {
        Md5Lanes::on(Path::best(), states)
    }

    /// [`Md5Lanes::new`] on `path`, which must run here.
    pub fn on<'a>(path: Path, states: impl IntoIterator<Item = &'a Md5State>) -> Md5Lanes {
        assert!(path.runs_here(), "{path:?} does not run on this CPU");
        let mut h = [[0u32; MD5_LANES]; 4];
        for (lane, state) in states.into_iter().enumerate() {
            assert_eq!(state.carry_len, 0, "a state joins the lanes between blocks");
            for (w, word) in state.h.iter().enumerate() {
                h[w][lane] = *word;
            }
        }
        Md5Lanes { h, path }
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
        match self.path {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `compress_sse2` needs SSE2, which is part of the
            // x86_64 baseline: every x86_64 CPU has it (Rust still asks for
            // `unsafe` to call a function that names a target feature).
            #[allow(unsafe_code)]
            Path::Sse2 => unsafe { x86::compress_sse2(&mut self.h, blocks) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `compress_avx512` needs AVX-512F and AVX-512VL, and a
            // `Md5Lanes` is on this path only after `Md5Lanes::on` asserted
            // `runs_here`, which holds only when `Path::best` detected both
            // on this CPU at run time.
            #[allow(unsafe_code)]
            Path::Avx512 => unsafe { x86::compress_avx512(&mut self.h, blocks) },
            _ => compress_loops(&mut self.h, blocks),
        }
    }
}

/// The constants of the 64 steps (RFC 1321 section 3.4: the integer part
/// of 2^32 times the sine of the step's number, from 1, in radians).
const K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
];

/// The 64 steps of the compression function, over a type of lanes with
/// `from_words`, `words`, `splat`, `add`, the round functions `f`, `g`,
/// `h`, `i`, and `rotate_left`. A step adds the message word and constant
/// to `a` first, off the chain of dependent instructions, which then runs
/// only through the round function, one add, the rotation and one add.
macro_rules! compress_body {
    ($lanes:ident, $h:expr, $blocks:expr) => {{
        let h: &mut [[u32; MD5_LANES]; 4] = $h;
        // The constants are copied in through `black_box`, before the
        // message: as constants, or as loads after it, the compiler moved
        // their adds after the round function's, onto the chain.
        let k: [u32; 64] = *std::hint::black_box(&crate::md5::K);
        // Loops, not closures: a closure is compiled without the target
        // features of the function it is in, and was not inlined into it.
        let [b0, b1, b2, b3]: [&[u8; 64]; MD5_LANES] = $blocks;
        let words = [
            b0.as_chunks::<4>().0,
            b1.as_chunks::<4>().0,
            b2.as_chunks::<4>().0,
            b3.as_chunks::<4>().0,
        ];
        let mut m = [$lanes::splat(0); 16];
        for (w, m) in m.iter_mut().enumerate() {
            *m = $lanes::from_words([
                u32::from_le_bytes(words[0][w]),
                u32::from_le_bytes(words[1][w]),
                u32::from_le_bytes(words[2][w]),
                u32::from_le_bytes(words[3][w]),
            ]);
        }
        let start = [
            $lanes::from_words(h[0]),
            $lanes::from_words(h[1]),
            $lanes::from_words(h[2]),
            $lanes::from_words(h[3]),
        ];
        let [mut a, mut b, mut c, mut d] = start;
        macro_rules! step {
            ($f:ident, $a:ident, $b:ident, $c:ident, $d:ident, $g:expr, $i:expr, $s:literal) => {
                let t = $a.add($lanes::splat(k[$i]).add(m[$g])).add($lanes::$f($b, $c, $d));
                $a = $b.add(t.rotate_left::<$s, { 32 - $s }>());
            };
        }
        step!(f, a, b, c, d, 0, 0, 7);
        step!(f, d, a, b, c, 1, 1, 12);
        step!(f, c, d, a, b, 2, 2, 17);
        step!(f, b, c, d, a, 3, 3, 22);
        step!(f, a, b, c, d, 4, 4, 7);
        step!(f, d, a, b, c, 5, 5, 12);
        step!(f, c, d, a, b, 6, 6, 17);
        step!(f, b, c, d, a, 7, 7, 22);
        step!(f, a, b, c, d, 8, 8, 7);
        step!(f, d, a, b, c, 9, 9, 12);
        step!(f, c, d, a, b, 10, 10, 17);
        step!(f, b, c, d, a, 11, 11, 22);
        step!(f, a, b, c, d, 12, 12, 7);
        step!(f, d, a, b, c, 13, 13, 12);
        step!(f, c, d, a, b, 14, 14, 17);
        step!(f, b, c, d, a, 15, 15, 22);
        step!(g, a, b, c, d, 1, 16, 5);
        step!(g, d, a, b, c, 6, 17, 9);
        step!(g, c, d, a, b, 11, 18, 14);
        step!(g, b, c, d, a, 0, 19, 20);
        step!(g, a, b, c, d, 5, 20, 5);
        step!(g, d, a, b, c, 10, 21, 9);
        step!(g, c, d, a, b, 15, 22, 14);
        step!(g, b, c, d, a, 4, 23, 20);
        step!(g, a, b, c, d, 9, 24, 5);
        step!(g, d, a, b, c, 14, 25, 9);
        step!(g, c, d, a, b, 3, 26, 14);
        step!(g, b, c, d, a, 8, 27, 20);
        step!(g, a, b, c, d, 13, 28, 5);
        step!(g, d, a, b, c, 2, 29, 9);
        step!(g, c, d, a, b, 7, 30, 14);
        step!(g, b, c, d, a, 12, 31, 20);
        step!(h, a, b, c, d, 5, 32, 4);
        step!(h, d, a, b, c, 8, 33, 11);
        step!(h, c, d, a, b, 11, 34, 16);
        step!(h, b, c, d, a, 14, 35, 23);
        step!(h, a, b, c, d, 1, 36, 4);
        step!(h, d, a, b, c, 4, 37, 11);
        step!(h, c, d, a, b, 7, 38, 16);
        step!(h, b, c, d, a, 10, 39, 23);
        step!(h, a, b, c, d, 13, 40, 4);
        step!(h, d, a, b, c, 0, 41, 11);
        step!(h, c, d, a, b, 3, 42, 16);
        step!(h, b, c, d, a, 6, 43, 23);
        step!(h, a, b, c, d, 9, 44, 4);
        step!(h, d, a, b, c, 12, 45, 11);
        step!(h, c, d, a, b, 15, 46, 16);
        step!(h, b, c, d, a, 2, 47, 23);
        step!(i, a, b, c, d, 0, 48, 6);
        step!(i, d, a, b, c, 7, 49, 10);
        step!(i, c, d, a, b, 14, 50, 15);
        step!(i, b, c, d, a, 5, 51, 21);
        step!(i, a, b, c, d, 12, 52, 6);
        step!(i, d, a, b, c, 3, 53, 10);
        step!(i, c, d, a, b, 10, 54, 15);
        step!(i, b, c, d, a, 1, 55, 21);
        step!(i, a, b, c, d, 8, 56, 6);
        step!(i, d, a, b, c, 15, 57, 10);
        step!(i, c, d, a, b, 6, 58, 15);
        step!(i, b, c, d, a, 13, 59, 21);
        step!(i, a, b, c, d, 4, 60, 6);
        step!(i, d, a, b, c, 11, 61, 10);
        step!(i, c, d, a, b, 2, 62, 15);
        step!(i, b, c, d, a, 9, 63, 21);
        for (h, (x, s)) in h.iter_mut().zip([a, b, c, d].into_iter().zip(start)) {
            *h = x.add(s).words();
        }
    }};
}

/// [`Md5Lanes::compress`] as loops over the lanes (aarch64's compiler may
/// vectorise them to NEON).
fn compress_loops(h: &mut [[u32; MD5_LANES]; 4], blocks: [&[u8; 64]; MD5_LANES]) {
    compress_body!(Loops, h, blocks)
}

/// One 32-bit word of each of the four lanes, as plain loops.
#[derive(Clone, Copy)]
struct Loops([u32; MD5_LANES]);

impl Loops {
    #[inline(always)]
    fn from_words(w: [u32; MD5_LANES]) -> Loops {
        Loops(w)
    }

    fn words(self) -> [u32; MD5_LANES] {
        self.0
    }

    #[inline(always)]
    fn splat(k: u32) -> Loops {
        Loops([k; MD5_LANES])
    }

    #[inline(always)]
    fn map3(x: Loops, y: Loops, z: Loops, f: impl Fn(u32, u32, u32) -> u32) -> Loops {
        Loops(std::array::from_fn(|l| f(x.0[l], y.0[l], z.0[l])))
    }

    #[inline(always)]
    fn add(self, other: Loops) -> Loops {
        Loops(std::array::from_fn(|l| self.0[l].wrapping_add(other.0[l])))
    }

    #[inline(always)]
    fn f(x: Loops, y: Loops, z: Loops) -> Loops {
        Loops::map3(x, y, z, |x, y, z| z ^ (x & (y ^ z)))
    }

    #[inline(always)]
    fn g(x: Loops, y: Loops, z: Loops) -> Loops {
        Loops::map3(x, y, z, |x, y, z| (x & z) | (y & !z))
    }

    #[inline(always)]
    fn h(x: Loops, y: Loops, z: Loops) -> Loops {
        Loops::map3(x, y, z, |x, y, z| x ^ y ^ z)
    }

    #[inline(always)]
    fn i(x: Loops, y: Loops, z: Loops) -> Loops {
        Loops::map3(x, y, z, |x, y, z| y ^ (x | !z))
    }

    /// Rotates every lane left by `L` bits; `R` is `32 - L`.
    #[inline(always)]
    fn rotate_left<const L: i32, const R: i32>(self) -> Loops {
        Loops(self.0.map(|x| x.rotate_left(L as u32)))
    }
}

/// The x86_64 paths: one 32-bit word of each of the four lanes in a
/// 128-bit register. (The compiler did not vectorise [`Loops`]: it
/// interleaved four scalar streams instead, at 1.3 to 2 times one stream's
/// rate where SSE2 gives about 3.)
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::MD5_LANES;
    use std::arch::x86_64::*;

    #[target_feature(enable = "sse2")]
    pub(super) fn compress_sse2(h: &mut [[u32; MD5_LANES]; 4], blocks: [&[u8; 64]; MD5_LANES]) {
        compress_body!(Sse2, h, blocks)
    }

    #[target_feature(enable = "avx512f,avx512vl")]
    pub(super) fn compress_avx512(h: &mut [[u32; MD5_LANES]; 4], blocks: [&[u8; 64]; MD5_LANES]) {
        compress_body!(Avx512, h, blocks)
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn from_words(w: [u32; MD5_LANES]) -> __m128i {
        _mm_set_epi32(w[3] as i32, w[2] as i32, w[1] as i32, w[0] as i32)
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn words(v: __m128i) -> [u32; MD5_LANES] {
        [
            _mm_cvtsi128_si32(v) as u32,
            _mm_cvtsi128_si32(_mm_shuffle_epi32::<0x55>(v)) as u32,
            _mm_cvtsi128_si32(_mm_shuffle_epi32::<0xaa>(v)) as u32,
            _mm_cvtsi128_si32(_mm_shuffle_epi32::<0xff>(v)) as u32,
        ]
    }

    /// SSE2 lanes. Each round function is written so that `x`, the word
    /// the step before produced, goes through as few instructions as it
    /// can: two for F, G and I, one for H.
    #[derive(Clone, Copy)]
    struct Sse2(__m128i);

    impl Sse2 {
        #[inline]
        #[target_feature(enable = "sse2")]
        fn from_words(w: [u32; MD5_LANES]) -> Sse2 {
            Sse2(from_words(w))
        }

        #[inline]
        #[target_feature(enable = "sse2")]
        fn words(self) -> [u32; MD5_LANES] {
            words(self.0)
        }

        #[inline]
        #[target_feature(enable = "sse2")]
        fn splat(k: u32) -> Sse2 {
            Sse2(_mm_set1_epi32(k as i32))
        }

        #[inline]
        #[target_feature(enable = "sse2")]
        fn add(self, other: Sse2) -> Sse2 {
            Sse2(_mm_add_epi32(self.0, other.0))
        }

        /// `z ^ (x & (y ^ z))`, which is `(x & y) | (!x & z)`.
        #[inline]
        #[target_feature(enable = "sse2")]
        fn f(x: Sse2, y: Sse2, z: Sse2) -> Sse2 {
            Sse2(_mm_xor_si128(
                z.0,
                _mm_and_si128(x.0, _mm_xor_si128(y.0, z.0)),
            ))
        }

        /// `(x & z) | (y & !z)`.
        #[inline]
        #[target_feature(enable = "sse2")]
        fn g(x: Sse2, y: Sse2, z: Sse2) -> Sse2 {
            Sse2(_mm_or_si128(
                _mm_and_si128(x.0, z.0),
                _mm_andnot_si128(z.0, y.0),
            ))
        }

        /// `x ^ y ^ z`.
        #[inline]
        #[target_feature(enable = "sse2")]
        fn h(x: Sse2, y: Sse2, z: Sse2) -> Sse2 {
            Sse2(_mm_xor_si128(x.0, _mm_xor_si128(y.0, z.0)))
        }

        /// `y ^ (x | !z)`.
        #[inline]
        #[target_feature(enable = "sse2")]
        fn i(x: Sse2, y: Sse2, z: Sse2) -> Sse2 {
            let not_z = _mm_xor_si128(z.0, _mm_set1_epi32(-1));
            Sse2(_mm_xor_si128(y.0, _mm_or_si128(x.0, not_z)))
        }

        /// Rotates every lane left by `L` bits; `R` is `32 - L`.
        #[inline]
        #[target_feature(enable = "sse2")]
        fn rotate_left<const L: i32, const R: i32>(self) -> Sse2 {
            Sse2(_mm_or_si128(
                _mm_slli_epi32::<L>(self.0),
                _mm_srli_epi32::<R>(self.0),
            ))
        }
    }

    /// AVX-512VL lanes: each round function is one `vpternlogd`, whose
    /// 8-bit immediate is the function's truth table (bit `4x + 2y + z`),
    /// and the rotation one `vprold`.
    #[derive(Clone, Copy)]
    struct Avx512(__m128i);

    impl Avx512 {
        #[inline]
        #[target_feature(enable = "avx512f,avx512vl")]
        fn from_words(w: [u32; MD5_LANES]) -> Avx512 {
            Avx512(from_words(w))
        }

        #[inline]
        #[target_feature(enable = "avx512f,avx512vl")]
        fn words(self) -> [u32; MD5_LANES] {
            words(self.0)
        }

        #[inline]
        #[target_feature(enable = "avx512f,avx512vl")]
        fn splat(k: u32) -> Avx512 {
            Avx512(_mm_set1_epi32(k as i32))
        }

        #[inline]
        #[target_feature(enable = "avx512f,avx512vl")]
        fn add(self, other: Avx512) -> Avx512 {
            Avx512(_mm_add_epi32(self.0, other.0))
        }

        /// F: `x ? y : z`.
        #[inline]
        #[target_feature(enable = "avx512f,avx512vl")]
        fn f(x: Avx512, y: Avx512, z: Avx512) -> Avx512 {
            Avx512(_mm_ternarylogic_epi32::<0xca>(x.0, y.0, z.0))
        }

        /// G: `z ? x : y`.
        #[inline]
        #[target_feature(enable = "avx512f,avx512vl")]
        fn g(x: Avx512, y: Avx512, z: Avx512) -> Avx512 {
            Avx512(_mm_ternarylogic_epi32::<0xe4>(x.0, y.0, z.0))
        }

        /// H: `x ^ y ^ z`.
        #[inline]
        #[target_feature(enable = "avx512f,avx512vl")]
        fn h(x: Avx512, y: Avx512, z: Avx512) -> Avx512 {
            Avx512(_mm_ternarylogic_epi32::<0x96>(x.0, y.0, z.0))
        }

        /// I: `y ^ (x | !z)`.
        #[inline]
        #[target_feature(enable = "avx512f,avx512vl")]
        fn i(x: Avx512, y: Avx512, z: Avx512) -> Avx512 {
            Avx512(_mm_ternarylogic_epi32::<0x39>(x.0, y.0, z.0))
        }

        /// Rotates every lane left by `L` bits; `R` is `32 - L`, unused.
        #[inline]
        #[target_feature(enable = "avx512f,avx512vl")]
        fn rotate_left<const L: i32, const R: i32>(self) -> Avx512 {
            Avx512(_mm_rol_epi32::<L>(self.0))
        }
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
        /// amounts, continue each stream as one-stream code would, on
        /// every path this CPU runs.
        #[test]
        fn four_lanes_hash_like_one(heads in prop::array::uniform4(0usize..4), blocks in 1usize..12) {
            for path in Path::available() {
                four_lanes_on(path, heads, blocks)?;
            }
        }
    }

    fn four_lanes_on(path: Path, heads: [usize; 4], blocks: usize) -> Result<(), TestCaseError> {
        let streams: Vec<Vec<u8>> = (0..MD5_LANES as u8).map(|s| bytes(s, 64 * 16)).collect();
        let mut states: Vec<Md5State> = heads
            .iter()
            .zip(&streams)
            .map(|(&head, data)| {
                let mut state = Md5State::default();
                state.update(&data[..64 * head]);
                state
            })
            .collect();
        let mut lanes = Md5Lanes::on(path, &states);
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
                "{:?}, lane {}",
                path,
                lane
            );
        }
        Ok(())
    }

    #[test]
    fn every_x86_64_cpu_runs_sse2() {
        assert_eq!(
            Path::available().contains(&Path::Sse2),
            cfg!(target_arch = "x86_64")
        );
        assert!(Path::best().runs_here());
    }
}
