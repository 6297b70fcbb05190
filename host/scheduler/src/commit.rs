//! Running a planned step and committing its output.
//!
//! Invariant: after commit, every job's KV covers exactly its computed
//! tokens; a job whose prompt is complete has handed it to the cache (when
//! the cache is on) before it decodes; every logit row went to exactly one
//! decoder or `select`; finished jobs have released everything and sent
//! their last event.

use crate::core::{Core, fail_job, finish_gen};
use crate::decoder::{DecodeCtx, Next};
use crate::engine::Step;
use crate::job::{Job, Work};
use crate::plan::{Plan, Row, RowKind};
use arbor_engine::{BatchEntry, ForwardOutput, Logits};
use arbor_types::RequestError;

impl Core {
    /// Runs the plan on the engine and commits the result.
    pub(crate) fn execute(&mut self, plan: Plan) {
        let all: Vec<usize> = (0..plan.rows.len()).collect();
        self.run_part(&plan, &all);
        self.release_finished_scans();
    }

    /// Runs rows `part` of the plan as one forward pass. When it fails, the
    /// rows are retried in halves, so a request that makes the engine fail
    /// fails alone and everyone else's rows still run (the slot copies are
    /// repeated with each half: they only write positions no row writes).
    fn run_part(&mut self, plan: &Plan, part: &[usize]) {
        // Rows of a request that failed in an earlier half are gone.
        let part: Vec<usize> = part
            .iter()
            .copied()
            .filter(|&i| !self.running[plan.rows[i].job].done)
            .collect();
        if part.is_empty() {
            return;
        }
        let result = {
            let entries: Vec<BatchEntry<'_>> = part
                .iter()
                .map(|&i| entry(&self.running, &plan.rows[i]))
                .collect();
            let t = std::time::Instant::now();
            let r = self.engine.forward(&Step {
                copies: &plan.copies,
                entries: &entries,
            });
            self.stats.engine_seconds += t.elapsed().as_secs_f64();
            r
        };
        match result {
            Ok(out) => {
                self.step += 1;
                self.stats.steps += 1;
                self.commit(plan, &part, &out);
            }
            Err(_) if part.len() > 1 => {
                let (a, b) = part.split_at(part.len() / 2);
                self.run_part(plan, a);
                self.run_part(plan, b);
            }
            Err(e) => {
                let msg = format!("{e:#}");
                tracing::error!("forward pass failed for one request: {msg}");
                self.stats.engine_failures += 1;
                let j = &mut self.running[plan.rows[part[0]].job];
                fail_job(&mut self.kv, j, RequestError::Engine(msg));
            }
        }
    }

    fn commit(&mut self, plan: &Plan, part: &[usize], out: &ForwardOutput) {
        let mut scored = self.score_scans(plan, part, out);
        for (ei, r) in part.iter().map(|&i| &plan.rows[i]).enumerate() {
            if r.decode {
                self.stats.decode_tokens += r.n as u64;
            } else {
                self.stats.prefill_tokens += r.n as u64;
            }
            match r.kind {
                RowKind::Own => self.commit_own(r, out, ei),
                RowKind::Scan { scan } => {
                    let lp = match scored.as_mut() {
                        Ok(s) => Ok(s.drain(..r.n.min(s.len())).sum::<f64>()),
                        Err(e) => Err(&*e),
                    };
                    self.commit_scan(r, scan, lp)
                }
            }
        }
    }

    /// The log-probability of every choice token the step's scan rows
    /// scored, in row order, from one call for the whole step (one run on
    /// the device when the rows stayed there). When it fails, every
    /// `select` with a row in the step fails with the error; the other rows
    /// are committed.
    fn score_scans(
        &mut self,
        plan: &Plan,
        part: &[usize],
        out: &ForwardOutput,
    ) -> Result<Vec<f64>, RequestError> {
        let mut queries = Vec::new();
        for (ei, r) in part.iter().map(|&i| &plan.rows[i]).enumerate() {
            let RowKind::Scan { scan } = r.kind else {
                continue;
            };
            let Work::Score(s) = &self.running[r.job].work else {
                continue;
            };
            let sc = &s.scans[scan];
            let c = &s.req.choices[sc.choice];
            queries.extend((0..r.n).map(|k| (ei, k, c[sc.done + k + 1])));
        }
        if queries.is_empty() {
            return Ok(Vec::new());
        }
        out.log_probs(&queries)
            .map_err(|e| RequestError::Engine(format!("scoring choices: {e:#}")))
    }

    /// Releases the forks of choices whose every token is scored (only
    /// after the whole step: its rows refer to scans by index).
    fn release_finished_scans(&mut self) {
        for j in &mut self.running {
            if let Work::Score(s) = &mut j.work {
                let mut k = 0;
                while k < s.scans.len() {
                    if s.scans[k].done == s.scans[k].feed(&s.req).len() {
                        let scan = s.scans.swap_remove(k);
                        self.kv.release(scan.kv, &[], false);
                    } else {
                        k += 1;
                    }
                }
            }
        }
    }

    fn commit_own(&mut self, r: &Row, out: &ForwardOutput, ei: usize) {
        let job = &mut self.running[r.job];
        if job.done {
            return;
        }
        if job.pending() == 0 && !job.prefilled {
            job.prefilled = true;
            let kv = job.kv.as_mut().expect("planned rows have KV");
            self.kv.commit_prefix(kv, &job.tokens);
        }
        if let (Work::Score(s), Logits::ScoreLast) = (&mut job.work, r.logits) {
            // The prompt's last row scores every choice's first token, where
            // the row is (on the device for the paged CUDA graph).
            let queries: Vec<(usize, usize, u32)> =
                s.req.choices.iter().map(|c| (ei, 0, c[0])).collect();
            match out.log_probs(&queries) {
                Ok(first) => s.on_prompt(first),
                Err(e) => {
                    self.stats.engine_failures += 1;
                    let e = RequestError::Engine(format!("scoring choices: {e:#}"));
                    fail_job(&mut self.kv, job, e);
                }
            }
            return;
        }
        let (row, token, cand) = (out.last(ei), out.token(ei), out.candidates(ei));
        if row.is_none() && token.is_none() && cand.is_none() {
            return;
        }
        let next = match &mut job.work {
            // Its last row is planned as `ScoreLast` and taken above.
            Work::Score(_) => Next::Continue,
            Work::Gen(d) => {
                let ctx = DecodeCtx {
                    tokenizer: &self.tokenizer,
                    vocab: self.vocab.as_deref(),
                    eos: &self.eos,
                    jump_forward: self.cfg.jump_forward,
                    max_context: self.engine.max_context(),
                };
                let decoded = match (token, row, cand) {
                    (Some(t), _, _) => d.on_token(&ctx, t, job.tokens.len()),
                    (None, Some(row), _) => d.on_logits(&ctx, row, job.tokens.len()),
                    (None, None, Some(c)) => {
                        self.stats.device_draws += 1;
                        let mut fetched = false;
                        let r = d.on_candidates(
                            &ctx,
                            &c,
                            || {
                                fetched = true;
                                out.full_row(ei)
                            },
                            job.tokens.len(),
                        );
                        self.stats.tail_rows_fetched += fetched as u64;
                        r
                    }
                    (None, None, None) => unreachable!("checked above"),
                };
                if let Some(us) = decoded.mask_us {
                    self.masks.record(us);
                    self.stats.constrained_sampled_tokens += 1;
                }
                self.stats.jump_forward_tokens += decoded.jumped as u64;
                job.tokens.extend_from_slice(&decoded.appended);
                decoded.next
            }
        };
        match next {
            Next::Continue => {}
            Next::Finish(f) => finish_gen(&mut self.kv, &self.tokenizer, &mut self.stats, job, f),
            Next::Fail(e) => fail_job(&mut self.kv, job, e),
        }
    }

    /// Adds a scan row's scored log-probability to its choice, or fails
    /// its `select` when scoring failed.
    fn commit_scan(&mut self, r: &Row, scan: usize, lp: Result<f64, &RequestError>) {
        let job = &mut self.running[r.job];
        if job.done {
            return;
        }
        let lp = match lp {
            Ok(lp) => lp,
            Err(e) => {
                self.stats.engine_failures += 1;
                return fail_job(&mut self.kv, job, e.clone());
            }
        };
        let Work::Score(s) = &mut job.work else {
            return;
        };
        let sc = &mut s.scans[scan];
        s.rest[sc.choice] += lp;
        sc.done += r.n;
    }
}

/// The batch entry of a planned row.
fn entry<'a>(running: &'a [Job], r: &'a Row) -> BatchEntry<'a> {
    let job = &running[r.job];
    match r.kind {
        RowKind::Own => {
            let kv = job.kv.as_ref().expect("planned rows have KV");
            BatchEntry {
                tokens: &job.tokens[r.start..r.start + r.n],
                history: &kv.slots()[..r.start],
                new_slots: &r.slots,
                logits: r.logits,
            }
        }
        RowKind::Scan { scan } => {
            let Work::Score(s) = &job.work else {
                unreachable!("scan rows belong to select jobs")
            };
            let sc = &s.scans[scan];
            let from = r.start - s.req.prompt.len();
            BatchEntry {
                tokens: &sc.feed(&s.req)[from..from + r.n],
                history: &sc.kv.slots()[..r.start],
                new_slots: &r.slots,
                logits: r.logits,
            }
        }
    }
}
