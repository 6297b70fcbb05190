//! Writing ONNX models: a protobuf encoder and a graph builder.

mod graph;
mod proto;

pub use graph::{Attr, Dim, ElemType, Graph, TensorData};
