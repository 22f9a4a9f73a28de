//! Synthetic Cairn metadata: keys `<bucket>/<object key>`, ~300-byte records.
//!
//! Everything is derived deterministically from an index (keys) or from
//! (key, version) (values), so a verifier can recompute what must be stored.

/// splitmix64 finaliser: a cheap, good 64-bit mixer.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Tiny PRNG (splitmix64 stream).
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(mix64(seed ^ 0x5DEE_CE66_D1CE_5EED))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform-ish in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// Four buckets, each name exactly 10 bytes.
pub const BUCKETS: [&str; 4] = ["photos0001", "backups002", "logs000003", "media00004"];

pub const VALUE_LEN: usize = 300;

/// Base of the index space used for keys created during write benchmarks,
/// far above the bulk-loaded indices.
pub const NEW_KEY_BASE: u64 = 1_000_000_000;

/// Key for object index `i`: `<bucket>/<yyyy>/<mm>/d<ddd>/img_<i:09><pad>.jpg`.
/// The object-key part is 30..=80 bytes. The bucket and directory are
/// derived from a hash of `i`, so loading indices in order inserts keys in a
/// random key order (as a real workload would).
pub fn object_key(i: u64) -> Vec<u8> {
    let h = mix64(i ^ 0xC0FF_EE00_1234_5678);
    let bucket = BUCKETS[(h % 4) as usize];
    let year = 2015 + (h >> 8) % 10;
    let month = 1 + (h >> 16) % 12;
    let dir = (h >> 24) % 1000;
    let digits = i.max(1).ilog10() as usize + 1;
    // object-key part = 21 fixed bytes + max(9, digits) + pad <= 80
    let pad_len = (((h >> 40) % 51) as usize).min(80 - 21 - digits.max(9)); // 0..=50
    let mut r = Rng::new(h);
    let mut pad = String::with_capacity(pad_len);
    for _ in 0..pad_len {
        pad.push((b'a' + r.below(26) as u8) as char);
    }
    format!("{bucket}/{year}/{month:02}/d{dir:03}/img_{i:09}{pad}.jpg").into_bytes()
}

fn fnv1a(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// The ~300-byte "object version record" for (key, version):
/// 8 bytes version (LE) | 8 bytes key hash | 284 pseudo-random bytes.
/// Random bytes are incompressible, which is the pessimistic case for
/// fjall's LZ4 block compression.
pub fn make_value(key: &[u8], version: u64) -> Vec<u8> {
    let kh = fnv1a(key);
    let mut v = Vec::with_capacity(VALUE_LEN);
    v.extend_from_slice(&version.to_le_bytes());
    v.extend_from_slice(&kh.to_le_bytes());
    let mut r = Rng::new(kh ^ mix64(version));
    while v.len() < VALUE_LEN {
        let x = r.next_u64().to_le_bytes();
        let take = (VALUE_LEN - v.len()).min(8);
        v.extend_from_slice(&x[..take]);
    }
    v
}

/// Version stored in a record (no integrity check).
pub fn value_version(v: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    if v.len() >= 8 {
        b.copy_from_slice(&v[..8]);
    }
    u64::from_le_bytes(b)
}

/// Returns the record's version if the record is exactly what
/// `make_value(key, version)` produces, else None (corruption / mismatch).
pub fn check_value(key: &[u8], v: &[u8]) -> Option<u64> {
    if v.len() != VALUE_LEN {
        return None;
    }
    let ver = value_version(v);
    if make_value(key, ver) == v {
        Some(ver)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn keys_are_unique_and_sized() {
        let mut seen = std::collections::HashSet::new();
        for i in (0..200_000u64).chain(NEW_KEY_BASE..NEW_KEY_BASE + 1000) {
            let k = object_key(i);
            let s = std::str::from_utf8(&k).unwrap();
            let (b, o) = s.split_once('/').unwrap();
            assert_eq!(b.len(), 10);
            assert!((20..=80).contains(&o.len()), "{s}");
            assert!(seen.insert(k));
        }
    }
    #[test]
    fn values_roundtrip() {
        let k = object_key(7);
        let v = make_value(&k, 42);
        assert_eq!(v.len(), VALUE_LEN);
        assert_eq!(check_value(&k, &v), Some(42));
        let mut bad = v.clone();
        bad[100] ^= 1;
        assert_eq!(check_value(&k, &bad), None);
    }
}
