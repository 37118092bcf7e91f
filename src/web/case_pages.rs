//! Case pages: intake, the case at a glance with a form per stage, and the
//! printable summary for the patient. Each form posts to its own address,
//! calls the same case operations as the API, and comes back to the case.

use askama::Template;
use axum::{
    extract::State,
    http::StatusCode,
    response::{Html, IntoResponse, Redirect, Response},
};

use super::{
    Clock, DueLabel, FormFields, FormState, Nav, PathContactId, PathId, Staff, caseload::describe_action,
    error::PageResult, render,
};
use crate::{
    audit,
    cases::{
        Stage, Urgency,
        aggregate::CaseState,
        journal, stage, store,
        values::{
            ConsultationMode, HoldReason, OpinionChoice, Reason, RecordKind, RecordStatus, parse_round, round_name,
        },
        view::{CaseView, SpecialistView},
    },
    documents::{self, store::DocumentView},
    error::{AppError, AppResult, FieldErrors},
    ids::CaseId,
    specialists::{self, SpecialistFilter},
    state::AppState,
    vocabulary::{ContactChannel, ContactDirection, ContactParty, DocumentKind},
};

pub struct MoveOption {
    pub to: Stage,
    pub label: String,
    pub allowed: bool,
    pub reasons: Vec<&'static str>,
    pub further: bool,
}

/// A note as the case page lists it.
pub struct NoteLine {
    pub when: String,
    pub who: String,
    pub body: String,
}

/// A logged contact as the case page lists it.
pub struct ContactLine {
    pub id: i32,
    pub when: String,
    pub who: String,
    /// "Provider · fax · outbound"
    pub how: String,
    pub summary: String,
    /// The follow-up date, worded, while it is still to do.
    pub follow_up: Option<String>,
    pub late: bool,
    /// When and by whom the follow-up was done.
    pub done: Option<String>,
}

/// A document as the case page lists it.
pub struct DocumentLine {
    pub id: i32,
    pub name: String,
    pub kind: &'static str,
    /// The checklist item or opinion it belongs to, in words.
    pub about: Option<String>,
    pub record_kind: Option<RecordKind>,
    pub round: Option<String>,
    pub size: String,
    pub uploaded: String,
    pub deleted: Option<String>,
    pub damaged: bool,
    pub viewable: bool,
}

pub struct ActivityLine {
    pub when: String,
    pub what: String,
    pub who: String,
}

/// An audit line in words, naming the record or stage it is about when
/// its details say (ids and words only: details never hold free text).
fn describe_entry(action: &str, detail: &str) -> String {
    let detail: serde_json::Value = serde_json::from_str(detail).unwrap_or_default();
    let word = |key: &str| detail.get(key).and_then(|v| v.as_str()).map(str::to_string);
    match action {
        "case.record" => {
            match (word("kind").and_then(|k| RecordKind::parse(&k)), word("to").and_then(|s| RecordStatus::parse(&s))) {
                (Some(kind), Some(status)) => {
                    format!("records checklist: {} marked {}", kind.label(), status.label().to_lowercase())
                }
                _ => describe_action(action).to_string(),
            }
        }
        "case.transition" => match word("to").and_then(|s| Stage::parse(&s)) {
            Some(to) => format!("moved to “{}”", to.label()),
            None => describe_action(action).to_string(),
        },
        _ => describe_action(action).to_string(),
    }
}

#[derive(Template)]
#[template(path = "case.html")]
struct CasePage {
    nav: Nav,
    clock: Clock,
    case: CaseView,
    due: DueLabel,
    progress: Vec<(Stage, &'static str)>,
    open: bool,
    moves: Vec<MoveOption>,
    specialists: Vec<SpecialistView>,
    specialists_all: bool,
    opinion_rounds: Vec<(String, String)>,
    decision_choices: Vec<(String, String)>,
    record_statuses: &'static [RecordStatus],
    hold_reasons: &'static [HoldReason],
    activity: Vec<ActivityLine>,
    notes: Vec<NoteLine>,
    contacts: Vec<ContactLine>,
    /// Active advocates an admin may assign the case to (empty for advocates).
    advocates: Vec<(i32, String)>,
    contact_parties: &'static [ContactParty],
    contact_channels: &'static [ContactChannel],
    contact_directions: &'static [ContactDirection],
    form: FormState,
    documents: Vec<DocumentLine>,
    /// Deleted documents an admin may restore (empty for advocates).
    deleted_documents: Vec<DocumentLine>,
    document_kinds: &'static [DocumentKind],
    /// The checklist item an upload was started from, preselected.
    upload_for: Option<RecordKind>,
    /// "200 MiB"
    upload_limit: String,
    /// Records still requested, by name: closing the case leaves them missing.
    records_waiting: Vec<String>,
    stage_label: &'static str,
    reason_label: &'static str,
    portal: super::case_portal::PortalPanel,
    requests: super::case_records::RecordsRequestsPanel,
    insurance: super::case_insurance::InsurancePanel,
}

impl CasePage {
    /// The outcome of a form of records request `id`, shown beside it.
    fn request_done(&self, id: &i32) -> Option<&str> {
        self.done_in(&super::case_records::form_of(*id))
    }

    /// What was wrong with a refused form of records request `id`.
    fn request_problems(&self, id: &i32) -> Vec<String> {
        let form = super::case_records::form_of(*id);
        if !self.form.is(&form) {
            return Vec::new();
        }
        let mut problems: Vec<String> =
            self.form.errors.iter().map(|(field, message)| format!("{}: {message}", field.replace('_', " "))).collect();
        problems.extend(self.form.message.clone());
        problems
    }

    /// Now, as a `datetime-local` value in the person's zone.
    fn now_input(&self) -> String {
        self.clock.input(&Some(self.clock.now))
    }

    /// Whether a new records request's form ticks `kind`: as sent when the
    /// form was refused, else the records still asked for.
    fn request_kind_checked(&self, kind: &RecordKind) -> bool {
        if self.form.is("records-requests") {
            return self.form.values.contains_key(&format!("kind.{}", kind.as_str()));
        }
        self.case.records.iter().any(|r| r.kind == *kind && r.status == RecordStatus::Requested)
    }

    /// The insurance form's value for `name`: as sent when it was refused,
    /// else as recorded.
    fn insurance_value(&self, name: &str) -> String {
        let current = self.insurance.current(&self.clock, name);
        self.value(super::case_insurance::FORM, name, &current)
    }

    fn value(&self, form: &str, name: &str, current: &str) -> String {
        self.form.value(form, name, current)
    }

    fn error(&self, form: &str, name: &str) -> String {
        self.form.error(form, name).unwrap_or_default().to_string()
    }

    fn has_error(&self, form: &str, name: &str) -> bool {
        self.form.error(form, name).is_some()
    }

    /// The documents filed against a checklist item.
    fn documents_for_record(&self, kind: &RecordKind) -> Vec<&DocumentLine> {
        self.documents.iter().filter(|d| d.record_kind == Some(*kind)).collect()
    }

    /// The documents filed with an opinion round (its word).
    fn documents_for_round(&self, round: &str) -> Vec<&DocumentLine> {
        self.documents.iter().filter(|d| d.round.as_deref() == Some(round)).collect()
    }

    /// The upload form's value for `name`: as sent when it was refused,
    /// else what the checklist item it was started from implies.
    fn upload_value(&self, name: &str) -> String {
        let implied = match (name, self.upload_for) {
            ("kind", Some(kind)) => DocumentKind::of_record(kind).as_str().to_string(),
            ("record_kind", Some(kind)) => kind.as_str().to_string(),
            ("mark_received", Some(_)) => "on".to_string(),
            _ => String::new(),
        };
        self.form.value("documents", name, &implied)
    }

    fn consultation_value(&self, name: &str) -> String {
        let c = self.case.consultation.as_ref();
        let current = match name {
            "scheduled_at" => self.clock.input(&c.map(|c| c.scheduled_at)),
            "held_at" => self.clock.input(&c.and_then(|c| c.held_at)),
            "location" => c.and_then(|c| c.location.clone()).unwrap_or_default(),
            "mode" => c.map_or(ConsultationMode::InPerson, |c| c.mode).as_str().to_string(),
            _ => String::new(),
        };
        self.value("consultation", name, &current)
    }

    fn comparison_value(&self, name: &str) -> String {
        let c = self.case.comparison.as_ref();
        let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
        let current = match name {
            "diagnosis_agrees" => c.map(|c| yes_no(c.diagnosis_agrees)).unwrap_or_default(),
            "treatment_agrees" => c.map(|c| yes_no(c.treatment_agrees)).unwrap_or_default(),
            "risk_notes" => c.map(|c| c.risk_notes.clone()).unwrap_or_default(),
            "outcome_notes" => c.map(|c| c.outcome_notes.clone()).unwrap_or_default(),
            // The insurance's cost notes start the comparison's cost section.
            "cost_notes" => c
                .map(|c| c.cost_notes.clone())
                .unwrap_or_else(|| self.insurance.recorded.as_ref().map(|i| i.cost_notes.clone()).unwrap_or_default()),
            "summary" => c.map(|c| c.summary.clone()).unwrap_or_default(),
            _ => String::new(),
        };
        self.value("comparison", name, &current)
    }

    /// The form field of one record's status or note (`status.lab_results`).
    fn record_field(&self, prefix: &str, kind: &RecordKind) -> String {
        format!("{prefix}.{}", kind.as_str())
    }

    /// Every record is in or not needed: the checklist can stay folded.
    fn records_complete(&self) -> bool {
        self.records_waiting.is_empty()
    }

    fn records_tally(&self) -> String {
        let received = self.case.records.iter().filter(|r| r.status == RecordStatus::Received).count();
        let not_needed = self.case.records.iter().filter(|r| r.status == RecordStatus::NotApplicable).count();
        let waiting = self.case.records.len() - received - not_needed;
        match (waiting, not_needed) {
            (0, 0) => format!("All {received} records received."),
            (0, n) => format!("All records in: {received} received, {n} not needed."),
            (w, 0) => format!("{received} received, {w} still requested."),
            (w, n) => format!("{received} received, {w} still requested, {n} not needed."),
        }
    }

    /// The chosen specialist's id, so the form shows who is chosen.
    fn current_specialist(&self) -> String {
        self.case.specialist.as_ref().map(|s| s.id.to_string()).unwrap_or_default()
    }

    /// The confirmation of the last change, when it was made in `section`.
    fn done_in(&self, section: &str) -> Option<&str> {
        self.nav.flash.as_deref().filter(|_| self.nav.flash_section.as_deref() == Some(section))
    }

    /// Why the case was withdrawn: the note of its move to `withdrawn`, unless erased.
    fn withdrawal_reason(&self) -> Option<String> {
        if self.case.erased_at.is_some() {
            return None;
        }
        self.case.history.iter().rev().find(|h| h.to == Stage::Withdrawn).and_then(|h| h.note.clone())
    }

    fn current_advocate(&self) -> String {
        self.case.advocate.as_ref().map(|a| a.id.to_string()).unwrap_or_default()
    }

    fn round_label(&self, word: &str) -> String {
        parse_round(word).map_or_else(|| word.to_string(), round_label)
    }

    fn choice_label(&self, choice: &OpinionChoice) -> String {
        choice.round().map_or_else(|| OTHER_COURSE.to_string(), round_label)
    }
}

const OTHER_COURSE: &str = "Another course";

fn round_label(round: i32) -> String {
    match round {
        1 => "Original opinion".to_string(),
        n => {
            let word = round_name(n);
            let mut chars = word.chars();
            let first = chars.next().map(|c| c.to_uppercase().collect::<String>()).unwrap_or_default();
            format!("{first}{} opinion", chars.as_str())
        }
    }
}

/// What the case has, as far as the stage rules care, read off its view.
/// The moves the page offers, worded for people; what each still needs comes
/// from the same rules the move itself is decided by.
/// The moves a person can pick; `consent_missing` when the consultation
/// may not be marked held for want of the patient's consent.
fn move_options(state: &CaseState, now: chrono::DateTime<chrono::Utc>, consent_missing: bool) -> Vec<MoveOption> {
    state
        .moves(now)
        .into_iter()
        .map(|choice| {
            let further = choice.kind == stage::MoveKind::FurtherOpinion;
            let label = if further {
                format!("Get a {} opinion", round_name(state.row.round + 1))
            } else {
                format!("Move to “{}”", choice.to.label())
            };
            let mut reasons: Vec<&'static str> = choice.unmet.iter().map(|r| r.message()).collect();
            if consent_missing && choice.to == Stage::ConsultationHeld {
                reasons.push(stage::Requirement::Consent.message());
            }
            MoveOption { to: choice.to, label, allowed: reasons.is_empty(), reasons, further }
        })
        .collect()
}

/// The case page as it stands, with `form` shown as refused.
pub async fn render_case_page(
    state: &AppState,
    staff: &Staff,
    id: CaseId,
    form: FormState,
) -> PageResult<Html<String>> {
    render(&case_page(state, staff, id, form).await?)
}

async fn case_page(state: &AppState, staff: &Staff, id: CaseId, form: FormState) -> PageResult<CasePage> {
    case_page_for(state, staff, id, form, None, false).await
}

async fn case_page_for(
    state: &AppState,
    staff: &Staff,
    id: CaseId,
    form: FormState,
    upload_for: Option<RecordKind>,
    looking: bool,
) -> PageResult<CasePage> {
    let (case, rules_state) = store::view_with_state(&state.db, &state.reads, &staff.actor, id).await?;
    let clock = staff.clock();
    let portal = super::case_portal::panel(state, &clock, &rules_state.row, looking).await?;
    let requests = super::case_records::panel(state, &clock, case.id).await?;
    let insurance =
        super::case_insurance::InsurancePanel::new(crate::insurance::of_case(&state.db, &staff.actor, case.id).await?);
    let current = case.stage;
    let progress = super::steps(current);
    let mut specialists = specialists::list(
        &state.db,
        &SpecialistFilter { specialty: Some(case.specialty.clone()), query: None, limit: 200 },
    )
    .await?;
    let specialists_all = specialists.is_empty();
    if specialists_all {
        specialists =
            specialists::list(&state.db, &SpecialistFilter { specialty: None, query: None, limit: 200 }).await?;
    }
    let round = parse_round(&case.round).unwrap_or(2);
    let opinion_rounds = (1..=round).map(|r| (round_name(r), round_label(r))).collect();
    let mut decision_choices: Vec<(String, String)> =
        case.opinions.iter().map(|o| (o.round.clone(), round_label(parse_round(&o.round).unwrap_or(1)))).collect();
    decision_choices.push((OpinionChoice::Other.to_string(), OTHER_COURSE.into()));
    let partner_names = crate::portal::partner_names(&state.db, id.get()).await?;
    let activity = audit::for_case(&state.db, id.get(), &[store::VIEWED], 200)
        .await?
        .iter()
        .map(|a| ActivityLine {
            when: clock.at(&a.at),
            what: describe_entry(&a.action, &a.detail),
            who: crate::portal::who(&a.actor, &partner_names),
        })
        .collect();
    // Read under the case view's own access check and audit entry.
    let note_rows = journal::notes_of(&state.db, id.get()).await?;
    let contact_rows = journal::contacts_of(&state.db, id.get()).await?;
    let ids = note_rows.iter().map(|n| n.author_id).chain(contact_rows.iter().flat_map(|c| [c.author_id, c.done_by]));
    let authors = journal::authors(&state.db, ids).await?;
    let name_of = |id: Option<i32>| {
        id.and_then(|id| authors.iter().find(|a| a.id == id)).map_or_else(|| "someone".to_string(), |a| a.name.clone())
    };
    let notes = note_rows
        .iter()
        .map(|n| NoteLine { when: clock.at(&n.created_at), who: name_of(n.author_id), body: n.body.clone() })
        .collect();
    let advocates = if staff.actor.is_admin() {
        crate::auth::users::advocates(&state.db)
            .await?
            .into_iter()
            .filter_map(|(id, name, active)| active.then_some((id, name)))
            .collect()
    } else {
        Vec::new()
    };
    // Read under the case view's own access check and audit entry.
    let document_rows = documents::store::of_case(&state.db, id.get(), staff.actor.is_admin()).await?;
    let (deleted_rows, document_rows): (Vec<_>, Vec<_>) =
        document_rows.into_iter().partition(|d| d.deleted_at.is_some());
    let document_line = |d: DocumentView| DocumentLine {
        about: d
            .record_kind
            .map(|k| {
                if DocumentKind::of_record(k) == d.kind {
                    "on the records checklist".to_string()
                } else {
                    format!("for {} on the records checklist", k.label().to_lowercase())
                }
            })
            .or_else(|| {
                d.round.as_deref().and_then(parse_round).map(|r| format!("with the {}", round_label(r).to_lowercase()))
            })
            .or_else(|| {
                let request = requests.requests.iter().find(|r| Some(r.id) == d.records_request_id)?;
                Some(format!("brought by the records request to {}", request.provider))
            }),
        id: d.id,
        kind: d.kind_label,
        record_kind: d.record_kind,
        round: d.round,
        size: human_size(d.size),
        uploaded: format!(
            "{} by {}",
            clock.at(&d.uploaded_at),
            match (d.uploaded_via, d.uploaded_by) {
                (Some(via), _) => format!("{}, in the portal", crate::portal::who(&via, &partner_names)),
                (None, Some(author)) => author.name,
                (None, None) => "someone".to_string(),
            }
        ),
        deleted: d.deleted_at.map(|at| clock.at(&at)),
        damaged: d.damaged,
        viewable: d.viewable,
        name: d.name,
    };
    let documents = document_rows.into_iter().map(document_line).collect();
    let deleted_documents = deleted_rows.into_iter().map(document_line).collect();
    let today = clock.now.with_timezone(&clock.tz).date_naive();
    let contacts = contact_rows
        .iter()
        .map(|c| ContactLine {
            id: c.id,
            when: clock.at(&c.created_at),
            who: name_of(c.author_id),
            how: format!(
                "{} · {} · {}",
                c.party.label(),
                c.channel.label().to_lowercase(),
                c.direction.label().to_lowercase()
            ),
            summary: c.summary.clone(),
            follow_up: c.follow_up_on.filter(|_| c.done_at.is_none()).map(|on| on.format("%A %-d %B %Y").to_string()),
            late: c.done_at.is_none() && c.follow_up_on.is_some_and(|on| on < today),
            done: c.done_at.map(|at| format!("{} by {}", clock.at(&at), name_of(c.done_by))),
        })
        .collect();
    Ok(CasePage {
        nav: staff.nav().await,
        due: clock.due(&case.stage_due_at, case.hold.is_some()),
        moves: move_options(&rules_state, clock.now, portal.consent_required && portal.consent.is_none()),
        open: !current.is_final(),
        clock,
        progress,
        specialists,
        specialists_all,
        opinion_rounds,
        decision_choices,
        record_statuses: RecordStatus::ALL,
        hold_reasons: HoldReason::ALL,
        activity,
        notes,
        contacts,
        advocates,
        contact_parties: ContactParty::ALL,
        contact_channels: ContactChannel::ALL,
        contact_directions: ContactDirection::ALL,
        form,
        documents,
        deleted_documents,
        document_kinds: DocumentKind::ALL,
        upload_for,
        upload_limit: documents::store::size_label(state.documents.max_file_bytes),
        records_waiting: case
            .records
            .iter()
            .filter(|r| r.status == RecordStatus::Requested)
            .map(|r| r.label.clone())
            .collect(),
        stage_label: current.label(),
        reason_label: case.reason.label(),
        portal,
        requests,
        insurance,
        case,
    })
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct ShowQuery {
    /// Start an upload for this checklist item (`lab_results`…).
    #[serde(default)]
    upload_for: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<CaseId>,
    axum::extract::Query(query): axum::extract::Query<ShowQuery>,
) -> PageResult<Html<String>> {
    let upload_for = query.upload_for.as_deref().and_then(RecordKind::parse);
    render(&case_page_for(&state, &staff, id, FormState::default(), upload_for, true).await?)
}

/// "1.4 MB", "820 KB", "312 bytes": sizes as people read them.
pub fn human_size(bytes: i64) -> String {
    let bytes = bytes.max(0) as f64;
    if bytes >= 1_000_000.0 {
        format!("{:.1} MB", bytes / 1_000_000.0)
    } else if bytes >= 1_000.0 {
        format!("{:.0} KB", bytes / 1_000.0)
    } else {
        format!("{bytes} bytes")
    }
}

/// After a form on the case page: back to the case with a message, or the
/// page again with the form as it was sent and what was wrong with it.
pub(super) async fn finish<T>(
    state: &AppState,
    staff: &Staff,
    id: CaseId,
    form: &str,
    fields: &FormFields,
    result: AppResult<T>,
    done: &str,
) -> PageResult<Response> {
    finish_with(state, staff, id, form, fields, result, |_| done.to_string()).await
}

/// [`finish`] with a message that says what the change came to.
pub(super) async fn finish_with<T>(
    state: &AppState,
    staff: &Staff,
    id: CaseId,
    form: &str,
    fields: &FormFields,
    result: AppResult<T>,
    done: impl FnOnce(&T) -> String,
) -> PageResult<Response> {
    match result {
        Ok(value) => {
            staff.flash_at(section_of(form), done(&value)).await;
            Ok(Redirect::to(&format!("/cases/{id}#{form}")).into_response())
        }
        Err(err) => {
            let status = match &err {
                AppError::Conflict { .. } => StatusCode::CONFLICT,
                AppError::Forbidden(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            let state_of_form = FormState::refused(form, fields, err)?;
            let page = case_page(state, staff, id, state_of_form).await?;
            Ok((status, render(&page)?).into_response())
        }
    }
}

/// The section of the case page a form sits in, where its outcome is shown.
fn section_of(form: &str) -> &str {
    match form {
        "withdraw" => "hold",
        other => other,
    }
}

/// One of a fixed list of words from the form, or `problem` said against the field.
fn chosen<T>(
    fields: &FormFields,
    name: &str,
    parse: fn(&str) -> Option<T>,
    problem: &str,
    errors: &mut FieldErrors,
) -> Option<T> {
    let choice = parse(&fields.text(name));
    if choice.is_none() {
        errors.add(name, problem);
    }
    choice
}

fn parse_id(fields: &FormFields, name: &str, errors: &mut FieldErrors) -> Option<i32> {
    let value = fields.text(name);
    match value.trim().parse::<i32>() {
        Ok(id) => Some(id),
        Err(_) if value.trim().is_empty() => None,
        Err(_) => {
            errors.add(name, "is not a valid choice");
            None
        }
    }
}

pub async fn transition(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<CaseId>,
    fields: FormFields,
) -> PageResult<Response> {
    let mut errors = FieldErrors::new();
    let to = Stage::parse(&fields.text("to"));
    if to.is_none() {
        errors.add("to", "is not a stage");
    }
    let specialist_id = parse_id(&fields, "specialist_id", &mut errors);
    // Withdrawing closes the case for good: the form asks for a tick first.
    if to == Some(Stage::Withdrawn) && !fields.checked("confirm") {
        errors.add("confirm", "tick the box to confirm that the case is to be withdrawn");
    }
    let form = if to == Some(Stage::Withdrawn) { "withdraw" } else { "moves" };
    let result = match (errors.into_result(), to) {
        (Ok(()), Some(to)) => {
            let request = store::TransitionRequest { to, note: fields.optional("note"), specialist_id };
            store::transition(&state.db, &state.rules, &staff.actor, id, request).await.map(|_| to)
        }
        (Err(err), _) => Err(err),
        (Ok(()), None) => Err(FieldErrors::single("to", "is not a stage")),
    };
    let done = match &result {
        Ok(to) => format!("The case moved to “{}”.", to.label()),
        Err(_) => String::new(),
    };
    finish(&state, &staff, id, form, &fields, result, &done).await
}

pub async fn hold(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<CaseId>,
    fields: FormFields,
) -> PageResult<Response> {
    let result = match HoldReason::parse(&fields.text("reason")) {
        Some(reason) => {
            let request = store::HoldRequest { reason, note: fields.optional("note") };
            store::hold(&state.db, &staff.actor, id, request).await
        }
        None => Err(FieldErrors::single("reason", "choose what the case is waiting for")),
    };
    finish(&state, &staff, id, "hold", &fields, result, "The case is on hold; its due date will move by the time held.")
        .await
}

pub async fn resume(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<CaseId>,
    fields: FormFields,
) -> PageResult<Response> {
    let result = store::resume(&state.db, &state.rules, &staff.actor, id).await;
    finish(
        &state,
        &staff,
        id,
        "hold",
        &fields,
        result,
        "The case is active again; its due date moved by the time held.",
    )
    .await
}

/// The records checklist in one post: each record's `status.KIND` and
/// `note.KIND`, beside `was.status.KIND` and `was.note.KIND` as the page
/// showed them. Only the records the person changed are saved, so a save
/// from a page opened earlier does not undo what someone else did since.
/// With `all=received`, every record still requested is marked received.
pub async fn set_records(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<CaseId>,
    fields: FormFields,
) -> PageResult<Response> {
    let mark_all = fields.text("all") == "received";
    let mut errors = FieldErrors::new();
    let mut updates = Vec::new();
    for kind in RecordKind::ALL {
        let status_field = format!("status.{}", kind.as_str());
        let note_field = format!("note.{}", kind.as_str());
        let sent = fields.text(&status_field);
        let note = fields.text(&note_field);
        // A record the form did not send, or sent as it was shown, stays as it is.
        let untouched = sent == fields.text(&format!("was.{status_field}"))
            && fields.0.get(&format!("was.{note_field}")).is_some_and(|was| *was == note);
        if sent.is_empty() || untouched {
            continue;
        }
        match RecordStatus::parse(&sent) {
            Some(status) => updates.push((*kind, store::RecordUpdate { status, note })),
            None => errors.add(status_field, "choose a status"),
        }
    }
    let result = match errors.into_result() {
        Ok(()) => store::set_records(&state.db, &staff.actor, id, &updates, mark_all).await,
        Err(err) => Err(err),
    };
    let done = match &result {
        Ok(0) => "Nothing changed in the records checklist.".to_string(),
        Ok(n) if mark_all => format!("Every record still requested is marked received ({n} updated)."),
        Ok(1) => "1 record updated.".to_string(),
        Ok(n) => format!("{n} records updated."),
        Err(_) => String::new(),
    };
    finish(&state, &staff, id, "records", &fields, result, &done).await
}

/// After a form that has a "Save and …" button: when the person chose it
/// (`then` names the stage) and the save went through, moves the case on.
/// A move the rules refuse leaves the save in place and says what is missing.
async fn save_then_move<T>(
    state: &AppState,
    staff: &Staff,
    id: CaseId,
    form: &str,
    fields: &FormFields,
    saved: AppResult<T>,
    done: &str,
) -> PageResult<Response> {
    let then = Stage::parse(&fields.text("then"));
    let Some(to) = then.filter(|_| saved.is_ok()) else {
        return finish(state, staff, id, form, fields, saved, done).await;
    };
    let request = store::TransitionRequest { to, note: None, specialist_id: None };
    let done = match store::transition(&state.db, &state.rules, &staff.actor, id, request).await {
        Ok(_) => format!("{done} The case moved to “{}”.", to.label()),
        Err(AppError::Conflict { fields: unmet, message, .. }) => {
            let why = if unmet.is_empty() { message } else { unmet.into_values().collect::<Vec<_>>().join("; ") };
            format!("{done} It has not moved to “{}” yet: {why}.", to.label())
        }
        // The save stands whatever went wrong with the move: say so rather
        // than show an error page that invites sending the form again.
        Err(other) => {
            tracing::warn!(error = %other, "a move after a save failed");
            format!("{done} It could not be moved to “{}” just now; use the move button to try again.", to.label())
        }
    };
    finish(state, staff, id, form, fields, Ok(()), &done).await
}

pub async fn set_specialist(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<CaseId>,
    fields: FormFields,
) -> PageResult<Response> {
    let mut errors = FieldErrors::new();
    let chosen = parse_id(&fields, "specialist_id", &mut errors);
    let result = match (errors.into_result(), chosen) {
        (Ok(()), Some(specialist_id)) => {
            store::set_specialist(&state.db, &staff.actor, id, store::SpecialistChoice { specialist_id }).await
        }
        (Err(err), _) => Err(err),
        (Ok(()), None) => Err(FieldErrors::single("specialist_id", "choose a specialist")),
    };
    save_then_move(&state, &staff, id, "specialist", &fields, result, "Specialist chosen.").await
}

pub async fn set_consultation(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<CaseId>,
    fields: FormFields,
) -> PageResult<Response> {
    let clock = staff.clock();
    let mut errors = FieldErrors::new();
    let scheduled_at = match clock.parse_input(&fields.text("scheduled_at")) {
        Ok(t) => Some(t),
        Err(problem) => {
            errors.add("scheduled_at", problem);
            None
        }
    };
    let held_at = match fields.optional("held_at").map(|v| clock.parse_input(&v)) {
        Some(Ok(t)) => Some(t),
        Some(Err(problem)) => {
            errors.add("held_at", problem);
            None
        }
        None => None,
    };
    let mode = chosen(&fields, "mode", ConsultationMode::parse, "choose virtual or in person", &mut errors);
    let result = match (errors.into_result(), scheduled_at, mode) {
        (Ok(()), Some(scheduled_at), Some(mode)) => {
            let input = store::ConsultationInput { scheduled_at, mode, location: fields.optional("location"), held_at };
            store::set_consultation(&state.db, &staff.actor, id, input).await
        }
        (Err(err), _, _) => Err(err),
        _ => Err(FieldErrors::single("scheduled_at", "is required")),
    };
    save_then_move(&state, &staff, id, "consultation", &fields, result, "Consultation saved.").await
}

pub async fn record_opinion(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<CaseId>,
    fields: FormFields,
) -> PageResult<Response> {
    let input = store::OpinionInput {
        round: fields.text("round"),
        clinician: fields.text("clinician"),
        diagnosis: fields.text("diagnosis"),
        treatment_plan: fields.text("treatment_plan"),
        recommends_surgery: fields.checked("recommends_surgery"),
        notes: fields.text("notes"),
    };
    let result = store::record_opinion(&state.db, &staff.actor, id, input).await;
    finish(&state, &staff, id, "opinions", &fields, result, "Opinion saved.").await
}

/// Admins hand a case to an advocate, or take it back to the unassigned queue.
pub async fn assign(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<CaseId>,
    fields: FormFields,
) -> PageResult<Response> {
    let mut errors = FieldErrors::new();
    let advocate_id = parse_id(&fields, "advocate_id", &mut errors);
    let result = match errors.into_result() {
        Ok(()) => store::update(&state.db, &state.rules, &staff.actor, id, store::CasePatch::assign(advocate_id)).await,
        Err(err) => Err(err),
    };
    let done = if advocate_id.is_some() { "Case assigned." } else { "Case moved to the unassigned queue." };
    finish(&state, &staff, id, "assign", &fields, result, done).await
}

pub async fn add_note(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<CaseId>,
    fields: FormFields,
) -> PageResult<Response> {
    let result = journal::add_note(&state.db, &staff.actor, id, journal::NoteInput { body: fields.text("body") }).await;
    finish(&state, &staff, id, "notes", &fields, result, "Note added.").await
}

pub async fn add_contact(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<CaseId>,
    fields: FormFields,
) -> PageResult<Response> {
    let mut errors = FieldErrors::new();
    let party = chosen(&fields, "with", ContactParty::parse, "choose who the contact was with", &mut errors);
    let channel = chosen(&fields, "channel", ContactChannel::parse, "choose how the contact was made", &mut errors);
    let direction =
        chosen(&fields, "direction", ContactDirection::parse, "choose whether it was inbound or outbound", &mut errors);
    let follow_up_on = match fields.optional("follow_up_on") {
        None => None,
        Some(text) => match chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
            Ok(on) => Some(on),
            Err(_) => {
                errors.add("follow_up_on", "must be a date such as 2026-05-01");
                None
            }
        },
    };
    let result = match (errors.into_result(), party, channel, direction) {
        (Ok(()), Some(with), Some(channel), Some(direction)) => {
            let input =
                journal::ContactInput { with, channel, direction, summary: fields.text("summary"), follow_up_on };
            journal::add_contact(&state.db, &staff.actor, id, input).await
        }
        (Err(err), ..) => Err(err),
        _ => Err(AppError::Internal("a contact word was missing after its check".into())),
    };
    finish(&state, &staff, id, "contacts", &fields, result, "Contact logged.").await
}

pub async fn follow_up_done(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<CaseId>,
    PathContactId(contact_id): PathContactId,
    fields: FormFields,
) -> PageResult<Response> {
    let result = journal::follow_up_done(&state.db, &staff.actor, id, contact_id).await;
    finish(&state, &staff, id, "contacts", &fields, result, "Follow-up marked done.").await
}

fn yes_no(fields: &FormFields, name: &str, errors: &mut FieldErrors) -> bool {
    match fields.text(name).as_str() {
        "yes" => true,
        "no" => false,
        _ => {
            errors.add(name, "answer yes or no");
            false
        }
    }
}

pub async fn set_comparison(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<CaseId>,
    fields: FormFields,
) -> PageResult<Response> {
    let mut errors = FieldErrors::new();
    let diagnosis_agrees = yes_no(&fields, "diagnosis_agrees", &mut errors);
    let treatment_agrees = yes_no(&fields, "treatment_agrees", &mut errors);
    let result = match errors.into_result() {
        Ok(()) => {
            let input = store::ComparisonInput {
                diagnosis_agrees,
                treatment_agrees,
                risk_notes: fields.text("risk_notes"),
                outcome_notes: fields.text("outcome_notes"),
                cost_notes: fields.text("cost_notes"),
                summary: fields.text("summary"),
            };
            store::set_comparison(&state.db, &staff.actor, id, input).await
        }
        Err(err) => Err(err),
    };
    save_then_move(&state, &staff, id, "comparison", &fields, result, "Comparison saved.").await
}

pub async fn set_decision(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<CaseId>,
    fields: FormFields,
) -> PageResult<Response> {
    let input = store::DecisionInput { chosen_opinion: fields.text("chosen_opinion"), reason: fields.text("reason") };
    let result = store::set_decision(&state.db, &staff.actor, id, input).await;
    save_then_move(&state, &staff, id, "decision", &fields, result, "Decision recorded.").await
}

pub async fn update_details(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<CaseId>,
    fields: FormFields,
) -> PageResult<Response> {
    let mut errors = FieldErrors::new();
    let urgency = fields.optional("urgency").and_then(|u| {
        let parsed = Urgency::parse(&u);
        if parsed.is_none() {
            errors.add("urgency", "choose routine or expedited");
        }
        parsed
    });
    // The patient keeps the questions up to date from the portal: a page
    // opened before their change must not undo it.
    let typed_questions = fields.text("patient_questions");
    let shown_questions = fields.optional("was_patient_questions").map(|_| fields.text("was_patient_questions"));
    let result = match errors.into_result() {
        Ok(()) => match questions_to_save(&state, &staff, id, typed_questions, shown_questions).await {
            Ok(patient_questions) => {
                let patch = store::CasePatch {
                    advocate_id: None,
                    urgency,
                    summary: Some(fields.text("summary")),
                    medical_history: Some(fields.text("medical_history")),
                    medications: Some(fields.text("medications")),
                    patient_questions,
                };
                store::update(&state.db, &state.rules, &staff.actor, id, patch).await
            }
            Err(err) => Err(err),
        },
        Err(err) => Err(err),
    };
    finish(&state, &staff, id, "details", &fields, result, "Case details saved.").await
}

/// The patient questions a details form saves: none when the person left
/// them as the page showed them; refused when they changed them and the
/// patient (or anyone) changed them too since the page was shown.
async fn questions_to_save(
    state: &AppState,
    staff: &Staff,
    id: CaseId,
    typed: String,
    shown: Option<String>,
) -> crate::error::AppResult<Option<String>> {
    let Some(shown) = shown else { return Ok(Some(typed)) };
    let same = |a: &str, b: &str| a.replace("\r\n", "\n").trim() == b.replace("\r\n", "\n").trim();
    if same(&typed, &shown) {
        return Ok(None);
    }
    use sea_orm::{EntityTrait, QuerySelect};
    store::check_access(&state.db, &staff.actor, id.get(), "case.update").await?;
    let now: String = crate::db::entities::case::Entity::find_by_id(id.get())
        .select_only()
        .column(crate::db::entities::case::Column::PatientQuestions)
        .into_tuple()
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound)?;
    if !same(&now, &shown) {
        return Err(crate::error::AppError::conflict(
            "questions_changed",
            format!(
                "the patient's questions changed since this page was opened (they now read: “{}”); nothing was \
                 saved — bring your change into the current list and save again",
                now.replace('\n', " / ")
            ),
        ));
    }
    Ok(Some(typed))
}

#[derive(Template)]
#[template(path = "case_new.html")]
struct NewCasePage {
    nav: Nav,
    form: FormState,
    reasons: &'static [Reason],
    default_timezone: String,
}

pub async fn new_form(State(state): State<AppState>, staff: Staff) -> PageResult<Html<String>> {
    let form = FormState { form: "intake".into(), ..FormState::default() };
    let mut page = NewCasePage {
        nav: staff.nav().await,
        form,
        reasons: Reason::ALL,
        default_timezone: state.settings.cases.default_timezone.clone(),
    };
    page.form.values.insert("patient.timezone".into(), page.default_timezone.clone());
    page.form.values.insert("patient.language".into(), state.settings.cases.default_language.clone());
    page.form.values.insert("urgency".into(), "routine".into());
    render(&page)
}

pub async fn create(State(state): State<AppState>, staff: Staff, fields: FormFields) -> PageResult<Response> {
    let mut errors = FieldErrors::new();
    let reason = chosen(&fields, "reason", Reason::parse, "choose why the patient wants a second opinion", &mut errors);
    let urgency = chosen(&fields, "urgency", Urgency::parse, "choose routine or expedited", &mut errors);
    let result = match (errors.into_result(), reason, urgency) {
        (Ok(()), Some(reason), Some(urgency)) => {
            let new = store::NewCase {
                patient: store::NewPatient {
                    name: fields.text("patient.name"),
                    email: fields.text("patient.email"),
                    phone: fields.optional("patient.phone"),
                    timezone: fields.optional("patient.timezone"),
                    language: fields.optional("patient.language"),
                },
                specialty: fields.text("specialty"),
                reason,
                urgency,
                summary: fields.text("summary"),
                advocate_id: None,
                medical_history: fields.text("medical_history"),
                medications: fields.text("medications"),
                patient_questions: fields.text("patient_questions"),
            };
            store::create(&state.db, &state.rules, &staff.actor, new).await
        }
        (Err(err), _, _) => Err(err),
        _ => Err(FieldErrors::single("reason", "is required")),
    };
    match result {
        Ok(case) => {
            staff.flash(format!("Case {} opened.", case.reference)).await;
            Ok(Redirect::to(&format!("/cases/{}", case.id)).into_response())
        }
        Err(err) => {
            let form = FormState::refused("intake", &fields, err)?;
            let page = NewCasePage {
                nav: staff.nav().await,
                form,
                reasons: Reason::ALL,
                default_timezone: state.settings.cases.default_timezone.clone(),
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
    }
}

#[derive(Template)]
#[template(path = "case_summary.html")]
struct SummaryPage {
    case: CaseView,
    reason: &'static str,
    enclosed: Vec<String>,
    current_diagnosis: String,
    current_plan: String,
    questions: Vec<String>,
    /// The names of the case's documents (names only: the sheet travels).
    documents: Vec<String>,
    /// The consultation's time where the patient lives, with the zone named:
    /// the sheet goes to the patient and the specialist, not the advocate.
    consultation_when: Option<String>,
}

pub async fn summary(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<CaseId>,
) -> PageResult<Html<String>> {
    let case = store::view(&state.db, &state.reads, &staff.actor, id).await?;
    let original = case.opinions.iter().find(|o| o.round == "original");
    let page = SummaryPage {
        reason: case.reason.label(),
        enclosed: case.records.iter().filter(|r| r.status == RecordStatus::Received).map(|r| r.label.clone()).collect(),
        current_diagnosis: original.map(|o| o.diagnosis.clone()).unwrap_or_default(),
        current_plan: original.map(|o| o.treatment_plan.clone()).unwrap_or_default(),
        questions: case.patient_questions.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect(),
        documents: documents::store::of_case(&state.db, id.get(), false).await?.into_iter().map(|d| d.name).collect(),
        consultation_when: case.consultation.as_ref().map(|c| {
            let tz: chrono_tz::Tz = case.patient.timezone.parse().unwrap_or(chrono_tz::Tz::UTC);
            let local = c.scheduled_at.with_timezone(&tz);
            format!("{} ({}, {} time)", local.format("%a %-d %b %Y, %H:%M"), local.format("%Z"), tz.name())
        }),
        case,
    };
    render(&page)
}
