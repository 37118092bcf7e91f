//! `GET /api/v1/audit`: the audit trail for admins, filtered and newest
//! first, a page at a time with an opaque cursor.

use axum::{Json, extract::State};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    error::ApiResult,
    extract::{ApiQuery, Caller},
};
use crate::{
    app::AppState,
    audit::{
        ACTIONS,
        search::{self, AuditFilter, DEFAULT_LIMIT, MAX_LIMIT},
    },
    db::entities::audit_entry,
    error::FieldErrors,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(default)]
    case_id: Option<i32>,
    #[serde(default)]
    user_id: Option<i32>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AuditAnswer {
    items: Vec<AuditItem>,
    next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AuditItem {
    id: i32,
    at: DateTime<Utc>,
    actor: ActorOut,
    action: String,
    subject: SubjectOut,
    address: Option<String>,
    details: Value,
}

#[derive(Debug, Serialize)]
struct ActorOut {
    /// The user, when the actor was one.
    user_id: Option<i32>,
    /// The user's email at the time, or what acted (`system:…`, `anonymous`).
    label: String,
}

#[derive(Debug, Serialize)]
struct SubjectOut {
    #[serde(rename = "type")]
    kind: String,
    id: Option<i32>,
    case_id: Option<i32>,
}

impl From<audit_entry::Model> for AuditItem {
    fn from(entry: audit_entry::Model) -> Self {
        // Details are stored as JSON text; anything else is shown as the text.
        let details = serde_json::from_str(&entry.detail).unwrap_or(Value::String(entry.detail));
        AuditItem {
            id: entry.id,
            at: entry.at,
            actor: ActorOut { user_id: entry.actor_id, label: entry.actor },
            action: entry.action,
            subject: SubjectOut { kind: entry.entity, id: entry.entity_id, case_id: entry.case_id },
            address: entry.ip,
            details,
        }
    }
}

const CURSOR_PREFIX: &str = "audit:";

fn encode_cursor(before_id: i32) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{before_id}"))
}

fn decode_cursor(cursor: &str) -> Option<i32> {
    let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(raw).ok()?;
    text.strip_prefix(CURSOR_PREFIX)?.parse().ok().filter(|id| *id > 0)
}

fn parse_time(errors: &mut FieldErrors, field: &str, value: Option<&str>) -> Option<DateTime<Utc>> {
    let value = value.map(str::trim).filter(|v| !v.is_empty())?;
    match DateTime::parse_from_rfc3339(value) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(_) => {
            errors.add(field, "must be an RFC 3339 time, such as 2026-05-01T09:00:00Z");
            None
        }
    }
}

pub async fn list(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditAnswer>> {
    // Refuse before judging the parameters: non-admins learn nothing here.
    search::ensure_admin(&actor)?;
    let mut errors = FieldErrors::new();
    let since = parse_time(&mut errors, "since", query.since.as_deref());
    let until = parse_time(&mut errors, "until", query.until.as_deref());
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        errors.add("limit", format!("must be between 1 and {MAX_LIMIT}"));
    }
    let before_id = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(cursor) => {
            let decoded = decode_cursor(cursor);
            if decoded.is_none() {
                errors.add("cursor", "is not a cursor this server gave out");
            }
            decoded
        }
        None => None,
    };
    let action = query.action.map(|a| a.trim().to_string()).filter(|a| !a.is_empty());
    if action.as_deref().is_some_and(|a| !ACTIONS.contains(&a)) {
        errors.add("action", "is not an action the trail records");
    }
    errors.into_result()?;
    let filter = AuditFilter { case_id: query.case_id, user_id: query.user_id, action, since, until };
    let page = search::page(&state.db, &actor, &filter, before_id, limit).await?;
    Ok(Json(AuditAnswer {
        items: page.items.into_iter().map(AuditItem::from).collect(),
        next_cursor: page.next_before_id.map(encode_cursor),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_others_are_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        for bogus in ["42", "bm90IGEgY3Vyc29y", "!!!", &URL_SAFE_NO_PAD.encode("audit:-1")] {
            assert_eq!(decode_cursor(bogus), None, "{bogus}");
        }
    }
}
