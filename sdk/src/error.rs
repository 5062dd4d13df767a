//! The error a plugin reports: a kind the host can act on and a message a person reads.

use abi_stable::std_types::RString;

use crate::abi::{ErrorKind, PluginError};

/// An error a plugin reports to the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// A setting of the task that cannot be used.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// Input data (a file, a record, a prediction) the task cannot read.
    pub fn data(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Data, message)
    }

    /// Something this task does not do (with these settings).
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    pub(crate) fn into_abi(self) -> PluginError {
        PluginError {
            kind: self.kind,
            message: self.message.into(),
        }
    }

    /// A failure of a host operation called by the plugin.
    pub(crate) fn host(message: RString) -> Self {
        Self::new(ErrorKind::Host, message.into_string())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorKind::Config => "settings",
            ErrorKind::Data => "data",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Panic => "panic",
            ErrorKind::Host => "host operation",
        })
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} error)", self.message, self.kind)
    }
}

/// `bail!`-style early return with a data [`Error`]; `fail!(config: …)` and
/// `fail!(unsupported: …)` for the other kinds.
#[macro_export]
macro_rules! fail {
    (config: $($arg:tt)*) => {
        return Err($crate::Error::config(format!($($arg)*)))
    };
    (unsupported: $($arg:tt)*) => {
        return Err($crate::Error::unsupported(format!($($arg)*)))
    };
    ($($arg:tt)*) => {
        return Err($crate::Error::data(format!($($arg)*)))
    };
}
