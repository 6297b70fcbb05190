//! One generation's decoding: sampler, constraint state, stop conditions and
//! text, from a logit row to the events its caller receives.
//!
//! Invariant: every token that enters the output, sampled or forced by
//! jump-forward, is observed by the sampler (penalties), advances the
//! constraint automaton, and is pushed through the one [`TextStream`], whose
//! deltas are final; `Done` carries the flushed tail, so the concatenated
//! `Token` texts plus the tail equal `Done`'s text exactly. Nothing
//! downstream decodes or matches stop strings again.

mod jump;
mod text;

pub use text::TextStream;

use crate::request::{Event, GenerateRequest, TokenLogprob, Usage};
use arbor_constraint::{FsmState, TokenFsm, Vocab};
use arbor_engine::sampling::top_logprobs;
use arbor_engine::{Candidates, Pick, Sampler, Temperature, Tokenizer};
use arbor_types::{ConstraintError, Finish, RequestError};
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

/// What decoding needs of the model, shared by every request.
pub struct DecodeCtx<'a> {
    pub tokenizer: &'a Tokenizer,
    /// The vocabulary as bytes (jump-forward needs it); `None` if the
    /// tokenizer could not be read as bytes.
    pub vocab: Option<&'a Vocab>,
    pub eos: &'a [u32],
    pub jump_forward: bool,
    pub max_context: usize,
}

/// What one logit row did to a generation.
pub struct Decoded {
    /// Tokens that entered the output (their K/V is computed next step).
    pub appended: Vec<u32>,
    pub next: Next,
    /// Microseconds spent computing and applying the constraint's mask.
    pub mask_us: Option<f64>,
    /// Tokens appended by jump-forward beyond the sampled one.
    pub jumped: usize,
}

/// Whether a generation goes on.
pub enum Next {
    Continue,
    Finish(Finish),
    Fail(RequestError),
}

/// The decoding state of one generation.
pub struct Decoder {
    req: GenerateRequest,
    tx: UnboundedSender<Event>,
    sampler: Sampler,
    /// The constraint's automaton and current state.
    fsm: Option<(Arc<TokenFsm>, FsmState)>,
    text: TextStream,
    out: Vec<u32>,
}

impl Decoder {
    pub fn new(
        req: GenerateRequest,
        tx: UnboundedSender<Event>,
        fsm: Option<Arc<TokenFsm>>,
    ) -> Self {
        Decoder {
            sampler: Sampler::new(req.sampling.clone()),
            text: TextStream::new(&req.stop_strings),
            fsm: fsm.map(|f| {
                let s = f.start();
                (f, s)
            }),
            req,
            tx,
            out: Vec::new(),
        }
    }

    pub fn request(&self) -> &GenerateRequest {
        &self.req
    }

    /// Tokens generated so far.
    pub fn output_len(&self) -> usize {
        self.out.len()
    }

    /// Whether the caller dropped its stream.
    pub fn is_cancelled(&self) -> bool {
        self.tx.is_closed()
    }

    /// Whether the next token is the logits' arg max and nothing else of
    /// them is needed (greedy, no penalties, no constraint, no logprobs): the
    /// engine may then hand over the token alone ([`Decoder::on_token`]).
    pub fn greedy_only(&self) -> bool {
        let p = &self.req.sampling;
        p.temperature == 0.0
            && p.repetition_penalty == 1.0
            && p.frequency_penalty == 0.0
            && p.presence_penalty == 0.0
            && self.fsm.is_none()
            && self.req.logprobs.is_none()
    }

    /// The temperature of a plain draw from the model's distribution (no
    /// penalties, no constraint, no logprobs), which an engine may serve
    /// from candidates computed where the logits are
    /// ([`Decoder::on_candidates`]).
    pub fn draw_temperature(&self) -> Option<Temperature> {
        let plain =
            !self.sampler.has_penalties() && self.fsm.is_none() && self.req.logprobs.is_none();
        plain
            .then(|| Temperature::new(self.req.sampling.temperature))
            .flatten()
    }

    /// Samples from the device's candidates of the row after the last
    /// token, fetching the whole row through `full_row` only when the draw
    /// lands beyond them; then as [`Decoder::on_logits`].
    pub fn on_candidates(
        &mut self,
        ctx: &DecodeCtx<'_>,
        c: &Candidates<'_>,
        full_row: impl FnOnce() -> anyhow::Result<Vec<f32>>,
        context_len: usize,
    ) -> Decoded {
        let d = Decoded {
            appended: Vec::new(),
            next: Next::Continue,
            mask_us: None,
            jumped: 0,
        };
        let tok = match self.sampler.sample_candidates(c) {
            Pick::Token(t) => t,
            Pick::NeedsRow => match full_row() {
                Ok(mut row) => self.sampler.sample(&mut row),
                Err(e) => {
                    let mut d = d;
                    d.next = Next::Fail(RequestError::Engine(format!("{e:#}")));
                    return d;
                }
            },
        };
        self.accept(ctx, tok, None, context_len, d)
    }

    /// Takes `tok`, the arg max the engine computed for a
    /// [`Decoder::greedy_only`] generation, as [`Decoder::on_logits`] would
    /// have sampled it.
    pub fn on_token(&mut self, ctx: &DecodeCtx<'_>, tok: u32, context_len: usize) -> Decoded {
        let d = Decoded {
            appended: Vec::new(),
            next: Next::Continue,
            mask_us: None,
            jumped: 0,
        };
        self.accept(ctx, tok, None, context_len, d)
    }

    /// Samples from `row` (the logits after the last token of a sequence of
    /// `context_len` tokens), applies constraint and stop rules, and
    /// streams what entered the output.
    pub fn on_logits(&mut self, ctx: &DecodeCtx<'_>, row: &[f32], context_len: usize) -> Decoded {
        let mut d = Decoded {
            appended: Vec::new(),
            next: Next::Continue,
            mask_us: None,
            jumped: 0,
        };
        let mut logits = row.to_vec();
        if let Some((f, state)) = &self.fsm {
            let t = std::time::Instant::now();
            f.allowed(*state).apply(&mut logits);
            d.mask_us = Some(t.elapsed().as_secs_f64() * 1e6);
        }
        let tok = self.sampler.sample(&mut logits);
        // From the raw row: the model's distribution, not the sampler's.
        let logprob = self.req.logprobs.map(|k| {
            let (logprob, top) = top_logprobs(row, tok, k);
            TokenLogprob { logprob, top }
        });
        self.accept(ctx, tok, logprob, context_len, d)
    }

    /// Applies constraint and stop rules to the chosen `tok` and streams
    /// what entered the output.
    fn accept(
        &mut self,
        ctx: &DecodeCtx<'_>,
        tok: u32,
        mut logprob: Option<TokenLogprob>,
        context_len: usize,
        mut d: Decoded,
    ) -> Decoded {
        let is_eos = ctx.eos.contains(&tok);
        let mut new = vec![tok];
        let mut complete = false;
        if let Some((f, state)) = &mut self.fsm {
            if is_eos && f.is_accepting(*state) {
                d.next = Next::Finish(Finish::EndOfSequence);
                return d;
            }
            let before = *state;
            let Some(next) = f.advance(before, tok) else {
                d.next = Next::Fail(RequestError::Constraint(ConstraintError::NoContinuation));
                return d;
            };
            *state = next;
            let room = self.req.max_tokens.saturating_sub(self.out.len() + 1);
            // Forced tokens are never sampled, so they would have no
            // log-probability: requests that want them decode each.
            if ctx.jump_forward
                && self.req.logprobs.is_none()
                && room > 0
                && !f.is_finished(next)
                && let Some(vocab) = ctx.vocab
                && let Some((ids, s)) =
                    jump::jump_forward(f, vocab, ctx.tokenizer, before, tok, room)
            {
                d.jumped = ids.len() - 1;
                new = ids;
                *state = s;
            }
            complete = f.is_finished(*state);
        } else if !self.req.ignore_eos && is_eos {
            d.next = Next::Finish(Finish::EndOfSequence);
            return d;
        } else if self.req.stop_token_ids.contains(&tok) {
            d.next = Next::Finish(Finish::StopToken(tok));
            return d;
        }
        for &t in &new {
            self.sampler.observe(t);
            self.out.push(t);
            d.appended.push(t);
            let text = self.text.push(ctx.tokenizer, t);
            let _ = self.tx.send(Event::Token {
                id: t,
                text,
                logprob: logprob.take(),
            });
            if self.text.stopped() {
                break;
            }
        }
        if let Some((index, offset)) = self.text.stop() {
            d.next = Next::Finish(Finish::StopString { index, offset });
        } else if complete {
            d.next = Next::Finish(Finish::ConstraintComplete);
        } else if self.out.len() >= self.req.max_tokens
            || context_len + d.appended.len() >= ctx.max_context
        {
            d.next = Next::Finish(Finish::Length);
        }
        d
    }

    /// Sends `Done` with the final text and accounting.
    pub fn finish(&mut self, tok: &Tokenizer, finish: Finish, mut usage: Usage) {
        let tail = self.text.finish(tok);
        usage.completion_tokens = self.out.len();
        let _ = self.tx.send(Event::Done {
            text: self.text.text().to_string(),
            tail,
            tokens: self.out.clone(),
            finish,
            usage,
        });
    }

    /// Sends the error; nothing follows it.
    pub fn fail(&mut self, e: RequestError) {
        let _ = self.tx.send(Event::Error(e));
    }
}
