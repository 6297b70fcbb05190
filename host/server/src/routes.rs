//! The router: which handler serves which path, and the layers around them.

use crate::auth::Tenant;
use crate::error::ApiError;
use crate::state::AppState;
use crate::{completions, metrics, programs, runs};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub fn router(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    // Uploads get their own cap, a little above the program size limit so
    // the handler can say how large the program was.
    let upload_limit = state.quotas.max_program_bytes.saturating_add(1);
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions::completions))
        .route("/v1/chat/completions", post(completions::chat_completions))
        .route(
            "/v1/programs",
            post(programs::upload)
                .get(programs::list)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route(
            "/v1/programs/{id}",
            get(programs::get).delete(programs::delete),
        )
        .route("/v1/programs/{id}/runs", post(runs::create))
        .route("/v1/runs/{id}", get(runs::get).delete(runs::cancel))
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route",
            )
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count_requests,
        ))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        "ready".into_response()
    } else {
        ApiError::unavailable("shutting down").into_response()
    }
}

async fn metrics_text(State(state): State<Arc<AppState>>, tenant: Tenant) -> Response {
    metrics_response(&state, metrics::Scope::Tenant(&tenant.name))
}

fn metrics_response(state: &AppState, scope: metrics::Scope<'_>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        metrics::render(state, scope),
    )
        .into_response()
}

/// The operator's router: every tenant's metrics, without a key, for a
/// listener on a private address (`--metrics-listen`).
pub fn operator_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(state): State<Arc<AppState>>| async move {
                metrics_response(&state, metrics::Scope::All)
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { ApiError::not_found("route") })
        .with_state(state)
}

async fn models(State(state): State<Arc<AppState>>, _tenant: Tenant) -> Response {
    axum::Json(json!({
        "object": "list",
        "data": [{"id": state.model_name, "object": "model", "created": 0, "owned_by": "arbor"}],
    }))
    .into_response()
}
