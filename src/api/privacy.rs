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

/// The export with every document's file, as a ZIP archive.
pub async fn export_archive(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
) -> ApiResult<axum::response::Response> {
    use axum::{
        http::{HeaderValue, header},
        response::IntoResponse,
    };
    let (name, bytes) = privacy::archive::archive(&state.db, &state.documents, &actor, id).await?;
    let mut response = axum::body::Body::from_stream(bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    if let Ok(value) = HeaderValue::from_str(&crate::documents::sniff::disposition("attachment", &name)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

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
