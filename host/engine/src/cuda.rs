//! The CUDA execution provider, registered so that a missing CUDA library is
//! an error rather than a silent fall back to the CPU.

use anyhow::{Result, anyhow};
use ort::ep;
use ort::session::builder::SessionBuilder;

/// Adds the CUDA execution provider for device `id` to a session builder.
pub fn register(b: SessionBuilder, id: i32) -> Result<SessionBuilder> {
    b.with_execution_providers([ep::CUDA::default().with_device_id(id).build().error_on_failure()])
        .map_err(|e| anyhow!("cannot use CUDA device {id}: {e} (is onnxruntime-gpu installed and ORT_DYLIB_PATH set?)"))
}
