//! The internode protocol (issue 26): a request captured on the wire and
//! sent again, to the same node or another, is refused; so is one whose
//! body was changed, and a version 2 token from a node that speaks 3.
//!
//! The test speaks HTTP/2 to real nodes as a node of the cluster would,
//! with the cluster's secret, and sends the very same request twice.

mod common;

use bytes::Bytes;
use cairn_net::auth::{self, Binding, ClusterKey};
use cairn_net::calls::{self, Call};
use cairn_net::proto::{self, Hello, args};
use common::cluster::TestCluster;
use common::{ACCESS_KEY, SECRET_KEY};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The name this test's requests claim as their sender.
const SENDER: &str = "127.0.0.1:1";
/// This test's run, as a node's boot id.
const BOOT: u64 = 0x5eed;

fn key() -> ClusterKey {
    ClusterKey::new(&format!("{ACCESS_KEY}\n{SECRET_KEY}"), 0)
}

/// One HTTP/2 connection to a node.
struct Conn {
    send: http2::SendRequest<Full<Bytes>>,
    node: String,
}

impl Conn {
    async fn open(node: &str) -> Conn {
        let stream = tokio::net::TcpStream::connect(node).await.unwrap();
        let (send, connection) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        Conn {
            send,
            node: node.to_owned(),
        }
    }

    /// Sends `req` (rebuilt from its parts, so that it can be sent again
    /// unchanged); returns the status, the refusal header and the body.
    async fn send(&mut self, req: &Captured) -> (StatusCode, String, Bytes) {
        let mut builder = Request::builder()
            .method(req.method.clone())
            .uri(format!("http://{}{}", self.node, req.path));
        for (name, value) in &req.headers {
            builder = builder.header(name, value);
        }
        let resp = self
            .send
            .send_request(builder.body(Full::new(req.body.clone())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let refusal = resp
            .headers()
            .get(proto::HEADER_REFUSAL)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, refusal, body)
    }

    /// Says hello as the test's node run; returns the node's run.
    async fn hello(&mut self) -> u64 {
        let path = format!("{}hello", proto::PREFIX);
        let time = key().now_ms();
        let range = "2-3";
        let hello = Captured {
            method: http::Method::GET,
            path: path.clone(),
            headers: vec![
                (auth::HEADER_NODE.to_owned(), SENDER.to_owned()),
                (auth::HEADER_TIME.to_owned(), time.to_string()),
                (auth::HEADER_PROTO.to_owned(), range.to_owned()),
                (
                    auth::HEADER_TOKEN.to_owned(),
                    key().token("GET", &path, SENDER, time, range),
                ),
                (auth::HEADER_RUN.to_owned(), format!("{BOOT:x}")),
            ],
            body: Bytes::new(),
        };
        let (status, _, body) = self.send(&hello).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let hello: Hello = proto::decode(&body).unwrap();
        hello.boot.expect("a version 3 node names its run")
    }
}

/// A request as it crossed the wire.
#[derive(Clone)]
struct Captured {
    method: http::Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Bytes,
}

/// Drive call `C` to `to_node` (whose run is `to_boot`) with sequence
/// number `seq`, signed as version 3 over `body`.
fn v3_request<C: Call>(
    to_node: &str,
    to_boot: u64,
    seq: u64,
    drive: &str,
    body: Bytes,
) -> Captured {
    let path = format!("{}{}", proto::PREFIX, C::PATH);
    let time = key().now_ms();
    let binding = Binding {
        to_node,
        to_boot,
        from_boot: BOOT,
        seq,
        digest: auth::digest(&body),
    };
    let token = key().token_v3("POST", &path, SENDER, time, "3", &binding);
    Captured {
        method: http::Method::POST,
        path,
        headers: vec![
            (auth::HEADER_NODE.to_owned(), SENDER.to_owned()),
            (auth::HEADER_TIME.to_owned(), time.to_string()),
            (auth::HEADER_PROTO.to_owned(), "3".to_owned()),
            (auth::HEADER_RUN.to_owned(), binding.run_header()),
            (
                auth::HEADER_DIGEST.to_owned(),
                auth::digest_hex(&binding.digest),
            ),
            (auth::HEADER_TOKEN.to_owned(), token),
            (proto::HEADER_DISK.to_owned(), proto::encode_path(drive)),
        ],
        body,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_26_a_captured_internode_request_cannot_be_replayed() {
    let cluster = tokio::task::block_in_place(|| TestCluster::start(2, 2, &[]));
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let drive = a.drives[0].display().to_string();
    let mut to_a = Conn::open(&a.addr).await;
    let mut to_b = Conn::open(&b.addr).await;
    let a_boot = to_a.hello().await;
    to_b.hello().await;

    let args = proto::encode(&args::Bucket {
        bucket: "no-such-bucket".to_owned(),
    });
    let captured = v3_request::<calls::GetBucket>(&a.addr, a_boot, 1, &drive, args.clone());
    let (status, refusal, body) = to_a.send(&captured).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{refusal}: {}",
        String::from_utf8_lossy(&body)
    );
    let answer: calls::DiskAnswer<cairn_disk::BucketRecord> = proto::decode(&body).unwrap();
    assert!(answer.is_err(), "the bucket does not exist");

    // The same bytes again, on the same connection and on a new one.
    let (status, refusal, _) = to_a.send(&captured).await;
    assert_eq!(
        (status, refusal.as_str()),
        (StatusCode::FORBIDDEN, "replayed")
    );
    let mut again = Conn::open(&a.addr).await;
    let (status, refusal, _) = again.send(&captured).await;
    assert_eq!(
        (status, refusal.as_str()),
        (StatusCode::FORBIDDEN, "replayed")
    );

    // The same bytes to another node.
    let (status, refusal, _) = to_b.send(&captured).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        refusal == "bad-token" || refusal == "stale",
        "refused as {refusal:?}"
    );

    // A fresh sequence number with another body under the captured token.
    let mut changed = v3_request::<calls::GetBucket>(&a.addr, a_boot, 2, &drive, args.clone());
    changed.body = proto::encode(&args::Bucket {
        bucket: "other-bucket".to_owned(),
    });
    let (status, refusal, _) = to_a.send(&changed).await;
    assert_eq!(
        (status, refusal.as_str()),
        (StatusCode::FORBIDDEN, "bad-token")
    );

    // A request meant for an earlier run of the node.
    let stale = v3_request::<calls::GetBucket>(&a.addr, a_boot ^ 1, 3, &drive, args.clone());
    let (status, refusal, _) = to_a.send(&stale).await;
    assert_eq!((status, refusal.as_str()), (StatusCode::FORBIDDEN, "stale"));

    // A version 2 token from a node whose hello said it speaks 3: the
    // replay check cannot be dodged by downgrading.
    let path = format!("{}{}", proto::PREFIX, calls::GetBucket::PATH);
    let time = key().now_ms();
    let downgraded = Captured {
        method: http::Method::POST,
        path: path.clone(),
        headers: vec![
            (auth::HEADER_NODE.to_owned(), SENDER.to_owned()),
            (auth::HEADER_TIME.to_owned(), time.to_string()),
            (auth::HEADER_PROTO.to_owned(), "2".to_owned()),
            (
                auth::HEADER_TOKEN.to_owned(),
                key().token("POST", &path, SENDER, time, "2"),
            ),
            (proto::HEADER_DISK.to_owned(), proto::encode_path(&drive)),
        ],
        body: args.clone(),
    };
    let (status, refusal, _) = to_a.send(&downgraded).await;
    assert_eq!(
        (status, refusal.as_str()),
        (StatusCode::UPGRADE_REQUIRED, "version")
    );

    // And the next honest request still goes through.
    let next = v3_request::<calls::GetBucket>(&a.addr, a_boot, 4, &drive, args);
    let (status, refusal, _) = to_a.send(&next).await;
    assert_eq!(status, StatusCode::OK, "{refusal}");
    let log = cluster.log_text(0);
    assert!(
        log.contains("replayed internode request"),
        "the replay is logged: {log}"
    );
}
