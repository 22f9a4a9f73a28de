//! The one place where Cairn's errors become S3 errors.

use cairn_object::Error;
use s3s::{S3Error, S3ErrorCode, s3_error};

/// Maps an object-layer error to the S3 error the client sees. Internal
/// errors are logged here, once, with what the operator needs.
#[track_caller]
pub(crate) fn s3_err(err: Error) -> S3Error {
    let location = std::panic::Location::caller();
    match err {
        Error::InvalidBucketName(name) => {
            s3_error!(
                InvalidBucketName,
                "The specified bucket is not valid: {name:?}"
            )
        }
        Error::InvalidObjectName(detail) => {
            s3_error!(InvalidArgument, "Invalid object name: {detail}")
        }
        Error::KeyTooLong { len } => s3_error!(
            KeyTooLongError,
            "Your key is {len} bytes; the limit is 1024"
        ),
        Error::BucketNotFound => s3_error!(NoSuchBucket, "The specified bucket does not exist"),
        Error::BucketExists => s3_error!(
            BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it"
        ),
        Error::BucketNotEmpty => s3_error!(
            BucketNotEmpty,
            "The bucket you tried to delete is not empty"
        ),
        Error::ObjectNotFound => s3_error!(NoSuchKey, "The specified key does not exist"),
        Error::NoSuchUpload => s3_error!(
            NoSuchUpload,
            "The specified multipart upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
        ),
        Error::InvalidPart { number, reason } => s3_error!(
            InvalidPart,
            "One or more of the specified parts could not be found or did not match: part {number}: {reason}"
        ),
        Error::InvalidPartNumber { number, parts } => {
            let mut err = S3Error::with_message(
                S3ErrorCode::Custom("InvalidPartNumber".into()),
                format!(
                    "The requested partnumber is not satisfiable: part {number} of an object with {parts} parts"
                ),
            );
            err.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
            err
        }
        Error::InvalidPartOrder => s3_error!(
            InvalidPartOrder,
            "The list of parts was not in ascending order. The parts list must be specified in order by part number."
        ),
        Error::EntityTooSmall { number, size, min } => s3_error!(
            EntityTooSmall,
            "Your proposed upload is smaller than the minimum allowed object size: part {number} is {size} bytes, parts other than the last must be at least {min}"
        ),
        Error::PreconditionFailed => s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        ),
        Error::NotModified { etag, mod_time_ns } => {
            let mut err = S3Error::new(S3ErrorCode::NotModified);
            err.set_status_code(http::StatusCode::NOT_MODIFIED);
            let mut headers = http::HeaderMap::new();
            if let Ok(value) = http::HeaderValue::from_str(&format!("\"{etag}\"")) {
                headers.insert(http::header::ETAG, value);
            }
            if let Some(value) = crate::meta::http_date(mod_time_ns)
                .and_then(|date| http::HeaderValue::from_str(&date).ok())
            {
                headers.insert(http::header::LAST_MODIFIED, value);
            }
            err.set_headers(headers);
            err
        }
        Error::InvalidArgument(message) => {
            S3Error::with_message(S3ErrorCode::InvalidArgument, message)
        }
        Error::InvalidRequest(message) => {
            S3Error::with_message(S3ErrorCode::InvalidRequest, message)
        }
        Error::MalformedXml(message) => S3Error::with_message(
            S3ErrorCode::MalformedXML,
            format!(
                "The XML you provided was not well-formed or did not validate against our published schema: {message}"
            ),
        ),
        Error::InvalidRange { size } => {
            let mut err = s3_error!(InvalidRange, "The requested range is not satisfiable");
            if let Ok(value) = http::HeaderValue::from_str(&format!("bytes */{size}")) {
                let mut headers = http::HeaderMap::new();
                headers.insert(http::header::CONTENT_RANGE, value);
                err.set_headers(headers);
            }
            err
        }
        Error::BadDigest { expected, computed } => s3_error!(
            BadDigest,
            "The Content-MD5 you specified did not match what we received (expected {expected}, computed {computed})"
        ),
        Error::IncompleteBody { expected, received } => s3_error!(
            IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header ({received} of {expected})"
        ),
        Error::EntityTooLarge { size, max } => s3_error!(
            EntityTooLarge,
            "Your proposed upload of {size} bytes exceeds the maximum allowed object size of {max} bytes"
        ),
        err @ Error::StorageFull { .. } => {
            tracing::warn!(%err, %location, "request refused: storage full");
            // MinIO's code and status, which its users' tooling knows.
            let mut s3 = S3Error::with_message(
                S3ErrorCode::Custom("XMinioStorageFull".into()),
                "Storage is full: too many drives have no space left for this write. Delete objects (their space is freed at once) or add capacity.",
            );
            s3.set_status_code(http::StatusCode::INSUFFICIENT_STORAGE);
            s3
        }
        err @ (Error::WriteQuorum { .. }
        | Error::ReadQuorum { .. }
        | Error::LockTimeout { .. }
        | Error::LockLost { .. }) => {
            tracing::warn!(%err, %location, "request refused: storage unavailable");
            let mut s3 = S3Error::with_message(
                S3ErrorCode::ServiceUnavailable,
                "Storage is unavailable: too many drives are offline to reach quorum. Please retry.",
            );
            s3.set_status_code(http::StatusCode::SERVICE_UNAVAILABLE);
            s3
        }
        Error::Body(source) => match source.downcast::<S3Error>() {
            Ok(s3) => *s3,
            Err(source) => body_failure(&*source),
        },
        err @ (Error::Disk { .. } | Error::Internal(_)) => {
            tracing::error!(%err, %location, "internal error");
            s3_error!(
                InternalError,
                "We encountered an internal error. Please try again."
            )
        }
    }
}

/// What a request body that failed to read answers. s3s's body decoders
/// (aws-chunked, the x-amz-content-sha256 check) do not export their error
/// types, and wrap ours, so the causes are told apart by their messages.
pub(crate) fn body_failure(source: &(dyn std::error::Error + Send + Sync)) -> S3Error {
    let text = source.to_string();
    if text.contains("SignatureMismatch") {
        return s3_error!(
            SignatureDoesNotMatch,
            "The chunk signature we calculated does not match the one you provided"
        );
    }
    if text.contains("Sha256Mismatch") {
        let mut err = S3Error::with_message(
            S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        );
        err.set_status_code(http::StatusCode::BAD_REQUEST);
        return err;
    }
    if text.contains(crate::limits::BODY_TIMEOUT) {
        return S3Error::with_message(
            S3ErrorCode::RequestTimeout,
            "Your socket connection to the server was not read from or written to within the timeout period. Idle connections will be closed.",
        );
    }
    tracing::debug!(%text, "request body failed");
    s3_error!(IncompleteBody, "The request body could not be read: {text}")
}

/// The answer S3 gives for a bucket configuration that is not set.
pub(crate) fn not_configured(code: S3ErrorCode, message: &str) -> S3Error {
    S3Error::with_message(code, message.to_owned())
}

/// An S3 error answered before s3s sees the request, which may carry the
/// extra elements S3 adds to some errors (`Region`, `HeadersNotSigned`,
/// `ServerTime`, ...); s3s's error type has no room for them.
#[derive(Debug)]
pub(crate) struct Refusal {
    code: S3ErrorCode,
    status: http::StatusCode,
    message: String,
    details: Vec<(&'static str, String)>,
}

impl Refusal {
    /// An error with the status S3 gives `code` (400 when it has none).
    pub(crate) fn new(code: S3ErrorCode, message: impl Into<String>) -> Refusal {
        let status = code.status_code().unwrap_or(http::StatusCode::BAD_REQUEST);
        Refusal {
            code,
            status,
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub(crate) fn status(mut self, status: http::StatusCode) -> Refusal {
        self.status = status;
        self
    }

    /// Adds an element after `Message`.
    pub(crate) fn with(mut self, element: &'static str, value: &str) -> Refusal {
        self.details.push((element, value.to_owned()));
        self
    }

    #[cfg(test)]
    pub(crate) fn code(&self) -> &S3ErrorCode {
        &self.code
    }

    #[cfg(test)]
    pub(crate) fn detail(&self, element: &str) -> Option<&str> {
        self.details
            .iter()
            .find(|(name, _)| *name == element)
            .map(|(_, value)| value.as_str())
    }

    pub(crate) fn into_response(self) -> http::Response<s3s::Body> {
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error>");
        push_element(&mut xml, "Code", self.code.as_str());
        push_element(&mut xml, "Message", &self.message);
        for (element, value) in &self.details {
            push_element(&mut xml, element, value);
        }
        xml.push_str("</Error>");
        let mut resp = http::Response::new(s3s::Body::from(xml));
        *resp.status_mut() = self.status;
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/xml"),
        );
        resp
    }
}

/// S3's own message for an error code, for errors that came without one
/// (s3s's checks of names and signatures): clients print it, and a bare
/// code prints as `Unknown`.
fn standard_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "AccessDenied" => "Access Denied",
        "AuthorizationHeaderMalformed" => "The authorization header you provided is invalid.",
        "BadDigest" => "The Content-MD5 you specified did not match what we received.",
        "BucketAlreadyExists" => {
            "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again."
        }
        "BucketAlreadyOwnedByYou" => {
            "Your previous request to create the named bucket succeeded and you already own it."
        }
        "BucketNotEmpty" => "The bucket you tried to delete is not empty",
        "EntityTooLarge" => "Your proposed upload exceeds the maximum allowed object size.",
        "EntityTooSmall" => "Your proposed upload is smaller than the minimum allowed object size.",
        "IncompleteBody" => {
            "You did not provide the number of bytes specified by the Content-Length HTTP header."
        }
        "InternalError" => "We encountered an internal error. Please try again.",
        "InvalidAccessKeyId" => "The AWS Access Key Id you provided does not exist in our records.",
        "InvalidArgument" => "Invalid Argument",
        "InvalidBucketName" => "The specified bucket is not valid.",
        "InvalidDigest" => "The Content-MD5 you specified is not valid.",
        "InvalidObjectState" => "The operation is not valid for the current state of the object.",
        "InvalidPart" => {
            "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag."
        }
        "InvalidPartOrder" => "The list of parts was not in ascending order.",
        "InvalidRange" => "The requested range is not satisfiable",
        "InvalidRequest" => "Invalid Request",
        "InvalidStorageClass" => "The storage class you specified is not valid",
        "KeyTooLongError" => "Your key is too long",
        "MalformedXML" => {
            "The XML you provided was not well-formed or did not validate against our published schema."
        }
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "MissingContentLength" => "You must provide the Content-Length HTTP header.",
        "NoSuchBucket" => "The specified bucket does not exist",
        "NoSuchKey" => "The specified key does not exist.",
        "NoSuchUpload" => {
            "The specified multipart upload does not exist. The upload ID might be invalid, or the multipart upload might have been aborted or completed."
        }
        "NotImplemented" => "A header you provided implies functionality that is not implemented.",
        "PreconditionFailed" => "At least one of the preconditions you specified did not hold.",
        "RequestTimeTooSkewed" => {
            "The difference between the request time and the current time is too large."
        }
        "SignatureDoesNotMatch" => {
            "The request signature we calculated does not match the signature you provided. Check your key and signing method."
        }
        "SlowDown" => "Please reduce your request rate.",
        "ServiceUnavailable" => "Please reduce your request rate.",
        _ => return None,
    })
}

/// Completes an S3 error body as S3 writes it: the `Message` (S3's own when
/// the error came without one), the `Resource` (the request path) and the
/// `RequestId` (the `x-amz-request-id` header). Other answers are left alone.
pub fn complete_error(resp: &mut http::Response<s3s::Body>, resource: &str, request_id: &str) {
    if !resp.status().is_client_error() && !resp.status().is_server_error() {
        return;
    }
    let Some(body) = resp.body().bytes() else {
        return; // not a whole XML error
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return;
    };
    let Some(end) = text.rfind("</Error>") else {
        return;
    };
    let element = |name: &str| {
        text.split_once(&format!("<{name}>"))
            .and_then(|(_, rest)| rest.split_once(&format!("</{name}>")))
            .map(|(value, _)| value)
    };
    let code = element("Code").unwrap_or_default();
    tracing::debug!(
        status = resp.status().as_u16(),
        code,
        message = element("Message").unwrap_or_default(),
        resource,
        request_id,
        "request refused"
    );
    let mut xml = String::with_capacity(text.len() + resource.len() + 96);
    xml.push_str(&text[..end]);
    if element("Message").is_none()
        && let Some(message) = standard_message(code)
    {
        push_element(&mut xml, "Message", message);
    }
    if !text.contains("<Resource>") {
        push_element(&mut xml, "Resource", resource);
    }
    if !text.contains("<RequestId>") {
        push_element(&mut xml, "RequestId", request_id);
    }
    xml.push_str(&text[end..]);
    resp.headers_mut().insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(xml.len()),
    );
    *resp.body_mut() = s3s::Body::from(xml);
}

/// Appends `<element>value</element>`, escaping the value.
pub(crate) fn push_element(xml: &mut String, element: &str, value: &str) {
    xml.push('<');
    xml.push_str(element);
    xml.push('>');
    for c in value.chars() {
        match c {
            '&' => xml.push_str("&amp;"),
            '<' => xml.push_str("&lt;"),
            '>' => xml.push_str("&gt;"),
            c => xml.push(c),
        }
    }
    xml.push_str("</");
    xml.push_str(element);
    xml.push('>');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_get_message_resource_and_request_id() {
        let mut resp = http::Response::new(s3s::Body::from(
            "<?xml version=\"1.0\"?><Error><Code>InvalidBucketName</Code></Error>".to_owned(),
        ));
        *resp.status_mut() = http::StatusCode::BAD_REQUEST;
        complete_error(&mut resp, "/cairn", "ABC123");
        let text = String::from_utf8(resp.body().bytes().unwrap().to_vec()).unwrap();
        assert!(
            text.contains("<Message>The specified bucket is not valid.</Message>"),
            "{text}"
        );
        assert!(
            text.contains("<Resource>/cairn</Resource><RequestId>ABC123</RequestId></Error>"),
            "{text}"
        );
        // A message already given is kept; successes are untouched.
        let mut resp = http::Response::new(s3s::Body::from(
            "<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>".to_owned(),
        ));
        *resp.status_mut() = http::StatusCode::NOT_FOUND;
        complete_error(&mut resp, "/b/k&<", "ID");
        let text = String::from_utf8(resp.body().bytes().unwrap().to_vec()).unwrap();
        assert_eq!(
            text,
            "<Error><Code>NoSuchKey</Code><Message>gone</Message><Resource>/b/k&amp;&lt;</Resource><RequestId>ID</RequestId></Error>"
        );
        let mut ok = http::Response::new(s3s::Body::from("<Error></Error>".to_owned()));
        complete_error(&mut ok, "/", "ID");
        assert_eq!(ok.body().bytes().unwrap().as_ref(), b"<Error></Error>");
    }

    #[test]
    fn quorum_loss_is_503() {
        let err = s3_err(Error::WriteQuorum {
            ok: 1,
            needed: 3,
            errors: vec![],
        });
        assert_eq!(err.code(), &S3ErrorCode::ServiceUnavailable);
        assert_eq!(
            err.status_code(),
            Some(http::StatusCode::SERVICE_UNAVAILABLE)
        );
    }

    #[test]
    fn body_errors_keep_their_s3_code() {
        let inner = s3_error!(BadDigest, "crc32 mismatch");
        let err = s3_err(Error::Body(Box::new(inner)));
        assert_eq!(err.code(), &S3ErrorCode::BadDigest);
        assert_eq!(
            s3_err(Error::ObjectNotFound).code(),
            &S3ErrorCode::NoSuchKey
        );
    }
}
