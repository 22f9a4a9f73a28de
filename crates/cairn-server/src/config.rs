//! Settings from the environment. Every `CAIRN_*` variable also answers to
//! its `MINIO_*` spelling, so a MinIO deployment moves over by changing the
//! image; secrets may come from a file named by `*_FILE`.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use cairn_s3::Credentials;

/// A looked-up value and where it came from, for the start-up report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub value: String,
    pub source: String,
}

/// Variables from the file `CAIRN_CONFIG_ENV_FILE` (or MinIO's
/// `MINIO_CONFIG_ENV_FILE`) names, under the real environment.
static ENV_FILE: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

/// A variable from the environment, or else from the env file.
pub fn env_var(var: &str) -> Option<String> {
    std::env::var(var).ok().or_else(|| {
        ENV_FILE
            .get()?
            .iter()
            .find(|(k, _)| k == var)
            .map(|(_, v)| v.clone())
    })
}

/// The names of every variable: the environment's and the env file's.
pub fn env_names() -> Vec<String> {
    let mut names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .collect();
    names.extend(ENV_FILE.get().into_iter().flatten().map(|(k, _)| k.clone()));
    names.sort();
    names.dedup();
    names
}

/// Loads the env file MinIO deployments use (`MINIO_CONFIG_ENV_FILE`, as
/// the MinIO operator and Helm chart set it): `KEY=VALUE` or
/// `export KEY=VALUE` lines, quotes stripped, `#` comments. Its values
/// apply where the environment does not set the variable.
pub fn load_env_file() -> Result<Option<String>> {
    let Some(path) = std::env::var("CAIRN_CONFIG_ENV_FILE")
        .or_else(|_| std::env::var("MINIO_CONFIG_ENV_FILE"))
        .ok()
    else {
        return Ok(None);
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading the env file {path}"))?;
    let vars = parse_env_file(&text).with_context(|| format!("in the env file {path}"))?;
    let _ = ENV_FILE.set(vars);
    Ok(Some(path))
}

fn parse_env_file(text: &str) -> Result<Vec<(String, String)>> {
    let mut vars = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            bail!("line {} is not KEY=VALUE", number + 1);
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        vars.push((key.trim().to_owned(), value.to_owned()));
    }
    Ok(vars)
}

/// Reads `CAIRN_<name>`, `CAIRN_<name>_FILE`, `MINIO_<name>`, `MINIO_<name>_FILE`, in that order.
pub fn lookup(name: &str) -> Result<Option<Setting>> {
    lookup_with(name, env_var)
}

fn lookup_with(name: &str, get: impl Fn(&str) -> Option<String>) -> Result<Option<Setting>> {
    for prefix in ["CAIRN", "MINIO"] {
        let var = format!("{prefix}_{name}");
        if let Some(value) = get(&var) {
            return Ok(Some(Setting { value, source: var }));
        }
        let file_var = format!("{var}_FILE");
        if let Some(path) = get(&file_var) {
            let value = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {file_var}={path}"))?;
            let value = value.trim_end_matches(['\r', '\n']).to_owned();
            return Ok(Some(Setting {
                value,
                source: format!("{file_var} ({path})"),
            }));
        }
    }
    Ok(None)
}

/// Where the root credentials came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    Environment {
        user: String,
        password: String,
    },
    /// No credentials were set: a development default, announced loudly.
    Default,
}

pub const DEFAULT_ROOT_USER: &str = "cairnadmin";
pub const DEFAULT_ROOT_PASSWORD: &str = "cairnadmin";

pub fn root_credentials() -> Result<(Credentials, CredentialSource)> {
    root_credentials_with(lookup)
}

fn root_credentials_with(
    lookup: impl Fn(&str) -> Result<Option<Setting>>,
) -> Result<(Credentials, CredentialSource)> {
    // MINIO_ACCESS_KEY / MINIO_SECRET_KEY are the older MinIO spellings.
    let user = match lookup("ROOT_USER")? {
        Some(user) => Some(user),
        None => lookup("ACCESS_KEY")?,
    };
    let password = match lookup("ROOT_PASSWORD")? {
        Some(password) => Some(password),
        None => lookup("SECRET_KEY")?,
    };
    match (user, password) {
        (None, None) => Ok((
            Credentials {
                access_key: DEFAULT_ROOT_USER.to_owned(),
                secret_key: DEFAULT_ROOT_PASSWORD.to_owned(),
            },
            CredentialSource::Default,
        )),
        (Some(user), None) => bail!(
            "{} is set but CAIRN_ROOT_PASSWORD is not; set both",
            user.source
        ),
        (None, Some(password)) => bail!(
            "{} is set but CAIRN_ROOT_USER is not; set both",
            password.source
        ),
        (Some(user), Some(password)) => {
            if user.value.len() < 3 {
                bail!(
                    "the root user from {} must be at least 3 characters",
                    user.source
                );
            }
            if password.value.len() < 8 {
                bail!(
                    "the root password from {} must be at least 8 characters",
                    password.source
                );
            }
            if user.value.contains([':', '/', ',']) {
                bail!(
                    "the root user from {} must not contain ':', '/' or ','",
                    user.source
                );
            }
            Ok((
                Credentials {
                    access_key: user.value,
                    secret_key: password.value,
                },
                CredentialSource::Environment {
                    user: user.source,
                    password: password.source,
                },
            ))
        }
    }
}

/// Parses `EC:N`, the storage-class syntax of `CAIRN_STORAGE_CLASS_STANDARD`.
pub fn parse_storage_class(value: &str) -> Result<usize> {
    let parity = value
        .strip_prefix("EC:")
        .and_then(|n| n.parse::<usize>().ok())
        .with_context(|| format!("storage class {value:?} is not of the form EC:N"))?;
    Ok(parity)
}

/// Parses a duration like `24h`, `30m`, `10s`, `2d` or `500ms`.
pub fn parse_duration(value: &str) -> Result<Duration> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number
        .parse()
        .with_context(|| format!("{value:?} is not a duration like 24h, 30m or 10s"))?;
    let secs = |n: u64| Duration::from_secs(n);
    Ok(match unit {
        "ms" => Duration::from_millis(number),
        "s" | "" => secs(number),
        "m" => secs(number * 60),
        "h" => secs(number * 3600),
        "d" => secs(number * 86_400),
        _ => bail!("{value:?} is not a duration like 24h, 30m or 10s"),
    })
}

/// Parses a byte size like `100MiB`, `5GiB`, `1048576`.
pub fn parse_size(value: &str) -> Result<u64> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number
        .parse()
        .with_context(|| format!("{value:?} is not a size like 100MiB"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        _ => bail!("{value:?} is not a size like 100MiB"),
    };
    number
        .checked_mul(factor)
        .with_context(|| format!("{value:?} is too large"))
}

/// Every setting the server reads from the environment, parsed and checked.
#[derive(Debug)]
pub struct EnvSettings {
    pub parity: Option<usize>,
    pub set_drive_count: Option<usize>,
    pub region: String,
    pub requests_max: usize,
    pub requests_deadline: Duration,
    /// Virtual-host domains (`CAIRN_DOMAIN`, comma separated).
    pub domains: Vec<String>,
    pub stale_uploads_expiry: Duration,
    pub stale_uploads_cleanup_interval: Duration,
    pub post_max_bytes: u64,
    /// Most objects the heal queue holds (`CAIRN_HEAL_QUEUE_MAX`).
    pub heal_queue_max: usize,
    /// Share of the time a drive refill may spend healing (`CAIRN_HEAL_DUTY`).
    pub heal_duty: f64,
    /// Objects a heal job heals side by side (`CAIRN_HEAL_CONCURRENCY`).
    pub heal_concurrency: usize,
    /// PUT data in flight across all requests, in MiB (`CAIRN_WRITE_BUFFER_MB`).
    pub write_buffer_mb: usize,
    /// Metadata memory of all this node's drives together, in MiB
    /// (`CAIRN_META_MEMORY_MB`): their stores' block caches and unflushed
    /// writes.
    pub meta_memory_mb: u64,
    pub scanner_interval: Duration,
    pub scanner_deep_percent: u8,
    pub orphan_grace: Duration,
    /// The secret internode tokens derive from (`CAIRN_INTERNODE_SECRET`);
    /// `None` to use the root credentials.
    pub internode_secret: Option<String>,
    /// How long a cluster lock lasts without refresh (`CAIRN_LOCK_LEASE`).
    pub lock_lease: Duration,
    /// How often the drive monitor checks drives and probes offline ones
    /// (`CAIRN_DRIVE_CHECK_INTERVAL`).
    pub drive_check_interval: Duration,
    /// How long one drive call may take before the drive counts as offline
    /// for the request that made it (`CAIRN_DRIVE_MAX_TIMEOUT`).
    pub drive_max_timeout: Duration,
    /// How long a request body may send nothing (`CAIRN_BODY_TIMEOUT`).
    pub body_timeout: Duration,
    /// How long an HTTP/1 connection may go without a complete request head,
    /// idle between requests or sending its headers (`CAIRN_IDLE_TIMEOUT`).
    pub idle_timeout: Duration,
    /// Most client connections at once (`CAIRN_MAX_CONNECTIONS`); `None`
    /// to derive it from the open-file limit.
    pub max_connections: Option<usize>,
    /// How long in-flight requests may finish after SIGTERM
    /// (`CAIRN_SHUTDOWN_TIMEOUT`).
    pub shutdown_timeout: Duration,
    /// Test-only: the internode protocol versions this node announces
    /// (`CAIRN_TEST_INTERNODE_VERSIONS`, `min-max`), to run mixed-version clusters.
    pub test_internode_versions: Option<cairn_net::VersionRange>,
    /// Test-only: milliseconds added to this node's clock in internode
    /// tokens (`CAIRN_TEST_CLOCK_SKEW_SECS`).
    pub test_clock_skew_ms: i64,
}

pub fn env_settings() -> Result<EnvSettings> {
    let parity = lookup("STORAGE_CLASS_STANDARD")?
        .map(|s| parse_storage_class(&s.value).with_context(|| format!("in {}", s.source)))
        .transpose()?;
    let number = |name: &str| -> Result<Option<usize>> {
        lookup(name)?
            .map(|s| {
                s.value.trim().parse::<usize>().with_context(|| {
                    format!("{} must be a whole number, got {:?}", s.source, s.value)
                })
            })
            .transpose()
    };
    let region = match lookup("REGION")? {
        Some(s) => s.value,
        None => lookup("SITE_REGION")?.map_or_else(|| "us-east-1".to_owned(), |s| s.value),
    };
    let duration = |name: &str, default: Duration| -> Result<Duration> {
        match lookup(name)? {
            Some(s) => parse_duration(&s.value).with_context(|| format!("in {}", s.source)),
            None => Ok(default),
        }
    };
    let domains = lookup("DOMAIN")?
        .map(|s| {
            s.value
                .split(',')
                .map(|d| d.trim().to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let post_max_bytes = match lookup("API_POST_MAX_SIZE")? {
        Some(s) => parse_size(&s.value).with_context(|| format!("in {}", s.source))?,
        // Browser uploads stream like PUTs; S3's limit for them is 5 GiB.
        None => 5 << 30,
    };
    let test_internode_versions = match env_var("CAIRN_TEST_INTERNODE_VERSIONS") {
        Some(text) => Some(cairn_net::VersionRange::parse(&text).with_context(|| {
            format!("CAIRN_TEST_INTERNODE_VERSIONS must be MIN-MAX, got {text:?}")
        })?),
        None => None,
    };
    let test_clock_skew_ms = match env_var("CAIRN_TEST_CLOCK_SKEW_SECS") {
        Some(text) => {
            text.trim().parse::<i64>().with_context(|| {
                format!("CAIRN_TEST_CLOCK_SKEW_SECS must be whole seconds, got {text:?}")
            })? * 1000
        }
        None => 0,
    };
    let heal_duty = match lookup("HEAL_DUTY")? {
        Some(s) => {
            let duty: f64 = s.value.trim().parse().with_context(|| {
                format!(
                    "{} must be a fraction like 0.5, got {:?}",
                    s.source, s.value
                )
            })?;
            if !(0.01..=1.0).contains(&duty) {
                bail!("{} must be between 0.01 and 1, got {duty}", s.source);
            }
            duty
        }
        None => 0.5,
    };
    let heal_concurrency = match number("HEAL_CONCURRENCY")? {
        Some(n) if (1..=64).contains(&n) => n,
        Some(n) => bail!("CAIRN_HEAL_CONCURRENCY must be 1 to 64, got {n}"),
        None => 4,
    };
    let write_buffer_mb = match number("WRITE_BUFFER_MB")? {
        Some(n) if (8..=65_536).contains(&n) => n,
        Some(n) => bail!("CAIRN_WRITE_BUFFER_MB must be 8 to 65536, got {n}"),
        None => 64,
    };
    let meta_memory_mb = match number("META_MEMORY_MB")? {
        Some(n) if (8..=65_536).contains(&n) => n as u64,
        Some(n) => bail!("CAIRN_META_MEMORY_MB must be 8 to 65536, got {n}"),
        None => 128,
    };
    let scanner_deep_percent = match number("SCANNER_DEEP_PERCENT")? {
        Some(p) if p <= 100 => p as u8,
        Some(p) => bail!("CAIRN_SCANNER_DEEP_PERCENT must be 0 to 100, got {p}"),
        None => 10,
    };
    Ok(EnvSettings {
        scanner_interval: duration("SCANNER_INTERVAL", Duration::from_secs(3600))?,
        scanner_deep_percent,
        orphan_grace: duration("SCANNER_ORPHAN_GRACE", Duration::from_secs(3600))?,
        heal_duty,
        heal_concurrency,
        write_buffer_mb,
        meta_memory_mb,
        heal_queue_max: number("HEAL_QUEUE_MAX")?
            .filter(|n| *n > 0)
            .unwrap_or(100_000),
        internode_secret: lookup("INTERNODE_SECRET")?.map(|s| s.value),
        lock_lease: duration("LOCK_LEASE", Duration::from_secs(30))?,
        drive_check_interval: match duration("DRIVE_CHECK_INTERVAL", Duration::from_secs(2))? {
            d if d >= Duration::from_millis(100) && d <= Duration::from_secs(3600) => d,
            d => bail!("CAIRN_DRIVE_CHECK_INTERVAL must be 100ms to 1h, got {d:?}"),
        },
        drive_max_timeout: match duration("DRIVE_MAX_TIMEOUT", cairn_disk::DEFAULT_CALL_DEADLINE)? {
            d if d >= Duration::from_millis(100) && d <= Duration::from_secs(600) => d,
            d => bail!("CAIRN_DRIVE_MAX_TIMEOUT must be 100ms to 10m, got {d:?}"),
        },
        body_timeout: match duration("BODY_TIMEOUT", Duration::from_secs(20))? {
            d if d >= Duration::from_secs(1) && d <= Duration::from_secs(3600) => d,
            d => bail!("CAIRN_BODY_TIMEOUT must be 1s to 1h, got {d:?}"),
        },
        idle_timeout: match duration("IDLE_TIMEOUT", Duration::from_secs(30))? {
            d if d >= Duration::from_secs(1) && d <= Duration::from_secs(3600) => d,
            d => bail!("CAIRN_IDLE_TIMEOUT must be 1s to 1h, got {d:?}"),
        },
        max_connections: match number("MAX_CONNECTIONS")? {
            Some(n) if (16..=1_000_000).contains(&n) => Some(n),
            Some(n) => bail!("CAIRN_MAX_CONNECTIONS must be 16 to 1000000, got {n}"),
            None => None,
        },
        shutdown_timeout: match duration("SHUTDOWN_TIMEOUT", Duration::from_secs(10))? {
            d if d <= Duration::from_secs(3600) => d,
            d => bail!("CAIRN_SHUTDOWN_TIMEOUT must be at most 1h, got {d:?}"),
        },
        test_internode_versions,
        test_clock_skew_ms,
        parity,
        set_drive_count: number("ERASURE_SET_DRIVE_COUNT")?,
        region,
        requests_max: number("API_REQUESTS_MAX")?
            .filter(|n| *n > 0)
            .unwrap_or(1024),
        requests_deadline: Duration::from_secs(
            number("API_REQUESTS_DEADLINE_SECS")?.unwrap_or(10) as u64
        ),
        domains,
        stale_uploads_expiry: duration("API_STALE_UPLOADS_EXPIRY", Duration::from_secs(24 * 3600))?,
        stale_uploads_cleanup_interval: duration(
            "API_STALE_UPLOADS_CLEANUP_INTERVAL",
            Duration::from_secs(3600),
        )?,
        post_max_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Result<Option<Setting>> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| lookup_with(name, |var| vars.get(var).cloned())
    }

    #[test]
    fn env_files_read_as_minio_writes_them() {
        let vars = parse_env_file(
            "# MinIO\nMINIO_ROOT_USER=admin\nexport MINIO_ROOT_PASSWORD=\"pass word\"\n\nMINIO_VOLUMES='/data{1...4}'\n",
        )
        .unwrap();
        assert_eq!(
            vars,
            [
                ("MINIO_ROOT_USER".to_owned(), "admin".to_owned()),
                ("MINIO_ROOT_PASSWORD".to_owned(), "pass word".to_owned()),
                ("MINIO_VOLUMES".to_owned(), "/data{1...4}".to_owned()),
            ]
        );
        assert!(parse_env_file("just words").is_err());
    }

    #[test]
    fn credentials_from_cairn_minio_and_files() {
        let (creds, source) = root_credentials_with(env(&[])).unwrap();
        assert_eq!(source, CredentialSource::Default);
        assert_eq!(creds.access_key, DEFAULT_ROOT_USER);

        let (creds, source) = root_credentials_with(env(&[
            ("CAIRN_ROOT_USER", "admin"),
            ("MINIO_ROOT_PASSWORD", "password123"),
        ]))
        .unwrap();
        assert_eq!(creds.access_key, "admin");
        assert_eq!(creds.secret_key, "password123");
        assert_eq!(
            source,
            CredentialSource::Environment {
                user: "CAIRN_ROOT_USER".into(),
                password: "MINIO_ROOT_PASSWORD".into()
            }
        );

        let dir =
            std::env::temp_dir().join(format!("cairn-cred-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, "from-a-file\n").unwrap();
        let file = file.to_str().unwrap().to_owned();
        let (creds, _) = root_credentials_with(env(&[
            ("MINIO_ACCESS_KEY", "legacy"),
            ("CAIRN_ROOT_PASSWORD_FILE", &file),
        ]))
        .unwrap();
        assert_eq!(creds.access_key, "legacy");
        assert_eq!(creds.secret_key, "from-a-file");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_credentials_are_refused() {
        assert!(root_credentials_with(env(&[("CAIRN_ROOT_USER", "admin")])).is_err());
        assert!(
            root_credentials_with(env(&[
                ("CAIRN_ROOT_USER", "ad"),
                ("CAIRN_ROOT_PASSWORD", "password123")
            ]))
            .is_err()
        );
        assert!(
            root_credentials_with(env(&[
                ("CAIRN_ROOT_USER", "admin"),
                ("CAIRN_ROOT_PASSWORD", "short")
            ]))
            .is_err()
        );
        assert!(
            root_credentials_with(env(&[
                ("CAIRN_ROOT_USER", "admin"),
                ("CAIRN_ROOT_PASSWORD_FILE", "/nonexistent/x")
            ]))
            .is_err()
        );
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
        assert_eq!(parse_size("100MiB").unwrap(), 100 << 20);
        assert_eq!(parse_size("7").unwrap(), 7);
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn storage_class_syntax() {
        assert_eq!(parse_storage_class("EC:2").unwrap(), 2);
        assert!(parse_storage_class("2").is_err());
        assert!(parse_storage_class("EC:x").is_err());
    }
}
