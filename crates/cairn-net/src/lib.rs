//! Cairn's internode protocol (docs/design.md section 5): how the nodes of a
//! cluster reach each other's drives and lock tables.
//!
//! * [`RemoteDisk`] implements `cairn_disk::Disk` for a drive of another
//!   node, so the object layer never asks where a drive lives.
//! * [`DistLocker`] implements `cairn_object::Locker`: namespace locks on a
//!   quorum of a set's nodes, with leases.
//! * [`InternodeServer`] answers both on the main listener, under
//!   `/cairn/internode/`, after checking the caller's token and protocol
//!   version.
//! * [`Peer`] is the client side: one HTTP/2 connection per peer.
//!
//! This crate knows nothing of S3.

pub mod auth;
pub mod calls;
mod client;
mod dlock;
mod locktable;
pub mod proto;
mod remote_disk;
mod server;

pub use auth::ClusterKey;
pub use cairn_disk::Faults;
pub use client::{
    CONNECTION_WINDOW, CallError, LocalNode, MAX_FRAME_SIZE, Peer, Prepared, STREAM_WINDOW,
};
pub use dlock::{DistLocker, LockNode};
pub use locktable::LockTable;
pub use proto::VersionRange;
pub use remote_disk::RemoteDisk;
pub use server::{InternodeServer, RejoinHook};
