//! `/api/v1/cases/{id}/insurance`: the case's insurance and pre-approval.

use axum::{Json, extract::State};
use serde_json::{Value, json};

use super::{
    error::ApiResult,
    extract::{ApiJson, Caller, Id},
};
use crate::{
    error::AppError,
    ids::CaseId,
    insurance::{self, InsuranceInput, InsuranceView},
    state::AppState,
};

pub async fn get_insurance(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
) -> ApiResult<Json<InsuranceView>> {
    let found = insurance::get(&state.db, &state.reads, &actor, id).await?;
    Ok(Json(found.ok_or(AppError::NotFound)?))
}

/// Answers the insurance as stored, and `case_resumed` when recording a
/// decided pre-approval took the case off its hold.
pub async fn put_insurance(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
    ApiJson(body): ApiJson<InsuranceInput>,
) -> ApiResult<Json<Value>> {
    let saved = insurance::put(&state.db, &state.rules, &actor, id, body).await?;
    let mut answer = serde_json::to_value(&saved.insurance).map_err(|err| AppError::Internal(err.to_string()))?;
    answer["case_resumed"] = json!(saved.resumed);
    Ok(Json(answer))
}
