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
//! - No feature reaches the façade (`crate::Service`, `crate::service`, an
//!   `impl Service` block): features receive the kernel in their handles.
//! - No module but the kernel adds inherent methods to a kernel type
//!   (`impl Kernel { … }`, `impl State { … }` elsewhere).

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
    "approvals",
];

/// (kernel file, module it reaches): the inversions still to undo.
const KERNEL_KNOWN: &[(&str, &str)] = &[
    // The compiled views and schemas it caches (`State::flag_view`, the
    // schemas compiled when the catalog loads).
    ("kernel/state.rs", "config"),
    ("kernel/state.rs", "flags"),
];

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
fn no_feature_reaches_the_facade() {
    for (rel, module, reaches) in graph() {
        if FEATURES.contains(&module.as_str()) {
            assert!(
                !reaches.contains("service"),
                "{rel} reaches the façade: a feature takes the kernel (and what else it needs) in its handle"
            );
        }
    }
}

/// The types the kernel's files declare (`struct`, `enum`, `trait`).
fn kernel_types() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&src().join("kernel"), &mut files);
    let mut out = BTreeSet::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        for line in text.lines() {
            let line = line.trim_start();
            let line = line
                .strip_prefix("pub(crate) ")
                .or_else(|| line.strip_prefix("pub "))
                .unwrap_or(line);
            for kw in ["struct ", "enum ", "trait "] {
                if let Some(rest) = line.strip_prefix(kw) {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    out.insert(name);
                }
            }
        }
    }
    out
}

/// The type an inherent `impl` line is for (`impl<'a> a::B<'a> {` → `B`);
/// `None` for a trait impl or a line that is no impl.
fn inherent_impl_of(line: &str) -> Option<String> {
    let rest = line.trim_start().strip_prefix("impl")?;
    if !(rest.starts_with(' ') || rest.starts_with('<')) || rest.contains(" for ") {
        return None;
    }
    let mut rest = rest.trim_start();
    if rest.starts_with('<') {
        let mut depth = 0;
        let end = rest.char_indices().find_map(|(i, c)| {
            match c {
                '<' => depth += 1,
                '>' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(i + 1);
                    }
                }
                _ => {}
            }
            None
        })?;
        rest = rest[end..].trim_start();
    }
    let path: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    path.rsplit("::").next().map(str::to_owned)
}

#[test]
fn only_the_kernel_adds_methods_to_its_types() {
    let types = kernel_types();
    assert!(
        types.contains("Kernel") && types.contains("State"),
        "{types:?}"
    );
    for (rel, module, _) in graph() {
        if module == "kernel" {
            continue;
        }
        let text = std::fs::read_to_string(src().join(&rel)).expect("read");
        for line in text.lines() {
            if let Some(ty) = inherent_impl_of(line).filter(|t| types.contains(t)) {
                panic!(
                    "{rel}: `{}` adds methods to the kernel's {ty}: put them in a feature's handle",
                    line.trim()
                );
            }
        }
    }
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
    let of = |l: &str| inherent_impl_of(l);
    assert_eq!(of("impl Kernel {").as_deref(), Some("Kernel"));
    assert_eq!(of("impl<'a> super::State<'a> {").as_deref(), Some("State"));
    assert_eq!(
        of("impl crate::kernel::Kernel {").as_deref(),
        Some("Kernel")
    );
    assert_eq!(of("impl From<Stale> for Error {"), None);
    assert_eq!(of("    implied Kernel {"), None);
}
