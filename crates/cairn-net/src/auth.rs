//! Internode authentication: every request carries a token derived from the
//! cluster secret, over the request line, the sender's identity, a timestamp
//! and the protocol version (DESIGN.md section 5).
//!
//! The token is HMAC-SHA256 with a key derived from the secret, so the
//! secret itself never crosses the wire. The receiver checks the token
//! first (a wrong secret is reported as such) and the timestamp second (a
//! clock skew is reported as a skew, naming both clocks), never a bare 403.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// How far a request's timestamp may be from the receiver's clock.
pub const MAX_CLOCK_SKEW_MS: i64 = 15 * 60 * 1000;

pub const HEADER_NODE: &str = "x-cairn-node";
pub const HEADER_TIME: &str = "x-cairn-time";
pub const HEADER_PROTO: &str = "x-cairn-proto";
pub const HEADER_TOKEN: &str = "x-cairn-token";

/// The key every node derives from the cluster secret.
#[derive(Clone)]
pub struct ClusterKey {
    key: [u8; 32],
    /// Added to this node's clock when stamping requests: a test-only
    /// setting that simulates a node with a wrong clock.
    skew_ms: i64,
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

/// Why a request's credentials were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    BadToken,
    ClockSkew { sender_ms: i64, receiver_ms: i64 },
}

impl ClusterKey {
    pub fn new(secret: &str, skew_ms: i64) -> ClusterKey {
        let mut hasher = Sha256::new();
        hasher.update(b"cairn internode key v1\n");
        hasher.update(secret.as_bytes());
        ClusterKey {
            key: hasher.finalize().into(),
            skew_ms,
        }
    }

    /// This node's clock, in Unix milliseconds, as it stamps requests.
    pub fn now_ms(&self) -> i64 {
        unix_ms() + self.skew_ms
    }

    pub fn token(&self, method: &str, path: &str, node: &str, time_ms: i64, proto: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("any key size");
        for part in [method, path, node, &time_ms.to_string(), proto] {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        hex(&mac.finalize().into_bytes())
    }

    /// Checks a request's token and timestamp against this node's clock.
    pub fn verify(
        &self,
        method: &str,
        path: &str,
        node: &str,
        time: &str,
        proto: &str,
        token: &str,
    ) -> Result<(), AuthError> {
        let sender_ms: i64 = time.parse().map_err(|_| AuthError::Missing)?;
        let expected = self.token(method, path, node, sender_ms, proto);
        if !constant_time_eq(expected.as_bytes(), token.as_bytes()) {
            return Err(AuthError::BadToken);
        }
        let receiver_ms = self.now_ms();
        if (receiver_ms - sender_ms).abs() > MAX_CLOCK_SKEW_MS {
            return Err(AuthError::ClockSkew {
                sender_ms,
                receiver_ms,
            });
        }
        Ok(())
    }
}

pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A Unix-millisecond time as RFC 3339-like UTC text, for log messages.
pub fn show_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_with_the_same_secret_and_request() {
        let a = ClusterKey::new("secret", 0);
        let now = a.now_ms();
        let token = a.token("POST", "/cairn/internode/x", "n1", now, "2");
        let t = now.to_string();
        assert_eq!(
            a.verify("POST", "/cairn/internode/x", "n1", &t, "2", &token),
            Ok(())
        );
        let b = ClusterKey::new("other", 0);
        assert_eq!(
            b.verify("POST", "/cairn/internode/x", "n1", &t, "2", &token),
            Err(AuthError::BadToken)
        );
        for (path, node, proto) in [
            ("/cairn/internode/y", "n1", "2"),
            ("/cairn/internode/x", "n2", "2"),
            ("/cairn/internode/x", "n1", "1"),
        ] {
            assert_eq!(
                a.verify("POST", path, node, &t, proto, &token),
                Err(AuthError::BadToken)
            );
        }
    }

    #[test]
    fn skewed_clocks_are_reported_as_skew() {
        let ahead = ClusterKey::new("secret", 3_600_000);
        let here = ClusterKey::new("secret", 0);
        let sent = ahead.now_ms();
        let token = ahead.token("GET", "/p", "n", sent, "1");
        match here.verify("GET", "/p", "n", &sent.to_string(), "1", &token) {
            Err(AuthError::ClockSkew {
                sender_ms,
                receiver_ms,
            }) => {
                assert!(sender_ms - receiver_ms > 3_500_000)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn times_show_as_utc() {
        assert_eq!(show_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(show_time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
