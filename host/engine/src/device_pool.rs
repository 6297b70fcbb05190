//! The KV pool in CUDA device memory, for engines that run on a GPU.
//!
//! Handing the host pool of [`crate::kv_pool`] to a CUDA session copies all of
//! it to the device on every forward pass (hundreds of MB for a 1B model), so
//! on CUDA the pool lives on the device instead: the forward graph reads it
//! through an [`IoBinding`] without a copy, its `new_k`/`new_v` outputs stay on
//! the device, and a second, tiny session scatters them into their slots in
//! place.
//!
//! In place is what makes this cheap: the writer graph is one `ScatterND` per
//! pool whose output *is* the graph output, and the pool tensor is bound as
//! both its input and that output. ONNX Runtime's CUDA `ScatterND` skips its
//! input-to-output copy when the two buffers are the same, so a step costs
//! only the new rows.
//!
//! The device memory is not zeroed: the forward graph gathers only slots
//! named as some sequence's history or new tokens, and every such slot was
//! written by the step that computed it.

use crate::format::WeightDtype;
use crate::kv_pool::pool_row;
use anyhow::{Context, Result, anyhow, bail};
use arbor_onnx::{Dim, ElemType, Graph};
use ort::memory::{Allocator, MemoryInfo};
use ort::session::{IoBinding, Session};
use ort::value::{DynTensor, DynValue, Tensor, TensorElementType};

/// Keys and values of `slots` tokens for `layers` layers, on one CUDA device.
pub struct DevicePool {
    k: DynTensor,
    v: DynTensor,
    writer: Session,
    /// The writer's binding: both pools bound once as input and output.
    writes: IoBinding,
    device: MemoryInfo<'static>,
    /// Where the logits go: host memory, for sampling.
    host: MemoryInfo<'static>,
    layers: usize,
    slots: usize,
    kv_heads: usize,
    head_dim: usize,
    // Dropped last: the pools' memory belongs to it.
    _allocator: Allocator,
}

impl DevicePool {
    /// Allocates the pool on CUDA device `id`, through the allocator of
    /// `session` (the forward session, which already runs there).
    pub fn new(
        session: &Session,
        id: i32,
        dtype: WeightDtype,
        layers: usize,
        slots: usize,
        kv_heads: usize,
        head_dim: usize,
    ) -> Result<Self> {
        let (device, allocator) = crate::cuda::device_allocator(session, id)?;
        let elem = match dtype {
            WeightDtype::F32 => TensorElementType::Float32,
            WeightDtype::F16 => TensorElementType::Float16,
            WeightDtype::Bf16 => TensorElementType::Bfloat16,
        };
        let shape = [layers * slots, kv_heads, head_dim];
        let bytes = 2 * shape.iter().product::<usize>() * dtype.size();
        let alloc = || {
            DynTensor::new(&allocator, elem, shape).map_err(|e| {
                anyhow!(
                    "cannot allocate the KV pool ({:.1} GiB) on CUDA device {id}: {e}; \
                     use fewer KV slots",
                    bytes as f64 / (1u64 << 30) as f64
                )
            })
        };
        let (mut k, mut v) = (alloc()?, alloc()?);

        let model = writer_graph(dtype.elem(), kv_heads as i64, head_dim as i64);
        let writer = crate::cuda::helper_session(id, &model, "KV writer")?;
        let mut writes = writer.create_binding().map_err(|e| anyhow!("{e}"))?;
        let bind = |b: &mut IoBinding, t: &mut DynTensor, name: &str| -> Result<()> {
            b.bind_input(name, &*t)
                .and_then(|()| b.bind_output(format!("{name}_out"), &mut *t))
                .map_err(|e| anyhow!("cannot bind the KV pool to the writer: {e}"))
        };
        bind(&mut writes, &mut k, "k_pool")?;
        bind(&mut writes, &mut v, "v_pool")?;
        Ok(DevicePool {
            k,
            v,
            writer,
            writes,
            device,
            host: crate::cuda::host_memory()?,
            layers,
            slots,
            kv_heads,
            head_dim,
            _allocator: allocator,
        })
    }

    /// Number of token slots.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Binds the forward graph's pool inputs (`k_pool`, `v_pool`, without a
    /// copy) and its outputs: `new_k`/`new_v` stay on the device for
    /// [`DevicePool::write`], `logits` come back to host memory.
    pub fn bind(&self, b: &mut IoBinding) -> Result<()> {
        b.bind_input("k_pool", &self.k)
            .and_then(|()| b.bind_input("v_pool", &self.v))
            .and_then(|()| b.bind_output_to_device("new_k", &self.device))
            .and_then(|()| b.bind_output_to_device("new_v", &self.device))
            .and_then(|()| b.bind_output_to_device("logits", &self.host))
            .map_err(|e| anyhow!("cannot bind the KV pool: {e}"))
    }

    /// Stores the forward graph's `new_k`/`new_v` (`[L, T, KVH, HD]`, on the
    /// device) into `slots`, one per new token.
    pub fn write(&mut self, new_k: &DynValue, new_v: &DynValue, slots: &[u32]) -> Result<()> {
        let t = slots.len();
        let expect = (self.layers * t * self.kv_heads * self.head_dim) as i64;
        for (name, x) in [("new_k", new_k), ("new_v", new_v)] {
            let got: i64 = match x.dtype() {
                ort::value::ValueType::Tensor { shape, .. } => shape.iter().product(),
                other => bail!("internal: {name} is {other:?}, not a tensor"),
            };
            if got != expect {
                bail!("internal: {name} has {got} values, expected {expect}");
            }
        }
        let pool_slots = self.slots;
        let index: Vec<i64> = (0..self.layers)
            .flat_map(|l| {
                slots
                    .iter()
                    .map(move |&s| pool_row(l, pool_slots, s) as i64)
            })
            .collect();
        let index = Tensor::from_array((vec![self.layers * t, 1], index))?;
        self.writes.bind_input("index", &index)?;
        self.writes.bind_input("new_k", new_k)?;
        self.writes.bind_input("new_v", new_v)?;
        let out = self
            .writer
            .run_binding(&self.writes)
            .context("writing new K/V into the device pool")?;
        drop(out);
        Ok(())
    }
}

/// The writer: `k_pool_out = ScatterND(k_pool, index, new_k as rows)`, the
/// same for `v`. Inputs `k_pool`, `v_pool [R, KVH, HD]`, `index [N, 1] i64`,
/// `new_k`, `new_v [L, T, KVH, HD]` with `N = L * T`.
fn writer_graph(dtype: ElemType, kv_heads: i64, head_dim: i64) -> Vec<u8> {
    let mut g = Graph::new();
    let n = |s: &'static str| Dim::Named(s);
    let pool = || vec![n("R"), Dim::Fixed(kv_heads), Dim::Fixed(head_dim)];
    let new = || vec![n("L"), n("T"), Dim::Fixed(kv_heads), Dim::Fixed(head_dim)];
    let k_pool = g.input("k_pool", dtype, pool());
    let v_pool = g.input("v_pool", dtype, pool());
    let index = g.input("index", ElemType::I64, vec![n("N"), Dim::Fixed(1)]);
    let new_k = g.input("new_k", dtype, new());
    let new_v = g.input("new_v", dtype, new());
    let rows = g.const_i64(vec![3], &[-1, kv_heads, head_dim]);
    let k_rows = g.op1("Reshape", &[&new_k, &rows], vec![]);
    let v_rows = g.op1("Reshape", &[&new_v, &rows], vec![]);
    g.op_output(
        "ScatterND",
        &[&k_pool, &index, &k_rows],
        "k_pool_out",
        dtype,
        pool(),
    );
    g.op_output(
        "ScatterND",
        &[&v_pool, &index, &v_rows],
        "v_pool_out",
        dtype,
        pool(),
    );
    g.to_model_bytes(arbor_onnx::OPSET, "arbor", "KV pool writer")
}
