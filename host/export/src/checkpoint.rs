//! Hugging Face checkpoints of Llama-family models: reading (single or
//! sharded safetensors, mapped into memory) and writing. The tensor names and
//! shapes a checkpoint must hold are the engine's [`expected_tensors`].

use anyhow::{Context, Result, bail};
use arbor_engine::ModelConfig;
use arbor_engine::format::expected_tensors;
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The safetensors files of a checkpoint directory, mapped into memory.
pub struct Checkpoint {
    files: Vec<(PathBuf, memmap2::Mmap)>,
    /// Tensor name -> index into `files`.
    index: BTreeMap<String, usize>,
}

/// One tensor's raw little-endian bytes and dtype.
pub struct RawTensor<'a> {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: &'a [u8],
}

impl Checkpoint {
    /// Opens `model.safetensors`, or the shards listed in `model.safetensors.index.json`.
    pub fn open(dir: &Path) -> Result<Self> {
        let single = dir.join("model.safetensors");
        let index_path = dir.join("model.safetensors.index.json");
        let paths: Vec<PathBuf> = if single.exists() {
            vec![single]
        } else if index_path.exists() {
            let text = std::fs::read_to_string(&index_path)?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", index_path.display()))?;
            let map = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .with_context(|| format!("{} has no weight_map", index_path.display()))?;
            let mut files: Vec<String> = map
                .values()
                .filter_map(|f| f.as_str().map(String::from))
                .collect();
            files.sort();
            files.dedup();
            let mut out = Vec::new();
            for f in files {
                if f.contains('/') || f.contains("..") {
                    bail!(
                        "{}: shard name {f:?} must be a plain file name",
                        index_path.display()
                    );
                }
                out.push(dir.join(f));
            }
            out
        } else {
            bail!(
                "{} has neither model.safetensors nor model.safetensors.index.json",
                dir.display()
            );
        };
        let mut files = Vec::new();
        let mut index = BTreeMap::new();
        for p in paths {
            let f =
                std::fs::File::open(&p).with_context(|| format!("cannot open {}", p.display()))?;
            // SAFETY: the file is opened read-only; a concurrent writer would be
            // a user error that at worst yields wrong weights, never UB in safe code
            // reading through bounds-checked slices of the map.
            let map = unsafe { memmap2::Mmap::map(&f) }
                .with_context(|| format!("cannot map {}", p.display()))?;
            let st = SafeTensors::deserialize(&map).map_err(|e| {
                anyhow::anyhow!("{} is not a valid safetensors file: {e}", p.display())
            })?;
            for name in st.names() {
                index.insert(name.to_string(), files.len());
            }
            files.push((p, map));
        }
        Ok(Checkpoint { files, index })
    }

    /// A tensor by name.
    pub fn tensor(&self, name: &str) -> Result<RawTensor<'_>> {
        let &fi = self
            .index
            .get(name)
            .with_context(|| format!("checkpoint lacks tensor {name}"))?;
        let (path, map) = &self.files[fi];
        let st = SafeTensors::deserialize(map)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let t = st
            .tensor(name)
            .map_err(|e| anyhow::anyhow!("{}: {name}: {e}", path.display()))?;
        Ok(RawTensor {
            dtype: t.dtype(),
            shape: t.shape().to_vec(),
            data: t.data(),
        })
    }

    /// Checks that every tensor the config implies exists with the right shape.
    pub fn validate(&self, cfg: &ModelConfig) -> Result<()> {
        for (name, shape) in expected_tensors(cfg) {
            let t = self.tensor(&name)?;
            if t.shape != shape {
                bail!(
                    "tensor {name} has shape {:?}, but config.json implies {:?}",
                    t.shape,
                    shape
                );
            }
            match t.dtype {
                Dtype::F32 | Dtype::F16 | Dtype::BF16 => {}
                other => bail!("tensor {name} has dtype {other:?}; supported: F32, F16, BF16"),
            }
        }
        Ok(())
    }
}

/// Converts raw tensor bytes to little-endian f32 values.
pub fn to_f32(t: &RawTensor) -> Result<Vec<f32>> {
    Ok(match t.dtype {
        Dtype::F32 => t
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => t
            .data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => t
            .data
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => bail!("unsupported dtype {other:?}"),
    })
}

/// Writes tensors as one safetensors file, streaming so that multi-GB
/// checkpoints never sit in memory at once. `tensors` yields (name, shape, dtype, bytes).
pub fn write_safetensors(
    path: &Path,
    layout: &[(String, Vec<usize>, Dtype)],
    mut fill: impl FnMut(usize, &mut Vec<u8>) -> Result<()>,
) -> Result<()> {
    use std::io::Write;
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape, dtype) in layout {
        let n: usize = shape.iter().product::<usize>() * (dtype.bitsize() / 8);
        header.insert(
            name.clone(),
            serde_json::json!({ "dtype": dtype_name(*dtype), "shape": shape, "data_offsets": [offset, offset + n] }),
        );
        offset += n;
    }
    header.insert("__metadata__".into(), serde_json::json!({ "format": "pt" }));
    let mut h = serde_json::to_vec(&serde_json::Value::Object(header))?;
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let f =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 22, f);
    w.write_all(&(h.len() as u64).to_le_bytes())?;
    w.write_all(&h)?;
    let mut buf = Vec::new();
    for (i, (name, shape, dtype)) in layout.iter().enumerate() {
        buf.clear();
        fill(i, &mut buf)?;
        let n: usize = shape.iter().product::<usize>() * (dtype.bitsize() / 8);
        if buf.len() != n {
            bail!(
                "internal: tensor {name} produced {} bytes, expected {n}",
                buf.len()
            );
        }
        w.write_all(&buf)?;
    }
    w.flush()?;
    Ok(())
}

fn dtype_name(d: Dtype) -> &'static str {
    match d {
        Dtype::F32 => "F32",
        Dtype::F16 => "F16",
        Dtype::BF16 => "BF16",
        _ => "F32",
    }
}
