//! Shared by the runtime's integration tests: the guest components and a
//! tokenizer-only backend.
//!
//! Guests come from `examples/build.sh`. Set `ARBOR_GUESTS_DIR` to a folder
//! it filled (CI does, once, before the tests); otherwise the first test
//! that needs a guest runs the script itself (incremental after the first
//! build).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arbor_runtime::{
    ChoiceScore, GenerateOptions, Generated, LmBackend, Namespace, RequestError, Role, Runtime,
    RuntimeConfig, TokenSink,
};
use futures::future::BoxFuture;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    Tokenizer,
};

/// The folder holding the built guest components.
pub fn guests_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("ARBOR_GUESTS_DIR") {
            return PathBuf::from(dir);
        }
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = repo.join("target/guests");
        let status = Command::new("bash")
            .arg(repo.join("examples/build.sh"))
            .arg(&out)
            // The host's target dir must not leak into the guest build.
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .expect("run examples/build.sh");
        assert!(status.success(), "examples/build.sh failed");
        out
    })
}

/// The bytes of guest `name` (file stem, e.g. `misbehave`).
pub fn guest(name: &str) -> Vec<u8> {
    let path = guests_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

const CORPUS: &str = "Question: what is the capital of France? Answer: Paris.\n\
    The quick brown fox jumps over the lazy dog.\n\
    Once upon a time there was a small program that lived in a sandbox.\n\
    Be brief. Hello, how are you? I am fine, thank you.\n\
    root child parent ancestor second unaffected warm hello\n";

const SPECIAL: [&str; 4] = [
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
];

/// A byte-level BPE trained on a few lines: a real tokenizer, small enough
/// to train in milliseconds.
pub fn tokenizer() -> Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let mut tok = tokenizers::TokenizerBuilder::<
            BPE,
            NormalizerWrapper,
            PreTokenizerWrapper,
            PostProcessorWrapper,
            DecoderWrapper,
        >::new()
        .with_model(BPE::default())
        .with_normalizer(None)
        .with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false).into()))
        .with_post_processor(Some(ByteLevel::default().trim_offsets(false).into()))
        .with_decoder(Some(ByteLevel::default().into()))
        .build()
        .expect("tokenizer");
        let mut trainer = BpeTrainerBuilder::new()
            .vocab_size(400)
            .min_frequency(1)
            .show_progress(false)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .special_tokens(SPECIAL.iter().map(|s| AddedToken::from(*s, true)).collect())
            .build();
        tok.train(&mut trainer, CORPUS.lines()).expect("train");
        tok.into()
    })
    .clone()
}

/// Tokenizes and renders chat messages (Llama-3 layout) with a real
/// tokenizer; it has no language model, so `generate` and `select` fail
/// with an engine error, which the tests use to check error propagation.
pub struct TokenizerBackend {
    tok: Tokenizer,
}

impl TokenizerBackend {
    pub fn new() -> Self {
        TokenizerBackend { tok: tokenizer() }
    }
}

pub const NO_MODEL: &str = "this backend has no language model";

impl LmBackend for TokenizerBackend {
    fn tokenize(&self, text: &str) -> Result<Vec<u32>, RequestError> {
        self.tok
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| RequestError::Engine(e.to_string()))
    }

    fn detokenize(&self, ids: &[u32]) -> String {
        self.tok.decode(ids, true).unwrap_or_default()
    }

    fn render_chat_message(&self, role: Role, content: &str) -> Result<String, RequestError> {
        let role = match role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        Ok(format!(
            "<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>"
        ))
    }

    fn generate(
        &self,
        _: Namespace,
        _: Vec<u32>,
        _: GenerateOptions,
        _: Option<TokenSink>,
    ) -> BoxFuture<'static, Result<Generated, RequestError>> {
        Box::pin(async { Err(RequestError::Engine(NO_MODEL.into())) })
    }

    fn score_choices(
        &self,
        _: Namespace,
        _: Vec<u32>,
        _: Vec<Vec<u32>>,
    ) -> BoxFuture<'static, Result<Vec<ChoiceScore>, RequestError>> {
        Box::pin(async { Err(RequestError::Engine(NO_MODEL.into())) })
    }
}

/// A runtime over [`TokenizerBackend`] with default settings.
pub fn runtime() -> Runtime {
    runtime_with(RuntimeConfig::default())
}

pub fn runtime_with(config: RuntimeConfig) -> Runtime {
    Runtime::new(config, Arc::new(TokenizerBackend::new())).expect("runtime")
}

/// Short deadlines keep the hostile tests fast.
pub fn limits_with_deadline(ms: u64) -> arbor_runtime::Limits {
    arbor_runtime::Limits {
        deadline: Duration::from_millis(ms),
        ..Default::default()
    }
}
