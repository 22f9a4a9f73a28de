//! The admin API (`/cairn/admin/v1/`, see docs/admin-api.md): requests
//! signed with the root credentials (AWS Signature Version 4), answers in
//! JSON. Healing: `GET heal/status` and `POST heal/start`; background
//! workers of every node: `GET workers`, `POST workers/pause|resume`.

use std::collections::BTreeMap;

use bytes::Bytes;
use cairn_net::calls;
use cairn_object::quorum::{self, Strategy};
use cairn_object::worker::WorkerInfo;
use cairn_object::{JobKind, JobState, ObjectLayer};
use cairn_s3::{Credentials, ResponseBody};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::http::Serving;

pub const PREFIX: &str = "/cairn/admin/v1/";
/// Admin requests carry at most this much body.
const MAX_BODY: usize = 64 << 10;

fn json_response(status: StatusCode, value: &Value) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::from(Bytes::from(value.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<ResponseBody> {
    json_response(status, &json!({ "Code": code, "Message": message }))
}

fn auth_status(code: &str) -> StatusCode {
    match code {
        "AuthorizationHeaderMalformed" | "XAmzContentSHA256Mismatch" => StatusCode::BAD_REQUEST,
        _ => StatusCode::FORBIDDEN,
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Serves one admin request; `serving` is `None` while the node starts.
pub async fn handle(
    req: Request<Incoming>,
    serving: Option<&Serving>,
    root: &Credentials,
) -> Response<ResponseBody> {
    let (parts, body) = req.into_parts();
    let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "IncompleteBody",
                "The admin request body could not be read (at most 64 KiB)",
            );
        }
    };
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    if let Err(err) = cairn_s3::sigv4::verify(
        parts.method.as_str(),
        path,
        query,
        &parts.headers,
        &cairn_s3::sigv4::sha256_hex(&body),
        root,
        now_unix(),
    ) {
        tracing::warn!(path, code = err.code, reason = %err.message, "admin request refused");
        return error(auth_status(err.code), err.code, &err.message);
    }
    let Some(serving) = serving else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The server is starting: it is waiting for its drives and peer nodes.",
        );
    };
    let layer = serving.layer.as_ref();
    let params: BTreeMap<String, String> = serde_urlencoded::from_str(query).unwrap_or_default();
    let route = path.strip_prefix(PREFIX).unwrap_or("");
    match (route, &parts.method) {
        ("workers", &Method::GET) => json_response(StatusCode::OK, &workers(serving).await),
        ("workers/pause", &Method::POST) => pause_worker(serving, &params, true).await,
        ("workers/resume", &Method::POST) => pause_worker(serving, &params, false).await,
        ("workers", _) | ("workers/pause" | "workers/resume", _) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "workers takes GET, workers/pause and workers/resume take POST",
        ),
        ("heal/status", &Method::GET) => match heal_status(layer).await {
            Ok(status) => json_response(StatusCode::OK, &status),
            Err(err) => internal(&err),
        },
        ("heal/start", &Method::POST) => heal_start(layer, &params).await,
        ("heal/status" | "heal/start", _) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "heal/status takes GET, heal/start takes POST",
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            "NotImplemented",
            &format!("There is no admin API call {path:?}; see docs/admin-api.md"),
        ),
    }
}

/// How long an admin call waits for each peer's answer.
const PEER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn worker_json(info: &WorkerInfo) -> Value {
    json!({
        "name": info.name,
        "state": info.state,
        "error": info.error,
        "errors": info.errors,
        "units": info.units,
        "since_ms": info.since_ms,
        "progress": info.progress.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
    })
}

/// Every node's workers: this node's, and each peer's over the internode
/// protocol (a peer that does not answer is listed with the reason).
async fn workers(serving: &Serving) -> Value {
    let mut nodes = vec![json!({
        "node": serving.node,
        "workers": serving.workers.list().iter().map(worker_json).collect::<Vec<_>>(),
    })];
    let asks = serving.peers.iter().map(|peer| async move {
        let answer = tokio::time::timeout(PEER_WAIT, peer.call::<calls::Workers>(None, &())).await;
        Ok::<_, ()>(match answer {
            Ok(Ok(list)) => json!({
                "node": peer.node,
                "workers": list.iter().map(worker_json).collect::<Vec<_>>(),
            }),
            Ok(Err(err)) => json!({"node": peer.node, "error": err.to_string()}),
            Err(_) => {
                json!({"node": peer.node, "error": format!("no answer within {PEER_WAIT:?}")})
            }
        })
    });
    let answers = quorum::call_many(asks, Strategy::all()).await;
    nodes.extend(answers.into_options().into_iter().flatten().flatten());
    json!({ "nodes": nodes })
}

/// Pauses or resumes the worker `name` on every node.
async fn pause_worker(
    serving: &Serving,
    params: &BTreeMap<String, String>,
    paused: bool,
) -> Response<ResponseBody> {
    let Some(name) = params.get("name").filter(|n| !n.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "name is required: the worker to pause or resume",
        );
    };
    let here = serving.workers.pause(name, paused);
    let mut nodes = vec![json!({"node": serving.node, "found": here})];
    let asks = serving.peers.iter().map(|peer| async move {
        let args = cairn_net::proto::args::PauseWorker {
            name: name.clone(),
            paused,
        };
        let answer =
            tokio::time::timeout(PEER_WAIT, peer.call::<calls::PauseWorker>(None, &args)).await;
        Ok::<_, ()>(match answer {
            Ok(Ok(found)) => (found, json!({"node": peer.node, "found": found})),
            Ok(Err(err)) => (false, json!({"node": peer.node, "error": err.to_string()})),
            Err(_) => (
                false,
                json!({"node": peer.node, "error": format!("no answer within {PEER_WAIT:?}")}),
            ),
        })
    });
    let answers = quorum::call_many(asks, Strategy::all()).await;
    let mut found = here;
    for (peer_found, node) in answers.into_options().into_iter().flatten().flatten() {
        found |= peer_found;
        nodes.push(node);
    }
    if !found {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            &format!("no node has a worker named {name:?}; `cairn admin workers` lists them"),
        );
    }
    json_response(
        StatusCode::OK,
        &json!({"name": name, "paused": paused, "nodes": nodes}),
    )
}

fn internal(err: &cairn_object::Error) -> Response<ResponseBody> {
    let (status, code) = match err {
        cairn_object::Error::ReadQuorum { .. }
        | cairn_object::Error::WriteQuorum { .. }
        | cairn_object::Error::LockTimeout { .. } => {
            (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable")
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
    };
    error(status, code, &err.to_string())
}

async fn heal_start(
    layer: &ObjectLayer,
    params: &BTreeMap<String, String>,
) -> Response<ResponseBody> {
    let deep = match params.get("deep").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                &format!("deep must be true or false, not {other:?}"),
            );
        }
    };
    let bucket = params.get("bucket").filter(|b| !b.is_empty());
    let prefix = params.get("prefix").cloned().unwrap_or_default();
    if bucket.is_none() && !prefix.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "A prefix needs a bucket",
        );
    }
    if let Some(bucket) = bucket
        && cairn_object::check_bucket_name(bucket).is_err()
    {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidBucketName",
            &format!("The bucket name {bucket:?} is not valid"),
        );
    }
    match layer
        .start_heal(bucket.map(String::as_str), &prefix, deep)
        .await
    {
        Ok(id) => json_response(
            StatusCode::OK,
            &json!({ "id": id, "bucket": bucket, "prefix": prefix, "deep": deep }),
        ),
        Err(cairn_object::Error::BucketNotFound) => error(
            StatusCode::NOT_FOUND,
            "NoSuchBucket",
            &format!(
                "The bucket {:?} does not exist",
                bucket.map_or("", String::as_str)
            ),
        ),
        Err(err) => internal(&err),
    }
}

fn failures_json(failures: &[cairn_object::Failure]) -> Value {
    failures
        .iter()
        .map(|f| json!({ "bucket": f.bucket, "key": f.key, "reason": f.reason }))
        .collect()
}

fn job_view(job: &JobState) -> Value {
    let (objects_per_sec, bytes_per_sec) = job.rates();
    let mut view = json!({
        "kind": job.kind.name(),
        "pool": job.pool + 1,
        "set": job.set + 1,
        "done": job.done,
        "started_ms": job.started_ms,
        "updated_ms": job.updated_ms,
        "total": job.total,
        "objects": job.objects,
        "bytes": job.bytes,
        "deep": job.deep,
        "healed": job.healed,
        "healed_bytes": job.healed_bytes,
        "failed": job.failed,
        "orphans": job.orphans,
        "objects_per_sec": objects_per_sec,
        "bytes_per_sec": bytes_per_sec,
        "eta_secs": job.eta_secs(),
        "failures": failures_json(&job.failures),
    });
    match &job.kind {
        JobKind::Refill { slot } => {
            view["slot"] = json!(slot + 1);
            view["drive"] = json!(job.drive);
        }
        JobKind::Heal {
            id,
            bucket,
            prefix,
            deep,
        } => {
            view["id"] = json!(id);
            view["bucket"] = json!(bucket);
            view["prefix"] = json!(prefix);
            view["deep_requested"] = json!(deep);
        }
        JobKind::Scan { deep_percent, .. } => {
            view["deep_percent"] = json!(deep_percent);
        }
    }
    view
}

/// Sums an operator heal's per-set jobs.
fn heal_view(id: &str, jobs: &[&JobState]) -> Value {
    let Some(first) = jobs.first() else {
        return json!({ "id": id });
    };
    let all = JobState::sum(first.kind.clone(), jobs);
    let (objects_per_sec, bytes_per_sec) = all.rates();
    let (bucket, prefix, deep) = match &first.kind {
        JobKind::Heal {
            bucket,
            prefix,
            deep,
            ..
        } => (bucket.clone(), prefix.clone(), *deep),
        _ => (None, String::new(), false),
    };
    json!({
        "id": id,
        "bucket": bucket,
        "prefix": prefix,
        "deep": deep,
        "done": all.done,
        "sets": jobs.len(),
        "sets_done": jobs.iter().filter(|j| j.done).count(),
        "started_ms": all.started_ms,
        "updated_ms": all.updated_ms,
        "total": all.total,
        "objects": all.objects,
        "bytes": all.bytes,
        "healed": all.healed,
        "healed_bytes": all.healed_bytes,
        "failed": all.failed,
        "objects_per_sec": objects_per_sec,
        "bytes_per_sec": bytes_per_sec,
        "eta_secs": all.eta_secs(),
    })
}

/// Everything `cairn admin heal status` shows.
async fn heal_status(layer: &ObjectLayer) -> cairn_object::Result<Value> {
    let jobs = layer.heal_jobs().await?;
    let mut sets = Vec::new();
    for health in layer.health() {
        let here: Vec<&JobState> = jobs
            .iter()
            .filter(|j| j.pool == health.pool && j.set == health.set)
            .collect();
        let drives: Vec<Value> = health
            .endpoints
            .iter()
            .enumerate()
            .map(|(slot, (endpoint, online))| {
                let counters = here.iter().filter_map(|j| j.drives.get(slot));
                let (mut healed, mut bytes, mut failed, mut offline) = (0u64, 0u64, 0u64, 0u64);
                for c in counters {
                    healed += c.healed;
                    bytes += c.bytes;
                    failed += c.failed;
                    offline += c.offline;
                }
                let refilling = here
                    .iter()
                    .any(|j| !j.done && j.kind == JobKind::Refill { slot });
                json!({
                    "slot": slot + 1,
                    "endpoint": endpoint,
                    "state": if !online { "offline" } else if refilling { "refilling" } else { "online" },
                    "healed": healed,
                    "bytes_written": bytes,
                    "failed": failed,
                    "offline": offline,
                })
            })
            .collect();
        sets.push(json!({
            "pool": health.pool + 1,
            "set": health.set + 1,
            "data_shards": health.data_shards,
            "parity_shards": health.parity_shards,
            "online": health.online,
            "read_quorum": health.read_quorum,
            "write_quorum": health.write_quorum,
            "drives": drives,
            "jobs": here.iter().map(|j| job_view(j)).collect::<Vec<_>>(),
        }));
    }
    let mut heals: BTreeMap<&str, Vec<&JobState>> = BTreeMap::new();
    for job in &jobs {
        if let JobKind::Heal { id, .. } = &job.kind {
            heals.entry(id).or_default().push(job);
        }
    }
    let queue = layer.heal_queue_stats();
    Ok(json!({
        "time_ms": now_unix() * 1000,
        "sets": sets,
        "heals": heals.iter().map(|(id, jobs)| heal_view(id, jobs)).collect::<Vec<_>>(),
        "queue": {
            "pending": queue.pending,
            "healed": queue.healed,
            "healthy": queue.healthy,
            "failed": queue.failed,
            "overflowed": queue.overflowed,
            "failures": failures_json(&queue.failures),
        },
    }))
}
