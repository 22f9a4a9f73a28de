//! What the scanner counted per bucket, kept for `ObjectLayer::bucket_usage`.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Per bucket: (objects, bytes).
type BucketUsage = BTreeMap<String, (u64, u64)>;

/// Objects and bytes per bucket, from the last pass over each set.
#[derive(Debug, Default)]
pub struct Usage {
    /// Per set (pool, set).
    pub(crate) sets: Mutex<BTreeMap<(usize, usize), BucketUsage>>,
}

impl Usage {
    /// Per bucket: objects and bytes, summed over the sets' last passes.
    pub fn buckets(&self) -> BTreeMap<String, (u64, u64)> {
        let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for per_set in self.sets.lock().expect("usage").values() {
            for (bucket, (objects, bytes)) in per_set {
                let entry = out.entry(bucket.clone()).or_default();
                entry.0 += objects;
                entry.1 += bytes;
            }
        }
        out
    }
}
