//! From command-line drive arguments to pools of drives in slot order.

/// Expands MinIO-style ellipses in one argument: `{1...4}`, `{01...16}`
/// (zero-padded like its start) and `{a...d}`. Several patterns in one
/// argument expand with the leftmost varying fastest, as in MinIO, so that
/// `http://host{1...4}/d{1...4}` puts consecutive drives on different hosts.
pub fn expand(arg: &str) -> Result<Vec<String>, String> {
    let mut pieces: Vec<Vec<String>> = Vec::new();
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else {
            return Err(format!("{arg:?}: unclosed '{{'"));
        };
        let inner = &rest[open + 1..close];
        let Some((start, end)) = inner.split_once("...") else {
            // A brace without ellipses is part of the path.
            pieces.push(vec![rest[..=close].to_owned()]);
            rest = &rest[close + 1..];
            continue;
        };
        pieces.push(vec![rest[..open].to_owned()]);
        pieces.push(expand_range(arg, start, end)?);
        rest = &rest[close + 1..];
    }
    pieces.push(vec![rest.to_owned()]);
    Ok(leftmost_fastest(&pieces))
}

/// The cartesian product of `pieces`, the leftmost varying fastest.
fn leftmost_fastest(pieces: &[Vec<String>]) -> Vec<String> {
    let total: usize = pieces.iter().map(Vec::len).product();
    (0..total)
        .map(|mut idx| {
            let mut out = String::new();
            let mut chosen = Vec::with_capacity(pieces.len());
            for piece in pieces {
                chosen.push(&piece[idx % piece.len()]);
                idx /= piece.len();
            }
            for value in chosen {
                out.push_str(value);
            }
            out
        })
        .collect()
}

fn expand_range(arg: &str, start: &str, end: &str) -> Result<Vec<String>, String> {
    let bad = |why: &str| format!("{arg:?}: invalid ellipses {{{start}...{end}}}: {why}");
    if let (Ok(a), Ok(b)) = (start.parse::<u64>(), end.parse::<u64>()) {
        if a > b {
            return Err(bad("the start is after the end"));
        }
        if b - a > 100_000 {
            return Err(bad("more than 100000 values"));
        }
        let width = if start.len() > 1 && start.starts_with('0') {
            start.len()
        } else {
            0
        };
        return Ok((a..=b).map(|n| format!("{n:0width$}")).collect());
    }
    let (mut a, mut b) = (start.chars(), end.chars());
    match (a.next(), a.next(), b.next(), b.next()) {
        (Some(a), None, Some(b), None) if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            if a > b {
                return Err(bad("the start is after the end"));
            }
            Ok((a..=b).map(String::from).collect())
        }
        _ => Err(bad("expected numbers or single letters")),
    }
}

/// Groups drive arguments into pools: every argument with ellipses is its
/// own pool; arguments without form one pool together (DESIGN.md section 1).
pub fn pools_from_args(args: &[String]) -> Result<Vec<Vec<String>>, String> {
    if args.is_empty() {
        return Err("no drives given: `cairn server DRIVE...`".to_owned());
    }
    let with_ellipses = args.iter().filter(|a| a.contains("...")).count();
    let pools = if with_ellipses == 0 {
        vec![args.to_vec()]
    } else if with_ellipses == args.len() {
        args.iter()
            .map(|a| expand(a))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        return Err(
            "mixing arguments with and without {a...b} ellipses is ambiguous: give every pool as one ellipses argument, or list every drive".to_owned(),
        );
    };
    let mut seen = std::collections::HashSet::new();
    for drive in pools.iter().flatten() {
        if drive.contains("://") {
            return Err(format!(
                "{drive}: drives on other nodes (URL arguments) are not supported by this build yet; give local paths"
            ));
        }
        let normalized = std::path::Path::new(drive)
            .components()
            .collect::<std::path::PathBuf>();
        if !seen.insert(normalized) {
            return Err(format!("drive {drive} is given more than once"));
        }
    }
    Ok(pools)
}

/// The erasure set size for a pool of `drives`: the largest size in 2..=16
/// that divides the drive count (MinIO's rule), or the override
/// (`CAIRN_ERASURE_SET_DRIVE_COUNT`), which must divide it too.
pub fn set_size(drives: usize, requested: Option<usize>) -> Result<usize, String> {
    if let Some(size) = requested {
        if drives == 1 && size == 1 {
            return Ok(1);
        }
        if !(2..=16).contains(&size) || !drives.is_multiple_of(size) {
            return Err(format!(
                "CAIRN_ERASURE_SET_DRIVE_COUNT={size} does not fit {drives} drives: it must be between 2 and 16 and divide the drive count"
            ));
        }
        return Ok(size);
    }
    if drives == 1 {
        return Ok(1);
    }
    (2..=16)
        .rev()
        .find(|size| drives.is_multiple_of(*size))
        .ok_or_else(|| format!("{drives} drives cannot be split into erasure sets of 2 to 16 drives; use a drive count that is a multiple of one of those"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_numbers_padding_and_letters() {
        assert_eq!(
            expand("/mnt/d{1...3}").unwrap(),
            ["/mnt/d1", "/mnt/d2", "/mnt/d3"]
        );
        assert_eq!(expand("/d{08...10}").unwrap(), ["/d08", "/d09", "/d10"]);
        assert_eq!(expand("/{a...c}").unwrap(), ["/a", "/b", "/c"]);
        assert_eq!(expand("/plain").unwrap(), ["/plain"]);
        assert_eq!(expand("/odd{dir}/x").unwrap(), ["/odd{dir}/x"]);
        assert!(expand("/d{3...1}").is_err());
        assert!(expand("/d{1...x}").is_err());
        assert!(expand("/d{1...3").is_err());
    }

    #[test]
    fn several_patterns_vary_the_leftmost_fastest() {
        assert_eq!(
            expand("http://h{1...2}/d{1...2}").unwrap(),
            [
                "http://h1/d1",
                "http://h2/d1",
                "http://h1/d2",
                "http://h2/d2"
            ]
        );
    }

    #[test]
    fn pools_follow_ellipses() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            pools_from_args(&args(&["/a", "/b"])).unwrap(),
            vec![vec!["/a", "/b"]]
        );
        let pools = pools_from_args(&args(&["/x{1...4}", "/y{1...2}"])).unwrap();
        assert_eq!(pools.len(), 2);
        assert_eq!(pools[1], ["/y1", "/y2"]);
        assert!(pools_from_args(&args(&["/x{1...4}", "/y"])).is_err());
        assert!(pools_from_args(&args(&["/a", "/a/"])).is_err());
        assert!(pools_from_args(&[]).is_err());
        assert!(
            pools_from_args(&args(&["http://h{1...4}/d"]))
                .unwrap_err()
                .contains("not supported")
        );
    }

    #[test]
    fn set_sizes() {
        assert_eq!(set_size(1, None).unwrap(), 1);
        assert_eq!(set_size(4, None).unwrap(), 4);
        assert_eq!(set_size(6, None).unwrap(), 6);
        assert_eq!(set_size(24, None).unwrap(), 12);
        assert_eq!(set_size(32, None).unwrap(), 16);
        assert_eq!(set_size(64, None).unwrap(), 16);
        assert!(set_size(17, None).is_err());
        assert_eq!(set_size(8, Some(4)).unwrap(), 4);
        assert!(set_size(8, Some(3)).is_err());
        assert!(set_size(32, Some(32)).is_err());
    }
}
