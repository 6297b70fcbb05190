//! Program runs: `POST /v1/programs/{id}/runs` (synchronous or SSE),
//! `GET` and `DELETE /v1/runs/{id}`.
//!
//! A run executes in its own task, not the request's ([`exec`]): a client
//! that goes away does not lose it (the record can be fetched later), and
//! `DELETE` cancels it from any connection. Every run is recorded in SQLite
//! before it starts and updated when it ends; one acknowledged before a
//! crash is re-executed at the next start.

mod exec;

pub use exec::{MAX_ATTEMPTS, recover};

use crate::auth::{Tenant, hex};
use crate::body::Json;
use crate::db::RunRow;
use crate::error::ApiError;
use crate::programs;
use crate::state::{AppState, LiveRun, RunEnd};
use arbor_runtime::RunEvent;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Body of `POST /v1/programs/{id}/runs`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Given to the program: a string as is, anything else as JSON text.
    #[serde(default)]
    input: Value,
    #[serde(default)]
    stream: bool,
}

pub fn run_json(r: &RunRow) -> Value {
    json!({
        "id": r.id,
        "object": "run",
        "program_id": r.program_id,
        "status": r.status,
        "output": r.output,
        "error": r.error,
        "log": r.log,
        "stats": r.stats,
        "idempotency_key": r.idempotency_key,
        "attempts": r.attempts,
        "created_at": r.created_at,
        "finished_at": r.finished_at,
    })
}

fn fetch(state: &AppState, tenant: &Tenant, id: &str) -> Result<RunRow, ApiError> {
    state
        .db
        .get_run(tenant.id, id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("run"))
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    tenant: Tenant,
    Path(program_id): Path<String>,
    headers: HeaderMap,
    Json(req): Json<RunRequest>,
) -> Result<Response, ApiError> {
    let rt = programs::runtime(&state)?;
    let idem = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "Idempotency-Key must be 1 to 255 visible ASCII characters",
                    )
                })?
                .to_string(),
        ),
    };
    programs::check_owned(&state, &tenant, &program_id)?;
    let input = match req.input {
        Value::String(s) => s,
        Value::Null => String::new(),
        v => v.to_string(),
    };
    let mut idb = [0u8; 12];
    rand::rng().fill_bytes(&mut idb);
    let run_id = format!("run_{}", hex(&idb));
    // A retry with a used key gets the first run, before any quota is taken.
    if let Some(k) = &idem
        && let Some(prior) = prior_run(&state, &tenant, k)?
    {
        return answer_prior(&state, prior, req.stream).await;
    }
    // A run's prompts and generations are only known as it goes: each of
    // its model calls reserves its own tokens (`RunMeter`), so admission
    // asks only that the tenant's minute has room for a likely run.
    let permit = state.admit_run(&tenant).await?;
    // Loaded before the run is recorded: a program that cannot load is
    // the request's error, not a run.
    programs::stored(&state, rt.clone(), &program_id).await?;
    let inserted = state
        .db
        .insert_run(tenant.id, &run_id, &program_id, &input, idem.as_deref());
    match inserted {
        Ok(Ok(())) => {}
        Ok(Err(prior)) => {
            let prior = fetch(&state, &tenant, &prior)?;
            return answer_prior(&state, prior, req.stream).await;
        }
        Err(e) => return Err(ApiError::internal(e)),
    }
    // Recorded: from here on the run is acknowledged, and survives a crash.
    state.metrics.tenant(&tenant.name, |u| u.requests += 1);
    let (etx, erx) = if req.stream {
        let (t, r) = mpsc::unbounded_channel();
        (Some(t), Some(r))
    } else {
        (None, None)
    };
    let job = exec::Job {
        tenant,
        run_id: run_id.clone(),
        program_id,
        input,
    };
    let live = exec::launch(&state, rt, job, Some(permit), etx);
    match erx {
        None => answer_end(&run_id, live.ended().await),
        Some(events) => Ok(stream(run_id, events, live).into_response()),
    }
}

fn prior_run(state: &AppState, tenant: &Tenant, key: &str) -> Result<Option<RunRow>, ApiError> {
    let id = state
        .db
        .run_by_idempotency_key(tenant.id, key)
        .map_err(ApiError::internal)?;
    id.map(|id| fetch(state, tenant, &id)).transpose()
}

/// The answer to a retry with a used `Idempotency-Key`: the first run's
/// record, once it ended when the retry is synchronous, as the first
/// request's answer would have been (also when the first request's
/// connection died with a crash and the restart re-queued the run).
async fn answer_prior(state: &AppState, prior: RunRow, stream: bool) -> Result<Response, ApiError> {
    match state.live_run(&prior.id) {
        Some(live) if !stream => answer_end(&prior.id, live.ended().await),
        _ => Ok((StatusCode::OK, axum::Json(run_json(&prior))).into_response()),
    }
}

/// A synchronous run's answer.
fn answer_end(run_id: &str, end: RunEnd) -> Result<Response, ApiError> {
    match end {
        RunEnd::Recorded(row) => Ok(axum::Json(run_json(&row)).into_response()),
        RunEnd::LeftForRestart => Err(ApiError {
            retry_after: Some(5),
            ..ApiError::unavailable(format!(
                "the server is stopping; run {run_id} resumes when it restarts \
                 (GET /v1/runs/{run_id}, or retry with the same Idempotency-Key)"
            ))
        }),
        RunEnd::Unreadable(why) => Err(ApiError::internal(format!(
            "run {run_id} ended, but its record could not be read: {why}"
        ))),
    }
}

/// SSE of a run: `text` and `captured` events as the program generates,
/// then `done` with the run record (or `stopped` when a graceful shutdown
/// left the run for the next start).
fn stream(
    run_id: String,
    mut events: mpsc::UnboundedReceiver<RunEvent>,
    live: Arc<LiveRun>,
) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = mpsc::channel::<Event>(32);
    tokio::spawn(async move {
        let _ = tx
            .send(
                Event::default()
                    .event("run")
                    .data(json!({"id": run_id}).to_string()),
            )
            .await;
        while let Some(ev) = events.recv().await {
            let e = match ev {
                RunEvent::Text {
                    state,
                    variable,
                    delta,
                } => Event::default().event("text").data(
                    json!({"state": state, "variable": variable, "delta": delta}).to_string(),
                ),
                RunEvent::Captured {
                    state,
                    variable,
                    value,
                } => Event::default().event("captured").data(
                    json!({"state": state, "variable": variable, "value": value}).to_string(),
                ),
            };
            // A client that left stops the relay, not the run.
            if tx.send(e).await.is_err() {
                return;
            }
        }
        let last = match live.ended().await {
            RunEnd::Recorded(row) => Event::default()
                .event("done")
                .data(run_json(&row).to_string()),
            RunEnd::LeftForRestart => Event::default()
                .event("stopped")
                .data(json!({"id": run_id, "status": "running"}).to_string()),
            RunEnd::Unreadable(why) => Event::default()
                .event("error")
                .data(ApiError::internal(why).body().to_string()),
        };
        let _ = tx.send(last).await;
    });
    let s = futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    );
    Sse::new(s)
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(run_json(&fetch(&state, &tenant, &id)?)).into_response())
}

pub async fn cancel(
    State(state): State<Arc<AppState>>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let row = fetch(&state, &tenant, &id)?;
    if let Some(live) = state.live_run(&id) {
        live.cancel.cancel();
        return Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({"id": id, "object": "run", "status": "cancelling"})),
        )
            .into_response());
    }
    Ok(axum::Json(run_json(&row)).into_response())
}
