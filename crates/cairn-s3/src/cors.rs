//! Bucket CORS: the configuration (Put/Get/DeleteBucketCors), kept as a
//! bucket configuration document through the object layer, and its
//! enforcement on preflight (`OPTIONS`) and ordinary requests.

use std::sync::Arc;

use bytes::Bytes;
use cairn_object::{ConfigKind, ObjectLayer};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use s3s::dto::{
    CORSConfiguration, CORSRule, DeleteBucketCorsInput, DeleteBucketCorsOutput, GetBucketCorsInput,
    GetBucketCorsOutput, PutBucketCorsInput, PutBucketCorsOutput,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use serde::{Deserialize, Serialize};

use crate::CairnS3;
use crate::error::{not_configured, s3_err};

const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];

/// One CORS rule, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CorsRule {
    #[serde(default)]
    pub(crate) id: Option<String>,
    pub(crate) allowed_origins: Vec<String>,
    pub(crate) allowed_methods: Vec<String>,
    #[serde(default)]
    pub(crate) allowed_headers: Vec<String>,
    #[serde(default)]
    pub(crate) expose_headers: Vec<String>,
    #[serde(default)]
    pub(crate) max_age_seconds: Option<i32>,
}

fn malformed(message: &str) -> S3Error {
    S3Error::with_message(S3ErrorCode::MalformedXML, message.to_owned())
}

/// Checks a configuration as S3 does and converts it.
fn rules_from_dto(config: CORSConfiguration) -> S3Result<Vec<CorsRule>> {
    if config.cors_rules.is_empty() {
        return Err(malformed(
            "A CORS configuration needs at least one CORSRule",
        ));
    }
    if config.cors_rules.len() > 100 {
        return Err(malformed("A CORS configuration may have at most 100 rules"));
    }
    let mut rules = Vec::with_capacity(config.cors_rules.len());
    for rule in config.cors_rules {
        if rule.allowed_origins.is_empty() || rule.allowed_methods.is_empty() {
            return Err(malformed(
                "Every CORSRule needs an AllowedOrigin and an AllowedMethod",
            ));
        }
        for method in &rule.allowed_methods {
            if !METHODS.contains(&method.as_str()) {
                return Err(s3_error!(
                    InvalidRequest,
                    "Found unsupported HTTP method in CORS config. Unsupported method is {method}"
                ));
            }
        }
        for origin in &rule.allowed_origins {
            if origin.matches('*').count() > 1 {
                return Err(s3_error!(
                    InvalidRequest,
                    "AllowedOrigin {origin:?} can not have more than one wildcard."
                ));
            }
        }
        let headers = rule.allowed_headers.unwrap_or_default();
        for header in &headers {
            if header.matches('*').count() > 1 {
                return Err(s3_error!(
                    InvalidRequest,
                    "AllowedHeader {header:?} can not have more than one wildcard."
                ));
            }
        }
        rules.push(CorsRule {
            id: rule.id,
            allowed_origins: rule.allowed_origins,
            allowed_methods: rule.allowed_methods,
            allowed_headers: headers,
            expose_headers: rule.expose_headers.unwrap_or_default(),
            max_age_seconds: rule.max_age_seconds,
        });
    }
    Ok(rules)
}

fn rules_to_dto(rules: &[CorsRule]) -> Vec<CORSRule> {
    rules
        .iter()
        .map(|r| CORSRule {
            id: r.id.clone(),
            allowed_origins: r.allowed_origins.clone(),
            allowed_methods: r.allowed_methods.clone(),
            allowed_headers: (!r.allowed_headers.is_empty()).then(|| r.allowed_headers.clone()),
            expose_headers: (!r.expose_headers.is_empty()).then(|| r.expose_headers.clone()),
            max_age_seconds: r.max_age_seconds,
        })
        .collect()
}

/// Matches `value` against a pattern with at most one `*`.
fn wildcard(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((head, tail)) => {
            value.len() >= head.len() + tail.len()
                && value.starts_with(head)
                && value.ends_with(tail)
        }
    }
}

impl CorsRule {
    fn allows(&self, origin: &str, method: &str, headers: &[String]) -> bool {
        self.allowed_origins.iter().any(|o| wildcard(o, origin))
            && self.allowed_methods.iter().any(|m| m == method)
            && headers.iter().all(|h| {
                self.allowed_headers
                    .iter()
                    .any(|a| wildcard(&a.to_ascii_lowercase(), &h.to_ascii_lowercase()))
            })
    }

    /// The headers granting a request from `origin`.
    fn grant(&self, origin: &str, headers: &mut HeaderMap, preflight_headers: Option<&str>) {
        let any_origin = self.allowed_origins.iter().any(|o| o == "*");
        let allow_origin = if any_origin { "*" } else { origin };
        let mut set = |name: &'static str, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        };
        set("access-control-allow-origin", allow_origin);
        set(
            "access-control-allow-methods",
            &self.allowed_methods.join(", "),
        );
        if !any_origin {
            set("access-control-allow-credentials", "true");
        }
        if !self.expose_headers.is_empty() {
            set(
                "access-control-expose-headers",
                &self.expose_headers.join(", "),
            );
        }
        if let Some(requested) = preflight_headers {
            set("access-control-allow-headers", requested);
            if let Some(max_age) = self.max_age_seconds {
                set("access-control-max-age", &max_age.to_string());
            }
        }
        headers.append(http::header::VARY, HeaderValue::from_static("Origin"));
        headers.append(
            http::header::VARY,
            HeaderValue::from_static("Access-Control-Request-Headers"),
        );
        headers.append(
            http::header::VARY,
            HeaderValue::from_static("Access-Control-Request-Method"),
        );
    }
}

/// Buckets' CORS rules, kept with each bucket's configuration by the object
/// layer, which caches them on every node and tells every node of changes.
pub(crate) struct CorsRules {
    layer: Arc<ObjectLayer>,
}

impl CorsRules {
    pub(crate) fn new(layer: Arc<ObjectLayer>) -> CorsRules {
        CorsRules { layer }
    }

    /// A bucket's rules; `None` when it has none (or does not exist).
    pub(crate) async fn get(&self, bucket: &str) -> cairn_object::Result<Option<Vec<CorsRule>>> {
        let state = match self.layer.bucket_state(bucket).await {
            Ok(state) => state,
            Err(cairn_object::Error::BucketNotFound) => return Ok(None),
            Err(err) => return Err(err),
        };
        Ok(state
            .config
            .get(ConfigKind::Cors)
            .and_then(|bytes| serde_json::from_slice::<Vec<CorsRule>>(bytes).ok()))
    }

    pub(crate) async fn put(&self, bucket: &str, rules: &[CorsRule]) -> cairn_object::Result<()> {
        let data = Bytes::from(serde_json::to_vec(rules).expect("rules serialize"));
        self.layer
            .set_bucket_config(bucket, ConfigKind::Cors, Some(data))
            .await
    }

    pub(crate) async fn delete(&self, bucket: &str) -> cairn_object::Result<()> {
        self.layer
            .set_bucket_config(bucket, ConfigKind::Cors, None)
            .await
    }

    /// Answers a preflight request for `bucket`.
    pub(crate) async fn preflight(
        &self,
        bucket: Option<&str>,
        headers: &HeaderMap,
    ) -> http::Response<s3s::Body> {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(origin), Some(method)) = (get("origin"), get("access-control-request-method"))
        else {
            return forbidden(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Insufficient information. Origin request header needed.",
            );
        };
        let Some(bucket) = bucket else {
            return forbidden(
                StatusCode::FORBIDDEN,
                "AccessForbidden",
                "CORSResponse: Bucket not found",
            );
        };
        let requested: Vec<String> = get("access-control-request-headers")
            .map(|v| {
                v.split(',')
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let rules = match self.get(bucket).await {
            Ok(Some(rules)) => rules,
            Ok(None) => {
                return forbidden(
                    StatusCode::FORBIDDEN,
                    "AccessForbidden",
                    "CORSResponse: CORS is not enabled for this bucket.",
                );
            }
            Err(_) => {
                return forbidden(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "Storage is unavailable: too many drives are offline to reach quorum. Please retry.",
                );
            }
        };
        match rules.iter().find(|r| r.allows(origin, method, &requested)) {
            Some(rule) => {
                let mut resp = http::Response::new(s3s::Body::empty());
                rule.grant(origin, resp.headers_mut(), Some(&requested.join(", ")));
                resp
            }
            None => forbidden(
                StatusCode::FORBIDDEN,
                "AccessForbidden",
                "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
            ),
        }
    }

    /// Adds the CORS headers an ordinary request from `origin` earns.
    pub(crate) async fn decorate(
        &self,
        bucket: &str,
        origin: &str,
        method: &Method,
        headers: &mut HeaderMap,
    ) {
        let Ok(Some(rules)) = self.get(bucket).await else {
            return;
        };
        if let Some(rule) = rules
            .iter()
            .find(|r| r.allows(origin, method.as_str(), &[]))
        {
            rule.grant(origin, headers, None);
        }
    }
}

fn forbidden(status: StatusCode, code: &str, message: &str) -> http::Response<s3s::Body> {
    let mut err = S3Error::with_message(
        S3ErrorCode::Custom(code.to_owned().into()),
        message.to_owned(),
    );
    err.set_status_code(status);
    match err.to_http_response() {
        Ok(resp) => resp,
        Err(_) => {
            let mut resp = http::Response::new(s3s::Body::empty());
            *resp.status_mut() = status;
            resp
        }
    }
}

impl CairnS3 {
    pub(crate) async fn do_put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let input = req.input;
        let rules = rules_from_dto(input.cors_configuration)?;
        self.cors.put(&input.bucket, &rules).await.map_err(s3_err)?;
        Ok(S3Response::new(PutBucketCorsOutput::default()))
    }

    pub(crate) async fn do_get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let bucket = req.input.bucket;
        self.existing_bucket(&bucket).await?;
        match self.cors.get(&bucket).await.map_err(s3_err)? {
            Some(rules) => Ok(S3Response::new(GetBucketCorsOutput {
                cors_rules: Some(rules_to_dto(&rules)),
            })),
            None => Err(not_configured(
                S3ErrorCode::NoSuchCORSConfiguration,
                "The CORS configuration does not exist",
            )),
        }
    }

    pub(crate) async fn do_delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        self.cors.delete(&req.input.bucket).await.map_err(s3_err)?;
        Ok(S3Response::new(DeleteBucketCorsOutput::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        CorsRule {
            id: None,
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            allowed_headers: headers.iter().map(|s| s.to_string()).collect(),
            expose_headers: vec!["ETag".into()],
            max_age_seconds: Some(600),
        }
    }

    #[test]
    fn matching() {
        let r = rule(
            &["https://*.example.com"],
            &["GET", "PUT"],
            &["x-amz-*", "content-type"],
        );
        assert!(r.allows("https://app.example.com", "GET", &[]));
        assert!(r.allows(
            "https://app.example.com",
            "PUT",
            &["X-Amz-Date".into(), "Content-Type".into()]
        ));
        assert!(!r.allows("https://example.org", "GET", &[]));
        assert!(!r.allows("https://app.example.com", "DELETE", &[]));
        assert!(!r.allows("https://app.example.com", "PUT", &["authorization".into()]));
        assert!(wildcard("*", "anything"));
        assert!(!wildcard("a*a", "a"));
    }

    #[test]
    fn grants() {
        let mut headers = HeaderMap::new();
        rule(&["*"], &["GET"], &[]).grant("https://x", &mut headers, Some("a, b"));
        assert_eq!(headers["access-control-allow-origin"], "*");
        assert!(headers.get("access-control-allow-credentials").is_none());
        assert_eq!(headers["access-control-max-age"], "600");
        let mut headers = HeaderMap::new();
        rule(&["https://x"], &["GET"], &[]).grant("https://x", &mut headers, None);
        assert_eq!(headers["access-control-allow-origin"], "https://x");
        assert_eq!(headers["access-control-allow-credentials"], "true");
        assert_eq!(headers["access-control-expose-headers"], "ETag");
    }
}
