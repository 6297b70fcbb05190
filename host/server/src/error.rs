//! API errors in OpenAI's shape (`{"error": {"message", "type", "code"}}`),
//! so clients built for OpenAI surface our messages unchanged.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered to the client; never a panic, never a bare 500 for
/// something the client can fix.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds the client should wait before retrying (429, 503).
    pub retry_after: Option<u64>,
    /// A stable machine-readable kind of failure (`"invalid_regex"`,
    /// `"unsupported_schema_keyword"`, ...) where the failure is typed;
    /// the body's `code` is null otherwise, as OpenAI's often is.
    pub code: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
            code: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "missing, unknown or revoked API key",
        )
    }
    pub fn too_many(message: impl Into<String>, retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, message)
        }
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
    pub fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!(error = %message, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {message}"),
        )
    }

    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            _ => "server_error",
        }
    }

    /// The JSON body, also used inside an SSE stream when a failure
    /// happens after the headers went out.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"message": self.message, "type": self.kind(), "code": self.code}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// A request's typed failure keeps its kind in the body's `code`.
impl From<arbor_scheduler::RequestError> for ApiError {
    fn from(e: arbor_scheduler::RequestError) -> Self {
        use arbor_scheduler::RequestError as E;
        let code = Some(e.code());
        let err = match &e {
            _ if e.is_callers_fault() => ApiError::bad_request(e.to_string()),
            E::Cancelled => ApiError::unavailable(e.to_string()),
            _ => ApiError::internal(&e),
        };
        ApiError { code, ..err }
    }
}
