//! Cairn's object layer: buckets and objects over pools of erasure sets.
//!
//! The main type is [`ObjectLayer`], built at start-up by [`bootstrap`]
//! from drives in slot order. It places each object on one erasure set (by
//! keyed hash), writes it with Reed-Solomon shards across the set's drives,
//! reads it back by quorum, and lists buckets by merging the drives'
//! ordered metadata scans.
//!
//! The parts, each a folder or a file, from the bottom up (a module uses
//! only modules below it; `tests/layering.rs` keeps it so):
//! * [`error`], `types`, `options`, `util`, [`quorum`] (the one fan-out
//!   helper), [`worker`] (background work);
//! * `set`: one erasure set, its quorum arithmetic, how its drives' answers
//!   resolve into one version, its namespace locks and placement;
//! * `shared`: the state every request shares;
//! * `data`: the data path (PUT, GET, DELETE, multipart, metadata updates,
//!   listing) on one set;
//! * `layer`: [`ObjectLayer`], the API the protocol layer calls;
//! * `system` and `bucket_config`: state that is not object data, stored as
//!   system objects, and the bucket-configuration service;
//! * `maintenance`: healing, the heal queue, heal jobs, the scanner, the
//!   janitor, the drive monitor; and `bootstrap`, which builds it all.
//!
//! Quorum rules (docs/design.md, "Writing and reading an object"): write
//! quorum is `data_shards`, plus one when data equals parity; read quorum
//! is `data_shards`. A version held by fewer drives than read quorum was
//! never acknowledged and is invisible.
//!
//! This crate reaches drives only through `cairn_disk::Disk`, and knows
//! nothing of HTTP or S3: it must not depend on `s3s` or any protocol crate.

mod bootstrap;
mod bucket_config;
mod data;
mod error;
mod layer;
mod maintenance;
mod options;
pub mod quorum;
mod set;
mod shared;
mod system;
mod types;
mod util;
pub mod worker;

pub use bootstrap::{
    BootstrapError, BootstrapOptions, Bootstrapped, DriveState, PoolSpec, bootstrap, parity_for,
};
pub use bucket_config::cache::{BucketConfig, BucketState, ConfigKind, ConfigNotifier};
pub use data::conditions::Preconditions;
pub use data::etag_md5::Md5Stream;
pub use data::get::{GetObject, ObjectStream};
pub use data::list::ReadAheadStats;
pub use data::multipart::{
    CompleteFinalizer, CompleteOptions, CompletePart, ListUploadsOptions, ListUploadsResult,
    MAX_PART_NUMBER, MAX_PART_SIZE, MIN_PART_SIZE, PartInfo, UploadInfo, multipart_etag,
};
pub use data::update::MetaUpdate;
pub use error::{BodyError, Error, Result};
pub use layer::{ObjectLayer, check_bucket_name, check_object_key};
pub use maintenance::heal::{DriveHeal, HealReport, HealResult};
pub use maintenance::heal_queue::{Failure, HealQueue, HealQueueStats, MAX_FAILURES};
pub use maintenance::healer::Healer;
pub use maintenance::janitor::{Janitor, StaleUploads, abort_stale_uploads};
pub use maintenance::jobs::{DriveCounters, HealJobs, JobKind, JobState};
pub use maintenance::monitor::{DriveMonitor, heal_bucket_records, reconnect_drives};
pub use maintenance::refill::queue_formatted_drives;
pub use maintenance::scanner::Scanner;
pub use options::{GetOptions, PutOptions};
pub use set::nslock::{HeldLock, Locker};
pub use types::{
    BodyStream, BucketInfo, ByteRange, Finalizer, ListOptions, ListResult, MAX_OBJECT_SIZE,
    ObjectConfig, ObjectInfo, SYSTEM_BUCKET, SetHealth, default_parity,
};
