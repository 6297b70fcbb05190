//! The vocabulary every layer of Arbor shares.
//!
//! Data flows one way, server → program runtime → scheduler → engine, and
//! each concept that crosses a layer boundary has exactly one type, defined
//! here, below all of them: a tenant's [`Namespace`], a [`Constraint`] on
//! generated text, why a generation ended ([`Finish`]), the score of a
//! `select` choice ([`ChoiceScore`]) and why a request failed
//! ([`RequestError`], carrying a typed [`ConstraintError`]). A layer may wrap
//! these (the runtime adds its own limits to the guest's error) but never
//! redefines them, so nothing is translated, and nothing is lost, on the
//! way up.
//!
//! The crate has no behaviour beyond formatting and classification, so that
//! depending on it costs nothing.

mod constraint;
mod error;
mod finish;
mod namespace;
mod score;

pub use constraint::Constraint;
pub use error::{ConstraintError, RequestError};
pub use finish::Finish;
pub use namespace::Namespace;
pub use score::ChoiceScore;
