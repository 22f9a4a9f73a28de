//! Multipart uploads: Create, UploadPart, Complete, Abort, ListParts,
//! ListMultipartUploads. UploadPartCopy reads its part from another object
//! as CopyObject does, so it lives with it in `copy.rs`.

use std::collections::BTreeMap;

use cairn_object::{CompleteOptions, CompletePart, ListUploadsOptions, PartInfo, PutOptions};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use uuid::Uuid;

use crate::CairnS3;
use crate::checksum::{self, ALGORITHM_KEY, ChecksumBody, ChecksumPlan, TYPE_KEY};
use crate::error::s3_err;
use crate::meta::{
    COMPLETED_UPLOAD, new_object_headers, preconditions, refuse_unsupported_object_settings,
    timestamp,
};
use crate::ownership::owner;
use crate::upload::{format_upload_id, parse_upload_id, part_number};

/// The most parts or uploads one page lists, as in S3.
const MAX_LISTED: i32 = 1000;

fn part_output_checksums(algo: Option<&str>, value: Option<String>) -> Checksum {
    let mut out = Checksum::default();
    match algo {
        Some("crc32") => out.checksum_crc32 = value,
        Some("crc32c") => out.checksum_crc32c = value,
        Some("crc64nvme") => out.checksum_crc64nvme = value,
        Some("sha1") => out.checksum_sha1 = value,
        Some("sha256") => out.checksum_sha256 = value,
        _ => {}
    }
    out
}

/// The checksum a completion request gives for part `p`, for `algo`.
fn completed_part_checksum(p: &CompletedPart, algo: &str) -> Option<String> {
    match algo {
        "crc32" => p.checksum_crc32.clone(),
        "crc32c" => p.checksum_crc32c.clone(),
        "crc64nvme" => p.checksum_crc64nvme.clone(),
        "sha1" => p.checksum_sha1.clone(),
        "sha256" => p.checksum_sha256.clone(),
        _ => None,
    }
}

impl CairnS3 {
    pub(crate) async fn do_create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        refuse_unsupported_object_settings!(input);
        let mut meta = new_object_headers!(input, tagging: input.tagging.as_deref()).into_meta()?;
        let algorithm = match (&input.checksum_algorithm, &input.checksum_type) {
            (Some(algo), kind) => Some((checksum::algorithm_name(algo.as_str())?, kind.as_ref())),
            // A full-object type without an algorithm means CRC64NVME, S3's default.
            (None, Some(kind)) => Some(("crc64nvme", Some(kind))),
            (None, None) => None,
        };
        if let Some((algo, kind)) = algorithm {
            let kind = checksum::upload_checksum_type(algo, kind)?;
            meta.insert(ALGORITHM_KEY.to_owned(), algo.to_owned());
            meta.insert(TYPE_KEY.to_owned(), kind.to_owned());
        }
        let upload = self
            .layer
            .create_multipart_upload(&input.bucket, &input.key, meta)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(format_upload_id(upload.upload_id)),
            checksum_algorithm: upload
                .meta
                .get(ALGORITHM_KEY)
                .map(|a| ChecksumAlgorithm::from(a.to_ascii_uppercase())),
            checksum_type: upload
                .meta
                .get(TYPE_KEY)
                .map(|t| ChecksumType::from(t.clone())),
            ..Default::default()
        }))
    }

    pub(crate) async fn do_upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let S3Request {
            input,
            headers,
            trailing_headers,
            ..
        } = req;
        let upload_id = parse_upload_id(&input.upload_id)?;
        let number = part_number(input.part_number)?;
        if input.sse_customer_algorithm.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "Server-side encryption is not supported yet"
            ));
        }
        let size = match input.content_length {
            Some(len) if len < 0 => {
                return Err(s3_error!(InvalidArgument, "negative Content-Length"));
            }
            Some(len) => Some(len as u64),
            None => None,
        };
        let content_md5 = input
            .content_md5
            .as_deref()
            .map(|v| {
                base64_simd::STANDARD
                    .decode_to_vec(v)
                    .ok()
                    .and_then(|b| <[u8; 16]>::try_from(b).ok())
                    .ok_or_else(|| {
                        s3_error!(InvalidDigest, "The Content-MD5 you specified is not valid")
                    })
            })
            .transpose()?;
        let (upload, _, _) = self
            .layer
            .list_parts(&input.bucket, &input.key, upload_id, u32::MAX, 0)
            .await
            .map_err(s3_err)?;
        let given = Checksum {
            checksum_crc32: input.checksum_crc32.clone(),
            checksum_crc32c: input.checksum_crc32c.clone(),
            checksum_crc64nvme: input.checksum_crc64nvme.clone(),
            checksum_sha1: input.checksum_sha1.clone(),
            checksum_sha256: input.checksum_sha256.clone(),
            ..Default::default()
        };
        let mut plan =
            ChecksumPlan::from_request(&headers, &given, input.checksum_algorithm.as_ref())?;
        let upload_algo = match upload.meta.get(ALGORITHM_KEY) {
            Some(algo) => Some(checksum::algorithm_name(algo)?),
            None => None,
        };
        if let Some(algo) = upload_algo {
            plan.require(algo)?;
        }
        let body = input.body.unwrap_or_else(|| {
            StreamingBlob::wrap(futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>())
        });
        let (body, verified) = ChecksumBody::wrap(body, plan, trailing_headers);
        let opts = PutOptions {
            size,
            content_md5,
            meta: BTreeMap::new(),
            finalizer: Some(Box::new(move || {
                Ok(verified.lock().expect("checksum slot").clone())
            })),
            ..Default::default()
        };
        let part = self
            .layer
            .upload_part(&input.bucket, &input.key, upload_id, number, body, opts)
            .await
            .map_err(s3_err)?;
        let checksums = part_output_checksums(upload_algo, part.checksum.clone());
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(part.etag)),
            checksum_crc32: checksums.checksum_crc32,
            checksum_crc32c: checksums.checksum_crc32c,
            checksum_crc64nvme: checksums.checksum_crc64nvme,
            checksum_sha1: checksums.checksum_sha1,
            checksum_sha256: checksums.checksum_sha256,
            ..Default::default()
        }))
    }

    pub(crate) async fn do_complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let upload_id = parse_upload_id(&input.upload_id)?;
        let requested = input
            .multipart_upload
            .as_ref()
            .and_then(|m| m.parts.as_ref())
            .cloned()
            .unwrap_or_default();
        let mut parts = Vec::with_capacity(requested.len());
        for part in &requested {
            let number = part
                .part_number
                .ok_or_else(|| s3_error!(MalformedXML, "Every part needs a PartNumber"))?;
            let etag = part
                .e_tag
                .as_ref()
                .ok_or_else(|| s3_error!(MalformedXML, "Every part needs an ETag"))?;
            parts.push(CompletePart {
                number: part_number(number)?,
                etag: etag.value().to_owned(),
                checksum: None,
            });
        }
        let whole_object_given = Checksum {
            checksum_crc32: input.checksum_crc32.clone(),
            checksum_crc32c: input.checksum_crc32c.clone(),
            checksum_crc64nvme: input.checksum_crc64nvme.clone(),
            checksum_sha1: input.checksum_sha1.clone(),
            checksum_sha256: input.checksum_sha256.clone(),
            ..Default::default()
        };
        let requested_type = input.checksum_type.clone();
        let declared_size = input.mpu_object_size;
        // Checks the parts' checksums against the request and computes the
        // object's, before anything is committed.
        let upload_mark = format_upload_id(upload_id);
        let finalizer = Box::new(
            move |infos: &[PartInfo],
                  meta: &BTreeMap<String, String>|
                  -> Result<BTreeMap<String, String>, cairn_object::BodyError> {
                let mut extra = BTreeMap::new();
                extra.insert(COMPLETED_UPLOAD.to_owned(), upload_mark);
                if let Some(size) = declared_size
                    && u64::try_from(size).ok() != Some(infos.iter().map(|p| p.size).sum())
                {
                    return Err(Box::new(s3_error!(
                        InvalidRequest,
                        "The provided x-amz-mp-object-size does not match the size of the parts"
                    )));
                }
                let Some(algo) = meta.get(ALGORITHM_KEY) else {
                    return Ok(extra);
                };
                let kind = meta
                    .get(TYPE_KEY)
                    .cloned()
                    .unwrap_or_else(|| ChecksumType::COMPOSITE.to_owned());
                if let Some(requested) = &requested_type
                    && requested.as_str() != kind
                {
                    return Err(Box::new(s3_error!(
                        InvalidRequest,
                        "The upload was created with the {kind} checksum type"
                    )));
                }
                for (info, part) in infos.iter().zip(&requested) {
                    if let Some(given) = completed_part_checksum(part, algo)
                        && info.checksum.as_deref() != Some(given.as_str())
                    {
                        return Err(Box::new(s3_error!(
                            InvalidPart,
                            "The checksum of part {} does not match the one it was uploaded with",
                            info.number
                        )));
                    }
                }
                let pieces: Vec<(Option<String>, u64)> =
                    infos.iter().map(|p| (p.checksum.clone(), p.size)).collect();
                let Some(value) = checksum::multipart_checksum(algo, &kind, &pieces) else {
                    return Ok(extra);
                };
                let name = format!("x-amz-checksum-{algo}");
                let given = match algo.as_str() {
                    "crc32" => whole_object_given.checksum_crc32.clone(),
                    "crc32c" => whole_object_given.checksum_crc32c.clone(),
                    "crc64nvme" => whole_object_given.checksum_crc64nvme.clone(),
                    "sha1" => whole_object_given.checksum_sha1.clone(),
                    _ => whole_object_given.checksum_sha256.clone(),
                };
                if let Some(given) = given
                    && given.split('-').next() != value.split('-').next()
                {
                    return Err(Box::new(s3_error!(
                        BadDigest,
                        "The {} you specified for the object did not match the calculated checksum",
                        algo.to_ascii_uppercase()
                    )));
                }
                extra.insert(name, value);
                extra.insert(TYPE_KEY.to_owned(), kind);
                Ok(extra)
            },
        );
        let opts = CompleteOptions {
            preconditions: preconditions(
                input.if_match.as_ref(),
                input.if_none_match.as_ref(),
                None,
                None,
            ),
            finalizer: Some(finalizer),
        };
        let completed = self
            .layer
            .complete_multipart_upload(&input.bucket, &input.key, upload_id, &parts, opts)
            .await;
        let info = match completed {
            Ok(info) => info,
            // Sent again (a client retrying after a timeout): S3 answers as
            // the first time while the object the upload made is still there.
            Err(cairn_object::Error::NoSuchUpload) => {
                match self.layer.head_object(&input.bucket, &input.key).await {
                    Ok(info)
                        if info.meta.get(COMPLETED_UPLOAD).map(String::as_str)
                            == Some(format_upload_id(upload_id).as_str()) =>
                    {
                        info
                    }
                    _ => return Err(s3_err(cairn_object::Error::NoSuchUpload)),
                }
            }
            Err(err) => return Err(s3_err(err)),
        };
        let get = |name: &str| info.meta.get(name).cloned();
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            e_tag: Some(ETag::Strong(info.etag.clone())),
            checksum_crc32: get("x-amz-checksum-crc32"),
            checksum_crc32c: get("x-amz-checksum-crc32c"),
            checksum_crc64nvme: get("x-amz-checksum-crc64nvme"),
            checksum_sha1: get("x-amz-checksum-sha1"),
            checksum_sha256: get("x-amz-checksum-sha256"),
            checksum_type: get(TYPE_KEY).map(ChecksumType::from),
            ..Default::default()
        }))
    }

    pub(crate) async fn do_abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        let upload_id = parse_upload_id(&input.upload_id)?;
        self.layer
            .abort_multipart_upload(&input.bucket, &input.key, upload_id)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    pub(crate) async fn do_list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let upload_id = parse_upload_id(&input.upload_id)?;
        let max_parts = match input.max_parts {
            None => MAX_LISTED,
            Some(n) if n < 0 => {
                return Err(s3_error!(
                    InvalidArgument,
                    "max-parts must be a non-negative integer"
                ));
            }
            Some(n) => n.min(MAX_LISTED),
        };
        let marker = match input.part_number_marker {
            None => 0,
            Some(n) if n < 0 => {
                return Err(s3_error!(
                    InvalidArgument,
                    "part-number-marker must be a non-negative integer"
                ));
            }
            Some(n) => n as u32,
        };
        let (upload, parts, truncated) = self
            .layer
            .list_parts(
                &input.bucket,
                &input.key,
                upload_id,
                marker,
                max_parts as usize,
            )
            .await
            .map_err(s3_err)?;
        let algo = upload.meta.get(ALGORITHM_KEY).cloned();
        let listed: Vec<Part> = parts
            .iter()
            .map(|p| {
                let sums = part_output_checksums(algo.as_deref(), p.checksum.clone());
                Part {
                    part_number: Some(p.number as i32),
                    e_tag: Some(ETag::Strong(p.etag.clone())),
                    size: Some(p.size as i64),
                    last_modified: Some(timestamp(p.mod_time_ns)),
                    checksum_crc32: sums.checksum_crc32,
                    checksum_crc32c: sums.checksum_crc32c,
                    checksum_crc64nvme: sums.checksum_crc64nvme,
                    checksum_sha1: sums.checksum_sha1,
                    checksum_sha256: sums.checksum_sha256,
                }
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(format_upload_id(upload_id)),
            part_number_marker: Some(marker as i32),
            next_part_number_marker: listed.last().and_then(|p| p.part_number),
            max_parts: Some(max_parts),
            is_truncated: Some(truncated),
            parts: Some(listed),
            owner: Some(owner()),
            initiator: Some(Initiator {
                display_name: owner().display_name,
                id: owner().id,
            }),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            checksum_algorithm: algo.map(|a| ChecksumAlgorithm::from(a.to_ascii_uppercase())),
            checksum_type: upload
                .meta
                .get(TYPE_KEY)
                .map(|t| ChecksumType::from(t.clone())),
            ..Default::default()
        }))
    }

    pub(crate) async fn do_list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let url = crate::list::encoding(input.encoding_type.as_ref())?;
        let max_uploads = match input.max_uploads {
            None => MAX_LISTED,
            Some(n) if n < 0 => {
                return Err(s3_error!(
                    InvalidArgument,
                    "max-uploads must be a non-negative integer"
                ));
            }
            Some(n) => n.min(MAX_LISTED),
        };
        let key_marker = input.key_marker.clone().filter(|m| !m.is_empty());
        // An upload-id-marker counts only together with a key-marker, as in S3.
        let upload_id_marker = match (
            &key_marker,
            input.upload_id_marker.as_deref().filter(|m| !m.is_empty()),
        ) {
            (Some(_), Some(id)) => Some(
                Uuid::try_parse(id)
                    .map_err(|_| s3_error!(InvalidArgument, "Invalid uploadId marker"))?,
            ),
            _ => None,
        };
        let opts = ListUploadsOptions {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
            key_marker,
            upload_id_marker,
            max_uploads: max_uploads as usize,
        };
        let result = self
            .layer
            .list_multipart_uploads(&input.bucket, &opts)
            .await
            .map_err(s3_err)?;
        let enc = |s: &str| {
            if url {
                crate::list::url_encode(s)
            } else {
                s.to_owned()
            }
        };
        let uploads = result
            .uploads
            .iter()
            .map(|u| MultipartUpload {
                key: Some(enc(&u.key)),
                upload_id: Some(format_upload_id(u.upload_id)),
                initiated: Some(timestamp(u.initiated_ns)),
                owner: Some(owner()),
                initiator: Some(Initiator {
                    display_name: owner().display_name,
                    id: owner().id,
                }),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                checksum_algorithm: u
                    .meta
                    .get(ALGORITHM_KEY)
                    .map(|a| ChecksumAlgorithm::from(a.to_ascii_uppercase())),
                checksum_type: u.meta.get(TYPE_KEY).map(|t| ChecksumType::from(t.clone())),
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix.as_deref().map(enc),
            delimiter: input.delimiter.as_deref().map(enc),
            key_marker: input.key_marker.as_deref().map(enc),
            upload_id_marker: input.upload_id_marker,
            next_key_marker: result.next_key_marker.as_deref().map(enc),
            next_upload_id_marker: result.next_upload_id_marker.map(format_upload_id),
            max_uploads: Some(max_uploads),
            is_truncated: Some(result.truncated),
            uploads: Some(uploads),
            common_prefixes: Some(
                result
                    .prefixes
                    .iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc(p)),
                    })
                    .collect(),
            ),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }
}
