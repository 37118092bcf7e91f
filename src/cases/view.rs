//! How a case reads back: the full view (`GET /api/v1/cases/{id}`) and the
//! short list item, assembled from the case's rows.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;

use super::{
    Stage, Urgency,
    aggregate::CaseState,
    schedule::is_overdue,
    values::{ConsultationMode, HoldReason, OpinionChoice, Reason, RecordKind, RecordStatus, round_name},
};
use crate::{
    db::entities::{case, specialist, stage_change, user},
    error::{AppError, AppResult},
};

#[derive(Debug, Clone, Serialize)]
pub struct CaseView {
    pub id: i32,
    pub reference: String,
    pub patient: PatientView,
    pub specialty: String,
    pub reason: Reason,
    pub urgency: Urgency,
    pub summary: String,
    pub medical_history: String,
    pub medications: String,
    pub patient_questions: String,
    pub advocate: Option<PersonRef>,
    pub stage: Stage,
    /// The opinion round being worked on: `second`, `third`…
    pub round: String,
    pub stage_entered_at: DateTime<Utc>,
    pub stage_due_at: Option<DateTime<Utc>>,
    pub overdue: bool,
    pub hold: Option<HoldView>,
    pub history: Vec<HistoryEntry>,
    pub records: Vec<RecordView>,
    pub specialist: Option<SpecialistView>,
    pub consultation: Option<ConsultationView>,
    pub opinions: Vec<OpinionView>,
    pub comparison: Option<ComparisonView>,
    pub decision: Option<DecisionView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Set once the patient's identifying data and free text were erased;
    /// the fields that held them are then empty.
    pub erased_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PatientView {
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    pub timezone: String,
    pub language: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PersonRef {
    pub id: i32,
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HoldView {
    pub since: DateTime<Utc>,
    pub reason: HoldReason,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub from: Option<Stage>,
    pub to: Stage,
    pub round: String,
    pub at: DateTime<Utc>,
    pub by: Option<PersonRef>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecordView {
    pub kind: RecordKind,
    pub label: String,
    pub status: RecordStatus,
    pub requested_at: Option<DateTime<Utc>>,
    pub received_at: Option<DateTime<Utc>>,
    pub note: String,
    pub updated_at: DateTime<Utc>,
}

pub use crate::specialists::SpecialistView;

#[derive(Debug, Clone, Serialize)]
pub struct ConsultationView {
    pub scheduled_at: DateTime<Utc>,
    pub mode: ConsultationMode,
    pub location: Option<String>,
    pub held_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OpinionView {
    pub round: String,
    pub clinician: String,
    pub diagnosis: String,
    pub treatment_plan: String,
    pub recommends_surgery: bool,
    pub notes: String,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComparisonView {
    pub diagnosis_agrees: bool,
    pub treatment_agrees: bool,
    pub risk_notes: String,
    pub outcome_notes: String,
    pub cost_notes: String,
    pub summary: String,
    pub compared_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DecisionView {
    pub chosen_opinion: OpinionChoice,
    pub reason: String,
    pub decided_at: DateTime<Utc>,
}

/// One line of a case list.
#[derive(Debug, Clone, Serialize)]
pub struct CaseListItem {
    pub id: i32,
    pub reference: String,
    pub patient_name: String,
    pub specialty: String,
    pub reason: Reason,
    pub urgency: Urgency,
    pub stage: Stage,
    pub stage_due_at: Option<DateTime<Utc>>,
    pub overdue: bool,
    pub on_hold: bool,
    /// Decided or withdrawn.
    pub closed: bool,
    /// The patient's data was erased: `patient_name` is empty.
    pub erased: bool,
    pub advocate_id: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CaseListItem {
    pub fn from_row(c: case::Model, now: DateTime<Utc>) -> Self {
        Self {
            overdue: is_overdue(c.stage_due_at, c.held_since.is_some(), now),
            on_hold: c.held_since.is_some(),
            closed: c.closed_at.is_some(),
            erased: c.erased_at.is_some(),
            id: c.id,
            reference: c.reference,
            patient_name: c.patient_name,
            specialty: c.specialty,
            reason: c.reason,
            urgency: c.urgency,
            stage: c.stage,
            stage_due_at: c.stage_due_at,
            advocate_id: c.advocate_id,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

fn person(u: &user::Model) -> PersonRef {
    PersonRef { id: u.id, name: u.name.clone(), email: u.email.clone() }
}

/// Reads the whole case. The caller has already checked access.
pub async fn load<C: ConnectionTrait>(conn: &C, case_id: i32, now: DateTime<Utc>) -> AppResult<CaseView> {
    Ok(load_with_state(conn, case_id, now).await?.0)
}

/// The whole case, and the state its rules read, from one set of reads.
pub async fn load_with_state<C: ConnectionTrait>(
    conn: &C,
    case_id: i32,
    now: DateTime<Utc>,
) -> AppResult<(CaseView, CaseState)> {
    let row = case::Entity::find_by_id(case_id).one(conn).await?.ok_or(AppError::NotFound)?;
    let state = CaseState::load(conn, row).await?;
    let specialist = match state.round.as_ref().and_then(|r| r.specialist_id) {
        Some(id) => specialist::Entity::find_by_id(id).one(conn).await?.map(SpecialistView::from),
        None => None,
    };
    let history = stage_change::Entity::find()
        .filter(stage_change::Column::CaseId.eq(case_id))
        .order_by_asc(stage_change::Column::Id)
        .all(conn)
        .await?;
    let mut people_ids: Vec<i32> = history.iter().filter_map(|h| h.by_user_id).chain(state.row.advocate_id).collect();
    people_ids.sort_unstable();
    people_ids.dedup();
    let people = user::Entity::find().filter(user::Column::Id.is_in(people_ids)).all(conn).await?;
    let view = assemble(&state, specialist, &history, &people, now);
    Ok((view, state))
}

/// The view of a case: its state plus the names the state only refers to
/// (the round's specialist, the people in its history).
pub fn assemble(
    state: &CaseState,
    specialist: Option<SpecialistView>,
    history: &[stage_change::Model],
    people: &[user::Model],
    now: DateTime<Utc>,
) -> CaseView {
    let c = &state.row;
    let person_by_id = |id: Option<i32>| id.and_then(|id| people.iter().find(|u| u.id == id)).map(person);
    let current_round = state.round.as_ref();
    let consultation = current_round.and_then(|r| {
        Some(ConsultationView {
            scheduled_at: r.consultation_scheduled_at?,
            mode: r.consultation_mode?,
            location: r.consultation_location.clone(),
            held_at: r.consultation_held_at,
        })
    });
    let comparison = current_round.and_then(|r| {
        Some(ComparisonView {
            diagnosis_agrees: r.diagnosis_agrees?,
            treatment_agrees: r.treatment_agrees?,
            risk_notes: r.risk_notes.clone().unwrap_or_default(),
            outcome_notes: r.outcome_notes.clone().unwrap_or_default(),
            cost_notes: r.cost_notes.clone().unwrap_or_default(),
            summary: r.comparison_summary.clone().unwrap_or_default(),
            compared_at: r.compared_at?,
        })
    });
    let decision = match (&c.chosen_opinion, &c.decision_reason, c.decided_at) {
        (Some(chosen), Some(reason), Some(at)) => {
            Some(DecisionView { chosen_opinion: *chosen, reason: reason.clone(), decided_at: at })
        }
        _ => None,
    };
    CaseView {
        id: c.id,
        reference: c.reference.clone(),
        patient: PatientView {
            name: c.patient_name.clone(),
            email: c.patient_email.clone(),
            phone: c.patient_phone.clone(),
            timezone: c.patient_timezone.clone(),
            language: c.patient_language.clone(),
        },
        specialty: c.specialty.clone(),
        reason: c.reason,
        urgency: c.urgency,
        summary: c.summary.clone(),
        medical_history: c.medical_history.clone(),
        medications: c.medications.clone(),
        patient_questions: c.patient_questions.clone(),
        advocate: person_by_id(c.advocate_id),
        stage: c.stage,
        round: round_name(c.round),
        stage_entered_at: c.stage_entered_at,
        stage_due_at: c.stage_due_at,
        overdue: state.is_overdue(now),
        hold: c.held_since.zip(c.hold_reason).map(|(since, reason)| HoldView {
            since,
            reason,
            note: c.hold_note.clone(),
        }),
        history: history
            .iter()
            .map(|h| HistoryEntry {
                from: h.from_stage,
                to: h.to_stage,
                round: round_name(h.round),
                at: h.at,
                by: person_by_id(h.by_user_id),
                note: h.note.clone(),
            })
            .collect(),
        records: state
            .records
            .iter()
            .map(|r| RecordView {
                label: r.kind.label().to_string(),
                kind: r.kind,
                status: r.status,
                requested_at: r.requested_at,
                received_at: r.received_at,
                note: r.note.clone(),
                updated_at: r.updated_at,
            })
            .collect(),
        specialist,
        consultation,
        opinions: state
            .opinions
            .iter()
            .map(|o| OpinionView {
                round: round_name(o.round),
                clinician: o.clinician.clone(),
                diagnosis: o.diagnosis.clone(),
                treatment_plan: o.treatment_plan.clone(),
                recommends_surgery: o.recommends_surgery,
                notes: o.notes.clone(),
                recorded_at: o.recorded_at,
            })
            .collect(),
        comparison,
        decision,
        created_at: c.created_at,
        updated_at: c.updated_at,
        closed_at: c.closed_at,
        erased_at: c.erased_at,
    }
}
