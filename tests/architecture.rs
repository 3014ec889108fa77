//! The architecture invariants of ARCHITECTURE.md, checked on the source: policy modules import no
//! infrastructure, no import cycle between files, no file over 500 lines. Reads `src/` as text:
//! every `crate::`, `super::` and child-module path, in `use` trees and inline, is resolved to the
//! file it names (the longest prefix that is a module file).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Policy modules, and the infrastructure they must not import.
const POLICY: &[&str] = &["capacity", "admission", "allocator", "routing", "guard"];
const INFRASTRUCTURE: &[&str] = &["api", "serve", "state", "store", "metering", "cli"];
const MAX_LINES: usize = 500;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file: `src/a/b.rs` and `src/a/b/mod.rs` are `["a", "b"]`.
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    match last.as_str() {
        "mod.rs" | "lib.rs" | "main.rs" => {}
        other => parts.push(other.trim_end_matches(".rs").to_string()),
    }
    parts
}

/// The file that defines module `path`, if it is a file of its own.
fn file_of(path: &[String]) -> Option<PathBuf> {
    if path.is_empty() {
        return Some(src().join("lib.rs"));
    }
    let base = path.iter().fold(src(), |p, s| p.join(s));
    [base.with_extension("rs"), base.join("mod.rs")].into_iter().find(|p| p.exists())
}

/// The file a path in `module` names: the longest prefix of it that is a module file.
fn resolve(module: &[String], path: &[String]) -> Option<PathBuf> {
    let mut abs: Vec<String> = Vec::new();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => rest = &rest[1..],
        Some("super") | Some("self") => {
            abs = module.to_vec();
            while let Some(s) = rest.first().map(String::as_str) {
                match s {
                    "super" => {
                        abs.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
        }
        // A child module named without a prefix (`use writer::X` in `metering/mod.rs`).
        Some(first) => {
            let mut child = module.to_vec();
            child.push(first.to_string());
            file_of(&child)?;
            abs = module.to_vec();
        }
        None => return None,
    }
    abs.extend(rest.iter().cloned());
    (0..=abs.len()).rev().find_map(|n| file_of(&abs[..n]))
}

/// Removes comments, string literals and the inline test module (`#[cfg(test)] mod tests`, whose
/// `super` is the file itself), so that none is read as an import.
fn code_only(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod ") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let line = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut in_str = false;
        let mut prev = ' ';
        for c in line.chars() {
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                out.push(c);
            }
            prev = c;
        }
        out.push('\n');
    }
    out
}

/// Expands a `use` tree (`a::{b, c::{d, e as f}}`) into its paths.
fn expand(tree: &str) -> Vec<Vec<String>> {
    fn segments(s: &str) -> Vec<String> {
        s.split("::").map(|x| x.split_whitespace().next().unwrap_or("").to_string()).filter(|x| !x.is_empty()).collect()
    }
    fn go(prefix: &[String], t: &str, out: &mut Vec<Vec<String>>) {
        let t = t.trim();
        let mut p = prefix.to_vec();
        match t.find('{') {
            Some(open) => {
                p.extend(segments(&t[..open]));
                let inner = &t[open + 1..t.rfind('}').unwrap_or(t.len())];
                let (mut depth, mut start) = (0, 0);
                for (i, c) in inner.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            go(&p, &inner[start..i], out);
                            start = i + 1;
                        }
                        _ => {}
                    }
                }
                go(&p, &inner[start..], out);
            }
            None if !t.is_empty() => {
                p.extend(segments(t));
                out.push(p);
            }
            None => {}
        }
    }
    let mut out = Vec::new();
    go(&[], tree, &mut out);
    out
}

/// Every path a file's code names: `use` trees, and inline `crate::`/`super::` paths.
fn paths_in(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().last();
        let after = &rest[i + 4..];
        rest = after;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(end) = after.find(';') {
            out.extend(expand(&after[..end]));
        }
    }
    let bytes = code.as_bytes();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start).map(|i| i + from) {
            from = i + start.len();
            if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_') {
                continue;
            }
            let end =
                code[i..].find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).map_or(code.len(), |e| e + i);
            out.push(code[i..end].split("::").filter(|s| !s.is_empty()).map(str::to_string).collect());
        }
    }
    out
}

/// Each file's imports as the files they name.
fn graph() -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut g = BTreeMap::new();
    for f in files {
        let code = code_only(&std::fs::read_to_string(&f).unwrap());
        let module = module_of(&f);
        let deps: BTreeSet<PathBuf> =
            paths_in(&code).iter().filter_map(|p| resolve(&module, p)).filter(|d| *d != f).collect();
        g.insert(f, deps);
    }
    g
}

fn rel(p: &Path) -> String {
    p.strip_prefix(src()).unwrap().display().to_string()
}

#[test]
fn policy_modules_import_no_infrastructure() {
    let mut bad = Vec::new();
    for (file, deps) in graph() {
        let module = module_of(&file);
        if !module.first().is_some_and(|m| POLICY.contains(&m.as_str())) {
            continue;
        }
        for d in deps {
            let target = module_of(&d);
            if target.first().is_some_and(|m| INFRASTRUCTURE.contains(&m.as_str())) {
                bad.push(format!("{} imports {}", rel(&file), rel(&d)));
            }
        }
    }
    assert!(bad.is_empty(), "policy modules must not import infrastructure:\n{}", bad.join("\n"));
}

#[test]
fn no_import_cycle_between_files() {
    let g = graph();
    // Depth-first search with colours; report the first cycle found, as a path of files.
    fn visit(
        n: &PathBuf,
        g: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        state: &mut BTreeMap<PathBuf, u8>,
        stack: &mut Vec<PathBuf>,
    ) -> Option<Vec<PathBuf>> {
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        for d in g.get(n).into_iter().flatten() {
            match state.get(d).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|x| x == d).unwrap();
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(d.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(d, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.clone(), 2);
        None
    }
    // Report every cycle: after one is found, its closing edge is removed and the search rerun.
    let mut g = g;
    let mut cycles = Vec::new();
    loop {
        let mut state = BTreeMap::new();
        let found = g.keys().cloned().collect::<Vec<_>>().into_iter().find_map(|n| {
            (state.get(&n).copied().unwrap_or(0) == 0).then(|| visit(&n, &g, &mut state, &mut Vec::new())).flatten()
        });
        let Some(c) = found else { break };
        let names: Vec<String> = c.iter().map(|p| rel(p)).collect();
        cycles.push(names.join(" -> "));
        let (from, to) = (&c[c.len() - 2], &c[c.len() - 1]);
        g.get_mut(from).unwrap().remove(to);
    }
    assert!(cycles.is_empty(), "import cycles between files:\n{}", cycles.join("\n"));
}

#[test]
fn no_source_file_over_500_lines() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > MAX_LINES).then(|| format!("{} has {n} lines", rel(f)))
        })
        .collect();
    assert!(long.is_empty(), "files over {MAX_LINES} lines:\n{}", long.join("\n"));
}

/// The checker itself: it finds a forbidden import and a cycle where there is one.
#[test]
fn the_checker_resolves_use_trees_and_relative_paths() {
    let paths = expand("crate::{state::{PoolView, SharedState}, units::Rates as R}");
    assert_eq!(paths.len(), 3);
    assert_eq!(paths[0], ["crate", "state", "PoolView"]);
    let admission = vec!["admission".to_string(), "round".to_string()];
    let to = |p: &str| resolve(&admission, &p.split("::").map(str::to_string).collect::<Vec<_>>()).map(|f| rel(&f));
    assert_eq!(to("crate::state::SharedState").as_deref(), Some("state/mod.rs"));
    assert_eq!(to("crate::state::redis::RedisState").as_deref(), Some("state/redis.rs"));
    assert_eq!(to("super::reservation::Reservation").as_deref(), Some("admission/reservation.rs"));
    assert_eq!(to("super::decide").as_deref(), Some("admission/mod.rs"));
    let inline = paths_in("fn f() { let x = crate::metering::unix_ms(); }");
    assert_eq!(inline, vec![vec!["crate".to_string(), "metering".into(), "unix_ms".into()]]);
}
