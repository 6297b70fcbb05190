//! Writing ONNX models: a protobuf encoder and a graph builder, no more.
//!
//! Arbor generates every graph it runs (the forward pass at export time, the
//! KV pool writer at engine start) instead of loading graphs made by other
//! tools, so it needs to *write* ONNX, never to read or check it. Owning that
//! small subset keeps the build free of `protoc` and of any engine concern:
//! this crate knows tensors, nodes and the wire format, not models. Its one
//! invariant is the encoding's: whatever a [`Graph`] holds is serialized
//! faithfully (weights as external data stay outside the `.onnx` file);
//! whether the graph makes a valid model (operators, shapes, opset) is the
//! caller's to get right.

mod graph;
mod proto;

pub use graph::{Attr, Dim, ElemType, Graph, TensorData};

/// The `ai.onnx` opset Arbor's graphs are written against (custom domains,
/// such as `com.microsoft`, are declared at version 1 by [`Graph::to_model_bytes`]).
pub const OPSET: i64 = 17;
