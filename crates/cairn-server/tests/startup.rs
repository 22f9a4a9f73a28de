//! The command line, the start-up report, drive formats and the health
//! endpoints (issue 2, items 2, 3 and 7).

mod common;

use std::process::Command;

use aws_sdk_s3::primitives::ByteStream;
use common::{ServerOptions, TempDir, TestServer, cairn_binary, raw_request, test_data};

fn banner_line<'a>(server: &'a TestServer, prefix: &str) -> &'a str {
    server
        .banner
        .iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} line in {:?}", server.banner))
}

/// Runs the binary to completion (a start that must fail) and returns its stderr.
fn failed_start(args: &[String], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(cairn_binary());
    cmd.arg("server")
        .arg("--address")
        .arg("127.0.0.1:0")
        .args(args);
    cmd.env_remove("CAIRN_ROOT_USER")
        .env_remove("CAIRN_ROOT_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        !out.status.success(),
        "expected a failed start, got {:?}",
        out.status
    );
    assert_eq!(out.status.code(), Some(2));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn issue_2_layouts_from_the_command_line_and_environment() {
    let one = TestServer::start(ServerOptions::drives(1));
    assert!(
        banner_line(&one, "Layout:").contains("1 erasure set of 1 drive; no erasure coding"),
        "{:?}",
        one.banner
    );
    assert!(banner_line(&one, "S3 API:").contains("http://127.0.0.1:"));
    assert!(
        banner_line(&one, "Credentials:").contains("from CAIRN_ROOT_USER and CAIRN_ROOT_PASSWORD")
    );

    let four = TestServer::start(ServerOptions::drives(4));
    assert!(banner_line(&four, "Layout:").contains("1 erasure set of 4 drives; 2 data + 2 parity shards per object, write quorum 3, read quorum 2"));

    let eight = TestServer::start(ServerOptions::drives(8));
    assert!(banner_line(&eight, "Layout:").contains(
        "1 erasure set of 8 drives; 4 data + 4 parity shards per object, write quorum 5"
    ));

    let split =
        TestServer::start(ServerOptions::drives(8).env("CAIRN_ERASURE_SET_DRIVE_COUNT", "4"));
    assert!(
        banner_line(&split, "Layout:").contains("2 erasure sets of 4 drives; 2 data + 2 parity")
    );

    let ec1 =
        TestServer::start(ServerOptions::drives(4).env("MINIO_STORAGE_CLASS_STANDARD", "EC:1"));
    assert!(
        banner_line(&ec1, "Layout:")
            .contains("3 data + 1 parity shards per object, write quorum 3, read quorum 3")
    );

    let three = TestServer::start(ServerOptions::drives(3));
    assert!(banner_line(&three, "Layout:").contains("2 data + 1 parity"));
}

#[test]
fn issue_2_ellipses_expand_like_minio() {
    let dir = TempDir::new("ellipses");
    let mut options = ServerOptions::drives(0);
    options.args = vec![format!("{}/disk{{1...4}}", dir.path().display())];
    let server = TestServer::start_in(dir, options, |_| {});
    assert!(banner_line(&server, "Drives:").contains("4 of 4 online"));
    for i in 1..=4 {
        assert!(
            server
                .dir
                .path()
                .join(format!("disk{i}/.cairn.sys/format.json"))
                .exists()
        );
    }
}

#[test]
fn issue_2_bad_settings_stop_the_start_with_a_reason() {
    let dir = TempDir::new("badcfg");
    let drives: Vec<String> = (1..=4)
        .map(|i| format!("{}/d{i}", dir.path().display()))
        .collect();
    let err = failed_start(&drives, &[("CAIRN_STORAGE_CLASS_STANDARD", "EC:3")]);
    assert!(
        err.contains("EC:3 is more than half of the 4 drives"),
        "{err}"
    );
    let err = failed_start(&drives, &[("CAIRN_STORAGE_CLASS_STANDARD", "three")]);
    assert!(err.contains("EC:N"), "{err}");
    let err = failed_start(&drives, &[("CAIRN_ERASURE_SET_DRIVE_COUNT", "3")]);
    assert!(
        err.contains("CAIRN_ERASURE_SET_DRIVE_COUNT=3 does not fit 4 drives"),
        "{err}"
    );
    let err = failed_start(&drives, &[("CAIRN_ROOT_USER", "admin")]);
    assert!(err.contains("CAIRN_ROOT_PASSWORD is not"), "{err}");
    let err = failed_start(
        &drives,
        &[
            ("CAIRN_ROOT_USER", "admin"),
            ("CAIRN_ROOT_PASSWORD", "short"),
        ],
    );
    assert!(err.contains("at least 8 characters"), "{err}");
    let err = failed_start(
        &[
            format!("{}/d{{1...4}}", dir.path().display()),
            "/elsewhere".into(),
        ],
        &[],
    );
    assert!(err.contains("mixing arguments"), "{err}");
    let seventeen: Vec<String> = (1..=17)
        .map(|i| format!("{}/x{i}", dir.path().display()))
        .collect();
    let err = failed_start(&seventeen, &[]);
    assert!(err.contains("17 drives cannot be split"), "{err}");
}

#[test]
fn issue_26_a_drive_deadline_out_of_range_or_unreadable_stops_the_start() {
    let dir = TempDir::new("badtimeout");
    let drives: Vec<String> = (1..=4)
        .map(|i| format!("{}/d{i}", dir.path().display()))
        .collect();
    let credentials = [
        ("CAIRN_ROOT_USER", "admin"),
        ("CAIRN_ROOT_PASSWORD", "a-long-secret"),
    ];
    for (value, says) in [
        ("50ms", "CAIRN_DRIVE_MAX_TIMEOUT must be 100ms to 10m"),
        ("11m", "CAIRN_DRIVE_MAX_TIMEOUT must be 100ms to 10m"),
        ("soon", "CAIRN_DRIVE_MAX_TIMEOUT"),
    ] {
        let mut env = credentials.to_vec();
        env.push(("CAIRN_DRIVE_MAX_TIMEOUT", value));
        let err = failed_start(&drives, &env);
        assert!(err.contains(says), "{value}: {err}");
    }
    assert!(
        !dir.path().join("d1").exists(),
        "a refused start formats no drive"
    );
}

#[test]
fn issue_2_credentials_from_minio_aliases_files_and_the_default() {
    let secret_dir = TempDir::new("secret");
    let file = secret_dir.path().join("password");
    std::fs::write(&file, "from-a-file-123\n").unwrap();
    // The harness always sets CAIRN_ROOT_*, so start this one by hand.
    let dir = TempDir::new("alias2");
    let mut cmd = Command::new(cairn_binary());
    cmd.arg("server")
        .arg("--address")
        .arg("127.0.0.1:0")
        .arg(dir.path().join("d1"));
    cmd.env_remove("CAIRN_ROOT_USER")
        .env_remove("CAIRN_ROOT_PASSWORD");
    cmd.env("MINIO_ROOT_USER", "minio-user")
        .env("MINIO_ROOT_PASSWORD_FILE", &file);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut banner = String::new();
    {
        use std::io::BufRead;
        let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
        for _ in 0..10 {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            banner.push_str(&line);
            if line.starts_with("Started in") {
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        banner.contains(
            "root user \"minio-user\", from MINIO_ROOT_USER and MINIO_ROOT_PASSWORD_FILE"
        ),
        "{banner}"
    );

    // No credentials: a loud development default.
    let dir = TempDir::new("default");
    let mut cmd = Command::new(cairn_binary());
    cmd.arg("server")
        .arg("--address")
        .arg("127.0.0.1:0")
        .arg(dir.path().join("d1"));
    cmd.env_remove("CAIRN_ROOT_USER")
        .env_remove("CAIRN_ROOT_PASSWORD");
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("DEFAULT password"), "{stdout}");
    assert!(stderr.contains("no root credentials set"), "{stderr}");
}

#[tokio::test]
async fn issue_2_restart_reuses_the_format_and_keeps_data() {
    let mut server = TestServer::start(ServerOptions::drives(4));
    assert!(banner_line(&server, "Drives:").contains("new deployment"));
    let client = server.client();
    client.create_bucket().bucket("keep").send().await.unwrap();
    let data = test_data(1_500_000, 1);
    client
        .put_object()
        .bucket("keep")
        .key("k")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let format_before =
        std::fs::read(server.drive_paths[0].join(".cairn.sys/format.json")).unwrap();
    server.restart();
    assert!(!banner_line(&server, "Drives:").contains("new deployment"));
    assert!(banner_line(&server, "Drives:").contains("4 of 4 online"));
    let format_after = std::fs::read(server.drive_paths[0].join(".cairn.sys/format.json")).unwrap();
    assert_eq!(format_before, format_after);
    let client = server.client();
    let got = client
        .get_object()
        .bucket("keep")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(got.body.collect().await.unwrap().to_vec(), data);
}

#[tokio::test]
async fn issue_2_foreign_and_misplaced_drives_stop_the_server() {
    let mut server = TestServer::start(ServerOptions::drives(4));
    let deployment = String::from_utf8(
        std::fs::read(server.drive_paths[0].join(".cairn.sys/format.json")).unwrap(),
    )
    .unwrap();
    server.stop();

    // Two drives swapped on the command line.
    let mut swapped: Vec<String> = server
        .drive_paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    swapped.swap(1, 2);
    let err = failed_start(&swapped, &[]);
    assert!(
        err.contains(&format!("drive {} is in the wrong place", swapped[1])),
        "{err}"
    );
    assert!(
        err.contains("set 1 drive 2") && err.contains("set 1 drive 3"),
        "{err}"
    );

    // A drive of another deployment in slot 4.
    let other = TestServer::start(ServerOptions::drives(1));
    let foreign = other.drive_paths[0].display().to_string();
    let mut drives: Vec<String> = server
        .drive_paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    drives[3] = foreign.clone();
    let err = failed_start(&drives, &[]);
    assert!(
        err.contains(&format!("drive {foreign} belongs to another deployment")),
        "{err}"
    );
    let expected_id = deployment
        .split("\"deployment_id\": \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(
        err.contains(&format!("expected deployment {expected_id}")),
        "{err}"
    );
    assert!(err.contains("found deployment"), "{err}");

    // An empty drive in a known slot is formatted into it, and the server serves.
    std::fs::remove_dir_all(&server.drive_paths[1]).unwrap();
    std::fs::create_dir(&server.drive_paths[1]).unwrap();
    server.spawn().unwrap();
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.contains("formatted into its slot")),
        "{:?}",
        server.banner
    );
    let format =
        std::fs::read_to_string(server.drive_paths[1].join(".cairn.sys/format.json")).unwrap();
    assert!(format.contains(expected_id));
    let client = server.client();
    client.create_bucket().bucket("after").send().await.unwrap();
}

#[test]
fn issue_2_health_endpoints() {
    let server = TestServer::start(ServerOptions::drives(4));
    for path in [
        "/minio/health/live",
        "/minio/health/ready",
        "/minio/health/cluster",
        "/minio/health/cluster/read",
    ] {
        let resp = raw_request(&server.addr, "GET", path, &[], b"").unwrap();
        assert_eq!(resp.status, 200, "{path}");
        let resp = raw_request(&server.addr, "HEAD", path, &[], b"").unwrap();
        assert_eq!(resp.status, 200, "HEAD {path}");
    }
    let resp = raw_request(&server.addr, "GET", "/minio/health/unknown", &[], b"").unwrap();
    assert_eq!(resp.status, 404);
}

#[tokio::test]
async fn issue_2_ready_reports_a_saturated_request_queue() {
    // One request slot: while a slow upload holds it and another waits, ready says 503.
    let server = TestServer::start(
        ServerOptions::drives(1)
            .env("CAIRN_API_REQUESTS_MAX", "1")
            .env("CAIRN_API_REQUESTS_DEADLINE_SECS", "30"),
    );
    server
        .client()
        .create_bucket()
        .bucket("bkt")
        .send()
        .await
        .unwrap();
    let slow = |addr: String| {
        std::thread::spawn(move || {
            use std::io::Write;
            let signer = common::sigv4::Signer::new(common::ACCESS_KEY, common::SECRET_KEY);
            let headers = vec![
                ("host", addr.clone()),
                ("x-amz-date", signer.amz_date()),
                ("x-amz-content-sha256", "UNSIGNED-PAYLOAD".to_owned()),
            ];
            let (auth, _) =
                signer.authorization("PUT", "/bkt/k", &[], &headers, "UNSIGNED-PAYLOAD");
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            // Never completes its body: holds its slot until dropped.
            write!(
                s,
                "PUT /bkt/k HTTP/1.1\r\nHost: {addr}\r\nx-amz-date: {}\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\nAuthorization: {auth}\r\nContent-Length: 100\r\n\r\nabc",
                signer.amz_date()
            )
            .unwrap();
            std::thread::sleep(std::time::Duration::from_secs(3));
        })
    };
    let first = slow(server.addr.clone());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let second = slow(server.addr.clone());
    let saturated = common::wait_until(std::time::Duration::from_secs(2), || {
        raw_request(&server.addr, "GET", "/minio/health/ready", &[], b"")
            .unwrap()
            .status
            == 503
    });
    assert!(saturated, "ready stayed 200 with a saturated queue");
    assert_eq!(
        raw_request(&server.addr, "GET", "/minio/health/live", &[], b"")
            .unwrap()
            .status,
        200
    );
    first.join().unwrap();
    second.join().unwrap();
    let recovered = common::wait_until(std::time::Duration::from_secs(10), || {
        raw_request(&server.addr, "GET", "/minio/health/ready", &[], b"")
            .unwrap()
            .status
            == 200
    });
    assert!(recovered);
}
