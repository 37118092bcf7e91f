//! The one place where errors become pages: a readable message in the site's
//! layout, or a trip to the sign-in page.

use askama::Template;
use axum::{
    http::StatusCode,
    response::{Html, IntoResponse, Redirect, Response},
};

use crate::error::AppError;

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
            AppError::Database(err @ (sea_orm::DbErr::ConnectionAcquire(_) | sea_orm::DbErr::Conn(_))) => {
                tracing::error!(error = %err, "database unreachable from a page");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Try again in a moment",
                    "The database is unreachable.".to_string(),
                    vec![],
                )
            }
            AppError::Database(err) => {
                tracing::error!(error = %err, "database error on a page");
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
        let page = ErrorPage { title, message, details };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(err) => {
                tracing::error!(error = %err, "error page failed to render");
                (status, title.to_string()).into_response()
            }
        }
    }
}
