//! Internode authentication: every request carries a token derived from the
//! cluster secret (docs/design.md section 5).
//!
//! The token is HMAC-SHA256 with a key derived from the secret, so the
//! secret itself never crosses the wire. The receiver checks the token
//! first (a wrong secret is reported as such) and the timestamp second (a
//! clock skew is reported as a skew, naming both clocks), never a bare 403.
//!
//! From protocol version 3 a token also covers the receiving node and the
//! run of it the sender is talking to (its boot id, learned in the hello),
//! the sender's own run and a sequence number, and a SHA-256 digest of the
//! request body; a streamed shard write ends with a MAC over everything it
//! sent ([`ClusterKey::stream_mac`]). The receiver accepts each sequence
//! number of a sender's run once ([`ReplayGuard`]), so a captured request
//! sent again, to the same node or another, is refused. Version 2 tokens
//! (method, path, node, time and version only) are accepted only from a
//! node whose hello said it speaks nothing newer: a node of the previous
//! release during a rolling upgrade.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// How far a request's timestamp may be from the receiver's clock.
pub const MAX_CLOCK_SKEW_MS: i64 = 15 * 60 * 1000;

pub const HEADER_NODE: &str = "x-cairn-node";
pub const HEADER_TIME: &str = "x-cairn-time";
pub const HEADER_PROTO: &str = "x-cairn-proto";
pub const HEADER_TOKEN: &str = "x-cairn-token";
/// Version 3: `FROM_BOOT.SEQ TO_BOOT`, in hexadecimal: the sender's run and
/// sequence number, and the receiver's run the sender is talking to. On a
/// hello, only the sender's run.
pub const HEADER_RUN: &str = "x-cairn-run";
/// Version 3: the hexadecimal SHA-256 of the request body (of the
/// arguments only, for a streamed shard write).
pub const HEADER_DIGEST: &str = "x-cairn-digest";

/// How many of a sender's latest sequence numbers the receiver tells apart:
/// requests sent concurrently may arrive out of order, but not by this much.
const REPLAY_WINDOW: u64 = 4096;

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
    ClockSkew {
        sender_ms: i64,
        receiver_ms: i64,
    },
    /// The request was sent to an earlier run of this node, or by a run of
    /// the sender this node has not heard a hello from: the sender must
    /// reconnect.
    Stale,
    /// The sequence number was used before, or is older than the window:
    /// a replay.
    Replayed,
}

/// What a version 3 token binds a request to, besides the version 2 fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    /// The node the request is for (`host:port`).
    pub to_node: &'a str,
    /// The run of that node the sender is talking to.
    pub to_boot: u64,
    /// The sender's run.
    pub from_boot: u64,
    /// The sender's sequence number, unique within its run.
    pub seq: u64,
    /// SHA-256 of the request body.
    pub digest: [u8; 32],
}

impl Binding<'_> {
    /// The run header's value.
    pub fn run_header(&self) -> String {
        format!("{:x}.{:x} {:x}", self.from_boot, self.seq, self.to_boot)
    }

    /// Parses a run header: (from_boot, seq, to_boot).
    pub fn parse_run(text: &str) -> Option<(u64, u64, u64)> {
        let (from, to) = text.split_once(' ')?;
        let (boot, seq) = from.split_once('.')?;
        Some((
            u64::from_str_radix(boot, 16).ok()?,
            u64::from_str_radix(seq, 16).ok()?,
            u64::from_str_radix(to, 16).ok()?,
        ))
    }
}

/// SHA-256 of a request body.
pub fn digest(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

pub fn digest_hex(digest: &[u8; 32]) -> String {
    hex(digest)
}

pub fn parse_digest(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A running MAC over a streamed body, bound to its request's token.
pub struct StreamMac(Hmac<Sha256>);

impl StreamMac {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into_bytes().into()
    }

    /// Whether `mac` is what the bytes so far give.
    pub fn verify(self, mac: &[u8]) -> bool {
        constant_time_eq(&self.finish(), mac)
    }
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

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("any key size")
    }

    /// A version 3 token: the version 2 fields and the [`Binding`].
    pub fn token_v3(
        &self,
        method: &str,
        path: &str,
        node: &str,
        time_ms: i64,
        proto: &str,
        binding: &Binding<'_>,
    ) -> String {
        let mut mac = self.mac();
        let fields = [
            "cairn internode token v3",
            method,
            path,
            node,
            &time_ms.to_string(),
            proto,
            binding.to_node,
            &binding.run_header(),
            &hex(&binding.digest),
        ];
        for part in fields {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        hex(&mac.finalize().into_bytes())
    }

    /// Checks a version 3 token and the request's timestamp. The caller
    /// checks the runs and the sequence number ([`ReplayGuard`]) after.
    #[allow(clippy::too_many_arguments)] // one per field the token covers
    pub fn verify_v3(
        &self,
        method: &str,
        path: &str,
        node: &str,
        time: &str,
        proto: &str,
        binding: &Binding<'_>,
        token: &str,
    ) -> Result<(), AuthError> {
        check(time, token, |sender_ms| {
            self.token_v3(method, path, node, sender_ms, proto, binding)
        })
        .and_then(|sender_ms| self.check_time(sender_ms))
    }

    /// The MAC a streamed body ends with: keyed by the cluster key, over the
    /// request's token and then every byte the body carried before it.
    pub fn stream_mac(&self, token: &str) -> StreamMac {
        let mut mac = self.mac();
        mac.update(b"cairn internode stream v3\n");
        mac.update(token.as_bytes());
        mac.update(b"\n");
        StreamMac(mac)
    }

    fn check_time(&self, sender_ms: i64) -> Result<(), AuthError> {
        let receiver_ms = self.now_ms();
        if (receiver_ms - sender_ms).abs() > MAX_CLOCK_SKEW_MS {
            return Err(AuthError::ClockSkew {
                sender_ms,
                receiver_ms,
            });
        }
        Ok(())
    }

    /// A version 2 token (and the hello's in every version).
    pub fn token(&self, method: &str, path: &str, node: &str, time_ms: i64, proto: &str) -> String {
        let mut mac = self.mac();
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
        check(time, token, |sender_ms| {
            self.token(method, path, node, sender_ms, proto)
        })
        .and_then(|sender_ms| self.check_time(sender_ms))
    }
}

/// Compares `token` with what `expected` computes for the request's time;
/// returns the time.
fn check(time: &str, token: &str, expected: impl FnOnce(i64) -> String) -> Result<i64, AuthError> {
    let sender_ms: i64 = time.parse().map_err(|_| AuthError::Missing)?;
    if !constant_time_eq(expected(sender_ms).as_bytes(), token.as_bytes()) {
        return Err(AuthError::BadToken);
    }
    Ok(sender_ms)
}

/// The sequence numbers each sender's current run has used, so that each
/// is accepted once.
#[derive(Default)]
pub struct ReplayGuard {
    senders: std::sync::Mutex<std::collections::HashMap<String, Window>>,
}

/// One run of a sender: the highest sequence number seen, and which of the
/// [`REPLAY_WINDOW`] below it were seen.
struct Window {
    boot: u64,
    highest: u64,
    seen: Vec<u64>,
}

impl Window {
    fn new(boot: u64) -> Window {
        Window {
            boot,
            highest: 0,
            seen: vec![0; (REPLAY_WINDOW / 64) as usize],
        }
    }

    fn bit(seq: u64) -> (usize, u64) {
        let idx = seq % REPLAY_WINDOW;
        ((idx / 64) as usize, 1 << (idx % 64))
    }

    fn accept(&mut self, seq: u64) -> bool {
        if seq == 0 || seq + REPLAY_WINDOW <= self.highest {
            return false;
        }
        if seq > self.highest {
            // Forget the bits of the numbers the window moves past.
            let forget = (seq - self.highest).min(REPLAY_WINDOW);
            for old in self.highest + 1..=self.highest + forget {
                let (word, mask) = Window::bit(old);
                self.seen[word] &= !mask;
            }
            self.highest = seq;
        }
        let (word, mask) = Window::bit(seq);
        if self.seen[word] & mask != 0 {
            return false;
        }
        self.seen[word] |= mask;
        true
    }
}

impl ReplayGuard {
    /// `node` said hello from its run `boot`: requests of that run are
    /// accepted from now on (and those of its earlier runs no longer).
    pub fn hello(&self, node: &str, boot: u64) {
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        if senders.get(node).is_none_or(|w| w.boot != boot) {
            senders.insert(node.to_owned(), Window::new(boot));
        }
    }

    /// Accepts sequence number `seq` of `node`'s run `boot` once.
    pub fn check(&self, node: &str, boot: u64, seq: u64) -> Result<(), AuthError> {
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        match senders.get_mut(node) {
            Some(window) if window.boot == boot => {
                if window.accept(seq) {
                    Ok(())
                } else {
                    Err(AuthError::Replayed)
                }
            }
            _ => Err(AuthError::Stale),
        }
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

    fn binding(digest: [u8; 32], seq: u64) -> Binding<'static> {
        Binding {
            to_node: "n2",
            to_boot: 7,
            from_boot: 9,
            seq,
            digest,
        }
    }

    #[test]
    fn v3_tokens_cover_the_body_the_receiver_and_both_runs() {
        let key = ClusterKey::new("secret", 0);
        let now = key.now_ms();
        let t = now.to_string();
        let body = digest(b"arguments");
        let sent = binding(body, 5);
        let token = key.token_v3("POST", "/p", "n1", now, "3", &sent);
        assert_eq!(
            key.verify_v3("POST", "/p", "n1", &t, "3", &sent, &token),
            Ok(())
        );
        let changed = [
            Binding {
                digest: digest(b"other arguments"),
                ..sent
            },
            Binding {
                to_node: "n3",
                ..sent
            },
            Binding { to_boot: 8, ..sent },
            Binding {
                from_boot: 10,
                ..sent
            },
            Binding { seq: 6, ..sent },
        ];
        for other in changed {
            assert_eq!(
                key.verify_v3("POST", "/p", "n1", &t, "3", &other, &token),
                Err(AuthError::BadToken),
                "{other:?}"
            );
        }
        assert_eq!(Binding::parse_run(&sent.run_header()), Some((9, 5, 7)));
        assert_eq!(parse_digest(&digest_hex(&body)), Some(body));
    }

    #[test]
    fn each_sequence_number_of_a_run_is_accepted_once() {
        let guard = ReplayGuard::default();
        assert_eq!(guard.check("n1", 1, 1), Err(AuthError::Stale));
        guard.hello("n1", 1);
        assert_eq!(guard.check("n1", 1, 2), Ok(()));
        assert_eq!(guard.check("n1", 1, 1), Ok(()), "out of order is fine");
        assert_eq!(guard.check("n1", 1, 2), Err(AuthError::Replayed));
        assert_eq!(guard.check("n1", 1, 0), Err(AuthError::Replayed));
        assert_eq!(guard.check("n1", 1, 10_000), Ok(()));
        assert_eq!(
            guard.check("n1", 1, 10_000 - REPLAY_WINDOW),
            Err(AuthError::Replayed),
            "older than the window"
        );
        assert_eq!(guard.check("n1", 1, 10_000 - 5), Ok(()));
        // The same hello again keeps the window; a new run starts afresh
        // and the old run's requests are stale.
        guard.hello("n1", 1);
        assert_eq!(guard.check("n1", 1, 10_000), Err(AuthError::Replayed));
        guard.hello("n1", 2);
        assert_eq!(guard.check("n1", 1, 20_000), Err(AuthError::Stale));
        assert_eq!(guard.check("n1", 2, 1), Ok(()));
    }

    #[test]
    fn a_stream_mac_covers_the_token_and_every_byte() {
        let key = ClusterKey::new("secret", 0);
        let mac_of = |token: &str, parts: &[&[u8]]| {
            let mut mac = key.stream_mac(token);
            for part in parts {
                mac.update(part);
            }
            mac.finish()
        };
        let sent = mac_of("t1", &[b"ab", b"cd"]);
        assert_eq!(sent, mac_of("t1", &[b"abc", b"d"]));
        assert_ne!(sent, mac_of("t2", &[b"abcd"]));
        assert_ne!(sent, mac_of("t1", &[b"abce"]));
        let mut check = key.stream_mac("t1");
        check.update(b"abcd");
        assert!(check.verify(&sent));
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
