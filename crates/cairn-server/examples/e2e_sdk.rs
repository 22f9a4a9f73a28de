//! The `aws-sdk-s3` (Rust) client suite of the end-to-end script
//! (`tests/e2e/run.sh`): the same round of checks the other clients make,
//! against a running server.
//!
//! ```text
//! cargo build --release -p cairn-server --example e2e_sdk
//! target/release/examples/e2e_sdk http://127.0.0.1:9000 ACCESS_KEY SECRET_KEY
//! ```
//!
//! Prints one line per check and `op OPERATION ok|fail` for the operations
//! each check is about, then `rust-sdk: N passed, N failed`; exits non-zero
//! if anything failed. Only the given endpoint (127.0.0.1) is contacted.

use std::time::Instant;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, Delete,
    ObjectIdentifier,
};

const MIB: usize = 1024 * 1024;

type CheckResult = Result<(), String>;

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn ensure(cond: bool, what: impl FnOnce() -> String) -> CheckResult {
    if cond { Ok(()) } else { Err(what()) }
}

fn err(e: impl std::fmt::Debug) -> String {
    format!("{e:?}")
}

struct Suite {
    client: Client,
    bucket: String,
    small: Vec<u8>,
    parts: Vec<Vec<u8>>,
}

impl Suite {
    async fn get(&self, key: &str) -> Result<Vec<u8>, String> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(err)?;
        Ok(out.body.collect().await.map_err(err)?.to_vec())
    }

    async fn keys(&self, prefix: &str) -> Result<Vec<String>, String> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .max_keys(2)
            .into_paginator()
            .send();
        let mut count = 0;
        while let Some(page) = pages.next().await {
            count += 1;
            if count > 100 {
                return Err("more than 100 pages".to_owned());
            }
            let page = page.map_err(err)?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        Ok(keys)
    }

    async fn buckets(&self) -> CheckResult {
        self.client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(err)?;
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(err)?;
        let listed = self.client.list_buckets().send().await.map_err(err)?;
        ensure(
            listed
                .buckets()
                .iter()
                .any(|b| b.name() == Some(&self.bucket)),
            || "the new bucket is not listed".to_owned(),
        )?;
        let location = self
            .client
            .get_bucket_location()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(err)?;
        // S3 answers us-east-1 with an empty constraint.
        ensure(
            location
                .location_constraint()
                .is_none_or(|c| c.as_str().is_empty()),
            || format!("us-east-1 is an empty constraint: {location:?}"),
        )
    }

    async fn put_single(&self) -> CheckResult {
        // The SDK's default: an aws-chunked body with a CRC32 trailer.
        let put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key("dir/small.bin")
            .content_type("application/x-test")
            .metadata("origin", "rust-sdk")
            .body(ByteStream::from(self.small.clone()))
            .send()
            .await
            .map_err(err)?;
        let etag = format!("\"{}\"", md5_hex(&self.small));
        ensure(put.e_tag() == Some(etag.as_str()), || {
            format!("ETag {:?}, expected {etag}", put.e_tag())
        })?;
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key("dir/small.bin")
            .send()
            .await
            .map_err(err)?;
        ensure(
            head.content_length() == Some(self.small.len() as i64),
            || format!("length {:?}", head.content_length()),
        )?;
        ensure(
            head.metadata()
                .and_then(|m| m.get("origin"))
                .map(String::as_str)
                == Some("rust-sdk"),
            || format!("metadata {:?}", head.metadata()),
        )?;
        let got = self.get("dir/small.bin").await?;
        ensure(got == self.small, || "downloaded bytes differ".to_owned())
    }

    async fn put_multipart(&self) -> CheckResult {
        let upload_id = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key("dir/multi.bin")
            .send()
            .await
            .map_err(err)?
            .upload_id
            .ok_or("no upload id")?;
        let mut completed = Vec::new();
        for (idx, part) in self.parts.iter().enumerate() {
            let number = idx as i32 + 1;
            let out = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key("dir/multi.bin")
                .upload_id(&upload_id)
                .part_number(number)
                .body(ByteStream::from(part.clone()))
                .send()
                .await
                .map_err(err)?;
            completed.push(
                CompletedPart::builder()
                    .part_number(number)
                    .e_tag(out.e_tag().unwrap_or_default())
                    .build(),
            );
        }
        let listed = self
            .client
            .list_parts()
            .bucket(&self.bucket)
            .key("dir/multi.bin")
            .upload_id(&upload_id)
            .send()
            .await
            .map_err(err)?;
        ensure(listed.parts().len() == self.parts.len(), || {
            format!("ListParts shows {} parts", listed.parts().len())
        })?;
        let done = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key("dir/multi.bin")
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .map_err(err)?;
        ensure(
            done.e_tag()
                .is_some_and(|e| e.ends_with(&format!("-{}\"", self.parts.len()))),
            || format!("multipart ETag {:?}", done.e_tag()),
        )?;
        let got = self.get("dir/multi.bin").await?;
        ensure(got == self.parts.concat(), || {
            "downloaded bytes differ".to_owned()
        })
    }

    async fn checksums(&self) -> CheckResult {
        let put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key("dir/summed.bin")
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(self.small.clone()))
            .send()
            .await
            .map_err(err)?;
        let sent = put
            .checksum_sha256()
            .ok_or("no SHA-256 in the answer")?
            .to_owned();
        // The SDK validates the body against the checksum it gets back.
        let got = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key("dir/summed.bin")
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .map_err(err)?;
        ensure(got.checksum_sha256() == Some(sent.as_str()), || {
            format!("GET checksum {:?}, PUT {sent}", got.checksum_sha256())
        })?;
        let body = got.body.collect().await.map_err(err)?.to_vec();
        ensure(body == self.small, || "downloaded bytes differ".to_owned())
    }

    async fn list(&self) -> CheckResult {
        let keys = self.keys("dir/").await?;
        ensure(
            keys == ["dir/multi.bin", "dir/small.bin", "dir/summed.bin"],
            || format!("listed {keys:?}"),
        )?;
        let grouped = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .delimiter("/")
            .send()
            .await
            .map_err(err)?;
        let prefixes: Vec<&str> = grouped
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix())
            .collect();
        ensure(prefixes == ["dir/"], || format!("prefixes {prefixes:?}"))
    }

    async fn range(&self) -> CheckResult {
        let whole = self.parts.concat();
        let (from, to) = (5 * MIB - 3, 5 * MIB + 100);
        let got = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key("dir/multi.bin")
            .range(format!("bytes={from}-{to}"))
            .send()
            .await
            .map_err(err)?;
        let body = got.body.collect().await.map_err(err)?.to_vec();
        ensure(body == whole[from..=to], || {
            "ranged bytes differ".to_owned()
        })
    }

    async fn copy(&self) -> CheckResult {
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key("copies/small.bin")
            .copy_source(format!("{}/dir/small.bin", self.bucket))
            .send()
            .await
            .map_err(err)?;
        ensure(self.get("copies/small.bin").await? == self.small, || {
            "the copy's bytes differ".to_owned()
        })?;
        // A multipart copy of the multipart object, part by part.
        let upload_id = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key("copies/multi.bin")
            .send()
            .await
            .map_err(err)?
            .upload_id
            .ok_or("no upload id")?;
        let whole_len = self.parts.iter().map(Vec::len).sum::<usize>();
        let mut completed = Vec::new();
        for (idx, (first, last)) in [(0, 6 * MIB - 1), (6 * MIB, whole_len - 1)]
            .into_iter()
            .enumerate()
        {
            let out = self
                .client
                .upload_part_copy()
                .bucket(&self.bucket)
                .key("copies/multi.bin")
                .upload_id(&upload_id)
                .part_number(idx as i32 + 1)
                .copy_source(format!("{}/dir/multi.bin", self.bucket))
                .copy_source_range(format!("bytes={first}-{last}"))
                .send()
                .await
                .map_err(err)?;
            let etag = out
                .copy_part_result()
                .and_then(|r| r.e_tag())
                .ok_or("no part ETag")?
                .to_owned();
            completed.push(
                CompletedPart::builder()
                    .part_number(idx as i32 + 1)
                    .e_tag(etag)
                    .build(),
            );
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key("copies/multi.bin")
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .map_err(err)?;
        ensure(
            self.get("copies/multi.bin").await? == self.parts.concat(),
            || "the part-copied bytes differ".to_owned(),
        )
    }

    async fn delete(&self) -> CheckResult {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key("dir/summed.bin")
            .send()
            .await
            .map_err(err)?;
        let rest = self.keys("").await?;
        let objects: Vec<ObjectIdentifier> = rest
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build().map_err(err))
            .collect::<Result<_, _>>()?;
        let out = self
            .client
            .delete_objects()
            .bucket(&self.bucket)
            .delete(
                Delete::builder()
                    .set_objects(Some(objects))
                    .build()
                    .map_err(err)?,
            )
            .send()
            .await
            .map_err(err)?;
        ensure(out.errors().is_empty(), || {
            format!("errors {:?}", out.errors())
        })?;
        let left = self.keys("").await?;
        ensure(left.is_empty(), || format!("left {left:?}"))?;
        self.client
            .delete_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }
}

/// The MD5 of some bytes, as lower-case hex.
fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, endpoint, access, secret] = &args[..] else {
        eprintln!("usage: e2e_sdk ENDPOINT ACCESS_KEY SECRET_KEY");
        std::process::exit(2);
    };
    if !endpoint.starts_with("http://127.") {
        eprintln!("refusing to test a non-loopback endpoint: {endpoint}");
        std::process::exit(2);
    }
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(access, secret, None, None, "e2e"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    let suite = Suite {
        client: Client::from_conf(config),
        bucket: format!("e2e-rust-{}", std::process::id()),
        small: data(1_234_567, 1),
        parts: vec![data(5 * MIB, 2), data(5 * MIB, 3), data(MIB + 11, 4)],
    };
    println!("aws-sdk-s3 (Rust) against {endpoint}");
    let mut passed = 0;
    let mut failed = Vec::new();
    macro_rules! check {
        ($name:literal, $call:expr, [$($op:literal),*]) => {{
            let start = Instant::now();
            let outcome = match $call.await {
                Ok(()) => {
                    passed += 1;
                    println!("  ok   {} ({:.1}s)", $name, start.elapsed().as_secs_f64());
                    "ok"
                }
                Err(why) => {
                    failed.push($name);
                    println!("  FAIL {}: {why}", $name);
                    "fail"
                }
            };
            $(println!("op {} {outcome}", $op);)*
        }};
    }
    check!(
        "buckets",
        suite.buckets(),
        [
            "CreateBucket",
            "HeadBucket",
            "ListBuckets",
            "GetBucketLocation"
        ]
    );
    check!(
        "put_single",
        suite.put_single(),
        [
            "PutObject",
            "PutObject[aws-chunked]",
            "HeadObject",
            "GetObject"
        ]
    );
    check!(
        "put_multipart",
        suite.put_multipart(),
        [
            "CreateMultipartUpload",
            "UploadPart",
            "ListParts",
            "CompleteMultipartUpload",
            "GetObject"
        ]
    );
    check!(
        "checksums",
        suite.checksums(),
        ["PutObject[checksum]", "GetObject[checksum]"]
    );
    check!("list", suite.list(), ["ListObjectsV2"]);
    check!("range", suite.range(), ["GetObject[range]"]);
    check!("copy", suite.copy(), ["CopyObject", "UploadPartCopy"]);
    check!(
        "delete",
        suite.delete(),
        ["DeleteObject", "DeleteObjects", "DeleteBucket"]
    );
    println!("rust-sdk: {passed} passed, {} failed", failed.len());
    if !failed.is_empty() {
        println!("rust-sdk failed checks: {}", failed.join(" "));
        std::process::exit(1);
    }
}
