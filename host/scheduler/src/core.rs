//! The scheduler loop: one thread that owns the engine, the radix cache and
//! the slot allocator, and runs one forward pass per step.
//!
//! Each step: take new requests; drop cancelled ones; admit waiting requests
//! (cache-aware order with aging, bounded by free plus evictable slots);
//! plan a batch (every decoding request, then prefill chunks under the token
//! budget); find slots for it (evicting cached prefixes, then preempting the
//! newest requests if the pool is still short); run it; sample, stream, and
//! retire what finished, caching its tokens.

use crate::config::SchedulerConfig;
use crate::detok::Detokenizer;
use crate::request::{
    ChoiceScore, Event, FinishReason, GenerateRequest, SchedulerError, ScoreRequest, TokenLogprob,
    Usage,
};
use crate::stats::SchedulerStats;
use arbor_constraint::{FsmState, TokenFsm, Vocab};
use arbor_engine::sampling::{log_prob, top_logprobs};
use arbor_engine::{BatchEntry, Engine, Logits, Sampler};
use arbor_kvcache::{Namespace, NodeId, RadixCache, SlotAllocator};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::{mpsc as tmpsc, oneshot};

pub enum Command {
    Generate(
        GenerateRequest,
        tmpsc::UnboundedSender<Event>,
        Option<Arc<TokenFsm>>,
    ),
    Score(
        ScoreRequest,
        oneshot::Sender<Result<Vec<ChoiceScore>, SchedulerError>>,
    ),
    Audit(oneshot::Sender<PoolAudit>),
    /// Fail everything queued and hand the engine back.
    Shutdown(oneshot::Sender<Engine>),
}

/// An accounting of the KV pool, for tests and diagnostics.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PoolAudit {
    pub pool_slots: usize,
    pub free_slots: usize,
    /// Slots owned by cache nodes.
    pub cached_slots: usize,
    /// Cached slots locked by running requests.
    pub locked_slots: usize,
    /// Slots held privately by running requests.
    pub private_slots: usize,
    /// `Err` with the first broken invariant of the radix cache.
    pub invariants: Result<(), String>,
}

/// The KV state of an admitted request.
struct Kv {
    /// Slots of `tokens[..slots.len()]`.
    slots: Vec<u32>,
    /// `slots[..cached]` belong to the cache and are protected by the lock on `node`.
    cached: usize,
    node: Option<NodeId>,
    /// Whether the tokens computed so far were inserted into the cache.
    prefill_cached: bool,
}

// Jobs live in one Vec for their whole life; boxing the (larger) Gen payload
// would add an allocation per request to save memory on rare Score jobs.
#[allow(clippy::large_enum_variant)]
enum Kind {
    Gen {
        req: GenerateRequest,
        tx: tmpsc::UnboundedSender<Event>,
        sampler: Sampler,
        out: Vec<u32>,
        detok: Detokenizer,
        /// The constraint's automaton and current state.
        fsm: Option<(Arc<TokenFsm>, FsmState)>,
    },
    Score {
        req: ScoreRequest,
        tx: Option<oneshot::Sender<Result<Vec<ChoiceScore>, SchedulerError>>>,
        /// log p(choice[0] | prompt), once the prompt is prefilled.
        first: Option<Vec<f64>>,
    },
}

struct Job {
    ns: Namespace,
    /// Tokens to have K/V for: the prompt, then each sampled token.
    tokens: Vec<u32>,
    kind: Kind,
    kv: Option<Kv>,
    arrival: u64,
    usage: Usage,
    done: bool,
}

impl Job {
    fn pending(&self) -> usize {
        self.tokens.len() - self.kv.as_ref().map_or(0, |k| k.slots.len())
    }

    fn is_cancelled(&self) -> bool {
        match &self.kind {
            Kind::Gen { tx, .. } => tx.is_closed(),
            Kind::Score { tx, .. } => tx.as_ref().is_none_or(|t| t.is_closed()),
        }
    }

    fn fail(&mut self, e: SchedulerError) {
        match &mut self.kind {
            Kind::Gen { tx, .. } => {
                let _ = tx.send(Event::Error(e));
            }
            Kind::Score { tx, .. } => {
                if let Some(t) = tx.take() {
                    let _ = t.send(Err(e));
                }
            }
        }
        self.done = true;
    }
}

/// One batch entry in the plan: job index and how many pending tokens.
struct Planned {
    job: usize,
    n: usize,
    logits: Logits,
    /// Score jobs in their choice phase run every choice as its own entry.
    choices: bool,
}

pub struct Core {
    engine: Engine,
    cfg: SchedulerConfig,
    cache: RadixCache,
    alloc: SlotAllocator,
    waiting: VecDeque<Job>,
    running: Vec<Job>,
    step: u64,
    stats: SchedulerStats,
    shared: Arc<Mutex<SchedulerStats>>,
    eos: Vec<u32>,
    vocab: Option<Arc<Vocab>>,
    /// Recent mask timings (µs), a ring buffer.
    mask_us: Vec<f32>,
    mask_next: usize,
    mask_dirty: bool,
}

/// Mask timings kept for the percentiles in the statistics.
const MASK_SAMPLES: usize = 8192;

/// Shortest shared uncached prefix for which admission waits for the first
/// request to cache it, instead of prefilling it twice in one batch.
const IN_BATCH_SHARE_MIN: usize = 8;

impl Core {
    pub fn new(
        engine: Engine,
        cfg: SchedulerConfig,
        shared: Arc<Mutex<SchedulerStats>>,
        vocab: Option<Arc<Vocab>>,
    ) -> Self {
        let n = engine.kv_slots() as u32;
        let eos = engine.tokenizer().eos_ids().to_vec();
        let stats = SchedulerStats {
            pool_slots: n as usize,
            free_slots: n as usize,
            ..Default::default()
        };
        Core {
            engine,
            cfg,
            cache: RadixCache::new(n),
            alloc: SlotAllocator::new(n),
            waiting: VecDeque::new(),
            running: Vec::new(),
            step: 0,
            stats,
            shared,
            eos,
            vocab,
            mask_us: Vec::new(),
            mask_next: 0,
            mask_dirty: false,
        }
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

    fn shutdown(mut self, tx: oneshot::Sender<Engine>) {
        for mut j in self
            .running
            .drain(..)
            .chain(self.waiting.drain(..))
            .collect::<Vec<_>>()
        {
            j.fail(SchedulerError::Shutdown);
        }
        let _ = tx.send(self.engine);
    }

    fn accept(&mut self, c: Command) {
        let pool = self.alloc.num_slots() as usize;
        let (ns, tokens, kind) = match c {
            Command::Shutdown(_) => unreachable!("handled by the loop"),
            Command::Audit(tx) => {
                let _ = tx.send(self.audit());
                return;
            }
            Command::Generate(req, tx, fsm) => {
                let sampler = Sampler::new(req.sampling.clone());
                let fsm = fsm.map(|f| {
                    let s = f.start();
                    (f, s)
                });
                (
                    req.namespace,
                    req.prompt.clone(),
                    Kind::Gen {
                        req,
                        tx,
                        sampler,
                        out: Vec::new(),
                        detok: Detokenizer::new(),
                        fsm,
                    },
                )
            }
            Command::Score(req, tx) => (
                req.namespace,
                req.prompt.clone(),
                Kind::Score {
                    req,
                    tx: Some(tx),
                    first: None,
                },
            ),
        };
        let mut job = Job {
            ns,
            usage: Usage {
                prompt_tokens: tokens.len(),
                ..Default::default()
            },
            tokens,
            kind,
            kv: None,
            arrival: self.step,
            done: false,
        };
        let needed = match &job.kind {
            Kind::Gen { .. } => job.tokens.len() + 1,
            Kind::Score { req, .. } => {
                job.tokens.len() + req.choices.iter().map(|c| c.len()).sum::<usize>()
            }
        };
        if needed > pool {
            job.fail(SchedulerError::TooLarge { needed, pool });
            return;
        }
        if let Kind::Gen { req, .. } = &job.kind
            && req.max_tokens == 0
        {
            self.finish_gen(&mut job, FinishReason::Length);
            return;
        }
        self.waiting.push_back(job);
    }

    /// One scheduling round and at most one forward pass.
    fn tick(&mut self) {
        self.drop_cancelled();
        self.admit();
        let mut plan = self.plan();
        if plan.is_empty() {
            self.publish();
            if self.running.is_empty() && !self.waiting.is_empty() {
                // Nothing admitted and nothing running: the head request can
                // never fit beside nothing, which `accept` rules out; yield.
                std::thread::yield_now();
            }
            return;
        }
        let slots = match self.find_slots(&mut plan) {
            Some(s) => s,
            None => {
                self.publish();
                return;
            }
        };
        self.execute(plan, slots);
        self.running.retain(|j| !j.done);
        self.publish();
    }

    fn drop_cancelled(&mut self) {
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].is_cancelled() {
                let mut j = self.running.swap_remove(i);
                self.release(&mut j, false);
                self.stats.cancelled += 1;
            } else {
                i += 1;
            }
        }
        let before = self.waiting.len();
        self.waiting.retain(|j| !j.is_cancelled());
        self.stats.cancelled += (before - self.waiting.len()) as u64;
    }

    /// Moves waiting requests to running in cache-aware order.
    fn admit(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        // Order: requests that waited too long first (oldest first), then the
        // longest cached prefix, then arrival.
        let step = self.step;
        let starve = self.cfg.starvation_steps;
        let mut order: Vec<(bool, usize, u64, usize)> = self
            .waiting
            .iter()
            .enumerate()
            .map(|(i, j)| {
                let hit = if self.cfg.cache_enabled {
                    self.cache.peek_prefix_len(j.ns, &j.tokens)
                } else {
                    0
                };
                (step.saturating_sub(j.arrival) > starve, hit, j.arrival, i)
            })
            .collect();
        order.sort_by(|a, b| {
            b.0.cmp(&a.0).then(if a.0 {
                a.2.cmp(&b.2)
            } else {
                b.1.cmp(&a.1).then(a.2.cmp(&b.2))
            })
        });
        let mut admitted_idx = Vec::new();
        // Prompts admitted this round whose prefixes are not cached yet.
        let mut in_flight: Vec<(Namespace, usize, usize)> = Vec::new(); // (ns, waiting idx, cached len)
        for &(_, _, _, i) in &order {
            if self.running.len() + admitted_idx.len() >= self.cfg.max_running {
                break;
            }
            let job = &self.waiting[i];
            if self.cfg.cache_enabled {
                let hit = self.cache.peek_prefix_len(job.ns, &job.tokens);
                let shares = in_flight.iter().any(|&(ns, k, cached)| {
                    let other = &self.waiting[k].tokens;
                    let common = job
                        .tokens
                        .iter()
                        .zip(other)
                        .take_while(|(a, b)| a == b)
                        .count();
                    ns == job.ns && common >= hit.max(cached) + IN_BATCH_SHARE_MIN
                });
                if shares {
                    // Wait one round: the first request caches the prefix.
                    continue;
                }
            }
            match self.try_admit(i) {
                Some(cached) => {
                    in_flight.push((self.waiting[i].ns, i, cached));
                    admitted_idx.push(i);
                }
                // Head-of-line: later requests must not overtake a request
                // that does not fit yet, or large prompts would starve.
                None => break,
            }
        }
        admitted_idx.sort_unstable_by(|a, b| b.cmp(a));
        let mut newly = Vec::new();
        for i in admitted_idx {
            newly.push(self.waiting.remove(i).expect("index from enumerate"));
        }
        newly.reverse();
        self.running.extend(newly);
    }

    /// Matches and locks the cached prefix of waiting job `i` if the pool can
    /// hold the rest; returns the cached length.
    fn try_admit(&mut self, i: usize) -> Option<usize> {
        let job = &mut self.waiting[i];
        let (mut matched, mut slots, node) = if self.cfg.cache_enabled {
            let m = self.cache.match_prefix(job.ns, &job.tokens);
            (m.matched_len, m.slots, Some(m.node))
        } else {
            (0, Vec::new(), None)
        };
        // The last token is always computed: its logits are what we need.
        if matched >= job.tokens.len() {
            matched = job.tokens.len() - 1;
            slots.truncate(matched);
        }
        if let Some(n) = node {
            self.cache.lock(n).ok()?;
        }
        // With nothing running there is nothing to wait for: admit on the
        // bare need, or a request near the pool's size would wait forever.
        let reserve = if self.running.is_empty() {
            0
        } else {
            match &job.kind {
                Kind::Gen { req, out, .. } => req
                    .max_tokens
                    .saturating_sub(out.len())
                    .min(self.cfg.decode_reserve),
                Kind::Score { req, .. } => req.choices.iter().map(|c| c.len()).sum(),
            }
        };
        let need = job.tokens.len() - matched + reserve;
        if self.alloc.num_free() + self.cache.evictable_size() < need {
            if let Some(n) = node {
                let _ = self.cache.unlock(n);
            }
            return None;
        }
        job.usage.cached_tokens = job
            .usage
            .cached_tokens
            .max(matched.min(job.usage.prompt_tokens));
        job.kv = Some(Kv {
            slots,
            cached: matched,
            node,
            prefill_cached: false,
        });
        Some(matched)
    }

    /// Decoding requests first (one token each), then prefill chunks.
    fn plan(&mut self) -> Vec<Planned> {
        let mut budget = self.cfg.max_batch_tokens.max(1);
        let mut plan = Vec::new();
        for (i, j) in self.running.iter().enumerate() {
            if let Kind::Score { first: Some(_), .. } = j.kind {
                let n: usize = match &j.kind {
                    Kind::Score { req, .. } => req.choices.iter().map(|c| c.len() - 1).sum(),
                    _ => 0,
                };
                plan.push(Planned {
                    job: i,
                    n,
                    logits: Logits::All,
                    choices: true,
                });
                budget = budget.saturating_sub(n);
            } else if j.pending() == 1
                && j.kv
                    .as_ref()
                    .is_some_and(|k| k.prefill_cached || !self.cfg.cache_enabled)
            {
                plan.push(Planned {
                    job: i,
                    n: 1,
                    logits: Logits::Last,
                    choices: false,
                });
                budget = budget.saturating_sub(1);
            }
        }
        for (i, j) in self.running.iter().enumerate() {
            if budget == 0 {
                break;
            }
            if plan.iter().any(|p| p.job == i) {
                continue;
            }
            let pending = j.pending();
            if pending == 0 {
                continue;
            }
            let n = pending.min(budget);
            let logits = if n == pending {
                Logits::Last
            } else {
                Logits::None
            };
            plan.push(Planned {
                job: i,
                n,
                logits,
                choices: false,
            });
            budget -= n;
        }
        plan
    }

    /// Slots for every planned token: free ones, then evicted cache entries,
    /// then preempted requests (newest first). Returns `None` if the plan
    /// became empty.
    fn find_slots(&mut self, plan: &mut Vec<Planned>) -> Option<Vec<u32>> {
        loop {
            let need: usize = plan.iter().map(|p| p.n).sum();
            if need == 0 {
                // Score jobs whose choices are all one token need no pass.
                return Some(Vec::new());
            }
            if self.alloc.num_free() < need && self.cfg.cache_enabled {
                let freed = self.cache.evict(need - self.alloc.num_free());
                self.alloc.free(&freed);
            }
            if let Some(s) = self.alloc.alloc(need) {
                return Some(s);
            }
            // Preempt the most recently admitted request.
            let victim = (0..self.running.len()).max_by_key(|&i| (self.running[i].arrival, i))?;
            let mut job = self.running.swap_remove(victim);
            self.release(&mut job, true);
            job.usage.preemptions += 1;
            self.stats.preemptions += 1;
            // Fix up the plan: drop the victim, renumber the moved job.
            let moved = self.running.len();
            plan.retain(|p| p.job != victim);
            for p in plan.iter_mut() {
                if p.job == moved {
                    p.job = victim;
                }
            }
            if self.running.is_empty() && plan.is_empty() {
                // It alone does not fit: `accept` bounds requests by the
                // pool, so this means the pool is fragmented by nothing
                // else; requeue and retry next round.
                self.waiting.push_front(job);
                return None;
            }
            self.waiting.push_front(job);
            if plan.is_empty() {
                return None;
            }
        }
    }

    fn execute(&mut self, plan: Vec<Planned>, slots: Vec<u32>) {
        // Assign slots to entries, in plan order.
        let mut off = 0;
        let mut assigned: Vec<Vec<u32>> = Vec::with_capacity(plan.len());
        for p in &plan {
            assigned.push(slots[off..off + p.n].to_vec());
            off += p.n;
        }
        let mut entries: Vec<BatchEntry> = Vec::new();
        // (plan index, choice index) per entry.
        let mut owners: Vec<(usize, Option<usize>)> = Vec::new();
        for (pi, p) in plan.iter().enumerate() {
            let j = &self.running[p.job];
            let kv = j.kv.as_ref().expect("running jobs have KV");
            if p.choices {
                let Kind::Score { req, .. } = &j.kind else {
                    unreachable!("choices plan is for score jobs")
                };
                let mut o = 0;
                for (ci, c) in req.choices.iter().enumerate() {
                    if c.len() > 1 {
                        entries.push(BatchEntry {
                            tokens: &c[..c.len() - 1],
                            history: &kv.slots,
                            new_slots: &assigned[pi][o..o + c.len() - 1],
                            logits: Logits::All,
                        });
                        owners.push((pi, Some(ci)));
                        o += c.len() - 1;
                    }
                }
            } else {
                let done = kv.slots.len();
                entries.push(BatchEntry {
                    tokens: &j.tokens[done..done + p.n],
                    history: &kv.slots,
                    new_slots: &assigned[pi],
                    logits: p.logits,
                });
                owners.push((pi, None));
            }
        }
        if entries.is_empty() {
            // Only one-token choices: answer from the logits already seen.
            for p in &plan {
                let mut job = std::mem::replace(&mut self.running[p.job], placeholder());
                self.finish_score(&mut job, &[]);
                self.running[p.job] = job;
            }
            return;
        }
        let result = self.engine.forward(&entries);
        drop(entries);
        let out = match result {
            Ok(o) => o,
            Err(e) => {
                self.alloc.free(&slots);
                let msg = format!("{e:#}");
                tracing::error!("forward pass failed: {msg}");
                for p in &plan {
                    let mut job = std::mem::replace(&mut self.running[p.job], placeholder());
                    self.release(&mut job, false);
                    job.fail(SchedulerError::Engine(msg.clone()));
                    self.running[p.job] = job;
                }
                return;
            }
        };
        self.step += 1;
        self.stats.steps += 1;
        let mut choice_rows: Vec<Vec<(usize, Vec<f64>)>> = vec![Vec::new(); plan.len()];
        for (ei, &(pi, choice)) in owners.iter().enumerate() {
            if let Some(ci) = choice {
                let Kind::Score { req, .. } = &self.running[plan[pi].job].kind else {
                    continue;
                };
                let c = &req.choices[ci];
                let lps: Vec<f64> = out
                    .rows(ei)
                    .enumerate()
                    .map(|(r, row)| log_prob(row, c[r + 1]))
                    .collect();
                choice_rows[pi].push((ci, lps));
            }
        }
        for (ei, &(pi, choice)) in owners.iter().enumerate() {
            if choice.is_some() {
                continue;
            }
            let p = &plan[pi];
            let mut job = std::mem::replace(&mut self.running[p.job], placeholder());
            let kv = job.kv.as_mut().expect("running jobs have KV");
            kv.slots.extend_from_slice(&assigned[pi]);
            let prefilling = !kv.prefill_cached;
            if prefilling {
                self.stats.prefill_tokens += p.n as u64;
            } else {
                self.stats.decode_tokens += p.n as u64;
            }
            if job.pending() == 0 && prefilling {
                self.cache_prefix(&mut job);
            }
            if let Some(row) = out.last(ei) {
                self.on_logits(&mut job, row);
            }
            self.running[p.job] = job;
        }
        // Choice phases: free their private slots and answer.
        for (pi, p) in plan.iter().enumerate() {
            if p.choices {
                self.alloc.free(&assigned[pi]);
                let mut job = std::mem::replace(&mut self.running[p.job], placeholder());
                self.finish_score(&mut job, &choice_rows[pi]);
                self.running[p.job] = job;
            }
        }
        if self.cfg.check_invariants
            && let Err(e) = self.cache.check_invariants(self.alloc.num_slots())
        {
            panic!("radix cache invariant violated: {e}");
        }
    }

    /// Inserts the computed tokens into the cache and moves the job's lock
    /// onto the inserted node, so its prefix is shared from now on.
    fn cache_prefix(&mut self, job: &mut Job) {
        let kv = job.kv.as_mut().expect("admitted");
        kv.prefill_cached = true;
        if !self.cfg.cache_enabled {
            return;
        }
        self.insert_cached(job.ns, &job.tokens, kv);
    }

    /// Hands all of `kv`'s slots (the K/V of `tokens[..kv.slots.len()]`)
    /// to the radix cache: slots the cache already had for that prefix go
    /// back to the allocator, and `kv` takes the cache's slots and a lock
    /// on the new node in place of its old one.
    fn insert_cached(&mut self, ns: Namespace, tokens: &[u32], kv: &mut Kv) {
        let n = kv.slots.len();
        match self.cache.insert(ns, &tokens[..n], &kv.slots) {
            Ok(o) => {
                self.alloc.free(&o.duplicates);
                let _ = self.cache.lock(o.node);
                if let Some(old) = kv.node.replace(o.node) {
                    let _ = self.cache.unlock(old);
                }
                kv.slots = o.slots;
                kv.cached = n;
            }
            Err(e) => tracing::error!("radix insert failed: {e}"),
        }
    }

    fn on_logits(&mut self, job: &mut Job, row: &[f32]) {
        match &mut job.kind {
            Kind::Score { req, first, .. } => {
                *first = Some(req.choices.iter().map(|c| log_prob(row, c[0])).collect());
            }
            Kind::Gen {
                req,
                sampler,
                out,
                fsm,
                ..
            } => {
                let mut logits = row.to_vec();
                let want_logprobs = req.logprobs;
                if let Some((f, state)) = fsm {
                    let t = std::time::Instant::now();
                    f.allowed(*state).apply(&mut logits);
                    let us = t.elapsed().as_secs_f64() * 1e6;
                    if self.mask_us.len() < MASK_SAMPLES {
                        self.mask_us.push(us as f32);
                    } else {
                        self.mask_us[self.mask_next] = us as f32;
                    }
                    self.mask_next = (self.mask_next + 1) % MASK_SAMPLES;
                    self.mask_dirty = true;
                }
                let tok = sampler.sample(&mut logits);
                sampler.observe(tok);
                // From the raw row: the model's distribution, not the sampler's.
                let mut logprob = want_logprobs.map(|k| {
                    let (logprob, top) = top_logprobs(row, tok, k);
                    TokenLogprob { logprob, top }
                });
                let is_eos = self.eos.contains(&tok);
                let mut new = vec![tok];
                let mut complete = false;
                if let Some((f, state)) = fsm {
                    self.stats.constrained_sampled_tokens += 1;
                    if is_eos && f.is_accepting(*state) {
                        self.finish_gen(job, FinishReason::Stop);
                        return;
                    }
                    let before = *state;
                    let Some(next) = f.advance(before, tok) else {
                        self.release(job, false);
                        job.fail(SchedulerError::Constraint(
                            "the constraint admits no continuation".into(),
                        ));
                        return;
                    };
                    *state = next;
                    let room = req.max_tokens.saturating_sub(out.len() + 1);
                    // Forced tokens are never sampled, so they would have no
                    // log-probability: requests that want them decode each.
                    if self.cfg.jump_forward
                        && want_logprobs.is_none()
                        && room > 0
                        && !f.is_finished(next)
                    {
                        let tk = self.engine.tokenizer();
                        if let Some((ids, s)) =
                            jump_forward(f, self.vocab.as_deref(), tk, before, tok, room)
                        {
                            self.stats.jump_forward_tokens += (ids.len() - 1) as u64;
                            new = ids;
                            *state = s;
                        }
                    }
                    complete = f.is_finished(*state);
                } else if (!req.ignore_eos && is_eos) || req.stop_token_ids.contains(&tok) {
                    self.finish_gen(job, FinishReason::Stop);
                    return;
                }
                let Kind::Gen {
                    req,
                    out,
                    detok,
                    tx,
                    ..
                } = &mut job.kind
                else {
                    unreachable!("matched above")
                };
                let mut stop = false;
                for &t in &new {
                    out.push(t);
                    job.tokens.push(t);
                    let text = detok.push(self.engine.tokenizer(), out);
                    let _ = tx.send(Event::Token {
                        id: t,
                        text,
                        logprob: logprob.take(),
                    });
                    if detok.find_stop(&req.stop_strings).is_some() {
                        stop = true;
                        break;
                    }
                }
                if stop || complete {
                    self.finish_gen(job, FinishReason::Stop);
                } else if out.len() >= req.max_tokens
                    || job.tokens.len() >= self.engine.max_context()
                {
                    self.finish_gen(job, FinishReason::Length);
                }
            }
        }
    }

    fn finish_gen(&mut self, job: &mut Job, finish: FinishReason) {
        let Kind::Gen {
            req,
            out,
            detok,
            tx,
            ..
        } = &mut job.kind
        else {
            return;
        };
        detok.finish(self.engine.tokenizer(), out);
        let mut text = detok.text().to_string();
        if let Some(cut) = detok.find_stop(&req.stop_strings) {
            text.truncate(cut);
        }
        job.usage.completion_tokens = out.len();
        let _ = tx.send(Event::Done {
            text,
            tokens: out.clone(),
            finish,
            usage: job.usage,
        });
        self.release(job, false);
        job.done = true;
        self.stats.finished += 1;
    }

    fn finish_score(&mut self, job: &mut Job, rows: &[(usize, Vec<f64>)]) {
        let Kind::Score { req, tx, first } = &mut job.kind else {
            return;
        };
        let first = first.take().unwrap_or_default();
        let scores: Vec<ChoiceScore> = req
            .choices
            .iter()
            .enumerate()
            .map(|(ci, c)| {
                let rest: f64 = rows
                    .iter()
                    .filter(|(i, _)| *i == ci)
                    .flat_map(|(_, v)| v.iter())
                    .sum();
                let logprob = first.get(ci).copied().unwrap_or(f64::NEG_INFINITY) + rest;
                ChoiceScore {
                    logprob,
                    tokens: c.len(),
                    normalized: logprob / c.len() as f64,
                }
            })
            .collect();
        if let Some(t) = tx.take() {
            let _ = t.send(Ok(scores));
        }
        self.release(job, false);
        job.done = true;
        self.stats.finished += 1;
    }

    /// Gives back everything a job holds. Finished jobs' computed tokens are
    /// cached first; preempted or cancelled jobs' private slots are freed.
    fn release(&mut self, job: &mut Job, preempted: bool) {
        let Some(mut kv) = job.kv.take() else { return };
        let finished_gen =
            !preempted && matches!(job.kind, Kind::Gen { .. }) && !job.is_cancelled();
        if self.cfg.cache_enabled && finished_gen && kv.slots.len() > kv.cached {
            // Its lock on the new node is released just below.
            self.insert_cached(job.ns, &job.tokens, &mut kv);
        }
        if kv.cached < kv.slots.len() {
            self.alloc.free(&kv.slots[kv.cached..]);
        }
        if let Some(n) = kv.node {
            let _ = self.cache.unlock(n);
        }
        if preempted && let Kind::Score { first, .. } = &mut job.kind {
            *first = None;
        }
    }

    fn audit(&self) -> PoolAudit {
        let private = self
            .running
            .iter()
            .filter_map(|j| j.kv.as_ref())
            .map(|k| k.slots.len() - k.cached)
            .sum();
        PoolAudit {
            pool_slots: self.alloc.num_slots() as usize,
            free_slots: self.alloc.num_free(),
            cached_slots: self.cache.total_size(),
            locked_slots: self.cache.protected_size(),
            private_slots: private,
            invariants: self
                .cache
                .check_invariants(self.alloc.num_slots())
                .map_err(|e| e.to_string()),
        }
    }

    fn publish(&mut self) {
        if self.mask_dirty {
            let mut v = self.mask_us.clone();
            v.sort_by(|a, b| a.total_cmp(b));
            let pct = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize] as f64;
            self.stats.mask_us_p50 = pct(0.5);
            self.stats.mask_us_p99 = pct(0.99);
            self.mask_dirty = false;
        }
        self.stats.running = self.running.len();
        self.stats.waiting = self.waiting.len();
        self.stats.free_slots = self.alloc.num_free();
        self.stats.cache = self.cache.stats();
        if let Ok(mut s) = self.shared.lock() {
            *s = self.stats.clone();
        }
    }
}

/// A stand-in that lets a job be moved out of `running` while `self` is borrowed.
fn placeholder() -> Job {
    let (tx, _) = oneshot::channel();
    Job {
        ns: Namespace::PUBLIC,
        tokens: Vec::new(),
        kind: Kind::Score {
            req: ScoreRequest {
                namespace: Namespace::PUBLIC,
                prompt: Vec::new(),
                choices: Vec::new(),
            },
            tx: Some(tx),
            first: None,
        },
        kv: None,
        arrival: 0,
        usage: Usage::default(),
        done: true,
    }
}

/// Jump-forward: when the automaton forces text after `tok`, returns the
/// tokens to append instead of `tok` alone, and the state after them.
///
/// The forced text is tokenized together with `tok`'s own text, as the
/// tokenizer would split the whole, so the model never sees a token
/// boundary its tokenizer would not produce (`tok`'s K/V is not computed
/// yet, so replacing it costs nothing).
fn jump_forward(
    fsm: &TokenFsm,
    vocab: Option<&Vocab>,
    tokenizer: &arbor_engine::Tokenizer,
    before: FsmState,
    tok: u32,
    room: usize,
) -> Option<(Vec<u32>, FsmState)> {
    let vocab = vocab?;
    let after = fsm.advance(before, tok)?;
    let forced = fsm.forced_bytes(after);
    if forced.is_empty() {
        return None;
    }
    let mut bytes = vocab.token_bytes(tok).to_vec();
    let own = bytes.len();
    bytes.extend_from_slice(&forced);
    // Only whole characters can be tokenized as text.
    let valid = match std::str::from_utf8(&bytes) {
        Ok(_) => bytes.len(),
        Err(e) => e.valid_up_to(),
    };
    if valid <= own {
        return None;
    }
    let text = std::str::from_utf8(&bytes[..valid]).ok()?;
    let mut ids = tokenizer.encode(text).ok()?;
    // Whole tokens within the output budget; the automaton checks them.
    ids.truncate(room + 1);
    if ids.len() <= 1 {
        return None;
    }
    let state = fsm.advance_tokens(before, &ids)?;
    Some((ids, state))
}
