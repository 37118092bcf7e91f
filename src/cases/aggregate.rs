//! A case as its rules see it — the case row, its current round and which
//! opinions exist — loaded once (under the write lock when writing). What a
//! move needs and which moves the page offers are pure functions of it, so
//! the case page and the transition ask the same question the same way.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use super::stage::{self, MoveKind, Readiness, Refusal, Requirement};
use crate::{
    db::entities::{case, case_round, opinion},
    error::AppResult,
    vocabulary::Stage,
};

#[derive(Debug, Clone)]
pub struct CaseState {
    pub row: case::Model,
    /// The round being worked on (none only for a broken case).
    pub round: Option<case_round::Model>,
    /// Rounds with a recorded opinion (1 = the original).
    pub opinion_rounds: Vec<i32>,
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
        let round = case_round::Entity::find()
            .filter(case_round::Column::CaseId.eq(row.id))
            .filter(case_round::Column::Round.eq(row.round))
            .one(conn)
            .await?;
        let opinion_rounds = opinion::Entity::find()
            .select_only()
            .column(opinion::Column::Round)
            .filter(opinion::Column::CaseId.eq(row.id))
            .into_tuple()
            .all(conn)
            .await?;
        Ok(Self { row, round, opinion_rounds })
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
            original_opinion: self.opinion_rounds.contains(&1),
            current_round_opinion: self.opinion_rounds.contains(&self.row.round),
            comparison: round.is_some_and(|r| r.compared_at.is_some()),
            decision: self.row.chosen_opinion.is_some(),
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
            search_key: String::new(),
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
        CaseState { row, round: Some(round_row), opinion_rounds: opinions }
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
