//! A small, independent SigV4 signer for raw test requests: header
//! signatures with any payload mode, signed aws-chunked bodies, unsigned
//! bodies with trailers, and presigned URLs.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

pub const REGION: &str = "us-east-1";

/// A SigV2 `Authorization` value: `AWS key:base64(HMAC-SHA1(string to sign))`
/// for a request whose `x-amz-*` headers are `amz` (lower-case, sorted) and
/// whose `Date` is `date` (empty when `x-amz-date` is among them).
pub fn sign_v2(
    access_key: &str,
    secret_key: &str,
    method: &str,
    content_type: &str,
    date: &str,
    amz: &[(&str, &str)],
    resource: &str,
) -> String {
    let amz_lines: String = amz.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let string_to_sign = format!("{method}\n\n{content_type}\n{date}\n{amz_lines}{resource}");
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(secret_key.as_bytes()).expect("any key length");
    mac.update(string_to_sign.as_bytes());
    let signature = base64_simd::STANDARD.encode_to_string(mac.finalize().into_bytes());
    format!("AWS {access_key}:{signature}")
}

pub fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time.
pub fn amz_date(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil-from-days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// URI-encodes like SigV4: unreserved characters stay, `/` stays when `path`.
pub fn uri_encode(value: &str, path: bool) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'.' | b'~')
            || (path && byte == b'/')
        {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

pub struct Signer {
    pub access_key: String,
    pub secret_key: String,
    pub unix: u64,
    /// The credential scope's region and service (`us-east-1`, `s3`).
    pub region: String,
    pub service: String,
}

impl Signer {
    pub fn new(access_key: &str, secret_key: &str) -> Signer {
        Signer {
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
            unix: now_unix(),
            region: REGION.to_owned(),
            service: "s3".to_owned(),
        }
    }

    pub fn amz_date(&self) -> String {
        amz_date(self.unix)
    }

    fn date(&self) -> String {
        self.amz_date()[..8].to_owned()
    }

    fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date(),
            self.region,
            self.service
        )
    }

    fn signing_key(&self) -> Vec<u8> {
        let k_date = hmac(
            format!("AWS4{}", self.secret_key).as_bytes(),
            self.date().as_bytes(),
        );
        let k_region = hmac(&k_date, self.region.as_bytes());
        let k_service = hmac(&k_region, self.service.as_bytes());
        hmac(&k_service, b"aws4_request")
    }

    fn sign_string(&self, string_to_sign: &str) -> String {
        hex(&hmac(&self.signing_key(), string_to_sign.as_bytes()))
    }

    /// Signs a request whose headers include `host` and `x-amz-date`;
    /// returns the `Authorization` value and the seed signature.
    pub fn authorization(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, String)],
        payload_hash: &str,
    ) -> (String, String) {
        let mut query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
            .collect();
        query.sort();
        let canonical_query = query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let mut headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        headers.sort();
        let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let signed_headers = headers
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let canonical_request = format!(
            "{method}\n{}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
            uri_encode(path, true)
        );
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{}\n{}",
            self.amz_date(),
            self.scope(),
            sha256_hex(canonical_request.as_bytes())
        );
        let signature = self.sign_string(&string_to_sign);
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={signed_headers}, Signature={signature}",
            self.access_key,
            self.scope()
        );
        (auth, signature)
    }

    /// Encodes `data` as a signed aws-chunked body with chunks of `chunk_size`.
    pub fn signed_chunks(&self, seed_signature: &str, data: &[u8], chunk_size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut previous = seed_signature.to_owned();
        let empty_hash = sha256_hex(b"");
        let mut chunks: Vec<&[u8]> = data.chunks(chunk_size).collect();
        chunks.push(&[]);
        for chunk in chunks {
            let string_to_sign = format!(
                "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{previous}\n{empty_hash}\n{}",
                self.amz_date(),
                self.scope(),
                sha256_hex(chunk)
            );
            let signature = self.sign_string(&string_to_sign);
            out.extend_from_slice(
                format!("{:x};chunk-signature={signature}\r\n", chunk.len()).as_bytes(),
            );
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
            previous = signature;
        }
        out
    }

    /// `access-key/date/region/s3/aws4_request`, as POST forms carry it.
    pub fn credential(&self) -> String {
        format!("{}/{}", self.access_key, self.scope())
    }

    /// The signature of a POST form's base64 policy.
    pub fn sign_policy(&self, policy_b64: &str) -> String {
        self.sign_string(policy_b64)
    }

    /// A presigned URL target (path and query) for `method` on `path`.
    pub fn presign(&self, host: &str, method: &str, path: &str, expires: u64) -> String {
        let credential = format!("{}/{}", self.access_key, self.scope());
        let date = self.amz_date();
        let expires = expires.to_string();
        let mut query = vec![
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_owned()),
            ("X-Amz-Credential", credential),
            ("X-Amz-Date", date),
            ("X-Amz-Expires", expires),
            ("X-Amz-SignedHeaders", "host".to_owned()),
        ];
        let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (_, signature) = self.authorization(
            method,
            path,
            &pairs,
            &[("host", host.to_owned())],
            "UNSIGNED-PAYLOAD",
        );
        query.push(("X-Amz-Signature", signature));
        let qs = query
            .iter()
            .map(|(k, v)| format!("{}={}", uri_encode(k, false), uri_encode(v, false)))
            .collect::<Vec<_>>()
            .join("&");
        format!("{}?{qs}", uri_encode(path, true))
    }
}

/// An unsigned aws-chunked body with one trailer (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`).
pub fn unsigned_chunks_with_trailer(
    data: &[u8],
    chunk_size: usize,
    trailer: (&str, &str),
) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in data.chunks(chunk_size) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("0\r\n{}:{}\r\n\r\n", trailer.0, trailer.1).as_bytes());
    out
}

/// CRC-32 (IEEE), base64 of its big-endian bytes, as `x-amz-checksum-crc32` carries it.
pub fn crc32_base64(data: &[u8]) -> String {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    base64_simd::STANDARD.encode_to_string((!crc).to_be_bytes())
}
