//! `/admin/audit`: the audit trail for admins — filters, a page of entries
//! in the viewer's time zone with a link to older ones, and the filtered
//! entries as a CSV download written batch by batch.

use askama::Template;
use axum::{
    body::{Body, Bytes},
    extract::{Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::SecondsFormat;
use futures_util::stream;
use serde::Deserialize;

use super::{Clock, Nav, Staff, error::PageResult, render};
use crate::{
    audit::{
        self, ACTIONS, AuditFilter, Subject,
        search::{self, EXPORT_MAX_ROWS, Export},
    },
    db::entities::audit_entry,
    error::FieldErrors,
    state::AppState,
};

const PAGE_SIZE: u64 = 50;

/// The form's fields, as typed. Numbers stay text so that a bad one is
/// reported on the page instead of refusing the whole request.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    case: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    before: Option<String>,
}

fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn parse_id(errors: &mut FieldErrors, field: &str, value: &Option<String>) -> Option<i32> {
    let value = given(value)?;
    match value.parse::<i32>() {
        Ok(id) if id > 0 => Some(id),
        _ => {
            errors.add(field, "must be a number (an id)");
            None
        }
    }
}

impl AuditQuery {
    /// The filter and the paging position, or what is wrong with the fields.
    fn parse(&self, clock: &Clock) -> Result<(AuditFilter, Option<i32>), FieldErrors> {
        let mut errors = FieldErrors::new();
        let case_id = parse_id(&mut errors, "case", &self.case);
        let user_id = parse_id(&mut errors, "user", &self.user);
        let before = parse_id(&mut errors, "before", &self.before);
        let action = given(&self.action).map(str::to_string);
        if action.as_deref().is_some_and(|a| !ACTIONS.contains(&a)) {
            errors.add("action", "is not an action the trail records");
        }
        let mut time = |field: &str, value: &Option<String>| {
            given(value).and_then(|v| clock.parse_input(v).map_err(|m| errors.add(field, m)).ok())
        };
        let since = time("since", &self.since);
        let until = time("until", &self.until);
        if errors.is_empty() {
            Ok((AuditFilter { case_id, user_id, action, since, until }, before))
        } else {
            Err(errors)
        }
    }

    /// The filters as a query string, leaving out the paging position.
    fn filters(&self, before: Option<i32>) -> String {
        let mut pairs = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("case", &self.case),
            ("user", &self.user),
            ("action", &self.action),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if let Some(value) = given(value) {
                pairs.append_pair(name, value);
            }
        }
        if let Some(id) = before {
            pairs.append_pair("before", &id.to_string());
        }
        pairs.finish()
    }
}

pub struct Row {
    pub at: String,
    pub actor: String,
    pub actor_id: Option<i32>,
    pub action: String,
    pub subject: String,
    pub case_id: Option<i32>,
    pub address: String,
    pub details: String,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    nav: Nav,
    tz: String,
    actions: &'static [&'static str],
    case: String,
    user: String,
    action: String,
    since: String,
    until: String,
    problems: Vec<(String, String)>,
    rows: Vec<Row>,
    paged: bool,
    newest_link: String,
    older_link: Option<String>,
    csv_link: String,
    export_cap: String,
}

/// What an entry is about, when that is not simply its case (which is linked).
fn subject_text(entry: &audit_entry::Model) -> String {
    match entry.entity_id {
        Some(id) if entry.entity == "case" && entry.case_id == Some(id) => String::new(),
        Some(id) => format!("{} {id}", entry.entity),
        None => entry.entity.clone(),
    }
}

/// Details as `name: value` pairs, leaving out empty values, for reading at
/// a glance; the CSV and the API keep the stored JSON.
fn details_text(detail: &str) -> String {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str::<serde_json::Value>(detail) else {
        return detail.to_string();
    };
    fields
        .iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(name, value)| match value {
            serde_json::Value::String(text) => format!("{name}: {text}"),
            other => format!("{name}: {other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn page(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<AuditQuery>,
) -> PageResult<Response> {
    staff.require_admin()?;
    let clock = staff.clock();
    let (result, problems) = match query.parse(&clock) {
        Ok((filter, before)) => {
            state.reads.flush().await;
            (Some((search::page(&state.db, &staff.actor, &filter, before, PAGE_SIZE).await?, before)), vec![])
        }
        Err(errors) => (None, errors.0.into_iter().collect()),
    };
    let (entries, next, paged) = match result {
        Some((page, before)) => (page.items, page.next_before_id, before.is_some()),
        None => (Vec::new(), None, false),
    };
    let rows = entries
        .iter()
        .map(|e| Row {
            at: clock.at(&e.at),
            actor: e.actor.clone(),
            actor_id: e.actor_id,
            action: e.action.clone(),
            subject: subject_text(e),
            case_id: e.case_id,
            address: e.ip.clone().unwrap_or_default(),
            details: details_text(&e.detail),
        })
        .collect();
    let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let field = |v: &Option<String>| v.clone().unwrap_or_default();
    let page = AuditPage {
        nav: staff.nav().await,
        tz: clock.tz.name().to_string(),
        actions: ACTIONS,
        case: field(&query.case),
        user: field(&query.user),
        action: field(&query.action),
        since: field(&query.since),
        until: field(&query.until),
        problems,
        rows,
        paged,
        newest_link: format!("/admin/audit?{}", query.filters(None)),
        older_link: next.map(|id| format!("/admin/audit?{}", query.filters(Some(id)))),
        csv_link: format!("/admin/audit.csv?{}", query.filters(None)),
        export_cap: group_thousands(EXPORT_MAX_ROWS),
    };
    Ok((status, render(&page)?).into_response())
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A CSV cell. Text a spreadsheet would take for a formula gets a leading
/// `'`, so opening the file never runs what someone typed into SecondLook.
pub fn csv_cell(value: &str) -> String {
    let guarded =
        if value.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{value}") } else { value.to_string() };
    if guarded.contains([',', '"', '\n', '\r']) { format!("\"{}\"", guarded.replace('"', "\"\"")) } else { guarded }
}

const CSV_HEADER: &str = "id,at_utc,actor_id,actor,action,subject_type,subject_id,case_id,address,details\r\n";

fn csv_rows(entries: &[audit_entry::Model]) -> String {
    let mut out = String::with_capacity(entries.len() * 160);
    let opt = |v: Option<i32>| v.map(|v| v.to_string()).unwrap_or_default();
    for e in entries {
        let cells = [
            e.id.to_string(),
            e.at.to_rfc3339_opts(SecondsFormat::Micros, true),
            opt(e.actor_id),
            e.actor.clone(),
            e.action.clone(),
            e.entity.clone(),
            opt(e.entity_id),
            opt(e.case_id),
            e.ip.clone().unwrap_or_default(),
            e.detail.clone(),
        ];
        let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

enum Step {
    Header(Export),
    Rows(Export),
    Done,
}

type Chunk = Result<Bytes, std::io::Error>;

fn failed(err: impl std::fmt::Display) -> Chunk {
    // Ending the body with an error cuts the download short, so a partial
    // file is never taken for the whole.
    tracing::error!(error = %err, "audit CSV export failed part-way");
    Err(std::io::Error::other("the audit export failed"))
}

async fn next_chunk(step: Step) -> Option<(Chunk, Step)> {
    match step {
        Step::Header(export) => Some((Ok(Bytes::from_static(CSV_HEADER.as_bytes())), Step::Rows(export))),
        Step::Rows(mut export) => match export.next_batch().await {
            Err(err) => Some((failed(err), Step::Done)),
            Ok(rows) if rows.is_empty() => match export.was_capped().await {
                Ok(false) => None,
                Ok(true) => {
                    let note = format!(
                        ",,,,,,,,,{}\r\n",
                        csv_cell(&format!(
                            "Stopped at {EXPORT_MAX_ROWS} entries: narrow the filters to export older ones."
                        ))
                    );
                    Some((Ok(Bytes::from(note)), Step::Done))
                }
                Err(err) => Some((failed(err), Step::Done)),
            },
            Ok(rows) => Some((Ok(Bytes::from(csv_rows(&rows))), Step::Rows(export))),
        },
        Step::Done => None,
    }
}

pub async fn csv(State(state): State<AppState>, staff: Staff, Query(query): Query<AuditQuery>) -> PageResult<Response> {
    staff.require_admin()?;
    let (filter, _) = query.parse(&staff.clock()).map_err(crate::error::AppError::Validation)?;
    let detail = serde_json::json!({
        "case_id": filter.case_id, "user_id": filter.user_id, "action": filter.action,
        "since": filter.since, "until": filter.until,
    });
    // Taking a copy of the trail is itself on the record.
    audit::record(&state.db, &staff.actor, "audit.export", Subject::named("audit_log"), detail).await?;
    state.reads.flush().await;
    let export = Export::start(&state.db, &staff.actor, filter)?;
    let body = Body::from_stream(stream::unfold(Step::Header(export), next_chunk));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"secondlook-audit.csv\""),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_look_like_formulas_are_defused() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-2"), "'-2");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn details_read_as_pairs() {
        assert_eq!(
            details_text(r#"{"from":"records_requested","note":null,"ended_hold":false}"#),
            "ended_hold: false, from: records_requested"
        );
        assert_eq!(details_text("{}"), "");
        assert_eq!(details_text("not json"), "not json");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(100_000), "100,000");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1_000), "1,000");
    }
}
