//! Request extractors whose failures answer in the API's JSON error shape:
//! bodies, query strings, path ids and the bearer token.

use axum::{
    extract::{FromRequest, FromRequestParts, Request},
    http::{StatusCode, header, request::Parts},
};
use serde::de::DeserializeOwned;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::error::ApiError;
use crate::{
    auth::{Actor, tokens},
    error::FieldErrors,
    http::{client_ip, field_with_nul, path_id, path_param},
    ids::DocumentId,
    state::AppState,
};

/// A JSON body: malformed JSON → 400, wrong shape or types → 422 naming the
/// field, too large → 413, not JSON → 415.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        // The body was read in full, within the size limit, before routing
        // (`app::read_whole_body`).
        let limit = state.settings.server.max_body_bytes;
        let bytes = axum::body::to_bytes(req.into_body(), limit).await.map_err(|_| {
            ApiError::new(StatusCode::BAD_REQUEST, "unreadable_body", "the request body could not be read")
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first, so that broken JSON is always a 400 whatever its shape.
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|err| {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("the body is not valid JSON: {err}"))
    })?;
    let invalid = |field: String, message: String| {
        let mut error = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "some fields are invalid");
        error.fields.insert(field, message);
        error
    };
    if !value.is_object() {
        return Err(invalid("body".into(), "must be a JSON object".into()));
    }
    if let Some(field) = json_field_with_nul(&value, "") {
        return Err(invalid(field, NUL_MESSAGE.into()));
    }
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let (field, message) = describe_data_error(&path, &err.into_inner().to_string());
        invalid(field, message)
    })
}

pub const NUL_MESSAGE: &str = "contains a NUL character, which no text field accepts";

/// The dotted path of the first string (or key) holding a NUL character.
/// No text column on either database can store one, so it is refused here,
/// once for every body, rather than failing in the database.
fn json_field_with_nul(value: &serde_json::Value, path: &str) -> Option<String> {
    let join = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    match value {
        serde_json::Value::String(text) if text.contains('\0') => {
            Some(if path.is_empty() { "body".to_string() } else { path.to_string() })
        }
        serde_json::Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, item)| json_field_with_nul(item, &join(&i.to_string())))
        }
        serde_json::Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                Some(join(&key.replace('\0', "\\0")))
            } else {
                json_field_with_nul(item, &join(key))
            }
        }),
        _ => None,
    }
}

/// Turns serde's message into a field name and a message without the
/// " at line 1 column 30" suffix, naming missing fields by their own path.
fn describe_data_error(path: &str, raw: &str) -> (String, String) {
    let message = raw.split(" at line ").next().unwrap_or(raw).to_string();
    let join = |field: &str| {
        if path == "." || path.is_empty() { field.to_string() } else { format!("{path}.{field}") }
    };
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.trim_end_matches('`');
        return (join(name), "is required".into());
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        // Here the path already ends with the unknown field's own name.
        let name = rest.split('`').next().unwrap_or_default();
        let field = if path.ends_with(name) { path.to_string() } else { join(name) };
        return (field, "is not a known field".into());
    }
    let field = if path == "." || path.is_empty() { "body".to_string() } else { path.to_string() };
    (field, message)
}

/// A query string: anything that does not parse → 422.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if let Some(name) = field_with_nul(query.as_bytes()) {
            let mut error = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "some query parameters are invalid",
            );
            error.fields.insert(name, NUL_MESSAGE.into());
            return Err(error);
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|err| {
            let path = err.path().to_string();
            let (field, message) = describe_data_error(&path, &err.into_inner().to_string());
            let mut error = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "some query parameters are invalid",
            );
            error.fields.insert(field, message);
            error
        })
    }
}

/// A keyset cursor: the id of the last row shown, opaque to clients, with a
/// word naming the list so that a cursor of one list is refused by another.
pub fn encode_cursor(list: &str, id: i32) -> String {
    URL_SAFE_NO_PAD.encode(format!("{list}:{id}"))
}

fn decode_cursor(list: &str, cursor: &str) -> Option<i32> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    text.strip_prefix(list)?.strip_prefix(':')?.parse().ok().filter(|id| *id > 0)
}

/// A list's `limit` (default and most allowed) and `cursor` parameters; a
/// problem with either is noted in `errors` under its name.
pub fn page_params(
    errors: &mut FieldErrors,
    list: &str,
    limit: Option<u64>,
    (default, max): (u64, u64),
    cursor: Option<&str>,
) -> (u64, Option<i32>) {
    let limit = limit.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        errors.add("limit", format!("must be between 1 and {max}"));
    }
    let after = cursor.filter(|c| !c.is_empty()).and_then(|c| {
        let decoded = decode_cursor(list, c);
        if decoded.is_none() {
            errors.add("cursor", "is not a cursor this server gave out");
        }
        decoded
    });
    (limit, after)
}

/// The authenticated caller of an API route.
pub struct Caller(pub Actor);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        let Some(token) = token else {
            return Err(crate::error::AppError::Unauthenticated.into());
        };
        let ip = client_ip(parts, state.settings.server.trust_forwarded_for);
        let actor = tokens::authenticate(&state.db, token, ip).await?;
        crate::refusals::ActingUser::note(parts, &actor);
        Ok(Caller(actor))
    }
}

/// The numeric `{id}` in the path; anything else names no resource → 404.
/// `Id<CaseId>`, `Id<SpecialistId>`…: the id's type says what it names.
pub struct Id<T>(pub T);

impl<T: From<i32> + Send> FromRequestParts<AppState> for Id<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        path_id(parts, "id").await.map(|id| Id(T::from(id))).ok_or_else(ApiError::not_found)
    }
}

/// The `{kind}` segment of a records checklist path.
pub struct KindParam(pub String);

impl FromRequestParts<AppState> for KindParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        path_param(parts, "kind").await.map(KindParam).ok_or_else(ApiError::not_found)
    }
}

/// The numeric `{contact_id}` of a contact log path; anything else → 404.
pub struct DocumentIdParam(pub DocumentId);

impl FromRequestParts<AppState> for DocumentIdParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        path_id(parts, "doc_id").await.map(|id| DocumentIdParam(DocumentId(id))).ok_or_else(ApiError::not_found)
    }
}

pub struct ContactIdParam(pub i32);

impl FromRequestParts<AppState> for ContactIdParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        path_id(parts, "contact_id").await.map(ContactIdParam).ok_or_else(ApiError::not_found)
    }
}

/// The `{partner_id}` of a care partner address.
pub struct PartnerIdParam(pub i32);

impl FromRequestParts<AppState> for PartnerIdParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        path_id(parts, "partner_id").await.map(PartnerIdParam).ok_or_else(ApiError::not_found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(decode_cursor("id", &encode_cursor("id", 42)), Some(42));
        assert_eq!(decode_cursor("id", "not-a-cursor"), None);
        assert_eq!(decode_cursor("id", &URL_SAFE_NO_PAD.encode("id:abc")), None);
        assert_eq!(decode_cursor("id", &URL_SAFE_NO_PAD.encode("id:-4")), None);
        assert_eq!(decode_cursor("audit", &encode_cursor("id", 42)), None, "another list's cursor");
    }
}
