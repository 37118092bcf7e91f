//! Pieces of HTTP handling shared by the JSON API and the staff pages: the
//! client's address, path parameters and document upload forms. Below
//! `api`, `web` and `refusals`.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::request::Parts,
};

use crate::{
    documents::{
        self,
        store::{NewDocument, StoredFile},
    },
    error::FieldErrors,
    state::AppState,
    vocabulary::{DocumentKind, RecordKind},
};

/// The client's address for the audit log.
pub fn client_ip(parts: &Parts, trust_forwarded_for: bool) -> Option<String> {
    if trust_forwarded_for {
        let forwarded = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip().to_string())
}

/// The client's address, as [`client_ip`] finds it.
pub struct ClientIp(pub Option<String>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts, state.settings.server.trust_forwarded_for)))
    }
}

/// The first field of a query string or form body whose name or value holds
/// a NUL character (no text column on either database can store one), named
/// printably; `None` when there is none.
pub fn field_with_nul(encoded: &[u8]) -> Option<String> {
    form_urlencoded::parse(encoded)
        .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        .map(|(name, _)| name.replace('\0', "\\0"))
}

/// A named parameter of the matched route, as written in the address.
pub async fn path_param(parts: &mut Parts, wanted: &str) -> Option<String> {
    let params = axum::extract::RawPathParams::from_request_parts(parts, &()).await.ok()?;
    params.iter().find(|(name, _)| *name == wanted).map(|(_, value)| value.to_string())
}

/// A named id of the matched route: a positive number, or `None` (which
/// names no row, so answers as a missing one).
pub async fn path_id(parts: &mut Parts, wanted: &str) -> Option<i32> {
    path_param(parts, wanted).await.and_then(|value| value.parse::<i32>().ok()).filter(|id| *id > 0)
}

/// The largest upload form body: the file, its fields and their framing.
pub fn upload_limit(documents: &crate::config::DocumentSettings) -> usize {
    usize::try_from(documents.max_file_bytes).unwrap_or(usize::MAX).saturating_add(64 * 1024)
}

/// Whether a request is a document upload, whose body streams to storage
/// instead of being read whole first.
pub fn is_upload(method: &axum::http::Method, path: &str, content_type: Option<&str>) -> bool {
    method == axum::http::Method::POST
        && path.ends_with("/documents")
        && content_type.is_some_and(|t| t.starts_with("multipart/form-data"))
}

/// The most bytes a text field of an upload form may hold.
const UPLOAD_FIELD_BYTES: usize = 1024;

/// Reads an upload form (`multipart/form-data`): the file streams straight
/// into storage, sealed, while the other fields are read as they come, in
/// any order, into `fields` (so a refused form can be shown again as it
/// was). Nothing stays stored when the form turns out wrong.
pub async fn receive_upload(
    state: &AppState,
    case_id: crate::ids::CaseId,
    mut form: axum::extract::Multipart,
    fields: &mut std::collections::BTreeMap<String, String>,
) -> crate::error::AppResult<(NewDocument, StoredFile)> {
    let mut file: Option<StoredFile> = None;
    let read: crate::error::AppResult<()> = async {
        while let Some(mut field) = form.next_field().await.map_err(unreadable_upload)? {
            let name = field.name().unwrap_or_default().to_string();
            if name == "file" {
                if file.is_some() {
                    return Err(FieldErrors::single("file", "holds more than one file: send one per upload"));
                }
                let file_name = field.file_name().unwrap_or_default().to_string();
                let body = futures_util::TryStreamExt::map_err(&mut field, unreadable_upload);
                file = Some(documents::store::store_file(&state.documents, case_id.get(), &file_name, body).await?);
                continue;
            }
            if !UPLOAD_FIELDS.contains(&name.as_str()) {
                return Err(FieldErrors::single(name, "is not a field of a document upload"));
            }
            let mut text = Vec::new();
            while let Some(piece) = field.chunk().await.map_err(unreadable_upload)? {
                text.extend_from_slice(&piece);
                if text.len() > UPLOAD_FIELD_BYTES {
                    return Err(FieldErrors::single(name, "is too long"));
                }
            }
            let text = String::from_utf8(text).map_err(|_| FieldErrors::single(name.clone(), "is not text"))?;
            fields.insert(name, text);
        }
        Ok(())
    }
    .await;
    let described = read.and_then(|()| describe_upload(fields, file.is_some()));
    match (described, file) {
        (Ok(new), Some(file)) => Ok((new, file)),
        (Ok(_), None) => Err(FieldErrors::single("file", "is missing: choose a file to upload")),
        (Err(err), file) => {
            if let Some(file) = file {
                file.discard(&state.documents).await;
            }
            Err(err)
        }
    }
}

/// The fields an upload form may have besides the file.
const UPLOAD_FIELDS: [&str; 4] = ["kind", "record_kind", "round", "mark_received"];

/// What the fields of an upload form say about its file.
fn describe_upload(
    fields: &std::collections::BTreeMap<String, String>,
    has_file: bool,
) -> crate::error::AppResult<NewDocument> {
    let mut errors = FieldErrors::new();
    let given = |name: &str| fields.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let record_kind = given("record_kind").and_then(|word| {
        let parsed = RecordKind::parse(word);
        if parsed.is_none() {
            errors.add("record_kind", "is not a kind of record on the checklist");
        }
        parsed
    });
    let kind = match given("kind") {
        Some(word) => DocumentKind::parse(word).unwrap_or_else(|| {
            errors.add("kind", "is not a kind of document");
            DocumentKind::Other
        }),
        None => match record_kind {
            Some(record) => DocumentKind::of_record(record),
            None => {
                errors.add("kind", "is missing: say what the document is");
                DocumentKind::Other
            }
        },
    };
    let round = given("round").and_then(|word| {
        let parsed = crate::vocabulary::parse_round(word);
        if parsed.is_none() {
            errors.add("round", "must be an opinion round: original, second, third…");
        }
        parsed
    });
    let mark_received = given("mark_received").is_some_and(|v| matches!(v, "true" | "on" | "yes" | "1"));
    if !has_file {
        errors.add("file", "is missing: choose a file to upload");
    }
    errors.into_result()?;
    Ok(NewDocument { kind, record_kind, round, mark_received })
}

fn unreadable_upload(err: axum::extract::multipart::MultipartError) -> crate::error::AppError {
    if err.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        crate::error::AppError::TooLarge("the upload is larger than the size limit".into())
    } else {
        crate::error::AppError::BadRequest(format!("the upload could not be read: {}", err.body_text()))
    }
}

/// The document's bytes as a response: its sniffed type, its length, and a
/// disposition that names it.
pub fn document_response(
    document: &documents::store::DocumentView,
    bytes: documents::store::Content,
    disposition: &str,
) -> axum::response::Response {
    use axum::{
        http::{HeaderValue, header},
        response::IntoResponse,
    };
    let mut response = axum::body::Body::from_stream(bytes).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&document.content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(document.size));
    if let Ok(value) = HeaderValue::from_str(&documents::sniff::disposition(disposition, &document.name)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}
