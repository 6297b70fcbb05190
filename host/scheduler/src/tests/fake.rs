//! A fake engine for the scheduler's unit tests: no ONNX Runtime, but a
//! pool that remembers which token at which position each slot holds, and
//! that fails the step when a history is not exactly the sequence it
//! should be. So a test fails on any KV bookkeeping error (a slot reused
//! while live, a wrong copy, a history out of order), not only on outputs.
//!
//! Its "model" is a function of the whole token sequence: logits are
//! pseudo-random per (sequence hash, token), with one token boosted, so
//! outputs depend on every earlier token, as a real model's do.

use crate::engine::{Step, StepEngine};
use arbor_engine::{ForwardOutput, Logits, Tokenizer};
use std::any::Any;
use std::sync::{Arc, Mutex, OnceLock};

/// Picks the token the model favours after a sequence (`None`: no favourite).
pub type Favourite = Arc<dyn Fn(&[u32]) -> Option<u32> + Send + Sync>;

/// What one slot holds: position, token, and the hash of the sequence up to
/// and including it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cell {
    pos: usize,
    token: u32,
    hash: u64,
}

/// Counters a test can read while the scheduler owns the engine.
#[derive(Default, Debug)]
pub struct Record {
    pub steps: usize,
    /// Most new tokens in one step.
    pub max_step_tokens: usize,
    pub copies: usize,
    /// New tokens per step, in order.
    pub step_tokens: Vec<usize>,
}

pub struct FakeEngine {
    cells: Vec<Option<Cell>>,
    page_size: usize,
    max_context: usize,
    tokenizer: Arc<Tokenizer>,
    favourite: Favourite,
    /// A step with a sequence that starts with this token fails (fault
    /// injection).
    pub poison: Option<u32>,
    /// Serve rows drawn at a temperature as this many candidates, as the
    /// paged CUDA graph does, instead of as rows.
    pub candidates: Option<usize>,
    /// Keep `select` rows out of the output's rows and serve their tokens'
    /// log-probabilities on request, as the paged CUDA graph does.
    pub device_scores: bool,
    pub record: Arc<Mutex<Record>>,
}

/// The test tokenizer: Arbor's own byte-level BPE, trained once.
pub fn tokenizer() -> Arc<Tokenizer> {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = tempfile::tempdir().expect("tempdir");
        arbor_export::tokenizer::train_byte_level_bpe(d.path(), 512).expect("train tokenizer");
        d
    });
    Arc::new(Tokenizer::load(dir.path(), &[], None).expect("load tokenizer"))
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn extend(hash: u64, token: u32) -> u64 {
    mix(hash ^ mix(token as u64 + 0x9e37_79b9))
}

impl FakeEngine {
    pub fn new(slots: usize, page_size: usize, favourite: Favourite) -> Self {
        FakeEngine {
            cells: vec![None; slots],
            page_size,
            max_context: 4096,
            tokenizer: tokenizer(),
            favourite,
            poison: None,
            candidates: None,
            device_scores: false,
            record: Arc::new(Mutex::new(Record::default())),
        }
    }

    /// A model with no favourite: logits are pseudo-random per sequence.
    pub fn random(slots: usize, page_size: usize) -> Self {
        Self::new(slots, page_size, Arc::new(|_| None))
    }

    pub fn vocab(&self) -> usize {
        self.tokenizer.vocab_size()
    }

    /// The logits the model gives after `seq` (what a test compares to).
    pub fn logits_after(vocab: usize, favourite: &Favourite, seq: &[u32]) -> Vec<f32> {
        let h = seq.iter().fold(0u64, |h, &t| extend(h, t));
        Self::logits(vocab, favourite, h, seq)
    }

    fn logits(vocab: usize, favourite: &Favourite, hash: u64, seq: &[u32]) -> Vec<f32> {
        let mut row: Vec<f32> = (0..vocab)
            .map(|v| (mix(hash ^ (v as u64) << 20) % 1000) as f32 / 250.0)
            .collect();
        if let Some(t) = favourite(seq) {
            row[t as usize] += 10.0;
        }
        row
    }
}

impl StepEngine for FakeEngine {
    fn kv_slots(&self) -> usize {
        self.cells.len()
    }

    fn page_size(&self) -> usize {
        self.page_size
    }

    fn max_context(&self) -> usize {
        self.max_context
    }

    fn vocab_size(&self) -> usize {
        self.vocab()
    }

    fn tokenizer(&self) -> Arc<Tokenizer> {
        self.tokenizer.clone()
    }

    fn forward(&mut self, step: &Step<'_>) -> anyhow::Result<ForwardOutput> {
        let vocab = self.vocab();
        let p = self.page_size;
        for c in step.copies {
            anyhow::ensure!(
                c.src % p as u32 == c.dst % p as u32,
                "copy {c:?} changes the offset in a page"
            );
            self.cells[c.dst as usize] = self.cells[c.src as usize];
        }
        let mut logits = Vec::new();
        let mut rows = Vec::new();
        let mut new_tokens = 0;
        let mut writes = Vec::new();
        for (i, e) in step.entries.iter().enumerate() {
            anyhow::ensure!(
                !e.tokens.is_empty() && e.tokens.len() == e.new_slots.len(),
                "entry {i} malformed"
            );
            let first = match e.history.first() {
                Some(&s) => self.cells[s as usize].map(|c| c.token),
                None => e.tokens.first().copied(),
            };
            if self.poison.is_some() && first == self.poison {
                anyhow::bail!("a poisoned sequence");
            }
            // The history must be a whole sequence, position by position,
            // page-consistent, each slot extending the one before.
            let mut seq = Vec::with_capacity(e.history.len() + e.tokens.len());
            let mut hash = 0u64;
            for (pos, &s) in e.history.iter().enumerate() {
                let Some(cell) = self.cells[s as usize] else {
                    anyhow::bail!("entry {i}: history slot {s} (position {pos}) was never written");
                };
                anyhow::ensure!(
                    cell.pos == pos,
                    "entry {i}: slot {s} holds position {} not {pos}",
                    cell.pos
                );
                anyhow::ensure!(
                    cell.hash == extend(hash, cell.token),
                    "entry {i}: slot {s} belongs to another sequence"
                );
                anyhow::ensure!(
                    s as usize % p == pos % p,
                    "entry {i}: slot {s} is not page-consistent for position {pos}"
                );
                if pos % p != 0 {
                    let first = e.history[pos - pos % p];
                    anyhow::ensure!(
                        s == first + (pos % p) as u32,
                        "entry {i}: position {pos} leaves its page"
                    );
                }
                hash = cell.hash;
                seq.push(cell.token);
            }
            let first_row = logits.len() / vocab;
            for (k, (&t, &s)) in e.tokens.iter().zip(e.new_slots).enumerate() {
                let pos = e.history.len() + k;
                anyhow::ensure!((t as usize) < vocab, "token {t} outside the vocabulary");
                anyhow::ensure!(
                    s as usize % p == pos % p,
                    "entry {i}: new slot {s} is not page-consistent for position {pos}"
                );
                hash = extend(hash, t);
                seq.push(t);
                writes.push((
                    s,
                    Cell {
                        pos,
                        token: t,
                        hash,
                    },
                ));
                let want = match e.logits {
                    Logits::None => false,
                    Logits::Last | Logits::Greedy | Logits::Sample(_) | Logits::ScoreLast => {
                        k + 1 == e.tokens.len()
                    }
                    Logits::All | Logits::Score => true,
                };
                if want {
                    logits.extend(Self::logits(vocab, &self.favourite, hash, &seq));
                }
            }
            rows.push(first_row..logits.len() / vocab);
            new_tokens += e.tokens.len();
        }
        for (s, c) in writes {
            self.cells[s as usize] = Some(c);
        }
        let mut r = self.record.lock().unwrap();
        r.steps += 1;
        r.copies += step.copies.len();
        r.max_step_tokens = r.max_step_tokens.max(new_tokens);
        r.step_tokens.push(new_tokens);
        let mut out = ForwardOutput::new(logits, vocab, rows);
        if let Some(k) = self.candidates {
            out.serve_samples_as_candidates(step.entries, k);
        }
        if self.device_scores {
            out.serve_scores_as_on_device(step.entries);
        }
        Ok(out)
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}
