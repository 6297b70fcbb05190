//! Executing runs: each in its own task, from its database record to the
//! record of its end, and the runs a restart finds interrupted.
//!
//! A program's only effects are its model calls, so a run is re-executed
//! from its input after a crash: at start-up every run still `running` is
//! re-queued at its tenant's place in the fair gate. Each start counts an
//! attempt; a run the server stopped during [`MAX_ATTEMPTS`] attempts is
//! failed with that reason rather than retried forever. A graceful shutdown
//! cancels the runs in flight and leaves them for the next start, their
//! lost attempt not counted.
//!
//! Invariant: a run is in [`AppState::live_runs`] exactly while a task of
//! this process owns it, and its record stays `running` until that task
//! records its end (or a graceful shutdown leaves it for the next start).

use crate::auth::Tenant;
use crate::db::Interrupted;
use crate::error::ApiError;
use crate::programs;
use crate::quota::{Permit, Refused, RunMeter};
use crate::state::{AppState, LiveRun, RunEnd};
use arbor_runtime::{Limits, RunError, RunEvent, RunOptions, RunOutcome, Runtime};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use tokio::sync::mpsc;

/// Attempts after which an interrupted run is failed, not re-queued.
pub const MAX_ATTEMPTS: i64 = 2;

/// A recorded run to execute.
pub struct Job {
    pub tenant: Tenant,
    pub run_id: String,
    pub program_id: String,
    pub input: String,
}

/// Executes `job` in its own task and returns its [`LiveRun`]. With a
/// `permit` (a new run, admitted) the run starts at once, on the attempt
/// its insertion counted; without one (a re-queued run) it first waits
/// for a place in its tenant's queue, then counts a new attempt.
pub fn launch(
    state: &Arc<AppState>,
    rt: Arc<Runtime>,
    job: Job,
    permit: Option<Permit>,
    events: Option<mpsc::UnboundedSender<RunEvent>>,
) -> Arc<LiveRun> {
    let live = Arc::new(LiveRun::default());
    state
        .live_runs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(job.run_id.clone(), live.clone());
    // A re-queued run takes its place in the queue now, so that runs
    // recovered in order queue in order, ahead of anything served later.
    let place = match permit {
        Some(p) => Place::Admitted(p),
        None => Place::Requeued(Box::pin(state.gate.acquire_unbounded(job.tenant.id))),
    };
    let (state, task_live) = (state.clone(), live.clone());
    tokio::spawn(async move {
        let end = execute(&state, rt, &job, place, events, &task_live).await;
        state
            .live_runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&job.run_id);
        task_live.end.send_replace(Some(end));
    });
    live
}

/// A run's place at the gate.
enum Place {
    /// Admitted by its request.
    Admitted(Permit),
    /// Re-queued by a restart: waiting for its turn.
    Requeued(BoxFuture<'static, Result<Permit, Refused>>),
}

async fn execute(
    state: &Arc<AppState>,
    rt: Arc<Runtime>,
    job: &Job,
    place: Place,
    events: Option<mpsc::UnboundedSender<RunEvent>>,
    live: &LiveRun,
) -> RunEnd {
    let permit = match place {
        Place::Admitted(p) => p,
        Place::Requeued(turn) => {
            let place = tokio::select! {
                p = turn => p.ok(),
                () = live.cancel.cancelled() => None,
            };
            let Some(p) = place else {
                return stopped_or_cancelled(state, job, live, false);
            };
            if let Err(e) = state.db.start_attempt(&job.run_id) {
                tracing::error!(run = %job.run_id, error = %e, "could not count a run's attempt");
            }
            p
        }
    };
    let program = match programs::stored(state, rt.clone(), &job.program_id).await {
        Ok(p) => p,
        Err(e) => return fail(state, job, &e),
    };
    state.metrics.runs_started.fetch_add(1, Relaxed);
    let q = &state.quotas;
    let options = RunOptions {
        namespace: arbor_runtime::Namespace::tenant(job.tenant.id as u64),
        limits: Limits {
            max_memory_bytes: q.run_memory_bytes,
            deadline: q.run_deadline,
            max_generated_tokens: q.run_max_tokens,
            ..Limits::default()
        },
        events,
        cancel: Some(live.cancel.clone()),
        meter: Some(Arc::new(RunMeter::new(
            state.token_quota.clone(),
            job.tenant.id,
        ))),
    };
    let outcome = rt.run(&program, &job.input, options).await;
    drop(permit);
    if matches!(outcome.output, Err(RunError::Cancelled)) && live.stopping.load(Relaxed) {
        return stopped_or_cancelled(state, job, live, true);
    }
    record(state, job, &outcome)
}

/// A run cancelled before or while it ran: left for the next start when a
/// graceful shutdown did it (`started`: undo the attempt it counted),
/// otherwise recorded as cancelled.
fn stopped_or_cancelled(state: &AppState, job: &Job, live: &LiveRun, started: bool) -> RunEnd {
    if live.stopping.load(Relaxed) {
        if started && let Err(e) = state.db.requeue_run(&job.run_id) {
            tracing::error!(run = %job.run_id, error = %e, "could not leave a run for the next start");
        }
        tracing::info!(run = %job.run_id, "run left for the next start");
        return RunEnd::LeftForRestart;
    }
    let outcome = RunOutcome {
        output: Err(RunError::Cancelled),
        log: String::new(),
        log_truncated: false,
        stats: Default::default(),
    };
    record(state, job, &outcome)
}

fn fail(state: &AppState, job: &Job, e: &ApiError) -> RunEnd {
    let outcome = RunOutcome {
        output: Err(RunError::Start(e.message.clone())),
        log: String::new(),
        log_truncated: false,
        stats: Default::default(),
    };
    record(state, job, &outcome)
}

/// Writes the outcome to the database; the run's end with the row as stored.
fn record(state: &AppState, job: &Job, o: &RunOutcome) -> RunEnd {
    let (tenant, run_id) = (&job.tenant, job.run_id.as_str());
    let (status, output, error) = match &o.output {
        Ok(out) => ("succeeded", Some(out.as_str()), None),
        Err(RunError::Cancelled) => ("cancelled", None, Some(RunError::Cancelled.to_string())),
        Err(e) => ("failed", None, Some(e.to_string())),
    };
    let stats = serde_json::to_value(&o.stats).ok();
    state.metrics.tenant(&tenant.name, |u| {
        u.prompt_tokens += o.stats.prompt_tokens;
        u.completion_tokens += o.stats.generated_tokens;
    });
    // The calls settled their tokens as they went; what a whole run takes
    // sets what the next one must find room for to be admitted (a run that
    // failed, perhaps waiting for room, says little about that).
    if o.output.is_ok() {
        state
            .token_quota
            .observe_run(tenant.id, o.stats.prompt_tokens + o.stats.generated_tokens);
    }
    if let Err(e) = state.db.finish_run(
        run_id,
        status,
        output,
        error.as_deref(),
        Some(&o.log),
        stats.as_ref(),
    ) {
        tracing::error!(run = run_id, error = %e, "could not record a finished run");
    }
    tracing::info!(tenant = %tenant.name, run = run_id, status, "run finished");
    match state.db.get_run(tenant.id, run_id) {
        Ok(Some(row)) => RunEnd::Recorded(Box::new(row)),
        Ok(None) => RunEnd::Unreadable("the run's record is gone".into()),
        Err(e) => RunEnd::Unreadable(e.to_string()),
    }
}

/// At start-up, before anything is served: re-queues the runs the previous
/// process left `running`, or fails those that ran out of attempts (or
/// whose tenant was revoked meanwhile). Returns (re-queued, failed).
pub fn recover(state: &Arc<AppState>) -> anyhow::Result<(usize, usize)> {
    let interrupted = state.db.interrupted_runs()?;
    if interrupted.is_empty() {
        return Ok((0, 0));
    }
    let Ok(rt) = state.runtime.clone() else {
        tracing::warn!(
            runs = interrupted.len(),
            "the program runtime is unavailable: interrupted runs stay queued for the next start"
        );
        return Ok((0, 0));
    };
    let (mut requeued, mut failed) = (0, 0);
    for r in interrupted {
        let reason = if r.tenant_revoked {
            Some("interrupted: the server stopped during this run, and the tenant's key was revoked before it restarted".to_string())
        } else if r.attempts >= MAX_ATTEMPTS {
            Some(format!(
                "interrupted: the server stopped during each of this run's {} attempts; it is not retried again",
                r.attempts
            ))
        } else {
            None
        };
        match reason {
            Some(reason) => {
                state
                    .db
                    .finish_run(&r.id, "failed", None, Some(&reason), None, None)?;
                failed += 1;
            }
            None => {
                launch(state, rt.clone(), job(r), None, None);
                requeued += 1;
            }
        }
    }
    Ok((requeued, failed))
}

fn job(r: Interrupted) -> Job {
    Job {
        tenant: Tenant {
            id: r.tenant_id,
            name: r.tenant_name,
        },
        run_id: r.id,
        program_id: r.program_id,
        input: r.input,
    }
}
