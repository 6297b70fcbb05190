//! Cross-crate tests: the engine checked against an independent reference forward pass.
//!
//! The reference is `reference/llama_ref.py`, a float64 NumPy implementation
//! of the Llama family that shares no code with the engine. Expected tokens
//! and logits are always computed from it at test time; nothing is recorded.
//!
//! Python is `$ARBOR_PYTHON` (default `python3`) with numpy and safetensors
//! (and `tokenizers` for `reference/write_hf_checkpoint.py`).

pub mod generate;
pub mod sequence;

use anyhow::{Context, Result, bail};
use arbor_engine::engine::{Device, Engine, EngineOptions, Logits};
use generate::{GenRequest, generate};
use sequence::{SeqId, Sequences, StepItem};
use serde::Deserialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Largest absolute difference allowed between engine (f32) and reference
/// (f64) logits.
pub const LOGIT_TOL: f64 = 1e-3;

/// The interpreter that runs the reference scripts.
pub fn python() -> String {
    std::env::var("ARBOR_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// A script in `tests/reference/`, or in `$ARBOR_REFERENCE_DIR` (for test
/// binaries run on another machine than the one that built them).
pub fn reference_script(name: &str) -> PathBuf {
    match std::env::var_os("ARBOR_REFERENCE_DIR") {
        Some(dir) => PathBuf::from(dir).join(name),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("reference")
            .join(name),
    }
}

/// Runs a reference script and returns its stdout.
pub fn run_python(script: &str, args: &[&str], stdin: &str) -> Result<String> {
    let py = python();
    let path = reference_script(script);
    let mut child = Command::new(&py)
        .arg(&path)
        .args(args)
        // The reference's matrices are tiny: BLAS threads only contend with
        // the tests running beside it (several times slower on 2 cores).
        .env("OPENBLAS_NUM_THREADS", "1")
        .env("OMP_NUM_THREADS", "1")
        .env("MKL_NUM_THREADS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!("cannot run `{py}` for {script}; install Python 3 with numpy, safetensors and tokenizers, or set ARBOR_PYTHON")
        })?;
    // A writer thread: the script may fill its stdout pipe before reading all
    // of a large stdin.
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let input = stdin.to_string();
    let writer = std::thread::spawn(move || pipe.write_all(input.as_bytes()));
    let out = child
        .wait_with_output()
        .with_context(|| format!("{script} did not finish"))?;
    writer
        .join()
        .expect("stdin writer panicked")
        .with_context(|| format!("cannot feed {script}"))?;
    if !out.status.success() {
        bail!(
            "`{py} {}` failed ({}):\n{}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    String::from_utf8(out.stdout).with_context(|| format!("{script} printed non-UTF-8 output"))
}

/// What the reference says about one prompt.
#[derive(Clone, Debug, Deserialize)]
pub struct RefResult {
    /// Greedy continuation.
    pub greedy: Vec<u32>,
    /// Gap between the two best logits at each greedy step.
    pub margins: Vec<f64>,
    pub last_logits: Vec<f64>,
    /// One row per position of `prompt + greedy[..len - 1]`; row `i` predicts
    /// the token after position `i`.
    pub logits: Vec<Vec<f64>>,
}

/// Runs the reference forward pass on `hf_dir` for every prompt, with greedy
/// continuations of `max_tokens` and the logits at every position.
pub fn reference(hf_dir: &Path, prompts: &[Vec<u32>], max_tokens: usize) -> Result<Vec<RefResult>> {
    #[derive(Deserialize)]
    struct Out {
        results: Vec<RefResult>,
    }
    let req =
        serde_json::json!({ "prompts": prompts, "max_tokens": max_tokens, "all_logits": true });
    let hf = hf_dir.to_str().context("non-UTF-8 path")?;
    let text = run_python("llama_ref.py", &[hf], &req.to_string())?;
    let out: Out = serde_json::from_str(&text).context("llama_ref.py printed invalid JSON")?;
    if out.results.len() != prompts.len() {
        bail!(
            "llama_ref.py returned {} results for {} prompts",
            out.results.len(),
            prompts.len()
        );
    }
    for (r, p) in out.results.iter().zip(prompts) {
        if r.greedy.len() != max_tokens || r.logits.len() != p.len() + max_tokens.max(1) - 1 {
            bail!("llama_ref.py returned a result of the wrong size");
        }
    }
    Ok(out.results)
}

/// A fresh directory for this process's test files, under the system temp
/// dir. Test binaries keep fixtures in statics, which are never dropped, so
/// instead of deleting on exit each new process deletes the directories of
/// processes that no longer run.
pub fn scratch_dir(label: &str) -> PathBuf {
    let base = std::env::temp_dir().join("arbor-tests");
    let proc_fs = Path::new("/proc/self").exists();
    if proc_fs && let Ok(rd) = std::fs::read_dir(&base) {
        for e in rd.flatten() {
            let name = e.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid
                && !Path::new("/proc").join(pid.to_string()).exists()
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = base.join(format!("{}-{label}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// Engine options for tests: one intra-op thread, since the test harness
/// already runs tests in parallel on few cores.
///
/// `ARBOR_TEST_DEVICE=cuda:N` runs the same checks on CUDA device `N` (with
/// `onnxruntime-gpu` behind `ORT_DYLIB_PATH`), so the GPU path answers to the
/// same reference as the CPU one; `ARBOR_TEST_KV_IN_HOST_MEMORY=1` checks the
/// CUDA path with the pool in host memory instead, and
/// `ARBOR_TEST_STANDARD_GRAPH=1` the standard-op graph instead of the paged
/// one (half-precision models on CUDA).
pub fn test_options() -> EngineOptions {
    EngineOptions {
        kv_slots: 4096,
        threads: 1,
        device: test_device(),
        kv_in_host_memory: std::env::var_os("ARBOR_TEST_KV_IN_HOST_MEMORY").is_some(),
        standard_graph: std::env::var_os("ARBOR_TEST_STANDARD_GRAPH").is_some(),
        ..Default::default()
    }
}

/// The device named by `ARBOR_TEST_DEVICE` (`cpu`, the default, or `cuda:N`).
pub fn test_device() -> Device {
    let v = std::env::var("ARBOR_TEST_DEVICE").unwrap_or_default();
    match v.as_str() {
        "" | "cpu" => Device::Cpu,
        _ => match v.strip_prefix("cuda:").map(str::parse) {
            Some(Ok(id)) => Device::Cuda(id),
            _ => panic!("ARBOR_TEST_DEVICE={v:?}: expected `cpu` or `cuda:N`"),
        },
    }
}

/// Index of the largest value; the first on ties, as NumPy's argmax.
pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// Checks one logit row against the reference's.
pub fn compare_logits(got: &[f32], want: &[f64], what: &str) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!(
            "{what}: {} logits, reference has {}",
            got.len(),
            want.len()
        ));
    }
    let (mut worst, mut at) = (0f64, 0);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let d = (g as f64 - w).abs();
        // NaN must fail: count it as infinitely far.
        let d = if d.is_nan() { f64::INFINITY } else { d };
        if d > worst {
            worst = d;
            at = i;
        }
    }
    if worst > LOGIT_TOL {
        return Err(format!(
            "{what}: logits differ by {worst:.3e} at token {at} (engine {}, reference {}); tolerance {LOGIT_TOL:e}",
            got[at], want[at]
        ));
    }
    Ok(())
}

/// Checks a greedy choice against the reference's.
pub fn compare_token(
    got: u32,
    reference: &RefResult,
    step: usize,
    what: &str,
) -> Result<(), String> {
    let want = reference.greedy[step];
    if got != want {
        return Err(format!(
            "{what}: greedy token {step} is {got}, reference {want} (reference top-2 margin {:.2e}; \
             a margin near {LOGIT_TOL:e} would mean a near tie, not a bug)",
            reference.margins[step]
        ));
    }
    Ok(())
}

/// A prompt and what the reference says about it.
#[derive(Clone, Copy)]
pub struct Case<'a> {
    pub prompt: &'a [u32],
    pub reference: &'a RefResult,
}

/// Which logit rows to ask the engine for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows {
    /// Only the last row of the last chunk ([`Logits::None`] before).
    Last,
    /// Every row of every chunk.
    All,
}

/// Runs all cases together through [`Sequences`] (one ragged batch per
/// step, prompts prefilled in chunks of at most `chunk` tokens, so short
/// prompts decode while long ones still prefill) and decodes `steps` greedy
/// tokens each. Every logit row the engine returns is compared with the
/// reference at the same position, and every chosen token with its greedy
/// token. Returns the continuations.
pub fn run_checked(
    engine: &mut Engine,
    cases: &[Case],
    chunk: usize,
    rows: Rows,
    steps: usize,
) -> Result<Vec<Vec<u32>>, String> {
    let mut seqs = Sequences::new(engine.kv_slots());
    let ids: Vec<SeqId> = cases.iter().map(|c| seqs.create(c.prompt)).collect();
    let mut done = vec![0usize; cases.len()];
    let mut generated = vec![Vec::new(); cases.len()];
    check_steps(
        engine,
        &mut seqs,
        &ids,
        cases,
        &mut done,
        &mut generated,
        chunk,
        rows,
        steps,
    )?;
    Ok(generated)
}

/// Steps existing sequences until each has `steps` generated tokens.
/// `done[i]` is how many of sequence `i`'s positions the engine has computed,
/// `generated[i]` its continuation so far; sequence `i` holds `cases[i].prompt`
/// followed by `generated[i]`.
#[allow(clippy::too_many_arguments)]
pub fn check_steps(
    engine: &mut Engine,
    seqs: &mut Sequences,
    ids: &[SeqId],
    cases: &[Case],
    done: &mut [usize],
    generated: &mut [Vec<u32>],
    chunk: usize,
    rows: Rows,
    steps: usize,
) -> Result<(), String> {
    let err = |e: anyhow::Error| format!("{e:#}");
    loop {
        let active: Vec<usize> = (0..cases.len())
            .filter(|&i| generated[i].len() < steps)
            .collect();
        if active.is_empty() {
            return Ok(());
        }
        let mut items = Vec::new();
        let mut sizes = Vec::new();
        for &i in &active {
            let pending = seqs.pending(ids[i]).map_err(err)?;
            let n = pending.min(chunk);
            let logits = match rows {
                Rows::All => Logits::All,
                Rows::Last if n == pending => Logits::Last,
                Rows::Last => Logits::None,
            };
            items.push(StepItem {
                seq: ids[i],
                max_tokens: chunk,
                logits,
            });
            sizes.push((n, n == pending));
        }
        let out = seqs.step(engine, &items).map_err(err)?;
        for (k, &i) in active.iter().enumerate() {
            let (n, last_chunk) = sizes[k];
            let c = &cases[i];
            let got: Vec<&[f32]> = out.rows(k).collect();
            let first = match items[k].logits {
                Logits::All | Logits::Score => done[i],
                Logits::Last | Logits::Greedy | Logits::Sample(_) | Logits::ScoreLast => {
                    done[i] + n - 1
                }
                Logits::None => done[i] + n,
            };
            let expect_rows = done[i] + n - first;
            if got.len() != expect_rows {
                return Err(format!(
                    "case {i}: {} logit rows for {:?}, expected {expect_rows}",
                    got.len(),
                    items[k].logits
                ));
            }
            for (j, row) in got.iter().enumerate() {
                let pos = first + j;
                let what = format!(
                    "case {i} (prompt {} tokens), position {pos}",
                    c.prompt.len()
                );
                compare_logits(row, &c.reference.logits[pos], &what)?;
            }
            done[i] += n;
            if last_chunk {
                let tok = argmax(got.last().expect("a last chunk has logits"));
                compare_token(tok, c.reference, generated[i].len(), &format!("case {i}"))?;
                generated[i].push(tok);
                if generated[i].len() < steps {
                    seqs.extend(ids[i], &[tok]).map_err(err)?;
                }
            }
        }
    }
}

/// Greedy continuations through the public generation loop.
pub fn greedy_generate(
    engine: &mut Engine,
    prompts: &[&[u32]],
    steps: usize,
    chunk: usize,
) -> Result<Vec<Vec<u32>>> {
    let reqs: Vec<GenRequest> = prompts
        .iter()
        .map(|p| GenRequest {
            prompt: p.to_vec(),
            max_tokens: steps,
            ignore_eos: true,
            ..Default::default()
        })
        .collect();
    Ok(generate(engine, &reqs, chunk)?
        .into_iter()
        .map(|o| o.tokens)
        .collect())
}

/// Checks continuations from [`greedy_generate`] against the reference.
pub fn compare_greedy(got: &[Vec<u32>], cases: &[Case], what: &str) -> Result<(), String> {
    for (i, (g, c)) in got.iter().zip(cases).enumerate() {
        if g.len() != c.reference.greedy.len() {
            return Err(format!(
                "{what}, case {i}: {} tokens, reference {}",
                g.len(),
                c.reference.greedy.len()
            ));
        }
        for (step, &t) in g.iter().enumerate() {
            compare_token(t, c.reference, step, &format!("{what}, case {i}"))?;
        }
    }
    Ok(())
}
