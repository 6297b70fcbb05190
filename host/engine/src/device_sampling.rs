//! What the host needs of sampled rows, computed where the logits are: for
//! each row a draw samples from, its [`CANDIDATES`] largest logits and the
//! log-sum-exp of the row at its temperature; and a fetch of the sampled
//! rows, once per step at most, for the draws that land beyond the
//! candidates.
//!
//! Invariant: the logit matrix never crosses to the host for a sampled row
//! unless a draw asks for that row; what does cross is `K` ids and logits
//! and one number a row (about 0.8 kB instead of 4 × vocabulary bytes:
//! 512 kB for a 128k vocabulary).
//!
//! The same for `select`: a choice's rows ([`crate::Logits::Score`]) stay
//! on the device, and only the log-probability of each scored token comes
//! back (8 bytes a token instead of a row).
//!
//! Three small sessions on the forward session's device, reading the
//! forward pass's logits output where it was left: one per step with
//! sampled rows, one per tail draw, one per step with scored rows. They are
//! separate from the forward graph so that a step without such rows
//! (greedy decoding, prefill) runs none of it, and so that models exported
//! before them keep working.

use crate::batch::{RowSource, ScoreSource};
use anyhow::{Context, Result, anyhow};
use arbor_onnx::{Attr, Dim, ElemType, Graph};
use ort::session::Session;
use ort::value::{DynValue, Tensor};
use std::sync::{Arc, Mutex, OnceLock};

/// Candidates per sampled row. Top-k up to this many is exact without the
/// row; beyond the candidates a draw needs the row only when it lands there.
pub const CANDIDATES: usize = 64;

/// Scored rows per run of the log-probability session: it gathers its rows
/// into a `[rows, vocabulary]` f32 tensor (128 MiB at 256 rows of a 128k
/// vocabulary), so a long `select` is scored in parts of bounded memory.
const SCORE_ROWS_PER_RUN: usize = 256;

/// The sessions, built once per engine.
pub struct DeviceSampler {
    candidates: Session,
    rows: Arc<Mutex<Session>>,
    scores: Arc<Mutex<Session>>,
    k: usize,
}

/// `[S, K]` ids and logits and `[S]` log-sum-exps of the sampled rows.
pub struct SampledRows {
    pub ids: Vec<i64>,
    pub logits: Vec<f32>,
    pub lse: Vec<f32>,
    pub k: usize,
}

impl DeviceSampler {
    /// Builds the sessions on CUDA device `id` for rows of `vocab` logits.
    pub fn new(id: i32, vocab: usize) -> Result<Self> {
        let k = CANDIDATES.min(vocab);
        let open = |bytes: Vec<u8>, what| crate::cuda::helper_session(id, &bytes, what);
        Ok(DeviceSampler {
            candidates: open(candidates_graph(vocab, k), "sampling candidates")?,
            rows: Arc::new(Mutex::new(open(rows_graph(vocab), "logit row fetch")?)),
            scores: Arc::new(Mutex::new(open(
                log_probs_graph(vocab),
                "log-probabilities",
            )?)),
            k,
        })
    }

    /// The candidates of rows `rows` of `logits` (`[P, V]`, on the device),
    /// row `i` at temperature `temps[i]`.
    pub fn sample_rows(
        &mut self,
        logits: &DynValue,
        rows: &[i64],
        temps: &[f32],
    ) -> Result<SampledRows> {
        let s = rows.len();
        let inv: Vec<f32> = temps.iter().map(|t| 1.0 / t).collect();
        let rows = Tensor::from_array((vec![s], rows.to_vec()))?;
        let inv = Tensor::from_array((vec![s], inv))?;
        let k = self.k;
        run_to_host(
            &mut self.candidates,
            &[
                ("logits", logits),
                ("rows", &rows.into_dyn()),
                ("inv_temperature", &inv.into_dyn()),
            ],
            &["cand_ids", "cand_logits", "lse"],
            |out| {
                Ok(SampledRows {
                    ids: out["cand_ids"].try_extract_tensor::<i64>()?.1.to_vec(),
                    logits: out["cand_logits"].try_extract_tensor::<f32>()?.1.to_vec(),
                    lse: out["lse"].try_extract_tensor::<f32>()?.1.to_vec(),
                    k,
                })
            },
        )
        .context("computing sampling candidates on the device")
    }

    /// A fetcher of the sampled rows `rows` of `logits`, which it keeps
    /// alive.
    pub fn row_source(
        &self,
        logits: Arc<DynValue>,
        rows: Vec<i64>,
        vocab: usize,
    ) -> Box<dyn RowSource> {
        Box::new(DeviceRows {
            session: Arc::clone(&self.rows),
            logits,
            rows,
            vocab,
            fetched: OnceLock::new(),
        })
    }

    /// Rows `rows` of `logits` (on the device), on the host in order: the
    /// rows a step's host-side decoders read (constrained or penalised
    /// draws, logprobs), without the step's other rows.
    pub fn fetch_rows(&self, logits: &DynValue, rows: &[i64]) -> Result<Vec<f32>> {
        gather_rows(&self.rows, logits, rows)
    }

    /// Log-probabilities of tokens at rows of `logits`, which it keeps alive.
    pub fn score_source(&self, logits: Arc<DynValue>) -> Box<dyn ScoreSource> {
        Box::new(DeviceScores {
            session: Arc::clone(&self.scores),
            logits,
        })
    }
}

/// One pass's logits on the device and the session that scores tokens at
/// its rows.
struct DeviceScores {
    session: Arc<Mutex<Session>>,
    logits: Arc<DynValue>,
}

impl ScoreSource for DeviceScores {
    fn log_probs(&self, queries: &[(usize, u32)]) -> Result<Vec<f64>> {
        let mut session = self
            .session
            .lock()
            .map_err(|_| anyhow!("the log-probability session was poisoned"))?;
        let mut out = Vec::with_capacity(queries.len());
        for part in queries.chunks(SCORE_ROWS_PER_RUN) {
            let n = part.len();
            let rows: Vec<i64> = part.iter().map(|q| q.0 as i64).collect();
            let tokens: Vec<i64> = part.iter().map(|q| q.1 as i64).collect();
            let rows = Tensor::from_array((vec![n], rows))?.into_dyn();
            let tokens = Tensor::from_array((vec![n, 1], tokens))?.into_dyn();
            run_to_host(
                &mut session,
                &[
                    ("logits", &*self.logits),
                    ("rows", &rows),
                    ("tokens", &tokens),
                ],
                &["log_probs"],
                |o| {
                    let (_, lp) = o["log_probs"].try_extract_tensor::<f32>()?;
                    out.extend(lp.iter().map(|&x| x as f64));
                    Ok(())
                },
            )
            .context("scoring tokens on the device")?;
        }
        Ok(out)
    }
}

/// One pass's logits on the device, the rows draws may ask for, and the
/// session that fetches them.
struct DeviceRows {
    session: Arc<Mutex<Session>>,
    logits: Arc<DynValue>,
    rows: Vec<i64>,
    vocab: usize,
    /// Every one of `rows`, fetched at the first request: one copy per step
    /// at most, however many of its draws land in a tail (at worst what
    /// fetching the sampled rows with the ids would have cost).
    fetched: OnceLock<Vec<f32>>,
}

impl DeviceRows {
    fn fetch_all(&self) -> Result<Vec<f32>> {
        gather_rows(&self.session, &self.logits, &self.rows)
    }
}

/// Rows `rows` of `logits` (on the device), copied to the host in order.
fn gather_rows(session: &Mutex<Session>, logits: &DynValue, rows: &[i64]) -> Result<Vec<f32>> {
    let mut session = session
        .lock()
        .map_err(|_| anyhow!("the logit row fetch session was poisoned"))?;
    let index = Tensor::from_array((vec![rows.len()], rows.to_vec()))?.into_dyn();
    run_to_host(
        &mut session,
        &[("logits", logits), ("rows", &index)],
        &["out"],
        |out| Ok(out["out"].try_extract_tensor::<f32>()?.1.to_vec()),
    )
    .context("fetching logit rows from the device")
}

impl RowSource for DeviceRows {
    fn fetch(&self, row: usize) -> Result<Vec<f32>> {
        let at = self
            .rows
            .iter()
            .position(|&r| r == row as i64)
            .ok_or_else(|| anyhow!("internal: row {row} was not sampled"))?;
        if self.fetched.get().is_none() {
            let all = self.fetch_all()?;
            let _ = self.fetched.set(all);
        }
        let all = self.fetched.get().expect("set above");
        Ok(all[at * self.vocab..(at + 1) * self.vocab].to_vec())
    }
}

/// Runs `session` on `inputs` (on the host or the device) with every one of
/// `outputs` placed in host memory, and reads them with `read`.
fn run_to_host<T>(
    session: &mut Session,
    inputs: &[(&str, &DynValue)],
    outputs: &[&str],
    read: impl FnOnce(&ort::session::SessionOutputs<'_>) -> Result<T>,
) -> Result<T> {
    let host = crate::cuda::host_memory()?;
    let mut b = session.create_binding()?;
    for (name, value) in inputs {
        b.bind_input(*name, *value)?;
    }
    for out in outputs {
        b.bind_output_to_device(*out, &host)?;
    }
    read(&session.run_binding(&b)?)
}

/// Declares the inputs every helper graph reads, `logits [P, vocab]` and
/// `rows [rows_dim]`, and returns `logits[rows]`.
fn gathered_rows(g: &mut Graph, vocab: usize, rows_dim: &'static str) -> String {
    let logits = g.input(
        "logits",
        ElemType::F32,
        vec![Dim::Named("P"), Dim::Fixed(vocab as i64)],
    );
    let rows = g.input("rows", ElemType::I64, vec![Dim::Named(rows_dim)]);
    g.op1("Gather", &[&logits, &rows], vec![("axis", Attr::Int(0))])
}

/// `cand_logits, cand_ids = TopK(logits[rows], K)` and `lse` the
/// log-sum-exp of `logits[rows] * inv_temperature` over the vocabulary.
fn candidates_graph(vocab: usize, k: usize) -> Vec<u8> {
    let mut g = Graph::new();
    let x = gathered_rows(&mut g, vocab, "S");
    let inv = g.input("inv_temperature", ElemType::F32, vec![Dim::Named("S")]);
    let kk = g.const_i64(vec![1], &[k as i64]);
    g.op_multi(
        "",
        "TopK",
        &[&x, &kk],
        &["cand_logits", "cand_ids"],
        vec![
            ("axis", Attr::Int(-1)),
            ("largest", Attr::Int(1)),
            ("sorted", Attr::Int(1)),
        ],
    );
    // The log-sum-exp as max + log Σ exp(x - max), the max being the top
    // candidate: ONNX Runtime 1.31.1's CUDA ReduceLogSumExp took 12-16 ms
    // over [32, 128k] on an H200 (bench/gpu/sampling-profile.sh), where a
    // ReduceSum over the last axis is one fast kernel.
    let one = g.const_i64(vec![1], &[1]);
    let zero = g.const_i64(vec![1], &[0]);
    let inv = g.op1("Unsqueeze", &[&inv, &one], vec![]);
    let top = g.op1("Slice", &["cand_logits", &zero, &one, &one], vec![]);
    let max = g.op1("Mul", &[&top, &inv], vec![]);
    let scaled = g.op1("Mul", &[&x, &inv], vec![]);
    let shifted = g.op1("Sub", &[&scaled, &max], vec![]);
    let e = g.op1("Exp", &[&shifted], vec![]);
    let sum = g.op1("ReduceSum", &[&e, &one], vec![("keepdims", Attr::Int(1))]);
    let log = g.op1("Log", &[&sum], vec![]);
    let lse = g.op1("Add", &[&log, &max], vec![]);
    let lse = g.op1("Squeeze", &[&lse, &one], vec![]);
    let sk = || vec![Dim::Named("S"), Dim::Fixed(k as i64)];
    g.declare_output("cand_logits", ElemType::F32, sk());
    g.declare_output("cand_ids", ElemType::I64, sk());
    g.output(&lse, "lse", ElemType::F32, vec![Dim::Named("S")]);
    g.to_model_bytes(arbor_onnx::OPSET, "arbor", "sampling candidates")
}

/// `log_probs[i] = log_softmax(logits[rows[i]])[tokens[i]]`, the
/// normalizer as max + log Σ exp(x - max) (see `candidates_graph`), the max
/// by `TopK` of one.
fn log_probs_graph(vocab: usize) -> Vec<u8> {
    let mut g = Graph::new();
    let x = gathered_rows(&mut g, vocab, "N");
    let tokens = g.input(
        "tokens",
        ElemType::I64,
        vec![Dim::Named("N"), Dim::Fixed(1)],
    );
    let one = g.const_i64(vec![1], &[1]);
    let max = "row_max";
    g.op_multi(
        "",
        "TopK",
        &[&x, &one],
        &[max, "row_max_id"],
        vec![
            ("axis", Attr::Int(-1)),
            ("largest", Attr::Int(1)),
            ("sorted", Attr::Int(1)),
        ],
    );
    let shifted = g.op1("Sub", &[&x, max], vec![]);
    let e = g.op1("Exp", &[&shifted], vec![]);
    let sum = g.op1("ReduceSum", &[&e, &one], vec![("keepdims", Attr::Int(1))]);
    let log = g.op1("Log", &[&sum], vec![]);
    let lse = g.op1("Add", &[&log, max], vec![]);
    let picked = g.op1(
        "GatherElements",
        &[&x, &tokens],
        vec![("axis", Attr::Int(1))],
    );
    let lp = g.op1("Sub", &[&picked, &lse], vec![]);
    let lp = g.op1("Squeeze", &[&lp, &one], vec![]);
    g.output(&lp, "log_probs", ElemType::F32, vec![Dim::Named("N")]);
    g.to_model_bytes(arbor_onnx::OPSET, "arbor", "log-probabilities")
}

/// `out = logits[rows]`.
fn rows_graph(vocab: usize) -> Vec<u8> {
    let mut g = Graph::new();
    let x = gathered_rows(&mut g, vocab, "R");
    g.output(
        &x,
        "out",
        ElemType::F32,
        vec![Dim::Named("R"), Dim::Fixed(vocab as i64)],
    );
    g.to_model_bytes(arbor_onnx::OPSET, "arbor", "logit row fetch")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The graphs run on the CPU too, which checks them where CI can: the
    /// candidates are the row's largest logits in order, the log-sum-exp is
    /// the row's at each temperature, and the fetch returns the row.
    #[test]
    fn the_sampling_graphs_compute_candidates_lse_and_rows() {
        let (p, v, k) = (3usize, 100usize, 8usize);
        let data: Vec<f32> = (0..p * v)
            .map(|i| ((i * 37 % 101) as f32 * 0.13).sin() * 4.0)
            .collect();
        let env = crate::ort_env::environment().unwrap();
        let open = |bytes: Vec<u8>| {
            Session::builder(&env)
                .unwrap()
                .commit_from_memory(&bytes)
                .unwrap()
        };
        let mut cand = open(candidates_graph(v, k));
        let logits = Tensor::from_array((vec![p, v], data.clone())).unwrap();
        let rows = Tensor::from_array((vec![2usize], vec![2i64, 0])).unwrap();
        let inv = Tensor::from_array((vec![2usize], vec![1.0f32 / 0.5, 1.0])).unwrap();
        let out = cand
            .run(ort::inputs!["logits" => logits.view(), "rows" => rows, "inv_temperature" => inv])
            .unwrap();
        let (_, ids) = out["cand_ids"].try_extract_tensor::<i64>().unwrap();
        let (_, vals) = out["cand_logits"].try_extract_tensor::<f32>().unwrap();
        let (_, lse) = out["lse"].try_extract_tensor::<f32>().unwrap();
        for (s, (row, t)) in [(2usize, 0.5f64), (0, 1.0)].into_iter().enumerate() {
            let r = &data[row * v..(row + 1) * v];
            let mut idx: Vec<usize> = (0..v).collect();
            idx.sort_by(|&a, &b| r[b].total_cmp(&r[a]).then(a.cmp(&b)));
            let want: Vec<i64> = idx[..k].iter().map(|&i| i as i64).collect();
            assert_eq!(&ids[s * k..(s + 1) * k], &want[..]);
            for (j, &i) in idx[..k].iter().enumerate() {
                assert_eq!(vals[s * k + j], r[i]);
            }
            let exact = r.iter().map(|&l| (l as f64 / t).exp()).sum::<f64>().ln();
            assert!(
                (lse[s] as f64 - exact).abs() < 1e-4,
                "{} vs {exact}",
                lse[s]
            );
        }
        drop(out);
        let mut fetch = open(rows_graph(v));
        let one = Tensor::from_array((vec![1usize], vec![1i64])).unwrap();
        let out = fetch
            .run(ort::inputs!["logits" => logits, "rows" => one])
            .unwrap();
        let (_, row) = out["out"].try_extract_tensor::<f32>().unwrap();
        assert_eq!(row, &data[v..2 * v]);
    }

    /// The scoring graph on the CPU: each query's log-probability is its
    /// row's log-softmax at its token, rows repeated and in any order.
    #[test]
    fn the_scoring_graph_computes_log_softmax_at_each_token() {
        let (p, v) = (4usize, 1000usize);
        let data: Vec<f32> = (0..p * v)
            .map(|i| ((i * 53 % 997) as f32 * 0.07).cos() * 9.0 + (i / v) as f32)
            .collect();
        let env = crate::ort_env::environment().unwrap();
        let mut session = Session::builder(&env)
            .unwrap()
            .commit_from_memory(&log_probs_graph(v))
            .unwrap();
        let queries = [(3usize, 0u32), (0, 999), (3, 17), (1, 500), (0, 999)];
        let logits = Tensor::from_array((vec![p, v], data.clone())).unwrap();
        let rows = Tensor::from_array((
            vec![queries.len()],
            queries.iter().map(|q| q.0 as i64).collect::<Vec<_>>(),
        ))
        .unwrap();
        let tokens = Tensor::from_array((
            vec![queries.len(), 1],
            queries.iter().map(|q| q.1 as i64).collect::<Vec<_>>(),
        ))
        .unwrap();
        let out = session
            .run(ort::inputs!["logits" => logits, "rows" => rows, "tokens" => tokens])
            .unwrap();
        let (_, lp) = out["log_probs"].try_extract_tensor::<f32>().unwrap();
        assert_eq!(lp.len(), queries.len());
        for (&(row, tok), &got) in queries.iter().zip(lp) {
            let want = crate::sampling::log_prob(&data[row * v..(row + 1) * v], tok);
            assert!(
                (got as f64 - want).abs() < 1e-4,
                "row {row} token {tok}: {got} vs {want}"
            );
        }
    }
}
