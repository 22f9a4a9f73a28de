//! Where an object lives: which erasure set of a pool, and in which order its
//! shards go over the set's drives (docs/design.md section 2).
//!
//! Both come from one SipHash-1-3 of `bucket/key`, keyed by the deployment
//! id: the low 64 bits pick the set, the high 64 bits the rotation. This is
//! part of the on-disk format (`cairn_disk::DISTRIBUTION`): changing it would
//! lose every object, so the test vectors below pin it.

use std::hash::Hasher;

use siphasher::sip128::{Hasher128, SipHasher13};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub(crate) struct Placement {
    key: [u8; 16],
}

impl Placement {
    pub(crate) fn new(deployment_id: Uuid) -> Placement {
        Placement {
            key: *deployment_id.as_bytes(),
        }
    }

    fn hash(&self, bucket: &str, key: &str) -> (u64, u64) {
        let mut hasher = SipHasher13::new_with_key(&self.key);
        hasher.write(bucket.as_bytes());
        hasher.write(b"/");
        hasher.write(key.as_bytes());
        let hash = hasher.finish128();
        (hash.h1, hash.h2)
    }

    /// The set of `set_count` that holds `bucket/key`.
    pub(crate) fn set_index(&self, bucket: &str, key: &str, set_count: usize) -> usize {
        (self.hash(bucket, key).0 % set_count as u64) as usize
    }

    /// Shard `s` of `bucket/key` goes to drive `(rotation + s) % set_size`.
    pub(crate) fn rotation(&self, bucket: &str, key: &str, set_size: usize) -> usize {
        (self.hash(bucket, key).1 % set_size as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_is_pinned() {
        let placement = Placement::new(Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef));
        let got: Vec<(usize, usize)> = ["a", "photos/2024/img.jpg", ""]
            .iter()
            .map(|key| {
                (
                    placement.set_index("bucket", key, 16),
                    placement.rotation("bucket", key, 16),
                )
            })
            .collect();
        assert_eq!(got, PINNED);
    }

    // Recorded from the first implementation; a change here is a format change.
    const PINNED: [(usize, usize); 3] = [(10, 7), (9, 15), (12, 10)];

    #[test]
    fn spreads_keys_over_sets() {
        let placement = Placement::new(Uuid::new_v4());
        let mut counts = [0usize; 8];
        for i in 0..8000 {
            counts[placement.set_index("b", &format!("key-{i}"), 8)] += 1;
        }
        for count in counts {
            assert!((800..1200).contains(&count), "{counts:?}");
        }
    }
}
