//! `cairn`: the Cairn object store server.
//!
//! `main` is the composition root: it reads the command line and the
//! environment, opens the drives, builds the object layer and the S3 API,
//! serves, and shuts down in reverse order on SIGINT or SIGTERM.

mod admin;
mod cluster;
mod config;
mod env_audit;
mod http;
mod topology;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::{Context, Result};
use cairn_disk::{Deadlines, Disk, Faults, FaultyDisk, LocalDisk, LocalDiskOptions, WatchedDisk};
use cairn_object::worker::Workers;
use cairn_object::{BootstrapOptions, DriveState, ObjectConfig, PoolSpec};
use cairn_s3::{S3Handler, S3Settings};
use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::config::CredentialSource;

/// jemalloc rather than the system allocator or mimalloc. A listing page
/// allocates its entries on a drive's thread and frees them on the
/// request's; glibc's arenas made that cross-thread traffic about a seventh
/// of a page's CPU. mimalloc (v2 and v3) kept what mixed-size uploads freed
/// across threads: eight writers of 1 KiB to 5 MiB objects took it past
/// 1 GiB, growing, and it stayed there idle; jemalloc levels off under 200
/// MiB and its background threads return idle memory (docs/benchmarks.md,
/// "Memory under mixed-size uploads").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "Cairn: an S3-compatible, erasure-coded object store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve S3 from one or more drives.
    ///
    /// One drive stores objects as they are; several drives form erasure
    /// sets. `{a...b}` expands like MinIO: `cairn server /mnt/disk{1...4}`.
    Server(ServerArgs),
    /// Administer a running server through its admin API (signed with the
    /// root credentials from CAIRN_ROOT_USER and CAIRN_ROOT_PASSWORD).
    Admin(cairn_client::admin::AdminArgs),
    /// Load any S3 endpoint (loopback unless --allow-remote) and report
    /// throughput, operations per second, latency percentiles and errors
    /// by S3 code; `cairn bench compare A.json B.json` prints the ratios.
    Bench(Box<cairn_client::bench::BenchArgs>),
}

#[derive(Args)]
struct ServerArgs {
    /// Address to listen on for S3, health, admin and internode requests
    /// (`:9000` means every interface; also CAIRN_ADDRESS or MINIO_ADDRESS).
    /// In a cluster, the drives whose URL has this host and port are this
    /// node's.
    #[arg(long, env = "CAIRN_ADDRESS")]
    address: Option<String>,
    /// MinIO's web console address: accepted so MinIO's command lines work
    /// unchanged; Cairn has no console yet, and says so at start.
    #[arg(long, value_name = "ADDRESS")]
    console_address: Option<String>,
    /// MinIO's TLS certificate directory: Cairn does not serve TLS yet, so
    /// it refuses to start rather than serve plain HTTP.
    #[arg(long, short = 'S', value_name = "DIR")]
    certs_dir: Option<String>,
    /// MinIO's FTP and SFTP servers: not available, so refused.
    #[arg(long, value_name = "SETTING")]
    ftp: Vec<String>,
    #[arg(long, value_name = "SETTING")]
    sftp: Vec<String>,
    /// MinIO's output flags: accepted and ignored, with a warning.
    #[arg(long)]
    quiet: bool,
    #[arg(long)]
    json: bool,
    #[arg(long)]
    anonymous: bool,
    /// Drive directories, or `http://host:port/path` URLs for a cluster
    /// (every node gets the same list), with `{a...b}` ellipses. Without
    /// any, CAIRN_VOLUMES or MINIO_VOLUMES (and the flags in CAIRN_OPTS or
    /// MINIO_OPTS), as MinIO's systemd unit passes them.
    #[arg(value_name = "DRIVE")]
    drives: Vec<String>,
}

/// The server's command line, completed from `*_VOLUMES` and `*_OPTS` when
/// it names no drives.
fn server_command_line(args: ServerArgs) -> Result<ServerArgs> {
    if !args.drives.is_empty() {
        return Ok(args);
    }
    let Some(volumes) = config::lookup("VOLUMES")? else {
        anyhow::bail!(
            "no drives: give drive paths (cairn server /mnt/disk{{1...4}}), or set CAIRN_VOLUMES or MINIO_VOLUMES"
        );
    };
    let mut argv: Vec<String> = std::env::args().collect();
    if let Some(opts) = config::lookup("OPTS")? {
        argv.extend(opts.value.split_whitespace().map(str::to_owned));
    }
    argv.extend(volumes.value.split_whitespace().map(str::to_owned));
    let cli = Cli::try_parse_from(&argv)
        .with_context(|| format!("reading the command line with {}", volumes.source))?;
    match cli.command {
        Command::Server(args) if !args.drives.is_empty() => Ok(args),
        _ => anyhow::bail!("{} names no drives", volumes.source),
    }
}

/// Refuses what the server cannot honour, warns of what it ignores: MinIO
/// flags and every `CAIRN_*`/`MINIO_*` variable it does not read.
fn check_settings(args: &ServerArgs) -> Result<()> {
    let mut refused = Vec::new();
    if let Some(dir) = &args.certs_dir {
        refused.push(format!(
            "--certs-dir {dir}: TLS is not available yet: serve through a TLS-terminating proxy and drop the flag"
        ));
    }
    for (flag, values) in [("--ftp", &args.ftp), ("--sftp", &args.sftp)] {
        if !values.is_empty() {
            refused.push(format!(
                "{flag}: Cairn has no FTP or SFTP server; drop the flag"
            ));
        }
    }
    if let Some(console) = &args.console_address {
        tracing::info!(%console, "--console-address: Cairn has no web console yet; the flag is ignored");
    }
    for (flag, set) in [
        ("--quiet", args.quiet),
        ("--json", args.json),
        ("--anonymous", args.anonymous),
    ] {
        if set {
            tracing::warn!("{flag}: a MinIO flag Cairn does not implement; it is ignored");
        }
    }
    let names = config::env_names();
    for finding in env_audit::audit(names.iter().map(String::as_str)) {
        match finding {
            env_audit::Finding::Refuse { var, reason } => refused.push(format!("{var}: {reason}")),
            env_audit::Finding::Warn { var, reason } => tracing::warn!("{var}: {reason}"),
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "settings Cairn does not implement, which concern security or data:\n  {}",
        refused.join("\n  ")
    )
}

fn main() -> ExitCode {
    let env_file = match config::load_env_file() {
        Ok(path) => path,
        Err(err) => {
            eprintln!("cairn: {err:#}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse();
    init_tracing();
    if let Some(path) = env_file {
        tracing::info!(%path, "settings read from the env file where the environment does not set them");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cairn: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Server(args) => runtime.block_on(run_server(args)),
        Command::Bench(args) => {
            let run = async {
                let (root, _) = config::root_credentials()?;
                cairn_client::bench::run(*args, root).await
            };
            return match runtime.block_on(run) {
                Ok(code) => ExitCode::from(code as u8),
                Err(err) => {
                    eprintln!("cairn bench: {err:#}");
                    ExitCode::from(2)
                }
            };
        }
        Command::Admin(args) => {
            let run = async {
                let (root, _) = config::root_credentials()?;
                cairn_client::admin::run(args, root).await
            };
            return match runtime.block_on(run) {
                Ok(code) => ExitCode::from(code as u8),
                Err(err) => {
                    eprintln!("cairn admin: {err:#}");
                    ExitCode::from(2)
                }
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cairn: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing() {
    let filter = std::env::var("CAIRN_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info,s3s=off,hyper=warn".to_owned());
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// `:9000` listens on every interface, as in MinIO.
fn listen_address(address: &str) -> String {
    match address.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => address.to_owned(),
    }
}

async fn run_server(args: ServerArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let args = server_command_line(args)?;
    check_settings(&args)?;
    let address = match &args.address {
        Some(address) => address.clone(),
        None => config::lookup("ADDRESS")?.map_or_else(|| ":9000".to_owned(), |s| s.value),
    };
    let (root, credential_source) = config::root_credentials()?;
    let env = config::env_settings()?;
    let open_files = raise_open_file_limit();
    let max_connections = env
        .max_connections
        .unwrap_or_else(|| default_max_connections(open_files));
    let listen = http::ListenSettings {
        grace: env.shutdown_timeout,
        idle_timeout: env.idle_timeout,
    };

    let pool_args = topology::pools_from_args(&args.drives).map_err(anyhow::Error::msg)?;
    let mut pools_endpoints = Vec::with_capacity(pool_args.len());
    for drives in &pool_args {
        let endpoints = drives
            .iter()
            .map(|d| topology::Endpoint::parse(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::msg)?;
        pools_endpoints.push(topology::interleave(endpoints));
    }
    let nodes = topology::nodes_of(&pools_endpoints);
    let deadlines = Deadlines {
        call: env.drive_max_timeout,
        ..Deadlines::default()
    };
    let faults = Arc::new(Faults::from_env());
    if faults.enabled() {
        tracing::warn!(
            "{}: partitions and drive faults are injected from it; for tests only",
            cairn_disk::faults::ENV
        );
    }
    let mut cluster = if nodes.is_empty() {
        None
    } else {
        Some(cluster::Cluster::new(
            &address,
            nodes,
            &root,
            &env,
            deadlines,
            faults.clone(),
        )?)
    };

    let mut pools = Vec::with_capacity(pools_endpoints.len());
    let mut set_sizes = Vec::with_capacity(pools_endpoints.len());
    let mut local_drives: HashMap<String, Arc<dyn Disk>> = HashMap::new();
    // The node's metadata memory budget is shared by its local drives.
    let is_local = |endpoint: &topology::Endpoint| match (&cluster, &endpoint.node) {
        (Some(cluster), Some(node)) => cluster.is_local(node),
        _ => true,
    };
    let local_count = pools_endpoints
        .iter()
        .flatten()
        .filter(|e| is_local(e))
        .count();
    let drive_options = LocalDiskOptions::node_share(env.meta_memory_mb << 20, local_count);
    for (pool_idx, endpoints) in pools_endpoints.iter().enumerate() {
        let node_count = cluster.as_ref().map_or(1, |c| c.nodes.len());
        let set_size =
            topology::set_size_for_nodes(endpoints.len(), node_count, env.set_drive_count)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("pool {}", pool_idx + 1))?;
        let mut disks: Vec<Arc<dyn Disk>> = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let disk: Arc<dyn Disk> = match (&cluster, &endpoint.node) {
                (Some(cluster), Some(node)) if !is_local(endpoint) => {
                    cluster.remote_disk(node, &endpoint.path)
                }
                _ => {
                    refuse_minio_drive(&endpoint.path)?;
                    let disk = LocalDisk::new(&endpoint.path, drive_options.clone(), true)
                        .with_context(|| format!("drive {}", endpoint.path))?;
                    let mut disk: Arc<dyn Disk> = Arc::new(disk);
                    if faults.enabled() {
                        disk = Arc::new(FaultyDisk::new(disk, &endpoint.path, faults.clone()));
                    }
                    // The internode server shares it: a peer's calls see
                    // the drive stalled when this node's calls did.
                    let disk: Arc<dyn Disk> = Arc::new(WatchedDisk::new(disk, deadlines));
                    local_drives.insert(endpoint.path.clone(), disk.clone());
                    disk
                }
            };
            disks.push(disk);
        }
        if let Some(cluster) = &cluster {
            cluster.warn_uneven_sets(pool_idx, endpoints, set_size, env.parity);
        }
        set_sizes.push(set_size);
        pools.push(PoolSpec {
            drives: disks,
            set_size,
        });
    }
    if let Some(cluster) = &mut cluster {
        cluster.build_locker(&pools_endpoints, &set_sizes);
    }
    // The heal queue's journal lives on this node's first drive.
    let heal_queue_dir = pools_endpoints
        .iter()
        .flatten()
        .find(|e| local_drives.contains_key(&e.path))
        .map(|e| {
            std::path::Path::new(&e.path)
                .join(".cairn.sys")
                .join("heal")
        });
    let object_config = ObjectConfig {
        heal_queue_dir,
        heal_queue_max: env.heal_queue_max,
        heal_duty: env.heal_duty,
        heal_concurrency: env.heal_concurrency,
        write_buffer: env.write_buffer_mb << 20,
        scanner_interval: env.scanner_interval,
        scanner_deep_percent: env.scanner_deep_percent,
        orphan_grace: env.orphan_grace,
        parity: env.parity,
        stale_upload_expiry: env.stale_uploads_expiry,
        janitor_interval: env.stale_uploads_cleanup_interval,
        monitor_interval: env.drive_check_interval,
        deadlines,
        ..ObjectConfig::default()
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let app = Arc::new(http::App {
        serving: std::sync::OnceLock::new(),
        internode: cluster
            .as_ref()
            .map(|c| Arc::new(c.server(local_drives.clone()))),
        limiter: Arc::new(Semaphore::new(env.requests_max)),
        deadline: env.requests_deadline,
        request_ids: AtomicU64::new(rand_seed()),
        root: root.clone(),
        connections: http::Connections::new(max_connections),
    });

    // A cluster node listens before it starts: its peers read its drives'
    // formats while the cluster forms.
    let bind = listen_address(&address);
    let mut listener = None;
    let mut server = None;
    if cluster.is_some() {
        let bound = TcpListener::bind(&bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        let local: SocketAddr = bound.local_addr()?;
        server = Some((
            local,
            tokio::spawn(http::serve(app.clone(), bound, shutdown_rx.clone(), listen)),
        ));
    }

    let booted = match &cluster {
        None => cairn_object::bootstrap(pools, object_config, BootstrapOptions::default()).await?,
        Some(cluster) => {
            let options = BootstrapOptions {
                locker: Some(Arc::new(cluster.locker.clone())),
                cluster: true,
                may_create: cluster.is_first_node(),
            };
            let mut waited = false;
            let mut last_log: Option<(std::time::Instant, String)> = None;
            let mut shutdown = shutdown_rx.clone();
            let booted = loop {
                let attempt = cairn_object::bootstrap(
                    pools
                        .iter()
                        .map(|p| PoolSpec {
                            drives: p.drives.clone(),
                            set_size: p.set_size,
                        })
                        .collect(),
                    object_config.clone(),
                    options.clone(),
                )
                .await;
                match attempt {
                    Ok(booted) => break booted,
                    Err(err) if err.retry => {
                        let message = format!("{}; {}", err.message, cluster.peer_report());
                        if last_log.as_ref().is_none_or(|(at, m)| {
                            at.elapsed() >= Duration::from_secs(5) || *m != message
                        }) {
                            tracing::info!("waiting for the cluster: {message}");
                            last_log = Some((std::time::Instant::now(), message));
                        }
                        waited = true;
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                            res = wait_for_signal() => { res?; let _ = shutdown_tx.send(true); anyhow::bail!("stopped while waiting for the cluster"); }
                            _ = shutdown.changed() => {}
                        }
                    }
                    Err(err) => return Err(err.into()),
                }
            };
            if waited {
                tracing::info!("cluster formed: serving");
            }
            booted
        }
    };
    let layer = booted.layer.clone();
    if !booted.fresh {
        cairn_object::heal_bucket_records(&layer).await;
        cairn_object::queue_formatted_drives(&layer, &booted).await;
    }

    if server.is_none() {
        let bound = TcpListener::bind(&bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        listener = Some(bound);
    }
    let local: SocketAddr = match (&server, &listener) {
        (Some((local, _)), _) => *local,
        (None, Some(bound)) => bound.local_addr()?,
        (None, None) => unreachable!("a listener is bound"),
    };

    if let (Some(cluster), Some(internode)) = (&cluster, &app.internode) {
        internode.serve_layer(layer.clone());
        layer.set_config_notifier(cluster.notifier());
        internode.on_rejoin(cluster.rejoin_hook(layer.clone()));
        cluster.announce().await;
    }

    report_startup(
        &local,
        &root.access_key,
        &credential_source,
        &booted,
        &layer,
        cluster.as_ref(),
    );
    let workers = Workers::new(shutdown_rx.clone());
    workers.spawn(cairn_object::DriveMonitor::new(layer.clone()));
    workers.spawn(cairn_object::Healer::new(layer.clone()));
    workers.spawn(cairn_object::HealJobs::new(layer.clone()));
    workers.spawn(cairn_object::Scanner::new(layer.clone()));
    workers.spawn(cairn_object::Janitor::new(layer.clone()));
    workers.spawn(cairn_object::StaleUploads::new(layer.clone()));
    if let Some(cluster) = &cluster {
        workers.spawn(cluster.locker.refresher());
    }
    if let Some(internode) = &app.internode {
        internode.serve_workers(workers.clone());
    }
    let s3 = S3Handler::new(
        layer.clone(),
        &S3Settings {
            region: env.region,
            root,
            domains: env.domains,
            post_max_bytes: env.post_max_bytes,
            body_timeout: env.body_timeout,
        },
    )
    .map_err(anyhow::Error::msg)?;
    if app
        .serving
        .set(http::Serving {
            s3,
            layer: layer.clone(),
            workers: workers.clone(),
            node: cluster
                .as_ref()
                .map_or_else(|| local.to_string(), |c| c.this.clone()),
            peers: cluster.as_ref().map(|c| c.peers()).unwrap_or_default(),
            local_drives: local_drives
                .values()
                .map(|d| d.endpoint().to_owned())
                .collect(),
        })
        .is_err()
    {
        anyhow::bail!("the server was started twice");
    }
    let server = match (server, listener) {
        (Some((_, task)), _) => task,
        (None, Some(bound)) => tokio::spawn(http::serve(app.clone(), bound, shutdown_rx, listen)),
        (None, None) => unreachable!("a listener is bound"),
    };
    println!("Started in {:.2} s.", started.elapsed().as_secs_f64());

    wait_for_signal().await?;
    tracing::info!("shutting down: no new connections; finishing requests in flight");
    let _ = shutdown_tx.send(true);
    server.await.context("server task")?;
    workers.join().await;
    tracing::info!("stopped");
    Ok(())
}

/// Stops the start on a drive that holds a MinIO deployment: Cairn does not
/// read MinIO's format, and formatting the drive beside it would hide the
/// data from both.
fn refuse_minio_drive(path: &str) -> Result<()> {
    let format = std::path::Path::new(path)
        .join(".minio.sys")
        .join("format.json");
    if format.exists() {
        anyhow::bail!(
            "drive {path} holds a MinIO deployment ({} found). Cairn does not read MinIO's on-disk format and will not format the drive beside it. \
             Move the data over S3 instead: start Cairn on empty drives and copy each bucket from the running MinIO (rclone sync minio:BUCKET cairn:BUCKET, or mc mirror), then reuse these drives",
            format.display()
        );
    }
    Ok(())
}

/// Below this open-file limit the server warns: every client connection,
/// drive file and metadata segment takes a descriptor.
const LOW_OPEN_FILE_LIMIT: u64 = 4096;

/// Raises the open-file limit to its hard limit, as MinIO does, and returns
/// the limit in force; warns when it is low.
fn raise_open_file_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(err) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(%err, "cannot raise the open-file limit to its hard limit");
        }
    }
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    if now < LOW_OPEN_FILE_LIMIT {
        tracing::warn!(
            limit = now,
            "the open-file limit is low: connections will be refused once it is reached; raise it (ulimit -n, LimitNOFILE= in systemd) to at least {LOW_OPEN_FILE_LIMIT}"
        );
    }
    now
}

/// Client connections allowed when `CAIRN_MAX_CONNECTIONS` is not set: half
/// the open-file limit (the rest is for drives and peers), at most 65,536.
fn default_max_connections(open_files: u64) -> usize {
    (open_files / 2).clamp(64, 65_536) as usize
}

/// Request ids differ between restarts.
fn rand_seed() -> u64 {
    let id = uuid::Uuid::new_v4();
    u64::from_le_bytes(id.as_bytes()[..8].try_into().expect("8 bytes"))
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        res = tokio::signal::ctrl_c() => res.context("waiting for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}

fn report_startup(
    local: &SocketAddr,
    root_user: &str,
    source: &CredentialSource,
    booted: &cairn_object::Bootstrapped,
    layer: &cairn_object::ObjectLayer,
    cluster: Option<&cluster::Cluster>,
) {
    let shown = if local.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), local.port())
    } else {
        *local
    };
    println!("Cairn {}", env!("CARGO_PKG_VERSION"));
    println!("S3 API:      http://{shown} (listening on {local})");
    match source {
        CredentialSource::Environment { user, password } => {
            println!("Credentials: root user {root_user:?}, from {user} and {password}");
        }
        CredentialSource::Default => {
            println!(
                "Credentials: root user {:?} with the DEFAULT password {:?}",
                config::DEFAULT_ROOT_USER,
                config::DEFAULT_ROOT_PASSWORD
            );
            tracing::warn!(
                "no root credentials set: using the development default; set CAIRN_ROOT_USER and CAIRN_ROOT_PASSWORD before storing anything of value"
            );
        }
    }
    if let Some(cluster) = cluster {
        println!("{}", cluster.describe());
    }
    let health = layer.health();
    let pools = booted.drives.len();
    for pool_idx in 0..pools {
        let sets: Vec<_> = health.iter().filter(|s| s.pool == pool_idx).collect();
        if let Some(first) = sets.first() {
            let coding = if first.parity_shards == 0 {
                "no erasure coding (one drive)".to_owned()
            } else {
                format!(
                    "{} data + {} parity shards per object, write quorum {}, read quorum {}",
                    first.data_shards, first.parity_shards, first.write_quorum, first.read_quorum
                )
            };
            println!(
                "Layout:      pool {}: {} erasure set{} of {} drive{}; {coding}",
                pool_idx + 1,
                sets.len(),
                if sets.len() == 1 { "" } else { "s" },
                first.drives,
                if first.drives == 1 { "" } else { "s" },
            );
        }
    }
    let states = booted.drives.iter().flatten();
    let online = states
        .clone()
        .filter(|(_, s)| !matches!(s, DriveState::Offline(_)))
        .count();
    let total = booted.drives.iter().map(Vec::len).sum::<usize>();
    println!(
        "Drives:      {online} of {total} online{}",
        if booted.fresh {
            " (new deployment, formatted now)"
        } else {
            ""
        }
    );
    for (endpoint, state) in states {
        match state {
            DriveState::Offline(reason) => {
                println!("             offline: {endpoint}: {reason}");
                tracing::warn!(drive = %endpoint, %reason, "drive offline at start-up");
            }
            DriveState::Formatted if !booted.fresh => {
                println!("             formatted into its slot: {endpoint}")
            }
            _ => {}
        }
    }
    for set in health.iter().filter(|s| !s.can_write()) {
        tracing::error!(
            pool = set.pool + 1,
            set = set.set + 1,
            online = set.online,
            needed = set.write_quorum,
            "erasure set below write quorum: writes to it will fail with 503 until drives return"
        );
    }
}
