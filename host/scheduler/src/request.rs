//! What callers submit and what comes back.

use arbor_engine::SamplingParams;
use arbor_types::{Constraint, Finish, Namespace, RequestError};
use serde::Serialize;

/// A generation request: continue `prompt` in `namespace`.
#[derive(Clone, Debug)]
pub struct GenerateRequest {
    /// Whose cache entries may be shared (a tenant), see [`Namespace`].
    pub namespace: Namespace,
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Stop before any of these strings; the text returned excludes it.
    pub stop_strings: Vec<String>,
    /// Generation also stops at these ids (besides the model's end-of-sequence ids).
    pub stop_token_ids: Vec<u32>,
    /// Keep going past end-of-sequence ids (benchmarks). A constrained
    /// request still ends where its constraint is complete.
    pub ignore_eos: bool,
    /// Restrict the output to a regular language.
    pub constraint: Option<Constraint>,
    /// Report each generated token's log-probability and this many most
    /// likely alternatives (at most [`MAX_TOP_LOGPROBS`]); `None` reports
    /// nothing. The distribution is the model's own (before temperature,
    /// penalties and constraint masks), as in vLLM and SGLang. Requests
    /// that ask for it decode every token, without jump-forward, so that
    /// each token has one.
    pub logprobs: Option<usize>,
}

/// The most alternatives a request may ask for per token (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// A generated token's log-probability and the most likely alternatives.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TokenLogprob {
    pub logprob: f32,
    /// `(token id, log-probability)`, most likely first.
    pub top: Vec<(u32, f32)>,
}

impl GenerateRequest {
    /// A greedy request in `namespace` with defaults for everything else.
    pub fn new(namespace: Namespace, prompt: Vec<u32>, max_tokens: usize) -> Self {
        GenerateRequest {
            namespace,
            prompt,
            max_tokens,
            sampling: SamplingParams::default(),
            stop_strings: Vec::new(),
            stop_token_ids: Vec::new(),
            ignore_eos: false,
            constraint: None,
            logprobs: None,
        }
    }
}

/// Scoring choices as continuations of a prompt (the `select` primitive).
#[derive(Clone, Debug)]
pub struct ScoreRequest {
    pub namespace: Namespace,
    pub prompt: Vec<u32>,
    /// Each choice's tokens; none may be empty.
    pub choices: Vec<Vec<u32>>,
}

/// Per-request accounting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    /// Prompt tokens whose K/V came from the cache.
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    /// Times the request was preempted and recomputed.
    pub preemptions: u32,
}

/// What a generation stream yields.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// One generated token and the text it completes (may be empty while a
    /// multi-byte character is incomplete), with its log-probability when
    /// the request asked for them.
    Token {
        id: u32,
        text: String,
        logprob: Option<TokenLogprob>,
    },
    /// The end: the full text (stop string excluded) and accounting.
    Done {
        text: String,
        /// Text that became final only at the end (an incomplete character or
        /// a partial stop string held back): the `Token` texts followed by
        /// `tail` are exactly `text`.
        tail: String,
        tokens: Vec<u32>,
        finish: Finish,
        usage: Usage,
    },
    /// The request failed; nothing more follows.
    Error(RequestError),
}
