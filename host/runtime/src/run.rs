//! One run of a program: its store, limits, outcome and events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::backend::Namespace;
use crate::context::RunShared;
use crate::error::RunError;
use crate::limits::{Limits, MemoryLimiter};
use crate::log::LogSink;
use crate::meter::TokenMeter;
use crate::runtime::{Program, Runtime};
use crate::stats::RunStats;

/// Something a run reports while it runs, for streaming to clients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum RunEvent {
    /// Newly generated text of variable `variable` of state `state`.
    Text {
        /// Host-assigned id of the state (unique within the run).
        state: u64,
        /// The variable being generated.
        variable: String,
        /// Text added since the previous event.
        delta: String,
    },
    /// A `generate` or `select` finished and captured `value`.
    Captured {
        /// Host-assigned id of the state.
        state: u64,
        /// The variable.
        variable: String,
        /// Its final value.
        value: String,
    },
}

/// Lets the embedder cancel a run (client disconnected, shutdown).
#[derive(Clone, Debug)]
pub struct CancelHandle(watch::Sender<bool>);

impl Default for CancelHandle {
    fn default() -> Self {
        Self::new()
    }
}

impl CancelHandle {
    /// A handle that has not been cancelled.
    pub fn new() -> Self {
        CancelHandle(watch::Sender::new(false))
    }

    /// Cancels the runs given this handle; they end with
    /// [`RunError::Cancelled`] within about one epoch tick.
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    /// Whether [`CancelHandle::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once [`CancelHandle::cancel`] is called (at once if it was),
    /// for an embedder that also waits on something else for the run.
    pub async fn cancelled(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// How to run a program.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The tenant the run's requests are accounted to and whose cache they
    /// share; by default tenant 0, the embedder's own.
    pub namespace: Namespace,
    /// The run's limits.
    pub limits: Limits,
    /// Receives [`RunEvent`]s; `None` when nobody streams.
    pub events: Option<UnboundedSender<RunEvent>>,
    /// Cancels the run from outside.
    pub cancel: Option<CancelHandle>,
    /// Reserves and settles the tokens of each model call (a tenant's
    /// quota); `None`: calls are not metered.
    pub meter: Option<Arc<dyn TokenMeter>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            namespace: Namespace::tenant(0),
            limits: Limits::default(),
            events: None,
            cancel: None,
            meter: None,
        }
    }
}

/// What a run produced.
#[derive(Clone, Debug, Serialize)]
pub struct RunOutcome {
    /// The program's output, or why there is none.
    pub output: Result<String, RunError>,
    /// Captured stdout and stderr.
    pub log: String,
    /// Whether the log was cut at [`Limits::max_log_bytes`].
    pub log_truncated: bool,
    /// Statistics of the run.
    pub stats: RunStats,
}

/// The data of a run's store.
pub struct RunCtx {
    pub(crate) table: ResourceTable,
    wasi: WasiCtx,
    limiter: MemoryLimiter,
    pub(crate) run: Arc<RunShared>,
}

impl WasiView for RunCtx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Why the epoch callback stopped the guest.
#[derive(Debug, thiserror::Error)]
enum Interrupt {
    #[error("deadline exceeded")]
    Deadline,
    #[error("run cancelled")]
    Cancelled,
}

/// Where a run failed, before classifying the error.
enum Failure {
    Instantiate(wasmtime::Error),
    Call(wasmtime::Error),
    Deadline,
    Cancelled,
}

impl Runtime {
    /// Runs `program` on `input`. Never panics on guest behaviour; every
    /// failure is in [`RunOutcome::output`].
    pub async fn run(&self, program: &Program, input: &str, options: RunOptions) -> RunOutcome {
        let started = Instant::now();
        let limits = options.limits;
        let log = LogSink::new(limits.max_log_bytes);
        let mut stats = RunStats::default();
        if limits.max_memory_bytes > self.config.max_memory_bytes {
            return RunOutcome {
                output: Err(RunError::Start(format!(
                    "memory limit {} exceeds the runtime's maximum {}",
                    limits.max_memory_bytes, self.config.max_memory_bytes
                ))),
                log: String::new(),
                log_truncated: false,
                stats,
            };
        }
        let shared = Arc::new(RunShared::new(
            self.lm.clone(),
            options.namespace,
            limits.clone(),
            options.events,
            options.meter,
            started,
        ));
        let wasi = WasiCtx::builder()
            .stdout(log.clone())
            .stderr(log.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let ctx = RunCtx {
            table: ResourceTable::new(),
            wasi,
            limiter: MemoryLimiter::new(limits.max_memory_bytes),
            run: shared.clone(),
        };
        let mut store = Store::new(&self.engine, ctx);
        store.limiter(|c| &mut c.limiter);
        // Far enough to mean "none" without overflowing `Instant`.
        const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
        let deadline = started + limits.deadline.min(NEVER);
        let cancel = options.cancel.unwrap_or_default();
        let epoch_cancel = cancel.clone();
        // Every store needs a deadline once epochs are on; checking the
        // clock each tick turns the tick into a wall-clock deadline, and
        // yielding keeps a spinning guest from holding an executor thread.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                return Err(wasmtime::Error::new(Interrupt::Deadline));
            }
            if epoch_cancel.is_cancelled() {
                return Err(wasmtime::Error::new(Interrupt::Cancelled));
            }
            Ok(UpdateDeadline::Yield(1))
        });

        let mut instantiate_time = Duration::ZERO;
        let result = {
            let work = async {
                let instance = program
                    .pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(Failure::Instantiate)?;
                instantiate_time = started.elapsed();
                instance
                    .call_run(&mut store, input)
                    .await
                    .map_err(Failure::Call)
            };
            // The epoch callback stops a guest that computes; these stop
            // one that waits on the model.
            tokio::select! {
                r = tokio::time::timeout_at(deadline.into(), work) => r.unwrap_or(Err(Failure::Deadline)),
                () = cancel.cancelled() => Err(Failure::Cancelled),
            }
        };
        // Read before the workers go: a deadline that found a model call
        // waiting for the tenant's quota says so.
        let quota_wait = shared.is_waiting_for_quota();
        shared.abort_workers();

        let output = match result {
            Ok(Ok(out)) if out.len() > limits.max_output_bytes => Err(RunError::OutputTooLarge {
                size: out.len(),
                limit: limits.max_output_bytes,
            }),
            Ok(Ok(out)) => Ok(out),
            Ok(Err(msg)) => Err(RunError::Program(truncate(msg, limits.max_output_bytes))),
            Err(f) => Err(match classify(f, &store, &limits) {
                RunError::Deadline(d) if quota_wait => RunError::DeadlineWaitingForQuota(d),
                e => e,
            }),
        };
        drop(store);
        shared.counters.fill(&mut stats);
        stats.instantiate_time = instantiate_time;
        stats.first_host_call = shared.first_call();
        stats.wall_time = started.elapsed();
        let (log, log_truncated, log_bytes) = log.contents();
        stats.log_bytes = log_bytes;
        RunOutcome {
            output,
            log,
            log_truncated,
            stats,
        }
    }
}

fn classify(f: Failure, store: &Store<RunCtx>, limits: &Limits) -> RunError {
    let (e, instantiating) = match f {
        Failure::Deadline => return RunError::Deadline(limits.deadline),
        Failure::Cancelled => return RunError::Cancelled,
        Failure::Instantiate(e) => (e, true),
        Failure::Call(e) => (e, false),
    };
    if let Some(i) = e.downcast_ref::<Interrupt>() {
        return match i {
            Interrupt::Deadline => RunError::Deadline(limits.deadline),
            Interrupt::Cancelled => RunError::Cancelled,
        };
    }
    if let Some(hit) = &store.data().limiter.hit {
        return RunError::MemoryLimit(hit.clone());
    }
    if instantiating {
        // Most often every instance slot of the pool is taken.
        return RunError::Start(format!("{e:#}"));
    }
    if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return RunError::Trap(format!("the program called exit({})", exit.0));
    }
    let message = format!("{e:?}");
    if message.contains("unknown handle index") {
        return RunError::DroppedState(format!("{e:#}"));
    }
    // wasmtime puts the backtrace first and the trap last; people read the
    // first line, so it says what happened and the backtrace follows.
    match e.chain().find_map(|c| c.downcast_ref::<wasmtime::Trap>()) {
        Some(trap) => RunError::Trap(format!("{}\n\n{message}", trap_cause(*trap))),
        None => RunError::Trap(message),
    }
}

/// What a trap most likely means in a guest program.
fn trap_cause(trap: wasmtime::Trap) -> String {
    use wasmtime::Trap as T;
    let hint = match trap {
        // Rust, C and the other guest languages keep their call stack in
        // linear memory: running off its end is an out-of-bounds access.
        T::MemoryOutOfBounds => {
            " (most often the program's stack overflowed: unbounded or too deep recursion; \
             else an out-of-bounds pointer)"
        }
        T::StackOverflow => " (the program recursed too deeply)",
        T::UnreachableCodeReached => {
            " (a panic or abort in the program; its message, if any, is in the log)"
        }
        T::Interrupt => " (the run was interrupted)",
        _ => "",
    };
    format!("{trap}{hint}")
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}
