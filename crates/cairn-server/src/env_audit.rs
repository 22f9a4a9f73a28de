//! No setting silently ignored: every `CAIRN_*` and `MINIO_*` variable in
//! the environment is either one the server reads, or named at start: a
//! setting about security or data that Cairn does not implement stops the
//! start (objects stored in plain text under `MINIO_KMS_AUTO_ENCRYPTION=on`
//! are worse than no start), any other is warned about, and a misspelt
//! `CAIRN_*` name is shown with the nearest known one.

/// The settings the server reads, without their `CAIRN_`/`MINIO_` prefix;
/// each also answers to a `_FILE` spelling (config.rs).
pub const KNOWN: &[&str] = &[
    "ROOT_USER",
    "ROOT_PASSWORD",
    "ACCESS_KEY",
    "SECRET_KEY",
    "ADDRESS",
    "VOLUMES",
    "OPTS",
    "CONFIG_ENV_FILE",
    "STORAGE_CLASS_STANDARD",
    "REGION",
    "SITE_REGION",
    "DOMAIN",
    "ERASURE_SET_DRIVE_COUNT",
    "API_REQUESTS_MAX",
    "API_REQUESTS_DEADLINE_SECS",
    "API_POST_MAX_SIZE",
    "API_STALE_UPLOADS_EXPIRY",
    "API_STALE_UPLOADS_CLEANUP_INTERVAL",
    "BODY_TIMEOUT",
    "IDLE_TIMEOUT",
    "MAX_CONNECTIONS",
    "SHUTDOWN_TIMEOUT",
    "HEAL_QUEUE_MAX",
    "HEAL_DUTY",
    "HEAL_CONCURRENCY",
    "WRITE_BUFFER_MB",
    "META_MEMORY_MB",
    "SCANNER_INTERVAL",
    "SCANNER_DEEP_PERCENT",
    "SCANNER_ORPHAN_GRACE",
    "INTERNODE_SECRET",
    "LOCK_LEASE",
    "DRIVE_CHECK_INTERVAL",
    "DRIVE_MAX_TIMEOUT",
];

/// Read only under the `CAIRN_` prefix: logging, and the client side
/// (`cairn admin`, `cairn bench`), which may share the environment.
const CAIRN_ONLY: &[&str] = &["LOG", "ENDPOINT"];

/// What an unimplemented setting about security or data would have done,
/// by a word in its name, and what to do instead.
const REFUSED: &[(&[&str], &str)] = &[
    (
        &["KMS", "SSE", "ENCRYPT"],
        "encryption at rest is not available yet: objects would be stored in plain text. Unset it to store unencrypted data knowingly",
    ),
    (
        &["TLS", "CERT", "CERTS"],
        "TLS is not available yet: serve through a TLS-terminating proxy and unset it",
    ),
    (
        &[
            "IDENTITY",
            "OPENID",
            "LDAP",
            "STS",
            "POLICY_PLUGIN",
            "POLICY_OPA",
            "ETCD",
        ],
        "identity providers and external policies are not available yet: only the root credentials can sign requests. Unset it",
    ),
    (
        &["AUDIT"],
        "audit logging is not available yet: no audit record would be written. Unset it",
    ),
    (
        &["NOTIFY"],
        "bucket notifications are not available yet: no event would be sent. Unset it",
    ),
    (
        &["REPLICATION", "REPLICATE"],
        "replication is not available yet: nothing would be replicated. Unset it",
    ),
    (
        &["QUOTA"],
        "bucket quotas are not available yet: nothing would be limited. Unset it",
    ),
    (
        &["WORM", "OBJECT_LOCK", "RETENTION"],
        "object locking and retention are not available yet: objects could be deleted. Unset it",
    ),
    (
        &["STORAGE_CLASS_RRS"],
        "the REDUCED_REDUNDANCY storage class is not available yet. Unset it",
    ),
];

/// One setting the server does not implement.
#[derive(Debug, PartialEq, Eq)]
pub enum Finding {
    /// Stops the start.
    Refuse { var: String, reason: String },
    /// Logged as a warning at start.
    Warn { var: String, reason: String },
}

/// Looks at every variable name in `vars`, in their order.
pub fn audit<'a>(vars: impl IntoIterator<Item = &'a str>) -> Vec<Finding> {
    vars.into_iter().filter_map(audit_one).collect()
}

fn audit_one(var: &str) -> Option<Finding> {
    let (prefix, name) = if let Some(name) = var.strip_prefix("CAIRN_") {
        ("CAIRN", name)
    } else if let Some(name) = var.strip_prefix("MINIO_") {
        ("MINIO", name)
    } else {
        return None;
    };
    let base = name.strip_suffix("_FILE").unwrap_or(name);
    if KNOWN.contains(&base)
        || (prefix == "CAIRN" && (CAIRN_ONLY.contains(&name) || name.starts_with("TEST_")))
    {
        return None;
    }
    if let Some((_, reason)) = REFUSED
        .iter()
        .find(|(words, _)| words.iter().any(|w| contains_word(base, w)))
    {
        return Some(Finding::Refuse {
            var: var.to_owned(),
            reason: (*reason).to_owned(),
        });
    }
    let reason = match (prefix, nearest(base)) {
        ("CAIRN", Some(known)) => {
            format!("unknown setting, ignored; did you mean CAIRN_{known}?")
        }
        ("CAIRN", None) => "unknown setting, ignored (the README lists every setting)".to_owned(),
        (_, _) => "a MinIO setting Cairn does not implement; it is ignored".to_owned(),
    };
    Some(Finding::Warn {
        var: var.to_owned(),
        reason,
    })
}

/// Whether `word` is one of the `_`-separated parts of `name`, or a run of
/// them (`POLICY_PLUGIN`, `STORAGE_CLASS_RRS`).
fn contains_word(name: &str, word: &str) -> bool {
    let parts: Vec<&str> = name.split('_').collect();
    let wanted: Vec<&str> = word.split('_').collect();
    parts.windows(wanted.len()).any(|w| w == wanted.as_slice())
}

/// The known setting closest to `name`, if it is close enough to be a typo.
fn nearest(name: &str) -> Option<&'static str> {
    let (distance, known) = KNOWN
        .iter()
        .map(|known| (edit_distance(name, known), *known))
        .min()?;
    (distance <= 2.max(name.len() / 4)).then_some(known)
}

/// Levenshtein distance, by bytes (setting names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(var: &str) -> bool {
        matches!(audit_one(var), Some(Finding::Refuse { .. }))
    }

    fn warning(var: &str) -> Option<String> {
        match audit_one(var) {
            Some(Finding::Warn { reason, .. }) => Some(reason),
            _ => None,
        }
    }

    #[test]
    fn known_settings_pass() {
        for var in [
            "CAIRN_ROOT_USER",
            "MINIO_ROOT_PASSWORD_FILE",
            "MINIO_VOLUMES",
            "CAIRN_LOG",
            "CAIRN_TEST_FAULTS_FILE",
            "HOME",
            "MINIO_REGION",
        ] {
            assert_eq!(audit_one(var), None, "{var}");
        }
    }

    #[test]
    fn security_and_data_settings_stop_the_start() {
        for var in [
            "MINIO_KMS_AUTO_ENCRYPTION",
            "MINIO_KMS_SECRET_KEY",
            "MINIO_KMS_KES_ENDPOINT",
            "CAIRN_KMS_KEY",
            "MINIO_IDENTITY_OPENID_CONFIG_URL",
            "MINIO_IDENTITY_LDAP_SERVER_ADDR",
            "MINIO_NOTIFY_WEBHOOK_ENABLE_PRIMARY",
            "MINIO_AUDIT_WEBHOOK_ENDPOINT",
            "MINIO_STORAGE_CLASS_RRS",
            "MINIO_POLICY_PLUGIN_URL",
            "MINIO_ETCD_ENDPOINTS",
            "CAIRN_TLS_CERT",
        ] {
            assert!(refused(var), "{var}");
        }
        // A word inside another is not that word.
        assert!(!refused("MINIO_ASSESSMENT"));
    }

    #[test]
    fn other_settings_are_warned_about_with_the_nearest_name() {
        assert_eq!(
            warning("CAIRN_ROOT_PASWORD").as_deref(),
            Some("unknown setting, ignored; did you mean CAIRN_ROOT_PASSWORD?")
        );
        assert_eq!(
            warning("CAIRN_DRIVE_MAX_TIMOUT").as_deref(),
            Some("unknown setting, ignored; did you mean CAIRN_DRIVE_MAX_TIMEOUT?")
        );
        assert!(
            warning("CAIRN_SOMETHING_ELSE_ENTIRELY")
                .unwrap()
                .contains("README")
        );
        assert!(warning("MINIO_BROWSER").unwrap().contains("MinIO setting"));
        assert!(warning("MINIO_PROMETHEUS_AUTH_TYPE").is_some());
    }

    /// Every name config.rs reads is in [`KNOWN`], so a new setting is not
    /// warned about as unknown.
    #[test]
    fn every_setting_config_reads_is_known() {
        let source = include_str!("config.rs");
        let mut found = 0;
        for reader in ["lookup(\"", "number(\"", "duration(\""] {
            for (i, _) in source.match_indices(reader) {
                let rest = &source[i + reader.len()..];
                let name = &rest[..rest.find('"').unwrap()];
                if name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                    found += 1;
                    assert!(KNOWN.contains(&name), "{name} is read but not in KNOWN");
                }
            }
        }
        assert!(found > 20, "only {found} settings found in config.rs");
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("REGION", "REGION"), 0);
        assert_eq!(edit_distance("REGON", "REGION"), 1);
        assert_eq!(edit_distance("", "ABC"), 3);
        assert_eq!(edit_distance("KITTEN", "SITTING"), 3);
    }
}
