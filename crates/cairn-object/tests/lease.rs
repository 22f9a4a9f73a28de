//! Issue 4, item 6: a writer whose cluster lock lost its lease abandons its
//! commit, and the object it was writing never becomes visible.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cairn_object::{
    BodyStream, BootstrapOptions, Error, HeldLock, Locker, ObjectConfig, PoolSpec, Preconditions,
    PutOptions,
};
use futures::future::BoxFuture;

/// A locker whose grants are lost while `lost` is set, as when the lease
/// could not be refreshed on a quorum of nodes.
struct LeaseLocker {
    lost: Arc<AtomicBool>,
    granted: AtomicUsize,
}

struct Grant(Arc<AtomicBool>);

impl HeldLock for Grant {
    fn is_lost(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Locker for LeaseLocker {
    fn lock<'a>(
        &'a self,
        _pool: usize,
        _set: usize,
        _resource: &'a str,
        _write: bool,
        _timeout: Duration,
    ) -> BoxFuture<'a, cairn_object::Result<Box<dyn HeldLock>>> {
        self.granted.fetch_add(1, Ordering::Relaxed);
        let grant: Box<dyn HeldLock> = Box::new(Grant(self.lost.clone()));
        Box::pin(async move { Ok(grant) })
    }
}

fn body(data: &'static [u8]) -> BodyStream {
    Box::pin(futures::stream::iter([Ok(Bytes::from_static(data))]))
}

#[tokio::test]
async fn issue_4_a_writer_that_lost_its_lease_does_not_commit() {
    let dir = std::env::temp_dir().join(format!("cairn-lease-{}", uuid::Uuid::new_v4().simple()));
    let drives = common::four_local_drives(&dir);
    let lost = Arc::new(AtomicBool::new(false));
    let locker = Arc::new(LeaseLocker {
        lost: lost.clone(),
        granted: AtomicUsize::new(0),
    });
    let options = BootstrapOptions {
        locker: Some(locker.clone()),
        ..BootstrapOptions::default()
    };
    let pools = vec![PoolSpec {
        drives,
        set_size: 4,
    }];
    let layer = cairn_object::bootstrap(pools, ObjectConfig::default(), options)
        .await
        .unwrap()
        .layer;
    layer.make_bucket("lease").await.unwrap();
    layer
        .put_object("lease", "kept", body(b"first"), PutOptions::default())
        .await
        .unwrap();

    lost.store(true, Ordering::Relaxed);
    let err = layer
        .put_object("lease", "kept", body(b"second"), PutOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LockLost { .. }), "{err:?}");
    assert!(err.is_unavailable(), "answered as 503");
    let err = layer
        .put_object("lease", "new", body(b"never"), PutOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LockLost { .. }), "{err:?}");
    // A metadata-only change (tagging, a copy onto itself) abandons too.
    let update: cairn_object::MetaUpdate = Box::new(|_| {
        Ok(std::collections::BTreeMap::from([(
            "x-amz-meta-changed".to_owned(),
            "yes".to_owned(),
        )]))
    });
    let err = layer
        .update_object_meta("lease", "kept", update, true, &Preconditions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LockLost { .. }), "{err:?}");

    lost.store(false, Ordering::Relaxed);
    let kept = layer.head_object("lease", "kept").await.unwrap();
    assert_eq!(kept.size, 5, "the first version stays");
    assert!(
        !kept.meta.contains_key("x-amz-meta-changed"),
        "its metadata too: {:?}",
        kept.meta
    );
    assert!(matches!(
        layer.head_object("lease", "new").await,
        Err(Error::ObjectNotFound)
    ));
    assert!(
        locker.granted.load(Ordering::Relaxed) >= 6,
        "every write went through the cluster locker"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
