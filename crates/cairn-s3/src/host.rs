//! Virtual-host-style addressing: `bucket.<domain>` names a bucket when
//! the server has domains (`CAIRN_DOMAIN`); every other host is path style.
//!
//! s3s's own `MultiDomain` keeps the port in the host it matches, and takes
//! any other valid host name for a bucket (CNAME style), which turns
//! `127.0.0.1:9000` into a bucket name; so Cairn parses hosts itself.

use std::borrow::Cow;

use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};

/// The configured domains, lower case.
#[derive(Clone)]
pub(crate) struct VirtualHosts {
    domains: Vec<String>,
}

impl VirtualHosts {
    pub(crate) fn new(domains: &[String]) -> Result<VirtualHosts, String> {
        let mut out: Vec<String> = Vec::new();
        for domain in domains {
            let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
            let valid = !domain.is_empty()
                && domain.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !valid {
                return Err(format!(
                    "invalid CAIRN_DOMAIN entry {domain:?}: expected a DNS name such as s3.example.com"
                ));
            }
            out.push(domain);
        }
        Ok(VirtualHosts { domains: out })
    }

    /// The bucket a `Host` header names, if it is `bucket.<domain>[:port]`.
    pub(crate) fn bucket<'a>(&self, host: &'a str) -> Option<Cow<'a, str>> {
        let name = strip_port(host);
        self.domains.iter().find_map(|domain| {
            let bucket = name
                .len()
                .checked_sub(domain.len() + 1)
                .filter(|&at| {
                    name.as_bytes()[at] == b'.' && name[at + 1..].eq_ignore_ascii_case(domain)
                })
                .map(|at| &name[..at])?;
            (!bucket.is_empty()).then(|| {
                if bucket.bytes().any(|b| b.is_ascii_uppercase()) {
                    Cow::Owned(bucket.to_ascii_lowercase())
                } else {
                    Cow::Borrowed(bucket)
                }
            })
        })
    }
}

/// `host` without a `:port` suffix (IPv6 literals keep their brackets).
fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port))
            if !name.ends_with(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!name.contains(':') || name.ends_with(']')) =>
        {
            name
        }
        _ => host,
    }
}

impl S3Host for VirtualHosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        Ok(match self.bucket(host) {
            Some(bucket) => VirtualHost::new(strip_port(host)).with_bucket(bucket),
            None => VirtualHost::new(strip_port(host)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let hosts =
            VirtualHosts::new(&["s3.example.com".to_owned(), "Objects.Test".to_owned()]).unwrap();
        assert_eq!(
            hosts.bucket("photos.s3.example.com").as_deref(),
            Some("photos")
        );
        assert_eq!(
            hosts.bucket("photos.s3.example.com:9000").as_deref(),
            Some("photos")
        );
        assert_eq!(hosts.bucket("a.b.objects.test").as_deref(), Some("a.b"));
        assert_eq!(
            hosts.bucket("Photos.S3.Example.Com").as_deref(),
            Some("photos")
        );
        assert_eq!(hosts.bucket("s3.example.com:9000"), None);
        assert_eq!(hosts.bucket("xs3.example.com"), None);
        assert_eq!(hosts.bucket("127.0.0.1:9000"), None);
        assert_eq!(hosts.bucket("[::1]:9000"), None);
        assert_eq!(strip_port("[::1]:9000"), "[::1]");
        assert_eq!(strip_port("::1"), "::1");
        assert!(VirtualHosts::new(&["bad domain".to_owned()]).is_err());
    }
}
