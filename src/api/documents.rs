//! `/api/v1/cases/{id}/documents` and `/api/v1/documents/{doc_id}`: a
//! case's documents, under the case's access rules. Uploads are
//! `multipart/form-data` (`file`, `kind`, optional `record_kind`, `round`,
//! `mark_received`); the content always downloads as an attachment.

use axum::{
    Json,
    body::Body,
    extract::{Multipart, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{
    error::ApiResult,
    extract::{ApiJson, Caller, DocumentIdParam, Id},
};
use crate::{
    documents::{
        sniff,
        store::{self, DocumentPatch, DocumentView},
    },
    http::receive_upload,
    ids::CaseId,
    state::AppState,
};

pub async fn upload(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
    form: Multipart,
) -> ApiResult<(StatusCode, Json<DocumentView>)> {
    store::check_case(&state.db, &actor, id).await?;
    let (new, file) = receive_upload(&state, id, form).await?;
    let added = store::add(&state.db, &state.documents, &actor, id, new, file).await?;
    Ok((StatusCode::CREATED, Json(added)))
}

pub async fn list(State(state): State<AppState>, Caller(actor): Caller, Id(id): Id<CaseId>) -> ApiResult<Json<Value>> {
    let items = store::list(&state.db, &state.reads, &actor, id).await?;
    Ok(Json(json!({ "items": items })))
}

pub async fn get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    DocumentIdParam(id): DocumentIdParam,
) -> ApiResult<Json<DocumentView>> {
    Ok(Json(store::get(&state.db, &state.reads, &actor, id).await?))
}

pub async fn content(
    State(state): State<AppState>,
    Caller(actor): Caller,
    DocumentIdParam(id): DocumentIdParam,
) -> ApiResult<Response> {
    let (document, bytes) = store::open(&state.db, &state.documents, &actor, id).await?;
    Ok(download(&document, bytes, "attachment"))
}

/// The document's bytes as a response: its sniffed type, its length, and a
/// disposition that names it.
pub fn download(document: &DocumentView, bytes: store::Content, disposition: &str) -> Response {
    let mut response = Body::from_stream(bytes).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&document.content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(document.size));
    if let Ok(value) = HeaderValue::from_str(&sniff::disposition(disposition, &document.name)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

pub async fn update(
    State(state): State<AppState>,
    Caller(actor): Caller,
    DocumentIdParam(id): DocumentIdParam,
    ApiJson(patch): ApiJson<DocumentPatch>,
) -> ApiResult<Json<DocumentView>> {
    Ok(Json(store::update(&state.db, &actor, id, patch).await?))
}

pub async fn delete(
    State(state): State<AppState>,
    Caller(actor): Caller,
    DocumentIdParam(id): DocumentIdParam,
) -> ApiResult<Json<DocumentView>> {
    Ok(Json(store::delete(&state.db, &actor, id).await?))
}

pub async fn restore(
    State(state): State<AppState>,
    Caller(actor): Caller,
    DocumentIdParam(id): DocumentIdParam,
) -> ApiResult<Json<DocumentView>> {
    Ok(Json(store::restore(&state.db, &actor, id).await?))
}
