//! The port through which the runtime reaches the language model.
//!
//! The runtime only needs token-level operations; the scheduler implements
//! [`LmBackend`] with an adapter over the engine and the shared KV cache.

use std::sync::Arc;

pub use arbor_types::{ChoiceScore, Constraint, Finish, Namespace, RequestError};

use futures::future::BoxFuture;
use serde::Serialize;

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
    /// Why generation ended. With [`Finish::StopString`] the captured
    /// variable is the text before the stop string, while the state keeps
    /// all of it.
    pub finish: Finish,
}

/// What the runtime needs from the language model.
///
/// Futures returned here must be `'static` (they own their inputs) and
/// **dropping one cancels the request**: the runtime drops a request when
/// its run ends, times out, or the state that issued it is dropped.
pub trait LmBackend: Send + Sync + 'static {
    /// Tokens of `text`, without special tokens such as BOS.
    fn tokenize(&self, text: &str) -> Result<Vec<u32>, RequestError>;

    /// Text of `ids`, without special tokens.
    fn detokenize(&self, ids: &[u32]) -> String;

    /// One chat message rendered by the model's chat template. The runtime
    /// derives the text around a message's content (for `begin-message` /
    /// `end-message`) by rendering a marker content and splitting around it,
    /// so the rendering must contain `content` verbatim.
    fn render_chat_message(&self, role: Role, content: &str) -> Result<String, RequestError>;

    /// Generates a continuation of `prompt` (the state's full token list)
    /// honouring `options`. `sink`, when given, is called with tokens as
    /// they are produced.
    fn generate(
        &self,
        namespace: Namespace,
        prompt: Vec<u32>,
        options: GenerateOptions,
        sink: Option<TokenSink>,
    ) -> BoxFuture<'static, Result<Generated, RequestError>>;

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
    ) -> BoxFuture<'static, Result<Vec<ChoiceScore>, RequestError>>;

    /// Engine-side statistics (cache hits, engine steps, …) for reports.
    fn stats(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}
