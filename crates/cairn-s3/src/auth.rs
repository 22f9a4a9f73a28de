//! Who may call the S3 API: the root credentials for now (IAM comes later),
//! and the checks of authorization data that s3s does not make.

use http::HeaderMap;
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Error, S3Result, s3_error};

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

/// Rejects malformed authorization data with the error S3 gives, before
/// s3s, which would call it a generic `InvalidRequest` or not check it.
pub(crate) fn precheck(headers: &HeaderMap, query: Option<&str>) -> Option<S3Error> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let Ok(value) = value.to_str() else {
            return Some(s3_error!(
                AuthorizationHeaderMalformed,
                "The authorization header is malformed"
            ));
        };
        if let Some(rest) = value.strip_prefix("AWS4-HMAC-SHA256 ") {
            return check_v4_header(rest).err();
        }
        if value.starts_with("AWS ") {
            return None; // Signature V2: s3s checks it.
        }
        return Some(s3_error!(AccessDenied, "Unsupported Authorization Type"));
    }
    let query = query?;
    let expires = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("X-Amz-Expires="))?;
    match expires.parse::<u64>() {
        Ok(secs) if secs <= MAX_PRESIGNED_EXPIRY_SECS => None,
        Ok(_) => Some(s3_error!(
            AuthorizationQueryParametersError,
            "X-Amz-Expires must be less than a week (in seconds) that is 604800"
        )),
        Err(_) => Some(s3_error!(
            AuthorizationQueryParametersError,
            "X-Amz-Expires should be a number"
        )),
    }
}

/// Checks the shape of `Credential=AK/DATE/REGION/s3/aws4_request,
/// SignedHeaders=a;b, Signature=<64 hex>`.
fn check_v4_header(rest: &str) -> S3Result<()> {
    let malformed = |what: &str| {
        s3_error!(
            AuthorizationHeaderMalformed,
            "The authorization header is malformed; {what}"
        )
    };
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
            return Err(malformed("unknown field"));
        }
    }
    let credential = credential.ok_or_else(|| malformed("missing Credential"))?;
    let fields: Vec<&str> = credential.split('/').collect();
    if fields.len() != 5 || fields[0].is_empty() || fields[4] != "aws4_request" {
        return Err(malformed(
            "the Credential is not ACCESSKEY/DATE/REGION/SERVICE/aws4_request",
        ));
    }
    if fields[1].len() != 8 || !fields[1].bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("the Credential date is not YYYYMMDD"));
    }
    if signed_headers.is_none_or(str::is_empty) {
        return Err(malformed("missing SignedHeaders"));
    }
    let signature = signature.ok_or_else(|| malformed("missing Signature"))?;
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(s3_error!(
            SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::S3ErrorCode;

    fn check(auth: &str) -> Option<S3ErrorCode> {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, auth.parse().unwrap());
        precheck(&headers, None).map(|e| e.code().clone())
    }

    #[test]
    fn authorization_headers() {
        let sig = "a".repeat(64);
        let good = format!(
            "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature={sig}"
        );
        assert_eq!(check(&good), None);
        assert_eq!(check("AWS AK:c2lnbmF0dXJl"), None);
        assert_eq!(check("Bearer token"), Some(S3ErrorCode::AccessDenied));
        assert_eq!(
            check("AWS4-HMAC-SHA256 Credential=garbage, SignedHeaders=host, Signature=00"),
            Some(S3ErrorCode::AuthorizationHeaderMalformed)
        );
        assert_eq!(
            check(&good.replace(&sig, "nothex")),
            Some(S3ErrorCode::SignatureDoesNotMatch)
        );
        assert_eq!(
            check(
                "AWS4-HMAC-SHA256 Credential=AK/2026/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=aa"
            ),
            Some(S3ErrorCode::AuthorizationHeaderMalformed)
        );
    }

    #[test]
    fn presigned_expiry_is_capped_at_seven_days() {
        let headers = HeaderMap::new();
        assert!(precheck(&headers, Some("X-Amz-Expires=604800&X-Amz-Signature=x")).is_none());
        let err = precheck(&headers, Some("X-Amz-Expires=604801")).unwrap();
        assert_eq!(err.code(), &S3ErrorCode::AuthorizationQueryParametersError);
        assert!(precheck(&headers, Some("X-Amz-Expires=soon")).is_some());
        assert!(precheck(&headers, None).is_none());
    }
}
