//! Records requests: asking a provider for some of a case's records, on the
//! patient's right of access (with its legal clock) or on their
//! authorization, and following the request until the records arrive, the
//! provider refuses, or it is cancelled. The clock is pure (`clock`); this
//! module loads, checks access through the case, applies and audits.

pub mod clock;
pub mod figures;
pub mod letter;
pub mod pdf;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, prelude::Expr,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    actor::Actor,
    audit::{Subject, reads::ReadTrail},
    cases::store::{self as case_store, CaseWrite},
    config::RecordsRequestSettings,
    db::entities::{document, provider, records_request, records_request_kind},
    error::{AppError, AppResult, FieldErrors},
    ids::CaseId,
    validate::{check_text, limits},
    vocabulary::{RecordKind, RequestMethod, RequestState, RequestType},
};

/// The audit action of every change to a case's records requests.
pub const CHANGED: &str = "case.records_request";

/// Most requests listed for one case.
const MOST_PER_CASE: u64 = 200;

/// A request as the API and pages show it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestView {
    pub id: i32,
    pub case_id: i32,
    pub provider_id: i32,
    pub provider_name: String,
    /// The zone the provider's days (and so the due date) are counted in.
    pub provider_timezone: String,
    #[serde(rename = "type")]
    pub request_type: RequestType,
    /// The checklist kinds asked for.
    pub kinds: Vec<RecordKind>,
    /// Of those, the ones that arrived.
    pub received: Vec<RecordKind>,
    pub state: RequestState,
    pub method: Option<RequestMethod>,
    pub sent_at: Option<DateTime<Utc>>,
    pub received_by_provider_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    /// The due date before the extension, once extended.
    pub first_due_at: Option<DateTime<Utc>>,
    pub extension: Option<ExtensionView>,
    pub denied_reason: Option<String>,
    /// Waiting on the provider past its due date.
    pub overdue: bool,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExtensionView {
    pub notice_received_at: DateTime<Utc>,
    pub reason: String,
    pub new_due_at: DateTime<Utc>,
}

/// A request as staff make it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    pub provider_id: i32,
    #[serde(rename = "type")]
    pub request_type: RequestType,
    pub kinds: Vec<RecordKind>,
    /// Given with `sent_at`, the request is sent; without, a draft.
    #[serde(default)]
    pub method: Option<RequestMethod>,
    #[serde(default)]
    pub sent_at: Option<DateTime<Utc>>,
    /// Defaults from the method (at once; mail some days later).
    #[serde(default)]
    pub received_by_provider_at: Option<DateTime<Utc>>,
}

/// `PATCH`: a move to another state, or corrected dates.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestPatch {
    #[serde(default)]
    pub state: Option<RequestState>,
    #[serde(default)]
    pub method: Option<RequestMethod>,
    #[serde(default)]
    pub sent_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub received_by_provider_at: Option<DateTime<Utc>>,
    /// Why the provider refused (with `state: denied`).
    #[serde(default)]
    pub denied_reason: Option<String>,
    /// When the provider's refusal arrived (with `state: denied`; now when left out).
    #[serde(default)]
    pub denied_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionInput {
    pub notice_received_at: DateTime<Utc>,
    pub reason: String,
    pub new_due_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptInput {
    pub kinds: Vec<RecordKind>,
    pub received_at: DateTime<Utc>,
    /// Documents of the case that brought these records.
    #[serde(default)]
    pub document_ids: Vec<i32>,
}

/// The periods that apply to `provider`: its jurisdiction's, else the defaults.
pub fn periods_for(settings: &RecordsRequestSettings, provider: &provider::Model) -> clock::Periods {
    let defaults = clock::Periods {
        response_days: settings.response_days,
        extension_days: settings.extension_days,
        authorization_days: settings.authorization_days,
        mail_days: settings.mail_days,
    };
    match provider.jurisdiction.as_deref().and_then(|j| settings.jurisdictions.get(j)) {
        Some(j) => clock::Periods {
            response_days: j.response_days,
            extension_days: j.extension_days.unwrap_or(defaults.extension_days),
            ..defaults
        },
        None => defaults,
    }
}

fn zone_of(provider: &provider::Model) -> Tz {
    provider.timezone.parse().unwrap_or(Tz::UTC)
}

/// The condition of requests waiting on their provider, word for word as
/// the partial index on their due dates has it, so both databases read
/// along that index (SQLite matches an index's condition only by its text).
pub const WAITING: &str = "state IN ('sent', 'acknowledged', 'partially_received')";

/// A request's state while it waits on the provider.
pub fn is_waiting(state: RequestState) -> bool {
    matches!(state, RequestState::Sent | RequestState::Acknowledged | RequestState::PartiallyReceived)
}

fn is_final(state: RequestState) -> bool {
    matches!(state, RequestState::Fulfilled | RequestState::Denied | RequestState::Cancelled)
}

async fn find_provider<C: ConnectionTrait>(conn: &C, id: i32) -> AppResult<provider::Model> {
    provider::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or_else(|| FieldErrors::single("provider_id", "no provider has this id"))
}

/// Dates from the wire fit the years both databases and the clock handle,
/// and what already happened is not in the future.
fn check_dates(errors: &mut FieldErrors, now: DateTime<Utc>, past: &[(&str, Option<DateTime<Utc>>)]) {
    for (field, at) in past {
        if let Some(at) = at {
            crate::validate::check_instant(errors, field, at);
            if *at > now + chrono::Duration::minutes(5) {
                errors.add(*field, "cannot be in the future");
            }
        }
    }
}

/// The sending dates of a request: when the provider received it, and when
/// it is first due.
fn sending(
    periods: &clock::Periods,
    provider: &provider::Model,
    kind: RequestType,
    method: RequestMethod,
    sent_at: DateTime<Utc>,
    received: Option<DateTime<Utc>>,
) -> AppResult<(DateTime<Utc>, DateTime<Utc>)> {
    let latest = clock::received_by_provider(periods, RequestMethod::Mail, sent_at);
    let received = received.unwrap_or_else(|| clock::received_by_provider(periods, method, sent_at));
    if received < sent_at {
        return Err(FieldErrors::single("received_by_provider_at", "cannot be before the request was sent"));
    }
    if received > latest {
        return Err(FieldErrors::single(
            "received_by_provider_at",
            format!("cannot be more than {} days after the request was sent", periods.mail_days),
        ));
    }
    Ok((received, clock::due_at(periods, kind, received, zone_of(provider))))
}

pub async fn create(
    db: &DatabaseConnection,
    settings: &RecordsRequestSettings,
    actor: &Actor,
    case_id: CaseId,
    new: NewRequest,
) -> AppResult<RequestView> {
    let mut errors = FieldErrors::new();
    let kinds: BTreeSet<RecordKind> = new.kinds.iter().copied().collect();
    if kinds.is_empty() {
        errors.add("kinds", "name at least one record to ask for");
    }
    if new.sent_at.is_some() != new.method.is_some() {
        errors.add("sent_at", "a sent request needs both its method and when it was sent");
    }
    let now = crate::db::now();
    check_dates(&mut errors, now, &[("sent_at", new.sent_at)]);
    if let Some(at) = new.received_by_provider_at {
        crate::validate::check_instant(&mut errors, "received_by_provider_at", &at);
    }
    errors.into_result()?;
    let w = case_store::begin_case_write(db, actor, case_id.get(), CHANGED).await?;
    ensure_case_open(&w)?;
    let provider = find_provider(&w.txn, new.provider_id).await?;
    let periods = periods_for(settings, &provider);
    let (state, received, due) = match (new.method, new.sent_at) {
        (Some(method), Some(sent_at)) => {
            let (received, due) =
                sending(&periods, &provider, new.request_type, method, sent_at, new.received_by_provider_at)?;
            (RequestState::Sent, Some(received), Some(due))
        }
        _ => (RequestState::Draft, None, None),
    };
    let row = records_request::ActiveModel {
        case_id: Set(w.case.id),
        provider_id: Set(provider.id),
        request_type: Set(new.request_type),
        state: Set(state),
        method: Set(new.method),
        sent_at: Set(new.sent_at),
        received_by_provider_at: Set(received),
        first_due_at: Set(due),
        due_at: Set(due),
        extension_notice_received_at: Set(None),
        extension_reason: Set(None),
        denied_reason: Set(None),
        closed_at: Set(None),
        created_by: Set(actor.user_id),
        created_at: Set(w.now),
        updated_at: Set(w.now),
        ..Default::default()
    }
    .insert(&w.txn)
    .await?;
    for kind in &kinds {
        records_request_kind::ActiveModel {
            request_id: Set(row.id),
            kind: Set(*kind),
            received_at: Set(None),
            recorded_at: Set(None),
            ..Default::default()
        }
        .insert(&w.txn)
        .await?;
    }
    if state == RequestState::Sent {
        figures::count(&w.txn, provider.id, figures::MADE, 1).await?;
    }
    let detail = json!({ "request_id": row.id, "action": "created", "state": state, "type": row.request_type });
    let id = row.id;
    w.commit_with(actor, Default::default(), CHANGED, detail).await?;
    view_of(db, id).await
}

fn ensure_case_open(w: &CaseWrite) -> AppResult<()> {
    if w.case.stage.is_final() {
        return Err(AppError::conflict("case_closed", "the case is closed; its records requests can no longer change"));
    }
    Ok(())
}

/// The request `id` with the case write it belongs to (access checked there).
async fn begin(db: &DatabaseConnection, actor: &Actor, id: i32) -> AppResult<(CaseWrite, records_request::Model)> {
    let case_id: Option<i32> = records_request::Entity::find_by_id(id)
        .select_only()
        .column(records_request::Column::CaseId)
        .into_tuple()
        .one(db)
        .await?;
    let case_id = case_id.ok_or(AppError::NotFound)?;
    let w = case_store::begin_case_write(db, actor, case_id, CHANGED).await?;
    let row = records_request::Entity::find_by_id(id).one(&w.txn).await?.ok_or(AppError::NotFound)?;
    Ok((w, row))
}

pub async fn update(
    db: &DatabaseConnection,
    settings: &RecordsRequestSettings,
    actor: &Actor,
    id: i32,
    patch: RequestPatch,
) -> AppResult<RequestView> {
    let mut errors = FieldErrors::new();
    check_dates(&mut errors, crate::db::now(), &[("sent_at", patch.sent_at), ("denied_at", patch.denied_at)]);
    if let Some(at) = patch.received_by_provider_at {
        crate::validate::check_instant(&mut errors, "received_by_provider_at", &at);
    }
    if patch.denied_reason.is_some() && patch.state != Some(RequestState::Denied) {
        errors.add("denied_reason", "goes with state denied");
    }
    if patch.denied_at.is_some() && patch.state != Some(RequestState::Denied) {
        errors.add("denied_at", "goes with state denied");
    }
    errors.into_result()?;
    let (w, row) = begin(db, actor, id).await?;
    ensure_case_open(&w)?;
    if is_final(row.state) {
        return Err(AppError::conflict(
            "request_closed",
            format!("the request is {}; it can no longer change", row.state.label().to_lowercase()),
        ));
    }
    let provider = find_provider(&w.txn, row.provider_id).await?;
    let periods = periods_for(settings, &provider);
    let mut changes = row.clone().into_active_model();
    let method = patch.method.or(row.method);
    let sent_at = patch.sent_at.or(row.sent_at);
    let redate = patch.method.is_some() || patch.sent_at.is_some() || patch.received_by_provider_at.is_some();
    let to = patch.state.unwrap_or(row.state);
    // Dates are corrected while the request is merely sent; once the
    // provider answered in any way they stand.
    if redate && !matches!(row.state, RequestState::Draft | RequestState::Sent) {
        return Err(AppError::conflict(
            "dates_fixed",
            "the provider has answered this request; its sending dates can no longer change",
        ));
    }
    match to {
        RequestState::Draft if row.state != RequestState::Draft => {
            return Err(AppError::conflict("invalid_state", "a sent request cannot go back to draft"));
        }
        RequestState::Sent if row.state != RequestState::Draft && row.state != RequestState::Sent => {
            return Err(AppError::conflict("invalid_state", "the request was sent already"));
        }
        RequestState::Sent if row.state == RequestState::Sent && patch.state.is_some() && !redate => {
            return Err(AppError::conflict("invalid_state", "the request was sent already"));
        }
        RequestState::PartiallyReceived | RequestState::Fulfilled if to != row.state => {
            return Err(AppError::conflict(
                "invalid_state",
                "record what arrived with POST …/receipts; the request follows",
            ));
        }
        RequestState::Acknowledged if row.state != RequestState::Sent && row.state != RequestState::Acknowledged => {
            return Err(AppError::conflict("invalid_state", "only a sent request can be acknowledged"));
        }
        RequestState::Denied if row.state == RequestState::Draft => {
            return Err(AppError::conflict("invalid_state", "a draft was never sent; cancel it instead"));
        }
        RequestState::Denied => {
            let reason = patch.denied_reason.clone().unwrap_or_default();
            let mut errors = FieldErrors::new();
            check_text(&mut errors, "denied_reason", &reason, limits::SHORT_TEXT, true);
            errors.into_result()?;
            let denied_at = patch.denied_at.unwrap_or(w.now);
            if row.sent_at.is_some_and(|sent| denied_at < sent) {
                return Err(FieldErrors::single("denied_at", "cannot be before the request was sent"));
            }
            changes.denied_reason = Set(Some(reason.trim().to_string()));
            changes.closed_at = Set(Some(denied_at));
        }
        RequestState::Cancelled => changes.closed_at = Set(Some(w.now)),
        _ => {}
    }
    let sending_now = row.state == RequestState::Draft && to == RequestState::Sent;
    if sending_now || (redate && row.state != RequestState::Draft) {
        if row.extension_notice_received_at.is_some() && !sending_now {
            return Err(AppError::conflict(
                "extension_recorded",
                "the request was extended; its dates are fixed by the provider's notice",
            ));
        }
        let (Some(method), Some(sent_at)) = (method, sent_at) else {
            return Err(FieldErrors::single("sent_at", "a sent request needs its method and when it was sent"));
        };
        let received = patch.received_by_provider_at.or(if patch.method.is_some() || patch.sent_at.is_some() {
            None
        } else {
            row.received_by_provider_at
        });
        let (received, due) = sending(&periods, &provider, row.request_type, method, sent_at, received)?;
        changes.method = Set(Some(method));
        changes.sent_at = Set(Some(sent_at));
        changes.received_by_provider_at = Set(Some(received));
        changes.first_due_at = Set(Some(due));
        changes.due_at = Set(Some(due));
    } else if redate {
        changes.method = Set(method);
        changes.sent_at = Set(sent_at);
    }
    changes.state = Set(to);
    changes.updated_at = Set(w.now);
    let after = changes.update(&w.txn).await?;
    if sending_now {
        figures::count(&w.txn, row.provider_id, figures::MADE, 1).await?;
    }
    if to != row.state
        && let Some(key) = figures::answered(&after, None)
    {
        figures::count(&w.txn, row.provider_id, key, 1).await?;
    }
    let detail = json!({ "request_id": id, "action": "updated", "from": row.state, "to": to, "redated": redate });
    w.commit_with(actor, Default::default(), CHANGED, detail).await?;
    view_of(db, id).await
}

/// Records the provider's one extension.
pub async fn extend(
    db: &DatabaseConnection,
    settings: &RecordsRequestSettings,
    actor: &Actor,
    id: i32,
    input: ExtensionInput,
) -> AppResult<RequestView> {
    let mut errors = FieldErrors::new();
    check_text(&mut errors, "reason", &input.reason, limits::SHORT_TEXT, true);
    check_dates(&mut errors, crate::db::now(), &[("notice_received_at", Some(input.notice_received_at))]);
    crate::validate::check_instant(&mut errors, "new_due_at", &input.new_due_at);
    errors.into_result()?;
    let (w, row) = begin(db, actor, id).await?;
    ensure_case_open(&w)?;
    if row.extension_notice_received_at.is_some() {
        return Err(AppError::conflict(
            "extension_used",
            "the request was extended once already; a provider gets one extension",
        ));
    }
    let (Some(received), Some(first_due)) = (row.received_by_provider_at, row.first_due_at) else {
        return Err(AppError::conflict("not_sent", "only a sent request can be extended"));
    };
    if !is_waiting(row.state) {
        return Err(AppError::conflict(
            "request_closed",
            "only a request still waiting on the provider can be extended",
        ));
    }
    let provider = find_provider(&w.txn, row.provider_id).await?;
    let periods = periods_for(settings, &provider);
    // The new date is a day of the provider's: its end, in their zone.
    let zone = zone_of(&provider);
    let new_due_at = clock::end_of(input.new_due_at.with_timezone(&zone).date_naive(), zone);
    let asked = clock::ExtensionAsked { notice_received_at: input.notice_received_at, new_due_at };
    let new_due =
        clock::extend(&periods, received, first_due, zone, false, &asked).map_err(|refusal| match refusal {
            clock::ExtensionRefusal::Used => AppError::conflict(
                "extension_used",
                "the request was extended once already; a provider gets one extension",
            ),
            clock::ExtensionRefusal::TooLate => AppError::conflict(
                "extension_too_late",
                "the provider's notice arrived after the first period ended; an extension must be given within it",
            ),
            clock::ExtensionRefusal::NotLater => {
                FieldErrors::single("new_due_at", "must be after the current due date")
            }
            clock::ExtensionRefusal::TooLong => FieldErrors::single(
                "new_due_at",
                format!("may be at most {} days after the first due date", periods.extension_days),
            ),
            clock::ExtensionRefusal::BeforeReceipt => {
                FieldErrors::single("notice_received_at", "cannot be before the provider received the request")
            }
        })?;
    let mut changes = row.into_active_model();
    changes.extension_notice_received_at = Set(Some(input.notice_received_at));
    changes.extension_reason = Set(Some(input.reason.trim().to_string()));
    changes.due_at = Set(Some(new_due));
    changes.updated_at = Set(w.now);
    changes.update(&w.txn).await?;
    let detail = json!({ "request_id": id, "action": "extended", "new_due_at": new_due });
    w.commit_with(actor, Default::default(), CHANGED, detail).await?;
    view_of(db, id).await
}

/// Records what arrived: those kinds are received on the request and on
/// the case's checklist, the documents are filed with the request, and the
/// request is partly received or, once every kind has come, fulfilled.
pub async fn receive(db: &DatabaseConnection, actor: &Actor, id: i32, input: ReceiptInput) -> AppResult<RequestView> {
    let (w, row) = begin(db, actor, id).await?;
    ensure_case_open(&w)?;
    if !is_waiting(row.state) {
        return Err(AppError::conflict(
            "not_waiting",
            format!("the request is {}; records are received on a sent request", row.state.label().to_lowercase()),
        ));
    }
    let mut errors = FieldErrors::new();
    if input.kinds.is_empty() {
        errors.add("kinds", "name the records that arrived");
    }
    check_dates(&mut errors, w.now, &[("received_at", Some(input.received_at))]);
    if input.document_ids.len() > 50 {
        errors.add("document_ids", "at most 50 documents a receipt");
    }
    if row.sent_at.is_some_and(|sent| input.received_at < sent) {
        errors.add("received_at", "cannot be before the request was sent");
    }
    let asked =
        records_request_kind::Entity::find().filter(records_request_kind::Column::RequestId.eq(id)).all(&w.txn).await?;
    for kind in &input.kinds {
        if !asked.iter().any(|a| a.kind == *kind) {
            errors.add("kinds", format!("{} was not asked for in this request", kind.label()));
        }
    }
    let documents = if input.document_ids.is_empty() {
        Vec::new()
    } else {
        document::Entity::find()
            .filter(document::Column::Id.is_in(input.document_ids.clone()))
            .filter(document::Column::CaseId.eq(w.case.id))
            .filter(document::Column::DeletedAt.is_null())
            .all(&w.txn)
            .await?
    };
    if documents.len() != input.document_ids.iter().collect::<BTreeSet<_>>().len() {
        errors.add("document_ids", "name documents of this case");
    }
    errors.into_result()?;
    for kind in &input.kinds {
        records_request_kind::Entity::update_many()
            .col_expr(records_request_kind::Column::ReceivedAt, Expr::value(input.received_at))
            .col_expr(records_request_kind::Column::RecordedAt, Expr::value(w.now))
            .filter(records_request_kind::Column::RequestId.eq(id))
            .filter(records_request_kind::Column::Kind.eq(*kind))
            .filter(records_request_kind::Column::ReceivedAt.is_null())
            .exec(&w.txn)
            .await?;
        if let Some(detail) = case_store::mark_record_received(&w, *kind).await? {
            crate::audit::record_at(&w.txn, actor, "case.record", Subject::case(w.case.id), detail, w.now).await?;
        }
    }
    if !documents.is_empty() {
        document::Entity::update_many()
            .col_expr(document::Column::RecordsRequestId, Expr::value(id))
            .filter(document::Column::Id.is_in(documents.iter().map(|d| d.id)))
            .exec(&w.txn)
            .await?;
    }
    let arrived: BTreeSet<RecordKind> =
        asked.iter().filter(|a| a.received_at.is_some()).map(|a| a.kind).chain(input.kinds.iter().copied()).collect();
    let complete = asked.iter().all(|a| arrived.contains(&a.kind));
    let state = if complete { RequestState::Fulfilled } else { RequestState::PartiallyReceived };
    let provider_id = row.provider_id;
    let mut changes = row.into_active_model();
    changes.state = Set(state);
    if complete {
        changes.closed_at = Set(Some(w.now));
    }
    changes.updated_at = Set(w.now);
    let after = changes.update(&w.txn).await?;
    if complete {
        let last = figures::last_arrival(&w.txn, id).await?;
        if let Some(key) = figures::answered(&after, last) {
            figures::count(&w.txn, provider_id, key, 1).await?;
        }
    }
    let detail = json!({
        "request_id": id, "action": "received", "kinds": input.kinds, "documents": documents.len(), "state": state,
    });
    w.commit_with(actor, Default::default(), CHANGED, detail).await?;
    view_of(db, id).await
}

/// A case's requests, newest first; the read is audited.
pub async fn of_case(
    db: &DatabaseConnection,
    reads: &ReadTrail,
    actor: &Actor,
    case_id: CaseId,
) -> AppResult<Vec<RequestView>> {
    case_store::check_access(db, actor, case_id.get(), case_store::VIEWED).await?;
    let rows = records_request::Entity::find()
        .filter(records_request::Column::CaseId.eq(case_id.get()))
        .order_by_desc(records_request::Column::Id)
        .limit(MOST_PER_CASE)
        .all(db)
        .await?;
    reads
        .record(actor, case_store::VIEWED, Subject::case(case_id.get()), json!({ "part": "records_requests" }))
        .await?;
    views(db, rows).await
}

/// Every request of a case, oldest first, for its export (the caller
/// checked access and audits).
pub async fn all_of_case<C: ConnectionTrait>(conn: &C, case_id: i32) -> AppResult<Vec<RequestView>> {
    let rows = records_request::Entity::find()
        .filter(records_request::Column::CaseId.eq(case_id))
        .order_by_asc(records_request::Column::Id)
        .all(conn)
        .await?;
    views(conn, rows).await
}

/// One request, for staff who may see its case.
pub async fn get(db: &DatabaseConnection, actor: &Actor, id: i32) -> AppResult<RequestView> {
    let row = records_request::Entity::find_by_id(id).one(db).await?.ok_or(AppError::NotFound)?;
    case_store::check_access(db, actor, row.case_id, case_store::VIEWED).await?;
    views(db, vec![row]).await?.pop().ok_or(AppError::NotFound)
}

async fn view_of(db: &DatabaseConnection, id: i32) -> AppResult<RequestView> {
    let row = records_request::Entity::find_by_id(id).one(db).await?.ok_or(AppError::NotFound)?;
    views(db, vec![row]).await?.pop().ok_or(AppError::NotFound)
}

async fn views<C: ConnectionTrait>(conn: &C, rows: Vec<records_request::Model>) -> AppResult<Vec<RequestView>> {
    let ids: Vec<i32> = rows.iter().map(|r| r.id).collect();
    let provider_ids: Vec<i32> = rows.iter().map(|r| r.provider_id).collect();
    let kinds = records_request_kind::Entity::find()
        .filter(records_request_kind::Column::RequestId.is_in(ids))
        .order_by_asc(records_request_kind::Column::Id)
        .all(conn)
        .await?;
    let providers = crate::providers::by_id(conn, provider_ids).await?;
    let now = crate::db::now();
    Ok(rows
        .into_iter()
        .map(|r| {
            let mine = kinds.iter().filter(|k| k.request_id == r.id);
            let extension = match (r.extension_notice_received_at, &r.extension_reason, r.due_at) {
                (Some(notice), Some(reason), Some(due)) => {
                    Some(ExtensionView { notice_received_at: notice, reason: reason.clone(), new_due_at: due })
                }
                _ => None,
            };
            RequestView {
                id: r.id,
                case_id: r.case_id,
                provider_id: r.provider_id,
                provider_name: providers.get(&r.provider_id).map(|p| p.name.clone()).unwrap_or_default(),
                provider_timezone: providers.get(&r.provider_id).map(|p| p.timezone.clone()).unwrap_or_default(),
                request_type: r.request_type,
                kinds: mine.clone().map(|k| k.kind).collect(),
                received: mine.filter(|k| k.received_at.is_some()).map(|k| k.kind).collect(),
                state: r.state,
                method: r.method,
                sent_at: r.sent_at,
                received_by_provider_at: r.received_by_provider_at,
                overdue: is_waiting(r.state) && r.due_at.is_some_and(|due| clock::is_overdue(due, now)),
                due_at: r.due_at,
                first_due_at: extension.as_ref().and(r.first_due_at),
                extension,
                denied_reason: r.denied_reason,
                created_at: r.created_at,
                closed_at: r.closed_at,
            }
        })
        .collect())
}

/// Where a letter's facts come from beyond the request: the sender's name
/// for the organisation, and the day it is written in the writer's zone.
pub struct LetterContext<'a> {
    pub settings: &'a RecordsRequestSettings,
    pub organisation: &'a str,
    pub zone: Tz,
}

/// The request and its letter, for staff who may see its case; the read is audited.
pub async fn letter_for(
    db: &DatabaseConnection,
    reads: &ReadTrail,
    actor: &Actor,
    context: &LetterContext<'_>,
    id: i32,
) -> AppResult<(RequestView, letter::Letter)> {
    use crate::db::entities::{case, case_round, specialist, user};
    let request = get(db, actor, id).await?;
    let case = case::Entity::find_by_id(request.case_id).one(db).await?.ok_or(AppError::NotFound)?;
    if case.erased_at.is_some() {
        return Err(AppError::conflict("case_erased", "the patient data of this case was erased"));
    }
    let provider = find_provider(db, request.provider_id).await?;
    let advocate_id = case.advocate_id.or(actor.user_id);
    let advocate = match advocate_id {
        Some(id) => user::Entity::find_by_id(id).one(db).await?,
        None => None,
    };
    let round = case_round::Entity::find()
        .filter(case_round::Column::CaseId.eq(case.id))
        .filter(case_round::Column::Round.eq(case.round))
        .one(db)
        .await?;
    let specialist_id = round.and_then(|r| r.specialist_id);
    let specialist_name = match specialist_id {
        Some(id) => specialist::Entity::find_by_id(id).one(db).await?.map(|s| s.name),
        None => None,
    };
    let now = crate::db::now();
    let patient_zone: Tz = case.patient_timezone.parse().unwrap_or(context.zone);
    // A signature counts for a year, as the text signed says.
    let authorization = crate::cases::consent::in_force(db, case.id, case.round, specialist_id)
        .await?
        .filter(|c| c.signed_at > now - chrono::Duration::days(365))
        .map(|c| {
            let named = if c.specialist_id.is_some() { specialist_name.as_deref() } else { None };
            let text = crate::cases::consent::text_for(named);
            // Quoted only when these are exactly the words signed.
            let same = c.text_version == crate::cases::consent::TEXT_VERSION
                && crate::cases::consent::text_digest(&text) == c.text_sha256;
            letter::SignedAuthorization {
                text: same.then_some(text),
                signer_name: c.signer_name,
                signed_on: c.signed_at.with_timezone(&patient_zone).date_naive(),
                on_paper: c.method == crate::cases::consent::Method::Paper.as_str(),
            }
        });
    let facts = letter::LetterFacts {
        request_id: request.id,
        request_type: request.request_type,
        kinds: request.kinds.clone(),
        received: request.received.clone(),
        written_on: now.with_timezone(&context.zone).date_naive(),
        case_reference: case.reference,
        patient_name: case.patient_name,
        patient_email: case.patient_email,
        patient_phone: case.patient_phone,
        advocate_name: advocate.as_ref().map_or_else(|| "Your patient advocate".to_string(), |a| a.name.clone()),
        advocate_email: advocate.map(|a| a.email).unwrap_or_default(),
        organisation: context.organisation.to_string(),
        provider_name: provider.name.clone(),
        provider_address: provider.address.clone(),
        provider_fax: provider.fax.clone(),
        provider_email: provider.email.clone(),
        provider_zone: zone_of(&provider),
        received_by_provider_at: request.received_by_provider_at,
        due_at: request.due_at,
        extension_notice_received_at: request.extension.as_ref().map(|e| e.notice_received_at),
        first_due_at: request.first_due_at,
        periods: periods_for(context.settings, &provider),
        jurisdiction: provider.jurisdiction.clone().filter(|j| context.settings.jurisdictions.contains_key(j)),
        specialist_name,
        authorization,
    };
    reads
        .record(
            actor,
            case_store::VIEWED,
            Subject::case(request.case_id),
            json!({ "part": "records_request_letter", "request_id": id }),
        )
        .await?;
    Ok((request, letter::letter(&facts)))
}

/// Files the request's letter as a PDF among the case's documents. A
/// release letter without the patient's signed authorization is refused.
pub async fn save_letter(
    db: &DatabaseConnection,
    reads: &ReadTrail,
    documents: &crate::documents::store::Documents,
    actor: &Actor,
    context: &LetterContext<'_>,
    id: i32,
) -> AppResult<crate::documents::store::DocumentView> {
    let (request, letter) = letter_for(db, reads, actor, context, id).await?;
    if let Some(missing) = letter.missing {
        return Err(AppError::conflict("authorization_missing", missing));
    }
    if is_final(request.state) {
        return Err(AppError::conflict(
            "request_closed",
            format!("the request is {}; its letter is no longer sent", request.state.label().to_lowercase()),
        ));
    }
    let unsupported = pdf::unsupported(&letter);
    if !unsupported.is_empty() {
        let shown: String = unsupported.iter().take(10).collect();
        return Err(AppError::conflict(
            "letter_needs_print",
            format!(
                "the letter has characters the PDF's fonts cannot set ({shown}); print the letter page instead \
                 (a browser can print it to a PDF) so names stay as they are written"
            ),
        ));
    }
    let bytes = bytes::Bytes::from(pdf::render(&letter));
    let name = format!("Records request {} to {}.pdf", request.id, request.provider_name);
    let body = futures_util::stream::once(async move { Ok::<_, AppError>(bytes) });
    let file = crate::documents::store::store_file(documents, request.case_id, &name, Box::pin(body)).await?;
    let new = crate::documents::store::NewDocument {
        kind: crate::vocabulary::DocumentKind::Letter,
        record_kind: None,
        round: None,
        mark_received: false,
    };
    crate::documents::store::add(db, documents, actor, CaseId(request.case_id), new, file).await
}
