//! The dependency order of ARCHITECTURE.md, enforced: every `crate::` path in
//! `src/` may name only a module of its own layer or a lower one, and no two
//! top-level modules may need each other (directly or round a circle). A
//! violation is named by file and line.
//!
//! Test modules (`#[cfg(test)] mod tests`) and comments are left out: a unit
//! test may build a plan to test a kind, and a doc link is not a dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::common::repo;

/// Lowest first. A new top-level module goes into one of these, and into the
/// table in src/lib.rs and ARCHITECTURE.md.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "util",
        &[
            "backoff", "cancel", "clock", "diag", "duration", "errors", "hashing", "net", "paths", "proc", "redact",
            "schedule",
        ],
    ),
    ("store", &["store"]),
    ("settings", &["config"]),
    (
        "kinds",
        &[
            "archive",
            "backup",
            "check",
            "context",
            "existing",
            "failure",
            "quarantine",
            "restored",
            "scratch",
            "source",
        ],
    ),
    ("plan", &["plan"]),
    ("record", &["db", "record"]),
    ("engine", &["engine"]),
    ("outputs", &["alert", "report"]),
    ("fleet", &["fleet"]),
    ("daemon", &["daemon"]),
    // The binary: src/main.rs and src/cli.
    ("cli", &["cli", "main"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to (`lib` for src/lib.rs).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.strip_suffix(".rs").unwrap_or(&first).to_string()
}

/// Top-level modules named by `crate::...` paths in one line, including
/// grouped ones (`use crate::{a::b, c};`).
fn named_modules(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        // `drdrill::crate::` cannot occur; a preceding identifier char means another word.
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 || (depth == 1 && c == ',') {
                    out.push(first_segment(&item));
                    item.clear();
                    if depth == 0 {
                        break;
                    }
                } else {
                    item.push(c);
                }
            }
        } else {
            out.push(first_segment(rest));
        }
    }
    out.retain(|m| !m.is_empty() && m != "self" && m != "VERSION");
    out
}

fn first_segment(path: &str) -> String {
    path.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

struct Edge {
    from: String,
    to: String,
    at: String,
}

fn edges() -> Vec<Edge> {
    let src = repo().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let from = module_of(&src, &file);
        let text = fs::read_to_string(&file).unwrap();
        let body = match text.find("#[cfg(test)]\nmod tests") {
            Some(i) => &text[..i],
            None => &text[..],
        };
        for (n, line) in body.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            let code = code.split(" //").next().unwrap_or(code);
            for to in named_modules(code) {
                if to != from && from != "lib" {
                    out.push(Edge { from: from.clone(), to, at: format!("{}:{}", file.display(), n + 1) });
                }
            }
        }
    }
    out
}

#[test]
fn no_module_imports_a_higher_layer() {
    let mut problems = Vec::new();
    for e in edges() {
        let (Some(from), Some(to)) = (layer_of(&e.from), layer_of(&e.to)) else {
            problems.push(format!("{}: module `{}` or `{}` is in no layer: add it to LAYERS", e.at, e.from, e.to));
            continue;
        };
        if to > from {
            problems.push(format!(
                "{}: `{}` ({}) uses `crate::{}` ({}), a higher layer",
                e.at, e.from, LAYERS[from].0, e.to, LAYERS[to].0
            ));
        }
    }
    assert!(problems.is_empty(), "layering violations:\n{}", problems.join("\n"));
}

#[test]
fn no_two_modules_need_each_other() {
    let all = edges();
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in &all {
        graph.entry(&e.from).or_default().insert(&e.to);
    }
    // A cycle through `a` exists iff `a` is reachable from one of its own targets.
    let mut problems = Vec::new();
    for e in &all {
        let mut seen = BTreeSet::new();
        let mut stack = vec![e.to.as_str()];
        while let Some(m) = stack.pop() {
            if m == e.from {
                problems.push(format!("{}: `{}` -> `{}` closes a cycle", e.at, e.from, e.to));
                break;
            }
            if seen.insert(m) {
                stack.extend(graph.get(m).into_iter().flatten().copied());
            }
        }
    }
    assert!(problems.is_empty(), "import cycles:\n{}", problems.join("\n"));
}

#[test]
fn grouped_imports_are_read() {
    assert_eq!(named_modules("use crate::{db::{Db, ts}, plan};"), ["db", "plan"]);
    assert_eq!(named_modules("let x = crate::net::free_port()?; crate::redact::scrub(y)"), ["net", "redact"]);
    assert!(named_modules("use drdrill::crate_like::x;").is_empty());
}
