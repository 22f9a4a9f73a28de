//! The data path: what a request does to objects on one erasure set. Each
//! operation is an `impl ErasureSet` method taking the node's
//! [`crate::shared::Shared`] state; [`crate::layer::ObjectLayer`] picks the
//! set and calls it.
//!
//! [`write`] holds the machinery every write shares (cutting a body into
//! blocks, encoding, streaming shards to the drives, committing a version
//! under its lock, rolling back); [`put`], [`multipart`] and [`update`]
//! use it. [`get`] reads, [`delete`] deletes, [`list`] lists.

pub(crate) mod conditions;
pub(crate) mod delete;
pub(crate) mod etag_md5;
pub(crate) mod get;
pub(crate) mod list;
pub(crate) mod multipart;
pub(crate) mod put;
pub(crate) mod update;
pub(crate) mod write;
