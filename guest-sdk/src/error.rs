use std::fmt;

/// The error variant of the WIT interface, as the host returns it.
pub use crate::bindings::lm::Error as LmError;

/// Everything an SDK call can fail with.
#[derive(Debug)]
pub enum Error {
    /// The host refused or failed the call.
    Lm(LmError),
    /// A captured variable was not the JSON the caller asked for.
    Json(serde_json::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Lm(e) => match e {
                LmError::BadConstraint(m) => write!(f, "bad constraint: {m}"),
                LmError::LimitExceeded(m) => write!(f, "limit exceeded: {m}"),
                LmError::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
                LmError::UnknownVariable(m) => write!(f, "unknown variable: {m}"),
                LmError::Cancelled => f.write_str("cancelled"),
                LmError::Engine(m) => write!(f, "engine error: {m}"),
            },
            Error::Json(e) => write!(f, "invalid JSON: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<LmError> for Error {
    fn from(e: LmError) -> Self {
        Error::Lm(e)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Json(e)
    }
}

// Lets `?` work inside `fn run(..) -> Result<String, String>`.
impl From<Error> for String {
    fn from(e: Error) -> Self {
        e.to_string()
    }
}
