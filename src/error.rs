//! The application error: what services return to every shell (API, pages,
//! CLI, jobs). Each shell turns it into its own kind of answer in one place —
//! the API in `api::error`. Database detail is logged there, never shown.

use std::collections::BTreeMap;

use sea_orm::DbErr;

/// Problems with named input fields, keyed by a dotted path (`patient.email`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(pub BTreeMap<String, String>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.entry(field.into()).or_insert_with(|| message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was added, else the collected errors.
    pub fn into_result(self) -> Result<(), AppError> {
        if self.is_empty() { Ok(()) } else { Err(AppError::Validation(self)) }
    }

    pub fn single(field: impl Into<String>, message: impl Into<String>) -> AppError {
        let mut errors = Self::new();
        errors.add(field, message);
        AppError::Validation(errors)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("authentication required")]
    Unauthenticated,
    /// The request itself is malformed (an address parameter of the wrong kind).
    #[error("{0}")]
    BadRequest(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("invalid input")]
    Validation(FieldErrors),
    /// The request is well-formed but the case's state does not allow it.
    #[error("{message}")]
    Conflict { code: &'static str, message: String, fields: BTreeMap<String, String> },
    /// Too many attempts (wrong passwords): wait and try again.
    #[error("{0}")]
    RateLimited(String),
    #[error("database: {0}")]
    Database(#[from] DbErr),
    /// Storage outside a `DbErr` (the session store) could not answer or
    /// keep a change; trying again later can succeed.
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] BoxedError),
    /// The document storage could not be reached or refused; nothing was
    /// saved, and trying again later can succeed.
    #[error("document storage unavailable: {0}")]
    FilesUnavailable(#[source] BoxedError),
    /// An upload larger than the configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// A file of a kind that is not accepted.
    #[error("{0}")]
    UnsupportedType(String),
    /// Something that cannot fail in a working installation did (a task
    /// died, the random source, a template, a password hasher), with its
    /// cause kept for the one log line the shells write.
    #[error("{context}: {source}")]
    Broken {
        context: &'static str,
        #[source]
        source: BoxedError,
    },
    #[error("internal: {0}")]
    Internal(String),
}

/// An error from a library, kept as it was for the log.
pub type BoxedError = Box<dyn std::error::Error + Send + Sync>;

impl AppError {
    pub fn broken(context: &'static str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        AppError::Broken { context, source: Box::new(source) }
    }

    /// The session store could not be read or written: storage trouble.
    pub fn session(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        AppError::Unavailable(Box::new(source))
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Conflict { code, message: message.into(), fields: BTreeMap::new() }
    }
}

pub type AppResult<T> = Result<T, AppError>;

/// What a caught panic said, for the log (the answer never shows it).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)")
}
