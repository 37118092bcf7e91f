//! `/u/{token}`: the link in every patient email that stops reminders for
//! that case. Works from a mail client's one-click button (a POST with no
//! session) as well as from a browser. Shows no health information.

use askama::Template;
use axum::{
    extract::State,
    response::{Html, IntoResponse, Response},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, prelude::Expr};

use super::{error::PageResult, render};
use crate::{
    audit::{self, Subject},
    auth::Actor,
    db::{self, entities::case},
    error::AppError,
    http::{ClientIp, path_param},
    state::AppState,
};

#[derive(Template)]
#[template(path = "unsubscribe.html")]
struct UnsubscribePage {
    token: String,
    stopped: bool,
}

/// The `{token}` of an unsubscribe link.
pub struct Token(pub String);

impl axum::extract::FromRequestParts<AppState> for Token {
    type Rejection = super::error::PageError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        path_param(parts, "token")
            .await
            // Tokens are URL-safe base64; anything else names no link.
            .filter(|t| t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
            .map(Token)
            .ok_or(super::error::PageError::App(AppError::NotFound))
    }
}

async fn find(state: &AppState, token: &str) -> PageResult<case::Model> {
    Ok(case::Entity::find()
        .filter(case::Column::NudgeToken.eq(token))
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound)?)
}

pub async fn confirm(State(state): State<AppState>, Token(token): Token) -> PageResult<Html<String>> {
    let found = find(&state, &token).await?;
    render(&UnsubscribePage { token, stopped: found.nudges_stopped_at.is_some() })
}

pub async fn stop(State(state): State<AppState>, ClientIp(ip): ClientIp, Token(token): Token) -> PageResult<Response> {
    let found = find(&state, &token).await?;
    if found.nudges_stopped_at.is_none() {
        let txn = db::begin_write(&state.db).await?;
        case::Entity::update_many()
            .col_expr(case::Column::NudgesStoppedAt, Expr::value(db::now()))
            .filter(case::Column::Id.eq(found.id))
            .exec(&txn)
            .await?;
        let mut actor = Actor::system("patient-link");
        actor.ip = ip;
        audit::record(&txn, &actor, "case.nudges_stopped", Subject::case(found.id), serde_json::json!({})).await?;
        txn.commit().await?;
    }
    Ok(render(&UnsubscribePage { token, stopped: true })?.into_response())
}
