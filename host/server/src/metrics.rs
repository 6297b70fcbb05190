//! Prometheus text exposition, written by hand: a few counters and gauges
//! do not justify a metrics framework, and the format is simple.

use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What one tenant used since the server started.
#[derive(Clone, Debug, Default)]
pub struct TenantUsage {
    pub requests: u64,
    pub refused: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// Counters shared by every handler.
#[derive(Default)]
pub struct Metrics {
    /// (route, status) → count.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    pub auth_failures: AtomicU64,
    pub tenants: Mutex<BTreeMap<String, TenantUsage>>,
    pub runs_started: AtomicU64,
    /// (time, generated tokens so far) once a second, for tokens/s.
    throughput: Mutex<VecDeque<(Instant, u64)>>,
}

impl Metrics {
    pub fn tenant(&self, name: &str, f: impl FnOnce(&mut TenantUsage)) {
        let mut m = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        f(m.entry(name.to_string()).or_default());
    }

    /// Records the scheduler's generated-token count; called once a second.
    pub fn sample_throughput(&self, generated: u64) {
        let mut q = self.throughput.lock().unwrap_or_else(|p| p.into_inner());
        q.push_back((Instant::now(), generated));
        while q.len() > 11 {
            q.pop_front();
        }
    }

    fn tokens_per_second(&self) -> f64 {
        let q = self.throughput.lock().unwrap_or_else(|p| p.into_inner());
        match (q.front(), q.back()) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                (b.1.saturating_sub(a.1)) as f64 / (b.0 - a.0).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

/// Middleware counting every response by route template and status (the
/// template, not the path, so ids do not explode the label set).
pub async fn count_requests(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "other".into());
    let resp = next.run(req).await;
    let mut m = state
        .metrics
        .requests
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    *m.entry((route, resp.status().as_u16())).or_default() += 1;
    resp
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text for `/metrics`.
/// Whose per-tenant series a scrape may see.
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    /// Every tenant's: the operator's listener (`--metrics-listen`).
    All,
    /// One tenant's own, beside the server-wide figures: a tenant's key on
    /// the public listener must not reveal who else uses the server.
    Tenant(&'a str),
}

pub fn render(state: &AppState, scope: Scope<'_>) -> String {
    let m = &state.metrics;
    let s = state.scheduler.stats();
    let (gate_running, gate_waiting) = state.gate.depth();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in lines {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let reqs: Vec<(String, f64)> = m
        .requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|((r, st), n)| {
            (
                format!("{{route=\"{}\",status=\"{st}\"}}", escape(r)),
                *n as f64,
            )
        })
        .collect();
    metric(
        "arbor_http_requests_total",
        "counter",
        "HTTP responses by route and status.",
        reqs,
    );
    metric(
        "arbor_auth_failures_total",
        "counter",
        "Requests with a missing, unknown or revoked key.",
        vec![(String::new(), m.auth_failures.load(Relaxed) as f64)],
    );
    metric(
        "arbor_generated_tokens_total",
        "counter",
        "Tokens decoded by the scheduler.",
        vec![(String::new(), s.decode_tokens as f64)],
    );
    metric(
        "arbor_prefill_tokens_total",
        "counter",
        "Prompt tokens computed (cache misses).",
        vec![(String::new(), s.prefill_tokens as f64)],
    );
    metric(
        "arbor_tokens_per_second",
        "gauge",
        "Decoded tokens per second over the last 10 s.",
        vec![(String::new(), m.tokens_per_second())],
    );
    metric(
        "arbor_scheduler_running",
        "gauge",
        "Requests running in the scheduler.",
        vec![(String::new(), s.running as f64)],
    );
    metric(
        "arbor_scheduler_waiting",
        "gauge",
        "Requests queued in the scheduler.",
        vec![(String::new(), s.waiting as f64)],
    );
    metric(
        "arbor_admission_in_use",
        "gauge",
        "Places of the fair gate in use.",
        vec![(String::new(), gate_running as f64)],
    );
    metric(
        "arbor_admission_waiting",
        "gauge",
        "Requests waiting at the fair gate (queue depth).",
        vec![(String::new(), gate_waiting as f64)],
    );
    metric(
        "arbor_kv_pool_slots",
        "gauge",
        "Token slots in the KV pool.",
        vec![(String::new(), s.pool_slots as f64)],
    );
    metric(
        "arbor_kv_pool_used_slots",
        "gauge",
        "KV pool slots in use (cached or private).",
        vec![(
            String::new(),
            s.pool_slots.saturating_sub(s.free_slots) as f64,
        )],
    );
    metric(
        "arbor_cache_hit_rate",
        "gauge",
        "Fraction of queried prompt tokens found in the radix cache.",
        vec![(String::new(), s.cache.hit_rate())],
    );
    metric(
        "arbor_cache_hit_tokens_total",
        "counter",
        "Prompt tokens served from the radix cache.",
        vec![(String::new(), s.cache.hit_tokens as f64)],
    );
    metric(
        "arbor_preemptions_total",
        "counter",
        "Requests preempted by the scheduler.",
        vec![(String::new(), s.preemptions as f64)],
    );
    metric(
        "arbor_cancelled_total",
        "counter",
        "Generations cancelled (client gone, run cancelled).",
        vec![(String::new(), s.cancelled as f64)],
    );
    metric(
        "arbor_runs_started_total",
        "counter",
        "Program runs started.",
        vec![(String::new(), m.runs_started.load(Relaxed) as f64)],
    );
    let mut tenants = m.tenants.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Scope::Tenant(name) = scope {
        tenants.retain(|t, _| t == name);
    }
    let per = |f: fn(&TenantUsage) -> u64| -> Vec<(String, f64)> {
        tenants
            .iter()
            .map(|(t, u)| (format!("{{tenant=\"{}\"}}", escape(t)), f(u) as f64))
            .collect()
    };
    metric(
        "arbor_tenant_requests_total",
        "counter",
        "Admitted requests per tenant.",
        per(|u| u.requests),
    );
    metric(
        "arbor_tenant_refused_total",
        "counter",
        "Requests refused by a quota per tenant.",
        per(|u| u.refused),
    );
    metric(
        "arbor_tenant_prompt_tokens_total",
        "counter",
        "Prompt tokens per tenant.",
        per(|u| u.prompt_tokens),
    );
    metric(
        "arbor_tenant_completion_tokens_total",
        "counter",
        "Completion tokens per tenant.",
        per(|u| u.completion_tokens),
    );
    out
}
