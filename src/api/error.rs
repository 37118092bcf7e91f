//! The one place where errors become JSON responses:
//! `{"error":{"code","message","fields"}}` with the matching status.

use std::collections::BTreeMap;

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::{
    db::{self, Failure},
    error::AppError,
};

/// An error answered by the API.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fields: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    fields: &'a BTreeMap<String, String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), fields: BTreeMap::new() }
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }
}

fn storage_unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        "the database cannot save changes right now; nothing was changed; try again shortly",
    )
}

impl From<AppError> for ApiError {
    fn from(err: AppError) -> Self {
        match err {
            AppError::NotFound => ApiError::not_found(),
            AppError::Unauthenticated => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "a valid API token is required (Authorization: Bearer <token>)",
            ),
            AppError::Forbidden(message) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
            AppError::Validation(fields) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "validation_failed",
                message: "some fields are invalid".into(),
                fields: fields.0,
            },
            AppError::Conflict { code, message, fields } => {
                ApiError { status: StatusCode::CONFLICT, code, message, fields }
            }
            AppError::BadRequest(message) => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message),
            AppError::RateLimited(message) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message),
            AppError::Database(err) => match db::failure(&err) {
                Failure::Unreachable => {
                    tracing::error!(error = %err, "database unreachable");
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "database_unavailable",
                        "the database is unreachable; nothing was changed; try again",
                    )
                }
                Failure::Storage => {
                    tracing::error!(error = %err, "database could not keep a change");
                    storage_unavailable()
                }
                Failure::Other => {
                    tracing::error!(error = %err, "database error");
                    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "something went wrong on the server")
                }
            },
            AppError::Unavailable(source) => {
                tracing::error!(error = &*source as &dyn std::error::Error, "storage unavailable");
                storage_unavailable()
            }
            AppError::FilesUnavailable(source) => {
                tracing::error!(error = &*source as &dyn std::error::Error, "document storage unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "document_storage_unavailable",
                    "the document storage cannot be reached right now; nothing was changed; try again shortly",
                )
            }
            AppError::TooLarge(message) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message),
            AppError::UnsupportedType(message) => {
                ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_document_type", message)
            }
            AppError::Broken { context, source } => {
                tracing::error!(context, error = &*source as &dyn std::error::Error, "internal error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "something went wrong on the server")
            }
            AppError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "something went wrong on the server")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body { error: Inner { code: self.code, message: &self.message, fields: &self.fields } };
        (self.status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The answer to a request whose handler panicked: the standard 500, with
/// the panic logged.
pub fn panicked(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!(panic = crate::error::panic_message(payload.as_ref()), "an API handler panicked");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "something went wrong on the server").into_response()
}
