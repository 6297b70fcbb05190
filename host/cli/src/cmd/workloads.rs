//! `arbor bench few-shot|multi-turn|branching|no-sharing`: the shapes of the
//! SGLang paper's benchmarks, run through the scheduler with the radix cache
//! on and then off, side by side in one process.

use anyhow::{Context, Result};
use arbor_engine::{Device, Engine, EngineOptions, Preset, SamplingParams, WeightDtype};
use arbor_scheduler::{GenerateRequest, Namespace, Policy, Scheduler, SchedulerConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

/// Which program shape to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// A long shared few-shot prefix, many short questions, short answers (MMLU-like).
    FewShot,
    /// Chats whose every turn resends the whole history plus a new message.
    MultiTurn,
    /// Tree-of-thought: each question forks 3 branches, each branch forks 3 more.
    Branching,
    /// Distinct prompts that share nothing: the control.
    NoSharing,
}

/// Options shared by the workload benchmarks.
#[derive(clap::Args)]
pub struct WorkloadArgs {
    /// Model directory; default: the tiny preset under models/tiny (made if missing).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Scale the number of programs (1 = the default size).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// KV pool slots.
    #[arg(long, default_value_t = 65536)]
    kv_slots: usize,
    /// Tokens per forward pass.
    #[arg(long, default_value_t = 1024)]
    max_batch_tokens: usize,
    /// Random seed of the workload.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Timed runs per setting, alternating cache on and off; medians are reported.
    #[arg(long, default_value_t = 2)]
    reps: usize,
    /// One JSON object per run instead of text.
    #[arg(long)]
    json: bool,
    /// Run on this CUDA device instead of the CPU.
    #[arg(long)]
    cuda: Option<i32>,
    /// Tokens per KV page (the CPU engine reads any layout; the KV manager
    /// copies partly shared pages, so hit rates stay token-granular).
    /// Default: the engine's (1 on the CPU, 256 for the paged CUDA graph).
    #[arg(long)]
    page_size: Option<usize>,
    /// Admission order.
    #[arg(long, value_enum, default_value = "cache-aware")]
    policy: PolicyArg,
}

/// `--policy` values.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum PolicyArg {
    CacheAware,
    Fcfs,
    Random,
}

impl From<PolicyArg> for Policy {
    fn from(p: PolicyArg) -> Policy {
        match p {
            PolicyArg::CacheAware => Policy::CacheAware,
            PolicyArg::Fcfs => Policy::Fcfs,
            PolicyArg::Random => Policy::Random,
        }
    }
}

/// The outcome of one timed run.
struct RunStats {
    programs_per_s: f64,
    tokens_per_s: f64,
    hit_rate: f64,
    hit_rate_max: f64,
    p50_ms: f64,
    p99_ms: f64,
    passes: u64,
    prefill_tokens: u64,
    /// The run's wall time and the scheduler's split of it: inside forward
    /// passes, and its own work around them (the rest is waiting for work).
    wall_ms: f64,
    engine_ms: f64,
    host_ms: f64,
}

/// One program's requests, in dependency order: a request may name the
/// index of an earlier one whose prompt + output it continues.
#[derive(Clone)]
struct Step {
    parent: Option<usize>,
    /// Tokens appended to the parent's prompt + output (or the whole prompt).
    append: Vec<u32>,
    max_tokens: usize,
}

struct Program {
    ns: u64,
    steps: Vec<Step>,
}

fn tokens(rng: &mut ChaCha8Rng, n: usize, vocab: u32) -> Vec<u32> {
    (0..n).map(|_| rng.random_range(5..vocab)).collect()
}

fn build(w: Workload, scale: f64, seed: u64, vocab: u32) -> Vec<Program> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = |base: usize| ((base as f64 * scale).round() as usize).max(1);
    match w {
        Workload::FewShot => {
            let mut shared = vec![0];
            shared.extend(tokens(&mut rng, 1023, vocab));
            (0..n(64))
                .map(|_| {
                    let mut p = shared.clone();
                    p.extend(tokens(&mut rng, 32, vocab));
                    Program {
                        ns: 1,
                        steps: vec![Step {
                            parent: None,
                            append: p,
                            max_tokens: 4,
                        }],
                    }
                })
                .collect()
        }
        Workload::MultiTurn => {
            let mut system = vec![0];
            system.extend(tokens(&mut rng, 63, vocab));
            (0..n(16))
                .map(|_| {
                    let mut first = system.clone();
                    first.extend(tokens(&mut rng, 64, vocab));
                    let mut steps = vec![Step {
                        parent: None,
                        append: first,
                        max_tokens: 24,
                    }];
                    for t in 1..4 {
                        steps.push(Step {
                            parent: Some(t - 1),
                            append: tokens(&mut rng, 48, vocab),
                            max_tokens: 24,
                        });
                    }
                    Program { ns: 1, steps }
                })
                .collect()
        }
        Workload::Branching => (0..n(8))
            .map(|_| {
                let mut root = vec![0];
                root.extend(tokens(&mut rng, 255, vocab));
                let mut steps = Vec::new();
                for b in 0..3 {
                    let mut p = root.clone();
                    p.extend(tokens(&mut rng, 4, vocab));
                    let _ = b;
                    steps.push(Step {
                        parent: None,
                        append: p,
                        max_tokens: 16,
                    });
                }
                for b in 0..3 {
                    for _ in 0..3 {
                        steps.push(Step {
                            parent: Some(b),
                            append: tokens(&mut rng, 4, vocab),
                            max_tokens: 16,
                        });
                    }
                }
                Program { ns: 1, steps }
            })
            .collect(),
        Workload::NoSharing => (0..n(48))
            .map(|i| {
                let mut p = vec![0];
                p.extend(tokens(&mut rng, 255, vocab));
                // Separate namespaces too, so not even the BOS token is shared.
                Program {
                    ns: 100 + i as u64,
                    steps: vec![Step {
                        parent: None,
                        append: p,
                        max_tokens: 16,
                    }],
                }
            })
            .collect(),
    }
}

struct Finished {
    ns: u64,
    prompt: Vec<u32>,
    output: Vec<u32>,
    cached: usize,
    latency_ms: f64,
}

/// Runs every program concurrently; each program's steps wait for their parents.
async fn drive(s: &Scheduler, programs: &[Program]) -> Result<(Vec<Finished>, f64)> {
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for p in programs {
        let s = s.clone();
        let steps = p.steps.clone();
        let ns = p.ns;
        tasks.push(tokio::spawn(async move {
            let mut done: Vec<Option<(Vec<u32>, Vec<u32>)>> = vec![None; steps.len()];
            let mut out = Vec::new();
            // Steps whose parent is done run concurrently (branches of a fork).
            while done.iter().any(|d| d.is_none()) {
                let ready: Vec<usize> = (0..steps.len())
                    .filter(|&i| {
                        done[i].is_none() && steps[i].parent.is_none_or(|p| done[p].is_some())
                    })
                    .collect();
                let mut wave = Vec::new();
                for i in ready {
                    let mut prompt = match steps[i].parent {
                        Some(p) => {
                            let (pp, po) = done[p].as_ref().expect("ready");
                            let mut v = pp.clone();
                            v.extend(po);
                            v
                        }
                        None => Vec::new(),
                    };
                    prompt.extend(&steps[i].append);
                    let mut r = GenerateRequest::new(
                        Namespace::tenant(ns),
                        prompt.clone(),
                        steps[i].max_tokens,
                    );
                    r.ignore_eos = true;
                    r.sampling = SamplingParams::default();
                    let st = s.generate(r)?;
                    wave.push((i, prompt, Instant::now(), st));
                }
                for (i, prompt, t, st) in wave {
                    let g = st.collect().await?;
                    out.push(Finished {
                        ns,
                        prompt: prompt.clone(),
                        output: g.tokens.clone(),
                        cached: g.usage.cached_tokens,
                        latency_ms: t.elapsed().as_secs_f64() * 1e3,
                    });
                    done[i] = Some((prompt, g.tokens));
                }
            }
            Ok::<_, arbor_scheduler::RequestError>(out)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.context("workload task")??);
    }
    Ok((all, t0.elapsed().as_secs_f64()))
}

/// The best hit rate any cache could reach: for each request in completion
/// order, the longest prefix it shares with an earlier request's prompt or
/// output in its namespace (the last prompt token is always computed).
fn max_hit_rate(done: &[Finished]) -> f64 {
    let mut trie: HashMap<(u64, usize, u32), usize> = HashMap::new();
    let mut next = 1usize;
    let (mut hit, mut total) = (0usize, 0usize);
    for f in done {
        total += f.prompt.len();
        let mut node = 0usize;
        let mut matched = 0;
        for &t in &f.prompt {
            match trie.get(&(f.ns, node, t)) {
                Some(&n) => {
                    node = n;
                    matched += 1;
                }
                None => break,
            }
        }
        hit += matched.min(f.prompt.len() - 1);
        let mut node = 0usize;
        for &t in f.prompt.iter().chain(&f.output) {
            node = *trie.entry((f.ns, node, t)).or_insert_with(|| {
                next += 1;
                next
            });
        }
    }
    hit as f64 / total.max(1) as f64
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Runs one workload with the cache on and off and prints the comparison.
pub fn run(w: Workload, a: WorkloadArgs) -> Result<()> {
    let model = match a.model {
        Some(m) => m,
        None => {
            let m = PathBuf::from("models/tiny");
            if arbor_engine::engine::read_meta(&m).is_err() {
                eprintln!("making the tiny model in {} ...", m.display());
                arbor_export::export_random(Preset::Tiny, 0, &m, WeightDtype::F32)?;
            }
            m
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut engine = Engine::open(
        &model,
        &EngineOptions {
            kv_slots: a.kv_slots,
            device: Device::cuda_or_cpu(a.cuda),
            ..Default::default()
        },
    )?;
    if let Some(p) = a.page_size {
        engine = engine.with_page_size(p)?;
    }
    let vocab = engine
        .tokenizer()
        .vocab_size()
        .min(engine.config().vocab_size) as u32;
    let programs = build(w, a.scale, a.seed, vocab);
    let once = |engine: Engine, cache: bool, programs: &[Program]| -> Result<(Engine, RunStats)> {
        let s = Scheduler::start(
            engine,
            SchedulerConfig {
                cache_enabled: cache,
                max_batch_tokens: a.max_batch_tokens,
                policy: a.policy.into(),
                ..Default::default()
            },
        );
        let (done, secs) = rt.block_on(drive(&s, programs))?;
        let prompt: usize = done.iter().map(|f| f.prompt.len()).sum();
        let cached: usize = done.iter().map(|f| f.cached).sum();
        let generated: usize = done.iter().map(|f| f.output.len()).sum();
        let mut lat: Vec<f64> = done.iter().map(|f| f.latency_ms).collect();
        let st = s.stats();
        let stats = RunStats {
            programs_per_s: programs.len() as f64 / secs,
            tokens_per_s: (prompt + generated) as f64 / secs,
            hit_rate: cached as f64 / prompt.max(1) as f64,
            hit_rate_max: max_hit_rate(&done),
            p50_ms: percentile(&mut lat, 0.5),
            p99_ms: percentile(&mut lat, 0.99),
            passes: st.steps,
            prefill_tokens: st.prefill_tokens,
            wall_ms: secs * 1e3,
            engine_ms: st.engine_seconds * 1e3,
            host_ms: st.host_seconds * 1e3,
        };
        Ok((s.shutdown()?, stats))
    };
    // Untimed warm-up at full size: ONNX Runtime grows its memory arena and
    // plans per input shape on first use, which would tax whichever timed
    // run came first.
    eprintln!("{w:?}: warming up ...");
    let warm = build(w, a.scale, a.seed ^ 0xabc, vocab);
    engine = once(engine, false, &warm)?.0;
    let (mut ons, mut offs) = (Vec::new(), Vec::new());
    for rep in 0..a.reps.max(1) {
        // Alternate which setting runs first, so drift in the machine's load
        // does not favour one of them.
        let order = if rep.is_multiple_of(2) {
            [true, false]
        } else {
            [false, true]
        };
        for cache in order {
            eprintln!(
                "{w:?}: {} programs, cache {}, run {} ...",
                programs.len(),
                if cache { "on" } else { "off" },
                rep + 1
            );
            let (e, st) = once(engine, cache, &programs)?;
            engine = e;
            if cache { ons.push(st) } else { offs.push(st) }
        }
    }
    let median = |v: &mut Vec<RunStats>| -> RunStats {
        v.sort_by(|a, b| a.programs_per_s.total_cmp(&b.programs_per_s));
        v.swap_remove(v.len() / 2)
    };
    let (on, off) = (median(&mut ons), median(&mut offs));
    let report = serde_json::json!({
        "workload": w,
        "programs": programs.len(),
        "throughput_cache_on": on.programs_per_s,
        "throughput_cache_off": off.programs_per_s,
        "throughput_unit": "programs/s",
        "tokens_per_s_cache_on": on.tokens_per_s,
        "tokens_per_s_cache_off": off.tokens_per_s,
        "ratio": on.programs_per_s / off.programs_per_s,
        "hit_rate": on.hit_rate,
        "hit_rate_max": on.hit_rate_max,
        "hit_rate_of_max": if on.hit_rate_max > 0.0 { on.hit_rate / on.hit_rate_max } else { 1.0 },
        "p50_ms": on.p50_ms,
        "p99_ms": on.p99_ms,
        "p50_ms_cache_off": off.p50_ms,
        "p99_ms_cache_off": off.p99_ms,
        "forward_passes_cache_on": on.passes,
        "forward_passes_cache_off": off.passes,
        "prefill_tokens_cache_on": on.prefill_tokens,
        "prefill_tokens_cache_off": off.prefill_tokens,
        "reps": a.reps.max(1),
        "wall_ms_cache_on": on.wall_ms,
        "engine_ms_cache_on": on.engine_ms,
        "host_ms_cache_on": on.host_ms,
        "wall_ms_cache_off": off.wall_ms,
        "engine_ms_cache_off": off.engine_ms,
        "host_ms_cache_off": off.host_ms,
    });
    if a.json {
        println!("{report}");
    } else {
        println!(
            "{:<10} programs/s: cache on {:8.2}  off {:8.2}  ratio {:5.2}x | hit rate {:5.1}% of max {:5.1}% ({:5.1}%) | latency ms p50 {:7.1} p99 {:7.1} (off: {:7.1} / {:7.1}) | prefill tokens {} vs {} | cache on: {:.1} ms, engine {:.1}, scheduler {:.1}",
            format!("{w:?}"),
            on.programs_per_s,
            off.programs_per_s,
            on.programs_per_s / off.programs_per_s,
            on.hit_rate * 100.0,
            on.hit_rate_max * 100.0,
            if on.hit_rate_max > 0.0 {
                on.hit_rate / on.hit_rate_max * 100.0
            } else {
                100.0
            },
            on.p50_ms,
            on.p99_ms,
            off.p50_ms,
            off.p99_ms,
            on.prefill_tokens,
            off.prefill_tokens,
            on.wall_ms,
            on.engine_ms,
            on.host_ms,
        );
    }
    Ok(())
}
