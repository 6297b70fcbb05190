//! Arbor's multi-tenant HTTP server.
//!
//! One process serves one model to many tenants: OpenAI-compatible
//! completions and chat completions, and uploaded WebAssembly programs run
//! in the sandboxed runtime. Each tenant authenticates with its own API key,
//! owns its own cache namespace, programs and runs, and is held to quotas
//! and a fair share of the scheduler (see [`quota`]). State lives in SQLite
//! under the data directory, so a restart keeps tenants, programs and runs,
//! and re-executes the runs a crash interrupted.

pub mod auth;
mod body;
mod completions;
pub mod db;
pub mod error;
mod logprobs;
pub mod metrics;
mod openai;
mod programs;
pub mod quota;
mod routes;
mod runs;
mod sse;
pub mod state;
pub mod tenants;

pub use quota::Quotas;

use anyhow::{Context, Result};
use arbor_runtime::{Runtime, RuntimeConfig};
use arbor_scheduler::{Device, ModelOptions, Scheduler, SchedulerConfig};
use state::AppState;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;

/// Everything `arbor serve` can set.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Model directory made by `arbor export`.
    pub model: PathBuf,
    /// Name clients use for the model; defaults to the directory's name.
    pub model_name: Option<String>,
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where to serve every tenant's metrics without a key (Prometheus'
    /// scrape target; keep it private). `None`: no such listener, and
    /// `/metrics` on `listen` shows each tenant only its own usage.
    pub metrics_listen: Option<SocketAddr>,
    /// Directory of the database, programs and compiled code.
    pub data: PathBuf,
    /// Token slots of the KV pool; 0 picks the model's context length × 4
    /// on the CPU, `kv_fraction` of free device memory on CUDA.
    pub kv_slots: usize,
    /// See `kv_slots`.
    pub kv_fraction: f32,
    /// ONNX Runtime threads (0: one per core).
    pub threads: usize,
    pub device: Device,
    pub scheduler: SchedulerConfig,
    pub quotas: Quotas,
    /// Requests of all tenants inside the scheduler at once.
    pub capacity: usize,
    /// Largest JSON request body.
    pub max_body_bytes: usize,
    /// How long a client may take to send its request body.
    pub body_timeout: Duration,
}

impl ServerConfig {
    /// Defaults for a model directory and a data directory.
    pub fn new(model: PathBuf, data: PathBuf) -> Self {
        ServerConfig {
            model,
            model_name: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: None,
            data,
            kv_slots: 0,
            kv_fraction: arbor_scheduler::DEFAULT_KV_FRACTION,
            threads: 0,
            device: Device::Cpu,
            scheduler: SchedulerConfig::default(),
            quotas: Quotas::default(),
            capacity: 64,
            max_body_bytes: 1 << 20,
            body_timeout: Duration::from_secs(10),
        }
    }
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    stop: Option<watch::Sender<bool>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    state: Arc<AppState>,
}

impl Server {
    /// Opens the model and the database, then listens. Runs left `running`
    /// by a previous process are re-queued (or failed, after their last
    /// attempt) before anything is served.
    pub async fn start(cfg: ServerConfig) -> Result<Server> {
        let db = db::Db::open(&cfg.data)?;
        let model = cfg.model.clone();
        let opts = ModelOptions {
            kv_slots: cfg.kv_slots,
            kv_fraction: cfg.kv_fraction,
            threads: cfg.threads,
            device: cfg.device,
        };
        let sched_cfg = cfg.scheduler.clone();
        let scheduler =
            tokio::task::spawn_blocking(move || Scheduler::open(&model, &opts, sched_cfg))
                .await
                .context("opening the model")??;
        let model_name = cfg.model_name.clone().unwrap_or_else(|| {
            let p = std::fs::canonicalize(&cfg.model).unwrap_or(cfg.model.clone());
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "arbor".into())
        });
        let programs_dir = cfg.data.join("programs");
        std::fs::create_dir_all(&programs_dir)
            .with_context(|| format!("creating {}", programs_dir.display()))?;
        let runtime = Runtime::new(
            RuntimeConfig {
                cache_dir: Some(cfg.data.join("compiled")),
                max_concurrent_runs: cfg.capacity as u32,
                max_memory_bytes: cfg.quotas.run_memory_bytes,
                max_component_bytes: cfg.quotas.max_program_bytes,
                ..RuntimeConfig::default()
            },
            Arc::new(arbor_backend::SchedulerBackend::new(scheduler.clone())),
        )
        .map(Arc::new)
        .map_err(|e| {
            tracing::error!(error = %e, "the program runtime could not start; program endpoints will answer 503");
            e.to_string()
        });
        let state = Arc::new(AppState {
            db,
            gate: quota::FairGate::new(
                cfg.capacity,
                cfg.quotas.max_concurrent,
                cfg.quotas.max_queued,
            ),
            token_quota: Arc::new(quota::TokenQuota::new(cfg.quotas.tokens_per_minute)),
            quotas: cfg.quotas.clone(),
            metrics: Default::default(),
            model_name,
            programs_dir,
            live_runs: Default::default(),
            ready: true.into(),
            body_timeout: cfg.body_timeout,
            runtime,
            scheduler,
        });
        let (requeued, failed) = runs::recover(&state)?;
        if requeued + failed > 0 {
            tracing::warn!(
                requeued,
                failed,
                "runs interrupted by the previous process: re-queued, or failed after {} attempts",
                runs::MAX_ATTEMPTS
            );
        }
        let sampler = Arc::downgrade(&state);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(s) = sampler.upgrade() else { break };
                s.metrics
                    .sample_throughput(s.scheduler.stats().decode_tokens);
            }
        });
        let app = routes::router(state.clone(), cfg.max_body_bytes);
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("listening on {}", cfg.listen))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let until_stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let metrics_addr = match cfg.metrics_listen {
            None => None,
            Some(at) => {
                let l = tokio::net::TcpListener::bind(at)
                    .await
                    .with_context(|| format!("listening for metrics on {at}"))?;
                let bound = l.local_addr()?;
                let app = routes::operator_router(state.clone());
                let stopped = until_stopped(stopped.clone());
                tokio::spawn(async move {
                    if let Err(e) = axum::serve(l, app).with_graceful_shutdown(stopped).await {
                        tracing::error!(error = %e, "the metrics listener failed");
                    }
                });
                tracing::info!(addr = %bound, "serving every tenant's metrics");
                Some(bound)
            }
        };
        let stopped = until_stopped(stopped);
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
        });
        tracing::info!(%addr, model = %state.model_name, "serving");
        Ok(Server {
            addr,
            metrics_addr,
            stop: Some(stop),
            task,
            state,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The operator's metrics address, when `metrics_listen` was set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Stops accepting, stops the runs in flight and leaves them for the
    /// next start (their lost attempt not counted), waits for open
    /// connections to finish, then stops the scheduler between two steps.
    pub async fn shutdown(mut self) -> Result<()> {
        self.state.ready.store(false, Ordering::Relaxed);
        self.stop_runs();
        if let Some(s) = self.stop.take() {
            let _ = s.send(true);
        }
        (&mut self.task)
            .await
            .context("server task")?
            .context("serving")?;
        // Each run leaves its record from its own task: let those land, and
        // stop any a request started meanwhile.
        let t0 = std::time::Instant::now();
        while self.stop_runs() > 0 && t0.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Between two steps, never mid-pass, and the engine dropped here:
        // a process that exits during a forward pass tears ONNX Runtime
        // down under it. Handles still held elsewhere get `Cancelled`.
        let scheduler = self.state.scheduler.clone();
        tokio::task::spawn_blocking(move || scheduler.shutdown().map(drop))
            .await
            .context("stopping the scheduler")?
            .ok();
        Ok(())
    }

    /// Cancels every live run, to be left for the next start; how many
    /// are still live.
    fn stop_runs(&self) -> usize {
        let live = self
            .state
            .live_runs
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for run in live.values() {
            run.stopping.store(true, Ordering::Relaxed);
            run.cancel.cancel();
        }
        live.len()
    }

    /// Waits until the server stops on its own (it does not, short of an
    /// I/O failure): for `arbor serve`, which races it against Ctrl-C.
    pub async fn wait(&mut self) -> Result<()> {
        (&mut self.task)
            .await
            .context("server task")?
            .context("serving")?;
        Ok(())
    }
}
