//! Who may call the S3 API: the root credentials for now (IAM comes later),
//! and the checks of authorization data that s3s does not make:
//!
//! * the shape of a SigV4 `Authorization` header or presigned query;
//! * the credential scope: this server's region and the `s3` service;
//! * what the signature covers: `host` and every `x-amz-*` header sent
//!   (S3's rule; an unsigned `x-amz-copy-source` or `x-amz-meta-*` would
//!   otherwise ride on somebody else's presigned URL);
//! * the time of a SigV2 request, held to SigV4's 15 minutes so a captured
//!   request cannot be replayed later.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3ErrorCode, S3Result, s3_error};

use crate::error::Refusal;

/// An access key and its secret.
#[derive(Clone)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// The longest a presigned URL may stay valid: 7 days, as in S3.
const MAX_PRESIGNED_EXPIRY_SECS: u64 = 7 * 24 * 3600;

/// How far a request's time may be from the server's: 15 minutes, as in S3
/// (s3s applies the same to SigV4 headers).
pub(crate) const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

pub(crate) struct RootAuth {
    root: Credentials,
}

impl RootAuth {
    pub(crate) fn new(root: Credentials) -> RootAuth {
        RootAuth { root }
    }
}

#[async_trait::async_trait]
impl S3Auth for RootAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if access_key == self.root.access_key {
            return Ok(SecretKey::from(self.root.secret_key.clone()));
        }
        Err(s3_error!(
            InvalidAccessKeyId,
            "The Access Key Id you provided does not exist in our records"
        ))
    }
}

/// Checks a request's authorization data before s3s verifies the signature.
pub(crate) struct Gate {
    /// The region credential scopes must name.
    pub(crate) region: String,
}

/// Which signature a request carries, as far as the gate is concerned.
enum Signed<'a> {
    V4Header(&'a str),
    V4Query,
    V2Header,
    None,
}

impl Gate {
    /// Refuses malformed or insufficient authorization data with the error
    /// S3 gives; `None` lets the request on to s3s.
    pub(crate) fn check(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        now: SystemTime,
    ) -> Option<Refusal> {
        self.check_inner(headers, query, now).err()
    }

    fn check_inner(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        now: SystemTime,
    ) -> Result<(), Refusal> {
        // Only a presigned URL's `X-Amz-*` parameters matter here.
        let params = query
            .filter(|q| q.contains("X-Amz-"))
            .map(query_pairs)
            .unwrap_or_default();
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.as_str() == name)
                .map(|(_, v)| v.as_str())
        };
        match signed(
            headers,
            param("X-Amz-Signature").is_some() || param("X-Amz-Algorithm").is_some(),
        )? {
            Signed::V4Header(rest) => {
                let auth = parse_v4_header(rest)?;
                self.check_scope(auth.credential, false)?;
                if auth.signature.len() != 64
                    || !auth.signature.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    return Err(Refusal::new(
                        S3ErrorCode::SignatureDoesNotMatch,
                        "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
                    )
                    .status(StatusCode::FORBIDDEN));
                }
                check_covered(headers, auth.signed_headers)
            }
            Signed::V4Query => {
                let credential = param("X-Amz-Credential").ok_or_else(|| {
                    query_error("Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
                })?;
                let signed = param("X-Amz-SignedHeaders").unwrap_or_default();
                if let Some(expires) = param("X-Amz-Expires") {
                    match expires.parse::<u64>() {
                        Ok(secs) if secs <= MAX_PRESIGNED_EXPIRY_SECS => {}
                        Ok(_) => {
                            return Err(query_error(
                                "X-Amz-Expires must be less than a week (in seconds) that is 604800",
                            ));
                        }
                        Err(_) => return Err(query_error("X-Amz-Expires should be a number")),
                    }
                }
                self.check_scope(credential, true)?;
                check_covered(headers, signed)
            }
            Signed::V2Header => check_v2_time(headers, now),
            Signed::None => Ok(()),
        }
    }

    /// The credential scope names this server's region and the `s3` service.
    fn check_scope(&self, credential: &str, presigned: bool) -> Result<(), Refusal> {
        let fields: Vec<&str> = credential.split('/').collect();
        let malformed = |detail: &str| {
            if presigned {
                query_error(&format!(
                    "Error parsing the X-Amz-Credential parameter; {detail}"
                ))
            } else {
                header_malformed(detail)
            }
        };
        let [access_key, date, region, service, terminator] = fields[..] else {
            return Err(malformed(
                "the Credential is not ACCESSKEY/DATE/REGION/SERVICE/aws4_request",
            ));
        };
        if access_key.is_empty() || terminator != "aws4_request" {
            return Err(malformed(
                "the Credential is not ACCESSKEY/DATE/REGION/SERVICE/aws4_request",
            ));
        }
        if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed("the Credential date is not YYYYMMDD"));
        }
        if service != "s3" {
            return Err(malformed(&format!(
                "incorrect service \"{service}\". This endpoint belongs to \"s3\"."
            )));
        }
        if !region_matches(region, &self.region) {
            return Err(malformed(&format!(
                "the region '{region}' is wrong; expecting '{}'",
                self.region
            ))
            .with("Region", &self.region));
        }
        Ok(())
    }
}

/// Whether a credential scope's `region` is this server's: older clients
/// say `US` for us-east-1, as MinIO accepts.
pub(crate) fn region_matches(region: &str, ours: &str) -> bool {
    region == ours || (region == "US" && ours == "us-east-1")
}

/// The signature a request says it carries.
fn signed(headers: &HeaderMap, v4_query: bool) -> Result<Signed<'_>, Refusal> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Ok(if v4_query {
            Signed::V4Query
        } else {
            Signed::None
        });
    };
    let Ok(value) = value.to_str() else {
        return Err(header_malformed("it is not ASCII"));
    };
    if v4_query {
        return Err(Refusal::new(
            S3ErrorCode::InvalidArgument,
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
        ));
    }
    if let Some(rest) = value.strip_prefix("AWS4-HMAC-SHA256 ") {
        return Ok(Signed::V4Header(rest));
    }
    if value.starts_with("AWS ") {
        return Ok(Signed::V2Header);
    }
    Err(
        Refusal::new(S3ErrorCode::AccessDenied, "Unsupported Authorization Type")
            .status(StatusCode::FORBIDDEN),
    )
}

/// A SigV4 `Authorization` header's fields.
struct V4Header<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

/// Splits `Credential=AK/DATE/REGION/s3/aws4_request, SignedHeaders=a;b,
/// Signature=<64 hex>` into its fields.
fn parse_v4_header(rest: &str) -> Result<V4Header<'_>, Refusal> {
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',').map(str::trim) {
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        } else {
            return Err(header_malformed("unknown field"));
        }
    }
    let credential = credential.ok_or_else(|| header_malformed("missing Credential"))?;
    let signed_headers = signed_headers
        .filter(|s| !s.is_empty())
        .ok_or_else(|| header_malformed("missing SignedHeaders"))?;
    let signature = signature.ok_or_else(|| header_malformed("missing Signature"))?;
    Ok(V4Header {
        credential,
        signed_headers,
        signature,
    })
}

/// Every header whose meaning the signature must cover is in `signed`
/// (`;`-separated lower-case names): `host` and every `x-amz-*` header.
fn check_covered(headers: &HeaderMap, signed: &str) -> Result<(), Refusal> {
    let signed: Vec<&str> = signed.split(';').map(str::trim).collect();
    let mut missing: Vec<&str> = Vec::new();
    if !signed.contains(&"host") {
        missing.push("host");
    }
    for name in headers.keys() {
        let name = name.as_str(); // http lower-cases header names
        if name.starts_with("x-amz-") && !signed.contains(&name) && !missing.contains(&name) {
            missing.push(name);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Refusal::new(
        S3ErrorCode::AccessDenied,
        "There were headers present in the request which were not signed",
    )
    .status(StatusCode::FORBIDDEN)
    .with("HeadersNotSigned", &missing.join(", ")))
}

/// A SigV2 request's `x-amz-date` or `Date` is within [`MAX_SKEW`] of now.
fn check_v2_time(headers: &HeaderMap, now: SystemTime) -> Result<(), Refusal> {
    let value = headers
        .get("x-amz-date")
        .or_else(|| headers.get(http::header::DATE))
        .and_then(|v| v.to_str().ok());
    let Some(time) = value.and_then(|v| httpdate::parse_http_date(v).ok()) else {
        return Err(Refusal::new(
            S3ErrorCode::AccessDenied,
            "AWS authentication requires a valid Date or x-amz-date header",
        )
        .status(StatusCode::FORBIDDEN));
    };
    let skew = now
        .duration_since(time)
        .or_else(|_| time.duration_since(now))
        .unwrap_or_default();
    if skew <= MAX_SKEW {
        return Ok(());
    }
    Err(Refusal::new(
        S3ErrorCode::RequestTimeTooSkewed,
        "The difference between the request time and the current time is too large.",
    )
    .status(StatusCode::FORBIDDEN)
    .with("RequestTime", value.unwrap_or_default())
    .with("ServerTime", &httpdate::fmt_http_date(now))
    .with(
        "MaxAllowedSkewMilliseconds",
        &MAX_SKEW.as_millis().to_string(),
    ))
}

fn header_malformed(detail: &str) -> Refusal {
    Refusal::new(
        S3ErrorCode::AuthorizationHeaderMalformed,
        format!("The authorization header is malformed; {detail}"),
    )
}

fn query_error(message: &str) -> Refusal {
    Refusal::new(S3ErrorCode::AuthorizationQueryParametersError, message)
}

/// The decoded `name=value` pairs of a query string.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str(query).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD_SCOPE: &str = "AK/20260101/us-east-1/s3/aws4_request";

    fn gate() -> Gate {
        Gate {
            region: "us-east-1".into(),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn v4(credential: &str, signed: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={}",
            "a".repeat(64)
        )
    }

    fn check(pairs: &[(&'static str, &str)], query: Option<&str>) -> Option<Refusal> {
        gate().check(&headers(pairs), query, SystemTime::now())
    }

    fn code(refusal: Option<Refusal>) -> Option<S3ErrorCode> {
        refusal.map(|r| r.code().clone())
    }

    #[test]
    fn authorization_header_shapes() {
        let good = v4(GOOD_SCOPE, "host;x-amz-date");
        assert!(check(&[("authorization", &good)], None).is_none());
        assert_eq!(
            code(check(&[("authorization", "Bearer token")], None)),
            Some(S3ErrorCode::AccessDenied)
        );
        assert_eq!(
            code(check(
                &[(
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=garbage, SignedHeaders=host, Signature=00"
                )],
                None
            )),
            Some(S3ErrorCode::AuthorizationHeaderMalformed)
        );
        let not_hex = v4(GOOD_SCOPE, "host").replace(&"a".repeat(64), &"z".repeat(64));
        assert_eq!(
            code(check(&[("authorization", &not_hex)], None)),
            Some(S3ErrorCode::SignatureDoesNotMatch)
        );
        let garbage = v4("garbage", "host");
        assert_eq!(
            code(check(&[("authorization", &garbage)], None)),
            Some(S3ErrorCode::AuthorizationHeaderMalformed)
        );
        let short_date = v4("AK/2026/us-east-1/s3/aws4_request", "host");
        assert_eq!(
            code(check(&[("authorization", &short_date)], None)),
            Some(S3ErrorCode::AuthorizationHeaderMalformed)
        );
    }

    #[test]
    fn scope_must_name_this_region_and_s3() {
        let other = v4("AK/20260101/eu-west-1/s3/aws4_request", "host");
        let refusal = check(&[("authorization", &other)], None).unwrap();
        assert_eq!(refusal.code(), &S3ErrorCode::AuthorizationHeaderMalformed);
        assert_eq!(refusal.detail("Region"), Some("us-east-1"));
        let us = v4("AK/20260101/US/s3/aws4_request", "host");
        assert!(check(&[("authorization", &us)], None).is_none());
        let iam = v4("AK/20260101/us-east-1/iam/aws4_request", "host");
        assert_eq!(
            code(check(&[("authorization", &iam)], None)),
            Some(S3ErrorCode::AuthorizationHeaderMalformed)
        );
        let query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20260101%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-SignedHeaders=host&X-Amz-Signature=00";
        let refusal = check(&[], Some(query)).unwrap();
        assert_eq!(
            refusal.code(),
            &S3ErrorCode::AuthorizationQueryParametersError
        );
        assert_eq!(refusal.detail("Region"), Some("us-east-1"));
    }

    #[test]
    fn host_and_every_amz_header_must_be_signed() {
        let no_host = v4(GOOD_SCOPE, "x-amz-date");
        let refusal = check(&[("authorization", &no_host)], None).unwrap();
        assert_eq!(refusal.code(), &S3ErrorCode::AccessDenied);
        assert_eq!(refusal.detail("HeadersNotSigned"), Some("host"));
        let auth = v4(GOOD_SCOPE, "host;x-amz-content-sha256;x-amz-date");
        let refusal = check(
            &[
                ("authorization", &auth),
                ("x-amz-date", "20260101T000000Z"),
                ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
                ("x-amz-copy-source", "/other/secret"),
                ("X-Amz-Meta-Who", "mallory"),
                ("content-type", "text/html"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(
            refusal.detail("HeadersNotSigned"),
            Some("x-amz-copy-source, x-amz-meta-who")
        );
        // Presigned: the query's SignedHeaders.
        let query = format!(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={}&X-Amz-SignedHeaders=host&X-Amz-Signature=00",
            GOOD_SCOPE.replace('/', "%2F")
        );
        assert!(check(&[("content-type", "text/plain")], Some(&query)).is_none());
        let refusal = check(&[("x-amz-tagging", "a=b")], Some(&query)).unwrap();
        assert_eq!(refusal.detail("HeadersNotSigned"), Some("x-amz-tagging"));
        let no_host = query.replace("SignedHeaders=host", "SignedHeaders=x-amz-date");
        assert_eq!(
            check(&[], Some(&no_host))
                .unwrap()
                .detail("HeadersNotSigned"),
            Some("host")
        );
        // Both a header and a query signature.
        assert_eq!(
            code(check(&[("authorization", &auth)], Some(&query))),
            Some(S3ErrorCode::InvalidArgument)
        );
    }

    #[test]
    fn presigned_expiry_is_capped_at_seven_days() {
        let query = |expires: &str| {
            format!(
                "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={}&X-Amz-SignedHeaders=host&X-Amz-Expires={expires}&X-Amz-Signature=00",
                GOOD_SCOPE.replace('/', "%2F")
            )
        };
        assert!(check(&[], Some(&query("604800"))).is_none());
        assert_eq!(
            code(check(&[], Some(&query("604801")))),
            Some(S3ErrorCode::AuthorizationQueryParametersError)
        );
        assert!(check(&[], Some(&query("soon"))).is_some());
        assert!(check(&[], None).is_none());
    }

    #[test]
    fn sigv2_dates_must_be_within_fifteen_minutes() {
        let now = SystemTime::now();
        let at = |offset: i64| {
            let time = if offset >= 0 {
                now + Duration::from_secs(offset as u64)
            } else {
                now - Duration::from_secs(offset.unsigned_abs())
            };
            httpdate::fmt_http_date(time)
        };
        let v2 = |date: &str, name: &'static str| {
            gate().check(
                &headers(&[("authorization", "AWS AK:c2ln"), (name, date)]),
                None,
                now,
            )
        };
        assert!(v2(&at(0), "date").is_none());
        assert!(v2(&at(-14 * 60), "date").is_none());
        assert!(v2(&at(14 * 60), "x-amz-date").is_none());
        let refusal = v2(&at(-16 * 60), "date").unwrap();
        assert_eq!(refusal.code(), &S3ErrorCode::RequestTimeTooSkewed);
        assert_eq!(refusal.detail("MaxAllowedSkewMilliseconds"), Some("900000"));
        assert_eq!(
            code(v2(&at(365 * 24 * 3600), "date")),
            Some(S3ErrorCode::RequestTimeTooSkewed)
        );
        assert_eq!(
            code(v2("Mon, 01 Jan 2001 00:00:00 GMT", "date")),
            Some(S3ErrorCode::RequestTimeTooSkewed)
        );
        assert_eq!(
            code(v2("yesterday", "date")),
            Some(S3ErrorCode::AccessDenied)
        );
        assert_eq!(
            code(gate().check(&headers(&[("authorization", "AWS AK:c2ln")]), None, now)),
            Some(S3ErrorCode::AccessDenied)
        );
    }
}
