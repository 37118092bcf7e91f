//! `/api/v1/cases/{id}/documents` and `/api/v1/documents/{doc_id}`: a
//! case's documents, under the case's access rules. Uploads are
//! `multipart/form-data` (`file`, `kind`, optional `record_kind`, `round`,
//! `mark_received`); the content always downloads as an attachment.

use axum::{
    Json,
    extract::{Multipart, State, multipart::MultipartRejection},
    http::StatusCode,
    response::Response,
};
use serde_json::{Value, json};

use super::{
    error::{ApiError, ApiResult},
    extract::{ApiJson, Caller, DocumentIdParam, Id},
};
use crate::{
    documents::store::{self, DocumentPatch, DocumentView},
    http::{document_response, receive_upload},
    ids::CaseId,
    state::AppState,
};

pub async fn upload(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Id(id): Id<CaseId>,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<DocumentView>)> {
    store::check_case(&state.db, &actor, id).await?;
    let form = form.map_err(|_| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the document as multipart/form-data, with the file in a part named \"file\"",
        )
    })?;
    let (new, file) = receive_upload(&state, id, form, &mut Default::default()).await?;
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
    Ok(document_response(&document, bytes, "attachment"))
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
