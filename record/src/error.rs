//! Why a record file could not be read or written: a typed error for the
//! readers and writers of this crate, so that a caller can tell a missing
//! file from a bad one (the site lists bad records and skips missing ones).
//!
//! `Display` names the file and, where the format says it, the line and the
//! field: the same text the readers gave as strings before. Hand-written
//! (no thiserror) to keep this crate's dependency tree to serde and its
//! formats.

use std::fmt;
use std::path::PathBuf;

/// A record file that could not be read, parsed or written.
#[derive(Debug)]
pub enum ReadError {
    /// Reading or writing the file failed (missing, unreadable, disk full).
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file's JSON is not the type's (serde names line and column).
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// A CSV row that is not the type's: its line when known, and serde's
    /// message naming the field. `path` is `None` for text read from memory.
    Csv {
        path: Option<PathBuf>,
        line: Option<u64>,
        source: csv::Error,
    },
    /// Parsed, but not a record this can use (a newer format version, a
    /// missing part): what is wrong, in prose.
    Invalid { path: PathBuf, problem: String },
}

impl ReadError {
    /// The file that could not be read, when the error came from one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            ReadError::Io { path, .. }
            | ReadError::Json { path, .. }
            | ReadError::Invalid { path, .. } => Some(path),
            ReadError::Csv { path, .. } => path.as_deref(),
        }
    }

    /// Whether the file is absent (as against present but unreadable or bad).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    /// The same error, naming `path` (for CSV text read from a file).
    pub(crate) fn in_file(self, file: &std::path::Path) -> ReadError {
        match self {
            ReadError::Csv {
                path: None,
                line,
                source,
            } => ReadError::Csv {
                path: Some(file.to_path_buf()),
                line,
                source,
            },
            other => other,
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            ReadError::Json { path, source } => write!(f, "{}: {source}", path.display()),
            ReadError::Csv { path, line, source } => {
                if let Some(path) = path {
                    write!(f, "{}: ", path.display())?;
                }
                match line {
                    Some(line) => write!(f, "line {line}: {source}"),
                    None => write!(f, "{source}"),
                }
            }
            ReadError::Invalid { path, problem } => write!(f, "{}: {problem}", path.display()),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // Display already prints the cause; a chain printer (anyhow's `{:#}`)
        // would print it twice.
        None
    }
}
