//! The CUDA execution provider, registered so that a missing CUDA library is
//! an error rather than a silent fall back to the CPU.

use anyhow::{Result, anyhow};
use ort::ep;
use ort::session::builder::SessionBuilder;

/// Adds the CUDA execution provider for device `id` to a session builder.
pub fn register(b: SessionBuilder, id: i32) -> Result<SessionBuilder> {
    // TF32 would round f32 matmul inputs to 10 mantissa bits: an f32 model
    // must compute in f32, as on the CPU. Half-precision models are unaffected.
    let cuda = ep::CUDA::default().with_device_id(id).with_tf32(false);
    b.with_execution_providers([cuda.build().error_on_failure()])
        .map_err(|e| anyhow!("cannot use CUDA device {id}: {e} (is onnxruntime-gpu installed and ORT_DYLIB_PATH set?)"))
}
