//! Checksums (issue 3, item 3): `x-amz-checksum-crc32`, `crc32c`,
//! `crc64nvme`, `sha1` and `sha256` verified on upload, stored, returned
//! with checksum mode; composite and full-object checksums for multipart.
//! Expected values come from the reference definitions below, checked
//! against the standard test vectors, never from the server's own code.

mod common;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
};
use common::sigv4::sha256_hex;
use common::{ServerOptions, TestServer, raw_request, sdk_error_code, signed_headers, test_data};

const MIB: usize = 1024 * 1024;

/// A reflected CRC, bit by bit: (polynomial, width in bits).
fn crc(poly: u64, width: u32, data: &[u8]) -> u64 {
    let mask = if width == 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    let mut crc = mask;
    for &byte in data {
        crc ^= u64::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ poly
            } else {
                crc >> 1
            };
        }
    }
    crc ^ mask
}

#[derive(Clone, Copy, Debug)]
enum Algo {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

const ALL: [Algo; 5] = [
    Algo::Crc32,
    Algo::Crc32c,
    Algo::Crc64Nvme,
    Algo::Sha1,
    Algo::Sha256,
];

impl Algo {
    fn name(self) -> &'static str {
        match self {
            Algo::Crc32 => "crc32",
            Algo::Crc32c => "crc32c",
            Algo::Crc64Nvme => "crc64nvme",
            Algo::Sha1 => "sha1",
            Algo::Sha256 => "sha256",
        }
    }

    fn sdk(self) -> ChecksumAlgorithm {
        match self {
            Algo::Crc32 => ChecksumAlgorithm::Crc32,
            Algo::Crc32c => ChecksumAlgorithm::Crc32C,
            Algo::Crc64Nvme => ChecksumAlgorithm::Crc64Nvme,
            Algo::Sha1 => ChecksumAlgorithm::Sha1,
            Algo::Sha256 => ChecksumAlgorithm::Sha256,
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            Algo::Crc32 => (crc(0xEDB8_8320, 32, data) as u32).to_be_bytes().to_vec(),
            Algo::Crc32c => (crc(0x82F6_3B78, 32, data) as u32).to_be_bytes().to_vec(),
            Algo::Crc64Nvme => crc(0x9A6C_9329_AC4B_C9B5, 64, data).to_be_bytes().to_vec(),
            Algo::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Algo::Sha256 => sha2::Sha256::digest(data).to_vec(),
        }
    }

    fn b64(self, data: &[u8]) -> String {
        base64_simd::STANDARD.encode_to_string(self.digest(data))
    }
}

fn b64(bytes: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(bytes)
}

#[test]
fn reference_checksums_match_the_standard_vectors() {
    let check = b"123456789";
    assert_eq!(crc(0xEDB8_8320, 32, check), 0xCBF4_3926);
    assert_eq!(crc(0x82F6_3B78, 32, check), 0xE306_9283);
    assert_eq!(crc(0x9A6C_9329_AC4B_C9B5, 64, check), 0xAE8B_1486_0A79_9888);
    let hex = |b: Vec<u8>| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert_eq!(
        hex(Algo::Sha1.digest(b"abc")),
        "a9993e364706816aba3e25717850c26c9cd0d89d"
    );
    assert_eq!(
        hex(Algo::Sha256.digest(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

/// The checksum of `algo` an answer carries, if any.
macro_rules! checksum_of {
    ($out:expr, $algo:expr) => {
        match $algo {
            Algo::Crc32 => $out.checksum_crc32(),
            Algo::Crc32c => $out.checksum_crc32_c(),
            Algo::Crc64Nvme => $out.checksum_crc64_nvme(),
            Algo::Sha1 => $out.checksum_sha1(),
            Algo::Sha256 => $out.checksum_sha256(),
        }
        .map(str::to_owned)
    };
}

async fn head_checksum(
    client: &Client,
    bucket: &str,
    key: &str,
    algo: Algo,
) -> (Option<String>, Option<String>) {
    let head = client
        .head_object()
        .bucket(bucket)
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    (
        checksum_of!(head, algo),
        head.checksum_type().map(|t| t.as_str().to_owned()),
    )
}

fn raw_put(
    server: &TestServer,
    path: &str,
    headers: &[(&'static str, String)],
    body: &[u8],
) -> common::RawResponse {
    let signed = signed_headers(&server.addr, "PUT", path, &[], &sha256_hex(body), headers);
    raw_request(&server.addr, "PUT", path, &signed, body).unwrap()
}

#[tokio::test]
async fn issue_3_single_put_checksums() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("sums").send().await.unwrap();
    let data = test_data(300_001, 7);
    let other = test_data(300_001, 8);

    for algo in ALL {
        let key = format!("sdk-{}", algo.name());
        let expected = algo.b64(&data);
        // The SDK computes the checksum and sends it (as a trailer).
        let put = client
            .put_object()
            .bucket("sums")
            .key(&key)
            .checksum_algorithm(algo.sdk())
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{algo:?}: {e:?}"));
        assert_eq!(checksum_of!(put, algo), Some(expected.clone()), "{algo:?}");
        assert_eq!(
            head_checksum(&client, "sums", &key, algo).await,
            (Some(expected.clone()), Some("FULL_OBJECT".to_owned())),
            "{algo:?}"
        );
        // GET with checksum mode: the SDK validates the body against it.
        let got = client
            .get_object()
            .bucket("sums")
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert_eq!(checksum_of!(got, algo), Some(expected.clone()));
        assert_eq!(got.body.collect().await.unwrap().to_vec(), data);
        // Without checksum mode, no checksum.
        let head = client
            .head_object()
            .bucket("sums")
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(checksum_of!(head, algo), None);

        // In a header: right, wrong, malformed.
        let header = match algo {
            Algo::Crc32 => "x-amz-checksum-crc32",
            Algo::Crc32c => "x-amz-checksum-crc32c",
            Algo::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Algo::Sha1 => "x-amz-checksum-sha1",
            Algo::Sha256 => "x-amz-checksum-sha256",
        };
        let path = format!("/sums/raw-{}", algo.name());
        let resp = raw_put(&server, &path, &[(header, expected.clone())], &data);
        assert_eq!(resp.status, 200, "{algo:?}: {}", resp.text());
        assert_eq!(resp.header(header), Some(expected.as_str()));
        let resp = raw_put(&server, &path, &[(header, algo.b64(&other))], &data);
        assert_eq!(resp.status, 400, "{algo:?}");
        assert_eq!(resp.error_code().as_deref(), Some("BadDigest"), "{algo:?}");
        for malformed in ["not base64!".to_owned(), b64(b"short")] {
            let resp = raw_put(&server, &path, &[(header, malformed)], &other);
            assert_eq!(resp.status, 400, "{algo:?}");
            assert_eq!(
                resp.error_code().as_deref(),
                Some("InvalidRequest"),
                "{algo:?}"
            );
        }
        // None of the refused PUTs replaced the object.
        let got = client
            .get_object()
            .bucket("sums")
            .key(format!("raw-{}", algo.name()))
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert_eq!(checksum_of!(got, algo), Some(expected.clone()));
        assert_eq!(got.body.collect().await.unwrap().to_vec(), data);
    }

    // Two checksums, or one that contradicts the named algorithm.
    let resp = raw_put(
        &server,
        "/sums/two",
        &[
            ("x-amz-checksum-crc32", Algo::Crc32.b64(&data)),
            ("x-amz-checksum-sha256", Algo::Sha256.b64(&data)),
        ],
        &data,
    );
    assert_eq!(resp.error_code().as_deref(), Some("InvalidRequest"));
    let resp = raw_put(
        &server,
        "/sums/mixed",
        &[
            ("x-amz-sdk-checksum-algorithm", "CRC32".to_owned()),
            ("x-amz-checksum-sha256", Algo::Sha256.b64(&data)),
        ],
        &data,
    );
    assert_eq!(
        resp.error_code().as_deref(),
        Some("InvalidRequest"),
        "{} {}",
        resp.status,
        resp.text()
    );
    let resp = raw_put(
        &server,
        "/sums/unknown",
        &[("x-amz-sdk-checksum-algorithm", "MD4".to_owned())],
        &data,
    );
    assert_eq!(resp.error_code().as_deref(), Some("InvalidRequest"));
    for key in ["two", "mixed", "unknown"] {
        let err = client
            .head_object()
            .bucket("sums")
            .key(key)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.raw_response().unwrap().status().as_u16(), 404);
    }
}

async fn multipart_with_checksum(
    client: &Client,
    key: &str,
    algo: Algo,
    kind: ChecksumType,
    parts: &[Vec<u8>],
) -> (String, Vec<String>) {
    let upload_id = client
        .create_multipart_upload()
        .bucket("sums")
        .key(key)
        .checksum_algorithm(algo.sdk())
        .checksum_type(kind.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{algo:?} {kind:?}: {e:?}"))
        .upload_id
        .unwrap();
    let mut completed = Vec::new();
    let mut part_sums = Vec::new();
    for (idx, data) in parts.iter().enumerate() {
        let number = idx as i32 + 1;
        let out = client
            .upload_part()
            .bucket("sums")
            .key(key)
            .upload_id(&upload_id)
            .part_number(number)
            .checksum_algorithm(algo.sdk())
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{algo:?} part {number}: {e:?}"));
        let sum = checksum_of!(out, algo).expect("the part's checksum");
        assert_eq!(sum, algo.b64(data), "{algo:?} part {number}");
        part_sums.push(sum.clone());
        let part = CompletedPart::builder()
            .part_number(number)
            .e_tag(out.e_tag.unwrap());
        let part = match algo {
            Algo::Crc32 => part.checksum_crc32(sum),
            Algo::Crc32c => part.checksum_crc32_c(sum),
            Algo::Crc64Nvme => part.checksum_crc64_nvme(sum),
            Algo::Sha1 => part.checksum_sha1(sum),
            Algo::Sha256 => part.checksum_sha256(sum),
        };
        completed.push(part.build());
    }
    let listed = client
        .list_parts()
        .bucket("sums")
        .key(key)
        .upload_id(&upload_id)
        .send()
        .await
        .unwrap();
    let listed: Vec<Option<String>> = listed
        .parts()
        .iter()
        .map(|p| checksum_of!(p, algo))
        .collect();
    let expected: Vec<Option<String>> = part_sums.iter().cloned().map(Some).collect();
    assert_eq!(listed, expected, "{algo:?}: ListParts checksums");
    let done = client
        .complete_multipart_upload()
        .bucket("sums")
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("{algo:?} {kind:?} complete: {e:?}"));
    (
        checksum_of!(done, algo).expect("the object's checksum"),
        part_sums,
    )
}

#[tokio::test]
async fn issue_3_multipart_checksums() {
    let server = TestServer::start(ServerOptions::drives(4));
    let client = server.client();
    client.create_bucket().bucket("sums").send().await.unwrap();
    let parts = vec![
        test_data(5 * MIB, 1),
        test_data(5 * MIB, 2),
        test_data(MIB + 3, 3),
    ];
    let whole = parts.concat();

    // Composite: the digest of the parts' digests, with the part count.
    for algo in [Algo::Crc32, Algo::Crc32c, Algo::Sha1, Algo::Sha256] {
        let key = format!("composite-{}", algo.name());
        let (sum, part_sums) =
            multipart_with_checksum(&client, &key, algo, ChecksumType::Composite, &parts).await;
        let raw: Vec<u8> = part_sums
            .iter()
            .flat_map(|s| base64_simd::STANDARD.decode_to_vec(s).unwrap())
            .collect();
        let expected = format!("{}-3", algo.b64(&raw));
        assert_eq!(sum, expected, "{algo:?}");
        assert_eq!(
            head_checksum(&client, "sums", &key, algo).await,
            (Some(expected), Some("COMPOSITE".to_owned())),
            "{algo:?}"
        );
        // Each part answers its own checksum.
        let part2 = client
            .get_object()
            .bucket("sums")
            .key(&key)
            .part_number(2)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert_eq!(part2.body.collect().await.unwrap().to_vec(), parts[1]);
    }

    // Full object: the CRC of the whole object, validated by the SDK on GET.
    for algo in [Algo::Crc32, Algo::Crc32c, Algo::Crc64Nvme] {
        let key = format!("full-{}", algo.name());
        let (sum, _) =
            multipart_with_checksum(&client, &key, algo, ChecksumType::FullObject, &parts).await;
        assert_eq!(sum, algo.b64(&whole), "{algo:?}");
        assert_eq!(
            head_checksum(&client, "sums", &key, algo).await,
            (Some(algo.b64(&whole)), Some("FULL_OBJECT".to_owned())),
            "{algo:?}"
        );
        let got = client
            .get_object()
            .bucket("sums")
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert_eq!(checksum_of!(got, algo), Some(algo.b64(&whole)));
        assert_eq!(got.body.collect().await.unwrap().to_vec(), whole);
    }

    // Combinations S3 refuses.
    for (algo, kind) in [
        (Algo::Sha1, ChecksumType::FullObject),
        (Algo::Sha256, ChecksumType::FullObject),
        (Algo::Crc64Nvme, ChecksumType::Composite),
    ] {
        let err = client
            .create_multipart_upload()
            .bucket("sums")
            .key("refused")
            .checksum_algorithm(algo.sdk())
            .checksum_type(kind.clone())
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            sdk_error_code(&err).as_deref(),
            Some("InvalidRequest"),
            "{algo:?} {kind:?}"
        );
    }

    // A part with another algorithm than its upload's, a part whose
    // checksum is wrong, and a completion naming a wrong part checksum.
    let upload_id = client
        .create_multipart_upload()
        .bucket("sums")
        .key("strict")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let err = client
        .upload_part()
        .bucket("sums")
        .key("strict")
        .upload_id(&upload_id)
        .part_number(1)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(ByteStream::from_static(b"part one"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("InvalidRequest"));
    let err = client
        .upload_part()
        .bucket("sums")
        .key("strict")
        .upload_id(&upload_id)
        .part_number(1)
        .checksum_crc32(Algo::Crc32.b64(b"something else"))
        .body(ByteStream::from_static(b"part one"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("BadDigest"));
    let listed = client
        .list_parts()
        .bucket("sums")
        .key("strict")
        .upload_id(&upload_id)
        .send()
        .await
        .unwrap();
    assert!(listed.parts().is_empty(), "refused parts are not stored");
    let out = client
        .upload_part()
        .bucket("sums")
        .key("strict")
        .upload_id(&upload_id)
        .part_number(1)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(ByteStream::from_static(b"part one"))
        .send()
        .await
        .unwrap();
    let err = client
        .complete_multipart_upload()
        .bucket("sums")
        .key("strict")
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(out.e_tag().unwrap())
                        .checksum_crc32(Algo::Crc32.b64(b"not the part"))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_error_code(&err).as_deref(), Some("InvalidPart"));
    let err = client
        .head_object()
        .bucket("sums")
        .key("strict")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 404);
}
