//! `/api/v1/providers` (the directory of record holders) and records
//! requests: `/api/v1/cases/{id}/records-requests` and
//! `/api/v1/records-requests/{id}…`, under the case's access rules.

use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    error::ApiResult,
    extract::{ApiJson, ApiQuery, Caller, Id},
};
use crate::{
    ids::CaseId,
    providers::{self, ProviderInput, ProviderView},
    records_requests::{self, ExtensionInput, NewRequest, ReceiptInput, RequestPatch, RequestView},
    state::AppState,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
}

pub async fn list_providers(
    State(state): State<AppState>,
    Caller(_actor): Caller,
    ApiQuery(query): ApiQuery<ProviderQuery>,
) -> ApiResult<Json<Value>> {
    let items = providers::list(&state.db, query.q.as_deref(), query.limit.unwrap_or(100)).await?;
    Ok(Json(json!({ "items": items })))
}

pub async fn create_provider(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiJson(body): ApiJson<ProviderInput>,
) -> ApiResult<(StatusCode, Json<ProviderView>)> {
    let settings = &state.settings;
    let zone = &settings.cases.default_timezone;
    let created = providers::create(&state.db, &settings.records_requests, zone, &actor, body).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn get_provider(
    State(state): State<AppState>,
    Caller(_actor): Caller,
    Id(id): Id<i32>,
) -> ApiResult<Json<ProviderView>> {
    Ok(Json(providers::get(&state.db, id).await?))
}

pub async fn update_provider(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<i32>,
    ApiJson(body): ApiJson<ProviderInput>,
) -> ApiResult<Json<ProviderView>> {
    let settings = &state.settings;
    let zone = &settings.cases.default_timezone;
    Ok(Json(providers::update(&state.db, &settings.records_requests, zone, &actor, id, body).await?))
}

pub async fn create_request(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
    ApiJson(body): ApiJson<NewRequest>,
) -> ApiResult<(StatusCode, Json<RequestView>)> {
    let created = records_requests::create(&state.db, &state.settings.records_requests, &actor, id, body).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn list_requests(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
) -> ApiResult<Json<Value>> {
    let items = records_requests::of_case(&state.db, &state.reads, &actor, id).await?;
    Ok(Json(json!({ "items": items })))
}

pub async fn get_request(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<i32>,
) -> ApiResult<Json<RequestView>> {
    Ok(Json(records_requests::get(&state.db, &actor, id).await?))
}

pub async fn update_request(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<i32>,
    ApiJson(body): ApiJson<RequestPatch>,
) -> ApiResult<Json<RequestView>> {
    Ok(Json(records_requests::update(&state.db, &state.settings.records_requests, &actor, id, body).await?))
}

pub async fn extend_request(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<i32>,
    ApiJson(body): ApiJson<ExtensionInput>,
) -> ApiResult<Json<RequestView>> {
    Ok(Json(records_requests::extend(&state.db, &state.settings.records_requests, &actor, id, body).await?))
}

pub async fn receive(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<i32>,
    ApiJson(body): ApiJson<ReceiptInput>,
) -> ApiResult<Json<RequestView>> {
    Ok(Json(records_requests::receive(&state.db, &actor, id, body).await?))
}

fn letter_context(state: &AppState) -> records_requests::LetterContext<'_> {
    records_requests::LetterContext {
        settings: &state.settings.records_requests,
        organisation: &state.settings.mail.from_name,
        zone: state.settings.cases.default_timezone.parse().unwrap_or(chrono_tz::Tz::UTC),
    }
}

/// The request's letter as blocks of text (what the print page and the PDF lay out).
pub async fn get_letter(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<i32>,
) -> ApiResult<Json<records_requests::letter::Letter>> {
    let (_, letter) =
        records_requests::letter_for(&state.db, &state.reads, &actor, &letter_context(&state), id).await?;
    Ok(Json(letter))
}

/// Files the letter as a PDF among the case's documents.
pub async fn save_letter(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<i32>,
) -> ApiResult<(StatusCode, Json<crate::documents::store::DocumentView>)> {
    let context = letter_context(&state);
    let saved = records_requests::save_letter(&state.db, &state.reads, &state.documents, &actor, &context, id).await?;
    Ok((StatusCode::CREATED, Json(saved)))
}
