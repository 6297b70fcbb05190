//! Arbor's offline export tooling: Hugging Face checkpoints (or random
//! weights of a preset's shape) become model directories the engine can open.
//!
//! Export is a build step, not part of serving: it reads safetensors, builds
//! the forward ONNX graph with [`arbor_onnx`] and writes the directory laid
//! out by [`arbor_engine::format`]. The dependency runs one way: this crate
//! follows the engine's format and graph interface, and the engine never
//! depends on it, so a server links no checkpoint reader, graph builder or
//! tokenizer trainer. Whatever this crate writes must open with
//! [`arbor_engine::Engine::open`]; a change to the graph's interface bumps
//! [`arbor_engine::format::FORMAT_VERSION`].

pub mod checkpoint;
mod export;
pub mod graph;
pub mod paged;
mod random;
pub mod tokenizer;

pub use export::export_from;
pub use random::{export_random, write_random_checkpoint};
