//! System packages a task needs, installed by the task itself.
//!
//! A newcomer runs two commands (README): the main job and the tests. Both
//! must work on a fresh machine, so whatever they need from the system
//! (redis-server for the bus, Chromium for the site's browser test, sshd and
//! iproute2 for the remote-hosts test, docker-registry and fuse-overlayfs
//! for the swarm test, the workflow linters) is checked here
//! and installed when missing: with Debian's apt-get as root, or, where that
//! is not possible, refused with the one command that installs it.

use std::process::{Command, Stdio};

/// A system package and how to tell whether it is there.
pub struct Package {
    /// Debian's package name.
    pub debian: &'static str,
    /// A command (or absolute path) that exists once it is installed.
    pub provides: &'static str,
    /// What needs it, for the message.
    pub why: &'static str,
}

pub const REDIS: Package = Package {
    debian: "redis-server",
    provides: "redis-server",
    why: "the Redis event bus of multi-process runs and its tests",
};

/// What `cargo xtask ci`'s tests start.
pub const TEST_PACKAGES: [Package; 7] = [
    REDIS,
    Package {
        debian: "chromium",
        provides: "chromium",
        why: "the site's browser test",
    },
    Package {
        debian: "openssh-server",
        provides: "/usr/sbin/sshd",
        why: "the --hosts test: sshd in network namespaces",
    },
    Package {
        debian: "openssh-client",
        provides: "ssh",
        why: "the --hosts test",
    },
    Package {
        debian: "iproute2",
        provides: "ip",
        why: "network namespaces (bench --tune, the --hosts and --on swarm tests)",
    },
    Package {
        debian: "docker-registry",
        provides: "docker-registry",
        why: "the --on swarm test: the registry its nodes pull from",
    },
    Package {
        debian: "fuse-overlayfs",
        provides: "fuse-overlayfs",
        why: "the --on swarm test: the storage of its nodes' dockerds",
    },
];

/// What the `peers` suite's servers run on: Node's `ws` from Debian.
pub const PEER_PACKAGES: [Package; 2] = [
    Package {
        debian: "nodejs",
        provides: "node",
        why: "the peers suite's Node `ws` server",
    },
    Package {
        debian: "node-ws",
        provides: "/usr/share/nodejs/ws/package.json",
        why: "the peers suite's Node `ws` server",
    },
];

/// What a suite's servers need (its `[setup]`), installed and built: the
/// bench runs it before the suite, `cargo xtask ci` before the tests that
/// start those servers.
pub fn ensure_suite(setup: &crate::suite::Setup, why: &str) -> anyhow::Result<()> {
    ensure_debian(&setup.apt, why)?;
    for p in &setup.pip {
        ensure_python_module(&p.module, &p.package, why)?;
    }
    for package in &setup.cargo {
        crate::cargo(&["build", "--release", "--quiet", "-p", package])?;
    }
    for dir in &setup.go {
        build_go(dir)?;
    }
    Ok(())
}

/// Where a Go peer is built: `target/peers/<last component of its dir>`.
pub fn go_binary(dir: &str) -> std::path::PathBuf {
    let name = std::path::Path::new(dir)
        .file_name()
        .map_or("peer".into(), |n| n.to_string_lossy().into_owned());
    crate::root().join("target/peers").join(name)
}

/// Builds the Go main package in `dir` (under the workspace) with
/// Debian's Go and its packaged libraries only: GOPATH mode over
/// /usr/share/gocode, no module proxy, so it builds offline or not at all.
fn build_go(dir: &str) -> anyhow::Result<()> {
    let out = go_binary(dir);
    eprintln!("xtask: setup: go build {dir} -> {}", out.display());
    let cache = crate::root().join("target/peers/go-cache");
    run_quiet(
        Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg(".")
            .current_dir(crate::root().join(dir))
            .env("GO111MODULE", "off")
            .env("GOPATH", "/usr/share/gocode")
            .env("GOPROXY", "off")
            .env("GOFLAGS", "")
            .env("GOCACHE", &cache),
    )
}

/// Whether `version` is what `pattern` pins: equal, or starting with what
/// comes before a trailing `*` (apt's own version glob).
fn version_matches(version: &str, pattern: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => version.starts_with(prefix),
        None => version == pattern,
    }
}

/// The version dpkg lists as installed for package `name`, if any.
fn installed_version(name: &str) -> Option<String> {
    let o = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}|${Version}", name])
        .output()
        .ok()?;
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let (status, version) = out.split_once('|')?;
    status
        .contains("install ok installed")
        .then(|| version.to_string())
}

/// Installs the Debian packages of `names` that dpkg does not list as
/// installed (`why` says what needs them). A name may pin a version as apt
/// does (`nats-server=2.9.10*`): as root, another version installed is
/// replaced; otherwise (a CI runner on another distribution, say) it is
/// kept and said.
pub fn ensure_debian(names: &[String], why: &str) -> anyhow::Result<()> {
    let installed = |spec: &str| {
        let (name, pin) = spec.split_once('=').unwrap_or((spec, "*"));
        installed_version(name).is_some_and(|v| version_matches(&v, pin))
    };
    let missing: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|spec| {
            if installed(spec) {
                return false;
            }
            let (name, pin) = spec.split_once('=').unwrap_or((spec, "*"));
            match installed_version(name) {
                Some(other) if !is_root() => {
                    eprintln!(
                        "xtask: setup: {name} {other} is installed where {pin} is pinned; not root, so it stays ({why})"
                    );
                    false
                }
                _ => true,
            }
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: setup: installing {} ({why})", missing.join(", "));
    apt_install(&missing)?;
    match missing.iter().find(|n| !installed(n)) {
        Some(n) => Err(anyhow::anyhow!(
            "installed {} but {n} is still missing",
            missing.join(", ")
        )),
        None => Ok(()),
    }
}

/// Installs a Python module from PyPI when `import` cannot find it, or
/// when `package` pins a version (`uvicorn==0.55.0`) and another is there.
pub fn ensure_python_module(module: &str, package: &str, why: &str) -> anyhow::Result<()> {
    let check = match package.split_once("==") {
        Some((dist, version)) => format!(
            "import {module}, importlib.metadata as m; assert m.version('{dist}') == '{version}'"
        ),
        None => format!("import {module}"),
    };
    let importable = || {
        Command::new("python3")
            .args(["-c", &check])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if importable() {
        return Ok(());
    }
    eprintln!("xtask: setup: pip install {package} ({why})");
    run_quiet(Command::new("python3").args([
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        "--root-user-action=ignore",
        package,
    ]))?;
    if importable() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "installed {package} but `{check}` still fails"
        ))
    }
}

/// Python tools from PyPI the workflow checks run: (package, command).
pub const PYTHON_TOOLS: [(&str, &str); 2] = [
    ("check-jsonschema", "check-jsonschema"),
    ("zizmor", "zizmor"),
];

fn present(what: &str) -> bool {
    if what.starts_with('/') {
        return std::path::Path::new(what).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(what).is_file()))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn run_quiet(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {shown}: {e:#}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        Err(anyhow::anyhow!(
            "{shown} failed ({}):\n{}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    }
}

/// `apt-get install`s `names` as root, or says the one command that would.
fn apt_install(names: &[&str]) -> anyhow::Result<()> {
    if !is_root() || !present("apt-get") {
        return Err(anyhow::anyhow!(
            "missing system packages: {}; install them with: sudo apt-get update && sudo apt-get install -y {}",
            names.join(", "),
            names.join(" ")
        ));
    }
    run_quiet(Command::new("apt-get").args(["update", "-qq"]))?;
    run_quiet(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(names)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Installs the missing ones of `packages` with apt-get, or explains how.
pub fn ensure(packages: &[Package]) -> anyhow::Result<()> {
    let missing: Vec<&Package> = packages.iter().filter(|p| !present(p.provides)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|p| p.debian).collect();
    for p in &missing {
        eprintln!("xtask: setup: installing {} ({})", p.debian, p.why);
    }
    apt_install(&names)?;
    let still: Vec<&str> = missing
        .iter()
        .filter(|p| !present(p.provides))
        .map(|p| p.debian)
        .collect();
    if still.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "installed {} but {} still missing",
            names.join(", "),
            still.join(", ")
        ))
    }
}

/// Installs the missing Python tools with pip.
pub fn ensure_python_tools() -> anyhow::Result<()> {
    let missing: Vec<&str> = PYTHON_TOOLS
        .iter()
        .filter(|(_, cmd)| !present(cmd))
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: setup: pip install {}", missing.join(" "));
    run_quiet(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--root-user-action=ignore",
            ])
            .args(&missing),
    )
}

/// Adds rustfmt and clippy to the toolchain when they are missing.
pub fn ensure_rust_components() -> anyhow::Result<()> {
    let has = |args: &[&str]| {
        Command::new("cargo")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if has(&["fmt", "--version"]) && has(&["clippy", "--version"]) {
        return Ok(());
    }
    eprintln!("xtask: setup: rustup component add rustfmt clippy");
    run_quiet(Command::new("rustup").args(["component", "add", "rustfmt", "clippy"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_versions_match_as_apt_globs_them() {
        assert!(version_matches("2.9.10-1+b3", "2.9.10*"));
        assert!(version_matches("2.9.10-1+b3", "*"));
        assert!(!version_matches("2.9.11-1", "2.9.10*"));
        assert!(version_matches("1.2", "1.2") && !version_matches("1.2.1", "1.2"));
    }
}
