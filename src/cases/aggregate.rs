//! A case as its rules see it — the case row, its current round, its
//! records and the opinions recorded so far — loaded once (under the write
//! lock when writing). What a move needs, which moves the page offers, the
//! stage clock, the API view and the reminder planner's facts are pure
//! functions of it, so every caller asks the same question the same way.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use super::{
    schedule::{StageClock, is_overdue},
    stage::{self, MoveKind, Readiness, Refusal, Requirement},
};
use crate::{
    db::entities::{case, case_record, case_round, opinion},
    error::AppResult,
    vocabulary::{RecordKind, RecordStatus, Stage},
};

#[derive(Debug, Clone)]
pub struct CaseState {
    pub row: case::Model,
    /// The round being worked on (none only for a broken case).
    pub round: Option<case_round::Model>,
    /// The records asked for, in kind order.
    pub records: Vec<case_record::Model>,
    /// Every opinion recorded, in round order (round 1 = the original).
    pub opinions: Vec<opinion::Model>,
}

/// The timing of the stage `row` is in, as its columns record it.
pub fn clock_of(row: &case::Model) -> StageClock {
    StageClock {
        entered_at: row.stage_entered_at,
        held_since: row.held_since,
        held_before: Duration::seconds(row.held_seconds),
    }
}

/// A move the machine allows from the case's stage, and what it still needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveChoice {
    pub to: Stage,
    pub kind: MoveKind,
    pub unmet: Vec<Requirement>,
}

impl CaseState {
    /// Reads the current round and the opinion rounds of `row`, on the same
    /// connection (the write transaction, when there is one).
    pub async fn load<C: ConnectionTrait>(conn: &C, row: case::Model) -> AppResult<Self> {
        let mut states = Self::load_many(conn, vec![row]).await?;
        Ok(states.remove(0))
    }

    /// The states of several cases with one read per table, whatever their
    /// number; in the order of `rows`.
    pub async fn load_many<C: ConnectionTrait>(conn: &C, rows: Vec<case::Model>) -> AppResult<Vec<Self>> {
        let ids: Vec<i32> = rows.iter().map(|c| c.id).collect();
        let mut rounds: HashMap<(i32, i32), case_round::Model> = case_round::Entity::find()
            .filter(case_round::Column::CaseId.is_in(ids.clone()))
            .all(conn)
            .await?
            .into_iter()
            .map(|r| ((r.case_id, r.round), r))
            .collect();
        let mut records: HashMap<i32, Vec<case_record::Model>> = HashMap::new();
        for r in case_record::Entity::find().filter(case_record::Column::CaseId.is_in(ids.clone())).all(conn).await? {
            records.entry(r.case_id).or_default().push(r);
        }
        let mut opinions: HashMap<i32, Vec<opinion::Model>> = HashMap::new();
        for o in opinion::Entity::find()
            .filter(opinion::Column::CaseId.is_in(ids))
            .order_by_asc(opinion::Column::Round)
            .all(conn)
            .await?
        {
            opinions.entry(o.case_id).or_default().push(o);
        }
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut records = records.remove(&row.id).unwrap_or_default();
                records.sort_by_key(|r| r.kind);
                Self {
                    round: rounds.remove(&(row.id, row.round)),
                    records,
                    opinions: opinions.remove(&row.id).unwrap_or_default(),
                    row,
                }
            })
            .collect())
    }

    pub fn has_opinion(&self, round: i32) -> bool {
        self.opinions.iter().any(|o| o.round == round)
    }

    /// Records asked for and not yet in, in kind order.
    pub fn records_outstanding(&self) -> Vec<RecordKind> {
        self.records.iter().filter(|r| r.status == RecordStatus::Requested).map(|r| r.kind).collect()
    }

    /// The timing of the stage the case is in.
    pub fn clock(&self) -> StageClock {
        clock_of(&self.row)
    }

    pub fn is_held(&self) -> bool {
        self.row.held_since.is_some()
    }

    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        is_overdue(self.row.stage_due_at, self.is_held(), now)
    }

    /// What the case has for a move to `to`. A further round starts without
    /// a specialist unless the move itself names one (`specialist_given`).
    pub fn readiness(&self, to: Stage, specialist_given: bool) -> Readiness {
        let further = self.row.stage == Stage::OpinionsCompared && to == Stage::SpecialistChosen;
        let round = self.round.as_ref();
        Readiness {
            round: self.row.round,
            specialist_chosen: specialist_given || (!further && round.is_some_and(|r| r.specialist_id.is_some())),
            consultation_at: round.and_then(|r| r.consultation_held_at.or(r.consultation_scheduled_at)),
            original_opinion: self.has_opinion(1),
            current_round_opinion: self.has_opinion(self.row.round),
            comparison: round.is_some_and(|r| r.compared_at.is_some()),
            decision: self.row.chosen_opinion.is_some(),
            // Known only to the store, which reads the consents.
            consent_missing: false,
        }
    }

    /// The moves a person can pick from here (withdrawing is offered apart).
    /// A further round chooses its specialist with the move itself, so that
    /// need is left to the move.
    pub fn moves(&self, now: DateTime<Utc>) -> Vec<MoveChoice> {
        let from = self.row.stage;
        Stage::ALL
            .iter()
            .copied()
            .filter(|to| *to != Stage::Withdrawn)
            .filter_map(|to| {
                let kind = stage::move_kind(from, to)?;
                let ready = self.readiness(to, kind == MoveKind::FurtherOpinion);
                let unmet = match stage::plan_move(from, to, &ready, None, now) {
                    Ok(_) => Vec::new(),
                    Err(Refusal::Unmet(unmet)) => unmet,
                    Err(Refusal::NotAllowed { .. }) => return None,
                };
                Some(MoveChoice { to, kind, unmet })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::vocabulary::{Reason, Urgency};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).single().expect("time")
    }

    fn state(stage: Stage, round: i32, specialist: bool, opinions: Vec<i32>) -> CaseState {
        let at = now();
        let row = case::Model {
            id: 1,
            reference: "SO-1".into(),
            patient_name: "P".into(),
            patient_email: "p@example.org".into(),
            patient_phone: None,
            patient_timezone: "UTC".into(),
            patient_language: "en".into(),
            specialty: "Oncology".into(),
            reason: Reason::Other,
            urgency: Urgency::Routine,
            summary: String::new(),
            advocate_id: None,
            stage,
            round,
            stage_entered_at: at,
            stage_due_at: None,
            held_since: None,
            hold_reason: None,
            hold_note: None,
            held_seconds: 0,
            chosen_opinion: None,
            decision_reason: None,
            decided_at: None,
            version: 1,
            created_at: at,
            updated_at: at,
            closed_at: None,
            medical_history: String::new(),
            medications: String::new(),
            patient_questions: String::new(),
            nudge_token: None,
            nudges_stopped_at: None,
            erased_at: None,
            remind_at: None,
            portal_activity_at: None,
        };
        let round_row = case_round::Model {
            id: 1,
            case_id: 1,
            round,
            specialist_id: specialist.then_some(3),
            consultation_scheduled_at: None,
            consultation_mode: None,
            consultation_location: None,
            consultation_held_at: None,
            diagnosis_agrees: None,
            treatment_agrees: None,
            risk_notes: None,
            outcome_notes: None,
            cost_notes: None,
            comparison_summary: None,
            compared_at: None,
        };
        let opinions = opinions
            .into_iter()
            .map(|round| opinion::Model {
                id: round,
                case_id: 1,
                round,
                clinician: "Dr".into(),
                diagnosis: "D".into(),
                treatment_plan: "T".into(),
                recommends_surgery: false,
                notes: String::new(),
                recorded_at: at,
                recorded_by: None,
            })
            .collect();
        CaseState { row, round: Some(round_row), records: Vec::new(), opinions }
    }

    #[test]
    fn the_page_and_the_move_ask_the_same_question() {
        let waiting = state(Stage::RecordsRequested, 2, false, vec![]);
        let moves = waiting.moves(now());
        assert_eq!(moves.len(), 1);
        assert_eq!(moves[0].to, Stage::SpecialistChosen);
        assert_eq!(moves[0].unmet, vec![Requirement::Specialist]);
        let ready = state(Stage::RecordsRequested, 2, true, vec![]);
        assert!(ready.moves(now())[0].unmet.is_empty());
        assert!(ready.readiness(Stage::SpecialistChosen, false).specialist_chosen);
    }

    #[test]
    fn a_further_round_needs_its_own_specialist() {
        let compared = state(Stage::OpinionsCompared, 2, true, vec![1, 2]);
        assert!(!compared.readiness(Stage::SpecialistChosen, false).specialist_chosen);
        assert!(compared.readiness(Stage::SpecialistChosen, true).specialist_chosen);
        let further = compared.moves(now()).into_iter().find(|m| m.kind == MoveKind::FurtherOpinion);
        assert!(further.is_some_and(|m| m.unmet.is_empty()), "the page leaves the specialist to the move's form");
    }
}
