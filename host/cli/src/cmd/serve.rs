//! `arbor serve`: the multi-tenant HTTP server.

use anyhow::{Context, Result};
use arbor_engine::Device;
use arbor_server::{Quotas, Server, ServerConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Serve a model over HTTP: OpenAI-compatible endpoints and program runs.
#[derive(clap::Args)]
pub struct Args {
    /// Model directory made by `arbor export`.
    #[arg(long)]
    model: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Also serve every tenant's metrics, without a key, on this address
    /// (for Prometheus; keep it private). Without it, `/metrics` on
    /// `--listen` needs a tenant key and shows that tenant's usage only.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Directory of the database, programs and compiled code.
    #[arg(long, default_value = "arbor-data")]
    data: PathBuf,
    /// Model id clients use (default: the model directory's name).
    #[arg(long)]
    model_name: Option<String>,
    /// KV pool token slots (0: four times the model's context on the CPU;
    /// on CUDA, --kv-fraction of the device memory free after the model loads).
    #[arg(long, default_value_t = 0)]
    kv_slots: usize,
    /// With --kv-slots 0 on CUDA, the share of free device memory the KV pool takes.
    #[arg(long, default_value_t = arbor_engine::engine::DEFAULT_KV_FRACTION)]
    kv_fraction: f32,
    /// ONNX Runtime threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Run on this CUDA device instead of the CPU.
    #[arg(long)]
    cuda: Option<i32>,
    /// Requests of all tenants inside the scheduler at once.
    #[arg(long, default_value_t = 64)]
    capacity: usize,
    /// Requests of one tenant inside the scheduler at once.
    #[arg(long, default_value_t = 16)]
    tenant_concurrency: usize,
    /// Requests of one tenant waiting for a place; more get 429.
    #[arg(long, default_value_t = 256)]
    tenant_queue: usize,
    /// Tokens (prompt + completion) per tenant per minute.
    #[arg(long, default_value_t = 1_000_000)]
    tokens_per_minute: u64,
    /// Largest program upload in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    max_program_bytes: usize,
    /// Deadline of one program run, in seconds.
    #[arg(long, default_value_t = 60)]
    run_deadline_s: u64,
}

pub fn run(a: Args) -> Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .try_init();
    let mut cfg = ServerConfig::new(a.model, a.data);
    cfg.listen = a.listen;
    cfg.metrics_listen = a.metrics_listen;
    cfg.model_name = a.model_name;
    cfg.kv_slots = a.kv_slots;
    cfg.kv_fraction = a.kv_fraction;
    cfg.threads = a.threads;
    cfg.device = Device::cuda_or_cpu(a.cuda);
    cfg.capacity = a.capacity;
    cfg.quotas = Quotas {
        max_concurrent: a.tenant_concurrency,
        max_queued: a.tenant_queue,
        tokens_per_minute: a.tokens_per_minute,
        max_program_bytes: a.max_program_bytes,
        run_deadline: Duration::from_secs(a.run_deadline_s),
        ..Quotas::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    rt.block_on(async {
        let mut server = Server::start(cfg).await?;
        // Tests and scripts read the bound address (port 0 picks one).
        println!("listening on http://{}", server.addr());
        if let Some(m) = server.metrics_addr() {
            println!("metrics on http://{m}/metrics");
        }
        tokio::select! {
            r = server.wait() => return r,
            _ = tokio::signal::ctrl_c() => {}
            _ = terminated() => {}
        }
        tracing::info!("shutting down");
        server.shutdown().await
    })
}

/// SIGTERM (what service managers send) also shuts down gracefully.
async fn terminated() {
    #[cfg(unix)]
    if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        s.recv().await;
        return;
    }
    std::future::pending::<()>().await
}
