//! State that is not object data (docs/design.md section 6), stored as objects in
//! a reserved system bucket through the object layer, so that it is erasure
//! coded, quorum-written and healed like data: bucket configurations
//! (`bucket_config.rs`) and heal jobs' states (`jobs.rs`).

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::layer::ObjectLayer;
use crate::options::GetOptions;
use crate::options::PutOptions;
use crate::types::SYSTEM_BUCKET;

/// Largest configuration document accepted (S3 caps these well below).
pub(crate) const MAX_CONFIG_BYTES: usize = 1 << 20;

impl ObjectLayer {
    pub(crate) async fn put_system(&self, key: &str, data: Bytes) -> Result<()> {
        let set = self.set_for(SYSTEM_BUCKET, key, true).await?;
        for attempt in 0..2 {
            let chunk = data.clone();
            let body = futures::stream::once(async move { Ok(chunk) }).boxed();
            let opts = PutOptions {
                size: Some(data.len() as u64),
                meta: BTreeMap::new(),
                ..Default::default()
            };
            match set
                .put_object(&self.shared, SYSTEM_BUCKET, key, body, opts)
                .await
            {
                // The first configuration ever written creates the system bucket.
                Err(Error::BucketNotFound) if attempt == 0 => {
                    match self.make_bucket_unchecked(SYSTEM_BUCKET).await {
                        Ok(()) | Err(Error::BucketExists) => {}
                        Err(err) => return Err(err),
                    }
                }
                other => return other.map(|_| ()),
            }
        }
        Err(Error::BucketNotFound)
    }

    pub(crate) async fn get_system(&self, key: &str) -> Result<Option<Bytes>> {
        let set = self.set_for(SYSTEM_BUCKET, key, false).await?;
        let got = match set
            .get_object(&self.shared, SYSTEM_BUCKET, key, &GetOptions::default())
            .await
        {
            Ok(got) => got,
            Err(Error::ObjectNotFound | Error::BucketNotFound) => return Ok(None),
            Err(err) => return Err(err),
        };
        let mut out = BytesMut::new();
        let mut body = got.body;
        while let Some(chunk) = body.next().await {
            let chunk: Bytes = chunk?;
            out.extend_from_slice(&chunk);
            if out.len() > MAX_CONFIG_BYTES {
                return Err(Error::Internal(format!("system object {key} is too large")));
            }
        }
        Ok(Some(out.freeze()))
    }

    pub(crate) async fn delete_system(&self, key: &str) -> Result<()> {
        let set = self.set_for(SYSTEM_BUCKET, key, false).await?;
        match set.delete_object(&self.shared, SYSTEM_BUCKET, key).await {
            Ok(()) | Err(Error::BucketNotFound) => Ok(()),
            Err(err) => Err(err),
        }
    }
}
