//! How large a KV pool a CUDA device can hold: a share of the memory left
//! free once the model is loaded, in whole pages of the paged graph, never
//! less than one sequence of the model's full context.

use crate::format::{CUDA_BLOCK, ModelMeta};
use anyhow::{Result, bail};

/// KV slots in `fraction` of CUDA device `id`'s free memory, in whole
/// pages of the paged graph, refusing a pool that cannot hold one
/// sequence of the model's full context.
pub fn slots_in_free_memory(
    id: i32,
    fraction: f32,
    meta: &ModelMeta,
    paged: bool,
) -> Result<usize> {
    if !(fraction > 0.0 && fraction < 1.0) {
        bail!("--kv-fraction must be between 0 and 1, got {fraction}");
    }
    let cfg = &meta.config;
    let (free, total) = crate::cuda::memory_info(id)?;
    let per_slot = 2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * meta.dtype.size();
    let mut slots = (free as f64 * fraction as f64 / per_slot as f64) as usize;
    if paged {
        slots -= slots % CUDA_BLOCK;
    }
    let gib = |b: usize| b as f64 / (1u64 << 30) as f64;
    let need = cfg.max_position_embeddings.min(1 << 20);
    if slots < need {
        bail!(
            "a KV pool of {fraction} of CUDA device {id}'s free memory ({:.2} of {:.2} GiB free \
             once the model is loaded) holds {slots} tokens, fewer than one sequence of the \
             model's {need}-token context; raise --kv-fraction, give --kv-slots, or free \
             device memory",
            gib(free),
            gib(total)
        );
    }
    tracing::info!(
        "KV pool: {slots} token slots, {:.2} GiB ({fraction} of {:.2} GiB free on CUDA device {id})",
        gib(slots * per_slot),
        gib(free)
    );
    Ok(slots)
}
