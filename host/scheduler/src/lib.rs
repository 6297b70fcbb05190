//! The cache-aware continuous-batching scheduler that owns the engine.
