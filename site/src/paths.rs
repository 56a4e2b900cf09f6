//! Paths as a reader should see them. A record states commands as they ran,
//! so a server started from a suite's `command:node {root}/peers/...` line
//! reads `node /home/someone/rtbench/peers/...`: the layout of the machine
//! the run was made on, which means nothing to a reader. Every text the site
//! shows (pages and the raw files it publishes) goes through `Checkouts`,
//! which writes each known checkout back as `{root}`, the form the suites
//! use and `cargo xtask bench --server` takes, so a command shown can be run
//! again from any checkout. The records under `results/` are left as made.

use std::borrow::Cow;

/// What the site writes in place of a checkout's absolute path.
pub const ROOT: &str = "{root}";

/// The checkouts to hide: the one rendering the site and each one a record
/// shows it was made in.
#[derive(Debug, Clone, Default)]
pub struct Checkouts {
    /// Longest first, so a checkout inside another is matched whole.
    roots: Vec<String>,
}

impl Checkouts {
    pub fn new(roots: impl IntoIterator<Item = String>) -> Checkouts {
        let mut roots: Vec<String> = roots
            .into_iter()
            .map(|r| r.trim_end_matches('/').to_string())
            // `/` alone would turn every path into `{root}/...`.
            .filter(|r| r.len() > 1 && r.starts_with('/'))
            .collect();
        roots.sort_by_key(|r| std::cmp::Reverse(r.len()));
        roots.dedup();
        Checkouts { roots }
    }

    /// `text` with each checkout written as `{root}`. A checkout matches
    /// only as a whole path: `/src/rt` is not hidden in `/src/rtbench`.
    pub fn relative<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for root in &self.roots {
            if !out.contains(root.as_str()) {
                continue;
            }
            let mut s = String::with_capacity(out.len());
            let mut rest: &str = &out;
            while let Some(i) = rest.find(root.as_str()) {
                let after = &rest[i + root.len()..];
                let whole = after
                    .chars()
                    .next()
                    .is_none_or(|c| !(c.is_alphanumeric() || "-_.".contains(c)));
                s.push_str(&rest[..i]);
                s.push_str(if whole { ROOT } else { root });
                rest = after;
            }
            s.push_str(rest);
            out = Cow::Owned(s);
        }
        out
    }

    /// Every string in `value`, made relative (a page's whole context).
    pub fn relative_json(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(s) => {
                if let Cow::Owned(r) = self.relative(s) {
                    *s = r;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|v| self.relative_json(v)),
            Value::Object(o) => o.values_mut().for_each(|v| self.relative_json(v)),
            _ => {}
        }
    }
}

/// The checkout a record was made in, read from its `scenario.toml`: a
/// variant's `server` line naming `{root}` set against the server line as it
/// ran (`[server] subject`, with `{root}` replaced). None when no variant
/// names `{root}` or the lines do not match.
pub fn record_checkout(scenario_toml: &str) -> Option<String> {
    let doc: toml::Value = toml::from_str(scenario_toml).ok()?;
    let ran = command_line(doc.get("server")?.get("subject")?.as_str()?)?;
    doc.get("variants")?
        .as_array()?
        .iter()
        .filter_map(|v| command_line(v.get("server")?.as_str()?))
        .find_map(|template| root_in(template, ran))
}

/// The command line of a `command:LINE` subject.
fn command_line(subject: &str) -> Option<&str> {
    Some(subject.trim().strip_prefix("command:")?.trim())
}

/// What `{root}` stood for when `template` became `ran`: the text before
/// `{root}` must match, and the root ends where the literal text after it
/// (up to the next placeholder) begins.
fn root_in(template: &str, ran: &str) -> Option<String> {
    let (before, after) = template.split_once(ROOT)?;
    let literal = after.split('{').next().unwrap_or("");
    let rest = ran.strip_prefix(before)?;
    let end = if literal.is_empty() {
        rest.find(' ').unwrap_or(rest.len())
    } else {
        rest.find(literal)?
    };
    let root = &rest[..end];
    (root.starts_with('/') && !root.contains(' ')).then(|| root.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkout_becomes_root_only_as_a_whole_path() {
        let c = Checkouts::new(["/src/rt".to_string(), "/src/rt/sub/".to_string()]);
        assert_eq!(
            c.relative("node /src/rt/peers/a.js; /src/rtbench/x; /src/rt/sub/y; \"/src/rt\""),
            "node {root}/peers/a.js; /src/rtbench/x; {root}/y; \"{root}\""
        );
        assert!(matches!(c.relative("nothing here"), Cow::Borrowed(_)));
        assert_eq!(Checkouts::new(["/".to_string()]).relative("/a"), "/a");
        let mut v = serde_json::json!({"a": ["cd /src/rt"], "b": {"c": "/src/rt/x"}, "n": 1});
        c.relative_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": ["cd {root}"], "b": {"c": "{root}/x"}, "n": 1})
        );
    }

    #[test]
    fn a_records_checkout_is_read_from_its_variants_server_line() {
        let toml = r#"
[server]
subject = "command: node /home/ci/rtbench/peers/node-ws/server.js {port}"
[[variants]]
name = "idle-rtbench"
[[variants]]
name = "idle-tungstenite"
server = "command:{root}/target/release/peer --port {port}"
[[variants]]
name = "idle-node-ws"
server = "command:node {root}/peers/node-ws/server.js {port}"
"#;
        assert_eq!(record_checkout(toml).as_deref(), Some("/home/ci/rtbench"));
        let own = "[server]\nsubject = \"rtbench\"\n[[variants]]\nname = \"a\"\n";
        assert_eq!(record_checkout(own), None);
        assert_eq!(
            root_in("{root}/bin --x", "/opt/r/bin --x").as_deref(),
            Some("/opt/r")
        );
        assert_eq!(root_in("node {root}/a.js", "python3 /opt/r/a.js"), None);
    }
}
