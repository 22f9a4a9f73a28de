//! Verification of `x-amz-checksum-*` values, given as headers or as
//! trailers of an aws-chunked body (what current AWS SDKs send by default).
//!
//! s3s decodes aws-chunked bodies and exposes the trailers, but leaves
//! checking them to us. The body is wrapped in [`ChecksumBody`], which hashes
//! every byte as it passes and, at the end of the stream, compares: a
//! mismatch becomes the stream's last item, an error, so the object layer
//! aborts the write before anything is committed.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use cairn_object::BodyStream;
use futures::Stream;
use http::HeaderMap;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};
use s3s::dto::{Checksum, ChecksumAlgorithm, ChecksumType, StreamingBlob};
use s3s::{S3Error, S3Result, TrailingHeaders, s3_error};

/// The checksum algorithms S3 defines, by their header suffix.
const ALGORITHMS: [&str; 5] = ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"];

fn get<'a>(checksum: &'a Checksum, algo: &str) -> Option<&'a String> {
    match algo {
        "crc32" => checksum.checksum_crc32.as_ref(),
        "crc32c" => checksum.checksum_crc32c.as_ref(),
        "crc64nvme" => checksum.checksum_crc64nvme.as_ref(),
        "sha1" => checksum.checksum_sha1.as_ref(),
        "sha256" => checksum.checksum_sha256.as_ref(),
        _ => None,
    }
}

fn enable(hasher: &mut ChecksumHasher, algo: &str) {
    match algo {
        "crc32" => hasher.crc32 = Some(Crc32::new()),
        "crc32c" => hasher.crc32c = Some(Crc32c::new()),
        "crc64nvme" => hasher.crc64nvme = Some(Crc64Nvme::new()),
        "sha1" => hasher.sha1 = Some(Sha1::new()),
        "sha256" => hasher.sha256 = Some(Sha256::new()),
        _ => {}
    }
}

/// Byte length of each algorithm's digest, to tell a malformed value from a wrong one.
fn digest_len(algo: &str) -> usize {
    match algo {
        "crc32" | "crc32c" => 4,
        "crc64nvme" => 8,
        "sha1" => 20,
        _ => 32,
    }
}

/// Metadata key of the object's checksum type (`COMPOSITE`, `FULL_OBJECT`).
pub(crate) const TYPE_KEY: &str = "x-amz-checksum-type";
/// Metadata key of a multipart upload's checksum algorithm (lower case).
pub(crate) const ALGORITHM_KEY: &str = "x-amz-checksum-algorithm";

/// Lower-case name of an algorithm S3 defines, from any spelling.
pub(crate) fn algorithm_name(value: &str) -> S3Result<&'static str> {
    let lower = value.to_ascii_lowercase();
    ALGORITHMS
        .iter()
        .find(|a| **a == lower)
        .copied()
        .ok_or_else(|| {
            s3_error!(
                InvalidRequest,
                "Checksum algorithm {value:?} is not supported"
            )
        })
}

/// What an upload asked to be checked, and computed.
pub(crate) struct ChecksumPlan {
    /// Values given as headers, by algorithm.
    expected: Vec<(&'static str, String)>,
    /// Algorithms whose values arrive as trailers.
    trailers: Vec<&'static str>,
    /// Algorithms to compute and store without a value to check: named by
    /// `x-amz-checksum-algorithm` alone, or by the part's upload.
    computed: Vec<&'static str>,
}

impl ChecksumPlan {
    /// Reads the plan from a request's headers (`x-amz-checksum-*`,
    /// `x-amz-trailer`) and its named algorithm, if any.
    pub(crate) fn from_request(
        headers: &HeaderMap,
        given: &Checksum,
        algorithm: Option<&ChecksumAlgorithm>,
    ) -> S3Result<ChecksumPlan> {
        let mut expected = Vec::new();
        for algo in ALGORITHMS {
            if let Some(value) = get(given, algo) {
                check_format(algo, value)?;
                expected.push((algo, value.clone()));
            }
        }
        let mut trailers = Vec::new();
        if let Some(value) = headers.get("x-amz-trailer") {
            let value = value
                .to_str()
                .map_err(|_| s3_error!(InvalidRequest, "invalid x-amz-trailer header"))?;
            for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let name = name.to_ascii_lowercase();
                let Some(algo) = name
                    .strip_prefix("x-amz-checksum-")
                    .and_then(|a| ALGORITHMS.iter().find(|x| **x == a))
                else {
                    return Err(s3_error!(InvalidRequest, "unsupported trailer {name:?}"));
                };
                trailers.push(*algo);
            }
        }
        if expected.len() + trailers.len() > 1 {
            return Err(s3_error!(
                InvalidRequest,
                "Expecting a single x-amz-checksum- header"
            ));
        }
        let mut plan = ChecksumPlan {
            expected,
            trailers,
            computed: Vec::new(),
        };
        if let Some(algorithm) = algorithm {
            plan.require(algorithm_name(algorithm.as_str())?)?;
        }
        // What AWS SDKs send to name the algorithm of a PUT or a part (s3s
        // reads only `x-amz-checksum-algorithm`).
        if let Some(value) = headers.get("x-amz-sdk-checksum-algorithm") {
            let value = value.to_str().map_err(|_| {
                s3_error!(
                    InvalidRequest,
                    "invalid x-amz-sdk-checksum-algorithm header"
                )
            })?;
            plan.require(algorithm_name(value)?)?;
        }
        Ok(plan)
    }

    /// The single algorithm of this plan, if any.
    fn algorithm(&self) -> Option<&'static str> {
        self.expected
            .first()
            .map(|(a, _)| *a)
            .or_else(|| self.trailers.first().copied())
            .or_else(|| self.computed.first().copied())
    }

    /// Makes sure `algo` is checked or computed, and that no other is used:
    /// a part's checksum must use its upload's algorithm.
    pub(crate) fn require(&mut self, algo: &'static str) -> S3Result<()> {
        match self.algorithm() {
            None => {
                self.computed.push(algo);
                Ok(())
            }
            Some(own) if own == algo => Ok(()),
            Some(own) => Err(s3_error!(
                InvalidRequest,
                "Checksum Type mismatch occurred, expected checksum Type: {algo}, actual checksum Type: {own}"
            )),
        }
    }

    fn is_empty(&self) -> bool {
        self.expected.is_empty() && self.trailers.is_empty() && self.computed.is_empty()
    }
}

fn check_format(algo: &str, value: &str) -> S3Result<()> {
    match base64_simd::STANDARD.decode_to_vec(value) {
        Ok(bytes) if bytes.len() == digest_len(algo) => Ok(()),
        _ => Err(s3_error!(
            InvalidRequest,
            "Value for x-amz-checksum-{algo} header is invalid."
        )),
    }
}

/// Checksums verified for the stored object, by metadata key.
pub(crate) type Verified = Arc<Mutex<BTreeMap<String, String>>>;

/// A PUT body that verifies its checksums at the end of the stream.
pub(crate) struct ChecksumBody {
    inner: StreamingBlob,
    hasher: Option<ChecksumHasher>,
    plan: ChecksumPlan,
    trailing: Option<TrailingHeaders>,
    verified: Verified,
}

impl ChecksumBody {
    /// Wraps `inner`; returns the wrapped body and where the verified values
    /// appear once it has been read to the end. Bodies without checksums
    /// pass through unwrapped.
    pub(crate) fn wrap(
        inner: StreamingBlob,
        plan: ChecksumPlan,
        trailing: Option<TrailingHeaders>,
    ) -> (BodyStream, Verified) {
        let verified = Verified::default();
        if plan.is_empty() {
            return (Box::pin(inner), verified);
        }
        let mut hasher = ChecksumHasher::default();
        for (algo, _) in &plan.expected {
            enable(&mut hasher, algo);
        }
        for algo in plan.trailers.iter().chain(&plan.computed) {
            enable(&mut hasher, algo);
        }
        let body = ChecksumBody {
            inner,
            hasher: Some(hasher),
            plan,
            trailing,
            verified: verified.clone(),
        };
        (Box::pin(body), verified)
    }

    fn verify(&mut self) -> Result<(), S3Error> {
        let computed = self
            .hasher
            .take()
            .map(ChecksumHasher::finalize)
            .unwrap_or_default();
        let mut expected = self.plan.expected.clone();
        if !self.plan.trailers.is_empty() {
            let trailers = self
                .trailing
                .as_ref()
                .and_then(TrailingHeaders::take)
                .unwrap_or_default();
            for algo in &self.plan.trailers {
                let name = format!("x-amz-checksum-{algo}");
                let Some(value) = trailers.get(name.as_str()).and_then(|v| v.to_str().ok()) else {
                    return Err(s3_error!(
                        InvalidRequest,
                        "The trailer {name} was announced but not sent"
                    ));
                };
                check_format(algo, value)?;
                expected.push((algo, value.to_owned()));
            }
        }
        let mut verified = self.verified.lock().expect("checksum slot");
        for algo in &self.plan.computed {
            if let Some(value) = get(&computed, algo) {
                verified.insert(format!("x-amz-checksum-{algo}"), value.clone());
            }
        }
        for (algo, value) in expected {
            let Some(actual) = get(&computed, algo) else {
                continue;
            };
            if *actual != value {
                return Err(s3_error!(
                    BadDigest,
                    "The {} you specified did not match the calculated checksum.",
                    algo.to_ascii_uppercase()
                ));
            }
            verified.insert(format!("x-amz-checksum-{algo}"), value);
        }
        Ok(())
    }
}

impl Stream for ChecksumBody {
    type Item = Result<Bytes, cairn_object::BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.hasher.is_none() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                if let Some(hasher) = &mut self.hasher {
                    hasher.update(&bytes);
                }
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err))),
            Poll::Ready(None) => match self.verify() {
                Ok(()) => Poll::Ready(None),
                Err(err) => Poll::Ready(Some(Err(Box::new(err)))),
            },
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The verified checksums to store with a single-part object: they cover
/// the whole object.
pub(crate) fn take_verified(verified: &Verified) -> BTreeMap<String, String> {
    let mut out = verified.lock().expect("checksum slot").clone();
    if !out.is_empty() {
        out.insert(TYPE_KEY.to_owned(), ChecksumType::FULL_OBJECT.to_owned());
    }
    out
}

/// The checksum entries of `meta` that describe the whole object's bytes
/// (not a composite of parts), which a copy of those bytes keeps.
pub(crate) fn full_object_checksums(meta: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    if meta.get(TYPE_KEY).map(String::as_str) != Some(ChecksumType::FULL_OBJECT) {
        return BTreeMap::new();
    }
    meta.iter()
        .filter(|(k, _)| k.starts_with("x-amz-checksum-") && k.as_str() != ALGORITHM_KEY)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Sets `value` as the `algo` checksum of a part in GetObjectAttributes.
pub(crate) fn set_part_checksum(part: &mut s3s::dto::ObjectPart, algo: &str, value: String) {
    match algo {
        "crc32" => part.checksum_crc32 = Some(value),
        "crc32c" => part.checksum_crc32c = Some(value),
        "crc64nvme" => part.checksum_crc64nvme = Some(value),
        "sha1" => part.checksum_sha1 = Some(value),
        "sha256" => part.checksum_sha256 = Some(value),
        _ => {}
    }
}

/// The checksum type an upload gets: the one asked for, else S3's default
/// (full-object for CRC64NVME, composite for the others).
pub(crate) fn upload_checksum_type(
    algo: &str,
    requested: Option<&ChecksumType>,
) -> S3Result<&'static str> {
    let full = match requested.map(ChecksumType::as_str) {
        None => algo == "crc64nvme",
        Some(ChecksumType::FULL_OBJECT) => true,
        Some(ChecksumType::COMPOSITE) => false,
        Some(other) => return Err(s3_error!(InvalidRequest, "Unknown checksum type {other:?}")),
    };
    if full && !matches!(algo, "crc32" | "crc32c" | "crc64nvme") {
        return Err(s3_error!(
            InvalidRequest,
            "The FULL_OBJECT checksum type is only available for CRC algorithms"
        ));
    }
    if !full && algo == "crc64nvme" {
        return Err(s3_error!(
            InvalidRequest,
            "The COMPOSITE checksum type is not available for CRC64NVME"
        ));
    }
    Ok(if full {
        ChecksumType::FULL_OBJECT
    } else {
        ChecksumType::COMPOSITE
    })
}

fn decode(value: &str) -> Option<Vec<u8>> {
    base64_simd::STANDARD.decode_to_vec(value).ok()
}

/// Digest of `data` with `algo`, raw bytes.
fn digest(algo: &str, data: &[u8]) -> Vec<u8> {
    fn run<C: s3s::crypto::Checksum>(data: &[u8]) -> Vec<u8> {
        let mut c = C::new();
        c.update(data);
        c.finalize().as_ref().to_vec()
    }
    match algo {
        "crc32" => run::<Crc32>(data),
        "crc32c" => run::<Crc32c>(data),
        "crc64nvme" => run::<Crc64Nvme>(data),
        "sha1" => run::<Sha1>(data),
        _ => run::<Sha256>(data),
    }
}

/// The checksum of a completed multipart object from its parts' checksums:
/// for `COMPOSITE`, the digest of the concatenated part digests with `-N`;
/// for `FULL_OBJECT`, the parts' CRCs combined into the CRC of the whole.
pub(crate) fn multipart_checksum(
    algo: &str,
    kind: &str,
    parts: &[(Option<String>, u64)],
) -> Option<String> {
    let digests: Vec<Vec<u8>> = parts
        .iter()
        .map(|(c, _)| c.as_deref().and_then(decode))
        .collect::<Option<_>>()?;
    if kind == ChecksumType::COMPOSITE {
        let joined: Vec<u8> = digests.concat();
        return Some(format!(
            "{}-{}",
            base64_simd::STANDARD.encode_to_string(digest(algo, &joined)),
            parts.len()
        ));
    }
    let (crc_algo, width) = match algo {
        "crc32" => (crc_fast::CrcAlgorithm::Crc32IsoHdlc, 4),
        "crc32c" => (crc_fast::CrcAlgorithm::Crc32Iscsi, 4),
        "crc64nvme" => (crc_fast::CrcAlgorithm::Crc64Nvme, 8),
        _ => return None,
    };
    let as_u64 = |bytes: &[u8]| -> Option<u64> {
        (bytes.len() == width).then(|| bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    };
    let mut combined: Option<u64> = None;
    for (bytes, (_, len)) in digests.iter().zip(parts) {
        let crc = as_u64(bytes)?;
        combined = Some(match combined {
            None => crc,
            Some(acc) => crc_fast::checksum_combine(crc_algo, acc, crc, *len),
        });
    }
    let value = combined?;
    let bytes = value.to_be_bytes();
    Some(base64_simd::STANDARD.encode_to_string(&bytes[8 - width..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn blob(parts: &[&'static [u8]]) -> StreamingBlob {
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        StreamingBlob::wrap(futures::stream::iter(chunks))
    }

    fn crc32_b64(data: &[u8]) -> String {
        let mut crc = Crc32::new();
        crc.update(data);
        base64_simd::STANDARD.encode_to_string(crc.finalize())
    }

    async fn drain(mut body: BodyStream) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        while let Some(item) = body.next().await {
            match item {
                Ok(bytes) => out.extend_from_slice(&bytes),
                Err(err) => return Err(err.to_string()),
            }
        }
        Ok(out)
    }

    #[tokio::test]
    async fn header_checksum_is_verified() {
        let given = Checksum {
            checksum_crc32: Some(crc32_b64(b"hello world")),
            ..Default::default()
        };
        let plan = ChecksumPlan::from_request(&HeaderMap::new(), &given, None).unwrap();
        let (body, verified) = ChecksumBody::wrap(blob(&[b"hello ", b"world"]), plan, None);
        assert_eq!(drain(body).await.unwrap(), b"hello world");
        assert_eq!(
            verified.lock().unwrap().get("x-amz-checksum-crc32"),
            Some(&crc32_b64(b"hello world"))
        );

        let plan = ChecksumPlan::from_request(&HeaderMap::new(), &given, None).unwrap();
        let (body, _) = ChecksumBody::wrap(blob(&[b"hello there"]), plan, None);
        let err = drain(body).await.unwrap_err();
        assert!(err.contains("did not match"), "{err}");
    }

    #[test]
    fn malformed_and_conflicting_checksums_are_refused() {
        let bad = Checksum {
            checksum_crc32: Some("not base64!".into()),
            ..Default::default()
        };
        assert!(ChecksumPlan::from_request(&HeaderMap::new(), &bad, None).is_err());
        let two = Checksum {
            checksum_crc32: Some(crc32_b64(b"x")),
            checksum_sha1: Some(base64_simd::STANDARD.encode_to_string([0u8; 20])),
            ..Default::default()
        };
        assert!(ChecksumPlan::from_request(&HeaderMap::new(), &two, None).is_err());
    }
}
