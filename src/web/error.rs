//! The one place where errors become pages: a readable message in the site's
//! layout, or a trip to the sign-in page.

use askama::Template;
use axum::{
    body::HttpBody,
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
};

use crate::{
    db::{self, Failure},
    error::AppError,
};

#[derive(Debug)]
pub enum PageError {
    /// Not signed in (or the session ended): go to the sign-in page, then back to `next`.
    SignIn {
        next: String,
    },
    App(AppError),
}

impl From<AppError> for PageError {
    fn from(err: AppError) -> Self {
        PageError::App(err)
    }
}

impl From<sea_orm::DbErr> for PageError {
    fn from(err: sea_orm::DbErr) -> Self {
        PageError::App(AppError::Database(err))
    }
}

pub type PageResult<T> = Result<T, PageError>;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: String,
    details: Vec<(String, String)>,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let err = match self {
            PageError::SignIn { next } => {
                let next = form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>();
                return Redirect::to(&format!("/login?next={next}")).into_response();
            }
            PageError::App(err) => err,
        };
        let (status, title, message, details) = match err {
            AppError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing at this address, or it is not yours to see.".to_string(),
                vec![],
            ),
            AppError::Unauthenticated => {
                return Redirect::to("/login").into_response();
            }
            AppError::Forbidden(message) => (StatusCode::FORBIDDEN, "Not allowed", message, vec![]),
            AppError::Validation(fields) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Please check what you entered",
                "Some fields need another look:".to_string(),
                fields.0.into_iter().collect(),
            ),
            AppError::Conflict { message, fields, .. } => {
                (StatusCode::CONFLICT, "That cannot be done now", message, fields.into_iter().collect())
            }
            AppError::BadRequest(message) => (StatusCode::BAD_REQUEST, "That address does not work", message, vec![]),
            AppError::RateLimited(message) => (StatusCode::TOO_MANY_REQUESTS, "Please wait", message, vec![]),
            AppError::Database(err) => match db::failure(&err) {
                Failure::Unreachable => {
                    tracing::error!(error = %err, "database unreachable from a page");
                    return unavailable_page(UNREACHABLE);
                }
                Failure::Storage => {
                    tracing::error!(error = %err, "database could not keep a change from a page");
                    return unavailable_page(NOT_SAVED);
                }
                Failure::Other => {
                    tracing::error!(error = %err, "database error on a page");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Something went wrong",
                        "The server could not complete the request.".to_string(),
                        vec![],
                    )
                }
            },
            AppError::Unavailable(source) => {
                tracing::error!(error = &*source as &dyn std::error::Error, "storage unavailable from a page");
                return unavailable_page(NOT_SAVED);
            }
            AppError::FilesUnavailable(source) => {
                tracing::error!(error = &*source as &dyn std::error::Error, "document storage unavailable from a page");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Documents are out of reach",
                    "The document storage cannot be reached right now, so the file could not be saved or read. \
                     Nothing was changed. Please try again in a moment."
                        .to_string(),
                    vec![],
                )
            }
            AppError::TooLarge(message) => (StatusCode::PAYLOAD_TOO_LARGE, "That file is too large", message, vec![]),
            AppError::UnsupportedType(message) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "That kind of file is not accepted", message, vec![])
            }
            AppError::Broken { context, source } => {
                tracing::error!(context, error = &*source as &dyn std::error::Error, "internal error on a page");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The server could not complete the request.".to_string(),
                    vec![],
                )
            }
            AppError::Internal(detail) => {
                tracing::error!(%detail, "internal error on a page");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The server could not complete the request.".to_string(),
                    vec![],
                )
            }
        };
        error_page(status, title, message, details)
    }
}

const UNREACHABLE: &str = "The database is unreachable, so nothing could be shown or saved. \
    Nothing was changed. Please try again in a moment.";
const NOT_SAVED: &str = "This could not be saved: the database is not accepting changes right now. \
    Nothing was changed. Please try again in a moment.";

pub fn error_page(status: StatusCode, title: &str, message: String, details: Vec<(String, String)>) -> Response {
    let page = ErrorPage { title, message, details };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "error page failed to render");
            (status, title.to_string()).into_response()
        }
    }
}

fn unavailable_page(message: &str) -> Response {
    let mut response =
        error_page(StatusCode::SERVICE_UNAVAILABLE, "Try again in a moment", message.to_string(), vec![]);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

/// The session layer answers a bare, empty 500 when it cannot save a
/// session (the database refused the write). People get the readable page
/// instead.
pub async fn explain_bare_failures(response: Response) -> Response {
    let bare = response.status() == StatusCode::INTERNAL_SERVER_ERROR
        && !response.headers().contains_key(header::CONTENT_TYPE)
        && response.body().size_hint().exact() == Some(0);
    if bare { unavailable_page(NOT_SAVED) } else { response }
}

/// The answer to a page request whose handler panicked: the standard error
/// page, with the panic logged.
pub fn panicked(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!(panic = crate::error::panic_message(payload.as_ref()), "a page handler panicked");
    PageError::App(AppError::Internal("a page handler panicked".into())).into_response()
}

/// A form larger than the server accepts: nothing was saved.
pub fn too_large(limit: usize) -> Response {
    let message =
        format!("The form was larger than {limit} bytes, so nothing was saved. Shorten the text and try again.");
    error_page(StatusCode::PAYLOAD_TOO_LARGE, "Too much to save at once", message, vec![])
}
