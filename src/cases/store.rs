//! Case operations against the database: every read checks access, every
//! write locks the case row, applies the stage rules, and writes its audit
//! entry in the same transaction.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, prelude::Expr,
    sea_query::ExprTrait,
};
use serde::Deserialize;
use serde_json::json;

use super::{
    Stage, Urgency,
    aggregate::{self, CaseState},
    schedule::{ServiceLevels, StageClock},
    stage::{self, Refusal},
    tallies,
    values::{ConsultationMode, HoldReason, OpinionChoice, Reason, RecordKind, RecordStatus, parse_round, round_name},
    view::{self, CaseListItem, CaseView},
};
use crate::{
    actor::{Actor, Scope},
    audit::reads::ReadTrail,
    audit::{self, Subject},
    config::CaseSettings,
    db::{
        self,
        entities::{case, case_record, case_round, opinion, specialist, stage_change, user},
    },
    error::{AppError, AppResult, FieldErrors},
    ids::CaseId,
    validate::{
        check_email, check_instant, check_language, check_line, check_phone, check_text, check_timezone, is_given,
        limits,
    },
};

/// What a case operation needs besides the database and the actor.
#[derive(Debug, Clone)]
pub struct CaseRules {
    pub levels: ServiceLevels,
    pub defaults: CaseSettings,
    /// The consultation may be marked held only once the patient has signed
    /// the authorization to share their records.
    pub consent_required: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPatient {
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCase {
    pub patient: NewPatient,
    pub specialty: String,
    pub reason: Reason,
    pub urgency: Urgency,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub advocate_id: Option<i32>,
    /// Symptom and treatment history, in the patient's words or the advocate's.
    #[serde(default)]
    pub medical_history: String,
    #[serde(default)]
    pub medications: String,
    /// The questions the patient wants the specialist to answer.
    #[serde(default)]
    pub patient_questions: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    pub to: Stage,
    #[serde(default)]
    pub note: Option<String>,
    /// The specialist for the round being entered, when moving to `specialist_chosen`.
    #[serde(default)]
    pub specialist_id: Option<i32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    pub reason: HoldReason,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordUpdate {
    pub status: RecordStatus,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecialistChoice {
    pub specialist_id: i32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsultationInput {
    pub scheduled_at: DateTime<Utc>,
    pub mode: ConsultationMode,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub held_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpinionInput {
    pub round: String,
    pub clinician: String,
    pub diagnosis: String,
    pub treatment_plan: String,
    pub recommends_surgery: bool,
    #[serde(default)]
    pub notes: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComparisonInput {
    pub diagnosis_agrees: bool,
    pub treatment_agrees: bool,
    #[serde(default)]
    pub risk_notes: String,
    #[serde(default)]
    pub outcome_notes: String,
    #[serde(default)]
    pub cost_notes: String,
    #[serde(default)]
    pub summary: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionInput {
    pub chosen_opinion: String,
    pub reason: String,
}

/// `PATCH`: absent fields stay as they are; `advocate_id: null` unassigns.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CasePatch {
    #[serde(default, deserialize_with = "present")]
    pub advocate_id: Option<Option<i32>>,
    #[serde(default)]
    pub urgency: Option<Urgency>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub medical_history: Option<String>,
    #[serde(default)]
    pub medications: Option<String>,
    #[serde(default)]
    pub patient_questions: Option<String>,
}

impl CasePatch {
    /// Only the assignment: to an advocate, or (`None`) the unassigned queue.
    pub fn assign(advocate_id: Option<i32>) -> Self {
        Self { advocate_id: Some(advocate_id), ..Self::default() }
    }
}

fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub stage: Option<Stage>,
    pub overdue: bool,
    pub advocate_id: Option<i32>,
    pub query: Option<String>,
    /// Only closed cases (`true`) or only open ones (`false`).
    pub closed: Option<bool>,
    pub limit: u64,
    /// Continue after this case id (keyset pagination, newest first).
    pub after_id: Option<i32>,
}

pub struct CasePage {
    pub items: Vec<CaseListItem>,
    pub next_after_id: Option<i32>,
}

pub async fn create(db: &DatabaseConnection, rules: &CaseRules, actor: &Actor, new: NewCase) -> AppResult<CaseView> {
    let mut errors = FieldErrors::new();
    let p = &new.patient;
    check_line(&mut errors, "patient.name", &p.name, limits::NAME, true);
    check_email(&mut errors, "patient.email", &p.email);
    if let Some(phone) = p.phone.as_deref().filter(|s| !s.is_empty()) {
        check_phone(&mut errors, "patient.phone", phone);
    }
    let timezone =
        p.timezone.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| rules.defaults.default_timezone.clone());
    check_timezone(&mut errors, "patient.timezone", &timezone);
    let language =
        p.language.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| rules.defaults.default_language.clone());
    check_language(&mut errors, "patient.language", &language);
    check_line(&mut errors, "specialty", &new.specialty, limits::SPECIALTY, true);
    check_text(&mut errors, "summary", &new.summary, limits::LONG_TEXT, false);
    for (field, value) in [
        ("medical_history", &new.medical_history),
        ("medications", &new.medications),
        ("patient_questions", &new.patient_questions),
    ] {
        check_text(&mut errors, field, value, limits::LONG_TEXT, false);
    }
    let advocate_id = match actor.scope {
        Scope::OwnCases(me) => {
            if new.advocate_id.is_some_and(|id| id != me) {
                errors.add("advocate_id", "advocates can only open cases for themselves");
            }
            Some(me)
        }
        Scope::Everything => new.advocate_id,
        Scope::OneCase(_) => return Err(AppError::Forbidden("only staff can open cases".into())),
    };
    errors.into_result()?;

    let now = db::now();
    let txn = db::begin_write(db).await?;
    if let Some(id) = advocate_id {
        ensure_assignable(&txn, id).await?;
    }
    let clock = StageClock::entered(now);
    let stage = Stage::RecordsRequested;
    // The reference carries the row id, which exists only after the insert.
    let placeholder = format!("pending-{}", hex_token()?);
    let row = case::ActiveModel {
        reference: Set(placeholder),
        patient_name: Set(p.name.clone()),
        patient_email: Set(p.email.trim().to_string()),
        patient_phone: Set(p.phone.clone().filter(|s| !s.is_empty())),
        patient_timezone: Set(timezone),
        patient_language: Set(language),
        specialty: Set(new.specialty.clone()),
        reason: Set(new.reason),
        urgency: Set(new.urgency),
        summary: Set(new.summary.clone()),
        advocate_id: Set(advocate_id),
        stage: Set(stage),
        round: Set(2),
        stage_entered_at: Set(now),
        stage_due_at: Set(clock.due_at(&rules.levels, stage, new.urgency)),
        held_since: Set(None),
        hold_reason: Set(None),
        hold_note: Set(None),
        held_seconds: Set(0),
        chosen_opinion: Set(None),
        decision_reason: Set(None),
        decided_at: Set(None),
        version: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        closed_at: Set(None),
        medical_history: Set(new.medical_history.clone()),
        medications: Set(new.medications.clone()),
        patient_questions: Set(new.patient_questions.clone()),
        nudge_token: Set(Some(unsubscribe_token()?)),
        nudges_stopped_at: Set(None),
        erased_at: Set(None),
        remind_at: Set(Some(now)),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let reference = format!("{}-{}-{:06}", rules.defaults.reference_prefix, now.format("%Y"), row.id);
    let mut active = row.clone().into_active_model();
    active.reference = Set(reference.clone());
    active.update(&txn).await?;
    let terms =
        super::search::case_terms(&row.patient_name, &row.patient_email, row.patient_phone.as_deref(), &reference);
    super::search::index_case(&txn, row.id, &terms).await?;

    case_round::ActiveModel { case_id: Set(row.id), round: Set(2), ..Default::default() }.insert(&txn).await?;
    // One statement for all records: the write lock is held for as short as can be.
    case_record::Entity::insert_many(RecordKind::ALL.iter().map(|kind| case_record::ActiveModel {
        case_id: Set(row.id),
        kind: Set(*kind),
        status: Set(RecordStatus::Requested),
        requested_at: Set(Some(now)),
        received_at: Set(None),
        note: Set(String::new()),
        updated_at: Set(now),
        ..Default::default()
    }))
    .exec(&txn)
    .await?;
    let entry = StageEntry { case_id: row.id, from: None, to: stage, round: 2, at: now, note: None };
    record_stage_entry(&txn, actor, entry).await?;
    tallies::apply(&txn, &tallies::opened(advocate_id, stage, now)).await?;
    tallies::apply(&txn, &tallies::due_moved(None, &row)).await?;
    audit::record(
        &txn,
        actor,
        "case.create",
        Subject::case(row.id),
        json!({ "reference": reference, "reason": new.reason, "urgency": new.urgency, "advocate_id": advocate_id }),
    )
    .await?;
    txn.commit().await?;
    view::load(db, row.id, now).await
}

/// One line of a case's stage history.
struct StageEntry {
    case_id: i32,
    from: Option<Stage>,
    to: Stage,
    round: i32,
    at: DateTime<Utc>,
    note: Option<String>,
}

async fn record_stage_entry<C: ConnectionTrait>(conn: &C, actor: &Actor, entry: StageEntry) -> AppResult<()> {
    stage_change::ActiveModel {
        case_id: Set(entry.case_id),
        from_stage: Set(entry.from),
        to_stage: Set(entry.to),
        round: Set(entry.round),
        at: Set(entry.at),
        by_user_id: Set(actor.user_id),
        note: Set(entry.note),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(())
}

async fn ensure_assignable<C: ConnectionTrait>(conn: &C, user_id: i32) -> AppResult<()> {
    let found = user::Entity::find_by_id(user_id).one(conn).await?;
    match found {
        Some(u) if u.active => Ok(()),
        _ => Err(FieldErrors::single("advocate_id", "no active staff member has this id")),
    }
}

/// The secret in a patient's unsubscribe link: 128 random bits.
pub fn unsubscribe_token() -> AppResult<String> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    Ok(URL_SAFE_NO_PAD.encode(crate::secrets::random_bytes::<16>()?))
}

fn hex_token() -> AppResult<String> {
    Ok(crate::secrets::hex(&crate::secrets::random_bytes::<8>()?))
}

/// Checks that the actor may see the case; a case they may not see answers
/// exactly like a missing one, and the attempt is audited.
pub(crate) async fn check_access(db: &DatabaseConnection, actor: &Actor, case_id: i32, what: &str) -> AppResult<()> {
    let advocate_id: Option<Option<i32>> =
        case::Entity::find_by_id(case_id).select_only().column(case::Column::AdvocateId).into_tuple().one(db).await?;
    match advocate_id {
        None => Err(AppError::NotFound),
        Some(owner) if actor.may_see_case(case_id, owner) => Ok(()),
        Some(_) => {
            audit::record_denied(db, actor, Subject::case(case_id), what).await;
            Err(AppError::NotFound)
        }
    }
}

pub async fn get(db: &DatabaseConnection, actor: &Actor, case_id: CaseId) -> AppResult<CaseView> {
    let case_id = case_id.get();
    check_access(db, actor, case_id, "case.view").await?;
    view::load(db, case_id, db::now()).await
}

/// Audit action for a person reading a case's health information.
pub const VIEWED: &str = "case.viewed";

/// Reads a case for a person to look at, leaving an entry in the audit
/// trail: who read which patient's record is part of the record.
pub async fn view(db: &DatabaseConnection, reads: &ReadTrail, actor: &Actor, case_id: CaseId) -> AppResult<CaseView> {
    Ok(view_with_state(db, reads, actor, case_id).await?.0)
}

/// [`view`], with the state the case's rules read (for the moves a page offers).
pub async fn view_with_state(
    db: &DatabaseConnection,
    reads: &ReadTrail,
    actor: &Actor,
    case_id: CaseId,
) -> AppResult<(CaseView, CaseState)> {
    let case_id = case_id.get();
    check_access(db, actor, case_id, VIEWED).await?;
    reads.record(actor, VIEWED, Subject::case(case_id), json!({})).await?;
    view::load_with_state(db, case_id, db::now()).await
}

pub async fn list(
    db: &DatabaseConnection,
    reads: &ReadTrail,
    actor: &Actor,
    filter: &ListFilter,
) -> AppResult<CasePage> {
    crate::validate::check_search("q", filter.query.as_deref())?;
    let now = db::now();
    let scope = super::scope::CaseScope::of(actor, filter.advocate_id);
    let mut cond = scope.condition();
    if let Some(stage) = filter.stage {
        cond = cond.add(case::Column::Stage.eq(stage));
    }
    match filter.closed {
        Some(true) => cond = cond.add(case::Column::ClosedAt.is_not_null()),
        Some(false) => cond = cond.add(case::Column::ClosedAt.is_null()),
        None => {}
    }
    if filter.overdue {
        cond = cond
            .add(case::Column::HeldSince.is_null())
            .add(case::Column::StageDueAt.is_not_null())
            .add(case::Column::StageDueAt.lt(now));
    }
    if let Some(q) = filter.query.as_deref()
        && let Some(matching) = super::search::matching(db, "q", q, &scope).await?
    {
        cond = cond.add(matching);
    }
    if let Some(after) = filter.after_id {
        cond = cond.add(case::Column::Id.lt(after));
    }
    let rows =
        case::Entity::find().filter(cond).order_by_desc(case::Column::Id).limit(filter.limit + 1).all(db).await?;
    let more = rows.len() as u64 > filter.limit;
    let items: Vec<CaseListItem> =
        rows.into_iter().take(filter.limit as usize).map(|row| CaseListItem::from_row(row, now)).collect();
    let next_after_id = if more { items.last().map(|i| i.id) } else { None };
    // The filters, but not the search text: it is often a patient's name.
    let detail = json!({
        "stage": filter.stage, "overdue": filter.overdue, "advocate_id": filter.advocate_id, "closed": filter.closed,
        "searched": is_given(filter.query.as_deref()),
        "later_page": filter.after_id.is_some(), "shown": items.len(),
    });
    reads.record(actor, audit::LISTED, Subject::named("cases"), detail).await?;
    Ok(CasePage { items, next_after_id })
}

/// A write in progress on one case: the transaction holds the case row
/// locked (PostgreSQL row lock, SQLite write lock) until commit, so
/// concurrent writes to one case apply one after another.
pub(crate) struct CaseWrite {
    pub(crate) txn: db::WriteTransaction,
    pub(crate) case: case::Model,
    pub(crate) now: DateTime<Utc>,
}

/// Locks the case row for the rest of the write transaction (PostgreSQL row
/// lock, SQLite write lock), bumping its version, and reads it.
pub(crate) async fn lock_case(txn: &DatabaseTransaction, case_id: i32) -> AppResult<case::Model> {
    let locked = case::Entity::update_many()
        .col_expr(case::Column::Version, Expr::col(case::Column::Version).add(1))
        .filter(case::Column::Id.eq(case_id))
        .exec(txn)
        .await?;
    if locked.rows_affected == 0 {
        return Err(AppError::NotFound);
    }
    case::Entity::find_by_id(case_id).one(txn).await?.ok_or(AppError::NotFound)
}

pub(crate) async fn begin_case_write(
    db: &DatabaseConnection,
    actor: &Actor,
    case_id: i32,
    what: &str,
) -> AppResult<CaseWrite> {
    check_access(db, actor, case_id, what).await?;
    let txn = db::begin_write(db).await?;
    let case = lock_case(&txn, case_id).await?;
    // The case may have been reassigned between the access check and the lock.
    if !actor.may_see_case(case.id, case.advocate_id) {
        return Err(AppError::NotFound);
    }
    // Nothing may be written back into a case whose patient data was erased.
    if case.erased_at.is_some() {
        return Err(AppError::conflict(
            "case_erased",
            "the patient data of this case was erased; it cannot be changed",
        ));
    }
    Ok(CaseWrite { txn, case, now: db::now() })
}

impl CaseWrite {
    pub(crate) fn ensure_open(&self) -> AppResult<Stage> {
        let stage = self.case.stage;
        if stage.is_final() {
            return Err(AppError::conflict(
                "case_closed",
                format!("the case is closed ({}); it can no longer be changed", stage.as_str()),
            ));
        }
        Ok(stage)
    }

    fn ensure_stage(&self, allowed: &[Stage], what: &str) -> AppResult<Stage> {
        let stage = self.ensure_open()?;
        if !allowed.contains(&stage) {
            let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
            return Err(AppError::conflict(
                "wrong_stage",
                format!(
                    "{what} can be changed only in stage {}; the case is in {}",
                    names.join(" or "),
                    stage.as_str()
                ),
            ));
        }
        Ok(stage)
    }

    async fn current_round(&self) -> AppResult<case_round::Model> {
        case_round::Entity::find()
            .filter(case_round::Column::CaseId.eq(self.case.id))
            .filter(case_round::Column::Round.eq(self.case.round))
            .one(&self.txn)
            .await?
            .ok_or_else(|| missing_round(&self.case))
    }

    fn clock(&self) -> StageClock {
        aggregate::clock_of(&self.case)
    }

    /// Writes the case row changes (always stamping `updated_at`), the audit
    /// entry, commits, and reads the case back.
    async fn finish(
        self,
        db: &DatabaseConnection,
        actor: &Actor,
        changes: case::ActiveModel,
        action: &str,
        detail: serde_json::Value,
    ) -> AppResult<CaseView> {
        let (case_id, now) = (self.case.id, self.now);
        self.commit_with(actor, changes, action, detail).await?;
        view::load(db, case_id, now).await
    }

    /// [`CaseWrite::finish`] without reading the case back, for writes whose
    /// answer is the row they added (the journal's).
    pub(crate) async fn commit_with(
        self,
        actor: &Actor,
        mut changes: case::ActiveModel,
        action: &str,
        detail: serde_json::Value,
    ) -> AppResult<()> {
        changes.id = Set(self.case.id);
        changes.updated_at = Set(self.now);
        // Whatever changed may change what is due: the reminder scan looks
        // at the case on its next tick.
        changes.remind_at = Set(Some(self.now));
        // What a patient or care partner does waits for an advocate to look.
        if matches!(actor.scope, Scope::OneCase(_)) && self.case.portal_activity_at.is_none() {
            changes.portal_activity_at = Set(Some(self.now));
        }
        let after = changes.update(&self.txn).await?;
        tallies::apply(&self.txn, &tallies::due_moved(Some(&self.case), &after)).await?;
        audit::record_at(&self.txn, actor, action, Subject::case(self.case.id), detail, self.now).await?;
        self.txn.commit().await?;
        Ok(())
    }
}

/// A case without a row for its current round is broken data, not bad input.
fn missing_round(case: &case::Model) -> AppError {
    AppError::Internal(format!("case {} has no row for round {}", case.id, case.round))
}

async fn find_specialist<C: ConnectionTrait>(conn: &C, field: &str, id: i32) -> AppResult<specialist::Model> {
    specialist::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or_else(|| FieldErrors::single(field, "no specialist has this id"))
}

pub async fn transition(
    db: &DatabaseConnection,
    rules: &CaseRules,
    actor: &Actor,
    case_id: CaseId,
    request: TransitionRequest,
) -> AppResult<CaseView> {
    let case_id = case_id.get();
    if let Some(note) = request.note.as_deref() {
        let mut errors = FieldErrors::new();
        check_text(&mut errors, "note", note, limits::LONG_TEXT, false);
        errors.into_result()?;
    }
    let w = begin_case_write(db, actor, case_id, "case.transition").await?;
    let from = w.case.stage;
    let state = CaseState::load(&w.txn, w.case.clone()).await?;
    let round = state.round.clone().ok_or_else(|| missing_round(&w.case))?;
    let chosen_specialist = match request.specialist_id {
        Some(id) => Some(find_specialist(&w.txn, "specialist_id", id).await?),
        None => None,
    };
    let mut ready = state.readiness(request.to, chosen_specialist.is_some());
    if rules.consent_required && request.to == Stage::ConsultationHeld {
        let specialist = chosen_specialist.as_ref().map(|s| s.id).or(round.specialist_id);
        ready.consent_missing = super::consent::in_force(&w.txn, case_id, w.case.round, specialist).await?.is_none();
    }
    let note = request.note.clone().filter(|n| !n.trim().is_empty());
    let step = stage::plan_move(from, request.to, &ready, note.as_deref(), w.now).map_err(refusal_error)?;

    let mut changes: case::ActiveModel = Default::default();
    let urgency = w.case.urgency;
    let clock = StageClock::entered(w.now);
    changes.stage = Set(step.to);
    changes.round = Set(step.round);
    changes.stage_entered_at = Set(w.now);
    changes.stage_due_at = Set(clock.due_at(&rules.levels, step.to, urgency));
    changes.held_since = Set(None);
    changes.hold_reason = Set(None);
    changes.hold_note = Set(None);
    changes.held_seconds = Set(0);
    if step.to.is_final() {
        changes.closed_at = Set(Some(w.now));
        // Records still asked of providers are no longer wanted: their
        // requests end with the case, so nobody is reminded of them.
        crate::db::entities::records_request::Entity::update_many()
            .col_expr(crate::db::entities::records_request::Column::State, Expr::value("cancelled"))
            .col_expr(crate::db::entities::records_request::Column::ClosedAt, Expr::value(w.now))
            .filter(crate::db::entities::records_request::Column::CaseId.eq(case_id))
            .filter(crate::db::entities::records_request::Column::State.is_in([
                "draft",
                "sent",
                "acknowledged",
                "partially_received",
            ]))
            .exec(&w.txn)
            .await?;
    }
    match step.kind {
        stage::MoveKind::FurtherOpinion => {
            case_round::ActiveModel {
                case_id: Set(case_id),
                round: Set(step.round),
                specialist_id: Set(chosen_specialist.as_ref().map(|s| s.id)),
                ..Default::default()
            }
            .insert(&w.txn)
            .await?;
        }
        stage::MoveKind::Forward => {
            let mut round_changes = round.clone().into_active_model();
            if let Some(s) = &chosen_specialist {
                round_changes.specialist_id = Set(Some(s.id));
            }
            if step.to == Stage::ConsultationHeld && round.consultation_held_at.is_none() {
                round_changes.consultation_held_at = Set(round.consultation_scheduled_at);
            }
            if round_changes.is_changed() {
                round_changes.update(&w.txn).await?;
            }
        }
        stage::MoveKind::Withdraw => {}
    }
    let entry = StageEntry { case_id, from: Some(from), to: step.to, round: step.round, at: w.now, note: note.clone() };
    record_stage_entry(&w.txn, actor, entry).await?;
    tallies::apply(&w.txn, &tallies::moved(&state, step.to, w.now)).await?;
    let detail = json!({
        "from": from, "to": step.to, "round": round_name(step.round), "with_note": note.is_some(),
        "specialist_id": chosen_specialist.map(|s| s.id), "ended_hold": w.case.held_since.is_some(),
    });
    w.finish(db, actor, changes, "case.transition", detail).await
}

fn refusal_error(refusal: Refusal) -> AppError {
    match refusal {
        Refusal::NotAllowed { from, to } => AppError::conflict(
            "invalid_transition",
            format!("a case cannot move from {} to {}", from.as_str(), to.as_str()),
        ),
        Refusal::Unmet(unmet) => {
            let fields = unmet
                .iter()
                .map(|r| {
                    (
                        serde_json::to_value(r).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
                        r.message().to_string(),
                    )
                })
                .collect();
            let list: Vec<&str> = unmet.iter().map(|r| r.message()).collect();
            AppError::Conflict {
                code: "requirements_unmet",
                message: format!("the case is not ready for this stage: {}", list.join("; ")),
                fields,
            }
        }
    }
}

pub async fn hold(
    db: &DatabaseConnection,
    actor: &Actor,
    case_id: CaseId,
    request: HoldRequest,
) -> AppResult<CaseView> {
    let case_id = case_id.get();
    let mut errors = FieldErrors::new();
    if let Some(note) = request.note.as_deref() {
        check_text(&mut errors, "note", note, limits::SHORT_TEXT, false);
    }
    errors.into_result()?;
    let w = begin_case_write(db, actor, case_id, "case.hold").await?;
    w.ensure_open()?;
    if w.case.held_since.is_some() {
        return Err(AppError::conflict("already_on_hold", "the case is already on hold"));
    }
    let clock = w.clock().hold(w.now);
    let changes = case::ActiveModel {
        held_since: Set(clock.held_since),
        hold_reason: Set(Some(request.reason)),
        hold_note: Set(request.note.clone().filter(|n| !n.trim().is_empty())),
        ..Default::default()
    };
    let detail = json!({ "reason": request.reason, "with_note": is_given(request.note.as_deref()) });
    w.finish(db, actor, changes, "case.hold", detail).await
}

pub async fn resume(db: &DatabaseConnection, rules: &CaseRules, actor: &Actor, case_id: CaseId) -> AppResult<CaseView> {
    let case_id = case_id.get();
    let w = begin_case_write(db, actor, case_id, "case.resume").await?;
    w.ensure_open()?;
    let Some((changes, detail)) = w.resumed(rules) else {
        return Err(AppError::conflict("not_on_hold", "the case is not on hold"));
    };
    w.finish(db, actor, changes, "case.resume", detail).await
}

impl CaseWrite {
    /// The changes that take an open case off hold (its stage clock runs
    /// again, the time held added), with the audit detail; `None` when the
    /// case is not on hold.
    pub(crate) fn resumed(&self, rules: &CaseRules) -> Option<(case::ActiveModel, serde_json::Value)> {
        let since = self.case.held_since?;
        let clock = self.clock().resume(self.now);
        let changes = case::ActiveModel {
            held_since: Set(None),
            hold_reason: Set(None),
            hold_note: Set(None),
            held_seconds: Set(clock.held_before.num_seconds()),
            stage_due_at: Set(clock.due_at(&rules.levels, self.case.stage, self.case.urgency)),
            ..Default::default()
        };
        let detail = json!({ "held_since": since, "held_seconds": (self.now - since).num_seconds() });
        Some((changes, detail))
    }
}

pub async fn set_record(
    db: &DatabaseConnection,
    actor: &Actor,
    case_id: CaseId,
    kind: RecordKind,
    update: RecordUpdate,
) -> AppResult<CaseView> {
    let case_id = case_id.get();
    check_record_note("note", &update)?;
    let w = begin_case_write(db, actor, case_id, "case.records").await?;
    w.ensure_open()?;
    let detail = apply_record(&w, kind, &update).await?;
    w.finish(db, actor, Default::default(), "case.record", detail).await
}

/// Saves what changed in the records checklist in one write: each record
/// in `updates` whose status or note differs from what is stored, and with
/// `mark_requested_received` every other record still requested, marked
/// received. One audit entry per record changed. Returns how many changed.
pub async fn set_records(
    db: &DatabaseConnection,
    actor: &Actor,
    case_id: CaseId,
    updates: &[(RecordKind, RecordUpdate)],
    mark_requested_received: bool,
) -> AppResult<usize> {
    let case_id = case_id.get();
    let mut errors = FieldErrors::new();
    for (kind, update) in updates {
        check_text(&mut errors, &format!("note.{}", kind.as_str()), &update.note, limits::SHORT_TEXT, false);
    }
    errors.into_result()?;
    let w = begin_case_write(db, actor, case_id, "case.records").await?;
    w.ensure_open()?;
    let stored: Vec<case_record::Model> =
        case_record::Entity::find().filter(case_record::Column::CaseId.eq(case_id)).all(&w.txn).await?;
    let mut wanted: Vec<(RecordKind, RecordUpdate)> = updates.to_vec();
    if mark_requested_received {
        for record in stored.iter().filter(|r| r.status == RecordStatus::Requested) {
            if !wanted.iter().any(|(kind, _)| *kind == record.kind) {
                let update = RecordUpdate { status: RecordStatus::Received, note: record.note.clone() };
                wanted.push((record.kind, update));
            }
        }
    }
    let mut changed = Vec::new();
    for (kind, update) in &wanted {
        let same = stored.iter().any(|r| r.kind == *kind && r.status == update.status && r.note == update.note);
        if !same {
            changed.push(apply_record(&w, *kind, update).await?);
        }
    }
    let Some(last) = changed.pop() else {
        w.txn.rollback().await?;
        return Ok(0);
    };
    for detail in &changed {
        audit::record_at(&w.txn, actor, "case.record", Subject::case(case_id), detail.clone(), w.now).await?;
    }
    w.commit_with(actor, Default::default(), "case.record", last).await?;
    Ok(changed.len() + 1)
}

fn check_record_note(field: &str, update: &RecordUpdate) -> AppResult<()> {
    let mut errors = FieldErrors::new();
    check_text(&mut errors, field, &update.note, limits::SHORT_TEXT, false);
    errors.into_result()
}

/// Writes one record's status and note in the case's write; the audit detail.
/// Marks a checklist item received inside a case write that is under way
/// (a document filed for it), keeping its note. The change's audit detail,
/// or `None` when the item is not on the checklist or already received.
pub(crate) async fn mark_record_received(w: &CaseWrite, kind: RecordKind) -> AppResult<Option<serde_json::Value>> {
    let existing = case_record::Entity::find()
        .filter(case_record::Column::CaseId.eq(w.case.id))
        .filter(case_record::Column::Kind.eq(kind))
        .one(&w.txn)
        .await?;
    match existing {
        Some(record) if record.status != RecordStatus::Received => {
            let update = RecordUpdate { status: RecordStatus::Received, note: record.note };
            Ok(Some(apply_record(w, kind, &update).await?))
        }
        _ => Ok(None),
    }
}

async fn apply_record(w: &CaseWrite, kind: RecordKind, update: &RecordUpdate) -> AppResult<serde_json::Value> {
    let case_id = w.case.id;
    let existing = case_record::Entity::find()
        .filter(case_record::Column::CaseId.eq(case_id))
        .filter(case_record::Column::Kind.eq(kind))
        .one(&w.txn)
        .await?;
    let previous_status = existing.as_ref().map(|r| r.status);
    let previously_requested_at = existing.as_ref().and_then(|r| r.requested_at);
    let mut row = match existing {
        Some(r) => r.into_active_model(),
        None => case_record::ActiveModel {
            case_id: Set(case_id),
            kind: Set(kind),
            requested_at: Set(None),
            received_at: Set(None),
            ..Default::default()
        },
    };
    match update.status {
        RecordStatus::Requested => {
            row.requested_at = Set(previously_requested_at.or(Some(w.now)));
            row.received_at = Set(None);
        }
        RecordStatus::Received => {
            if previous_status != Some(RecordStatus::Received) {
                row.received_at = Set(Some(w.now));
            }
        }
        RecordStatus::NotApplicable => row.received_at = Set(None),
    }
    row.status = Set(update.status);
    row.note = Set(update.note.clone());
    row.updated_at = Set(w.now);
    row.save(&w.txn).await?;
    Ok(json!({
        "kind": kind, "from": previous_status, "to": update.status, "with_note": !update.note.trim().is_empty(),
    }))
}

pub async fn set_specialist(
    db: &DatabaseConnection,
    actor: &Actor,
    case_id: CaseId,
    choice: SpecialistChoice,
) -> AppResult<CaseView> {
    let case_id = case_id.get();
    let w = begin_case_write(db, actor, case_id, "case.specialist").await?;
    w.ensure_stage(&[Stage::RecordsRequested, Stage::SpecialistChosen], "the specialist")?;
    let chosen = find_specialist(&w.txn, "specialist_id", choice.specialist_id).await?;
    let round = w.current_round().await?;
    let previous = round.specialist_id;
    let mut row = round.into_active_model();
    row.specialist_id = Set(Some(chosen.id));
    row.update(&w.txn).await?;
    let detail = json!({ "round": round_name(w.case.round), "from": previous, "to": chosen.id });
    w.finish(db, actor, Default::default(), "case.specialist", detail).await
}

pub async fn set_consultation(
    db: &DatabaseConnection,
    actor: &Actor,
    case_id: CaseId,
    input: ConsultationInput,
) -> AppResult<CaseView> {
    let case_id = case_id.get();
    let mut errors = FieldErrors::new();
    if let Some(location) = input.location.as_deref() {
        check_line(&mut errors, "location", location, limits::SHORT_TEXT, false);
    }
    check_instant(&mut errors, "scheduled_at", &input.scheduled_at);
    if let Some(held) = &input.held_at {
        check_instant(&mut errors, "held_at", held);
    }
    errors.into_result()?;
    let w = begin_case_write(db, actor, case_id, "case.consultation").await?;
    let stage = w.ensure_stage(
        &[Stage::RecordsRequested, Stage::SpecialistChosen, Stage::ConsultationHeld],
        "the consultation",
    )?;
    let round = w.current_round().await?;
    let Some(specialist_id) = round.specialist_id else {
        return Err(AppError::conflict("specialist_missing", "choose a specialist before scheduling the consultation"));
    };
    let chosen = find_specialist(&w.txn, "specialist_id", specialist_id).await?;
    let mut errors = FieldErrors::new();
    if input.mode == ConsultationMode::Virtual && !chosen.offers_virtual {
        errors.add("mode", "this specialist does not offer virtual consultations");
    }
    if let Some(held) = input.held_at {
        if held > w.now {
            errors.add("held_at", "cannot be in the future");
        }
    } else if stage == Stage::ConsultationHeld {
        errors.add("held_at", "is required once the case is in consultation_held");
    }
    errors.into_result()?;
    let mut row = round.into_active_model();
    row.consultation_scheduled_at = Set(Some(input.scheduled_at));
    row.consultation_mode = Set(Some(input.mode));
    row.consultation_location = Set(input.location.clone().filter(|l| !l.trim().is_empty()));
    row.consultation_held_at = Set(input.held_at);
    row.update(&w.txn).await?;
    let detail = json!({
        "round": round_name(w.case.round), "scheduled_at": input.scheduled_at, "mode": input.mode,
        "with_location": is_given(input.location.as_deref()), "held_at": input.held_at,
    });
    w.finish(db, actor, Default::default(), "case.consultation", detail).await
}

/// Records (or replaces) the opinion of one round. Returns whether it was new.
pub async fn record_opinion(
    db: &DatabaseConnection,
    actor: &Actor,
    case_id: CaseId,
    input: OpinionInput,
) -> AppResult<(CaseView, bool)> {
    let case_id = case_id.get();
    let mut errors = FieldErrors::new();
    let round = parse_round(&input.round);
    if round.is_none() {
        errors.add("round", "must be original, second, third … tenth");
    }
    check_line(&mut errors, "clinician", &input.clinician, limits::NAME, true);
    check_text(&mut errors, "diagnosis", &input.diagnosis, limits::LONG_TEXT, true);
    check_text(&mut errors, "treatment_plan", &input.treatment_plan, limits::LONG_TEXT, true);
    check_text(&mut errors, "notes", &input.notes, limits::LONG_TEXT, false);
    errors.into_result()?;
    let round = round.unwrap_or(1);
    let w = begin_case_write(db, actor, case_id, "case.opinion").await?;
    w.ensure_open()?;
    if round > w.case.round {
        return Err(FieldErrors::single(
            "round",
            format!(
                "the case is on its {} opinion; a later round starts with a further-opinion move",
                round_name(w.case.round)
            ),
        ));
    }
    let existing = opinion::Entity::find()
        .filter(opinion::Column::CaseId.eq(case_id))
        .filter(opinion::Column::Round.eq(round))
        .one(&w.txn)
        .await?;
    let created = existing.is_none();
    let mut row = match existing {
        Some(o) => o.into_active_model(),
        None => opinion::ActiveModel { case_id: Set(case_id), round: Set(round), ..Default::default() },
    };
    row.clinician = Set(input.clinician.clone());
    row.diagnosis = Set(input.diagnosis.clone());
    row.treatment_plan = Set(input.treatment_plan.clone());
    row.recommends_surgery = Set(input.recommends_surgery);
    row.notes = Set(input.notes.clone());
    row.recorded_at = Set(w.now);
    row.recorded_by = Set(actor.user_id);
    row.save(&w.txn).await?;
    let detail =
        json!({ "round": round_name(round), "replaced": !created, "recommends_surgery": input.recommends_surgery });
    let view = w.finish(db, actor, Default::default(), "case.opinion", detail).await?;
    Ok((view, created))
}

pub async fn set_comparison(
    db: &DatabaseConnection,
    actor: &Actor,
    case_id: CaseId,
    input: ComparisonInput,
) -> AppResult<CaseView> {
    let case_id = case_id.get();
    let mut errors = FieldErrors::new();
    for (field, value) in [
        ("risk_notes", &input.risk_notes),
        ("outcome_notes", &input.outcome_notes),
        ("cost_notes", &input.cost_notes),
        ("summary", &input.summary),
    ] {
        check_text(&mut errors, field, value, limits::LONG_TEXT, false);
    }
    errors.into_result()?;
    let w = begin_case_write(db, actor, case_id, "case.comparison").await?;
    w.ensure_stage(&[Stage::ConsultationHeld, Stage::OpinionsCompared], "the comparison")?;
    let round = w.current_round().await?;
    let mut row = round.into_active_model();
    row.diagnosis_agrees = Set(Some(input.diagnosis_agrees));
    row.treatment_agrees = Set(Some(input.treatment_agrees));
    row.risk_notes = Set(Some(input.risk_notes.clone()));
    row.outcome_notes = Set(Some(input.outcome_notes.clone()));
    row.cost_notes = Set(Some(input.cost_notes.clone()));
    row.comparison_summary = Set(Some(input.summary.clone()));
    row.compared_at = Set(Some(w.now));
    row.update(&w.txn).await?;
    let detail = json!({
        "round": round_name(w.case.round), "diagnosis_agrees": input.diagnosis_agrees,
        "treatment_agrees": input.treatment_agrees,
    });
    w.finish(db, actor, Default::default(), "case.comparison", detail).await
}

pub async fn set_decision(
    db: &DatabaseConnection,
    actor: &Actor,
    case_id: CaseId,
    input: DecisionInput,
) -> AppResult<CaseView> {
    let case_id = case_id.get();
    let mut errors = FieldErrors::new();
    check_text(&mut errors, "reason", &input.reason, limits::LONG_TEXT, true);
    const UNKNOWN_CHOICE: &str = "must be original, second, third … or other";
    let chosen = input.chosen_opinion.parse::<OpinionChoice>();
    if chosen.is_err() {
        errors.add("chosen_opinion", UNKNOWN_CHOICE);
    }
    errors.into_result()?;
    let Ok(chosen) = chosen else { return Err(FieldErrors::single("chosen_opinion", UNKNOWN_CHOICE)) };
    let w = begin_case_write(db, actor, case_id, "case.decision").await?;
    w.ensure_stage(&[Stage::OpinionsCompared], "the decision")?;
    if let Some(round) = chosen.round() {
        let exists = opinion::Entity::find()
            .filter(opinion::Column::CaseId.eq(case_id))
            .filter(opinion::Column::Round.eq(round))
            .count(&w.txn)
            .await?
            > 0;
        if !exists {
            return Err(FieldErrors::single("chosen_opinion", "no opinion of this round is recorded on the case"));
        }
    }
    let changes = case::ActiveModel {
        chosen_opinion: Set(Some(chosen)),
        decision_reason: Set(Some(input.reason.clone())),
        decided_at: Set(Some(w.now)),
        ..Default::default()
    };
    let detail = json!({ "chosen_opinion": chosen.to_string() });
    w.finish(db, actor, changes, "case.decision", detail).await
}

pub async fn update(
    db: &DatabaseConnection,
    rules: &CaseRules,
    actor: &Actor,
    case_id: CaseId,
    patch: CasePatch,
) -> AppResult<CaseView> {
    let case_id = case_id.get();
    let mut errors = FieldErrors::new();
    for (field, value) in [
        ("summary", &patch.summary),
        ("medical_history", &patch.medical_history),
        ("medications", &patch.medications),
        ("patient_questions", &patch.patient_questions),
    ] {
        if let Some(value) = value.as_deref() {
            check_text(&mut errors, field, value, limits::LONG_TEXT, false);
        }
    }
    if patch.advocate_id.is_some() && !actor.is_admin() {
        return Err(AppError::Forbidden("only admins can reassign cases".into()));
    }
    errors.into_result()?;
    let w = begin_case_write(db, actor, case_id, "case.update").await?;
    let stage = w.case.stage;
    let mut changes: case::ActiveModel = Default::default();
    let mut detail = serde_json::Map::new();
    if let Some(advocate_id) = patch.advocate_id {
        if let Some(id) = advocate_id {
            ensure_assignable(&w.txn, id).await?;
        }
        changes.advocate_id = Set(advocate_id);
        tallies::apply(&w.txn, &tallies::reassigned(stage, w.case.advocate_id, advocate_id)).await?;
        detail.insert("advocate_id".into(), json!({ "from": w.case.advocate_id, "to": advocate_id }));
    }
    // An unchanged urgency is no change at all, even on a closed case (the
    // details form always sends the current one).
    let urgency = patch.urgency.filter(|u| *u != w.case.urgency);
    if let Some(urgency) = urgency {
        if stage.is_final() {
            return Err(AppError::conflict("case_closed", "a closed case has no urgency to change"));
        }
        changes.urgency = Set(urgency);
        changes.stage_due_at = Set(w.clock().due_at(&rules.levels, stage, urgency));
        detail.insert("urgency".into(), json!({ "from": w.case.urgency, "to": urgency }));
    }
    // Free text is health information: the audit entry says what changed, not to what.
    if let Some(summary) = patch.summary {
        detail.insert("summary".into(), json!({ "changed": summary != w.case.summary }));
        changes.summary = Set(summary);
    }
    if let Some(history) = patch.medical_history {
        detail.insert("medical_history".into(), json!({ "changed": history != w.case.medical_history }));
        changes.medical_history = Set(history);
    }
    if let Some(medications) = patch.medications {
        detail.insert("medications".into(), json!({ "changed": medications != w.case.medications }));
        changes.medications = Set(medications);
    }
    if let Some(questions) = patch.patient_questions {
        detail.insert("patient_questions".into(), json!({ "changed": questions != w.case.patient_questions }));
        changes.patient_questions = Set(questions);
    }
    w.finish(db, actor, changes, "case.update", serde_json::Value::Object(detail)).await
}
