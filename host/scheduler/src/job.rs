//! A request inside the scheduler, from admission to its last event.
//!
//! Invariant: a job's `kv` holds slots for `tokens[..kv.len()]` and nothing
//! else; every token of `tokens` past that is pending; a job that is not
//! running (waiting, preempted, finished) holds no KV at all.

use crate::decoder::Decoder;
use crate::request::{ScoreRequest, Usage};
use arbor_kvcache::{Namespace, SeqKv};
use arbor_types::{ChoiceScore, RequestError};
use tokio::sync::oneshot;

/// The reply channel of a `select`.
pub type ScoreReply = oneshot::Sender<Result<Vec<ChoiceScore>, RequestError>>;

/// What a job computes.
pub enum Work {
    Gen(Box<Decoder>),
    Score(Box<Scoring>),
}

/// A scheduled request.
pub struct Job {
    pub ns: Namespace,
    /// Tokens to have K/V for: the prompt, then each generated token.
    pub tokens: Vec<u32>,
    pub kv: Option<SeqKv>,
    /// The prompt (and any output before a preemption) has been computed
    /// and handed to the cache; from now on the job decodes.
    pub prefilled: bool,
    /// Step of arrival (aging and preemption order).
    pub arrival: u64,
    pub usage: Usage,
    pub work: Work,
    /// Answered (finished or failed) and released; removed after the step.
    pub done: bool,
}

impl Job {
    /// Tokens without K/V yet.
    pub fn pending(&self) -> usize {
        self.tokens.len() - self.kv.as_ref().map_or(0, |k| k.len())
    }

    pub fn is_cancelled(&self) -> bool {
        match &self.work {
            Work::Gen(d) => d.is_cancelled(),
            Work::Score(s) => s.is_cancelled(),
        }
    }

    /// Reports `e` to the caller and marks the job done (its KV must be
    /// released separately).
    pub fn fail(&mut self, e: RequestError) {
        self.done = true;
        match &mut self.work {
            Work::Gen(d) => d.fail(e),
            Work::Score(s) => s.reply(Err(e)),
        }
    }

    /// Output tokens that admission should reserve room for.
    pub fn reserve(&self, decode_reserve: usize) -> usize {
        match &self.work {
            Work::Gen(d) => d
                .request()
                .max_tokens
                .saturating_sub(d.output_len())
                .min(decode_reserve),
            Work::Score(s) => s.req.choices.iter().map(|c| c.len()).sum(),
        }
    }
}

/// A `select` in progress: the prompt's last logits score every choice's
/// first token; each longer choice is then run as its own short sequence
/// (a fork of the prompt's KV) whose logits score the rest.
pub struct Scoring {
    pub req: ScoreRequest,
    tx: Option<ScoreReply>,
    /// log p(choice[i][0] | prompt), once the prompt is computed.
    pub first: Option<Vec<f64>>,
    /// Per choice, the log-probability of its tokens after the first.
    pub rest: Vec<f64>,
    /// Choices still being run.
    pub scans: Vec<Scan>,
    /// Choices of two or more tokens whose fork is not made yet (a fork may
    /// need a page for its copy on write).
    pub unstarted: Vec<usize>,
}

/// One choice being run over a fork of the prompt's KV.
pub struct Scan {
    pub choice: usize,
    pub kv: SeqKv,
    /// Choice tokens computed so far (of `len - 1`: the last one is never fed).
    pub done: usize,
}

impl Scan {
    /// The tokens this scan feeds: every choice token but the last.
    pub fn feed<'a>(&self, req: &'a ScoreRequest) -> &'a [u32] {
        let c = &req.choices[self.choice];
        &c[..c.len() - 1]
    }
}

impl Scoring {
    pub fn new(req: ScoreRequest, tx: ScoreReply) -> Self {
        Scoring {
            rest: vec![0.0; req.choices.len()],
            req,
            tx: Some(tx),
            first: None,
            scans: Vec::new(),
            unstarted: Vec::new(),
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.tx.as_ref().is_none_or(|t| t.is_closed())
    }

    /// Whether every choice is scored.
    pub fn is_complete(&self) -> bool {
        self.first.is_some() && self.scans.is_empty() && self.unstarted.is_empty()
    }

    /// Takes the log-probability of every choice's first token after the
    /// prompt and lists the choices that need a row of their own.
    pub fn on_prompt(&mut self, first: Vec<f64>) {
        self.first = Some(first);
        self.unstarted = (0..self.req.choices.len())
            .filter(|&i| self.req.choices[i].len() > 1)
            .collect();
    }

    /// The scores, once complete.
    pub fn scores(&self) -> Vec<ChoiceScore> {
        let first = self.first.as_deref().unwrap_or(&[]);
        self.req
            .choices
            .iter()
            .enumerate()
            .map(|(ci, c)| {
                let logprob = first.get(ci).copied().unwrap_or(f64::NEG_INFINITY) + self.rest[ci];
                ChoiceScore {
                    logprob,
                    tokens: c.len() as u32,
                }
            })
            .collect()
    }

    pub fn reply(&mut self, r: Result<Vec<ChoiceScore>, RequestError>) {
        if let Some(t) = self.tx.take() {
            let _ = t.send(r);
        }
    }

    /// Forgets progress (a preemption): the prompt is recomputed on return.
    pub fn reset(&mut self) -> Vec<Scan> {
        self.first = None;
        self.unstarted.clear();
        self.rest.iter_mut().for_each(|r| *r = 0.0);
        std::mem::take(&mut self.scans)
    }
}
