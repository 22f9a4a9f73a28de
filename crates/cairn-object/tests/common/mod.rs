//! Set-up shared by this crate's integration tests.

use std::path::Path;
use std::sync::Arc;

use cairn_disk::{Disk, LocalDisk, LocalDiskOptions};

/// Four local drives under `dir` (`d0` to `d3`), as `cairn server DIR{1...4}`
/// has them.
pub fn four_local_drives(dir: &Path) -> Vec<Arc<dyn Disk>> {
    (0..4)
        .map(|i| {
            let disk = LocalDisk::new(dir.join(format!("d{i}")), LocalDiskOptions::default(), true)
                .unwrap();
            Arc::new(disk) as Arc<dyn Disk>
        })
        .collect()
}
