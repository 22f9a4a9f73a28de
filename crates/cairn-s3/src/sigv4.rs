//! AWS Signature Version 4 for requests that do not go through s3s: the
//! admin API checks the `Authorization` header with [`verify`], `cairn
//! admin` signs with [`sign`], and POST uploads derive the signing key with
//! [`signing_key`].

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::auth::Credentials;

/// The most a request's `x-amz-date` may differ from the server's clock.
pub const MAX_SKEW_SECS: i64 = 15 * 60;

pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The key for `date` (`YYYYMMDD`), `region` and `service`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    [date, region, service, "aws4_request"]
        .iter()
        .fold(format!("AWS4{secret}").into_bytes(), |key, part| {
            hmac_sha256(&key, part.as_bytes())
        })
}

/// URI-encodes as SigV4 wants: everything but `A-Za-z0-9-_.~` (and `/` in
/// paths).
fn uri_encode(text: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(value) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(value);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    out
}

/// The query string in canonical form: every name and value decoded,
/// encoded again the one SigV4 way, and sorted.
pub fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(name), false),
                uri_encode(&percent_decode(value), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A request as SigV4 sees it.
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as sent (percent-encoded).
    pub path: &'a str,
    /// The query string as sent, without `?`.
    pub query: &'a str,
    /// Every header the signature covers, with lower-case names.
    pub headers: Vec<(String, String)>,
    /// The hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`.
    pub payload_hash: &'a str,
}

impl Request<'_> {
    fn canonical(&self) -> (String, String) {
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.to_ascii_lowercase(),
                    v.split_whitespace().collect::<Vec<_>>().join(" "),
                )
            })
            .collect();
        headers.sort();
        let signed = headers
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.method,
            uri_encode(&percent_decode(self.path), true),
            canonical_query(self.query)
        );
        for (name, value) in &headers {
            text.push_str(&format!("{name}:{value}\n"));
        }
        text.push_str(&format!("\n{signed}\n{}", self.payload_hash));
        (text, signed)
    }

    /// The signature of this request at `amz_date` (`YYYYMMDDTHHMMSSZ`).
    fn signature(
        &self,
        secret: &str,
        amz_date: &str,
        region: &str,
        service: &str,
    ) -> (String, String) {
        let date = &amz_date[..amz_date.len().min(8)];
        let (canonical, signed) = self.canonical();
        let scope = format!("{date}/{region}/{service}/aws4_request");
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            sha256_hex(canonical.as_bytes())
        );
        let key = signing_key(secret, date, region, service);
        (hex(&hmac_sha256(&key, to_sign.as_bytes())), signed)
    }
}

/// The `Authorization` header for `request`, which must include `host`,
/// `x-amz-date` (equal to `amz_date`) and `x-amz-content-sha256`.
pub fn sign(
    request: &Request<'_>,
    credentials: &Credentials,
    amz_date: &str,
    region: &str,
    service: &str,
) -> String {
    let (signature, signed) = request.signature(&credentials.secret_key, amz_date, region, service);
    let date = &amz_date[..amz_date.len().min(8)];
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{date}/{region}/{service}/aws4_request, SignedHeaders={signed}, Signature={signature}",
        credentials.access_key
    )
}

/// Why a request's signature was refused, with the S3 error code for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> AuthError {
    AuthError {
        code,
        message: message.into(),
    }
}

/// Parses `YYYYMMDDTHHMMSSZ` into Unix seconds.
fn parse_amz_date(text: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(text, &format)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

/// `YYYYMMDDTHHMMSSZ` for Unix seconds.
pub fn format_amz_date(unix: i64) -> String {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// Checks a header-signed request (`Authorization: AWS4-HMAC-SHA256 ...`)
/// against `credentials`. `headers` are every header of the request by
/// lower-case name; `body_hash` is the hex SHA-256 of the body received.
pub fn verify(
    method: &str,
    path: &str,
    query: &str,
    headers: &http::HeaderMap,
    body_hash: &str,
    credentials: &Credentials,
    now_unix: i64,
) -> Result<(), AuthError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(auth) = header("authorization") else {
        return Err(refuse(
            "AccessDenied",
            "The admin API needs requests signed with the root credentials (AWS Signature Version 4)",
        ));
    };
    let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err(refuse(
            "AuthorizationHeaderMalformed",
            "Only AWS4-HMAC-SHA256 signatures are accepted",
        ));
    };
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for field in rest.split(',') {
        match field.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(refuse(
            "AuthorizationHeaderMalformed",
            "The authorization header needs Credential, SignedHeaders and Signature",
        ));
    };
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, "aws4_request"] = parts[..] else {
        return Err(refuse(
            "AuthorizationHeaderMalformed",
            format!("The credential {credential:?} is malformed"),
        ));
    };
    if access_key != credentials.access_key {
        return Err(refuse(
            "InvalidAccessKeyId",
            "The Access Key Id you provided does not exist in our records",
        ));
    }
    let Some(amz_date) = header("x-amz-date") else {
        return Err(refuse(
            "AccessDenied",
            "The request needs an x-amz-date header",
        ));
    };
    let Some(when) = parse_amz_date(amz_date) else {
        return Err(refuse(
            "AccessDenied",
            format!("x-amz-date {amz_date:?} is not YYYYMMDDTHHMMSSZ"),
        ));
    };
    if !amz_date.starts_with(date) {
        return Err(refuse(
            "SignatureDoesNotMatch",
            "The credential's date is not the date of x-amz-date",
        ));
    }
    if (now_unix - when).abs() > MAX_SKEW_SECS {
        return Err(refuse(
            "RequestTimeTooSkewed",
            format!(
                "The difference between the request time ({amz_date}) and the server's time ({}) is too large",
                format_amz_date(now_unix)
            ),
        ));
    }
    let payload_hash = header("x-amz-content-sha256").unwrap_or(body_hash);
    if payload_hash != "UNSIGNED-PAYLOAD" && payload_hash != body_hash {
        return Err(refuse(
            "XAmzContentSHA256Mismatch",
            "The provided x-amz-content-sha256 does not match what was computed",
        ));
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    if !names.contains(&"host") {
        return Err(refuse(
            "AccessDenied",
            "The signature must cover the host header",
        ));
    }
    let mut signed = Vec::with_capacity(names.len());
    for name in names {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .collect();
        if values.is_empty() {
            return Err(refuse(
                "AccessDenied",
                format!("The signed header {name:?} is missing"),
            ));
        }
        signed.push((name.to_owned(), values.join(",")));
    }
    let request = Request {
        method,
        path,
        query,
        headers: signed,
        payload_hash,
    };
    let (expected, _) = request.signature(&credentials.secret_key, amz_date, region, service);
    if !constant_time_eq(
        expected.as_bytes(),
        signature.to_ascii_lowercase().as_bytes(),
    ) {
        return Err(refuse(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your secret key and signing method.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            access_key: "AKIDEXAMPLE".to_owned(),
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned(),
        }
    }

    /// The `get-vanilla-query-order-key-case` case of AWS's SigV4 test suite.
    #[test]
    fn matches_the_aws_test_suite() {
        let request = Request {
            method: "GET",
            path: "/",
            query: "Param2=value2&Param1=value1",
            headers: vec![
                ("host".to_owned(), "example.amazonaws.com".to_owned()),
                ("x-amz-date".to_owned(), "20150830T123600Z".to_owned()),
            ],
            payload_hash: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        };
        assert_eq!(
            sign(
                &request,
                &creds(),
                "20150830T123600Z",
                "us-east-1",
                "service"
            ),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
    }

    #[test]
    fn what_sign_makes_verify_takes_and_changes_are_refused() {
        let now = 1_700_000_000;
        let amz_date = format_amz_date(now);
        let body_hash = sha256_hex(b"");
        let headers = vec![
            ("host".to_owned(), "127.0.0.1:9000".to_owned()),
            ("x-amz-date".to_owned(), amz_date.clone()),
            ("x-amz-content-sha256".to_owned(), body_hash.clone()),
        ];
        let request = Request {
            method: "POST",
            path: "/cairn/admin/v1/heal/start",
            query: "bucket=b&prefix=a%20b%2F",
            headers: headers.clone(),
            payload_hash: &body_hash,
        };
        let auth = sign(&request, &creds(), &amz_date, "us-east-1", "s3");
        let mut map = http::HeaderMap::new();
        for (n, v) in &headers {
            map.insert(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map.insert("authorization", auth.parse().unwrap());
        let check = |method: &str, query: &str, map: &http::HeaderMap, now: i64| {
            verify(
                method,
                "/cairn/admin/v1/heal/start",
                query,
                map,
                &body_hash,
                &creds(),
                now,
            )
            .map_err(|e| e.code)
        };
        assert_eq!(check("POST", "bucket=b&prefix=a%20b%2F", &map, now), Ok(()));
        // The same query, sorted and encoded differently.
        assert_eq!(check("POST", "prefix=a+b/&bucket=b", &map, now), Ok(()));
        assert_eq!(
            check("POST", "bucket=c&prefix=a%20b%2F", &map, now),
            Err("SignatureDoesNotMatch")
        );
        assert_eq!(
            check("GET", "bucket=b&prefix=a%20b%2F", &map, now),
            Err("SignatureDoesNotMatch")
        );
        assert_eq!(
            check("POST", "bucket=b&prefix=a%20b%2F", &map, now + 3600),
            Err("RequestTimeTooSkewed")
        );
        let wrong = Credentials {
            secret_key: "another".to_owned(),
            ..creds()
        };
        assert_eq!(
            verify(
                "POST",
                "/cairn/admin/v1/heal/start",
                "bucket=b&prefix=a%20b%2F",
                &map,
                &body_hash,
                &wrong,
                now
            )
            .map_err(|e| e.code),
            Err("SignatureDoesNotMatch")
        );
        let other = Credentials {
            access_key: "someone".to_owned(),
            ..creds()
        };
        assert_eq!(
            verify(
                "POST",
                "/cairn/admin/v1/heal/start",
                "",
                &map,
                &body_hash,
                &other,
                now
            )
            .map_err(|e| e.code),
            Err("InvalidAccessKeyId")
        );
        assert_eq!(
            verify("POST", "/", "", &map, &sha256_hex(b"x"), &creds(), now).map_err(|e| e.code),
            Err("XAmzContentSHA256Mismatch")
        );
        map.remove("authorization");
        assert_eq!(check("POST", "", &map, now), Err("AccessDenied"));
    }
}
