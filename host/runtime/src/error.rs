//! Errors: those returned to guests (mirroring the WIT `error` variant) and
//! those of loading and running programs, returned to the embedder.

use std::time::Duration;

use serde::Serialize;

use crate::backend::RequestError;

/// A failure returned to the guest as the WIT `error` variant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LmError {
    #[error("bad constraint: {0}")]
    BadConstraint(String),
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("unknown variable: {0}")]
    UnknownVariable(String),
    #[error("cancelled")]
    Cancelled,
    #[error("engine error: {0}")]
    Engine(String),
}

/// The backend's typed failure keeps its kind on the way to the guest: a
/// constraint the engine rejects is the guest's `bad-constraint`, a request
/// that can never fit the pool is a limit, not a bad argument.
impl From<RequestError> for LmError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Constraint(c) => LmError::BadConstraint(c.to_string()),
            RequestError::Invalid(m) => LmError::InvalidArgument(m),
            RequestError::TooLarge { .. } => LmError::LimitExceeded(e.to_string()),
            RequestError::Cancelled => LmError::Cancelled,
            RequestError::Engine(m) => LmError::Engine(m),
        }
    }
}

/// Why a program could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a valid WebAssembly component.
    #[error("malformed component: {0}")]
    Malformed(String),
    /// The component imports interfaces the host does not provide.
    #[error("the program imports {} which Arbor does not provide (it provides arbor:lm/lm@0.1.0 and WASI 0.2 without filesystem, network or environment access){}", .names.join(", "), if .detail.is_empty() { String::new() } else { format!(": {}", .detail) })]
    UnsupportedImports {
        /// The offending import names.
        names: Vec<String>,
        /// The linker's own explanation.
        detail: String,
    },
    /// The component does not export `run: func(input: string) -> result<string, string>`.
    #[error("the program does not export the `program` world's `run` function: {0}")]
    BadExports(String),
    /// The component is larger than the configured maximum.
    #[error("component is {size} bytes, limit {limit}")]
    TooLarge {
        /// Size of the component.
        size: usize,
        /// [`RuntimeConfig::max_component_bytes`](crate::RuntimeConfig).
        limit: usize,
    },
    /// The compilation cache could not be used; the message says why.
    #[error("component cache: {0}")]
    Cache(String),
    /// The engine could not be configured.
    #[error("engine configuration: {0}")]
    Engine(String),
}

/// Why a run did not produce output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum RunError {
    /// The program's `run` returned `err` with this message.
    #[error("program error: {0}")]
    Program(String),
    /// The run took longer than its deadline.
    #[error("deadline of {0:?} exceeded")]
    Deadline(Duration),
    /// The run reached its deadline while a model call waited for the
    /// embedder's token meter (the tenant's tokens per minute were spent).
    #[error("deadline of {0:?} exceeded while waiting for the token quota (tokens per minute)")]
    DeadlineWaitingForQuota(Duration),
    /// The run was cancelled by the embedder.
    #[error("run cancelled")]
    Cancelled,
    /// The guest exceeded its memory or table limit.
    #[error("{0}")]
    MemoryLimit(String),
    /// The output exceeded [`Limits::max_output_bytes`](crate::Limits).
    #[error("output is {size} bytes, limit {limit}")]
    OutputTooLarge {
        /// Size of the output.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The guest used a state handle it had already dropped (the
    /// canonical ABI refuses the handle).
    #[error("the program used a state after dropping it: {0}")]
    DroppedState(String),
    /// The guest trapped (panic, unreachable, exit, …).
    #[error("program trapped: {0}")]
    Trap(String),
    /// The run could not start (all instance slots busy, limits invalid …).
    #[error("could not start the program: {0}")]
    Start(String),
}
