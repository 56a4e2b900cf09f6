//! Fixtures: a private copy of results/ to add broken records to.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A fresh directory under the target dir, unique to this test.
pub fn scratch(name: &str) -> PathBuf {
    let d = root()
        .join("target/test-scratch")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// The first committed smoke record.
pub fn smoke_record() -> PathBuf {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("results/smoke"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v.remove(0)
}

pub fn thresholds() -> rtbench_site::regress::Thresholds {
    rtbench_site::regress::Thresholds::read(&root().join("site/regress.toml")).unwrap()
}

/// Edits a record's summary.json.
pub fn edit_summary(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("summary.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}
