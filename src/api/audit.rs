//! `GET /api/v1/audit`: the audit trail for admins, filtered and newest
//! first, a page at a time with an opaque cursor.

use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    error::ApiResult,
    extract::{ApiQuery, Caller, encode_cursor, page_params},
};
use crate::{
    audit::{
        ACTIONS,
        search::{self, AuditFilter, DEFAULT_LIMIT, MAX_LIMIT},
    },
    db::entities::audit_entry,
    error::FieldErrors,
    state::AppState,
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

/// The word in this list's cursors.
const CURSOR_LIST: &str = "audit";

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
    let (limit, before_id) =
        page_params(&mut errors, CURSOR_LIST, query.limit, (DEFAULT_LIMIT, MAX_LIMIT), query.cursor.as_deref());
    let action = query.action.map(|a| a.trim().to_string()).filter(|a| !a.is_empty());
    if action.as_deref().is_some_and(|a| !ACTIONS.contains(&a)) {
        errors.add("action", "is not an action the trail records");
    }
    errors.into_result()?;
    let filter = AuditFilter { case_id: query.case_id, user_id: query.user_id, action, since, until };
    state.reads.flush().await;
    let page = search::page(&state.db, &actor, &filter, before_id, limit).await?;
    Ok(Json(AuditAnswer {
        items: page.items.into_iter().map(AuditItem::from).collect(),
        next_cursor: page.next_before_id.map(|id| encode_cursor(CURSOR_LIST, id)),
    }))
}
