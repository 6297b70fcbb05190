//! Per-run limits and the resource limiter that enforces the memory ones.

use std::time::Duration;

use serde::Serialize;

/// Limits of one run. Every limit is enforced by the host: a guest can only
/// hit it, never raise it.
#[derive(Clone, Debug, Serialize)]
pub struct Limits {
    /// Largest linear memory of any instance in the component, in bytes.
    /// Cannot exceed [`RuntimeConfig::max_memory_bytes`](crate::RuntimeConfig).
    pub max_memory_bytes: usize,
    /// Wall-clock time the run may take, waiting on the model included.
    pub deadline: Duration,
    /// States the guest may hold at once. The default, 512, holds a search
    /// tree that forks 4 ways to depth 4 with every level kept alive
    /// (1 + 4 + 16 + 64 + 256 = 341 states); a state costs the host a few
    /// hundred bytes plus the KV its tokens occupy, which is shared with
    /// its parent.
    pub max_live_states: u32,
    /// Tokens generated over the whole run.
    pub max_generated_tokens: u64,
    /// Tokens of any single state (prompt plus generated).
    pub max_state_tokens: u32,
    /// Commands queued but not yet done, over all states; a guest that
    /// queues faster waits in the call (back-pressure, not an error).
    pub max_queued_commands: u32,
    /// Choices of one `select`.
    pub max_choices: u32,
    /// Bytes of the string `run` returns; longer output fails the run.
    pub max_output_bytes: usize,
    /// Bytes of stdout and stderr kept; the rest is dropped and the log is
    /// marked truncated.
    pub max_log_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_memory_bytes: 64 << 20,
            deadline: Duration::from_secs(60),
            max_live_states: 512,
            max_generated_tokens: 65_536,
            max_state_tokens: 32_768,
            max_queued_commands: 1024,
            max_choices: 256,
            max_output_bytes: 1 << 20,
            max_log_bytes: 64 << 10,
        }
    }
}

/// Enforces the memory and table limits and remembers whether the guest hit
/// one, so that the resulting trap is reported as a limit rather than a
/// generic failure.
pub(crate) struct MemoryLimiter {
    max_memory_bytes: usize,
    max_table_elements: usize,
    pub(crate) hit: Option<String>,
}

/// Table elements per table; generous for interpreters (Python), small
/// enough that a table cannot be used as a memory bomb.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl MemoryLimiter {
    pub(crate) fn new(max_memory_bytes: usize) -> Self {
        MemoryLimiter {
            max_memory_bytes,
            max_table_elements: MAX_TABLE_ELEMENTS,
            hit: None,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            let msg = format!(
                "memory limit exceeded: growing linear memory from {current} to {desired} bytes, limit {} bytes",
                self.max_memory_bytes
            );
            self.hit = Some(msg.clone());
            // Trapping (rather than failing the grow) gives every guest
            // language the same clear outcome; most allocators abort on a
            // failed grow anyway.
            return Err(wasmtime::Error::msg(msg));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_table_elements {
            let msg = format!(
                "table limit exceeded: growing a table from {current} to {desired} elements, limit {}",
                self.max_table_elements
            );
            self.hit = Some(msg.clone());
            return Err(wasmtime::Error::msg(msg));
        }
        Ok(true)
    }
}
