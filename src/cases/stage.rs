//! The stage machine: which moves a case may make and what each move needs.
//! Plain functions over plain data; the caller supplies the facts and `now`.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Highest opinion round a case may reach (the original counts as round 1).
pub const MAX_ROUND: i32 = 10;

pub use crate::vocabulary::Stage;

/// The next stage on the path to a decision.
fn next(stage: Stage) -> Option<Stage> {
    let position = Stage::PATH.iter().position(|s| *s == stage)?;
    Stage::PATH.get(position + 1).copied()
}

/// The kind of move, decided by the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveKind {
    Forward,
    /// Back from `opinions_compared` to `specialist_chosen` for another opinion.
    FurtherOpinion,
    Withdraw,
}

/// Whether the machine allows `from → to` at all, regardless of requirements.
pub fn move_kind(from: Stage, to: Stage) -> Option<MoveKind> {
    if from.is_final() {
        return None;
    }
    if to == Stage::Withdrawn {
        return Some(MoveKind::Withdraw);
    }
    if next(from) == Some(to) {
        return Some(MoveKind::Forward);
    }
    if from == Stage::OpinionsCompared && to == Stage::SpecialistChosen {
        return Some(MoveKind::FurtherOpinion);
    }
    None
}

/// What the case already has, as far as the stage rules care.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readiness {
    /// The opinion round the case is working on (2 = the second opinion).
    pub round: i32,
    /// A specialist is chosen for the round being entered.
    pub specialist_chosen: bool,
    /// The consultation of the current round, if one is recorded: its held
    /// time, or its scheduled time when no held time is recorded.
    pub consultation_at: Option<DateTime<Utc>>,
    pub original_opinion: bool,
    /// The opinion of the current round (second, third…) is recorded.
    pub current_round_opinion: bool,
    pub comparison: bool,
    pub decision: bool,
    /// Consent is required and the patient has not signed it for this round.
    pub consent_missing: bool,
}

/// One thing a move needs and the case does not have yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Requirement {
    Specialist,
    Consultation,
    ConsultationNotYetHeld,
    OriginalOpinion,
    CurrentRoundOpinion,
    Comparison,
    Decision,
    Note,
    RoundsRemaining,
    Consent,
}

impl Requirement {
    pub fn message(self) -> &'static str {
        match self {
            Requirement::Specialist => "choose a specialist first",
            Requirement::Consultation => "record the consultation first",
            Requirement::ConsultationNotYetHeld => "the consultation's time is still in the future",
            Requirement::OriginalOpinion => "record the original opinion first",
            Requirement::CurrentRoundOpinion => "record the opinion of this round first",
            Requirement::Comparison => "compare the opinions first",
            Requirement::Decision => "record the decision first",
            Requirement::Note => "a note saying why is required",
            Requirement::RoundsRemaining => "no further opinion round is allowed on this case",
            Requirement::Consent => {
                "the patient has not signed the authorization to share their records with the specialist"
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotAllowed { from: Stage, to: Stage },
    Unmet(Vec<Requirement>),
}

/// An accepted move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    pub from: Stage,
    pub to: Stage,
    pub kind: MoveKind,
    /// The round the case works on after the move.
    pub round: i32,
}

/// Decides whether the case may move from `from` to `to` now.
pub fn plan_move(
    from: Stage,
    to: Stage,
    ready: &Readiness,
    note: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Move, Refusal> {
    let kind = move_kind(from, to).ok_or(Refusal::NotAllowed { from, to })?;
    let mut unmet = Vec::new();
    let mut round = ready.round;
    match kind {
        MoveKind::Withdraw => {
            if note.is_none_or(|n| n.trim().is_empty()) {
                unmet.push(Requirement::Note);
            }
        }
        MoveKind::FurtherOpinion => {
            if ready.round >= MAX_ROUND {
                unmet.push(Requirement::RoundsRemaining);
            }
            if !ready.specialist_chosen {
                unmet.push(Requirement::Specialist);
            }
            round += 1;
        }
        MoveKind::Forward => match to {
            Stage::SpecialistChosen => {
                if !ready.specialist_chosen {
                    unmet.push(Requirement::Specialist);
                }
            }
            Stage::ConsultationHeld => {
                match ready.consultation_at {
                    None => unmet.push(Requirement::Consultation),
                    Some(at) if at > now => unmet.push(Requirement::ConsultationNotYetHeld),
                    Some(_) => {}
                }
                if ready.consent_missing {
                    unmet.push(Requirement::Consent);
                }
            }
            Stage::OpinionsCompared => {
                if !ready.original_opinion {
                    unmet.push(Requirement::OriginalOpinion);
                }
                if !ready.current_round_opinion {
                    unmet.push(Requirement::CurrentRoundOpinion);
                }
                if !ready.comparison {
                    unmet.push(Requirement::Comparison);
                }
            }
            Stage::DecisionMade => {
                if !ready.decision {
                    unmet.push(Requirement::Decision);
                }
            }
            Stage::RecordsRequested | Stage::Withdrawn => {}
        },
    }
    if unmet.is_empty() { Ok(Move { from, to, kind, round }) } else { Err(Refusal::Unmet(unmet)) }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("history is empty")]
    Empty,
    #[error("history entry {index} starts from {found:?} but the case was in {expected:?}")]
    Broken { index: usize, expected: Option<Stage>, found: Option<Stage> },
    #[error("history entry {index} moves {from:?} to {to:?}, which is not allowed")]
    Illegal { index: usize, from: Stage, to: Stage },
}

/// Replays a stage history (`from`, `to` pairs; the first entry comes from
/// nowhere into `records_requested`) and returns the stage it ends in.
pub fn replay(history: &[(Option<Stage>, Stage)]) -> Result<Stage, ReplayError> {
    let mut current: Option<Stage> = None;
    for (index, (from, to)) in history.iter().copied().enumerate() {
        if from != current {
            return Err(ReplayError::Broken { index, expected: current, found: from });
        }
        match from {
            None if to == Stage::RecordsRequested => {}
            None => {
                return Err(ReplayError::Broken { index, expected: Some(Stage::RecordsRequested), found: Some(to) });
            }
            Some(from) => {
                if move_kind(from, to).is_none() {
                    return Err(ReplayError::Illegal { index, from, to });
                }
            }
        }
        current = Some(to);
    }
    current.ok_or(ReplayError::Empty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).single().expect("valid time")
    }

    fn everything_ready() -> Readiness {
        Readiness {
            round: 2,
            specialist_chosen: true,
            consultation_at: Some(now() - chrono::Duration::hours(1)),
            original_opinion: true,
            current_round_opinion: true,
            comparison: true,
            decision: true,
            consent_missing: false,
        }
    }

    #[test]
    fn the_happy_path_walks_all_five_stages() {
        let ready = everything_ready();
        let mut stage = Stage::RecordsRequested;
        for next in &Stage::PATH[1..] {
            let step = plan_move(stage, *next, &ready, None, now()).expect("allowed");
            assert_eq!(step.kind, MoveKind::Forward);
            stage = step.to;
        }
        assert_eq!(stage, Stage::DecisionMade);
    }

    #[test]
    fn stages_cannot_be_skipped_or_reversed() {
        let ready = everything_ready();
        for (from, to) in [
            (Stage::RecordsRequested, Stage::ConsultationHeld),
            (Stage::RecordsRequested, Stage::DecisionMade),
            (Stage::SpecialistChosen, Stage::RecordsRequested),
            (Stage::ConsultationHeld, Stage::SpecialistChosen),
            (Stage::OpinionsCompared, Stage::RecordsRequested),
            (Stage::SpecialistChosen, Stage::SpecialistChosen),
        ] {
            assert_eq!(plan_move(from, to, &ready, None, now()), Err(Refusal::NotAllowed { from, to }));
        }
    }

    #[test]
    fn final_stages_are_never_left() {
        let ready = everything_ready();
        for from in [Stage::DecisionMade, Stage::Withdrawn] {
            for to in Stage::ALL.iter().copied() {
                assert!(plan_move(from, to, &ready, Some("why"), now()).is_err(), "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn each_forward_move_names_what_is_missing() {
        let none = Readiness { round: 2, ..Readiness::default() };
        let unmet = |from, to| match plan_move(from, to, &none, None, now()) {
            Err(Refusal::Unmet(list)) => list,
            other => panic!("expected unmet requirements, got {other:?}"),
        };
        assert_eq!(unmet(Stage::RecordsRequested, Stage::SpecialistChosen), vec![Requirement::Specialist]);
        assert_eq!(unmet(Stage::SpecialistChosen, Stage::ConsultationHeld), vec![Requirement::Consultation]);
        assert_eq!(
            unmet(Stage::ConsultationHeld, Stage::OpinionsCompared),
            vec![Requirement::OriginalOpinion, Requirement::CurrentRoundOpinion, Requirement::Comparison]
        );
        assert_eq!(unmet(Stage::OpinionsCompared, Stage::DecisionMade), vec![Requirement::Decision]);
        assert_eq!(unmet(Stage::ConsultationHeld, Stage::Withdrawn), vec![Requirement::Note]);
    }

    #[test]
    fn a_consultation_in_the_future_has_not_been_held() {
        let ready = Readiness { consultation_at: Some(now() + chrono::Duration::minutes(1)), ..everything_ready() };
        assert_eq!(
            plan_move(Stage::SpecialistChosen, Stage::ConsultationHeld, &ready, None, now()),
            Err(Refusal::Unmet(vec![Requirement::ConsultationNotYetHeld]))
        );
        let exactly_now = Readiness { consultation_at: Some(now()), ..everything_ready() };
        assert!(plan_move(Stage::SpecialistChosen, Stage::ConsultationHeld, &exactly_now, None, now()).is_ok());
    }

    #[test]
    fn a_further_opinion_starts_the_next_round() {
        let ready = everything_ready();
        let step = plan_move(Stage::OpinionsCompared, Stage::SpecialistChosen, &ready, None, now()).expect("allowed");
        assert_eq!(step.kind, MoveKind::FurtherOpinion);
        assert_eq!(step.round, 3);
        let last = Readiness { round: MAX_ROUND, ..everything_ready() };
        assert_eq!(
            plan_move(Stage::OpinionsCompared, Stage::SpecialistChosen, &last, None, now()),
            Err(Refusal::Unmet(vec![Requirement::RoundsRemaining]))
        );
    }

    #[test]
    fn withdrawal_needs_a_note_but_nothing_else() {
        let none = Readiness { round: 2, ..Readiness::default() };
        for from in &Stage::PATH[..4] {
            assert!(plan_move(*from, Stage::Withdrawn, &none, Some("patient chose to stop"), now()).is_ok());
            assert!(plan_move(*from, Stage::Withdrawn, &none, Some("   "), now()).is_err());
        }
    }

    #[test]
    fn replay_rejects_broken_histories() {
        assert_eq!(replay(&[]), Err(ReplayError::Empty));
        assert!(replay(&[(None, Stage::SpecialistChosen)]).is_err());
        assert!(
            replay(&[(None, Stage::RecordsRequested), (Some(Stage::RecordsRequested), Stage::ConsultationHeld)])
                .is_err()
        );
        assert!(
            replay(&[(None, Stage::RecordsRequested), (Some(Stage::SpecialistChosen), Stage::ConsultationHeld)])
                .is_err()
        );
    }

    fn any_stage() -> impl Strategy<Value = Stage> {
        proptest::sample::select(Stage::ALL.to_vec())
    }

    fn any_readiness() -> impl Strategy<Value = Readiness> {
        (any::<[bool; 6]>(), proptest::option::of(-48i64..48)).prop_map(|(flags, consult_offset_h)| Readiness {
            round: if flags[5] { MAX_ROUND } else { 2 },
            specialist_chosen: flags[0],
            consultation_at: consult_offset_h.map(|h| now() + chrono::Duration::hours(h)),
            original_opinion: flags[1],
            current_round_opinion: flags[2],
            comparison: flags[3],
            decision: flags[4],
            consent_missing: false,
        })
    }

    proptest! {
        #[test]
        fn no_sequence_of_requests_reaches_an_illegal_state(
            requests in proptest::collection::vec((any_stage(), any_readiness(), any::<bool>()), 0..60)
        ) {
            let mut stage = Stage::RecordsRequested;
            let mut round = 2;
            let mut history = vec![(None, Stage::RecordsRequested)];
            for (to, mut ready, with_note) in requests {
                ready.round = ready.round.max(round).min(MAX_ROUND);
                let note = with_note.then_some("because");
                if let Ok(step) = plan_move(stage, to, &ready, note, now()) {
                        prop_assert!(!stage.is_final(), "left final stage {:?}", stage);
                        prop_assert!(move_kind(stage, to).is_some());
                        prop_assert!(step.round >= round && step.round <= MAX_ROUND);
                        if to == Stage::ConsultationHeld {
                            prop_assert!(ready.consultation_at.is_some_and(|at| at <= now()));
                        }
                        if to == Stage::DecisionMade {
                            prop_assert!(ready.decision);
                        }
                        history.push((Some(stage), to));
                        stage = step.to;
                        round = step.round;
                }
                prop_assert_eq!(replay(&history), Ok(stage));
            }
        }
    }
}
