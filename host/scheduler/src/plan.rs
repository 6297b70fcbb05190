//! Planning a step: which rows run, with which slots and copies.
//!
//! Invariant: a plan holds at most `max_batch_tokens` new tokens, counting
//! `select` choice rows like any other; every row's slots are allocated
//! (page-consistent, by the KV manager) before the plan is returned; a job
//! preempted to make room is never one with a row in the plan. Planning
//! touches no tensor.
//!
//! Order within the budget: every decoding request first (one token each,
//! so decoding never stalls behind prefill), then prompt chunks and choice
//! rows in admission order.

use crate::core::Core;
use crate::job::{Scan, Work};
use arbor_engine::Logits;
use arbor_kvcache::SlotCopy;

/// What a row computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKind {
    /// Tokens of the job's own sequence (prompt chunk, or a decode token).
    Own,
    /// Tokens of scan `scan` of a `select` job (a choice over a fork).
    Scan { scan: usize },
}

/// One row of a planned step.
pub struct Row {
    /// Index into the running jobs.
    pub job: usize,
    pub kind: RowKind,
    /// First new position (the history is positions `..start`).
    pub start: usize,
    /// New tokens.
    pub n: usize,
    /// Their slots.
    pub slots: Vec<u32>,
    pub logits: Logits,
    /// A decode row (one token of a prefilled job), for statistics.
    pub decode: bool,
}

/// A planned step.
pub struct Plan {
    pub rows: Vec<Row>,
    pub copies: Vec<SlotCopy>,
}

/// A row a job would like this step, before slots.
struct Want {
    job: usize,
    kind: RowKind,
    n: usize,
    /// Its full pending length (the row asks for logits if it reaches the end).
    pending: usize,
    logits_when_done: Logits,
    decode: bool,
}

impl Core {
    /// Forks the prompt of every `select` whose prompt is computed, once
    /// per choice of two or more tokens (each scores its tokens as a short
    /// sequence of its own). A fork that finds no page for its copy on
    /// write waits for a later step.
    pub(crate) fn start_scans(&mut self) {
        for j in &mut self.running {
            let (Work::Score(s), Some(parent)) = (&mut j.work, &j.kv) else {
                continue;
            };
            while let Some(&choice) = s.unstarted.last() {
                match self.kv.fork(parent, s.req.prompt.len()) {
                    Ok(kv) => {
                        s.unstarted.pop();
                        s.scans.push(Scan {
                            choice,
                            kv,
                            done: 0,
                        });
                    }
                    Err(_) => break,
                }
            }
        }
    }

    pub(crate) fn plan(&mut self) -> Plan {
        let wants = self.wants();
        let mut budget = self.cfg.max_batch_tokens.max(1);
        let mut plan = Plan {
            rows: Vec::new(),
            copies: Vec::new(),
        };
        let mut in_plan = vec![false; self.running.len()];
        for w in wants {
            if budget == 0 {
                break;
            }
            if self.running[w.job].kv.is_none() {
                continue; // preempted earlier in this plan
            }
            let n = w.n.min(budget);
            let Some(slots) = self.allocate(&w, n, &in_plan) else {
                continue;
            };
            let job = &mut self.running[w.job];
            let seq = match w.kind {
                RowKind::Own => job.kv.as_mut(),
                RowKind::Scan { scan } => match &mut job.work {
                    Work::Score(s) => Some(&mut s.scans[scan].kv),
                    Work::Gen(_) => None,
                },
            }
            .expect("planned rows have KV");
            plan.copies.extend(seq.take_copies());
            let start = seq.len() - n;
            plan.rows.push(Row {
                job: w.job,
                kind: w.kind,
                start,
                n,
                slots,
                logits: if n == w.pending {
                    w.logits_when_done
                } else if w.logits_when_done == Logits::Score {
                    // A chunk of a choice scores every token it holds.
                    Logits::Score
                } else {
                    Logits::None
                },
                decode: w.decode,
            });
            in_plan[w.job] = true;
            budget -= n;
        }
        plan
    }

    /// Every row the running jobs would like, decode rows first.
    fn wants(&self) -> Vec<Want> {
        let mut decode = Vec::new();
        let mut rest = Vec::new();
        for (i, j) in self.running.iter().enumerate() {
            if j.kv.is_none() {
                continue;
            }
            let pending = j.pending();
            if pending > 0 {
                let logits_when_done = match &j.work {
                    Work::Gen(d) if d.greedy_only() => Logits::Greedy,
                    Work::Gen(d) => d.draw_temperature().map_or(Logits::Last, Logits::Sample),
                    Work::Score(_) => Logits::ScoreLast,
                };
                let w = Want {
                    job: i,
                    kind: RowKind::Own,
                    n: pending,
                    pending,
                    logits_when_done,
                    decode: j.prefilled && pending == 1,
                };
                if w.decode {
                    decode.push(w);
                } else {
                    rest.push(w);
                }
            }
            if let Work::Score(s) = &j.work {
                for (k, scan) in s.scans.iter().enumerate() {
                    let pending = scan.feed(&s.req).len() - scan.done;
                    rest.push(Want {
                        job: i,
                        kind: RowKind::Scan { scan: k },
                        n: pending,
                        pending,
                        logits_when_done: Logits::Score,
                        decode: false,
                    });
                }
            }
        }
        decode.extend(rest);
        decode
    }

    /// Slots for `n` more tokens of the wanted row's sequence: the KV
    /// manager evicts cached entries itself; if the pool is still short,
    /// the newest running jobs without rows in this plan are preempted.
    /// `None` if even that cannot make room (the row waits a step).
    fn allocate(&mut self, w: &Want, n: usize, in_plan: &[bool]) -> Option<Vec<u32>> {
        loop {
            let job = &mut self.running[w.job];
            let seq = match w.kind {
                RowKind::Own => job.kv.as_mut()?,
                RowKind::Scan { scan } => match &mut job.work {
                    Work::Score(s) => &mut s.scans.get_mut(scan)?.kv,
                    Work::Gen(_) => return None,
                },
            };
            if let Ok(slots) = self.kv.allocate(seq, n) {
                return Some(slots);
            }
            let victim = (0..self.running.len())
                .filter(|&i| i != w.job && !in_plan[i] && self.running[i].kv.is_some())
                .max_by_key(|&i| (self.running[i].arrival, i))?;
            self.preempt(victim);
        }
    }

    /// Frees everything job `i` holds; it goes back to the queue after the
    /// step and recomputes what it had.
    fn preempt(&mut self, i: usize) {
        let j = &mut self.running[i];
        // Forks first: they read their parent's slots.
        if let Work::Score(s) = &mut j.work {
            for scan in s.reset() {
                self.kv.release(scan.kv, &[], false);
            }
        }
        if let Some(kv) = j.kv.take() {
            self.kv.release(kv, &[], false);
        }
        j.prefilled = false;
        j.usage.preemptions += 1;
        self.stats.preemptions += 1;
    }
}
