//! Cairn's object layer: buckets and objects over pools of erasure sets.
//!
//! The main type is [`ObjectLayer`], built at start-up by [`bootstrap`]
//! from drives in slot order. It places each object on one erasure set
//! ([`placement`](crate) by keyed hash), writes it with Reed-Solomon shards
//! across the set's drives, reads it back by quorum, and lists buckets by
//! merging the drives' ordered metadata scans.
//!
//! Quorum rules (DESIGN.md section 4): write quorum is `data_shards`, plus
//! one when data equals parity; read quorum is `data_shards`. A version held
//! by fewer drives than read quorum was never acknowledged and is invisible.
//!
//! This crate reaches drives only through `cairn_disk::Disk`, and knows
//! nothing of HTTP or S3: it must not depend on `s3s` or any protocol crate.

mod bootstrap;
mod bucket_config;
mod conditions;
mod delete;
mod error;
mod etag_md5;
mod get;
mod heal;
mod healq;
mod janitor;
mod jobs;
mod layer;
mod list;
mod monitor;
mod multipart;
mod nslock;
mod placement;
mod put;
pub mod quorum;
mod refill;
mod scanner;
mod set;
mod system;
mod types;
mod update;
pub mod worker;

pub use bootstrap::{
    BootstrapError, BootstrapOptions, Bootstrapped, DriveState, PoolSpec, bootstrap, parity_for,
};
pub use bucket_config::{BucketConfig, BucketState, ConfigKind, ConfigNotifier};
pub use conditions::Preconditions;
pub use error::{BodyError, Error, Result};
pub use etag_md5::Md5Stream;
pub use get::{GetObject, GetOptions, ObjectStream};
pub use heal::{DriveHeal, HealReport, HealResult};
pub use healq::{HealQueue, HealQueueStats, Healer};
pub use janitor::{Janitor, StaleUploads, abort_stale_uploads};
pub use jobs::{DriveCounters, Failure, HealJobs, JobKind, JobState, MAX_FAILURES};
pub use layer::{ObjectLayer, check_bucket_name, check_object_key};
pub use list::ReadAheadStats;
pub use monitor::{DriveMonitor, heal_bucket_records, reconnect_drives};
pub use multipart::{
    CompleteFinalizer, CompleteOptions, CompletePart, ListUploadsOptions, ListUploadsResult,
    MAX_PART_NUMBER, MAX_PART_SIZE, MIN_PART_SIZE, PartInfo, UploadInfo, multipart_etag,
};
pub use nslock::{HeldLock, Locker};
pub use refill::queue_formatted_drives;
pub use scanner::Scanner;
pub use system::SYSTEM_BUCKET;
pub use types::{
    BodyStream, BucketInfo, ByteRange, Finalizer, ListOptions, ListResult, MAX_OBJECT_SIZE,
    ObjectConfig, ObjectInfo, PutOptions, SetHealth, default_parity,
};
pub use update::MetaUpdate;
