//! Model export, the ONNX Runtime engine with its token-granular KV pool, and sampling.
