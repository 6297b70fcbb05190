//! The scheduler's port to the model: one forward pass over a planned step.
//!
//! The scheduler decides everything about a step (which rows, which slots,
//! which copies) without touching a tensor; an engine only executes it. That
//! keeps the scheduler testable without ONNX Runtime (a fake engine drives
//! its unit tests) and lets a later engine run step n while the scheduler
//! plans step n + 1.

use arbor_engine::{BatchEntry, Engine, ForwardOutput, Tokenizer};
use arbor_kvcache::SlotCopy;
use std::any::Any;
use std::sync::Arc;

/// One planned forward pass.
pub struct Step<'a> {
    /// Slot copies to perform before anything reads the pool (copy on write
    /// of partly shared pages); sources are never destinations.
    pub copies: &'a [SlotCopy],
    /// The ragged batch, one entry per row of the plan.
    pub entries: &'a [BatchEntry<'a>],
}

/// What the scheduler needs of a model engine.
pub trait StepEngine: Send + 'static {
    /// Token slots in the KV pool.
    fn kv_slots(&self) -> usize;
    /// Tokens per KV page; slots are allocated in whole pages.
    fn page_size(&self) -> usize;
    /// Longest sequence the model accepts.
    fn max_context(&self) -> usize;
    /// Logits per row.
    fn vocab_size(&self) -> usize;
    /// The model's tokenizer (also used by the scheduler's callers).
    fn tokenizer(&self) -> Arc<Tokenizer>;
    /// Runs the copies, then the batch: stores the new tokens' K/V in their
    /// slots and returns the logits each entry asked for.
    fn forward(&mut self, step: &Step<'_>) -> anyhow::Result<ForwardOutput>;
    /// The engine itself, for callers that take it back at shutdown.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

impl StepEngine for Engine {
    fn kv_slots(&self) -> usize {
        Engine::kv_slots(self)
    }

    fn page_size(&self) -> usize {
        Engine::page_size(self)
    }

    fn max_context(&self) -> usize {
        Engine::max_context(self)
    }

    fn vocab_size(&self) -> usize {
        self.config().vocab_size
    }

    fn tokenizer(&self) -> Arc<Tokenizer> {
        self.tokenizer_handle()
    }

    fn forward(&mut self, step: &Step<'_>) -> anyhow::Result<ForwardOutput> {
        if !step.copies.is_empty() {
            let pairs: Vec<(u32, u32)> = step.copies.iter().map(|c| (c.src, c.dst)).collect();
            self.copy_slots(&pairs)?;
        }
        Engine::forward(self, step.entries)
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}
