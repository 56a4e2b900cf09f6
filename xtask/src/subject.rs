//! What a bench measures: rtbench-server (the default), any server started
//! from a command line, or a server already running at a URL.
//!
//! Chosen by `--server`, else the variant's `server`, else the suite's
//! `[server] subject`:
//! - `rtbench`: this checkout's server, as many processes as the run needs,
//!   with its flags and `/metrics`;
//! - `command:LINE`: one process started with `sh -c "exec LINE"`, `{port}`
//!   replaced by a free loopback port, ready once that port accepts, stopped
//!   with SIGTERM; its memory and CPU sampled from `/proc` like ours;
//! - `url:ws://HOST:PORT/PATH`: nothing started; the record says what could
//!   not be measured (the server's memory and CPU).
//!
//! `{root}` in a command line is the workspace root, so a suite can name the
//! peers' scripts and binaries wherever the checkout is.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Rtbench,
    Command(String),
    Url(String),
}

impl Subject {
    pub fn parse(spec: &str) -> Result<Subject, String> {
        let spec = spec.trim();
        if spec == "rtbench" {
            return Ok(Subject::Rtbench);
        }
        if let Some(line) = spec.strip_prefix("command:") {
            let line = line.trim();
            if line.is_empty() {
                return Err("server `command:` needs a command line".into());
            }
            let root = crate::root();
            return Ok(Subject::Command(
                line.replace("{root}", &root.display().to_string()),
            ));
        }
        if let Some(url) = spec.strip_prefix("url:") {
            let url = url.trim();
            if !url.starts_with("ws://") {
                return Err(format!("server `url:{url}`: only ws:// URLs are supported"));
            }
            return Ok(Subject::Url(url.to_string()));
        }
        Err(format!(
            "server `{spec}`: expected `rtbench`, `command:LINE` (with {{port}}) or `url:ws://HOST:PORT/PATH`"
        ))
    }

    pub fn is_rtbench(&self) -> bool {
        *self == Subject::Rtbench
    }

    /// As the record states it.
    pub fn label(&self) -> String {
        match self {
            Subject::Rtbench => "rtbench".into(),
            Subject::Command(line) => format!("command: {line}"),
            Subject::Url(url) => format!("url: {url}"),
        }
    }

    /// The figures this subject leaves unmeasured, as the record lists them.
    pub fn unmeasured(&self) -> Vec<String> {
        match self {
            Subject::Rtbench => Vec::new(),
            Subject::Command(_) => {
                vec!["server deliveries and syscalls (it exports no rtbench /metrics)".into()]
            }
            Subject::Url(_) => vec![
                "server memory and CPU (a server given by URL: no process to sample)".into(),
                "server deliveries and syscalls (it exports no rtbench /metrics)".into(),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!(Subject::parse("rtbench").unwrap(), Subject::Rtbench);
        assert_eq!(
            Subject::parse("url:ws://127.0.0.1:9/x").unwrap(),
            Subject::Url("ws://127.0.0.1:9/x".into())
        );
        let Subject::Command(line) = Subject::parse("command:{root}/peer --port {port}").unwrap()
        else {
            panic!("a command");
        };
        assert!(line.ends_with("/peer --port {port}") && !line.contains("{root}"));
        let e = Subject::parse("nginx").unwrap_err();
        assert!(e.contains("`nginx`") && e.contains("command:LINE"), "{e}");
        assert!(
            Subject::parse("url:http://x")
                .unwrap_err()
                .contains("ws://")
        );
        assert!(Subject::parse("command: ").is_err());
    }
}
