//! `/api/v1/cases…`: thin handlers that parse the request, call the case
//! operations with the caller as actor, and shape the answer.

use axum::{Json, extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};

use super::{
    error::{ApiError, ApiResult},
    extract::{ApiJson, ApiQuery, Caller, Id, KindParam, encode_cursor, page_params},
};
use crate::{
    cases::{
        Stage,
        store::{self, ListFilter},
        values::RecordKind,
        view::{CaseListItem, CaseView},
    },
    error::FieldErrors,
    ids::CaseId,
    state::AppState,
};

const DEFAULT_PAGE: u64 = 25;
const MAX_PAGE: u64 = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    overdue: Option<bool>,
    #[serde(default)]
    advocate_id: Option<i32>,
    #[serde(default)]
    q: Option<String>,
    /// `open` or `closed`; both when absent.
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ListAnswer {
    items: Vec<CaseListItem>,
    next_cursor: Option<String>,
}

/// The word in this list's cursors.
const CURSOR_LIST: &str = "id";

pub async fn list(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<ListAnswer>> {
    let mut errors = FieldErrors::new();
    let stage = match query.stage.as_deref().filter(|s| !s.is_empty()) {
        Some(word) => {
            let parsed = Stage::parse(word);
            if parsed.is_none() {
                errors.add("stage", "is not a known stage");
            }
            parsed
        }
        None => None,
    };
    let closed = match query.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some("open") => Some(false),
        Some("closed") => Some(true),
        Some(_) => {
            errors.add("state", "must be open or closed");
            None
        }
    };
    let (limit, after_id) =
        page_params(&mut errors, CURSOR_LIST, query.limit, (DEFAULT_PAGE, MAX_PAGE), query.cursor.as_deref());
    errors.into_result()?;
    let filter = ListFilter {
        stage,
        overdue: query.overdue.unwrap_or(false),
        advocate_id: query.advocate_id,
        query: query.q,
        closed,
        limit,
        after_id,
    };
    let page = store::list(&state.db, &state.reads, &actor, &filter).await?;
    Ok(Json(ListAnswer { items: page.items, next_cursor: page.next_after_id.map(|id| encode_cursor(CURSOR_LIST, id)) }))
}

pub async fn create(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiJson(body): ApiJson<store::NewCase>,
) -> ApiResult<(StatusCode, Json<CaseView>)> {
    let view = store::create(&state.db, &state.rules, &actor, body).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
) -> ApiResult<Json<CaseView>> {
    Ok(Json(store::view(&state.db, &state.reads, &actor, id).await?))
}

pub async fn update(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
    ApiJson(body): ApiJson<store::CasePatch>,
) -> ApiResult<Json<CaseView>> {
    Ok(Json(store::update(&state.db, &state.rules, &actor, id, body).await?))
}

pub async fn transition(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
    ApiJson(body): ApiJson<store::TransitionRequest>,
) -> ApiResult<Json<CaseView>> {
    Ok(Json(store::transition(&state.db, &state.rules, &actor, id, body).await?))
}

pub async fn hold(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
    ApiJson(body): ApiJson<store::HoldRequest>,
) -> ApiResult<Json<CaseView>> {
    Ok(Json(store::hold(&state.db, &actor, id, body).await?))
}

pub async fn resume(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
) -> ApiResult<Json<CaseView>> {
    Ok(Json(store::resume(&state.db, &state.rules, &actor, id).await?))
}

pub async fn set_record(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
    KindParam(kind): KindParam,
    ApiJson(body): ApiJson<store::RecordUpdate>,
) -> ApiResult<Json<CaseView>> {
    let kind = RecordKind::parse(&kind).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{kind:?} is not a records checklist item"))
    })?;
    Ok(Json(store::set_record(&state.db, &actor, id, kind, body).await?))
}

pub async fn set_specialist(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
    ApiJson(body): ApiJson<store::SpecialistChoice>,
) -> ApiResult<Json<CaseView>> {
    Ok(Json(store::set_specialist(&state.db, &actor, id, body).await?))
}

pub async fn set_consultation(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
    ApiJson(body): ApiJson<store::ConsultationInput>,
) -> ApiResult<Json<CaseView>> {
    Ok(Json(store::set_consultation(&state.db, &actor, id, body).await?))
}

pub async fn record_opinion(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
    ApiJson(body): ApiJson<store::OpinionInput>,
) -> ApiResult<(StatusCode, Json<CaseView>)> {
    let (view, created) = store::record_opinion(&state.db, &actor, id, body).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(view)))
}

pub async fn set_comparison(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
    ApiJson(body): ApiJson<store::ComparisonInput>,
) -> ApiResult<Json<CaseView>> {
    Ok(Json(store::set_comparison(&state.db, &actor, id, body).await?))
}

pub async fn set_decision(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
    ApiJson(body): ApiJson<store::DecisionInput>,
) -> ApiResult<Json<CaseView>> {
    Ok(Json(store::set_decision(&state.db, &actor, id, body).await?))
}
