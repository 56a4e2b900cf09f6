//! What can go wrong asking the OS, with what was asked: the call, or the
//! file and what it lacked. The OS's own words are part of the message (the
//! workspace's callers still carry errors as text), and `kind` says what a
//! caller may match on: a process that has ended, a permission refused.

use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call returned -1.
    #[error("{call}: {error}")]
    Call {
        call: &'static str,
        error: io::Error,
    },
    /// A file (under /proc, nearly always) could not be read: a process's
    /// directory is gone once it has ended.
    #[error("{}: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    /// A file could not be written (a sysctl).
    #[error("{}: {error}", path.display())]
    Write { path: PathBuf, error: io::Error },
    /// A file was read but does not hold what the kernel writes there.
    #[error("{}: {problem}", path.display())]
    Format { path: PathBuf, problem: String },
}

impl Error {
    /// The OS's error kind (`NotFound` for a process that has ended,
    /// `PermissionDenied`); `InvalidData` for a file that does not parse.
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::Call { error, .. } | Error::Read { error, .. } | Error::Write { error, .. } => {
                error.kind()
            }
            Error::Format { .. } => io::ErrorKind::InvalidData,
        }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, problem: impl Into<String>) -> Error {
        Error::Format {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

/// For callers that speak `io::Result`: the same kind, this error's words.
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::new(e.kind(), e)
    }
}
