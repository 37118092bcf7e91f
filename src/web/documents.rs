//! The case page's documents: the upload form (a plain multipart form, with
//! a progress bar where scripts run), downloads, the viewer for images and
//! PDFs, renaming, deleting and (for admins) restoring.

use askama::Template;
use axum::{
    extract::{FromRequestParts, Multipart, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{Html, IntoResponse, Redirect, Response},
};

use super::{
    FormFields, FormState, Nav, PathId, Staff,
    case_pages::{self, render_case_page},
    error::{PageError, PageResult},
    render,
};
use crate::{
    documents::{
        sniff,
        store::{self, DocumentPatch},
    },
    error::{AppError, FieldErrors},
    http::{document_response, path_id, receive_upload},
    ids::{CaseId, DocumentId},
    state::AppState,
};

/// The `{doc_id}` of a document address.
pub struct PathDocumentId(pub DocumentId);

impl FromRequestParts<AppState> for PathDocumentId {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        path_id(parts, "doc_id")
            .await
            .map(|id| PathDocumentId(DocumentId(id)))
            .ok_or(PageError::App(AppError::NotFound))
    }
}

pub async fn upload(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<CaseId>,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> PageResult<Response> {
    let Ok(form) = form else {
        return Err(AppError::BadRequest("The upload form could not be read, so nothing was saved.".into()).into());
    };
    let mut sent = std::collections::BTreeMap::new();
    let result = async {
        store::check_case(&state.db, &staff.actor, id).await?;
        let (new, file) = receive_upload(&state, id, form, &mut sent).await?;
        let marked = new.mark_received;
        let added = store::add(&state.db, &state.documents, &staff.actor, id, new, file).await?;
        Ok::<_, AppError>((added, marked))
    }
    .await;
    match result {
        Ok((added, marked)) => {
            let also = match added.record_kind {
                Some(kind) if marked => format!(" {} is marked received.", kind.label()),
                _ => String::new(),
            };
            staff.flash_at("documents", format!("“{}” uploaded.{also}", added.name)).await;
            Ok(Redirect::to(&format!("/cases/{id}#documents")).into_response())
        }
        Err(err) => {
            // The file itself cannot be sent back; what was chosen beside it is.
            let (status, refused) = match err {
                AppError::TooLarge(message) => {
                    (StatusCode::PAYLOAD_TOO_LARGE, FieldErrors::single("file", sentence(&message)))
                }
                AppError::UnsupportedType(message) => {
                    (StatusCode::UNSUPPORTED_MEDIA_TYPE, FieldErrors::single("file", sentence(&message)))
                }
                AppError::FilesUnavailable(source) => {
                    tracing::error!(
                        error = &*source as &dyn std::error::Error,
                        "document storage unavailable from a page"
                    );
                    let message = "The document storage cannot be reached right now, so the file was not saved. \
                                   Please try again in a moment.";
                    (StatusCode::SERVICE_UNAVAILABLE, AppError::conflict("storage_unavailable", message))
                }
                AppError::Validation(fields) => (StatusCode::UNPROCESSABLE_ENTITY, AppError::Validation(fields)),
                AppError::Conflict { code, message, fields } => {
                    (StatusCode::CONFLICT, AppError::Conflict { code, message, fields })
                }
                other => return Err(other.into()),
            };
            let form = FormState::refused("documents", &FormFields(sent.into_iter().collect()), refused)?;
            Ok((status, render_case_page(&state, &staff, id, form).await?).into_response())
        }
    }
}

/// An API message as a sentence on a page: its first letter raised.
fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    chars.next().map(|c| c.to_uppercase().collect::<String>() + chars.as_str() + ".").unwrap_or_default()
}

pub async fn download(
    State(state): State<AppState>,
    staff: Staff,
    PathDocumentId(id): PathDocumentId,
) -> PageResult<Response> {
    let (document, bytes) = store::open(&state.db, &state.documents, &staff.actor, id).await?;
    Ok(document_response(&document, bytes, "attachment"))
}

#[derive(Template)]
#[template(path = "document_view.html")]
struct ViewPage {
    nav: Nav,
    case_id: i32,
    id: i32,
    name: String,
    is_image: bool,
}

/// A page showing an image or a PDF, framed: the file itself is served
/// with a policy that runs nothing and may only be framed by this site.
pub async fn view(
    State(state): State<AppState>,
    staff: Staff,
    PathDocumentId(id): PathDocumentId,
) -> PageResult<Html<String>> {
    let document = store::get(&state.db, &state.reads, &staff.actor, id).await?;
    if !document.viewable {
        return Err(PageError::App(AppError::conflict(
            "not_viewable",
            "this kind of document cannot be shown in the browser: download it instead",
        )));
    }
    render(&ViewPage {
        nav: staff.nav().await,
        case_id: document.case_id,
        id: document.id,
        is_image: document.content_type.starts_with("image/"),
        name: document.name,
    })
}

/// The bytes of a viewable document, shown in place within the viewer page.
pub async fn inline(
    State(state): State<AppState>,
    staff: Staff,
    PathDocumentId(id): PathDocumentId,
) -> PageResult<Response> {
    let (document, bytes) = store::open(&state.db, &state.documents, &staff.actor, id).await?;
    if !sniff::viewable(&document.content_type) {
        return Ok(document_response(&document, bytes, "attachment"));
    }
    let mut response = document_response(&document, bytes, "inline");
    let headers = response.headers_mut();
    // Chromium will not show a PDF inside a sandbox, so instead of one the
    // file gets a policy that loads and runs nothing of its own.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'self'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("SAMEORIGIN"));
    Ok(response)
}

pub async fn rename(
    State(state): State<AppState>,
    staff: Staff,
    PathDocumentId(id): PathDocumentId,
    fields: FormFields,
) -> PageResult<Response> {
    let patch = DocumentPatch { name: Some(fields.text("name")), ..Default::default() };
    let result = store::update(&state.db, &staff.actor, id, patch).await;
    after(&state, &staff, &fields, result, "Renamed.").await
}

pub async fn delete(
    State(state): State<AppState>,
    staff: Staff,
    PathDocumentId(id): PathDocumentId,
    fields: FormFields,
) -> PageResult<Response> {
    let result = store::delete(&state.db, &staff.actor, id).await;
    let done = if staff.actor.is_admin() {
        "Deleted. It can be restored from the deleted documents below until it is purged."
    } else {
        "Deleted. An admin can restore it until it is purged."
    };
    after(&state, &staff, &fields, result, done).await
}

pub async fn restore(
    State(state): State<AppState>,
    staff: Staff,
    PathDocumentId(id): PathDocumentId,
    fields: FormFields,
) -> PageResult<Response> {
    let result = store::restore(&state.db, &staff.actor, id).await;
    after(&state, &staff, &fields, result, "Restored.").await
}

/// Back to the case's documents with a message, or the case page with the
/// problem shown by the documents.
async fn after(
    state: &AppState,
    staff: &Staff,
    fields: &FormFields,
    result: crate::error::AppResult<store::DocumentView>,
    done: &str,
) -> PageResult<Response> {
    // A refusal is shown on the case the form was sent from.
    let case_id = match &result {
        Ok(document) => Some(document.case_id),
        Err(_) => fields.text("case_id").trim().parse::<i32>().ok().filter(|id| *id > 0),
    };
    match case_id {
        Some(id) => case_pages::finish(state, staff, CaseId(id), "documents", fields, result, done).await,
        None => Err(result.err().unwrap_or(AppError::NotFound).into()),
    }
}
