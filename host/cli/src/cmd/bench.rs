//! `arbor bench`: throughput measurements, one subcommand per workload.

use super::choices::PresetArg;
use anyhow::{Context, Result, bail};
use arbor_engine::engine::{BatchEntry, Device, Engine, EngineOptions, Logits};
use arbor_engine::{Pick, Preset, Sampler, SamplingParams, Temperature, WeightDtype};
use clap::ValueEnum;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Measure Arbor's throughput.
#[derive(clap::Subcommand)]
pub enum BenchCmd {
    /// Engine forward-pass throughput: prefill and decode tokens/s at several batch sizes.
    Engine(EngineArgs),
    /// A long shared few-shot prefix with many short questions, cache on vs off.
    FewShot(super::workloads::WorkloadArgs),
    /// Multi-turn chats resending their history, cache on vs off.
    MultiTurn(super::workloads::WorkloadArgs),
    /// Tree-of-thought forks (3 x 3 branches), cache on vs off.
    Branching(super::workloads::WorkloadArgs),
    /// Prompts sharing nothing (the control), cache on vs off.
    NoSharing(super::workloads::WorkloadArgs),
    /// JSON decoding under a schema, jump-forward on vs off.
    Json(super::json_bench::JsonArgs),
}

pub fn run(cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Engine(a) => engine(a),
        BenchCmd::FewShot(a) => super::workloads::run(super::workloads::Workload::FewShot, a),
        BenchCmd::MultiTurn(a) => super::workloads::run(super::workloads::Workload::MultiTurn, a),
        BenchCmd::Branching(a) => super::workloads::run(super::workloads::Workload::Branching, a),
        BenchCmd::NoSharing(a) => super::workloads::run(super::workloads::Workload::NoSharing, a),
        BenchCmd::Json(a) => super::json_bench::run(a),
    }
}

/// Prefill: B prompts of --prompt-len tokens in one forward pass. Decode:
/// B sequences with --history tokens of history, --decode-steps greedy steps
/// each, one pass per step. Without --model or --preset, measures the tiny
/// and small presets, made under --models-dir if missing.
#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("model_source"))]
pub struct EngineArgs {
    /// Model directory made by `arbor export`.
    #[arg(long, group = "model_source")]
    model: Option<PathBuf>,
    /// Random-weight preset, kept in <models-dir>/<preset>.
    #[arg(long, group = "model_source", value_enum)]
    preset: Option<PresetArg>,
    /// Where preset models are kept (made if missing).
    #[arg(long, default_value = "models")]
    models_dir: PathBuf,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    batch: Vec<usize>,
    /// Tokens per prompt in the prefill measurement.
    #[arg(long, default_value_t = 128)]
    prompt_len: usize,
    /// Tokens of history per sequence in the decode measurement.
    #[arg(long, default_value_t = 64)]
    history: usize,
    /// Of the history, the first tokens every sequence shares (the same KV
    /// slots, as a cached prefix is shared): a multiple of 256, below
    /// --history. 0: every history is its own.
    #[arg(long, default_value_t = 0)]
    shared_history: usize,
    /// Decode steps per sequence.
    #[arg(long, default_value_t = 32)]
    decode_steps: usize,
    /// Timed repetitions per measurement, after one untimed warm-up; the median is reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// ONNX Runtime intra-op threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Run on this CUDA device instead of the CPU.
    #[arg(long)]
    cuda: Option<i32>,
    /// Token slots in the KV pool (default, and least: just enough for the largest batch).
    #[arg(long)]
    kv_slots: Option<usize>,
    /// With --cuda: keep the KV pool in host memory, copied to the device on
    /// every forward pass (to measure what the device-resident pool saves).
    #[arg(long, requires = "cuda")]
    kv_in_host_memory: bool,
    /// With --cuda: run the standard-op graph instead of the paged one (for
    /// half-precision models), to compare the two.
    #[arg(long, requires = "cuda")]
    standard_graph: bool,
    /// Also decode drawing at this temperature (with --top-k, --top-p), once
    /// from the candidates the paged CUDA graph computes on the device and
    /// once from whole rows on the host, side by side.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Also score every prompt token as `select` scores a choice, once with
    /// the rows kept on the device (the paged CUDA graph computes the
    /// log-probabilities there) and once with every row fetched to the
    /// host and normalised there, side by side.
    #[arg(long)]
    score: bool,
    /// Print one JSON object per measurement instead of a table.
    #[arg(long)]
    json: bool,
}

/// One measurement.
#[derive(serde::Serialize)]
struct Measurement {
    bench: &'static str,
    model: String,
    params: u64,
    dtype: WeightDtype,
    device: String,
    threads: usize,
    /// The graph file the engine ran.
    graph: &'static str,
    /// Nodes that graph runs per forward pass (as exported: ONNX Runtime
    /// may fuse some further); absent for models exported before it was
    /// recorded.
    nodes_per_pass: Option<usize>,
    phase: &'static str,
    batch: usize,
    /// Tokens processed in one timed repetition.
    tokens: usize,
    /// Forward passes in one timed repetition.
    passes: usize,
    /// Median seconds of one repetition.
    seconds: f64,
    tokens_per_s: f64,
}

fn engine(a: EngineArgs) -> Result<()> {
    if a.batch.is_empty() || a.batch.contains(&0) {
        bail!("--batch needs positive batch sizes");
    }
    if a.prompt_len == 0 || a.history == 0 || a.decode_steps == 0 || a.reps == 0 {
        bail!("--prompt-len, --history, --decode-steps and --reps must be positive");
    }
    let models: Vec<(String, PathBuf)> = match (&a.model, a.preset) {
        (Some(dir), _) => vec![(dir.display().to_string(), dir.clone())],
        (None, Some(p)) => vec![preset_model(p.into(), &a.models_dir)?],
        (None, None) => vec![
            preset_model(Preset::Tiny, &a.models_dir)?,
            preset_model(Preset::Small, &a.models_dir)?,
        ],
    };
    let mut all = Vec::new();
    for (name, dir) in &models {
        all.extend(bench_model(&a, name, dir)?);
    }
    if !a.json {
        println!(
            "{:<10} {:<8} {:>5} {:>7} {:>10} {:>12}",
            "model", "phase", "batch", "tokens", "ms", "tokens/s"
        );
        for m in &all {
            println!(
                "{:<10} {:<8} {:>5} {:>7} {:>10.2} {:>12.0}",
                m.model,
                m.phase,
                m.batch,
                m.tokens,
                m.seconds * 1e3,
                m.tokens_per_s
            );
        }
        let mut graphs: Vec<_> = all
            .iter()
            .map(|m| (m.model.as_str(), m.graph, m.nodes_per_pass))
            .collect();
        graphs.dedup();
        for (model, graph, nodes) in graphs {
            match nodes {
                Some(n) => println!("{model}: {graph}, {n} nodes per forward pass"),
                None => println!("{model}: {graph} (export it again to count its nodes)"),
            }
        }
    }
    Ok(())
}

/// The model directory of a preset, exported (seed 0, as `arbor demo`) if missing.
fn preset_model(p: Preset, models_dir: &Path) -> Result<(String, PathBuf)> {
    let name = PresetArg::from(p)
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_else(|| format!("{p:?}"));
    let dir = models_dir.join(&name);
    if arbor_engine::engine::read_meta(&dir).is_err() {
        eprintln!(
            "bench: making the {name} random-weight model in {} ...",
            dir.display()
        );
        let dtype = match p {
            Preset::Tiny | Preset::Small => WeightDtype::F32,
            _ => WeightDtype::F16,
        };
        arbor_export::export_random(p, 0, &dir, dtype)?;
    }
    Ok((name, dir))
}

fn bench_model(a: &EngineArgs, name: &str, dir: &Path) -> Result<Vec<Measurement>> {
    let meta = arbor_engine::engine::read_meta(dir)?;
    let cfg = &meta.config;
    let bmax = *a.batch.iter().max().expect("checked non-empty");
    if a.shared_history > 0
        && (!a
            .shared_history
            .is_multiple_of(arbor_engine::format::CUDA_BLOCK)
            || a.shared_history >= a.history)
    {
        bail!(
            "--shared-history {} must be a multiple of {} below --history {}",
            a.shared_history,
            arbor_engine::format::CUDA_BLOCK,
            a.history
        );
    }
    let per_seq = a.prompt_len.max(a.history + a.decode_steps);
    if per_seq > cfg.max_position_embeddings {
        bail!(
            "{per_seq} tokens per sequence exceed {name}'s context of {}",
            cfg.max_position_embeddings
        );
    }
    let device = Device::cuda_or_cpu(a.cuda);
    // Each sequence starts on a page boundary of the paged CUDA graph, so
    // that its slots are page-consistent whatever engine runs.
    let stride = per_seq.next_multiple_of(arbor_engine::format::CUDA_BLOCK);
    let needed = (bmax - 1) * stride + per_seq;
    let kv_slots = a.kv_slots.unwrap_or(needed);
    if kv_slots < needed {
        bail!("--kv-slots {kv_slots} is too few: batch {bmax} of {per_seq} tokens needs {needed}");
    }
    let opts = EngineOptions {
        kv_slots,
        threads: a.threads,
        device,
        kv_in_host_memory: a.kv_in_host_memory,
        standard_graph: a.standard_graph,
        ..Default::default()
    };
    let mut engine = Engine::open(dir, &opts)?;
    // Any ids in the vocabulary do: the weights are what they are, and the
    // work per token does not depend on which token it is.
    let vocab = engine.tokenizer().vocab_size().min(cfg.vocab_size) as u64;
    let mut x = 0x9e3779b97f4a7c15u64;
    let mut next_id = move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 33) % vocab) as u32
    };
    let setup = Setup {
        model: name.to_string(),
        params: cfg.num_params(),
        dtype: meta.dtype,
        device: match device {
            Device::Cpu => "cpu".to_string(),
            Device::Cuda(i) if a.kv_in_host_memory => format!("cuda:{i}, kv in host"),
            Device::Cuda(i) if a.standard_graph => format!("cuda:{i}, standard graph"),
            Device::Cuda(i) => format!("cuda:{i}"),
        },
        threads: if a.threads > 0 {
            a.threads
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        },
        graph: engine.graph(),
    };
    let mut out = Vec::new();
    for &b in &a.batch {
        let slots: Vec<Vec<u32>> = (0..b)
            .map(|s| ((s * stride) as u32..(s * stride + per_seq) as u32).collect())
            .collect();

        let prompts: Vec<Vec<u32>> = (0..b)
            .map(|_| (0..a.prompt_len).map(|_| next_id()).collect())
            .collect();
        // Every prompt from scratch into its own slots, asking for `logits`.
        let prompt_entries = |logits: Logits| -> Vec<BatchEntry> {
            prompts
                .iter()
                .zip(&slots)
                .map(|(p, s)| BatchEntry {
                    tokens: p,
                    history: &[],
                    new_slots: &s[..p.len()],
                    logits,
                })
                .collect()
        };
        eprint!("bench: {name} prefill batch {b} ...");
        let seconds = timed(a.reps, || {
            engine.forward(&prompt_entries(Logits::Last)).map(|_| ())
        })?;
        let m = setup.measurement("prefill", b, b * a.prompt_len, 1, seconds);
        eprintln!(" {:.0} tokens/s", m.tokens_per_s);
        emit(a, m, &mut out)?;
        if a.score {
            // Each row scores the prompt's next token (the last row its
            // first token again: any id does).
            let queries: Vec<(usize, usize, u32)> = prompts
                .iter()
                .enumerate()
                .flat_map(|(i, p)| (0..p.len()).map(move |k| (i, k, p[(k + 1) % p.len()])))
                .collect();
            let mut device_scored = None;
            for (phase, logits) in [("score", Logits::Score), ("score-host", Logits::All)] {
                eprint!("bench: {name} {phase} batch {b} ...");
                let mut total = 0.0;
                let seconds = timed(a.reps, || {
                    let o = engine.forward(&prompt_entries(logits))?;
                    total = o.log_probs(&queries)?.iter().sum::<f64>();
                    Ok(())
                })?;
                let m = setup.measurement(phase, b, b * a.prompt_len, 1, seconds);
                eprintln!(
                    " {:.0} tokens scored/s (sum of log-probabilities {total:.1})",
                    m.tokens_per_s
                );
                match device_scored {
                    None => device_scored = Some(m.tokens_per_s),
                    Some(d) => eprintln!(
                        "bench: {name} batch {b}: scored with rows on the device {:.2}x with rows on the host",
                        d / m.tokens_per_s
                    ),
                }
                emit(a, m, &mut out)?;
            }
        }

        let sh = a.shared_history;
        let mut hist: Vec<Vec<u32>> = (0..b)
            .map(|_| (0..a.history).map(|_| next_id()).collect())
            .collect();
        // Shared histories: every sequence's first `sh` positions are
        // sequence 0's tokens in sequence 0's slots.
        let slots: Vec<Vec<u32>> = slots
            .iter()
            .map(|s| slots[0][..sh].iter().chain(&s[sh..]).copied().collect())
            .collect();
        let head = hist[0][..sh].to_vec();
        for h in &mut hist {
            h[..sh].copy_from_slice(&head);
        }
        if sh > 0 {
            engine
                .forward(&[BatchEntry {
                    tokens: &hist[0][..sh],
                    history: &[],
                    new_slots: &slots[0][..sh],
                    logits: Logits::None,
                }])
                .context("prefilling the shared history")?;
        }
        let entries: Vec<BatchEntry> = hist
            .iter()
            .zip(&slots)
            .map(|(h, s)| BatchEntry {
                tokens: &h[sh..],
                history: &s[..sh],
                new_slots: &s[sh..h.len()],
                logits: Logits::Greedy,
            })
            .collect();
        let first = engine
            .forward(&entries)
            .context("prefilling the decode histories")?;
        let start: Vec<u32> = (0..b)
            .map(|i| first.token(i).expect("asked for the arg max"))
            .collect();
        // Greedy, then (with --temperature) drawn from device candidates
        // and drawn from whole rows on the host.
        let mut phases = vec![("decode", None)];
        if a.temperature > 0.0 {
            let t = Temperature::new(a.temperature).context("--temperature must be finite")?;
            phases.push(("decode-sampled", Some(Logits::Sample(t))));
            phases.push(("decode-sampled-host", Some(Logits::Last)));
        }
        let mut device_sampled = None;
        for (phase, sampled) in phases {
            eprint!("bench: {name} {phase} batch {b} ...");
            let params = |i: usize| SamplingParams {
                temperature: a.temperature,
                top_k: a.top_k,
                top_p: a.top_p,
                seed: i as u64,
                ..Default::default()
            };
            let (mut tails, mut draws) = (0usize, 0usize);
            let seconds = timed(a.reps, || {
                // Every repetition decodes from the same history, overwriting
                // the previous repetition's slots.
                let mut toks = start.clone();
                let mut samplers: Vec<Sampler> = (0..b).map(|i| Sampler::new(params(i))).collect();
                for step in 0..a.decode_steps {
                    let len = a.history + step;
                    let cur: Vec<[u32; 1]> = toks.iter().map(|&t| [t]).collect();
                    let entries: Vec<BatchEntry> = cur
                        .iter()
                        .zip(&slots)
                        .map(|(t, s)| BatchEntry {
                            tokens: t,
                            history: &s[..len],
                            new_slots: &s[len..len + 1],
                            logits: sampled.unwrap_or(Logits::Greedy),
                        })
                        .collect();
                    let o = engine.forward(&entries)?;
                    for (i, t) in toks.iter_mut().enumerate() {
                        *t = match (sampled, o.candidates(i)) {
                            (None, _) => o.token(i).expect("asked for the arg max"),
                            (Some(_), Some(c)) => {
                                draws += 1;
                                match samplers[i].sample_candidates(&c) {
                                    Pick::Token(t) => t,
                                    Pick::NeedsRow => {
                                        tails += 1;
                                        samplers[i].sample(&mut o.full_row(i)?)
                                    }
                                }
                            }
                            (Some(_), None) => samplers[i].sample(&mut o.full_row(i)?),
                        };
                    }
                }
                Ok(())
            })?;
            let m = setup.measurement(phase, b, b * a.decode_steps, a.decode_steps, seconds);
            let tail = if draws > 0 {
                format!(
                    ", {:.0}% of draws fetched their row",
                    100.0 * tails as f64 / draws as f64
                )
            } else {
                String::new()
            };
            eprintln!(
                " {:.0} tokens/s ({:.2} ms per step{tail})",
                m.tokens_per_s,
                m.seconds * 1e3 / a.decode_steps as f64
            );
            match phase {
                "decode-sampled" => device_sampled = Some(m.tokens_per_s),
                "decode-sampled-host" => {
                    if let Some(d) = device_sampled {
                        eprintln!(
                            "bench: {name} batch {b}: sampled from device candidates {:.2}x sampled from host rows",
                            d / m.tokens_per_s
                        );
                    }
                }
                _ => {}
            }
            emit(a, m, &mut out)?;
        }
    }
    Ok(out)
}

/// Median seconds of `reps` runs after one untimed warm-up (ONNX Runtime
/// plans buffers on the first run of each shape).
fn timed(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t0 = Instant::now();
        f()?;
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// What every measurement of one model shares.
struct Setup {
    model: String,
    params: u64,
    dtype: WeightDtype,
    device: String,
    threads: usize,
    graph: (&'static str, Option<usize>),
}

impl Setup {
    fn measurement(
        &self,
        phase: &'static str,
        batch: usize,
        tokens: usize,
        passes: usize,
        seconds: f64,
    ) -> Measurement {
        Measurement {
            bench: "engine",
            model: self.model.clone(),
            params: self.params,
            dtype: self.dtype,
            device: self.device.clone(),
            threads: self.threads,
            graph: self.graph.0,
            nodes_per_pass: self.graph.1,
            phase,
            batch,
            tokens,
            passes,
            seconds,
            tokens_per_s: tokens as f64 / seconds,
        }
    }
}

fn emit(a: &EngineArgs, m: Measurement, out: &mut Vec<Measurement>) -> Result<()> {
    if a.json {
        println!("{}", serde_json::to_string(&m)?);
    }
    out.push(m);
    Ok(())
}
