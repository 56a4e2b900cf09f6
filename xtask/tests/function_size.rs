//! ARCHITECTURE.md's invariant "no function in the harness over 100 lines",
//! checked on the sources: a function that long does several jobs, and the
//! harness is what a newcomer changes first (the run driver was one
//! 488-line function). The server's hot paths are held shorter by review;
//! tests may be long, so only what ships (`src/`, before `#[cfg(test)]`)
//! is measured.

use std::path::{Path, PathBuf};

/// The longest a harness function may be, in lines, signature to brace.
const MAX_LINES: usize = 100;

/// The crates that make up the harness: everything but the server under
/// test and the protocol it shares.
const HARNESS: [&str; 5] = ["xtask", "loadgen", "record", "roofline", "site"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The source with every comment, string and character literal blanked
/// (newlines kept), so braces in them are not counted.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |out: &mut String, s: &[u8]| {
        for &c in s {
            out.push(if c == b'\n' { '\n' } else { ' ' });
        }
    };
    while i < b.len() {
        let rest = &b[i..];
        let end = if rest.starts_with(b"//") {
            rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len())
        } else if rest.starts_with(b"/*") {
            rest.windows(2)
                .position(|w| w == b"*/")
                .map_or(rest.len(), |p| p + 2)
        } else if rest.starts_with(b"r#\"") || rest.starts_with(b"r\"") {
            let hashes = rest[1..].iter().take_while(|&&c| c == b'#').count();
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            let open = 2 + hashes;
            rest[open..]
                .windows(close.len())
                .position(|w| w == close)
                .map_or(rest.len(), |p| open + p + close.len())
        } else if rest[0] == b'"' {
            let mut j = 1;
            while j < rest.len() && rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            (j + 1).min(rest.len())
        } else if rest[0] == b'\'' {
            // A char literal ('x', '\n', '\u{..}'), not a lifetime ('a).
            match rest.get(1) {
                Some(b'\\') => rest[2..]
                    .iter()
                    .position(|&c| c == b'\'')
                    .map_or(1, |p| p + 3),
                Some(_) if rest.get(2) == Some(&b'\'') => 3,
                _ => 1,
            }
        } else {
            out.push(rest[0] as char);
            i += 1;
            continue;
        };
        blank(&mut out, &rest[..end]);
        i += end;
    }
    out
}

/// Every function in `code` (literals blanked): its name, first line and
/// length in lines.
fn functions(code: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = words.iter().position(|w| *w == "fn") else {
            continue;
        };
        // `fn` leads the item (after pub, const, async, unsafe, extern).
        let lead = words[..at].iter().all(|w| {
            w.starts_with("pub")
                || matches!(*w, "const" | "async" | "unsafe" | "extern" | "\"C\"" | "\"")
        });
        let Some(name) = words.get(at + 1) else {
            continue;
        };
        if !lead {
            continue;
        }
        let name: String = name
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // From the signature to the brace that closes its body; a
        // declaration without a body (a trait's) ends at `;`.
        let mut depth = 0i64;
        let mut opened = false;
        'body: for (m, l) in lines.iter().enumerate().skip(n) {
            for c in l.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    ';' if !opened => break 'body,
                    _ => {}
                }
                if opened && depth == 0 {
                    out.push((name.clone(), n + 1, m - n + 1));
                    break 'body;
                }
            }
        }
    }
    out
}

#[test]
fn no_harness_function_is_over_100_lines() {
    let mut long = Vec::new();
    for krate in HARNESS {
        for path in rust_files(&root().join(krate).join("src")) {
            let text = std::fs::read_to_string(&path).unwrap();
            let shipped = text.split("#[cfg(test)]").next().unwrap();
            for (name, line, len) in functions(&code_only(shipped)) {
                if len > MAX_LINES {
                    let rel = path.strip_prefix(root()).unwrap().display().to_string();
                    long.push(format!("{rel}:{line} {name}: {len} lines"));
                }
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_LINES} lines (split them by what they do):\n{}",
        long.join("\n")
    );
}

/// The measure itself: braces in strings, chars and comments do not count,
/// a body ends at its closing brace, a declaration without one is skipped.
#[test]
fn functions_are_measured_from_signature_to_closing_brace() {
    let src = r#####"
pub(crate) fn short(x: u32) -> u32 {
    let s = "}}}{"; // }
    let c = '}';
    /* { */
    x
}
fn long<'a>(a: &'a str) {
    let raw = r#"{"#;
    if true {
    }
}
trait T {
    fn declared(&self);
}
"#####;
    let found = functions(&code_only(src));
    assert_eq!(
        found,
        [("short".to_string(), 2, 6), ("long".to_string(), 8, 5),]
    );
}
