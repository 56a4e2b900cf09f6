//! The layering ARCHITECTURE.md states, checked on the sources of every
//! crate in the workspace: no import circle among a crate's modules, the
//! load generator's controller and worker apart, speaking only through
//! `wire`, and `rtbench-sys` a leaf (checked on `Cargo.lock`, so a crate it
//! reaches through another counts too), the one crate that asks the OS
//! for CPU time, RSS, /proc, socket options and limits. Read from the text (`crate::`, `super::` and `self::` paths, use
//! trees with nested braces, names the crate root re-exports), so a new
//! circle fails here before anyone has to find it.
//!
//! A module contains its submodules: what `reactor::handshake` uses,
//! `reactor` uses, so a circle through a submodule is a circle. A module's
//! use of its own ancestors or descendants is not an edge: a submodule is a
//! part of its parent (`server`'s `reactor/session.rs` is the `impl Reactor`
//! for a connection's messages).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path inside a crate, `["reactor", "handshake"]`; the crate root
/// is empty.
type Module = Vec<String>;

/// Every crate's `src/`, found from the workspace's members.
fn crate_sources() -> Vec<PathBuf> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let line = manifest.lines().find(|l| l.starts_with("members")).unwrap();
    let members: Vec<PathBuf> = line
        .split('"')
        .skip(1)
        .step_by(2)
        .map(|m| root().join(m).join("src"))
        .collect();
    assert!(members.len() >= 8, "{line}");
    members
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The crate's modules, each with its source text (tests and comments
/// removed); the crate root's files (`lib.rs`, `main.rs`) under `[]`.
fn modules(src: &Path) -> BTreeMap<Module, String> {
    let mut out: BTreeMap<Module, String> = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Module = rel.iter().map(|s| s.to_string_lossy().into()).collect();
            // Separate binaries sit above every module.
            if parts[0] == "bin" {
                continue;
            }
            if parts.last().is_some_and(|l| l == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                parts.clear();
            }
            let text = std::fs::read_to_string(&p).unwrap();
            // Test modules may reach anywhere: only what ships is layered.
            let text = text.split("#[cfg(test)]").next().unwrap();
            let code: String = text
                .lines()
                .map(|l| l.split("//").next().unwrap())
                .collect::<Vec<_>>()
                .join("\n");
            out.entry(parts).or_default().push_str(&code);
        }
    }
    out
}

/// The paths a use tree or path expression at the start of `s` names, each
/// as its segments: `a::{b::C, d}` gives `[a, b, C]` and `[a, d]`.
fn paths(s: &str) -> Vec<Vec<String>> {
    fn tree(s: &str, at: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
        let b = s.as_bytes();
        let mut path = prefix.to_vec();
        loop {
            while *at < b.len() && b[*at].is_ascii_whitespace() {
                *at += 1;
            }
            if *at < b.len() && b[*at] == b'{' {
                *at += 1;
                loop {
                    tree(s, at, &path, out);
                    while *at < b.len() && b[*at].is_ascii_whitespace() {
                        *at += 1;
                    }
                    match b.get(*at) {
                        Some(b',') => *at += 1,
                        Some(b'}') => {
                            *at += 1;
                            return;
                        }
                        _ => return,
                    }
                    while *at < b.len() && b[*at].is_ascii_whitespace() {
                        *at += 1;
                    }
                    if b.get(*at) == Some(&b'}') {
                        *at += 1;
                        return;
                    }
                }
            }
            let start = *at;
            while *at < b.len() && (b[*at].is_ascii_alphanumeric() || b[*at] == b'_') {
                *at += 1;
            }
            if *at == start {
                break;
            }
            path.push(s[start..*at].to_string());
            if s[*at..].starts_with("::") {
                *at += 2;
            } else {
                break;
            }
        }
        out.push(path);
    }
    let mut out = Vec::new();
    tree(s, &mut 0, &[], &mut out);
    out
}

/// Each module and the modules it uses, resolved to the longest module a
/// path names (`crate::reactor::Reactors` is `reactor`); uses of its own
/// ancestors and descendants left out.
fn dependencies(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mods = modules(src);
    // Names the crate root re-exports: `pub use config::Config;`.
    let mut reexports: BTreeMap<String, Module> = BTreeMap::new();
    for (i, _) in mods[&Vec::new()].match_indices("pub use ") {
        for p in paths(&mods[&Vec::new()][i + "pub use ".len()..]) {
            if let Some(name) = p.last() {
                reexports.insert(name.clone(), p[..p.len() - 1].to_vec());
            }
        }
    }
    let resolve = |mut full: Module| -> Option<Module> {
        if let Some(m) = full.first().and_then(|f| reexports.get(f)) {
            full = m.clone();
        }
        (1..=full.len())
            .rev()
            .map(|n| full[..n].to_vec())
            .find(|m| mods.contains_key(m))
    };
    let mut graph = BTreeMap::new();
    for (name, text) in &mods {
        if name.is_empty() {
            continue;
        }
        let mut deps = BTreeSet::new();
        for (i, _) in text.match_indices("::") {
            // The start of the path this `::` continues, if it starts here.
            let head_start = text[..i]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map_or(0, |j| j + 1);
            if head_start + text[head_start..i].find("::").unwrap_or(i - head_start) != i {
                continue; // not the path's first `::`
            }
            let head = &text[head_start..i];
            let base: Module = match head {
                "crate" => Vec::new(),
                "self" => name.clone(),
                "super" => {
                    // `super::super::x`: one level up per `super`.
                    let mut up = 1;
                    let mut rest = &text[i + 2..];
                    while let Some(r) = rest.strip_prefix("super::") {
                        up += 1;
                        rest = r;
                    }
                    name[..name.len().saturating_sub(up)].to_vec()
                }
                _ => continue,
            };
            let mut rest = &text[i + 2..];
            while let Some(r) = rest.strip_prefix("super::") {
                rest = r;
            }
            for p in paths(rest) {
                let full: Module = base.iter().cloned().chain(p).collect();
                if let Some(m) = resolve(full)
                    && !m.starts_with(name)
                    && !name.starts_with(&m)
                {
                    deps.insert(m);
                }
            }
        }
        graph.insert(name.clone(), deps);
    }
    graph
}

/// The import circles among the children of each module (and of the crate
/// root): a child stands for everything inside it.
fn circles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    let mut containers: BTreeSet<Module> =
        graph.keys().map(|m| m[..m.len() - 1].to_vec()).collect();
    containers.insert(Vec::new());
    let mut found = Vec::new();
    for c in containers {
        let child = |m: &Module| -> Option<Module> {
            (m.len() > c.len() && m.starts_with(&c)).then(|| m[..=c.len()].to_vec())
        };
        let mut level: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
        for (from, deps) in graph {
            let Some(a) = child(from) else { continue };
            for to in deps {
                if let Some(b) = child(to)
                    && a != b
                {
                    level.entry(a.clone()).or_default().insert(b);
                }
            }
        }
        for start in level.keys() {
            if let Some(c) = circle_through(&level, start) {
                found.push(c);
            }
        }
    }
    found
}

/// A path from `start` back to itself, if there is one.
fn circle_through(
    graph: &BTreeMap<Module, BTreeSet<Module>>,
    start: &Module,
) -> Option<Vec<Module>> {
    let mut stack: Vec<Vec<&Module>> = vec![vec![start]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = *path.last().unwrap();
        for d in graph.get(last).into_iter().flatten() {
            if d == start {
                return Some(path.iter().map(|m| m.to_vec()).chain([d.clone()]).collect());
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

fn show(c: &[Module]) -> String {
    c.iter()
        .map(|m| m.join("::"))
        .collect::<Vec<_>>()
        .join(" -> ")
}

fn module(path: &str) -> Module {
    path.split("::").map(String::from).collect()
}

#[test]
fn no_module_of_any_crate_reaches_itself_through_its_imports() {
    let mut all = Vec::new();
    for src in crate_sources() {
        for c in circles(&dependencies(&src)) {
            all.push(format!("{}: {}", src.display(), show(&c)));
        }
    }
    assert!(all.is_empty(), "import circles:\n{}", all.join("\n"));
}

#[test]
fn the_reader_sees_nested_trees_supers_and_reexports() {
    assert_eq!(
        paths("a::{b::{C, d}, e}, rest"),
        [vec!["a", "b", "C"], vec!["a", "b", "d"], vec!["a", "e"]]
    );
    let server = dependencies(&root().join("server/src"));
    // `use crate::reactor::Reactors;` is the module `reactor`.
    assert!(
        server[&module("http")].contains(&module("reactor")),
        "{:?}",
        server[&module("http")]
    );
    // `super::{Reactor, token}` from a submodule is its parent: no edge.
    assert!(!server[&module("reactor::handshake")].contains(&module("reactor")));
    let loadgen = dependencies(&root().join("loadgen/src"));
    assert!(
        loadgen.contains_key(&module("worker::connect")),
        "{loadgen:?}"
    );
}

#[test]
fn a_circle_through_a_submodule_is_found() {
    let server = dependencies(&root().join("server/src"));
    assert!(circles(&server).is_empty());
    // The circle this layering removed: the handshake calling the HTTP side,
    // which reaches the reactors.
    let mut planted = server.clone();
    planted
        .get_mut(&module("reactor::handshake"))
        .unwrap()
        .insert(module("http"));
    let found = circles(&planted);
    assert!(
        found
            .iter()
            .any(|c| c.contains(&module("http")) && c.contains(&module("reactor"))),
        "{found:?}"
    );
    // And between two parts of one module.
    let mut planted = server.clone();
    planted
        .get_mut(&module("reactor::handshake"))
        .unwrap()
        .insert(module("reactor::session"));
    planted
        .get_mut(&module("reactor::session"))
        .unwrap()
        .insert(module("reactor::handshake"));
    assert!(!circles(&planted).is_empty());
}

#[test]
fn the_controller_and_the_worker_meet_only_in_wire() {
    let graph = dependencies(&root().join("loadgen/src"));
    for (m, deps) in &graph {
        for d in deps {
            let (from, to) = (m[0].as_str(), d[0].as_str());
            if from != to && (to == "controller" || to == "worker") {
                panic!(
                    "{} depends on {}: only main.rs may use the controller or the worker",
                    m.join("::"),
                    d.join("::")
                );
            }
        }
    }
    let wire = &graph[&module("wire")];
    assert!(
        wire.iter().all(|d| *d == module("stats")),
        "wire depends on {wire:?}"
    );
}

/// Each package `Cargo.lock` lists, by name, with the names of the packages
/// it depends on (normal, build and dev dependencies alike).
fn locked_packages() -> BTreeMap<String, Vec<String>> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).unwrap();
    let mut packages = BTreeMap::new();
    for entry in lock.split("[[package]]").skip(1) {
        let name = entry
            .lines()
            .find_map(|l| l.strip_prefix("name = "))
            .unwrap()
            .trim_matches('"')
            .to_string();
        let deps: Vec<String> = entry
            .split_once("dependencies = [")
            .map(|(_, list)| list.split(']').next().unwrap())
            .into_iter()
            .flat_map(|list| list.split('"').skip(1).step_by(2))
            // `name version` where two versions are locked.
            .map(|d| d.split(' ').next().unwrap().to_string())
            .collect();
        packages.insert(name, deps);
    }
    packages
}

/// Every package `name` reaches through its dependencies, itself excluded.
fn reached_from(packages: &BTreeMap<String, Vec<String>>, name: &str) -> BTreeSet<String> {
    let mut reached = BTreeSet::new();
    let mut next = packages[name].clone();
    while let Some(p) = next.pop() {
        if reached.insert(p.clone()) {
            next.extend(packages.get(&p).cloned().unwrap_or_default());
        }
    }
    reached
}

/// The workspace's own package names, from each member's manifest.
fn workspace_packages() -> BTreeSet<String> {
    crate_sources()
        .iter()
        .map(|src| {
            let manifest =
                std::fs::read_to_string(src.parent().unwrap().join("Cargo.toml")).unwrap();
            manifest
                .lines()
                .find_map(|l| l.strip_prefix("name = "))
                .unwrap()
                .trim_matches('"')
                .to_string()
        })
        .collect()
}

/// What a leaf may not reach: a workspace crate, serde, tokio.
fn forbidden_for_a_leaf(reached: &BTreeSet<String>) -> Vec<String> {
    let ours = workspace_packages();
    reached
        .iter()
        .filter(|p| ours.contains(*p) || p.starts_with("serde") || p.starts_with("tokio"))
        .cloned()
        .collect()
}

#[test]
fn rtbench_sys_depends_on_no_workspace_crate_nor_serde_nor_tokio() {
    let packages = locked_packages();
    let reached = reached_from(&packages, "rtbench-sys");
    let forbidden = forbidden_for_a_leaf(&reached);
    assert!(
        forbidden.is_empty(),
        "rtbench-sys is a leaf every crate may use, but it reaches {forbidden:?} (all it reaches: {reached:?})"
    );
}

#[test]
fn rtbench_record_depends_on_serde_and_its_formats_only() {
    let packages = locked_packages();
    let formats = ["csv", "serde", "serde_json", "toml"];
    let other: Vec<&String> = packages["rtbench-record"]
        .iter()
        .filter(|d| !formats.contains(&d.as_str()))
        .collect();
    assert!(
        other.is_empty(),
        "rtbench-record is the schema (serde and its formats), read by every crate; it depends on {other:?} too"
    );
}

/// The workspace's floors, bottom up: each crate and the workspace crates
/// it may use (ARCHITECTURE.md's table says why). Anything else is a layer
/// reaching up or sideways. Tests aside: the load generator's tests start
/// the real server (`DEV_ALLOWED`).
const FLOORS: [(&str, &[&str]); 10] = [
    ("rtbench-sys", &[]),
    ("rtbench-protocol", &[]),
    ("rtbench-record", &[]),
    ("rtbench-peer-tungstenite", &[]),
    ("rtbench-roofline", &["rtbench-record", "rtbench-sys"]),
    ("rtbench-server", &["rtbench-protocol", "rtbench-sys"]),
    ("rtbench-fuzz", &["rtbench-protocol", "rtbench-server"]),
    (
        "rtbench-loadgen",
        &["rtbench-protocol", "rtbench-record", "rtbench-sys"],
    ),
    ("rtbench-site", &["rtbench-record"]),
    (
        "xtask",
        &["rtbench-protocol", "rtbench-record", "rtbench-sys"],
    ),
];

/// What a crate's tests may use besides its floor.
const DEV_ALLOWED: [(&str, &str); 1] = [("rtbench-loadgen", "rtbench-server")];

/// A crate's workspace dependencies outside its floor's allowance (a
/// test-only one allowed where `DEV_ALLOWED` says).
fn above_its_floor(
    packages: &BTreeMap<String, Vec<String>>,
    ours: &BTreeSet<String>,
    floors: &[(&str, &[&str])],
) -> Vec<String> {
    let mut wrong = Vec::new();
    for (name, allowed) in floors {
        for d in &packages[*name] {
            let for_tests = DEV_ALLOWED.contains(&(*name, d.as_str()));
            if ours.contains(d) && !allowed.contains(&d.as_str()) && !for_tests {
                wrong.push(format!("{name} uses {d}"));
            }
        }
    }
    wrong
}

/// (crate, dependency) pairs.
type Pairs = BTreeSet<(String, String)>;

/// Each workspace crate's manifest dependencies by package name (normal,
/// build and dev alike), a test-only one only where it is under
/// `[dev-dependencies]`.
fn manifest_dependencies() -> (BTreeMap<String, Vec<String>>, Pairs) {
    let ours = workspace_packages();
    let mut deps = BTreeMap::new();
    let mut dev_only = BTreeSet::new();
    for src in crate_sources() {
        let manifest = std::fs::read_to_string(src.parent().unwrap().join("Cargo.toml")).unwrap();
        let name = manifest
            .lines()
            .find_map(|l| l.strip_prefix("name = "))
            .unwrap()
            .trim_matches('"')
            .to_string();
        let mut section = String::new();
        let mut list = Vec::new();
        for l in manifest.lines() {
            if l.starts_with('[') {
                section = l.to_string();
                continue;
            }
            let Some(dep) = l
                .split(['.', ' ', '='])
                .next()
                .filter(|d| ours.contains(*d))
            else {
                continue;
            };
            if section.ends_with("dependencies]") {
                list.push(dep.to_string());
                if section == "[dev-dependencies]" {
                    dev_only.insert((name.clone(), dep.to_string()));
                }
            }
        }
        deps.insert(name, list);
    }
    (deps, dev_only)
}

#[test]
fn every_crate_uses_only_the_crates_its_floor_allows() {
    let (packages, dev_only) = manifest_dependencies();
    let ours = workspace_packages();
    let listed: BTreeSet<String> = FLOORS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(listed, ours, "every workspace crate has a floor in FLOORS");
    // What tests may use is used by tests only.
    for (name, dep) in DEV_ALLOWED {
        if packages[name].iter().any(|d| d == dep) {
            assert!(
                dev_only.contains(&(name.to_string(), dep.to_string())),
                "{name} may use {dep} in its tests only"
            );
        }
    }
    let wrong = above_its_floor(&packages, &ours, &FLOORS);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The check fires: the server reaching the load generator's schema.
    let mut planted = packages.clone();
    planted
        .get_mut("rtbench-server")
        .unwrap()
        .push("rtbench-record".into());
    assert_eq!(
        above_its_floor(&planted, &ours, &FLOORS),
        ["rtbench-server uses rtbench-record"]
    );
}

/// Whether any of a crate's files holds unsafe code.
fn has_unsafe(files: &[(PathBuf, Vec<String>)]) -> bool {
    files.iter().any(|(_, lines)| {
        lines.iter().any(|l| {
            let code = l.split("//").next().unwrap();
            ["unsafe {", "unsafe fn", "unsafe impl"]
                .iter()
                .any(|u| code.contains(u))
        })
    })
}

#[test]
fn every_crate_without_unsafe_code_forbids_it() {
    let mut missing = Vec::new();
    for src in crate_sources() {
        let dir = src.parent().unwrap();
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let inherits = manifest.contains("[lints]\nworkspace = true");
        if !has_unsafe(&rust_files(dir)) && !inherits {
            missing.push(dir.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "crates with no unsafe code that do not forbid it ([lints] workspace = true): {missing:?}"
    );
    let root = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    assert!(root.contains("[workspace.lints.rust]\nunsafe_code = \"forbid\""));
}

#[test]
fn the_lock_reader_sees_what_a_crate_reaches_through_others() {
    let packages = locked_packages();
    // The server reaches its own crates, serde and tokio directly, tokio's
    // macros through tokio; libc is no workspace crate.
    let forbidden = forbidden_for_a_leaf(&reached_from(&packages, "rtbench-server"));
    for p in [
        "rtbench-protocol",
        "rtbench-sys",
        "serde",
        "tokio",
        "tokio-macros",
    ] {
        assert!(forbidden.iter().any(|f| f == p), "{p} not in {forbidden:?}");
    }
    assert!(!forbidden.iter().any(|f| f == "libc"), "{forbidden:?}");
}

/// What only `rtbench-sys` may write: a /proc path, or a call for CPU time,
/// memory, socket options, niceness or limits. In two halves, so that this
/// list is not found in this file.
const OS_QUESTIONS: [(&str, &str); 8] = [
    ("\"/", "proc"),
    ("libc::", "getrusage"),
    ("libc::", "sysconf"),
    ("libc::", "setsockopt"),
    ("libc::", "getsockopt"),
    ("libc::", "setpriority"),
    ("libc::", "getpriority"),
    ("rlimit", "::"),
];

/// Each `.rs` file under `dir` (sources, tests, benches), as its lines.
fn rust_files(dir: &Path) -> Vec<(PathBuf, Vec<String>)> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "target") {
                    dirs.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                out.push((p, text.lines().map(String::from).collect()));
            }
        }
    }
    out
}

/// `file:line: code` for each line of `files` whose code (what comes
/// before a comment) asks the OS directly.
fn os_questions(files: &[(PathBuf, Vec<String>)]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, lines) in files {
        for (i, l) in lines.iter().enumerate() {
            let l = l.split("// ").next().unwrap();
            if OS_QUESTIONS
                .iter()
                .any(|(a, b)| l.contains(&format!("{a}{b}")))
            {
                found.push(format!("{}:{}: {}", path.display(), i + 1, l.trim()));
            }
        }
    }
    found
}

#[test]
fn only_rtbench_sys_asks_the_os_for_cpu_time_memory_proc_socket_options_and_limits() {
    let mut found = Vec::new();
    for src in crate_sources() {
        let dir = src.parent().unwrap();
        if dir.ends_with("sys") {
            continue;
        }
        found.extend(os_questions(&rust_files(dir)));
    }
    assert!(
        found.is_empty(),
        "ask rtbench-sys instead (one place, every result checked):\n{}",
        found.join("\n")
    );
    // The check sees each question, and none in a comment.
    for (a, b) in OS_QUESTIONS {
        let planted = vec![
            format!("    // {a}{b} is what this would call"),
            format!("    let x = {a}{b}(1);"),
        ];
        let found = os_questions(&[(PathBuf::from("planted.rs"), planted)]);
        assert_eq!(found, [format!("planted.rs:2: let x = {a}{b}(1);")]);
    }
}
