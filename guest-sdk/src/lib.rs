//! Rust SDK for Arbor programs.
//!
//! A program is one function, exported with [`export!`]:
//!
//! ```ignore
//! use arbor_guest::{Gen, State};
//!
//! fn run(input: String) -> Result<String, arbor_guest::Error> {
//!     let s = State::new()?;
//!     s.user(&input)?;
//!     s.assistant_generate("answer", Gen::new().max_tokens(64))?;
//!     s.variable("answer")
//! }
//! arbor_guest::export!(run);
//! ```
//!
//! Calls that extend a state return at once; the host runs each state's
//! commands in order and different states in parallel. Reads ([`State::text`],
//! [`State::variable`]) and [`join`] wait. Build with
//! `cargo build --target wasm32-wasip2 --release`.

mod error;
mod options;
mod state;

/// Raw bindings generated from `wit/arbor.wit`, for what the SDK does not wrap.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "arbor:lm/program",
        pub_export_macro: true,
        default_bindings_module: "arbor_guest::bindings",
    });
    pub use arbor::lm::lm;
}

pub use bindings::lm::Role;
pub use error::{Error, LmError};
pub use options::Gen;
pub use state::{State, join};

/// Result of SDK calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exports `fn run(input: String) -> Result<String, E>` (any `E: Display`)
/// as the program's entry point.
#[macro_export]
macro_rules! export {
    ($run:path) => {
        struct __ArborProgram;
        impl $crate::bindings::Guest for __ArborProgram {
            fn run(
                input: ::std::string::String,
            ) -> ::core::result::Result<::std::string::String, ::std::string::String> {
                $run(input).map_err(|e| ::std::string::ToString::to_string(&e))
            }
        }
        $crate::bindings::export!(__ArborProgram with_types_in $crate::bindings);
    };
}
