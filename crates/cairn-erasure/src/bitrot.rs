/// Length in bytes of every bitrot hash, whatever the algorithm.
pub const HASH_LEN: usize = 16;

/// The hash that protects each framed shard against silent corruption.
///
/// The algorithm id is stored with every object version, so objects written
/// with one algorithm stay readable after the default changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BitrotAlgo {
    /// XXH3 with 128-bit output: over 10 GiB/s per core, non-cryptographic,
    /// which is what bitrot detection needs (the threat is the disk, not an
    /// adversary who can write to it).
    Xxh3_128 = 1,
}

impl BitrotAlgo {
    /// The algorithm new objects are written with.
    pub const DEFAULT: BitrotAlgo = BitrotAlgo::Xxh3_128;

    /// The stable numeric id stored on disk.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// Decodes a stored id; `None` for ids this build does not know.
    pub fn from_id(id: u8) -> Option<BitrotAlgo> {
        match id {
            1 => Some(BitrotAlgo::Xxh3_128),
            _ => None,
        }
    }

    /// Hashes `payload`.
    pub fn hash(self, payload: &[u8]) -> [u8; HASH_LEN] {
        match self {
            BitrotAlgo::Xxh3_128 => xxhash_rust::xxh3::xxh3_128(payload).to_le_bytes(),
        }
    }

    /// Writes the hash of `frame[HASH_LEN..]` into `frame[..HASH_LEN]`.
    ///
    /// # Panics
    /// If `frame` is shorter than [`HASH_LEN`].
    pub fn seal(self, frame: &mut [u8]) {
        let hash = self.hash(&frame[HASH_LEN..]);
        frame[..HASH_LEN].copy_from_slice(&hash);
    }

    /// Returns the payload of `frame` if its stored hash matches, else `None`.
    pub fn open(self, frame: &[u8]) -> Option<&[u8]> {
        if frame.len() < HASH_LEN {
            return None;
        }
        let (hash, payload) = frame.split_at(HASH_LEN);
        (self.hash(payload) == hash).then_some(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_round_trips_and_detects_flips() {
        let mut frame = vec![0u8; HASH_LEN + 100];
        for (i, b) in frame[HASH_LEN..].iter_mut().enumerate() {
            *b = i as u8;
        }
        BitrotAlgo::DEFAULT.seal(&mut frame);
        assert_eq!(BitrotAlgo::DEFAULT.open(&frame), Some(&frame[HASH_LEN..]));
        for idx in [0, HASH_LEN - 1, HASH_LEN, frame.len() - 1] {
            let mut bad = frame.clone();
            bad[idx] ^= 0x40;
            assert_eq!(
                BitrotAlgo::DEFAULT.open(&bad),
                None,
                "flip at {idx} undetected"
            );
        }
        assert_eq!(BitrotAlgo::DEFAULT.open(&frame[..3]), None);
    }

    #[test]
    fn ids_are_stable() {
        assert_eq!(BitrotAlgo::Xxh3_128.id(), 1);
        assert_eq!(BitrotAlgo::from_id(1), Some(BitrotAlgo::Xxh3_128));
        assert_eq!(BitrotAlgo::from_id(0), None);
    }
}
