//! `/api/v1/cases/{id}/notes` and `/api/v1/cases/{id}/contacts`: the case
//! journal, under the case's access rules.

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use super::{
    error::ApiResult,
    extract::{ApiJson, Caller, ContactIdParam, Id},
};
use crate::{
    cases::journal::{self, ContactInput, ContactView, NoteInput, NoteView},
    ids::CaseId,
    state::AppState,
};

pub async fn add_note(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
    ApiJson(body): ApiJson<NoteInput>,
) -> ApiResult<(StatusCode, Json<NoteView>)> {
    Ok((StatusCode::CREATED, Json(journal::add_note(&state.db, &actor, id, body).await?)))
}

pub async fn notes(State(state): State<AppState>, Caller(actor): Caller, Id(id): Id<CaseId>) -> ApiResult<Json<Value>> {
    let items = journal::notes(&state.db, &state.reads, &actor, id).await?;
    Ok(Json(json!({ "items": items })))
}

pub async fn add_contact(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
    ApiJson(body): ApiJson<ContactInput>,
) -> ApiResult<(StatusCode, Json<ContactView>)> {
    Ok((StatusCode::CREATED, Json(journal::add_contact(&state.db, &actor, id, body).await?)))
}

pub async fn contacts(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
) -> ApiResult<Json<Value>> {
    let items = journal::contacts(&state.db, &state.reads, &actor, id).await?;
    Ok(Json(json!({ "items": items })))
}

pub async fn follow_up_done(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
    ContactIdParam(contact_id): ContactIdParam,
) -> ApiResult<Json<ContactView>> {
    Ok(Json(journal::follow_up_done(&state.db, &actor, id, contact_id).await?))
}
