//! Set-up shared by this crate's integration tests.

use std::path::Path;
use std::sync::Arc;

use cairn_disk::{Disk, LocalDisk, LocalDiskOptions};
use cairn_object::{BootstrapOptions, ObjectConfig, ObjectLayer, PoolSpec};

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

/// An object layer over one set of `drives`, at the default settings.
#[allow(dead_code)] // not every test binary builds its own drives
pub async fn one_set(drives: Vec<Arc<dyn Disk>>) -> Arc<ObjectLayer> {
    let set_size = drives.len();
    let pools = vec![PoolSpec { drives, set_size }];
    cairn_object::bootstrap(pools, ObjectConfig::default(), BootstrapOptions::default())
        .await
        .unwrap()
        .layer
}
