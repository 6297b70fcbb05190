//! Request bodies: read within a deadline and a size cap, parsed strictly,
//! every failure a JSON 4xx (axum's own rejections are plain text).

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// The raw body, read within [`AppState::body_timeout`] so a client that
/// trickles its body cannot hold a connection and a task forever.
pub struct Body(pub Bytes);

impl FromRequest<Arc<AppState>> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        match tokio::time::timeout(state.body_timeout, Bytes::from_request(req, state)).await {
            Err(_) => Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {:?}",
                    state.body_timeout
                ),
            )),
            Ok(Err(e)) => {
                let status = e.status();
                let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    "the request body is larger than this endpoint accepts".to_string()
                } else {
                    format!("could not read the request body: {}", e.body_text())
                };
                Err(ApiError::new(status, message))
            }
            Ok(Ok(b)) => Ok(Body(b)),
        }
    }
}

/// A JSON body parsed into `T`; unknown fields are refused by `T` itself.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let Body(bytes) = Body::from_request(req, state).await?;
        parse(&bytes).map(Json)
    }
}

/// Parses JSON with a message that says where it went wrong.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty; expected a JSON object",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}
