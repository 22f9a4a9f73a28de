//! `cairn admin`: the admin API from the command line (docs/admin-api.md).
//! Requests are signed with the root credentials from the same settings
//! the server reads (`CAIRN_ROOT_USER`, `CAIRN_ROOT_PASSWORD`, their
//! `_FILE` and `MINIO_` variants).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use cairn_s3::Credentials;
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::s3_client::{Conn, PayloadMode, Target, parse_endpoint};

#[derive(Args)]
pub struct AdminArgs {
    /// The server to talk to.
    #[arg(
        long,
        env = "CAIRN_ENDPOINT",
        default_value = "http://127.0.0.1:9000",
        global = true
    )]
    endpoint: String,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Healing: what is being healed, and healing on demand.
    #[command(subcommand)]
    Heal(HealCommand),
    /// Every node's background workers: their state, errors and progress.
    Workers {
        /// Print the admin API's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        command: Option<WorkersCommand>,
    },
}

#[derive(Subcommand)]
enum WorkersCommand {
    /// Pause a worker on every node (after the unit it is doing).
    Pause { name: String },
    /// Resume a paused worker on every node.
    Resume { name: String },
}

#[derive(Subcommand)]
enum HealCommand {
    /// Per erasure set and drive: what refills, heals and scanner passes
    /// checked, healed and failed, their rate and ETA, and failed objects.
    Status {
        /// Print the admin API's JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Heal every object of a bucket (or under a prefix, or of every
    /// bucket) now, showing its progress until it ends.
    Start {
        /// `BUCKET` or `BUCKET/PREFIX`; every bucket when left out.
        target: Option<String>,
        /// Verify every shard against its hashes, not only that it exists.
        #[arg(long)]
        deep: bool,
        /// Return once the heal started, without following it.
        #[arg(long)]
        no_wait: bool,
    },
}

struct Client {
    target: Arc<Target>,
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    serde_urlencoded::to_string([("", value)])
        .map(|s| s.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

impl Client {
    /// Sends one signed request; returns the JSON answer, or the server's
    /// error as the message.
    async fn call(&self, method: &str, path: &str, query: &str) -> Result<Value> {
        let method: http::Method = method.parse().context("HTTP method")?;
        let (status, body) = Conn::new(self.target.clone())
            .call_raw(method, path, query)
            .await
            .map_err(|e| anyhow!("admin request to {}: {}", self.target.authority, e.message))?;
        let value: Value = serde_json::from_str(&body).with_context(|| {
            format!("the server answered {status} with something other than JSON: {body}")
        })?;
        if !status.is_success() {
            bail!(
                "{} ({}): {}",
                value["Code"].as_str().unwrap_or("error"),
                status.as_u16(),
                value["Message"].as_str().unwrap_or("")
            );
        }
        Ok(value)
    }
}

pub async fn run(args: AdminArgs, credentials: Credentials) -> Result<i32> {
    let client = Client {
        target: Arc::new(Target {
            authority: parse_endpoint(&args.endpoint, true)?,
            credentials,
            region: "us-east-1".to_owned(),
            payload: PayloadMode::Signed,
            content_md5: false,
            checksum: None,
            timeout: Duration::from_secs(60),
        }),
    };
    match args.command {
        AdminCommand::Workers { json, command } => {
            let value = match &command {
                None => client.call("GET", "/cairn/admin/v1/workers", "").await?,
                Some(WorkersCommand::Pause { name } | WorkersCommand::Resume { name }) => {
                    let action = match command {
                        Some(WorkersCommand::Pause { .. }) => "pause",
                        _ => "resume",
                    };
                    client
                        .call(
                            "POST",
                            &format!("/cairn/admin/v1/workers/{action}"),
                            &format!("name={}", encode(name)),
                        )
                        .await?
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else if command.is_none() {
                print_workers(&value);
            } else {
                for node in value["nodes"].as_array().into_iter().flatten() {
                    let outcome = match (node["found"].as_bool(), node["error"].as_str()) {
                        (_, Some(err)) => format!("not reached: {err}"),
                        (Some(true), _) => if value["paused"] == true {
                            "paused"
                        } else {
                            "resumed"
                        }
                        .to_owned(),
                        _ => "has no such worker".to_owned(),
                    };
                    println!("{}: {outcome}", node["node"].as_str().unwrap_or("?"));
                }
            }
            Ok(0)
        }
        AdminCommand::Heal(HealCommand::Status { json }) => {
            let status = client
                .call("GET", "/cairn/admin/v1/heal/status", "")
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
            Ok(0)
        }
        AdminCommand::Heal(HealCommand::Start {
            target,
            deep,
            no_wait,
        }) => {
            let mut query = Vec::new();
            if let Some(target) = target.as_deref().filter(|t| !t.is_empty()) {
                let (bucket, prefix) = target.split_once('/').unwrap_or((target, ""));
                query.push(format!("bucket={}", encode(bucket)));
                if !prefix.is_empty() {
                    query.push(format!("prefix={}", encode(prefix)));
                }
            }
            if deep {
                query.push("deep=true".to_owned());
            }
            let started = client
                .call("POST", "/cairn/admin/v1/heal/start", &query.join("&"))
                .await?;
            let id = started["id"]
                .as_str()
                .ok_or_else(|| anyhow!("the server did not name the heal: {started}"))?
                .to_owned();
            println!(
                "heal {id} started: {}{}",
                target.as_deref().unwrap_or("every bucket"),
                if deep { " (deep)" } else { "" }
            );
            if no_wait {
                return Ok(0);
            }
            follow(&client, &id).await
        }
    }
}

/// Draws the heal's progress until it ends; 1 when objects failed.
async fn follow(client: &Client, id: &str) -> Result<i32> {
    let tty = std::io::stdout().is_terminal();
    let mut last_line = Instant::now() - Duration::from_secs(60);
    loop {
        let status = client
            .call("GET", "/cairn/admin/v1/heal/status", "")
            .await?;
        let heal = status["heals"]
            .as_array()
            .and_then(|heals| heals.iter().find(|h| h["id"] == id))
            .cloned()
            .ok_or_else(|| anyhow!("heal {id} is not known to the server"))?;
        let done = heal["done"].as_bool().unwrap_or(false);
        let line = progress_line(&heal);
        if tty {
            print!("\r\x1b[2K{line}");
            let _ = std::io::stdout().flush();
        } else if done || last_line.elapsed() >= Duration::from_secs(2) {
            println!("{line}");
            last_line = Instant::now();
        }
        if done {
            if tty {
                println!();
            }
            return Ok(print_outcome(&status, id));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

pub fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub fn human_duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

/// `[#####.....] 45% 1234/5000 objects, 1.2 GiB, 45/s, 12 MiB/s, ETA 1m24s, 12 healed, 0 failed`
fn progress_line(job: &Value) -> String {
    let objects = u(&job["objects"]);
    let total = job["total"].as_u64();
    let done = job["done"].as_bool().unwrap_or(false);
    let fraction = match total {
        _ if done => 1.0,
        Some(0) => 1.0,
        Some(t) => (objects as f64 / t as f64).min(1.0),
        None => 0.0,
    };
    const WIDTH: usize = 30;
    let filled = (fraction * WIDTH as f64).round() as usize;
    let bar: String = "#".repeat(filled) + &".".repeat(WIDTH - filled);
    let of = total.map_or_else(|| "? (counting)".to_owned(), |t| t.to_string());
    let eta = match job["eta_secs"].as_u64() {
        _ if done => "done".to_owned(),
        Some(secs) => format!("ETA {}", human_duration(secs)),
        None => "ETA -".to_owned(),
    };
    format!(
        "[{bar}] {:3.0}% {objects}/{of} objects, {}, {:.0} obj/s, {}/s, {eta}, {} healed, {} failed",
        fraction * 100.0,
        human_bytes(f(&job["bytes"])),
        f(&job["objects_per_sec"]),
        human_bytes(f(&job["bytes_per_sec"])),
        u(&job["healed"]),
        u(&job["failed"]),
    )
}

fn print_failures(failures: &Value, indent: &str) {
    for failure in failures.as_array().into_iter().flatten() {
        println!(
            "{indent}{}/{}: {}",
            failure["bucket"].as_str().unwrap_or(""),
            failure["key"].as_str().unwrap_or(""),
            failure["reason"].as_str().unwrap_or("")
        );
    }
}

/// The heal's result per set and its failed objects; 1 when any failed.
fn print_outcome(status: &Value, id: &str) -> i32 {
    let mut failed = 0;
    for set in status["sets"].as_array().into_iter().flatten() {
        for job in set["jobs"].as_array().into_iter().flatten() {
            if job["id"] != id {
                continue;
            }
            failed += u(&job["failed"]);
            println!(
                "set {} (pool {}): {} objects checked, {} healed ({} written), {} failed",
                set["set"],
                set["pool"],
                u(&job["objects"]),
                u(&job["healed"]),
                human_bytes(f(&job["healed_bytes"])),
                u(&job["failed"])
            );
            if u(&job["failed"]) > 0 {
                println!("  failed objects:");
                print_failures(&job["failures"], "    ");
            }
        }
    }
    i32::from(failed > 0)
}

fn print_status(status: &Value) {
    for set in status["sets"].as_array().into_iter().flatten() {
        println!(
            "Set {} (pool {}): {} of {} drives online, EC {}+{}, read quorum {}, write quorum {}",
            set["set"],
            set["pool"],
            u(&set["online"]),
            set["drives"].as_array().map_or(0, Vec::len),
            u(&set["data_shards"]),
            u(&set["parity_shards"]),
            u(&set["read_quorum"]),
            u(&set["write_quorum"]),
        );
        println!(
            "  {:<4} {:<40} {:<10} {:>8} {:>11} {:>7} {:>8}",
            "slot", "drive", "state", "healed", "written", "failed", "offline"
        );
        for drive in set["drives"].as_array().into_iter().flatten() {
            println!(
                "  {:<4} {:<40} {:<10} {:>8} {:>11} {:>7} {:>8}",
                u(&drive["slot"]),
                drive["endpoint"].as_str().unwrap_or(""),
                drive["state"].as_str().unwrap_or(""),
                u(&drive["healed"]),
                human_bytes(f(&drive["bytes_written"])),
                u(&drive["failed"]),
                u(&drive["offline"]),
            );
        }
        for job in set["jobs"].as_array().into_iter().flatten() {
            let what = match job["kind"].as_str().unwrap_or("") {
                "refill" => format!("refill of {}", job["drive"].as_str().unwrap_or("")),
                "heal" => format!(
                    "heal {} of {}{}",
                    job["id"].as_str().unwrap_or(""),
                    job["bucket"].as_str().unwrap_or("every bucket"),
                    job["prefix"]
                        .as_str()
                        .filter(|p| !p.is_empty())
                        .map(|p| format!("/{p}"))
                        .unwrap_or_default()
                ),
                "scan" => format!("scanner pass ({} orphans removed)", u(&job["orphans"])),
                other => other.to_owned(),
            };
            let state = if job["done"].as_bool().unwrap_or(false) {
                "done"
            } else {
                "running"
            };
            println!("  {what}: {state}");
            println!("    {}", progress_line(job));
            if u(&job["failed"]) > 0 {
                println!("    failed objects:");
                print_failures(&job["failures"], "      ");
            }
        }
    }
    let queue = &status["queue"];
    println!(
        "Heal queue (this node): {} pending, {} healed, {} found healthy, {} failed, {} left to the scanner when full",
        u(&queue["pending"]),
        u(&queue["healed"]),
        u(&queue["healthy"]),
        u(&queue["failed"]),
        u(&queue["overflowed"]),
    );
    if queue["failures"].as_array().is_some_and(|a| !a.is_empty()) {
        println!("  failing objects:");
        print_failures(&queue["failures"], "    ");
    }
}

/// `cairn admin workers`: one line per worker of each node.
fn print_workers(value: &Value) {
    for node in value["nodes"].as_array().into_iter().flatten() {
        let name = node["node"].as_str().unwrap_or("?");
        if let Some(err) = node["error"].as_str() {
            println!("{name}: not reached: {err}");
            continue;
        }
        println!("{name}:");
        for worker in node["workers"].as_array().into_iter().flatten() {
            let progress: Vec<String> = worker["progress"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let state = match worker["error"].as_str() {
                Some(err) => format!("failed: {err}"),
                None => worker["state"].as_str().unwrap_or("?").to_owned(),
            };
            println!(
                "  {:<15} {:<8} {}",
                worker["name"].as_str().unwrap_or("?"),
                state,
                progress.join(", ")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines() {
        let job = serde_json::json!({
            "objects": 50, "total": 200, "done": false, "bytes": 3u64 << 30,
            "objects_per_sec": 10.0, "bytes_per_sec": 1048576.0, "eta_secs": 15,
            "healed": 4, "failed": 1,
        });
        assert_eq!(
            progress_line(&job),
            "[########......................]  25% 50/200 objects, 3.0 GiB, 10 obj/s, 1.0 MiB/s, ETA 15s, 4 healed, 1 failed"
        );
        assert_eq!(human_duration(3725), "1h02m");
        assert_eq!(human_bytes(1023.0), "1023 B");
    }
}
