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

/// Installs the Debian packages of `names` that dpkg does not list as
/// installed (`why` says what needs them).
pub fn ensure_debian(names: &[String], why: &str) -> Result<(), String> {
    let installed = |n: &str| {
        Command::new("dpkg-query")
            .args(["-W", "-f", "${Status}", n])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
    };
    let missing: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| !installed(n))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: setup: installing {} ({why})", missing.join(", "));
    apt_install(&missing)?;
    match missing.iter().find(|n| !installed(n)) {
        Some(n) => Err(format!(
            "installed {} but {n} is still missing",
            missing.join(", ")
        )),
        None => Ok(()),
    }
}

/// Installs a Python module from PyPI when `import` cannot find it.
pub fn ensure_python_module(module: &str, package: &str, why: &str) -> Result<(), String> {
    let importable = |m: &str| {
        Command::new("python3")
            .args(["-c", &format!("import {m}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if importable(module) {
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
    if importable(module) {
        Ok(())
    } else {
        Err(format!(
            "installed {package} but `import {module}` still fails"
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

fn run_quiet(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        Err(format!(
            "{shown} failed ({}):\n{}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    }
}

/// `apt-get install`s `names` as root, or says the one command that would.
fn apt_install(names: &[&str]) -> Result<(), String> {
    if !is_root() || !present("apt-get") {
        return Err(format!(
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
pub fn ensure(packages: &[Package]) -> Result<(), String> {
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
        Err(format!(
            "installed {} but {} still missing",
            names.join(", "),
            still.join(", ")
        ))
    }
}

/// Installs the missing Python tools with pip.
pub fn ensure_python_tools() -> Result<(), String> {
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
pub fn ensure_rust_components() -> Result<(), String> {
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
