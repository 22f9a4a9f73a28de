//! Cairn's client side, reached through the one `cairn` binary:
//! [`admin`] (`cairn admin`: the admin API from the command line) and
//! [`bench`] (`cairn bench`: a load generator for any S3 endpoint), and the
//! small SigV4 client both use ([`s3_client`]: one kept-alive HTTP/1.1
//! connection, requests signed with `cairn_s3::sigv4`).
//!
//! Nothing here runs in the server: this crate depends on no server crate
//! but `cairn-s3`, for the signing it shares with the admin API.

pub mod admin;
pub mod bench;
pub mod s3_client;
