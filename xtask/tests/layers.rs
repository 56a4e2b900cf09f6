//! The layering ARCHITECTURE.md states, checked on the sources of every
//! crate in the workspace: no import circle among a crate's modules, and
//! the load generator's controller and worker apart, speaking only through
//! `wire`. Read from the text (`crate::m` and `super::m` paths), so a new
//! circle fails here before anyone has to find it.
//!
//! A module's use of its own ancestors is not an edge: a submodule is a part
//! of its parent (`server`'s `reactor/session.rs` is the `impl Reactor` for
//! a connection's messages).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every crate's `src/`, found from the workspace's members.
fn crate_sources() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let line = manifest.lines().find(|l| l.starts_with("members")).unwrap();
    let members: Vec<PathBuf> = line
        .split('"')
        .skip(1)
        .step_by(2)
        .map(|m| root.join(m).join("src"))
        .collect();
    assert!(members.len() >= 8, "{line}");
    members
}

/// Each module of the crate at `src` (`worker::connect`, `stats`, ...) and
/// the modules it names.
fn dependencies(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let mut graph = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap().with_extension("");
        let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into()).collect();
        if parts.last().is_some_and(|l| l == "mod") {
            parts.pop();
        }
        let name = parts.join("::");
        // The crate roots and separate binaries sit above every module.
        if name == "lib" || name == "main" || parts[0] == "bin" {
            continue;
        }
        let parent = parts[..parts.len() - 1].join("::");
        let ancestors: BTreeSet<String> = (1..parts.len()).map(|i| parts[..i].join("::")).collect();
        // Test modules may reach anywhere: only what ships is layered.
        let text = std::fs::read_to_string(&f).unwrap();
        let text = text.split("#[cfg(test)]").next().unwrap();
        let mut deps = BTreeSet::new();
        for (prefix, base) in [("crate::", String::new()), ("super::", parent.clone())] {
            for (i, _) in text.match_indices(prefix) {
                let rest = &text[i + prefix.len()..];
                let names: Vec<&str> = match rest.strip_prefix('{') {
                    Some(list) => list[..list.find('}').unwrap()].split(',').collect(),
                    None => vec![rest],
                };
                for n in names {
                    let n: String = n
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    if n.is_empty() || n == "self" {
                        continue;
                    }
                    let m = if base.is_empty() {
                        n
                    } else {
                        format!("{base}::{n}")
                    };
                    if m != name && !ancestors.contains(&m) {
                        deps.insert(m);
                    }
                }
            }
        }
        graph.insert(name, deps);
    }
    graph
}

/// A path from `start` back to itself, if there is one.
fn circle_through(
    graph: &BTreeMap<String, BTreeSet<String>>,
    start: &String,
) -> Option<Vec<String>> {
    let mut stack: Vec<Vec<&String>> = vec![vec![start]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = *path.last().unwrap();
        for d in graph.get(last).into_iter().flatten() {
            if d == start {
                return Some(
                    path.iter()
                        .map(|s| s.to_string())
                        .chain([d.clone()])
                        .collect(),
                );
            }
            if seen.insert(d) {
                let mut next = path.clone();
                next.push(d);
                stack.push(next);
            }
        }
    }
    None
}

#[test]
fn no_module_of_any_crate_reaches_itself_through_its_imports() {
    let mut circles = Vec::new();
    for src in crate_sources() {
        let graph = dependencies(&src);
        for start in graph.keys() {
            if let Some(c) = circle_through(&graph, start) {
                circles.push(format!("{}: {}", src.display(), c.join(" -> ")));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_checker_sees_modules_and_finds_a_planted_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let server = dependencies(&root.join("server/src"));
    assert!(server["http"].contains("reactor"), "{:?}", server["http"]);
    assert!(server.contains_key("reactor::session"), "{server:?}");
    // Add the edge the server's layering forbids: the circle is found.
    let mut planted = server.clone();
    planted.get_mut("shared").unwrap().insert("reactor".into());
    let c = circle_through(&planted, &"shared".to_string()).expect("a circle");
    assert_eq!(
        (c.first().unwrap().as_str(), c.last().unwrap().as_str()),
        ("shared", "shared"),
        "{c:?}"
    );
}

#[test]
fn the_controller_and_the_worker_meet_only_in_wire() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let graph = dependencies(&root.join("loadgen/src"));
    assert!(graph.contains_key("worker::connect"), "{graph:?}");
    for (m, deps) in &graph {
        for d in deps {
            let side = |x: &str| x.split("::").next().unwrap().to_string();
            let (from, to) = (side(m), side(d));
            if from != to && (to == "controller" || to == "worker") {
                panic!("{m} depends on {d}: only main.rs may use the controller or the worker");
            }
        }
    }
    let wire = &graph["wire"];
    assert!(
        wire.iter().all(|d| d == "stats"),
        "wire depends on {wire:?}"
    );
}
