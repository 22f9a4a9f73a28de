//! Object data for `cairn bench`: incompressible, different in every
//! 8-byte word of every object (no server can deduplicate or compress it
//! away), generated as it is sent so that no object is ever held whole,
//! and reproducible from the key so that GETs can be verified.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64_simd::STANDARD as BASE64;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use md5::Md5;
use sha2::{Digest, Sha256};

/// Bytes generated per frame of a request body.
pub const CHUNK: usize = 1 << 20;
const WORDS: usize = CHUNK / 8;

/// SplitMix64: a fast, well-mixed 64-bit step.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A seed for a key: FNV-1a over its bytes, mixed with the run's salt.
pub fn key_seed(salt: u64, key: &str) -> u64 {
    let mut hash = 0xCBF2_9CE4_8422_2325u64;
    for &b in key.as_bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
    }
    mix(hash ^ salt)
}

/// One megabyte of random words, XORed with a word derived from the object
/// and chunk, gives every chunk of every object its own bytes.
#[derive(Clone)]
pub struct Generator {
    base: Arc<[u64]>,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        let mut state = seed;
        let base: Vec<u64> = (0..WORDS)
            .map(|_| {
                state = mix(state);
                state
            })
            .collect();
        Generator { base: base.into() }
    }

    /// Bytes `[chunk * CHUNK, chunk * CHUNK + len)` of the object with `seed`.
    pub fn chunk(&self, seed: u64, chunk: u64, len: usize) -> Bytes {
        debug_assert!(len <= CHUNK);
        let salt = mix(seed ^ chunk.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        // One pass the compiler vectorises: the generator's CPU shares the
        // machine with the server it measures.
        let mut out = BytesMut::zeroed(len.next_multiple_of(8));
        for (bytes, word) in out.chunks_exact_mut(8).zip(self.base.iter()) {
            bytes.copy_from_slice(&(word ^ salt).to_le_bytes());
        }
        out.truncate(len);
        out.freeze()
    }

    /// Every chunk of an object of `size` bytes, in order.
    pub fn chunks(&self, seed: u64, size: u64) -> impl Iterator<Item = Bytes> + '_ {
        (0..size.div_ceil(CHUNK as u64)).map(move |idx| {
            let len = (size - idx * CHUNK as u64).min(CHUNK as u64) as usize;
            self.chunk(seed, idx, len)
        })
    }
}

/// A trailing checksum algorithm (`x-amz-checksum-*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64nvme,
    Sha256,
}

impl ChecksumAlgorithm {
    pub fn header(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "x-amz-checksum-crc32",
            ChecksumAlgorithm::Crc32c => "x-amz-checksum-crc32c",
            ChecksumAlgorithm::Crc64nvme => "x-amz-checksum-crc64nvme",
            ChecksumAlgorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "CRC32",
            ChecksumAlgorithm::Crc32c => "CRC32C",
            ChecksumAlgorithm::Crc64nvme => "CRC64NVME",
            ChecksumAlgorithm::Sha256 => "SHA256",
        }
    }

    fn hasher(self) -> Checksummer {
        match self {
            ChecksumAlgorithm::Crc32 => Checksummer::Crc(
                crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32IsoHdlc),
                4,
            ),
            ChecksumAlgorithm::Crc32c => {
                Checksummer::Crc(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi), 4)
            }
            ChecksumAlgorithm::Crc64nvme => {
                Checksummer::Crc(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme), 8)
            }
            ChecksumAlgorithm::Sha256 => Checksummer::Sha256(Sha256::new()),
        }
    }
}

enum Checksummer {
    Crc(crc_fast::Digest, usize),
    Sha256(Sha256),
}

impl Checksummer {
    fn update(&mut self, data: &[u8]) {
        match self {
            Checksummer::Crc(digest, _) => digest.update(data),
            Checksummer::Sha256(digest) => digest.update(data),
        }
    }

    fn finish(self) -> String {
        match self {
            Checksummer::Crc(digest, width) => {
                let value = digest.finalize().to_be_bytes();
                BASE64.encode_to_string(&value[8 - width..])
            }
            Checksummer::Sha256(digest) => BASE64.encode_to_string(digest.finalize()),
        }
    }
}

/// The digests a request needs before its body is sent: the hex SHA-256 of
/// a signed payload, the base64 MD5 of `Content-MD5`.
pub fn digests(
    generator: &Generator,
    seed: u64,
    size: u64,
    sha256: bool,
    md5: bool,
) -> (Option<String>, Option<String>) {
    let mut sha = sha256.then(Sha256::new);
    let mut md = md5.then(Md5::new);
    if sha.is_some() || md.is_some() {
        for chunk in generator.chunks(seed, size) {
            if let Some(sha) = &mut sha {
                sha.update(&chunk);
            }
            if let Some(md) = &mut md {
                md.update(&chunk);
            }
        }
    }
    (
        sha.map(|s| cairn_s3::sigv4::hex(&s.finalize())),
        md.map(|m| BASE64.encode_to_string(m.finalize())),
    )
}

/// A request body generated frame by frame, plain or `aws-chunked` with a
/// trailing checksum.
pub struct PayloadBody {
    generator: Generator,
    seed: u64,
    size: u64,
    next_chunk: u64,
    trailer: Option<(ChecksumAlgorithm, Option<Checksummer>)>,
    done: bool,
}

impl PayloadBody {
    pub fn new(
        generator: Generator,
        seed: u64,
        size: u64,
        trailer: Option<ChecksumAlgorithm>,
    ) -> PayloadBody {
        PayloadBody {
            generator,
            seed,
            size,
            next_chunk: 0,
            trailer: trailer.map(|alg| (alg, Some(alg.hasher()))),
            done: false,
        }
    }

    /// The body's length on the wire.
    pub fn wire_len(&self) -> u64 {
        let Some((alg, _)) = &self.trailer else {
            return self.size;
        };
        let chunks = self.size.div_ceil(CHUNK as u64);
        let mut len = 0;
        for idx in 0..chunks {
            let chunk = (self.size - idx * CHUNK as u64).min(CHUNK as u64);
            len += format!("{chunk:x}").len() as u64 + 2 + chunk + 2;
        }
        len + 3 + trailer_line(*alg, &alg.hasher().finish()).len() as u64 + 2
    }
}

fn trailer_line(alg: ChecksumAlgorithm, value: &str) -> String {
    format!("{}:{value}\r\n", alg.header())
}

impl Body for PayloadBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let offset = this.next_chunk * CHUNK as u64;
        if offset >= this.size {
            this.done = true;
            return Poll::Ready(match &mut this.trailer {
                None => None,
                Some((alg, hasher)) => {
                    let value = hasher.take().map(Checksummer::finish).unwrap_or_default();
                    let tail = format!("0\r\n{}\r\n", trailer_line(*alg, &value));
                    Some(Ok(Frame::data(Bytes::from(tail))))
                }
            });
        }
        let len = (this.size - offset).min(CHUNK as u64) as usize;
        let data = this.generator.chunk(this.seed, this.next_chunk, len);
        this.next_chunk += 1;
        let frame = match &mut this.trailer {
            None => data,
            Some((_, hasher)) => {
                if let Some(hasher) = hasher {
                    hasher.update(&data);
                }
                let mut framed = BytesMut::with_capacity(len + 16);
                framed.extend_from_slice(format!("{len:x}\r\n").as_bytes());
                framed.extend_from_slice(&data);
                framed.extend_from_slice(b"\r\n");
                framed.freeze()
            }
        };
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.wire_len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn objects_differ_in_every_word_and_are_reproducible() {
        let generator = Generator::new(7);
        let a = generator.chunk(key_seed(1, "a"), 0, CHUNK);
        let b = generator.chunk(key_seed(1, "b"), 0, CHUNK);
        let a1 = generator.chunk(key_seed(1, "a"), 1, CHUNK);
        for other in [&b, &a1] {
            let same = a
                .chunks(8)
                .zip(other.chunks(8))
                .filter(|(x, y)| x == y)
                .count();
            assert_eq!(same, 0);
        }
        assert_eq!(a, Generator::new(7).chunk(key_seed(1, "a"), 0, CHUNK));
        // A short chunk (the end of an object) is the start of a whole one.
        for len in [0, 1, 13, 4096 + 3] {
            assert_eq!(generator.chunk(key_seed(1, "a"), 0, len), a.slice(..len));
        }
        // A different salt (another run) gives other bytes for the same key.
        assert_ne!(a, generator.chunk(key_seed(2, "a"), 0, CHUNK));
        // Roughly half the bits set: nothing to compress.
        let ones: u32 = a.iter().map(|b| b.count_ones()).sum();
        let ratio = f64::from(ones) / (CHUNK as f64 * 8.0);
        assert!((0.49..0.51).contains(&ratio), "{ratio}");
    }

    #[tokio::test]
    async fn bodies_have_the_promised_length_and_frames() {
        let generator = Generator::new(3);
        for size in [0u64, 1, 1000, CHUNK as u64, CHUNK as u64 * 2 + 5] {
            let plain = PayloadBody::new(generator.clone(), 9, size, None);
            assert_eq!(plain.wire_len(), size);
            let bytes = plain.collect().await.unwrap().to_bytes();
            let expected: Vec<u8> = generator.chunks(9, size).flat_map(|c| c.to_vec()).collect();
            assert_eq!(bytes, expected);

            let chunked =
                PayloadBody::new(generator.clone(), 9, size, Some(ChecksumAlgorithm::Crc32c));
            let wire_len = chunked.wire_len();
            let bytes = chunked.collect().await.unwrap().to_bytes();
            assert_eq!(bytes.len() as u64, wire_len, "size {size}");
            let text = String::from_utf8_lossy(&bytes);
            assert!(text.ends_with("\r\n\r\n"), "size {size}");
            let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
            crc.update(&expected);
            let value = BASE64.encode_to_string((crc.finalize() as u32).to_be_bytes());
            assert!(
                text.contains(&format!("0\r\nx-amz-checksum-crc32c:{value}\r\n")),
                "size {size}"
            );
        }
    }
}
