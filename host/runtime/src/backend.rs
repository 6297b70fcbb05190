//! The port through which the runtime reaches the language model.
//!
//! The runtime only needs token-level operations; the scheduler implements
//! [`LmBackend`] with an adapter over the engine and the shared KV cache.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Serialize;

/// Tenant identity: the scope of cache sharing and accounting in the
/// backend. Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Namespace(Arc<str>);

impl Serialize for Namespace {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl Namespace {
    /// A namespace named `id`.
    pub fn new(id: impl AsRef<str>) -> Self {
        Namespace(Arc::from(id.as_ref()))
    }

    /// The tenant id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Chat roles of the WIT interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The user's turn.
    User,
    /// The model's turn.
    Assistant,
}

/// A constraint on generated text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Constraint {
    /// The text must match this regular expression.
    Regex(String),
    /// The text must be JSON valid against this schema (JSON text).
    JsonSchema(String),
}

/// Options of one generation, already validated and clamped by the runtime.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GenerateOptions {
    /// At least 1; the runtime has clamped it to the run's remaining budget.
    pub max_tokens: u32,
    /// Finite and non-negative; 0 means greedy.
    pub temperature: f32,
    /// In (0, 1]; 1 disables nucleus sampling.
    pub top_p: f32,
    /// 0 disables top-k.
    pub top_k: u32,
    /// Stop strings; none is empty.
    pub stop: Vec<String>,
    /// Sampler seed.
    pub seed: Option<u64>,
    /// Constraint on the generated text.
    pub constraint: Option<Constraint>,
}

/// Receives generated tokens as they are produced, in order, possibly in
/// batches, with the text they made final (the backend's own incremental
/// decoding: whole characters, stop strings held back and never sent; the
/// end may come as text without tokens). Only used for streaming to
/// clients; the final [`Generated`] is authoritative.
pub type TokenSink = Arc<dyn Fn(&[u32], &str) + Send + Sync>;

/// Why a generation ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Finish {
    /// `max_tokens` was reached.
    Length,
    /// The model produced its end-of-sequence token.
    EndOfSequence,
    /// A stop string matched; it starts at byte `offset` of
    /// [`Generated::text`].
    Stop {
        /// Byte offset of the matched stop string in the text.
        offset: usize,
    },
    /// The constraint admits no longer text.
    ConstraintComplete,
}

/// The result of one generation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Generated {
    /// The sampled tokens, including those that form a matched stop string
    /// but not the end-of-sequence token. The runtime appends them to the
    /// state as they are, so the next request's prompt extends this one's
    /// exactly and its prefix is found in the cache.
    pub tokens: Vec<u32>,
    /// Decoded text of `tokens` (without special tokens).
    pub text: String,
    /// Why generation ended. With [`Finish::Stop`] the captured variable is
    /// the text before the stop string, while the state keeps all of it.
    pub finish: Finish,
}

/// Score of one `select` choice.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ChoiceScore {
    /// Sum of the log-probabilities of the choice's tokens, each given the
    /// prompt and the choice's preceding tokens.
    pub logprob: f64,
    /// Number of tokens scored.
    pub tokens: u32,
}

/// Failures reported by the backend.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The regex or JSON Schema cannot be compiled or is unsupported.
    #[error("bad constraint: {0}")]
    BadConstraint(String),
    /// The request is malformed (e.g. prompt longer than the context).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The request was cancelled by the backend (shutdown, preemption).
    #[error("cancelled")]
    Cancelled,
    /// Anything else that went wrong in the engine.
    #[error("engine error: {0}")]
    Engine(String),
}

/// What the runtime needs from the language model.
///
/// Futures returned here must be `'static` (they own their inputs) and
/// **dropping one cancels the request**: the runtime drops a request when
/// its run ends, times out, or the state that issued it is dropped.
pub trait LmBackend: Send + Sync + 'static {
    /// Tokens of `text`, without special tokens such as BOS.
    fn tokenize(&self, text: &str) -> Result<Vec<u32>, BackendError>;

    /// Text of `ids`, without special tokens.
    fn detokenize(&self, ids: &[u32]) -> String;

    /// One chat message rendered by the model's chat template. The runtime
    /// derives the text around a message's content (for `begin-message` /
    /// `end-message`) by rendering a marker content and splitting around it,
    /// so the rendering must contain `content` verbatim.
    fn render_chat_message(&self, role: Role, content: &str) -> Result<String, BackendError>;

    /// Generates a continuation of `prompt` (the state's full token list)
    /// honouring `options`. `sink`, when given, is called with tokens as
    /// they are produced.
    fn generate(
        &self,
        namespace: Namespace,
        prompt: Vec<u32>,
        options: GenerateOptions,
        sink: Option<TokenSink>,
    ) -> BoxFuture<'static, Result<Generated, BackendError>>;

    /// Scores each choice as a continuation of `prompt`; one score per
    /// choice, in order. The backend returns raw sums; the runtime picks
    /// the choice with the highest mean log-probability per token (ties go
    /// to the lowest index), as SGLang's default does, so that longer
    /// choices are not penalised for their length.
    fn score_choices(
        &self,
        namespace: Namespace,
        prompt: Vec<u32>,
        choices: Vec<Vec<u32>>,
    ) -> BoxFuture<'static, Result<Vec<ChoiceScore>, BackendError>>;

    /// Engine-side statistics (cache hits, engine steps, …) for reports.
    fn stats(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}
