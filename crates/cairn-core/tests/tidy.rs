//! The layout rule of `cairn-core` (ARCHITECTURE.md, "Dependency rule"),
//! checked on the source: which top-level module each file's `crate::` paths
//! reach.
//!
//! - The shared collaborators `crypto` and `outbound` reach nothing but the
//!   error table: they are leaves.
//! - `kernel` reaches no feature and not the façade, except the known
//!   inversions listed in `KERNEL_KNOWN` (to be removed, not added to: the
//!   test fails when one is no longer needed, so the list stays true).
//! - The features' graph has no cycle.
//! - Features that still reach the façade (`impl Service` blocks) are listed
//!   in `FACADE_KNOWN`; a new one fails, and so does a listed one that no
//!   longer does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const FEATURES: &[&str] = &[
    "config",
    "flags",
    "secrets",
    "webhooks",
    "identity",
    "audit",
    "telemetry",
];

/// (kernel file, module it reaches): the inversions still to undo.
const KERNEL_KNOWN: &[(&str, &str)] = &[
    // The compiled views and schemas it caches.
    ("kernel/state.rs", "config"),
    ("kernel/state.rs", "flags"),
    // `watch_view` checks access and is a method of the façade.
    ("kernel/watch.rs", "identity"),
    ("kernel/watch.rs", "service"),
];

/// Features whose methods are still `impl Service` blocks.
const FACADE_KNOWN: &[&str] = &["config", "identity", "secrets", "webhooks"];

/// Top-level modules any module may use that use nothing themselves.
const LEAVES: &[&str] = &["crypto", "outbound"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`lib`, `error`, `service`, or a folder).
fn module_of(rel: &str) -> String {
    let first = rel.split('/').next().unwrap_or(rel);
    first.trim_end_matches(".rs").to_owned()
}

/// What a name at the crate root stands for, from lib.rs's `mod` and `pub use`
/// lines: a module (`kernel`), an alias (`clock` → `kernel`) or an item
/// (`Service` → `service`).
fn root_names(lib: &str) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    let text: String = lib
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    for stmt in text.split(';') {
        let stmt = stmt.trim();
        if let Some(m) = stmt
            .strip_prefix("pub mod ")
            .or_else(|| stmt.strip_prefix("mod "))
        {
            names.insert(m.trim().to_owned(), m.trim().to_owned());
        } else if let Some(path) = stmt.strip_prefix("pub use ") {
            let module = path.split("::").next().unwrap_or("").trim().to_owned();
            let tail = path.rsplit("::").next().unwrap_or("");
            let items = tail.trim_matches(|c| c == '{' || c == '}');
            for item in items.split(',') {
                let item = item.trim();
                if !item.is_empty() {
                    names.insert(item.to_owned(), module.clone());
                }
            }
        }
    }
    names
}

/// The root names a file's `crate::` paths start with (both `crate::a::b`
/// and `use crate::{a, b::c}`).
fn reached(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let code: String = text
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.starts_with("//")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            for part in split_top(&group[..end]) {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

fn matching_brace(s: &str) -> usize {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    s.len()
}

fn split_top(s: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// (file relative to src, module it belongs to, modules it reaches).
fn graph() -> Vec<(String, String, BTreeSet<String>)> {
    let root = src();
    let names = root_names(&std::fs::read_to_string(root.join("lib.rs")).expect("lib.rs"));
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let rel = path
            .strip_prefix(&root)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        let module = module_of(&rel);
        let text = std::fs::read_to_string(&path).expect("read");
        let mut reaches = BTreeSet::new();
        for name in reached(&text) {
            let target = names
                .get(&name)
                .unwrap_or_else(|| panic!("{rel}: crate::{name} is not a root name of lib.rs"));
            if *target != module {
                reaches.insert(target.clone());
            }
        }
        // A method block on the façade reaches it, imported or not.
        if text.contains("impl Service {") && module != "service" {
            reaches.insert("service".to_owned());
        }
        out.push((rel, module, reaches));
    }
    out
}

#[test]
fn shared_collaborators_are_leaves() {
    for (rel, module, reaches) in graph() {
        if LEAVES.contains(&module.as_str()) {
            let bad: Vec<_> = reaches.iter().filter(|m| *m != "error").collect();
            assert!(bad.is_empty(), "{rel} reaches {bad:?}");
        }
    }
}

#[test]
fn the_kernel_reaches_no_feature_and_not_the_facade() {
    let mut known: BTreeSet<(String, String)> = KERNEL_KNOWN
        .iter()
        .map(|(f, m)| ((*f).to_owned(), (*m).to_owned()))
        .collect();
    for (rel, module, reaches) in graph() {
        if module != "kernel" {
            continue;
        }
        for target in reaches {
            if target == "error" || target == "crypto" {
                continue;
            }
            assert!(
                known.remove(&(rel.clone(), target.clone())),
                "{rel} reaches {target}: the kernel depends on no feature and not on the façade"
            );
        }
    }
    assert!(
        known.is_empty(),
        "no longer needed, remove from KERNEL_KNOWN: {known:?}"
    );
}

#[test]
fn features_form_no_cycle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (_, module, reaches) in graph() {
        if FEATURES.contains(&module.as_str()) {
            let e = edges.entry(module).or_default();
            e.extend(
                reaches
                    .into_iter()
                    .filter(|t| FEATURES.contains(&t.as_str())),
            );
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(i) = path.iter().position(|p| p == n) {
            panic!("import cycle: {} -> {n}", path[i..].join(" -> "));
        }
        if done.contains(n) {
            return;
        }
        path.push(n.to_owned());
        for m in edges.get(n).into_iter().flatten() {
            visit(m, edges, path, done);
        }
        path.pop();
        done.insert(n.to_owned());
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        visit(n, &edges, &mut Vec::new(), &mut done);
    }
}

#[test]
fn features_reaching_the_facade_are_the_known_ones() {
    let mut reaching = BTreeSet::new();
    for (_, module, reaches) in graph() {
        if FEATURES.contains(&module.as_str()) && reaches.contains("service") {
            reaching.insert(module);
        }
    }
    let known: BTreeSet<String> = FACADE_KNOWN.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(
        reaching, known,
        "features reaching the façade changed: a new one must take the kernel instead; \
         one that no longer does leaves FACADE_KNOWN"
    );
}

#[test]
fn only_the_kernel_commits() {
    for (rel, _, _) in graph() {
        let text = std::fs::read_to_string(src().join(&rel)).expect("read");
        if !rel.starts_with("kernel/") {
            assert!(
                !text.contains("store.commit(") && !text.contains("store().commit("),
                "{rel} calls Store::commit: only the kernel's commit may"
            );
        }
    }
}

#[test]
fn the_rules_see_a_cycle_and_a_root_name() {
    // The parser itself, on text written for it.
    let names = root_names("pub mod a;\nmod b;\npub use a::{x, y::Z};\npub use b::W;\n");
    assert_eq!(names.get("Z").map(String::as_str), Some("a"));
    assert_eq!(names.get("W").map(String::as_str), Some("b"));
    let r = reached("use crate::{a::x, b::{C, D}};\nlet v = crate::W::new();\n// crate::hidden\n");
    assert_eq!(r, ["W", "a", "b"].iter().map(|s| (*s).to_owned()).collect());
}
