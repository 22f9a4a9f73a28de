/// Errors of the erasure codec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "invalid erasure layout: {data_shards} data + {parity_shards} parity shards ({reason})"
    )]
    InvalidLayout {
        data_shards: usize,
        parity_shards: usize,
        reason: &'static str,
    },
    #[error("block of {len} bytes exceeds the erasure block size of {block_size} bytes")]
    BlockTooLarge { len: usize, block_size: usize },
    #[error("expected {expected} shards, got {got}")]
    ShardCount { expected: usize, got: usize },
    #[error("shard {shard_idx} has {got} bytes, expected {expected}")]
    ShardSize {
        shard_idx: usize,
        expected: usize,
        got: usize,
    },
    #[error("too few shards to decode: {available} of {needed} needed")]
    TooFewShards { available: usize, needed: usize },
    #[error("reed-solomon: {0}")]
    Codec(String),
}
