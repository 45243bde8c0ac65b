//! The one error type of the HTTP layer, rendered as the contract's envelope:
//! `{"error": {"code": "...", "message": "...", "details": [...]}}`.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

/// One broken rule of a request, pointing at where it is.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Position in a batch, when the body is an array.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub field: String,
    pub message: String,
}

impl ErrorDetail {
    pub fn new(index: Option<usize>, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            index,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A 422 names at most this many broken rules: a batch with many bad events would make a huge
/// answer, and the first hundred say enough.
const MAX_DETAILS: usize = 100;

impl From<crate::domain::fields::Violation> for ErrorDetail {
    fn from(v: crate::domain::fields::Violation) -> Self {
        Self::new(v.index, v.field, v.message)
    }
}

/// A batch the domain's rules refused: 422 with its code, its message and the broken rules.
impl From<crate::domain::events::Rejected> for ApiError {
    fn from(r: crate::domain::events::Rejected) -> Self {
        let details = r.violations.into_iter().take(MAX_DETAILS).map(Into::into);
        Self::invalid(r.code, r.message, details.collect())
    }
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable.
    pub code: String,
    /// For humans; may change.
    pub message: String,
    pub details: Vec<ErrorDetail>,
}

/// The contract's error envelope.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    MalformedJson(String),
    #[error("missing or wrong key")]
    Unauthorized,
    #[error("this key may not do that: the admin key is needed")]
    Forbidden,
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("{message}")]
    Unprocessable {
        code: &'static str,
        message: String,
        details: Vec<ErrorDetail>,
    },
    #[error("too many requests")]
    TooManyRequests,
    #[error("storage unavailable, retry later")]
    Unavailable(#[source] StoreError),
    #[error("the request took too long")]
    Timeout,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn invalid(
        code: &'static str,
        message: impl Into<String>,
        details: Vec<ErrorDetail>,
    ) -> Self {
        Self::Unprocessable {
            code,
            message: message.into(),
            details,
        }
    }

    /// 422 `invalid_parameter` for one path or query parameter: "`field` `message`".
    pub fn parameter(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::invalid(
            "invalid_parameter",
            format!("{field} {message}"),
            vec![ErrorDetail::new(None, field, message)],
        )
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed_json",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict { code, .. } | Self::Unprocessable { code, .. } => code,
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::TooManyRequests => "rate_limited",
            Self::Unavailable(_) => "storage_unavailable",
            Self::Timeout => "timeout",
            Self::Internal(_) => "internal",
        }
    }
}

impl ApiError {
    /// A failed training: 503 when the database was the cause, else 500.
    pub fn from_training(e: anyhow::Error) -> Self {
        match e.downcast::<StoreError>() {
            Ok(store) => store.into(),
            Err(other) => Self::Internal(other),
        }
    }
}

/// What a storage failure tells the client. The contract has one answer for "retry, nothing
/// was half-written", 503: an outage, a deadline passed and a conflicting transaction all get
/// it (the contract lists no 409 for a write that lost a race). Corrupt data and bugs are not
/// cured by retrying: 500, with the cause kept for the log, never sent.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_retryable() {
            Self::Unavailable(e)
        } else {
            Self::Internal(e.into())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Internal causes are logged once, here, with their whole chain, and never sent: the
        // client gets the envelope with an opaque message.
        match &self {
            Self::Internal(cause) => tracing::error!(error = ?cause, "internal error"),
            Self::Unavailable(cause) => tracing::warn!(error = %cause, "storage unavailable"),
            _ => {}
        }
        let details = match &self {
            Self::Unprocessable { details, .. } => details.clone(),
            _ => Vec::new(),
        };
        let body = ErrorEnvelope {
            error: ErrorBody {
                code: self.code().to_owned(),
                message: self.to_string(),
                details,
            },
        };
        (self.status(), Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
