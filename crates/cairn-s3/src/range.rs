//! S3, like HTTP, ignores a `Range` header it cannot use (several ranges,
//! other units, bad syntax) and serves the whole object. s3s refuses such a
//! request while parsing it, after the signature check; and the header is
//! usually signed, so it cannot be dropped before. This custom route takes
//! those requests once they are authenticated and replays them, without the
//! header and without their (already verified) signature, through a second
//! s3s service that has no authentication configured.

use http::{HeaderMap, HeaderValue, Method, Uri};
use s3s::route::S3Route;
use s3s::service::S3Service;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};

/// True for a header value s3s can parse as one byte range.
fn usable(value: &HeaderValue) -> bool {
    value
        .to_str()
        .is_ok_and(|v| s3s::dto::Range::parse(v.trim()).is_ok())
}

pub(crate) struct IgnoreUnusableRange {
    /// Serves requests that were authenticated by the outer service.
    pub(crate) trusted: S3Service,
}

/// The URI without the query parameters of a presigned signature.
fn without_signature(uri: &Uri) -> Uri {
    let Some(query) = uri.query() else {
        return uri.clone();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.starts_with("X-Amz-") && !pair.starts_with("x-amz-"))
        .collect();
    let path_and_query = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    path_and_query.parse().unwrap_or_else(|_| uri.clone())
}

#[async_trait::async_trait]
impl S3Route for IgnoreUnusableRange {
    fn is_match(
        &self,
        method: &Method,
        _uri: &Uri,
        headers: &HeaderMap,
        _extensions: &mut http::Extensions,
    ) -> bool {
        (method == Method::GET || method == Method::HEAD)
            && headers.get(http::header::RANGE).is_some_and(|v| !usable(v))
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let mut headers = req.headers;
        headers.remove(http::header::RANGE);
        headers.remove(http::header::AUTHORIZATION);
        let mut replay = http::Request::new(req.input);
        *replay.method_mut() = req.method;
        *replay.uri_mut() = without_signature(&req.uri);
        *replay.headers_mut() = headers;
        let resp = self
            .trusted
            .call(replay)
            .await
            .map_err(|_| s3_error!(InternalError, "replaying the request failed"))?;
        let (parts, body) = resp.into_parts();
        let mut out = S3Response::with_headers(body, parts.headers);
        out.status = Some(parts.status);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_ranges() {
        for good in ["bytes=0-1", "bytes=5-", "bytes=-10", "bytes=-0"] {
            assert!(usable(&HeaderValue::from_static(good)), "{good}");
        }
        for bad in ["bytes=0-1,3-4", "items=0-1", "bytes=5-2", "bytes=abc", ""] {
            assert!(!usable(&HeaderValue::from_static(bad)), "{bad}");
        }
    }

    #[test]
    fn presigned_parameters_are_dropped() {
        let uri: Uri = "/b/k?X-Amz-Signature=ab&versionId=null&X-Amz-Date=1"
            .parse()
            .unwrap();
        assert_eq!(without_signature(&uri).to_string(), "/b/k?versionId=null");
        let uri: Uri = "/b/k?X-Amz-Signature=ab".parse().unwrap();
        assert_eq!(without_signature(&uri).to_string(), "/b/k");
    }
}
