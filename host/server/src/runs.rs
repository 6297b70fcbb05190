//! Program runs: `POST /v1/programs/{id}/runs` (synchronous or SSE),
//! `GET` and `DELETE /v1/runs/{id}`.
//!
//! A run executes in its own task, not the request's: a client that goes
//! away does not lose it (the record can be fetched later), and `DELETE`
//! cancels it from any connection. Every run is recorded in SQLite before
//! it starts and updated when it ends.

use crate::auth::{Tenant, hex};
use crate::body::Json;
use crate::db::RunRow;
use crate::error::ApiError;
use crate::programs;
use crate::quota::RunMeter;
use crate::state::AppState;
use arbor_runtime::{CancelHandle, Limits, RunError, RunEvent, RunOptions, RunOutcome};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use tokio::sync::{mpsc, oneshot};

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
        return Ok((StatusCode::OK, axum::Json(run_json(&prior))).into_response());
    }
    // A run's prompts and generations are only known as it goes: each of
    // its model calls reserves its own tokens (`RunMeter`), so admission
    // asks only that the tenant's minute is not spent.
    let permit = state.admit_run(&tenant).await?;
    let program = programs::stored(&state, rt.clone(), &program_id).await?;
    let inserted = state
        .db
        .insert_run(tenant.id, &run_id, &program_id, &input, idem.as_deref());
    match inserted {
        Ok(Ok(())) => {}
        Ok(Err(prior)) => {
            return Ok(axum::Json(run_json(&fetch(&state, &tenant, &prior)?)).into_response());
        }
        Err(e) => return Err(ApiError::internal(e)),
    }
    state.metrics.tenant(&tenant.name, |u| u.requests += 1);
    state.metrics.runs_started.fetch_add(1, Relaxed);
    let cancel = CancelHandle::new();
    state
        .live_runs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(run_id.clone(), cancel.clone());
    let (etx, erx) = if req.stream {
        let (t, r) = mpsc::unbounded_channel();
        (Some(t), Some(r))
    } else {
        (None, None)
    };
    let q = &state.quotas;
    let options = RunOptions {
        namespace: arbor_runtime::Namespace::tenant(tenant.id as u64),
        limits: Limits {
            max_memory_bytes: q.run_memory_bytes,
            deadline: q.run_deadline,
            max_generated_tokens: q.run_max_tokens,
            ..Limits::default()
        },
        events: etx,
        cancel: Some(cancel),
        meter: Some(Arc::new(RunMeter::new(state.token_quota.clone(), tenant.id))),
    };
    let (done_tx, done_rx) = oneshot::channel::<RunRow>();
    {
        let (state, tenant, run_id) = (state.clone(), tenant.clone(), run_id.clone());
        tokio::spawn(async move {
            let outcome = rt.run(&program, &input, options).await;
            drop(permit);
            let row = record(&state, &tenant, &run_id, &outcome);
            state
                .live_runs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&run_id);
            if let Some(row) = row {
                let _ = done_tx.send(row);
            }
        });
    }
    match erx {
        None => match done_rx.await {
            Ok(row) => Ok(axum::Json(run_json(&row)).into_response()),
            Err(_) => Err(ApiError::internal("the run ended without a record")),
        },
        Some(events) => Ok(stream(run_id, events, done_rx).into_response()),
    }
}

fn prior_run(state: &AppState, tenant: &Tenant, key: &str) -> Result<Option<RunRow>, ApiError> {
    let id = state
        .db
        .run_by_idempotency_key(tenant.id, key)
        .map_err(ApiError::internal)?;
    id.map(|id| fetch(state, tenant, &id)).transpose()
}

/// Writes the outcome to the database; the row as stored.
fn record(
    state: &AppState,
    tenant: &Tenant,
    run_id: &str,
    o: &RunOutcome,
) -> Option<RunRow> {
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
        state.token_quota.observe_run(
            tenant.id,
            o.stats.prompt_tokens + o.stats.generated_tokens,
        );
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
    state.db.get_run(tenant.id, run_id).ok().flatten()
}

/// SSE of a run: `text` and `captured` events as the program generates,
/// then `done` with the run record.
fn stream(
    run_id: String,
    mut events: mpsc::UnboundedReceiver<RunEvent>,
    done: oneshot::Receiver<RunRow>,
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
        if let Ok(row) = done.await {
            let _ = tx
                .send(
                    Event::default()
                        .event("done")
                        .data(run_json(&row).to_string()),
                )
                .await;
        }
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
    if let Some(h) = state
        .live_runs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&id)
    {
        h.cancel();
        return Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({"id": id, "object": "run", "status": "cancelling"})),
        )
            .into_response());
    }
    Ok(axum::Json(run_json(&row)).into_response())
}
