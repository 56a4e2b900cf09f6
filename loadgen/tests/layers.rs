//! The module layering ARCHITECTURE.md states, checked on the sources: no
//! import circle among loadgen's modules, and the controller and the worker
//! apart, speaking only through `wire`. Read from the text (`crate::m` and
//! `super::m` paths) so a new circle fails here before anyone has to find it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module (`worker::connect`, `stats`, ...) and the modules it names.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
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
        let rel = f.strip_prefix(&src).unwrap().with_extension("");
        let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into()).collect();
        if parts.last().is_some_and(|l| l == "mod") {
            parts.pop();
        }
        let name = parts.join("::");
        if name == "lib" || name == "main" {
            continue;
        }
        let parent = parts[..parts.len() - 1].join("::");
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
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if n.is_empty() || n == "self" {
                        continue;
                    }
                    let m = if base.is_empty() {
                        n
                    } else {
                        format!("{base}::{n}")
                    };
                    if m != name {
                        deps.insert(m);
                    }
                }
            }
        }
        graph.insert(name, deps);
    }
    graph
}

#[test]
fn no_module_reaches_itself_through_its_imports() {
    let graph = dependencies();
    assert!(graph.contains_key("worker::connect"), "{graph:?}");
    // Depth-first from each module: a path back to it is a circle.
    for start in graph.keys() {
        let mut stack: Vec<Vec<&String>> = vec![vec![start]];
        let mut seen = BTreeSet::new();
        while let Some(path) = stack.pop() {
            let last = *path.last().unwrap();
            for d in graph.get(last).into_iter().flatten() {
                assert!(d != start, "import circle: {path:?} -> {d}");
                if seen.insert(d) {
                    let mut next = path.clone();
                    next.push(d);
                    stack.push(next);
                }
            }
        }
    }
}

#[test]
fn the_controller_and_the_worker_meet_only_in_wire() {
    for (m, deps) in dependencies() {
        for d in deps {
            let side = |x: &str| x.split("::").next().unwrap().to_string();
            let (from, to) = (side(&m), side(&d));
            if from != to && (to == "controller" || to == "worker") {
                panic!("{m} depends on {d}: only main.rs may use the controller or the worker");
            }
        }
    }
    let wire = &dependencies()["wire"];
    assert!(
        wire.iter().all(|d| d == "stats"),
        "wire depends on {wire:?}"
    );
}
