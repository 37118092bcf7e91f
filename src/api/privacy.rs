//! `/api/v1/cases/{id}/export` and `/erase`: a patient's access request and
//! erasure, for admins.

use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{
    error::ApiResult,
    extract::{Caller, Id},
};
use crate::{
    cases::view::CaseView,
    ids::CaseId,
    privacy::{self, case_export::CaseExport},
    state::AppState,
};

pub async fn export(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
) -> ApiResult<Json<CaseExport>> {
    Ok(Json(privacy::case_export::export(&state.db, &actor, id).await?))
}

#[derive(Debug, Serialize)]
pub struct ErasureAnswer {
    erased_at: Option<DateTime<Utc>>,
    /// True when an earlier request had already erased the case.
    already_erased: bool,
    case: CaseView,
}

pub async fn erase(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
) -> ApiResult<Json<ErasureAnswer>> {
    let done = privacy::erase(&state.db, &state.documents, &actor, id).await?;
    Ok(Json(ErasureAnswer { erased_at: done.case.erased_at, already_erased: !done.erased_now, case: done.case }))
}
