//! `.cairn.sys/format.json`: who a drive is and which deployment and pool
//! layout it belongs to (docs/design.md section 3).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Version of the `format.json` layout written by this build.
pub const FORMAT_VERSION: u32 = 1;

/// The placement scheme of objects over sets and drives: SipHash-1-3 keyed by
/// the deployment id over `bucket/key`, low 64 bits choose the set, high 64
/// bits the shard rotation. Part of the on-disk format: objects are found by
/// it, so it never changes without a new name.
pub const DISTRIBUTION: &str = "siphash13-rot-v1";

/// The contents of a drive's `format.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Format {
    pub version: u32,
    /// Always `"cairn"`: tells our drives from other software's.
    pub format: String,
    pub deployment_id: Uuid,
    /// This drive's id; it must appear exactly once in `sets`.
    pub this: Uuid,
    /// The id of every drive of every erasure set of this drive's pool, in slot order.
    pub sets: Vec<Vec<Uuid>>,
    pub distribution: String,
}

impl Format {
    /// A format for a new pool layout, with fresh ids for every drive.
    pub fn new_pool(deployment_id: Uuid, set_count: usize, set_size: usize) -> Format {
        let sets = (0..set_count)
            .map(|_| (0..set_size).map(|_| Uuid::new_v4()).collect())
            .collect();
        Format {
            version: FORMAT_VERSION,
            format: "cairn".to_owned(),
            deployment_id,
            this: Uuid::nil(),
            sets,
            distribution: DISTRIBUTION.to_owned(),
        }
    }

    /// This format as written to the drive in slot (`set_idx`, `disk_idx`).
    pub fn for_slot(&self, set_idx: usize, disk_idx: usize) -> Format {
        Format {
            this: self.sets[set_idx][disk_idx],
            ..self.clone()
        }
    }

    /// The slot (set index, drive index) of drive `id` in this layout.
    pub fn slot_of(&self, id: Uuid) -> Option<(usize, usize)> {
        self.sets.iter().enumerate().find_map(|(set_idx, set)| {
            set.iter()
                .position(|d| *d == id)
                .map(|disk_idx| (set_idx, disk_idx))
        })
    }

    /// True when `other` describes the same deployment and pool layout,
    /// whichever drive it was read from.
    pub fn same_layout(&self, other: &Format) -> bool {
        self.deployment_id == other.deployment_id
            && self.sets == other.sets
            && self.distribution == other.distribution
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("format serializes");
        out.push(b'\n');
        out
    }

    pub fn from_json(bytes: &[u8]) -> Result<Format, String> {
        let format: Format = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if format.format != "cairn" {
            return Err(format!("not a Cairn drive (format {:?})", format.format));
        }
        if format.version != FORMAT_VERSION {
            return Err(format!(
                "format version {} is not supported by this build (it reads version {FORMAT_VERSION})",
                format.version
            ));
        }
        if format.slot_of(format.this).is_none() {
            return Err(format!(
                "drive id {} is not part of its own layout",
                format.this
            ));
        }
        Ok(format)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_slots() {
        let pool = Format::new_pool(Uuid::new_v4(), 2, 4);
        let drive = pool.for_slot(1, 2);
        let back = Format::from_json(&drive.to_json()).unwrap();
        assert_eq!(back, drive);
        assert_eq!(back.slot_of(back.this), Some((1, 2)));
        assert!(back.same_layout(&pool.for_slot(0, 0)));
        assert!(!back.same_layout(&Format::new_pool(pool.deployment_id, 2, 4)));
    }

    #[test]
    fn rejects_foreign_and_inconsistent_formats() {
        let mut drive = Format::new_pool(Uuid::new_v4(), 1, 2).for_slot(0, 0);
        drive.this = Uuid::new_v4();
        assert!(
            Format::from_json(&drive.to_json())
                .unwrap_err()
                .contains("not part of its own layout")
        );
        let minio = br#"{"version":"1","format":"xl","id":"x"}"#;
        assert!(Format::from_json(minio).is_err());
    }
}
