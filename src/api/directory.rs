//! `/api/v1/specialists` and `/api/v1/users`.

use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;

use super::{
    error::ApiResult,
    extract::{ApiJson, ApiQuery, Caller, Id},
};
use crate::{
    auth::users::{self, UserView},
    cases::view::SpecialistView,
    error::FieldErrors,
    ids::SpecialistId,
    specialists::{self, SpecialistFilter, SpecialistInput},
    state::AppState,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecialistQuery {
    #[serde(default)]
    specialty: Option<String>,
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
}

pub async fn list_specialists(
    State(state): State<AppState>,
    Caller(_actor): Caller,
    ApiQuery(query): ApiQuery<SpecialistQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(FieldErrors::single("limit", "must be between 1 and 500").into());
    }
    let filter = SpecialistFilter { specialty: query.specialty, query: query.q, limit };
    let items = specialists::list(&state.db, &filter).await?;
    Ok(Json(serde_json::json!({ "items": items })))
}

pub async fn create_specialist(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiJson(body): ApiJson<SpecialistInput>,
) -> ApiResult<(StatusCode, Json<SpecialistView>)> {
    Ok((StatusCode::CREATED, Json(specialists::create(&state.db, &actor, body).await?)))
}

pub async fn get_specialist(
    State(state): State<AppState>,
    Caller(_actor): Caller,
    Id(id): Id<SpecialistId>,
) -> ApiResult<Json<SpecialistView>> {
    Ok(Json(specialists::get(&state.db, id).await?))
}

pub async fn update_specialist(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<SpecialistId>,
    ApiJson(body): ApiJson<SpecialistInput>,
) -> ApiResult<Json<SpecialistView>> {
    Ok(Json(specialists::update(&state.db, &actor, id, body).await?))
}

pub async fn list_users(State(state): State<AppState>, Caller(actor): Caller) -> ApiResult<Json<serde_json::Value>> {
    let items: Vec<UserView> = users::list(&state.db, &actor).await?;
    Ok(Json(serde_json::json!({ "items": items })))
}
