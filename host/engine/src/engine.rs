//! The engine: one ONNX Runtime session over a model directory, the KV pool,
//! and one forward pass over a ragged batch.
//!
//! The engine knows nothing of requests, caches or scheduling: callers name
//! the pool slots that hold each sequence's history and the slots where the
//! new tokens' K/V go. That keeps slot ownership in one place (the
//! scheduler's KV manager) and lets any prefix be shared by slot.

use crate::config::ModelConfig;
use crate::device_pool::DevicePool;
use crate::format::{CUDA_BLOCK, CUDA_GRAPH, FORMAT_VERSION, ModelMeta, WeightDtype};
use crate::kv_pool::{KvPool, pool_row};
use crate::paged_pool::PagedPool;
use crate::tokenizer::Tokenizer;
use anyhow::{Context, Result, anyhow, bail};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, Tensor};
use std::ops::Range;
use std::path::Path;

pub use crate::batch::{BatchEntry, ForwardOutput, Logits};

mod paged;
use crate::groups::attention_groups;

/// Where the engine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda(i32),
}

impl Device {
    /// CUDA device `id` if one is named (a `--cuda ID` flag), else the CPU.
    pub fn cuda_or_cpu(id: Option<i32>) -> Device {
        id.map_or(Device::Cpu, Device::Cuda)
    }
}

/// How to open a model.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Token slots in the KV pool. 0 on CUDA: as many as `kv_fraction` of
    /// the device memory that is free once the model is loaded holds.
    pub kv_slots: usize,
    /// With `kv_slots` 0 on CUDA, the fraction of free device memory the KV
    /// pool takes (the rest is for activations and the runtime's arena).
    pub kv_fraction: f32,
    /// ONNX Runtime intra-op threads (0: one per core).
    pub threads: usize,
    pub device: Device,
    /// On CUDA, keep the KV pool in host memory and let ONNX Runtime copy all
    /// of it to the device on every forward pass, instead of keeping it on the
    /// device. Much slower; it exists to measure what the device pool saves.
    pub kv_in_host_memory: bool,
    /// On CUDA, run the standard-op graph (`model.onnx`) instead of the
    /// paged one (`model.cuda.onnx`) that half-precision models have: for
    /// comparing the two.
    pub standard_graph: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            kv_slots: 16384,
            kv_fraction: DEFAULT_KV_FRACTION,
            threads: 0,
            device: Device::Cpu,
            kv_in_host_memory: false,
            standard_graph: false,
        }
    }
}

/// The share of free device memory a CUDA KV pool takes by default.
pub const DEFAULT_KV_FRACTION: f32 = 0.8;

/// Counters since the engine was opened.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct EngineStats {
    pub forward_passes: u64,
    pub tokens_processed: u64,
    pub logit_rows: u64,
    /// Rows drawn at a temperature from candidates computed on the device.
    pub sampled_rows: u64,
    /// `select` rows whose logits stayed on the device, scored there.
    pub scored_rows: u64,
    /// Rows fetched to the host by themselves, the step's other rows
    /// staying on the device.
    pub rows_fetched_alone: u64,
}

/// Where the KV pool lives.
enum Pool {
    /// Rust-owned host memory, read by ONNX Runtime in place (the CPU path).
    Host(KvPool),
    /// CUDA device memory, bound without copies.
    Device(Box<DevicePool>),
    /// Per-layer caches of the paged CUDA graph, updated in place.
    Paged(Box<PagedPool>),
}

impl Pool {
    fn slots(&self) -> usize {
        match self {
            Pool::Host(p) => p.slots(),
            Pool::Device(p) => p.slots(),
            Pool::Paged(p) => p.slots(),
        }
    }
}

/// A loaded model ready to run forward passes.
pub struct Engine {
    // Declared before the session: the device pool's memory comes from the
    // session's allocator and is freed first.
    pool: Pool,
    session: Session,
    meta: ModelMeta,
    tokenizer: std::sync::Arc<Tokenizer>,
    stats: EngineStats,
    page_size: usize,
    /// The graph file the session runs.
    graph: &'static str,
    /// Candidates of sampled rows on the device (the paged CUDA graph).
    sampler: Option<crate::device_sampling::DeviceSampler>,
}

/// Reads `arbor.json` of a model directory.
pub fn read_meta(dir: &Path) -> Result<ModelMeta> {
    let path = dir.join("arbor.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{} is not an Arbor model directory (no arbor.json); create one with `arbor export`",
            dir.display()
        )
    })?;
    let meta: ModelMeta =
        serde_json::from_str(&text).with_context(|| format!("{} is corrupt", path.display()))?;
    if meta.format_version != FORMAT_VERSION {
        bail!(
            "{} was exported by another Arbor version (format {}, this is {}); export it again",
            dir.display(),
            meta.format_version,
            FORMAT_VERSION
        );
    }
    meta.config.validate()?;
    Ok(meta)
}

impl Engine {
    /// Opens a model directory written by `arbor export`.
    pub fn open(dir: &Path, opts: &EngineOptions) -> Result<Self> {
        let meta = read_meta(dir)?;
        let cfg = &meta.config;
        let paged = matches!(opts.device, Device::Cuda(_))
            && meta.dtype != WeightDtype::F32
            && !opts.kv_in_host_memory
            && !opts.standard_graph;
        let graph = if paged { CUDA_GRAPH } else { "model.onnx" };
        for f in [graph, "weights.bin"] {
            if !dir.join(f).is_file() {
                bail!(
                    "{} is missing; export the model again",
                    dir.join(f).display()
                );
            }
        }
        // ONNX Runtime's own error for short external data names neither the file nor the fix.
        let weights = dir.join("weights.bin");
        let (have, want) = (
            std::fs::metadata(&weights)?.len(),
            crate::format::weights_len(cfg, meta.dtype),
        );
        if have != want {
            bail!(
                "{} has {have} bytes but arbor.json implies {want}; export the model again",
                weights.display()
            );
        }
        let tokenizer =
            std::sync::Arc::new(Tokenizer::load(dir, &cfg.eos_token_ids, cfg.bos_token_id)?);
        let env = crate::ort_env::environment()?;
        let mut b = Session::builder(&env)
            .map_err(|e| anyhow!("{e}"))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| anyhow!("{e}"))?;
        if opts.threads > 0 {
            b = b
                .with_intra_threads(opts.threads)
                .map_err(|e| anyhow!("{e}"))?;
        }
        if let Device::Cuda(id) = opts.device {
            b = crate::cuda::register(b, id)?;
        }
        // A diagnostic: ONNX Runtime's per-node timings (JSON, written when
        // the engine is dropped), for finding where a step's time goes.
        if let Some(prefix) = std::env::var_os("ARBOR_ORT_PROFILE") {
            b = b.with_profiling(prefix).map_err(|e| anyhow!("{e}"))?;
        }
        let session = b.commit_from_file(dir.join(graph)).map_err(|e| {
            anyhow!(
                "ONNX Runtime cannot load {}: {e}",
                dir.join(graph).display()
            )
        })?;
        let kv_slots = match opts.device {
            Device::Cuda(id) if opts.kv_slots == 0 => {
                crate::kv_budget::slots_in_free_memory(id, opts.kv_fraction, &meta, paged)?
            }
            _ => opts.kv_slots,
        };
        if kv_slots == 0 {
            bail!("the KV pool needs at least one slot");
        }
        let opts = &EngineOptions {
            kv_slots,
            ..opts.clone()
        };
        let pool = match opts.device {
            Device::Cuda(id) if paged => Pool::Paged(Box::new(PagedPool::new(
                &session,
                id,
                meta.dtype,
                cfg.num_layers,
                // Whole blocks: the pool never holds less than asked for.
                opts.kv_slots.div_ceil(CUDA_BLOCK),
                cfg.num_kv_heads,
                cfg.head_dim,
            )?)),
            Device::Cuda(id) if !opts.kv_in_host_memory => Pool::Device(Box::new(DevicePool::new(
                &session,
                id,
                meta.dtype,
                cfg.num_layers,
                opts.kv_slots,
                cfg.num_kv_heads,
                cfg.head_dim,
            )?)),
            _ => Pool::Host(KvPool::new(
                meta.dtype,
                cfg.num_layers,
                opts.kv_slots,
                cfg.num_kv_heads,
                cfg.head_dim,
            )),
        };
        let sampler = match opts.device {
            Device::Cuda(id) if paged => Some(crate::device_sampling::DeviceSampler::new(
                id,
                cfg.vocab_size,
            )?),
            _ => None,
        };
        Ok(Engine {
            sampler,
            session,
            meta,
            tokenizer,
            pool,
            stats: EngineStats::default(),
            page_size: if paged { CUDA_BLOCK } else { 1 },
            graph,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.meta.config
    }

    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    /// The graph file this engine runs and its nodes per forward pass, where
    /// the export recorded them.
    pub fn graph(&self) -> (&'static str, Option<usize>) {
        (self.graph, self.meta.step_nodes.get(self.graph).copied())
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// A shared handle on the tokenizer, for threads other than the engine's.
    pub fn tokenizer_handle(&self) -> std::sync::Arc<Tokenizer> {
        self.tokenizer.clone()
    }

    /// Sets the KV page size its caller allocates slots in. This engine
    /// reads any slot layout, so every size that divides the pool works;
    /// tests run the KV manager's paging against it before a paged-attention
    /// graph needs it.
    pub fn with_page_size(mut self, page_size: usize) -> Result<Self> {
        if matches!(self.pool, Pool::Paged(_)) && page_size != CUDA_BLOCK {
            bail!(
                "the paged CUDA graph reads the pool in pages of {CUDA_BLOCK} tokens, not {page_size}"
            );
        }
        if page_size == 0 || !self.kv_slots().is_multiple_of(page_size) {
            bail!(
                "a KV page size of {page_size} does not divide the pool of {} slots",
                self.kv_slots()
            );
        }
        self.page_size = page_size;
        Ok(self)
    }

    /// Tokens per KV page: the unit the pool is allocated in.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// Copies every layer's K/V from slot `src` to slot `dst` for each
    /// pair, before the next forward pass reads them (copy on write of a
    /// partly shared page).
    pub fn copy_slots(&mut self, copies: &[(u32, u32)]) -> Result<()> {
        if copies.is_empty() {
            return Ok(());
        }
        match &mut self.pool {
            Pool::Host(p) => p.copy(copies),
            Pool::Paged(p) => p.copy(copies),
            // Pages above one token are a host-pool feature until the CUDA
            // graph reads its pool through a block table.
            Pool::Device(_) => bail!(
                "copying KV slots on the device pool is not supported (page size {})",
                self.page_size
            ),
        }
    }

    /// Number of slots in the KV pool.
    pub fn kv_slots(&self) -> usize {
        self.pool.slots()
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Longest sequence the model accepts.
    pub fn max_context(&self) -> usize {
        self.meta.config.max_position_embeddings
    }

    /// Runs one forward pass over a ragged batch: computes and stores the new
    /// tokens' K/V in their slots, and returns the logits asked for.
    pub fn forward(&mut self, batch: &[BatchEntry]) -> Result<ForwardOutput> {
        let cfg = &self.meta.config;
        let vocab = cfg.vocab_size;
        let slots = self.pool.slots();
        if batch.is_empty() {
            bail!("empty batch");
        }
        for (i, e) in batch.iter().enumerate() {
            if e.tokens.is_empty() {
                bail!("batch entry {i} has no new tokens");
            }
            if e.tokens.len() != e.new_slots.len() {
                bail!(
                    "batch entry {i}: {} tokens but {} new slots",
                    e.tokens.len(),
                    e.new_slots.len()
                );
            }
            if let Some(&t) = e.tokens.iter().find(|&&t| t as usize >= vocab) {
                bail!("token id {t} is outside the vocabulary (size {vocab})");
            }
            if let Some(&s) = e
                .history
                .iter()
                .chain(e.new_slots)
                .find(|&&s| s as usize >= slots)
            {
                bail!("pool slot {s} is outside the pool ({slots} slots)");
            }
            let len = e.history.len() + e.tokens.len();
            if len > cfg.max_position_embeddings {
                bail!(
                    "sequence of {len} tokens exceeds the model's context of {}",
                    cfg.max_position_embeddings
                );
            }
        }

        if matches!(self.pool, Pool::Paged(_)) {
            // The operator takes a ragged batch as it is: no padding, so no groups.
            return self.run_paged(batch);
        }
        let groups = attention_groups(batch);
        if groups.len() == 1 {
            // The common step: one run in batch order, nothing to reorder.
            let (logits, rows) = self.run_group(batch)?;
            let mut out = ForwardOutput::new(logits, vocab, rows);
            out.set_greedy(batch, None);
            return Ok(out);
        }
        let mut logits = Vec::new();
        let mut rows = vec![0..0; batch.len()];
        let mut group = Vec::new();
        for members in groups {
            group.clear();
            group.extend(members.iter().map(|&i| batch[i]));
            let (l, r) = self.run_group(&group)?;
            let base = logits.len() / vocab;
            logits.extend_from_slice(&l);
            for (&i, r) in members.iter().zip(r) {
                rows[i] = base + r.start..base + r.end;
            }
        }
        let mut out = ForwardOutput::new(logits, vocab, rows);
        out.set_greedy(batch, None);
        Ok(out)
    }

    /// One session run over entries whose attention is padded together to
    /// `[B, Qmax] x [B, Lmax]`; returns its logits and each entry's rows.
    fn run_group(&mut self, batch: &[BatchEntry]) -> Result<(Vec<f32>, Vec<Range<usize>>)> {
        let cfg = &self.meta.config;
        let slots = self.pool.slots();
        let t: usize = batch.iter().map(|e| e.tokens.len()).sum();
        let h: usize = batch.iter().map(|e| e.history.len()).sum();
        let b = batch.len();
        let qmax = batch.iter().map(|e| e.tokens.len()).max().unwrap_or(1);
        let lmax = batch
            .iter()
            .map(|e| e.history.len() + e.tokens.len())
            .max()
            .unwrap_or(1);

        let mut input_ids = Vec::with_capacity(t);
        let mut positions = Vec::with_capacity(t);
        let layers = cfg.num_layers;
        let mut hist_rows = vec![0i64; layers * h];
        let mut new_slots = Vec::with_capacity(t);
        let mut kv_index = vec![0i64; b * lmax];
        let mut q_index = vec![0i64; b * qmax];
        let mut mask = vec![f32::NEG_INFINITY; b * qmax * lmax];
        let mut out_index = Vec::with_capacity(t);
        let mut logit_index = Vec::new();
        let mut rows = Vec::with_capacity(b);
        let (mut hoff, mut toff) = (0usize, 0usize);
        let window = cfg.sliding_window.unwrap_or(usize::MAX);
        for (bi, e) in batch.iter().enumerate() {
            let hl = e.history.len();
            let n = e.tokens.len();
            for l in 0..layers {
                let rows = &mut hist_rows[l * h + hoff..l * h + hoff + hl];
                for (r, &s) in rows.iter_mut().zip(e.history) {
                    *r = pool_row(l, slots, s) as i64;
                }
            }
            new_slots.extend_from_slice(e.new_slots);
            for (i, &tok) in e.tokens.iter().enumerate() {
                input_ids.push(tok as i64);
                positions.push((hl + i) as i64);
                out_index.push((bi * qmax + i) as i64);
            }
            let keys = &mut kv_index[bi * lmax..(bi + 1) * lmax];
            for (j, k) in keys.iter_mut().enumerate().take(hl + n) {
                *k = if j < hl {
                    (hoff + j) as i64
                } else {
                    (h + toff + j - hl) as i64
                };
            }
            for qi in 0..qmax {
                let m = &mut mask[(bi * qmax + qi) * lmax..(bi * qmax + qi + 1) * lmax];
                if qi < n {
                    q_index[bi * qmax + qi] = (toff + qi) as i64;
                    let pos = hl + qi;
                    let first = (pos + 1).saturating_sub(window);
                    m[first..=pos].fill(0.0);
                } else {
                    // Padding queries see one key so their softmax stays finite;
                    // their outputs are never gathered.
                    m[0] = 0.0;
                }
            }
            let start = logit_index.len();
            match e.logits {
                Logits::None => {}
                Logits::Last | Logits::Greedy | Logits::Sample(_) | Logits::ScoreLast => {
                    logit_index.push((toff + n - 1) as i64)
                }
                Logits::All | Logits::Score => {
                    logit_index.extend((toff..toff + n).map(|x| x as i64))
                }
            }
            rows.push(start..logit_index.len());
            hoff += hl;
            toff += n;
        }

        let i64t = |shape: Vec<usize>, data: Vec<i64>| -> Result<DynValue> {
            Ok(Tensor::from_array((shape, data))?.into_dyn())
        };
        let p = logit_index.len();
        let step: [(&str, DynValue); 8] = [
            ("input_ids", i64t(vec![t], input_ids)?),
            ("positions", i64t(vec![t], positions)?),
            ("hist_rows", i64t(vec![layers, h], hist_rows)?),
            ("kv_index", i64t(vec![b, lmax], kv_index)?),
            ("q_index", i64t(vec![b, qmax], q_index)?),
            (
                "attn_mask",
                Tensor::from_array((vec![b, qmax, lmax], mask))?.into_dyn(),
            ),
            ("out_index", i64t(vec![t], out_index)?),
            ("logit_index", i64t(vec![p], logit_index)?),
        ];
        let failed = |e: ort::Error| anyhow!("forward pass failed: {e}");
        let logits = match &mut self.pool {
            Pool::Host(pool) => {
                let (k_pool, v_pool) = pool.inputs()?;
                let mut inputs: Vec<(&str, SessionInputValue<'_>)> =
                    step.iter().map(|(n, v)| (*n, v.into())).collect();
                inputs.push(("k_pool", k_pool));
                inputs.push(("v_pool", v_pool));
                let outputs = self.session.run(inputs).map_err(failed)?;
                let (_, logits) = outputs["logits"].try_extract_tensor::<f32>()?;
                let logits = logits.to_vec();
                pool.write(&outputs["new_k"], &outputs["new_v"], &new_slots)?;
                logits
            }
            Pool::Paged(_) => bail!("internal: a paged pool in the standard graph's step"),
            Pool::Device(pool) => {
                let mut bind = self.session.create_binding().map_err(failed)?;
                for (name, value) in &step {
                    bind.bind_input(*name, value).map_err(failed)?;
                }
                pool.bind(&mut bind)?;
                let outputs = self.session.run_binding(&bind).map_err(failed)?;
                let (_, logits) = outputs["logits"].try_extract_tensor::<f32>()?;
                let logits = logits.to_vec();
                pool.write(&outputs["new_k"], &outputs["new_v"], &new_slots)?;
                logits
            }
        };
        self.stats.forward_passes += 1;
        self.stats.tokens_processed += t as u64;
        self.stats.logit_rows += p as u64;
        Ok((logits, rows))
    }
}
