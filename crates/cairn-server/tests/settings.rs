//! No setting silently ignored, and the MinIO details a drop-in needs
//! (issue 27, section 2): MinIO's command lines, environment and env file
//! work; what Cairn does not implement stops the start (security, data) or
//! is warned about by name; a MinIO drive is refused; the maintenance
//! health check answers 412 when this node is needed for write quorum.

mod common;

use std::process::Command;

use common::cluster::TestCluster;
use common::{
    ACCESS_KEY, SECRET_KEY, ServerOptions, TempDir, TestServer, cairn_binary, raw_request,
};

/// Runs `cairn server ARGS` with `env` to a failed start; its stderr.
fn failed_start(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(cairn_binary())
        .arg("server")
        .args(args)
        .env("CAIRN_ROOT_USER", ACCESS_KEY)
        .env("CAIRN_ROOT_PASSWORD", SECRET_KEY)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "expected a refused start");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn issue_27_unimplemented_security_settings_stop_the_start() {
    let dir = TempDir::new("settings");
    let drive = dir.path().join("d1").display().to_string();
    let args = ["--address", "127.0.0.1:0", drive.as_str()];
    // The probe's case: auto-encryption with a KMS key set.
    let err = failed_start(
        &args,
        &[
            ("MINIO_KMS_AUTO_ENCRYPTION", "on"),
            (
                "MINIO_KMS_SECRET_KEY",
                "my-key:IyqsU3kMFloCNup4BsZtf/rmfHVcTgznO2F25CkEH1g=",
            ),
        ],
    );
    assert!(err.contains("MINIO_KMS_AUTO_ENCRYPTION"), "{err}");
    assert!(err.contains("MINIO_KMS_SECRET_KEY"), "{err}");
    assert!(err.contains("plain text"), "{err}");
    for (var, word) in [
        ("MINIO_IDENTITY_OPENID_CONFIG_URL", "identity"),
        ("MINIO_NOTIFY_WEBHOOK_ENABLE_PRIMARY", "notifications"),
        ("MINIO_STORAGE_CLASS_RRS", "REDUCED_REDUNDANCY"),
        ("CAIRN_TLS_CERT_FILE", "TLS"),
    ] {
        let err = failed_start(&args, &[(var, "x")]);
        assert!(err.contains(var) && err.contains(word), "{var}: {err}");
    }
    let err = failed_start(
        &[
            "--address",
            "127.0.0.1:0",
            "--certs-dir",
            "/etc/minio/certs",
            drive.as_str(),
        ],
        &[],
    );
    assert!(err.contains("--certs-dir") && err.contains("TLS"), "{err}");
    // Nothing was formatted on the way.
    assert!(!dir.path().join("d1").join(".cairn.sys").exists());
}

#[test]
fn issue_27_other_unimplemented_settings_are_warned_about_by_name() {
    let server = TestServer::start(
        ServerOptions::drives(1)
            .env("CAIRN_ROOT_PASWORD", "typo")
            .env("MINIO_BROWSER", "off")
            .env("MINIO_PROMETHEUS_AUTH_TYPE", "public"),
    );
    let log = server.log_text();
    assert!(
        log.contains(
            "CAIRN_ROOT_PASWORD: unknown setting, ignored; did you mean CAIRN_ROOT_PASSWORD?"
        ),
        "{log}"
    );
    assert!(
        log.contains("MINIO_BROWSER: a MinIO setting Cairn does not implement"),
        "{log}"
    );
    assert!(log.contains("MINIO_PROMETHEUS_AUTH_TYPE"), "{log}");
}

#[test]
fn issue_27_minio_command_lines_and_environment_work() {
    // The Docker image's command: `server /data --console-address :9001`.
    let mut options = ServerOptions::drives(1);
    options.args = vec!["--console-address".into(), ":9001".into()];
    let server = TestServer::start(options);
    assert!(
        server.log_text().contains("Cairn has no web console yet"),
        "{}",
        server.log_text()
    );
    drop(server);

    // MinIO's systemd unit: `minio server $MINIO_OPTS $MINIO_VOLUMES` with
    // both from /etc/default/minio, here through MINIO_CONFIG_ENV_FILE as
    // the operator and Helm chart set it, MINIO_ADDRESS included.
    let dir = TempDir::new("envfile");
    let port = common::cluster::free_port();
    let env_file = dir.path().join("config.env");
    std::fs::write(
        &env_file,
        format!(
            "export MINIO_ROOT_USER=\"envfile-user\"\nexport MINIO_ROOT_PASSWORD=\"envfile-secret\"\nMINIO_VOLUMES=\"{}/d{{1...4}}\"\nMINIO_OPTS=\"--console-address :9001\"\nMINIO_ADDRESS=127.0.0.1:{port}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let mut child = Command::new(cairn_binary())
        .arg("server")
        .env("MINIO_CONFIG_ENV_FILE", &env_file)
        .env_remove("CAIRN_ROOT_USER")
        .env_remove("CAIRN_ROOT_PASSWORD")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let ready = common::wait_until(std::time::Duration::from_secs(30), || {
        raw_request(&addr, "GET", "/minio/health/ready", &[], b"").is_ok_and(|r| r.status == 200)
    });
    let log_text = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
    if !ready {
        let _ = child.kill();
        panic!("not ready: {log_text}");
    }
    // The env file's credentials sign requests; the four volumes are drives.
    let signer = common::sigv4::Signer::new("envfile-user", "envfile-secret");
    let payload = common::sigv4::sha256_hex(b"");
    let mut headers: Vec<(&'static str, String)> = vec![
        ("host", addr.clone()),
        ("x-amz-date", signer.amz_date()),
        ("x-amz-content-sha256", payload.clone()),
    ];
    let (auth, _) = signer.authorization("PUT", "/envbucket", &[], &headers, &payload);
    headers.push(("authorization", auth));
    let resp = raw_request(&addr, "PUT", "/envbucket", &headers, b"").unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(resp.status, 200, "{}", resp.text());
    for i in 1..=4 {
        assert!(
            dir.path().join(format!("d{i}")).join(".cairn.sys").exists(),
            "drive d{i} formatted"
        );
    }
}

#[test]
fn issue_27_a_drive_holding_minio_data_is_refused() {
    let dir = TempDir::new("minio-drive");
    let drive = dir.path().join("d1");
    std::fs::create_dir_all(drive.join(".minio.sys")).unwrap();
    std::fs::write(
        drive.join(".minio.sys").join("format.json"),
        r#"{"version":"1","format":"xl-single","id":"0a1b"}"#,
    )
    .unwrap();
    let drive = drive.display().to_string();
    let err = failed_start(&["--address", "127.0.0.1:0", drive.as_str()], &[]);
    assert!(err.contains("holds a MinIO deployment"), "{err}");
    assert!(
        err.contains("rclone sync") || err.contains("mc mirror"),
        "{err}"
    );
    assert!(!dir.path().join("d1").join(".cairn.sys").exists());
}

#[test]
fn issue_27_maintenance_health_check_answers_412_when_this_node_is_needed() {
    let status = |addr: &str| {
        raw_request(
            addr,
            "GET",
            "/minio/health/cluster?maintenance=true",
            &[],
            b"",
        )
        .unwrap()
        .status
    };
    // One node: taking it down leaves nothing.
    let server = TestServer::start(ServerOptions::drives(4));
    assert_eq!(status(&server.addr), 412);
    drop(server);
    // Four nodes of one drive each, parity 2 (write quorum 3): any one node
    // may go; once one is down, no other may.
    let mut cluster = TestCluster::start(4, 1, &[]);
    for node in 0..4 {
        assert_eq!(status(&cluster.nodes[node].addr), 200, "node {node}");
    }
    cluster.kill(3);
    let settled = common::wait_until(std::time::Duration::from_secs(20), || {
        status(&cluster.nodes[0].addr) == 412
    });
    assert!(settled, "node 0 still says it may go down with node 3 down");
    assert_eq!(cluster.health(0, "cluster"), 200, "writes still work");
}

#[test]
fn issue_27_new_settings_out_of_range_or_unreadable_stop_the_start() {
    let dir = TempDir::new("bad-settings");
    let drive = dir.path().join("d1").display().to_string();
    let args = ["--address", "127.0.0.1:0", drive.as_str()];
    for (var, value) in [
        ("CAIRN_BODY_TIMEOUT", "0s"),
        ("CAIRN_BODY_TIMEOUT", "soon"),
        ("CAIRN_IDLE_TIMEOUT", "2h"),
        ("CAIRN_MAX_CONNECTIONS", "1"),
        ("CAIRN_SHUTDOWN_TIMEOUT", "2h"),
    ] {
        let err = failed_start(&args, &[(var, value)]);
        assert!(err.contains(var), "{var}={value}: {err}");
    }
    let err = failed_start(
        &args,
        &[("MINIO_CONFIG_ENV_FILE", "/nonexistent/config.env")],
    );
    assert!(err.contains("/nonexistent/config.env"), "{err}");
    let env_file = dir.path().join("config.env");
    std::fs::write(
        &env_file,
        "MINIO_ROOT_USER=admin\nthis line is not a setting\n",
    )
    .unwrap();
    let err = failed_start(
        &args,
        &[("MINIO_CONFIG_ENV_FILE", env_file.to_str().unwrap())],
    );
    assert!(err.contains("line 2 is not KEY=VALUE"), "{err}");
    assert!(!dir.path().join("d1").join(".cairn.sys").exists());
}
