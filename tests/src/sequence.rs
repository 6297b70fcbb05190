//! Sequences over the engine with reference-counted pool slots: create,
//! extend, fork (sharing the computed prefix without copying), free, and
//! step a batch of them.
//!
//! Test-only bookkeeping: the reference tests drive the engine directly
//! (ragged batches, forks, all-row logits) with it. Serving goes through
//! the scheduler, whose KV manager owns slots across requests.

use anyhow::{Result, bail};
use arbor_engine::engine::{BatchEntry, Engine, ForwardOutput, Logits};
use std::collections::HashMap;

/// A sequence handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SeqId(u64);

struct Seq {
    tokens: Vec<u32>,
    /// Slots of `tokens[..slots.len()]`, whose K/V are in the pool.
    slots: Vec<u32>,
}

/// One sequence's work in a step.
#[derive(Clone, Copy, Debug)]
pub struct StepItem {
    pub seq: SeqId,
    /// Most pending tokens to process now (chunked prefill).
    pub max_tokens: usize,
    pub logits: Logits,
}

/// The sequences of one engine and the slots they hold.
pub struct Sequences {
    refs: Vec<u32>,
    free: Vec<u32>,
    seqs: HashMap<u64, Seq>,
    next: u64,
}

impl Sequences {
    /// Bookkeeping for a pool of `slots` slots.
    pub fn new(slots: usize) -> Self {
        Sequences {
            refs: vec![0; slots],
            free: (0..slots as u32).rev().collect(),
            seqs: HashMap::new(),
            next: 0,
        }
    }

    /// A new sequence whose tokens are all pending.
    pub fn create(&mut self, tokens: &[u32]) -> SeqId {
        self.next += 1;
        self.seqs.insert(
            self.next,
            Seq {
                tokens: tokens.to_vec(),
                slots: Vec::new(),
            },
        );
        SeqId(self.next)
    }

    /// A new sequence sharing `id`'s tokens; its computed prefix is shared
    /// by slot, so nothing is recomputed or copied.
    pub fn fork(&mut self, id: SeqId) -> Result<SeqId> {
        let s = self.get(id)?;
        let (tokens, slots) = (s.tokens.clone(), s.slots.clone());
        for &sl in &slots {
            self.refs[sl as usize] += 1;
        }
        self.next += 1;
        self.seqs.insert(self.next, Seq { tokens, slots });
        Ok(SeqId(self.next))
    }

    /// Appends pending tokens.
    pub fn extend(&mut self, id: SeqId, tokens: &[u32]) -> Result<()> {
        self.get_mut(id)?.tokens.extend_from_slice(tokens);
        Ok(())
    }

    /// Drops a sequence and releases its slots.
    pub fn free(&mut self, id: SeqId) -> Result<()> {
        let s = self
            .seqs
            .remove(&id.0)
            .ok_or_else(|| anyhow::anyhow!("unknown sequence {id:?}"))?;
        self.release(&s.slots);
        Ok(())
    }

    pub fn tokens(&self, id: SeqId) -> Result<&[u32]> {
        Ok(&self.get(id)?.tokens)
    }

    /// Tokens not yet run through the model.
    pub fn pending(&self, id: SeqId) -> Result<usize> {
        let s = self.get(id)?;
        Ok(s.tokens.len() - s.slots.len())
    }

    /// Slots not held by any sequence.
    pub fn free_slots(&self) -> usize {
        self.free.len()
    }

    /// Runs the pending tokens of several sequences (up to each item's
    /// `max_tokens`) in one forward pass. On error nothing changes.
    pub fn step(&mut self, engine: &mut Engine, items: &[StepItem]) -> Result<ForwardOutput> {
        let mut chunks = Vec::with_capacity(items.len());
        for it in items {
            let s = self.get(it.seq)?;
            let n = (s.tokens.len() - s.slots.len()).min(it.max_tokens);
            if n == 0 {
                bail!("sequence {:?} has no pending tokens", it.seq);
            }
            chunks.push(n);
        }
        let need: usize = chunks.iter().sum();
        if need > self.free.len() {
            bail!(
                "KV pool exhausted: {need} slots needed, {} free",
                self.free.len()
            );
        }
        let new: Vec<Vec<u32>> = chunks
            .iter()
            .map(|&n| self.free.split_off(self.free.len() - n))
            .collect();
        let result = {
            let entries: Vec<BatchEntry> = items
                .iter()
                .zip(&new)
                .map(|(it, ns)| {
                    let s = &self.seqs[&it.seq.0];
                    let done = s.slots.len();
                    BatchEntry {
                        tokens: &s.tokens[done..done + ns.len()],
                        history: &s.slots,
                        new_slots: ns,
                        logits: it.logits,
                    }
                })
                .collect();
            engine.forward(&entries)
        };
        match result {
            Ok(out) => {
                for (it, ns) in items.iter().zip(new) {
                    for &sl in &ns {
                        self.refs[sl as usize] = 1;
                    }
                    self.seqs
                        .get_mut(&it.seq.0)
                        .expect("checked above")
                        .slots
                        .extend(ns);
                }
                Ok(out)
            }
            Err(e) => {
                for ns in new {
                    self.free.extend(ns);
                }
                Err(e)
            }
        }
    }

    fn release(&mut self, slots: &[u32]) {
        for &sl in slots {
            let r = &mut self.refs[sl as usize];
            *r -= 1;
            if *r == 0 {
                self.free.push(sl);
            }
        }
    }

    fn get(&self, id: SeqId) -> Result<&Seq> {
        self.seqs
            .get(&id.0)
            .ok_or_else(|| anyhow::anyhow!("unknown sequence {id:?}"))
    }

    fn get_mut(&mut self, id: SeqId) -> Result<&mut Seq> {
        self.seqs
            .get_mut(&id.0)
            .ok_or_else(|| anyhow::anyhow!("unknown sequence {id:?}"))
    }
}
