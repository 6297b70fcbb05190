//! The KV pool: Rust-owned memory holding every cached token's keys and
//! values, one slot per token (page size 1), for all layers.
//!
//! ONNX Runtime reads the pool in place each step (it is passed as a borrowed
//! tensor, never copied); the graph returns only the new tokens' K/V rows,
//! which [`KvPool::write`] stores into their slots.

use crate::format::WeightDtype;
use anyhow::{Result, bail};
use ort::session::SessionInputValue;
use ort::value::{DynValue, TensorRef};

/// The row of the pool tensor (`[L * S, KVH, HD]`) that holds layer `layer`
/// of slot `slot` in a pool of `slots` slots: layer `l` owns rows
/// `l * S .. (l + 1) * S`. The host pool, the device pool and the graph's
/// `hist_rows` input all follow this layout.
pub(crate) fn pool_row(layer: usize, slots: usize, slot: u32) -> usize {
    layer * slots + slot as usize
}

/// Pool storage in the model's dtype.
enum Buf {
    F32(Vec<f32>),
    F16(Vec<half::f16>),
    Bf16(Vec<half::bf16>),
}

impl Buf {
    fn zeros(dtype: WeightDtype, n: usize) -> Self {
        match dtype {
            WeightDtype::F32 => Buf::F32(vec![0.0; n]),
            WeightDtype::F16 => Buf::F16(vec![half::f16::ZERO; n]),
            WeightDtype::Bf16 => Buf::Bf16(vec![half::bf16::ZERO; n]),
        }
    }

    fn input(&self, shape: [usize; 3]) -> Result<SessionInputValue<'_>> {
        Ok(match self {
            Buf::F32(v) => TensorRef::from_array_view((shape, v.as_slice()))?.into(),
            Buf::F16(v) => TensorRef::from_array_view((shape, v.as_slice()))?.into(),
            Buf::Bf16(v) => TensorRef::from_array_view((shape, v.as_slice()))?.into(),
        })
    }

    fn copy_rows(&mut self, layers: usize, slots: usize, row: usize, copies: &[(u32, u32)]) {
        fn copy<T: Copy>(
            d: &mut [T],
            layers: usize,
            slots: usize,
            row: usize,
            copies: &[(u32, u32)],
        ) {
            for l in 0..layers {
                for &(src, dst) in copies {
                    let from = pool_row(l, slots, src) * row;
                    let to = pool_row(l, slots, dst) * row;
                    d.copy_within(from..from + row, to);
                }
            }
        }
        match self {
            Buf::F32(d) => copy(d, layers, slots, row, copies),
            Buf::F16(d) => copy(d, layers, slots, row, copies),
            Buf::Bf16(d) => copy(d, layers, slots, row, copies),
        }
    }

    fn write(
        &mut self,
        src: &DynValue,
        layers: usize,
        slots: usize,
        row: usize,
        dst_slots: &[u32],
    ) -> Result<()> {
        fn scatter<T: Copy>(
            dst: &mut [T],
            src: &[T],
            layers: usize,
            slots: usize,
            row: usize,
            dst_slots: &[u32],
        ) {
            let t = dst_slots.len();
            for l in 0..layers {
                for (i, &s) in dst_slots.iter().enumerate() {
                    let from = (l * t + i) * row;
                    let to = pool_row(l, slots, s) * row;
                    dst[to..to + row].copy_from_slice(&src[from..from + row]);
                }
            }
        }
        let expect = layers * dst_slots.len() * row;
        match self {
            Buf::F32(d) => {
                let (_, s) = src.try_extract_tensor::<f32>()?;
                check_len(s.len(), expect)?;
                scatter(d, s, layers, slots, row, dst_slots)
            }
            Buf::F16(d) => {
                let (_, s) = src.try_extract_tensor::<half::f16>()?;
                check_len(s.len(), expect)?;
                scatter(d, s, layers, slots, row, dst_slots)
            }
            Buf::Bf16(d) => {
                let (_, s) = src.try_extract_tensor::<half::bf16>()?;
                check_len(s.len(), expect)?;
                scatter(d, s, layers, slots, row, dst_slots)
            }
        }
        Ok(())
    }
}

fn check_len(got: usize, expect: usize) -> Result<()> {
    if got != expect {
        bail!("internal: new K/V has {got} values, expected {expect}");
    }
    Ok(())
}

/// Keys and values of `slots` tokens for `layers` layers.
pub struct KvPool {
    k: Buf,
    v: Buf,
    layers: usize,
    slots: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl KvPool {
    /// Allocates a zeroed pool. Memory: `2 * layers * slots * kv_heads * head_dim * dtype size`.
    pub fn new(
        dtype: WeightDtype,
        layers: usize,
        slots: usize,
        kv_heads: usize,
        head_dim: usize,
    ) -> Self {
        let n = layers * slots * kv_heads * head_dim;
        KvPool {
            k: Buf::zeros(dtype, n),
            v: Buf::zeros(dtype, n),
            layers,
            slots,
            kv_heads,
            head_dim,
        }
    }

    /// Number of token slots.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The pool as the graph's `k_pool` and `v_pool` inputs, borrowed.
    pub fn inputs(&self) -> Result<(SessionInputValue<'_>, SessionInputValue<'_>)> {
        let shape = [self.layers * self.slots, self.kv_heads, self.head_dim];
        Ok((self.k.input(shape)?, self.v.input(shape)?))
    }

    /// Copies every layer's K/V of slot `src` to slot `dst`, for each pair
    /// (the KV manager's copy on write of a partly shared page).
    pub fn copy(&mut self, copies: &[(u32, u32)]) -> Result<()> {
        let row = self.kv_heads * self.head_dim;
        for &(src, dst) in copies {
            if src as usize >= self.slots || dst as usize >= self.slots {
                bail!(
                    "slot copy {src} -> {dst} is outside the pool ({} slots)",
                    self.slots
                );
            }
        }
        for buf in [&mut self.k, &mut self.v] {
            buf.copy_rows(self.layers, self.slots, row, copies);
        }
        Ok(())
    }

    /// Stores the graph's `new_k`/`new_v` (`[L, T, KVH, HD]`) into `slots` (one per new token).
    pub fn write(&mut self, new_k: &DynValue, new_v: &DynValue, slots: &[u32]) -> Result<()> {
        let row = self.kv_heads * self.head_dim;
        self.k.write(new_k, self.layers, self.slots, row, slots)?;
        self.v.write(new_v, self.layers, self.slots, row, slots)
    }
}
