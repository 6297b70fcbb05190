//! The one error type of the crate, defined with the types every layer
//! shares so that it reaches guests and HTTP bodies typed.

pub use arbor_types::ConstraintError;
