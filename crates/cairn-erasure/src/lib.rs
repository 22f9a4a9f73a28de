//! Erasure coding for Cairn: Reed-Solomon over fixed-size blocks, and the
//! per-block bitrot hashes that frame every shard on disk.
//!
//! The main types are [`Erasure`], which splits one block of an object into
//! `data_shards + parity_shards` framed shards and joins them back, and
//! [`BitrotAlgo`], the hash that protects each framed shard. [`Md5State`]
//! and [`Md5Lanes`] compute PUT bodies' MD5s (their ETags), up to four
//! streams side by side.
//!
//! This crate is pure: it does no I/O and nothing async, so it can be
//! property-tested and fuzzed in isolation. It depends on no other Cairn crate.
//!
//! # Shard framing
//!
//! Every block of `block_len` bytes (at most the erasure block size, 1 MiB by
//! default) becomes one *frame* per drive: `[hash of payload][payload]`, where
//! the payload is `shard_size(block_len)` bytes. A shard file is the
//! concatenation of the frames of all blocks, so the offset of any block is
//! computable from the object size alone (see [`Erasure::frame_offset`]).

mod bitrot;
mod codec;
mod error;
mod md5;

pub use bitrot::{BitrotAlgo, HASH_LEN};
pub use codec::{DEFAULT_BLOCK_SIZE, Erasure, Frame, PLACE_ALIGN};
pub use error::Error;
pub use md5::{MD5_LANES, Md5Lanes, Md5State, Path as Md5Path};
