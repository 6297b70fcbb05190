//! The scheduler loop: one thread that owns the engine and the KV manager
//! and runs one step at a time.
//!
//! A step is `plan` → `engine.forward` → `commit`. [`crate::plan`] decides
//! the batch and every KV change (admission order, slots, copies,
//! preemptions) without touching a tensor; the engine executes it;
//! [`crate::commit`] feeds each row's logits to its request's decoder or
//! `select` and hands computed prefixes to the cache. The only thing step
//! n + 1 needs from step n is each decoding row's next token, so a later
//! engine can overlap the two.
//!
//! Invariant (checked after every step when `check_invariants` is set):
//! every pool slot is free, cached, private to exactly one running job or
//! scan, or fragmented inside a partly used page; see
//! [`arbor_kvcache::KvManager`].

use crate::config::SchedulerConfig;
use crate::decoder::Decoder;
use crate::engine::StepEngine;
use crate::job::{Job, ScoreReply, Scoring, Work};
use crate::policy::Admission;
use crate::request::{GenerateRequest, ScoreRequest, Usage};
use crate::stats::{MaskTimer, SchedulerStats};
use arbor_constraint::{TokenFsm, Vocab};
use arbor_engine::Tokenizer;
use arbor_kvcache::{KvAudit, KvManager, SeqKv};
use arbor_types::{Finish, RequestError};
use std::any::Any;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::{mpsc as tmpsc, oneshot};

/// An accounting of the KV pool, for tests and diagnostics.
pub type PoolAudit = KvAudit;

pub enum Command {
    Generate(
        GenerateRequest,
        tmpsc::UnboundedSender<crate::request::Event>,
        Option<Arc<TokenFsm>>,
    ),
    Score(ScoreRequest, ScoreReply),
    Audit(oneshot::Sender<PoolAudit>),
    /// Fail everything queued and hand the engine back.
    Shutdown(oneshot::Sender<Box<dyn Any + Send>>),
}

pub struct Core {
    pub(crate) engine: Box<dyn StepEngine>,
    pub(crate) cfg: SchedulerConfig,
    pub(crate) kv: KvManager,
    pub(crate) admission: Admission,
    pub(crate) waiting: VecDeque<Job>,
    pub(crate) running: Vec<Job>,
    pub(crate) step: u64,
    pub(crate) stats: SchedulerStats,
    shared: Arc<Mutex<SchedulerStats>>,
    pub(crate) tokenizer: Arc<Tokenizer>,
    pub(crate) eos: Vec<u32>,
    pub(crate) vocab: Option<Arc<Vocab>>,
    pub(crate) masks: MaskTimer,
}

impl Core {
    pub fn new(
        engine: Box<dyn StepEngine>,
        cfg: SchedulerConfig,
        shared: Arc<Mutex<SchedulerStats>>,
        vocab: Option<Arc<Vocab>>,
    ) -> Result<Self, RequestError> {
        let kv = KvManager::new(
            engine.kv_slots() as u32,
            engine.page_size() as u32,
            cfg.cache_enabled,
        )
        .map_err(|e| RequestError::Invalid(e.to_string()))?;
        let tokenizer = engine.tokenizer();
        let eos = tokenizer.eos_ids().to_vec();
        let admission = Admission::new(cfg.policy, cfg.starvation_steps, cfg.fcfs_above, cfg.seed);
        let mut core = Core {
            engine,
            cfg,
            kv,
            admission,
            waiting: VecDeque::new(),
            running: Vec::new(),
            step: 0,
            stats: SchedulerStats::default(),
            shared,
            tokenizer,
            eos,
            vocab,
            masks: MaskTimer::default(),
        };
        // Published before any request, so that metrics are right from the start.
        core.publish();
        Ok(core)
    }

    /// Runs until every handle is gone and no work remains, or until told
    /// to shut down.
    pub fn run(mut self, rx: mpsc::Receiver<Command>) {
        let mut connected = true;
        loop {
            if self.running.is_empty() && self.waiting.is_empty() {
                if !connected {
                    return;
                }
                match rx.recv() {
                    Ok(Command::Shutdown(tx)) => return self.shutdown(tx),
                    Ok(c) => self.accept(c),
                    Err(_) => return,
                }
            }
            loop {
                match rx.try_recv() {
                    Ok(Command::Shutdown(tx)) => return self.shutdown(tx),
                    Ok(c) => self.accept(c),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        connected = false;
                        break;
                    }
                }
            }
            self.tick();
        }
    }

    fn shutdown(mut self, tx: oneshot::Sender<Box<dyn Any + Send>>) {
        let jobs: Vec<Job> = self
            .running
            .drain(..)
            .chain(self.waiting.drain(..))
            .collect();
        for mut j in jobs {
            release(&mut self.kv, &mut j, false);
            j.fail(RequestError::Cancelled);
        }
        let _ = tx.send(self.engine.into_any());
    }

    fn accept(&mut self, c: Command) {
        let pool = self.kv.pool_slots();
        let (ns, tokens, work, needed) = match c {
            Command::Shutdown(_) => unreachable!("handled by the loop"),
            Command::Audit(tx) => {
                let _ = tx.send(self.audit());
                return;
            }
            Command::Generate(req, tx, fsm) => {
                let needed = req.prompt.len() + 1;
                (
                    req.namespace,
                    req.prompt.clone(),
                    Work::Gen(Box::new(Decoder::new(req, tx, fsm))),
                    needed,
                )
            }
            Command::Score(req, tx) => {
                // Every choice is a fork that may copy a partial page.
                let page = self.kv.page_size();
                let needed =
                    req.prompt.len() + req.choices.iter().map(|c| c.len() + page).sum::<usize>();
                (
                    req.namespace,
                    req.prompt.clone(),
                    Work::Score(Box::new(Scoring::new(req, tx))),
                    needed,
                )
            }
        };
        let mut job = Job {
            ns,
            usage: Usage {
                prompt_tokens: tokens.len(),
                ..Default::default()
            },
            tokens,
            work,
            kv: None,
            prefilled: false,
            arrival: self.step,
            done: false,
        };
        if needed > pool {
            job.fail(RequestError::TooLarge { needed, pool });
            return;
        }
        if let Work::Gen(d) = &job.work
            && d.request().max_tokens == 0
        {
            finish_gen(
                &mut self.kv,
                &self.tokenizer,
                &mut self.stats,
                &mut job,
                Finish::Length,
            );
            return;
        }
        self.waiting.push_back(job);
    }

    /// One scheduling round and at most one forward pass.
    fn tick(&mut self) {
        let t0 = std::time::Instant::now();
        let engine_before = self.stats.engine_seconds;
        self.drop_cancelled();
        self.admit();
        self.start_scans();
        let plan = self.plan();
        let ran = !plan.rows.is_empty();
        if ran {
            self.execute(plan);
        }
        self.finish_ready_scores();
        self.requeue_preempted();
        if ran {
            let engine = self.stats.engine_seconds - engine_before;
            self.stats.host_seconds += (t0.elapsed().as_secs_f64() - engine).max(0.0);
        }
        if ran && self.cfg.check_invariants {
            let a = self.audit();
            if let Err(e) = a.invariants {
                panic!("KV invariant violated after step {}: {e}", self.step);
            }
        }
        self.publish();
        if !ran && self.running.is_empty() && !self.waiting.is_empty() {
            // Nothing fits beside nothing, which `accept` rules out for any
            // single request; let other threads run meanwhile.
            std::thread::yield_now();
        }
    }

    fn drop_cancelled(&mut self) {
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].is_cancelled() {
                let mut j = self.running.swap_remove(i);
                release(&mut self.kv, &mut j, false);
                self.stats.cancelled += 1;
            } else {
                i += 1;
            }
        }
        let before = self.waiting.len();
        self.waiting.retain(|j| !j.is_cancelled());
        self.stats.cancelled += (before - self.waiting.len()) as u64;
    }

    /// Answers `select`s whose every choice is scored without another pass
    /// (all choices of one token).
    fn finish_ready_scores(&mut self) {
        for j in &mut self.running {
            if !j.done && matches!(&j.work, Work::Score(s) if s.is_complete()) {
                finish_score(&mut self.kv, &mut self.stats, j);
            }
        }
        self.running.retain(|j| !j.done);
    }

    /// Moves jobs that lost their KV to a preemption back to the queue's front.
    fn requeue_preempted(&mut self) {
        let mut back = Vec::new();
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].kv.is_none() {
                back.push(self.running.remove(i));
            } else {
                i += 1;
            }
        }
        for j in back.into_iter().rev() {
            self.waiting.push_front(j);
        }
    }

    pub(crate) fn live_seqs(&self) -> impl Iterator<Item = &SeqKv> {
        self.running.iter().flat_map(|j| {
            let scans = match &j.work {
                Work::Score(s) => s.scans.as_slice(),
                Work::Gen(_) => &[],
            };
            j.kv.iter().chain(scans.iter().map(|s| &s.kv))
        })
    }

    fn audit(&self) -> PoolAudit {
        self.kv.audit(self.live_seqs())
    }

    fn publish(&mut self) {
        self.masks.publish(&mut self.stats);
        self.stats.running = self.running.len();
        self.stats.waiting = self.waiting.len();
        self.stats.pool_slots = self.kv.pool_slots();
        self.stats.page_size = self.kv.page_size();
        self.stats.free_slots = self.kv.free_slots();
        self.stats.cache = self.kv.cache_stats();
        if let Ok(mut s) = self.shared.lock() {
            *s = self.stats.clone();
        }
    }
}

/// Gives back everything a job holds: its scans' forks (they read its
/// slots), then its own KV, whose computed tokens are cached first when
/// `cache` is set.
pub(crate) fn release(kv: &mut KvManager, job: &mut Job, cache: bool) {
    if let Work::Score(s) = &mut job.work {
        for scan in s.reset() {
            kv.release(scan.kv, &[], false);
        }
    }
    if let Some(seq) = job.kv.take() {
        let cache = cache && kv.cache_enabled();
        kv.release(seq, &job.tokens, cache);
    }
}

/// Ends a generation: caches its tokens, sends `Done`.
pub(crate) fn finish_gen(
    kv: &mut KvManager,
    tokenizer: &Tokenizer,
    stats: &mut SchedulerStats,
    job: &mut Job,
    finish: Finish,
) {
    release(kv, job, true);
    if let Work::Gen(d) = &mut job.work {
        d.finish(tokenizer, finish, job.usage);
    }
    job.done = true;
    stats.finished += 1;
}

/// Ends a `select`: sends its scores.
pub(crate) fn finish_score(kv: &mut KvManager, stats: &mut SchedulerStats, job: &mut Job) {
    let scores = match &job.work {
        Work::Score(s) => s.scores(),
        Work::Gen(_) => return,
    };
    release(kv, job, false);
    if let Work::Score(s) = &mut job.work {
        s.reply(Ok(scores));
    }
    job.done = true;
    stats.finished += 1;
}

/// Ends a job with an error.
pub(crate) fn fail_job(kv: &mut KvManager, job: &mut Job, e: RequestError) {
    release(kv, job, false);
    job.fail(e);
}
