//! Conditional requests: `If-Match`, `If-None-Match`, `If-Modified-Since`
//! and `If-Unmodified-Since`, evaluated the way S3 evaluates them.

use crate::error::{Error, Result};
use crate::types::ObjectInfo;

/// The preconditions of one request. ETags are given without quotes, or `*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    /// Seconds since the Unix epoch (HTTP dates have second precision).
    pub if_modified_since: Option<i64>,
    pub if_unmodified_since: Option<i64>,
}

fn etag_matches(condition: &str, etag: &str) -> bool {
    condition.split(',').map(str::trim).any(|c| {
        let c = c.strip_prefix("W/").unwrap_or(c).trim_matches('"');
        c == "*" || c == etag
    })
}

fn modified_secs(info: &ObjectInfo) -> i64 {
    info.mod_time_ns.div_euclid(1_000_000_000)
}

impl Preconditions {
    pub fn is_empty(&self) -> bool {
        *self == Preconditions::default()
    }

    /// For GET and HEAD of an existing object. As S3 documents: a true
    /// `If-Match` wins over a false `If-Unmodified-Since` (200), and a false
    /// `If-None-Match` with a true `If-Modified-Since` is still 304.
    pub fn check_read(&self, info: &ObjectInfo) -> Result<()> {
        match &self.if_match {
            Some(condition) if !etag_matches(condition, &info.etag) => {
                return Err(Error::PreconditionFailed);
            }
            Some(_) => {}
            None => {
                if let Some(since) = self.if_unmodified_since
                    && modified_secs(info) > since
                {
                    return Err(Error::PreconditionFailed);
                }
            }
        }
        let not_modified = || Error::NotModified {
            etag: info.etag.clone(),
            mod_time_ns: info.mod_time_ns,
        };
        if let Some(condition) = &self.if_none_match
            && etag_matches(condition, &info.etag)
        {
            return Err(not_modified());
        }
        if let Some(since) = self.if_modified_since
            && modified_secs(info) <= since
        {
            return Err(not_modified());
        }
        Ok(())
    }

    /// For writes (PUT, completing an upload, a copy's destination) against
    /// the object the write would replace, if any: `If-None-Match: *` fails
    /// when it exists, `If-Match` when it differs, or is missing (404).
    pub fn check_write(&self, current: Option<&ObjectInfo>) -> Result<()> {
        if let Some(condition) = &self.if_none_match {
            if condition.trim() != "*" {
                return Err(Error::InvalidArgument(
                    "If-None-Match on a write only accepts *".to_owned(),
                ));
            }
            if current.is_some() {
                return Err(Error::PreconditionFailed);
            }
        }
        if let Some(condition) = &self.if_match {
            match current {
                None => return Err(Error::ObjectNotFound),
                Some(info) if !etag_matches(condition, &info.etag) => {
                    return Err(Error::PreconditionFailed);
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(etag: &str, secs: i64) -> ObjectInfo {
        ObjectInfo {
            bucket: "b".into(),
            key: "k".into(),
            size: 1,
            etag: etag.into(),
            mod_time_ns: secs * 1_000_000_000 + 500,
            version_id: None,
            meta: Default::default(),
            parts_count: 1,
        }
    }

    fn read(p: Preconditions) -> &'static str {
        match p.check_read(&info("abc", 1000)) {
            Ok(()) => "200",
            Err(Error::NotModified { .. }) => "304",
            Err(Error::PreconditionFailed) => "412",
            Err(_) => "other",
        }
    }

    #[test]
    fn reads_follow_s3() {
        let p =
            |m: Option<&str>, nm: Option<&str>, ms: Option<i64>, us: Option<i64>| Preconditions {
                if_match: m.map(str::to_owned),
                if_none_match: nm.map(str::to_owned),
                if_modified_since: ms,
                if_unmodified_since: us,
            };
        assert_eq!(read(p(None, None, None, None)), "200");
        assert_eq!(read(p(Some("abc"), None, None, None)), "200");
        assert_eq!(read(p(Some("\"abc\""), None, None, None)), "200");
        assert_eq!(read(p(Some("*"), None, None, None)), "200");
        assert_eq!(read(p(Some("other"), None, None, None)), "412");
        assert_eq!(read(p(None, Some("abc"), None, None)), "304");
        assert_eq!(read(p(None, Some("x, \"abc\""), None, None)), "304");
        assert_eq!(read(p(None, Some("other"), None, None)), "200");
        assert_eq!(read(p(None, None, Some(1000), None)), "304");
        assert_eq!(read(p(None, None, Some(999), None)), "200");
        assert_eq!(read(p(None, None, None, Some(1000))), "200");
        assert_eq!(read(p(None, None, None, Some(999))), "412");
        // If-Match true wins over If-Unmodified-Since false.
        assert_eq!(read(p(Some("abc"), None, None, Some(999))), "200");
        // If-None-Match false and If-Modified-Since true: 304, as S3 documents.
        assert_eq!(read(p(None, Some("other"), Some(1000), None)), "304");
        // If-Match failing beats everything.
        assert_eq!(read(p(Some("x"), Some("abc"), None, None)), "412");
    }

    #[test]
    fn writes_follow_s3() {
        let none_match = Preconditions {
            if_none_match: Some("*".into()),
            ..Default::default()
        };
        assert!(none_match.check_write(None).is_ok());
        assert!(matches!(
            none_match.check_write(Some(&info("a", 1))),
            Err(Error::PreconditionFailed)
        ));
        let matching = Preconditions {
            if_match: Some("a".into()),
            ..Default::default()
        };
        assert!(matching.check_write(Some(&info("a", 1))).is_ok());
        assert!(matches!(
            matching.check_write(Some(&info("b", 1))),
            Err(Error::PreconditionFailed)
        ));
        assert!(matches!(
            matching.check_write(None),
            Err(Error::ObjectNotFound)
        ));
        let bad = Preconditions {
            if_none_match: Some("a".into()),
            ..Default::default()
        };
        assert!(matches!(
            bad.check_write(None),
            Err(Error::InvalidArgument(_))
        ));
    }
}
