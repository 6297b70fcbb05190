//! The KV pool of the paged CUDA graph: one key and one value cache per
//! layer, `[blocks, CUDA_BLOCK, KVH, HD]` in device memory, which the
//! graph's `PagedAttention` nodes read and write in place.
//!
//! Invariant: each cache is one device buffer for the engine's lifetime,
//! bound as both a node's cache input and its `_out` output, so that no
//! step copies a pool (the operator requires the two to be the same
//! buffer). Slot `s` is block `s / CUDA_BLOCK`, offset `s % CUDA_BLOCK`, the
//! same numbering the KV manager hands out.
//!
//! Copy on write of a partly shared page runs in a second, tiny session:
//! per cache a `GatherND` of the source slots into a `ScatterND` onto the
//! destination slots, whose output is the graph output bound to the cache
//! itself (ONNX Runtime's CUDA `ScatterND` skips its input-to-output copy
//! when the buffers are the same).

use crate::format::{CUDA_BLOCK, WeightDtype};
use anyhow::{Context, Result, anyhow};
use arbor_onnx::{Dim, ElemType, Graph};
use ort::memory::{Allocator, MemoryInfo};
use ort::session::{IoBinding, Session};
use ort::value::{DynTensor, Tensor, TensorElementType};

/// Per-layer paged K/V caches on one CUDA device.
pub struct PagedPool {
    /// `k_cache_0, v_cache_0, k_cache_1, …`: owned here, and only used
    /// through the bindings, which name them once.
    _caches: Vec<DynTensor>,
    copier: Session,
    /// The copier's binding: every cache bound once as input and output.
    copies: IoBinding,
    /// The forward graph's bindings, caches bound once: one fetching the
    /// logits, one fetching only the arg max ids. Two, because an output
    /// stays bound (and computed) until cleared, and clearing would unbind
    /// the caches too.
    fetch_logits: IoBinding,
    fetch_ids: IoBinding,
    /// Fetches the ids and leaves the logits on the device, for steps whose
    /// other rows are sampled from candidates computed there.
    fetch_sample: IoBinding,
    /// Host memory, where the fetched output goes.
    host: MemoryInfo<'static>,
    /// The device's memory, where logits that stay there go.
    device: MemoryInfo<'static>,
    blocks: usize,
    // Dropped last: the caches' memory belongs to it.
    _allocator: Allocator,
}

impl PagedPool {
    /// Allocates `blocks` blocks per cache on CUDA device `id` through the
    /// allocator of `session` (the forward session).
    pub fn new(
        session: &Session,
        id: i32,
        dtype: WeightDtype,
        layers: usize,
        blocks: usize,
        kv_heads: usize,
        head_dim: usize,
    ) -> Result<Self> {
        let (device, allocator) = crate::cuda::device_allocator(session, id)?;
        let elem = match dtype {
            WeightDtype::F16 => TensorElementType::Float16,
            WeightDtype::Bf16 => TensorElementType::Bfloat16,
            WeightDtype::F32 => anyhow::bail!("the paged pool holds f16 or bf16 only"),
        };
        let shape = [blocks, CUDA_BLOCK, kv_heads, head_dim];
        let bytes = 2 * layers * shape.iter().product::<usize>() * dtype.size();
        let mut caches = Vec::with_capacity(2 * layers);
        for _ in 0..2 * layers {
            caches.push(DynTensor::new(&allocator, elem, shape).map_err(|e| {
                anyhow!(
                    "cannot allocate the KV pool ({:.2} GiB, {} slots) on CUDA device {id}: {e}; \
                     use fewer KV slots",
                    bytes as f64 / (1u64 << 30) as f64,
                    blocks * CUDA_BLOCK
                )
            })?);
        }

        let model = copier_graph(dtype.elem(), layers, kv_heads as i64, head_dim as i64);
        let copier = crate::cuda::helper_session(id, &model, "KV copy")?;
        let mut copies = copier.create_binding().map_err(|e| anyhow!("{e}"))?;
        for (i, c) in caches.iter_mut().enumerate() {
            let name = cache_name(i);
            copies
                .bind_input(&name, &*c)
                .and_then(|()| copies.bind_output(format!("{name}_out"), &mut *c))
                .map_err(|e| anyhow!("cannot bind the KV pool to the copier: {e}"))?;
        }
        let host = crate::cuda::host_memory()?;
        let mut forward = |fetch: &[&str]| -> Result<IoBinding> {
            let mut b = session.create_binding().map_err(|e| anyhow!("{e}"))?;
            for (i, c) in caches.iter_mut().enumerate() {
                let name = cache_name(i);
                b.bind_input(&name, &*c)
                    .and_then(|()| b.bind_output(format!("{name}_out"), &mut *c))
                    .map_err(|e| anyhow!("cannot bind the KV pool: {e}"))?;
            }
            for f in fetch {
                b.bind_output_to_device(*f, &host)
                    .map_err(|e| anyhow!("cannot bind {f}: {e}"))?;
            }
            Ok(b)
        };
        let (fetch_logits, fetch_ids) = (forward(&["logits"])?, forward(&["next_token"])?);
        let fetch_sample = forward(&["next_token"])?;
        Ok(PagedPool {
            _caches: caches,
            copier,
            copies,
            fetch_logits,
            fetch_ids,
            fetch_sample,
            host,
            device,
            blocks,
            _allocator: allocator,
        })
    }

    /// Token slots in the pool.
    pub fn slots(&self) -> usize {
        self.blocks * CUDA_BLOCK
    }

    /// The forward graph's binding with the caches bound and the outputs
    /// placed as `fetch` says; the caller binds the step's inputs.
    pub fn binding(&mut self, fetch: Fetch) -> Result<&mut IoBinding> {
        // Bound afresh every step: an output bound to a device keeps the
        // buffer of its first run, whose shape the next step's row count
        // would not match.
        let bind = |b: &mut IoBinding, name: &str, mem: &MemoryInfo| {
            b.bind_output_to_device(name, mem)
                .map_err(|e| anyhow!("cannot bind {name}: {e}"))
        };
        Ok(match fetch {
            Fetch::Ids => {
                bind(&mut self.fetch_ids, "next_token", &self.host)?;
                &mut self.fetch_ids
            }
            Fetch::Logits => {
                bind(&mut self.fetch_logits, "logits", &self.host)?;
                &mut self.fetch_logits
            }
            Fetch::IdsLeavingLogits => {
                bind(&mut self.fetch_sample, "next_token", &self.host)?;
                bind(&mut self.fetch_sample, "logits", &self.device)?;
                &mut self.fetch_sample
            }
        })
    }

    /// Copies every layer's K/V of slot `src` to slot `dst` for each pair.
    pub fn copy(&mut self, pairs: &[(u32, u32)]) -> Result<()> {
        let slots = self.slots() as u32;
        if let Some(&(s, d)) = pairs.iter().find(|(s, d)| *s >= slots || *d >= slots) {
            anyhow::bail!("KV copy {s} -> {d} is outside the pool ({slots} slots)");
        }
        let index = |pick: fn(&(u32, u32)) -> u32| -> Result<Tensor<i64>> {
            let v: Vec<i64> = pairs
                .iter()
                .flat_map(|p| {
                    let s = pick(p) as usize;
                    [(s / CUDA_BLOCK) as i64, (s % CUDA_BLOCK) as i64]
                })
                .collect();
            Ok(Tensor::from_array((vec![pairs.len(), 2], v))?)
        };
        let (src, dst) = (index(|p| p.0)?, index(|p| p.1)?);
        self.copies.bind_input("src", &src)?;
        self.copies.bind_input("dst", &dst)?;
        let out = self
            .copier
            .run_binding(&self.copies)
            .context("copying KV slots in the device pool")?;
        drop(out);
        Ok(())
    }
}

/// Which outputs of a forward pass go where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fetch {
    /// Only `next_token`, to the host.
    Ids,
    /// Only `logits`, to the host.
    Logits,
    /// `next_token` to the host; `logits` stay on the device.
    IdsLeavingLogits,
}

/// Input name of cache `i` (keys and values of a layer alternate).
fn cache_name(i: usize) -> String {
    let kind = if i.is_multiple_of(2) { 'k' } else { 'v' };
    format!("{kind}_cache_{}", i / 2)
}

/// The copier: for each cache, `cache_out = ScatterND(cache, dst,
/// GatherND(cache, src))` with `src`, `dst [N, 2] i64` as (block, offset).
fn copier_graph(dtype: ElemType, layers: usize, kv_heads: i64, head_dim: i64) -> Vec<u8> {
    let mut g = Graph::new();
    let dims = || {
        vec![
            Dim::Named("NB"),
            Dim::Fixed(CUDA_BLOCK as i64),
            Dim::Fixed(kv_heads),
            Dim::Fixed(head_dim),
        ]
    };
    let src = g.input("src", ElemType::I64, vec![Dim::Named("N"), Dim::Fixed(2)]);
    let dst = g.input("dst", ElemType::I64, vec![Dim::Named("N"), Dim::Fixed(2)]);
    for i in 0..2 * layers {
        let name = cache_name(i);
        let c = g.input(&name, dtype, dims());
        let rows = g.op1("GatherND", &[&c, &src], vec![]);
        g.op_output(
            "ScatterND",
            &[&c, &dst, &rows],
            &format!("{name}_out"),
            dtype,
            dims(),
        );
    }
    g.to_model_bytes(arbor_onnx::OPSET, "arbor", "paged KV copier")
}
