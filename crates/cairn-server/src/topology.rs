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
/// own pool; arguments without form one pool together (docs/design.md section 1).
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
    let urls = pools.iter().flatten().filter(|d| d.contains("://")).count();
    if urls != 0 && urls != pools.iter().map(Vec::len).sum::<usize>() {
        return Err(
            "mixing URL drives (http://host:port/path) and local paths is ambiguous: in a cluster give every drive as a URL".to_owned(),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for drive in pools.iter().flatten() {
        let endpoint = Endpoint::parse(drive)?;
        let normalized = std::path::Path::new(&endpoint.path)
            .components()
            .collect::<std::path::PathBuf>();
        if !seen.insert((endpoint.node, normalized)) {
            return Err(format!("drive {drive} is given more than once"));
        }
    }
    Ok(pools)
}

/// One drive argument: a local path, or `http://host:port/path` in a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port` of the node holding the drive; `None` for a local path.
    pub node: Option<String>,
    /// The drive's directory on its node.
    pub path: String,
}

impl Endpoint {
    pub fn parse(arg: &str) -> Result<Endpoint, String> {
        let Some((scheme, rest)) = arg.split_once("://") else {
            return Ok(Endpoint {
                node: None,
                path: arg.to_owned(),
            });
        };
        match scheme {
            "http" => {}
            "https" => {
                return Err(format!(
                    "{arg}: TLS between nodes is not supported by this build yet; use http:// endpoints"
                ));
            }
            _ => {
                return Err(format!(
                    "{arg}: unknown scheme {scheme:?}; drives on other nodes are http://host:port/path"
                ));
            }
        }
        let Some(slash) = rest.find('/') else {
            return Err(format!("{arg}: no drive path after the host"));
        };
        let (authority, path) = rest.split_at(slash);
        if authority.is_empty() {
            return Err(format!("{arg}: no host"));
        }
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.ends_with(':') && port.parse::<u16>().is_ok());
        let node = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:9000")
        };
        if path.len() < 2 {
            return Err(format!(
                "{arg}: the drive path must not be the root directory"
            ));
        }
        Ok(Endpoint {
            node: Some(node),
            path: path.to_owned(),
        })
    }
}

/// The distinct nodes of a cluster's drives, in order of first appearance.
pub fn nodes_of(pools: &[Vec<Endpoint>]) -> Vec<String> {
    let mut nodes: Vec<String> = Vec::new();
    for node in pools.iter().flatten().filter_map(|e| e.node.as_ref()) {
        if !nodes.contains(node) {
            nodes.push(node.clone());
        }
    }
    nodes
}

/// Orders a pool's drives round-robin across their nodes (each node's
/// drives keep their order), so that consecutive drives, and with them the
/// drives of each erasure set, sit on different nodes. A listing that is
/// already interleaved, as `http://host{1...4}/d{1...4}` expands, is kept.
pub fn interleave(pool: Vec<Endpoint>) -> Vec<Endpoint> {
    let mut by_node: Vec<(Option<String>, std::collections::VecDeque<Endpoint>)> = Vec::new();
    for endpoint in pool {
        match by_node.iter_mut().find(|(n, _)| *n == endpoint.node) {
            Some((_, queue)) => queue.push_back(endpoint),
            None => by_node.push((endpoint.node.clone(), [endpoint].into())),
        }
    }
    let mut out = Vec::new();
    while by_node.iter().any(|(_, q)| !q.is_empty()) {
        for (_, queue) in &mut by_node {
            if let Some(endpoint) = queue.pop_front() {
                out.push(endpoint);
            }
        }
    }
    out
}

/// True when `node` (`host:port` from a drive URL) is this process,
/// listening on `address` (`host:port` or `:port`).
pub fn is_local_node(node: &str, address: &str) -> bool {
    let split = |s: &str| -> Option<(String, u16)> {
        let (host, port) = s.rsplit_once(':')?;
        Some((host.trim_matches(['[', ']']).to_owned(), port.parse().ok()?))
    };
    let (Some((node_host, node_port)), Some((addr_host, addr_port))) =
        (split(node), split(address))
    else {
        return false;
    };
    if node_port != addr_port {
        return false;
    }
    if node_host.eq_ignore_ascii_case(&addr_host) {
        return true;
    }
    let any = addr_host.is_empty() || addr_host == "0.0.0.0" || addr_host == "::";
    if !any {
        // Listening on one address: the node must resolve to it.
        return resolve(&node_host)
            .iter()
            .any(|ip| ip.to_string() == addr_host);
    }
    // Listening everywhere: the node is us if it resolves to an address of
    // this machine (one a socket can bind to).
    resolve(&node_host)
        .into_iter()
        .any(|ip| std::net::UdpSocket::bind((ip, 0)).is_ok())
}

fn resolve(host: &str) -> Vec<std::net::IpAddr> {
    use std::net::ToSocketAddrs;
    (host, 0)
        .to_socket_addrs()
        .map(|addrs| addrs.map(|a| a.ip()).collect())
        .unwrap_or_default()
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

/// The erasure set size for a pool of `drives` dealt round-robin over
/// `nodes`: the largest size in 2..=16 that divides the drive count and
/// gives every node of a set the same number of its drives (MinIO's rule).
pub fn set_size_for_nodes(
    drives: usize,
    nodes: usize,
    requested: Option<usize>,
) -> Result<usize, String> {
    if nodes <= 1 || requested.is_some() {
        return set_size(drives, requested);
    }
    (2..=16)
        .rev()
        .find(|size| {
            drives.is_multiple_of(*size)
                && (size.is_multiple_of(nodes) || nodes.is_multiple_of(*size))
        })
        .map_or_else(|| set_size(drives, None), Ok)
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
        assert_eq!(
            pools_from_args(&args(&["http://h{1...4}/d"])).unwrap()[0].len(),
            4
        );
        assert!(pools_from_args(&args(&["http://h1/d", "/local"])).is_err());
        assert!(pools_from_args(&args(&["http://h1:9000/d", "http://h1/d"])).is_err());
        assert!(pools_from_args(&args(&["https://h{1...4}/d"])).is_err());
    }

    #[test]
    fn endpoints_nodes_and_interleaving() {
        let e = Endpoint::parse("http://127.0.0.1:9101/tmp/n1/d1").unwrap();
        assert_eq!(e.node.as_deref(), Some("127.0.0.1:9101"));
        assert_eq!(e.path, "/tmp/n1/d1");
        assert_eq!(
            Endpoint::parse("http://node1/mnt/d")
                .unwrap()
                .node
                .as_deref(),
            Some("node1:9000")
        );
        assert_eq!(Endpoint::parse("/data").unwrap().node, None);
        assert!(Endpoint::parse("http://node1").is_err());
        // Listed node by node, the drives are dealt round-robin.
        let listed: Vec<Endpoint> = ["a:1/d1", "a:1/d2", "b:1/d1", "b:1/d2", "c:1/d1", "c:1/d2"]
            .iter()
            .map(|s| Endpoint::parse(&format!("http://{s}")).unwrap())
            .collect();
        let dealt: Vec<String> = interleave(listed.clone())
            .iter()
            .map(|e| format!("{}{}", e.node.as_deref().unwrap(), e.path))
            .collect();
        assert_eq!(
            dealt,
            ["a:1/d1", "b:1/d1", "c:1/d1", "a:1/d2", "b:1/d2", "c:1/d2"]
        );
        assert_eq!(
            interleave(interleave(listed.clone())),
            interleave(listed.clone())
        );
        assert_eq!(nodes_of(&[listed]), ["a:1", "b:1", "c:1"]);
        assert!(is_local_node("127.0.0.1:9101", "127.0.0.1:9101"));
        assert!(!is_local_node("127.0.0.1:9102", "127.0.0.1:9101"));
        assert!(is_local_node("127.0.0.1:9101", ":9101"));
        assert!(is_local_node("localhost:9101", "0.0.0.0:9101"));
        assert!(
            !is_local_node("192.0.2.1:9101", ":9101"),
            "TEST-NET-1 is no address of this machine"
        );
    }

    #[test]
    fn set_sizes_spread_over_nodes() {
        // 4 nodes x 2 drives: one set of 8.
        assert_eq!(set_size_for_nodes(8, 4, None).unwrap(), 8);
        // 3 nodes x 4 drives: 12 divides and spreads evenly.
        assert_eq!(set_size_for_nodes(12, 3, None).unwrap(), 12);
        // 6 nodes x 4 drives = 24: 16 does not divide; 12 spreads 2 per node.
        assert_eq!(set_size_for_nodes(24, 6, None).unwrap(), 12);
        // 32 nodes x 16 drives: 16 spans 16 of the 32 nodes, one drive each.
        assert_eq!(set_size_for_nodes(512, 32, None).unwrap(), 16);
        // 5 nodes x 2 drives: 10 spreads 2 per node.
        assert_eq!(set_size_for_nodes(10, 5, None).unwrap(), 10);
        assert_eq!(set_size_for_nodes(8, 4, Some(4)).unwrap(), 4);
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
