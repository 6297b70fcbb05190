//! `/v1/programs`: upload (validated and precompiled before it is
//! accepted), list, get, delete. Files are stored once per content hash;
//! each tenant sees only the programs it uploaded itself.

use crate::auth::Tenant;
use crate::body::Body;
use crate::error::ApiError;
use crate::state::AppState;
use arbor_runtime::{LoadError, Program, Runtime};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

pub fn runtime(state: &AppState) -> Result<Arc<Runtime>, ApiError> {
    state
        .runtime
        .clone()
        .map_err(|e| ApiError::unavailable(format!("the program runtime is unavailable: {e}")))
}

/// Program ids are SHA-256 hex digests; anything else cannot name one, and
/// checking here keeps odd strings away from file paths.
pub fn valid_id(id: &str) -> bool {
    id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn load_error(e: LoadError) -> ApiError {
    match e {
        LoadError::TooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        LoadError::Cache(_) | LoadError::Engine(_) => ApiError::internal(e),
        _ => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("invalid program: {e}"),
        ),
    }
}

/// Compiles (or finds in the runtime's cache) a component off the async threads.
pub async fn load(runtime: Arc<Runtime>, bytes: Vec<u8>) -> Result<Program, ApiError> {
    tokio::task::spawn_blocking(move || runtime.load(&bytes))
        .await
        .map_err(ApiError::internal)?
        .map_err(load_error)
}

pub async fn upload(
    State(state): State<Arc<AppState>>,
    tenant: Tenant,
    Body(bytes): Body,
) -> Result<Response, ApiError> {
    let rt = runtime(&state)?;
    if bytes.len() > state.quotas.max_program_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "program is {} bytes; the limit is {}",
                bytes.len(),
                state.quotas.max_program_bytes
            ),
        ));
    }
    if state
        .db
        .count_programs(tenant.id)
        .map_err(ApiError::internal)?
        >= state.quotas.max_programs
    {
        return Err(ApiError::too_many(
            format!(
                "program quota reached ({}); delete a program first",
                state.quotas.max_programs
            ),
            60,
        ));
    }
    let program = load(rt, bytes.to_vec()).await?;
    let id = program.hash();
    let path = state.programs_dir.join(format!("{id}.wasm"));
    if !path.exists() {
        // Write then rename, so a crash never leaves a partial program.
        let tmp = state
            .programs_dir
            .join(format!("{id}.tmp{}", std::process::id()));
        std::fs::write(&tmp, &bytes).map_err(ApiError::internal)?;
        std::fs::rename(&tmp, &path).map_err(ApiError::internal)?;
    }
    let created = state
        .db
        .insert_program(tenant.id, &id, bytes.len())
        .map_err(ApiError::internal)?;
    let row = state
        .db
        .get_program(tenant.id, &id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("program"))?;
    tracing::info!(tenant = %tenant.name, program = %id, size = bytes.len(), created, "program uploaded");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(json!({"id": row.id, "object": "program", "size": row.size, "created_at": row.created_at})))
        .into_response())
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    tenant: Tenant,
) -> Result<Response, ApiError> {
    let rows = state
        .db
        .list_programs(tenant.id)
        .map_err(ApiError::internal)?;
    let data: Vec<_> = rows
        .into_iter()
        .map(|r| json!({"id": r.id, "object": "program", "size": r.size, "created_at": r.created_at}))
        .collect();
    Ok(axum::Json(json!({"object": "list", "data": data})).into_response())
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let row = valid_id(&id)
        .then(|| state.db.get_program(tenant.id, &id))
        .transpose()
        .map_err(ApiError::internal)?
        .flatten()
        .ok_or_else(|| ApiError::not_found("program"))?;
    Ok(axum::Json(
        json!({"id": row.id, "object": "program", "size": row.size, "created_at": row.created_at}),
    )
    .into_response())
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if !valid_id(&id) {
        return Err(ApiError::not_found("program"));
    }
    let (existed, shared) = state
        .db
        .delete_program(tenant.id, &id)
        .map_err(ApiError::internal)?;
    if !existed {
        return Err(ApiError::not_found("program"));
    }
    if !shared {
        let _ = std::fs::remove_file(state.programs_dir.join(format!("{id}.wasm")));
    }
    Ok(axum::Json(json!({"id": id, "object": "program", "deleted": true})).into_response())
}

/// The stored bytes of a tenant's program, or 404.
/// 404 unless `tenant` owns program `id`.
pub fn check_owned(state: &AppState, tenant: &Tenant, id: &str) -> Result<(), ApiError> {
    if !valid_id(id)
        || state
            .db
            .get_program(tenant.id, id)
            .map_err(ApiError::internal)?
            .is_none()
    {
        return Err(ApiError::not_found("program"));
    }
    Ok(())
}

/// The compiled program stored as `id` (its content hash): from the
/// runtime's memory cache when there, so a run of a 19 MB Python program
/// neither reads nor hashes it again; else read and loaded (and verified
/// by its hash) afresh.
pub async fn stored(state: &AppState, rt: Arc<Runtime>, id: &str) -> Result<Program, ApiError> {
    if let Some(p) = rt.cached(id) {
        return Ok(p);
    }
    let bytes =
        std::fs::read(state.programs_dir.join(format!("{id}.wasm"))).map_err(ApiError::internal)?;
    load(rt, bytes).await
}
