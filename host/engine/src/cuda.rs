//! The CUDA execution provider, registered so that a missing CUDA library is
//! an error rather than a silent fall back to the CPU.

use anyhow::{Result, anyhow};
use ort::ep;
use ort::ep::ArbitrarilyConfigurableExecutionProvider;
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::Session;
use ort::session::builder::SessionBuilder;

/// Adds the CUDA execution provider for device `id` to a session builder.
pub fn register(b: SessionBuilder, id: i32) -> Result<SessionBuilder> {
    // TF32 would round f32 matmul inputs to 10 mantissa bits: an f32 model
    // must compute in f32, as on the CPU. Half-precision models are unaffected.
    let cuda = ep::CUDA::default()
        .with_device_id(id)
        .with_tf32(false)
        .with_arbitrary_config("sdpa_kernel", attention_backends());
    b.with_execution_providers([cuda.build().error_on_failure()])
        .map_err(|e| anyhow!("cannot use CUDA device {id}: {e} (is onnxruntime-gpu installed and ORT_DYLIB_PATH set?)"))
}

/// A session on CUDA device `id` for one of the engine's small helper
/// graphs (`what` names it in errors and in `ARBOR_ORT_PROFILE` file
/// names): the KV writer and copier, the sampling candidates, the row
/// fetch. Basic optimisations only: the graphs are a few nodes each.
pub fn helper_session(id: i32, model: &[u8], what: &str) -> Result<Session> {
    let env = crate::ort_env::environment()?;
    let b = Session::builder(&env)
        .map_err(|e| anyhow!("{e}"))?
        .with_optimization_level(ort::session::builder::GraphOptimizationLevel::Level1)
        .map_err(|e| anyhow!("{e}"))?;
    let mut b = register(b, id)?;
    // As for the forward session (engine.rs): per-node timings.
    if let Some(mut prefix) = std::env::var_os("ARBOR_ORT_PROFILE") {
        prefix.push(format!("-{}", what.replace(' ', "-")));
        b = b.with_profiling(prefix).map_err(|e| anyhow!("{e}"))?;
    }
    b.commit_from_memory(model)
        .map_err(|e| anyhow!("cannot load the {what} graph on CUDA: {e}"))
}

/// Device `id`'s memory info and the allocator `session` (already running
/// there) hands device tensors out of: the KV pools are allocated through
/// it, so that ONNX Runtime binds them without copies.
pub fn device_allocator(session: &Session, id: i32) -> Result<(MemoryInfo<'static>, Allocator)> {
    let device = MemoryInfo::new(
        AllocationDevice::CUDA,
        id,
        AllocatorType::Device,
        MemoryType::Default,
    )
    .map_err(|e| anyhow!("CUDA memory info: {e}"))?;
    let allocator = Allocator::new(session, device.clone())
        .map_err(|e| anyhow!("cannot get CUDA device {id}'s allocator: {e}"))?;
    Ok((device.to_owned(), allocator))
}

/// Host memory, where outputs the host reads (logits, token ids) are bound.
pub fn host_memory() -> Result<MemoryInfo<'static>> {
    MemoryInfo::new(
        AllocationDevice::CPU,
        0,
        AllocatorType::Device,
        MemoryType::Default,
    )
    .map_err(|e| anyhow!("host memory info: {e}"))
}

/// ONNX Runtime's attention backends this engine lets `PagedAttention`
/// choose from (the CUDA provider's `sdpa_kernel` bit mask): FlashAttention
/// (1), memory-efficient attention (2), the unfused kernel (16) and the paged
/// decode kernel (512), but not cuDNN's paged SDPA (8). ONNX Runtime 1.31.1
/// builds a cuDNN graph for every new step shape it sends there, and a
/// scheduler makes a new shape nearly every step: each build stalled the
/// first layer's attention for 70-90 ms on an H200 (docs/benchmarks.md).
/// `ARBOR_SDPA_KERNEL` overrides the mask for diagnosis (0: ONNX Runtime's
/// own defaults).
fn attention_backends() -> String {
    std::env::var("ARBOR_SDPA_KERNEL").unwrap_or_else(|_| (1 | 2 | 16 | 512).to_string())
}

/// Free and total bytes of CUDA device `id`'s memory, from the CUDA runtime
/// that ONNX Runtime's CUDA provider loaded (found the same way, through the
/// dynamic loader's path).
pub fn memory_info(id: i32) -> Result<(usize, usize)> {
    type SetDevice = unsafe extern "C" fn(i32) -> i32;
    type MemGetInfo = unsafe extern "C" fn(*mut usize, *mut usize) -> i32;
    let names = ["libcudart.so.13", "libcudart.so.12", "libcudart.so"];
    // SAFETY: loading the CUDA runtime runs only its initialisers, the same
    // ones ONNX Runtime's provider ran when it loaded it.
    let lib = names
        .iter()
        .find_map(|n| unsafe { libloading::Library::new(*n) }.ok())
        .ok_or_else(|| {
            anyhow!(
                "cannot load the CUDA runtime ({}) to read free device memory; \
                 give the pool size with --kv-slots",
                names.join(", ")
            )
        })?;
    // SAFETY: both symbols have these C signatures in every CUDA runtime
    // since 2.0; the pointers outlive the calls.
    unsafe {
        let set: libloading::Symbol<SetDevice> = lib.get(b"cudaSetDevice\0")?;
        let info: libloading::Symbol<MemGetInfo> = lib.get(b"cudaMemGetInfo\0")?;
        let rc = set(id);
        if rc != 0 {
            anyhow::bail!("cudaSetDevice({id}) failed with CUDA error {rc}");
        }
        let (mut free, mut total) = (0usize, 0usize);
        let rc = info(&mut free, &mut total);
        if rc != 0 {
            anyhow::bail!("cudaMemGetInfo failed with CUDA error {rc}");
        }
        Ok((free, total))
    }
}
