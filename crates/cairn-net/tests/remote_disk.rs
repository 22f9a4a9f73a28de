//! A `RemoteDisk` against a real `InternodeServer` over HTTP/2 on
//! 127.0.0.1, serving a real `LocalDisk`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use cairn_disk::{Disk, Format, LocalDisk, LocalDiskOptions};
use cairn_net::VersionRange;
use cairn_net::{ClusterKey, Faults, InternodeServer, LocalNode, LockTable, Peer, RemoteDisk};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use uuid::Uuid;

const SECRET: &str = "remote-disk-test-secret";

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn local_node(node: String) -> Arc<LocalNode> {
    Arc::new(LocalNode::new(
        node,
        ClusterKey::new(SECRET, 0),
        VersionRange::THIS_RELEASE,
        Arc::new(Faults::none()),
        std::time::Duration::from_secs(6),
    ))
}

/// Serves a formatted drive from an internode server on a loopback port;
/// returns the drive's remote handle and the format it has.
async fn serve_one_drive(dir: &TempDir) -> (RemoteDisk, Format) {
    let path = dir.0.join("d1");
    let disk = LocalDisk::new(path.clone(), LocalDiskOptions::default(), true).unwrap();
    let format = Format::new_pool(Uuid::new_v4(), 1, 1).for_slot(0, 0);
    disk.write_format(&format).await.unwrap();
    disk.connect(&format).await.unwrap();
    let path = path.display().to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = listener.local_addr().unwrap().to_string();
    let drives: HashMap<String, Arc<dyn Disk>> =
        HashMap::from([(path.clone(), Arc::new(disk) as Arc<dyn Disk>)]);
    let server = Arc::new(InternodeServer::new(
        local_node(node.clone()),
        drives,
        Arc::new(LockTable::new()),
    ));
    tokio::spawn(async move {
        // Bounded: the test ends long before this many connections.
        for _ in 0..64 {
            let Ok((stream, peer)) = listener.accept().await else {
                return;
            };
            let server = server.clone();
            let service = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(server.handle(req, peer).await.map(Full::new)) }
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    let peer = Peer::new(node, local_node("127.0.0.1:1".to_owned()));
    let remote = RemoteDisk::new(peer, path);
    assert_eq!(remote.read_format().await.unwrap(), Some(format.clone()));
    remote.connect(&format).await.unwrap();
    assert!(remote.is_online());
    (remote, format)
}

/// An aborted shard write resets its own HTTP/2 stream. That must not count
/// as the peer failing: it did, in a 4-node rolling restart, take every
/// drive of a live node offline for the coordinator of the aborted PUT
/// (issue 4), so that listings left out keys and writes reached only
/// write quorum.
#[tokio::test]
async fn issue_4_an_aborted_shard_write_leaves_the_peer_online() {
    let dir =
        TempDir(std::env::temp_dir().join(format!("cairn-net-test-{}", Uuid::new_v4().simple())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let (remote, _) = serve_one_drive(&dir).await;

    for round in 0..3 {
        let mut writer = remote.create_shard(Uuid::new_v4(), 1).await.unwrap();
        writer
            .write(Bytes::from(vec![7u8; 64 << 10]))
            .await
            .unwrap();
        writer.abort().await;
        assert!(remote.is_online(), "round {round}: the drive went offline");
        // At once, not after a reconnect delay.
        remote
            .space()
            .await
            .unwrap_or_else(|e| panic!("round {round}: the next call failed: {e}"));
        // And a whole shard write still goes through.
        let mut writer = remote.create_shard(Uuid::new_v4(), 1).await.unwrap();
        writer.write(Bytes::from(vec![9u8; 4096])).await.unwrap();
        writer.finish().await.unwrap();
    }
}
