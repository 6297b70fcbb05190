//! The WebAssembly program runtime: runs untrusted LLM programs against the scheduler.
