//! Checkpoints Arbor did not write: `reference/write_hf_checkpoint.py` lays
//! out random weights, config and tokenizer the way Hugging Face tools do
//! (sharded float16 with an index, attention biases, a sliding window, tied
//! embeddings, llama3 rope scaling, tokenizers from the Python `tokenizers`
//! library). Each is imported with `export_from` and checked token for token
//! against the reference reading the same files.

use arbor_engine::config::{Family, RopeScaling};
use arbor_engine::engine::Engine;
use arbor_engine::{ModelMeta, WeightDtype};
use arbor_export::export_from;
use arbor_tests::{
    Case, RefResult, Rows, compare_greedy, greedy_generate, reference, run_checked, run_python,
    scratch_dir, test_options,
};
use std::path::PathBuf;
use std::sync::OnceLock;

const STEPS: usize = 32;

const TEXTS: [&str; 4] = [
    "The quick brown fox jumps over the lazy dog. Hé, naïve café!",
    "Question: What is the capital of France? Answer:",
    "Once upon a time there was a small village at the edge of a great forest, and the farmer \
     counted his sheep while the weather was sunny with a light breeze from the west.",
    "def add(a, b):\n    return a + b\n",
];

struct Fixture {
    model: PathBuf,
    meta: ModelMeta,
    /// Token ids of [`TEXTS`] under the Python `tokenizers` library.
    python_ids: Vec<Vec<u32>>,
    prompts: Vec<Vec<u32>>,
    refs: Vec<RefResult>,
}

const VARIANTS: [&str; 3] = ["qwen2", "mistral", "llama3"];

fn fixture(variant: &str) -> &'static Fixture {
    static F: [OnceLock<Fixture>; 3] = [const { OnceLock::new() }; 3];
    let i = VARIANTS
        .iter()
        .position(|v| *v == variant)
        .expect("known variant");
    F[i].get_or_init(|| {
        let dir = scratch_dir(variant);
        let hf = dir.join("hf");
        let texts = serde_json::to_string(&TEXTS).unwrap();
        let hf_arg = hf.to_str().unwrap();
        let out = run_python(
            "write_hf_checkpoint.py",
            &[
                "--variant",
                variant,
                "--seed",
                "11",
                "--out",
                hf_arg,
                "--encode",
            ],
            &texts,
        )
        .expect("write the checkpoint");
        let python_ids: Vec<Vec<u32>> =
            serde_json::from_str(&out).expect("encodings from write_hf_checkpoint.py");
        let model = dir.join("model");
        let meta = export_from(&hf, &model, WeightDtype::F32).expect("export the checkpoint");
        let engine = Engine::open(&model, &test_options()).expect("open the exported model");
        let bos: Vec<u32> = engine.tokenizer().bos_id().into_iter().collect();
        let prompts: Vec<Vec<u32>> = python_ids
            .iter()
            .map(|ids| [bos.as_slice(), ids].concat())
            .collect();
        assert!(
            prompts.iter().any(|p| p.len() >= 40),
            "no prompt of 40 tokens: {prompts:?}"
        );
        let refs = reference(&hf, &prompts, STEPS).expect("reference forward pass");
        Fixture {
            model,
            meta,
            python_ids,
            prompts,
            refs,
        }
    })
}

fn matches_reference(variant: &str) {
    let f = fixture(variant);
    let mut engine = Engine::open(&f.model, &test_options()).unwrap();
    let cases: Vec<Case> = f
        .prompts
        .iter()
        .zip(&f.refs)
        .map(|(p, r)| Case {
            prompt: p,
            reference: r,
        })
        .collect();
    for (i, case) in cases.iter().enumerate() {
        run_checked(&mut engine, &[*case], usize::MAX, Rows::Last, STEPS)
            .unwrap_or_else(|e| panic!("{variant}, prompt {i} alone: {e}"));
    }
    run_checked(&mut engine, &cases, usize::MAX, Rows::All, STEPS)
        .unwrap_or_else(|e| panic!("{variant}, batch: {e}"));
    run_checked(&mut engine, &cases, 5, Rows::Last, STEPS)
        .unwrap_or_else(|e| panic!("{variant}, chunk 5: {e}"));
    let prompts: Vec<&[u32]> = f.prompts.iter().map(|p| p.as_slice()).collect();
    let got = greedy_generate(&mut engine, &prompts, STEPS, 512).unwrap();
    compare_greedy(&got, &cases, &format!("{variant}, generate")).unwrap();
}

fn tokenizer_matches_python(variant: &str) {
    let f = fixture(variant);
    let engine = Engine::open(&f.model, &test_options()).unwrap();
    for (text, want) in TEXTS.iter().zip(&f.python_ids) {
        let got = engine.tokenizer().encode(text).unwrap();
        assert_eq!(
            &got, want,
            "{variant}: {text:?} tokenizes differently in Rust and Python"
        );
        assert_eq!(
            engine.tokenizer().decode(&got),
            *text,
            "{variant}: decode does not round-trip"
        );
    }
}

#[test]
fn qwen2_sharded_f16_with_biases() {
    let c = &fixture("qwen2").meta.config;
    assert_eq!(
        (c.family, c.attention_bias, c.sliding_window),
        (Family::Qwen2, true, None)
    );
    matches_reference("qwen2");
}

#[test]
fn qwen2_tokenizer() {
    tokenizer_matches_python("qwen2");
}

#[test]
fn mistral_sliding_window() {
    let f = fixture("mistral");
    let c = &f.meta.config;
    assert_eq!(
        (c.family, c.sliding_window, c.num_kv_heads),
        (Family::Mistral, Some(16), 1)
    );
    assert!(
        f.prompts.iter().filter(|p| p.len() > 16).count() >= 3,
        "prompts must outgrow the window"
    );
    matches_reference("mistral");
}

#[test]
fn mistral_tokenizer() {
    tokenizer_matches_python("mistral");
}

#[test]
fn llama3_tied_embeddings_and_rope_scaling() {
    let c = &fixture("llama3").meta.config;
    assert!(c.tie_word_embeddings && matches!(c.rope_scaling, Some(RopeScaling::Llama3 { .. })));
    assert_ne!(c.num_heads * c.head_dim, c.hidden_size);
    assert_eq!(c.eos_token_ids.len(), 2);
    matches_reference("llama3");
}

#[test]
fn llama3_tokenizer() {
    tokenizer_matches_python("llama3");
}
