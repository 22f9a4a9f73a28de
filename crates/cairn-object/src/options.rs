//! What a request asks of a write or a read besides its body: the options
//! that carry preconditions.

use std::collections::BTreeMap;

use crate::data::conditions::Preconditions;
use crate::types::{ByteRange, Finalizer};

/// Options of a PUT besides its body.
#[derive(Default)]
pub struct PutOptions {
    /// The declared body length, when the request gave one. Small declared
    /// bodies are stored inline; a body of another length is refused.
    pub size: Option<u64>,
    /// Content-MD5 of the body, decoded.
    pub content_md5: Option<[u8; 16]>,
    /// Headers and user metadata to store.
    pub meta: BTreeMap<String, String>,
    pub finalizer: Option<Finalizer>,
    /// Checked against the current object under its lock, just before the commit.
    pub preconditions: Preconditions,
}

/// Which bytes of an object a GET asks for, and on what conditions.
#[derive(Debug, Clone, Default)]
pub struct GetOptions {
    pub range: Option<ByteRange>,
    /// Serve this part only (S3's `partNumber`).
    pub part_number: Option<u32>,
    pub preconditions: Preconditions,
}
