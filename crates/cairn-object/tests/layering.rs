//! The object layer's modules form no import circle (issue 26): each file
//! uses only files below it, so that a picture of the imports reads top to
//! bottom (ARCHITECTURE.md). A file is a node; `use crate::...`,
//! `crate::...` paths, `super::...` and `self::...` are its edges, resolved
//! to the longest module path they name. A parent module (`mod.rs`) may
//! use its children; a child must not use its parent's items.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every module of `src`, by path (`data::put`; `""` for `lib.rs`).
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut segs: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(segs.last().map(String::as_str), Some("lib" | "mod")) {
                segs.pop();
            }
            out.insert(segs.join("::"), path);
        }
    }
    out
}

/// The code of a file without comments, string literals and its tests.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => text,
    };
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    match (c, escaped) {
                        ('\\', false) => escaped = true,
                        ('"', false) => break,
                        _ => escaped = false,
                    }
                }
                out.push_str("\"\"");
            }
            _ => out.push(c),
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The module paths a file's code names, each as its segments from the
/// crate root (a `{..}` group of a `use` gives one path per member).
fn paths(module: &str, code: &str) -> Vec<Vec<String>> {
    let here: Vec<String> = if module.is_empty() {
        Vec::new()
    } else {
        module.split("::").map(str::to_owned).collect()
    };
    let bytes: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !is_ident(bytes[i - 1]);
        let rest: String = bytes[i..bytes.len().min(i + 7)].iter().collect();
        let mut base = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|b| rest.starts_with(b));
        // `use child::...` names a child module relative to this one.
        let after_use = i >= 4 && bytes[i - 4..i].iter().collect::<String>() == "use ";
        if base.is_none() && after_use && starts_word && is_ident(bytes[i]) {
            base = Some("");
        }
        let (Some(base), true) = (base, starts_word) else {
            i += 1;
            continue;
        };
        i += base.len();
        let mut prefix: Vec<String> = match base {
            "crate::" => Vec::new(),
            "super::" => here[..here.len().saturating_sub(1)].to_vec(),
            _ => here.clone(),
        };
        // Segments up to a `{` group or the end of the path.
        loop {
            let start = i;
            while i < bytes.len() && is_ident(bytes[i]) {
                i += 1;
            }
            if i > start {
                prefix.push(bytes[start..i].iter().collect());
            }
            if bytes[i..].starts_with(&[':', ':']) {
                i += 2;
                if bytes.get(i) == Some(&'{') {
                    // A group: each member is a path of its own.
                    let mut depth = 0;
                    let mut member = String::new();
                    let mut members = Vec::new();
                    for &c in &bytes[i..] {
                        i += 1;
                        match c {
                            '{' => depth += 1,
                            '}' => depth -= 1,
                            _ => {}
                        }
                        if depth == 0 {
                            members.push(std::mem::take(&mut member));
                            break;
                        }
                        if c == ',' && depth == 1 {
                            members.push(std::mem::take(&mut member));
                        } else if !(c == '{' && depth == 1) {
                            member.push(c);
                        }
                    }
                    for member in members {
                        let mut path = prefix.clone();
                        path.extend(
                            member
                                .split(['{', ' ', '\n'])
                                .next()
                                .unwrap_or("")
                                .split("::")
                                .filter(|s| !s.is_empty() && s.chars().all(is_ident))
                                .map(str::to_owned),
                        );
                        out.push(path);
                    }
                    break;
                }
                continue;
            }
            out.push(prefix);
            break;
        }
    }
    out
}

#[test]
fn issue_26_the_object_layer_has_no_import_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut root_items = Vec::new();
    for (module, file) in &modules {
        let code = code(&std::fs::read_to_string(file).unwrap());
        let targets = edges.entry(module.as_str()).or_default();
        if module.is_empty() {
            continue; // lib.rs declares and re-exports; it is above all.
        }
        for path in paths(module, &code) {
            let target = (1..=path.len())
                .rev()
                .map(|n| path[..n].join("::"))
                .find(|candidate| modules.contains_key(candidate));
            match target {
                Some(target) if target != *module => {
                    let (target, _) = modules.get_key_value(&target).unwrap();
                    targets.insert(target.as_str());
                }
                Some(_) => {}
                // `crate::Item`: an item lib.rs re-exports hides which
                // module it comes from; name the module instead.
                None if path
                    .first()
                    .is_some_and(|s| s.starts_with(char::is_uppercase)) =>
                {
                    root_items.push(format!("{module}: crate::{}", path.join("::")));
                }
                None => {}
            }
        }
    }
    assert!(
        root_items.is_empty(),
        "use items through the module that defines them, not lib.rs's re-exports: {root_items:?}"
    );
    // Depth-first search for a cycle.
    fn visit<'a>(
        node: &'a str,
        edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<&'a str>> {
        match state.get(node) {
            Some(2) => return None,
            Some(1) => {
                let at = path.iter().position(|n| *n == node).unwrap();
                let mut cycle = path[at..].to_vec();
                cycle.push(node);
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(node, 1);
        path.push(node);
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, state, path) {
                return Some(cycle);
            }
        }
        path.pop();
        state.insert(node, 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, &edges, &mut state, &mut Vec::new()) {
            panic!("import circle: {}", cycle.join(" -> "));
        }
    }
    // The parts keep their order: nothing below the data path imports it,
    // and the data path does not import the layer or maintenance above it.
    let below = |module: &str, part: &str| {
        edges[module]
            .iter()
            .filter(|t| **t == part || t.starts_with(&format!("{part}::")))
            .map(|t| format!("{module} -> {t}"))
            .collect::<Vec<_>>()
    };
    let mut wrong = Vec::new();
    for module in edges.keys() {
        if module.starts_with("set") || ["types", "error", "quorum", "util"].contains(module) {
            wrong.extend(below(module, "data"));
            wrong.extend(below(module, "shared"));
            wrong.extend(below(module, "layer"));
        }
        if module.starts_with("data") {
            wrong.extend(below(module, "layer"));
            wrong.extend(below(module, "maintenance"));
        }
    }
    assert!(wrong.is_empty(), "imports against the layering: {wrong:?}");
    assert!(modules.len() > 30, "found only {} modules", modules.len());
}
