//! One demo case as the rows the case operations would have left behind:
//! the case, its round, records checklist, opinions and stage history, with
//! times that follow each other the way a real case's do. Pure apart from
//! the random choices; the caller writes the rows.

use chrono::{DateTime, Duration, Utc};

use crate::db::bulk::Table;
use crate::{
    cases::{
        Stage, Urgency,
        schedule::{ServiceLevels, StageClock},
        store,
        values::{ConsultationMode, HoldReason, OpinionChoice, Reason, RecordKind, RecordStatus},
    },
    error::AppResult,
};

/// The name the consent text of a demo case names (any demo specialist).
const DEMO_SPECIALIST_NAME: &str = "the chosen specialist";
/// How far back the oldest demo cases were opened.
const SPAN_DAYS: f64 = 730.0;
/// The round every case works on until a further opinion is asked for.
const ROUND: i32 = 2;
/// Which stage a stalled open case waits in, in turn, so even a small
/// caseload has open cases in every open stage.
const STALLED_IN: [usize; 10] = [0, 1, 0, 2, 3, 1, 0, 1, 3, 2];

pub const CASE_COLUMNS: &[&str] = &[
    "id",
    "reference",
    "patient_name",
    "patient_email",
    "patient_phone",
    "patient_timezone",
    "patient_language",
    "specialty",
    "reason",
    "urgency",
    "summary",
    "advocate_id",
    "stage",
    "round",
    "stage_entered_at",
    "stage_due_at",
    "held_since",
    "hold_reason",
    "hold_note",
    "held_seconds",
    "chosen_opinion",
    "decision_reason",
    "decided_at",
    "version",
    "created_at",
    "updated_at",
    "closed_at",
    "medical_history",
    "medications",
    "patient_questions",
    "nudge_token",
    "nudges_stopped_at",
    "erased_at",
    "remind_at",
];
pub const ROUND_COLUMNS: &[&str] = &[
    "case_id",
    "round",
    "specialist_id",
    "consultation_scheduled_at",
    "consultation_mode",
    "consultation_location",
    "consultation_held_at",
    "diagnosis_agrees",
    "treatment_agrees",
    "risk_notes",
    "outcome_notes",
    "cost_notes",
    "comparison_summary",
    "compared_at",
];
pub const RECORD_COLUMNS: &[&str] = &["case_id", "kind", "status", "requested_at", "received_at", "note", "updated_at"];
pub const OPINION_COLUMNS: &[&str] = &[
    "case_id",
    "round",
    "clinician",
    "diagnosis",
    "treatment_plan",
    "recommends_surgery",
    "notes",
    "recorded_at",
    "recorded_by",
];
pub const HISTORY_COLUMNS: &[&str] = &["case_id", "from_stage", "to_stage", "round", "at", "by_user_id", "note"];

pub const TERM_COLUMNS: &[&str] = &["term", "case_id"];
pub const CONSENT_COLUMNS: &[&str] = &[
    "case_id",
    "round",
    "specialist_id",
    "signer_name",
    "signed_by",
    "method",
    "signed_at",
    "ip",
    "text_version",
    "text_sha256",
    "document_id",
];
pub const SURVEY_COLUMNS: &[&str] =
    &["case_id", "satisfaction", "recommend", "comment", "submitted_at", "submitted_by"];

/// The row buffers of one load. Cases go first: the other tables refer to them.
pub struct Tables {
    pub cases: Table,
    pub rounds: Table,
    pub records: Table,
    pub opinions: Table,
    pub history: Table,
    pub terms: Table,
    pub consents: Table,
    pub surveys: Table,
}

impl Tables {
    pub fn new() -> Self {
        Self {
            cases: Table::new("cases", CASE_COLUMNS),
            rounds: Table::new("case_rounds", ROUND_COLUMNS),
            records: Table::new("case_records", RECORD_COLUMNS),
            opinions: Table::new("opinions", OPINION_COLUMNS),
            history: Table::new("stage_history", HISTORY_COLUMNS),
            terms: Table::new("case_search_terms", TERM_COLUMNS),
            consents: Table::new("portal_consents", CONSENT_COLUMNS),
            surveys: Table::new("portal_surveys", SURVEY_COLUMNS),
        }
    }

    /// The tables that refer to cases, written after them.
    fn dependents(&mut self) -> [&mut Table; 7] {
        [
            &mut self.rounds,
            &mut self.records,
            &mut self.opinions,
            &mut self.history,
            &mut self.terms,
            &mut self.consents,
            &mut self.surveys,
        ]
    }

    /// Writes what fills whole statements, cases first.
    pub async fn write_full<C: sea_orm::ConnectionTrait>(&mut self, conn: &C) -> Result<(), sea_orm::DbErr> {
        self.cases.write_full(conn).await?;
        for table in self.dependents() {
            table.write_full(conn).await?;
        }
        Ok(())
    }

    /// Writes everything buffered, cases first.
    pub async fn write_all<C: sea_orm::ConnectionTrait>(&mut self, conn: &C) -> Result<(), sea_orm::DbErr> {
        self.cases.write_all(conn).await?;
        for table in self.dependents() {
            table.write_all(conn).await?;
        }
        Ok(())
    }
}

/// A demo patient's details and the specialty they need.
pub struct Patient {
    pub name: String,
    pub email: String,
    pub phone: String,
    pub timezone: &'static str,
    pub specialty: &'static str,
    pub summary: String,
}

/// What every case of one load shares.
pub struct Caseload<'a> {
    pub now: DateTime<Utc>,
    pub total: u32,
    /// How many of the cases are still open at `now`.
    pub open: u32,
    pub levels: &'a ServiceLevels,
    pub reference_prefix: &'a str,
    pub advocates: &'a [i32],
}

/// What one case became, for the summary.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub stage: Stage,
    pub overdue: bool,
    pub held: bool,
}

impl Caseload<'_> {
    /// Open cases are among the newest: every other one of the last `2 × open`.
    fn open_rank(&self, index: u32) -> Option<u32> {
        let first = self.total.saturating_sub(2 * self.open);
        (index >= first && (index - first).is_multiple_of(2)).then(|| (index - first) / 2)
    }

    /// When case `index` of the load was opened: spread over two years, in
    /// order, three times as dense now as two years ago.
    fn opened_at(&self, index: u32, rng: &mut fastrand::Rng) -> DateTime<Utc> {
        let newer = 1.0 - (f64::from(index) + rng.f64()) / f64::from(self.total.max(1));
        // Inverse of the share of cases younger than `age` for a density
        // falling linearly from 3 (now) to 1 (two years ago).
        let age_days = SPAN_DAYS * (3.0 - (9.0 - 8.0 * newer.clamp(0.0, 1.0)).sqrt()) / 2.0;
        self.now - Duration::seconds((age_days * 86_400.0) as i64)
    }

    /// How long a case spends in open stage `i` of the path: mostly within
    /// its service level, sometimes beyond.
    fn time_in(&self, i: usize, urgency: Urgency, rng: &mut fastrand::Rng) -> Duration {
        let allowance = self.levels.allowance(Stage::PATH[i], urgency).unwrap_or(Duration::days(7));
        scale(allowance, 0.15 + 1.1 * rng.f64())
    }

    /// Adds the rows of case `index` (stored with id `id`) to `tables`.
    pub fn add(
        &self,
        tables: &mut Tables,
        index: u32,
        id: i32,
        patient: Patient,
        specialist: (i32, bool),
        rng: &mut fastrand::Rng,
    ) -> AppResult<Outcome> {
        let now = self.now;
        let urgency = if rng.u8(..4) == 0 { Urgency::Expedited } else { Urgency::Routine };
        let reason = Reason::ALL[rng.usize(..Reason::ALL.len())];
        let advocate = self.advocates[index as usize % self.advocates.len()];
        let created = self.opened_at(index, rng);
        let path = match self.open_rank(index) {
            Some(rank) => self.open_path(created, urgency, rank, rng),
            None => self.closed_path(created, urgency, rng),
        };
        let reached = path.entered.len() - 1;
        let leaves = |i: usize| path.entered.get(i + 1).copied().or(path.withdrawn_at).unwrap_or(now);
        let last_entered = path.entered.last().copied().unwrap_or(created);
        let stage = if path.withdrawn_at.is_some() { Stage::Withdrawn } else { Stage::PATH[reached] };
        let open = !stage.is_final();
        let stage_entered_at = path.withdrawn_at.unwrap_or(last_entered);
        let mut touched = stage_entered_at;

        // The records checklist: one line per kind, asked for at intake.
        let mut received = 0;
        for kind in RecordKind::ALL {
            let rarely_needed =
                matches!(kind, RecordKind::ImagingPet | RecordKind::SurgicalReports | RecordKind::PathologyReport);
            let roll = rng.u8(..100);
            let status = if roll < if rarely_needed { 40 } else { 10 } {
                RecordStatus::NotApplicable
            } else if reached > 0 || roll < 60 {
                RecordStatus::Received
            } else {
                RecordStatus::Requested
            };
            let changed = between(rng, created, leaves(0));
            let received_at = (status == RecordStatus::Received).then_some(changed);
            if status == RecordStatus::Received {
                received += 1;
            }
            let updated_at = if status == RecordStatus::Requested { created } else { changed };
            touched = touched.max(updated_at);
            tables.records.push([
                id.into(),
                (*kind).into(),
                status.into(),
                Some(created).into(),
                received_at.into(),
                String::new().into(),
                updated_at.into(),
            ]);
        }

        // The round: specialist, consultation, comparison, as far as the case got.
        let (specialist_id, offers_virtual) = specialist;
        let chosen = reached >= 1 || rng.u8(..10) < 3;
        let mode =
            if offers_virtual && rng.u8(..10) < 7 { ConsultationMode::Virtual } else { ConsultationMode::InPerson };
        let location = match mode {
            ConsultationMode::Virtual => "Video link sent by the clinic",
            ConsultationMode::InPerson => "Clinic, 3rd floor",
        };
        let (scheduled_at, held_at) = if reached >= 2 {
            let held = between(rng, path.entered[1].max(path.entered[2] - Duration::days(2)), path.entered[2]);
            (Some(held), Some(held))
        } else if reached == 1 && open && rng.u8(..100) < 65 {
            (Some(now + Duration::seconds(rng.i64(86_400..20 * 86_400))), None)
        } else {
            (None, None)
        };
        let compared_at = (reached >= 3).then(|| between(rng, path.entered[2], path.entered[3]));
        let (diagnosis_agrees, treatment_agrees) = (rng.bool(), rng.bool());
        let comparing = compared_at.is_some();
        let note = |text: &str| comparing.then(|| text.to_string());
        tables.rounds.push([
            id.into(),
            ROUND.into(),
            chosen.then_some(specialist_id).into(),
            scheduled_at.into(),
            scheduled_at.map(|_| mode).into(),
            scheduled_at.map(|_| location.to_string()).into(),
            held_at.into(),
            comparing.then_some(diagnosis_agrees).into(),
            comparing.then_some(treatment_agrees).into(),
            note("Discussed surgical and non-surgical risks.").into(),
            note("Similar expected outcomes at one year.").into(),
            note("Second option has lower out-of-pocket cost.").into(),
            note("Both specialists agree further imaging is needed.").into(),
            compared_at.into(),
        ]);

        // Consent to share the records, signed before the consultation: most
        // patients in the portal, some on paper with their advocate.
        if let Some(held) = held_at {
            let signed_at = between(rng, created, held);
            let in_portal = rng.u8(..10) < 7;
            let text = crate::cases::consent::text_for(Some(DEMO_SPECIALIST_NAME));
            tables.consents.push([
                id.into(),
                ROUND.into(),
                Some(specialist_id).into(),
                patient.name.clone().into(),
                if in_portal { "patient".to_string() } else { "advocate (paper form)".to_string() }.into(),
                if in_portal { "portal" } else { "paper" }.to_string().into(),
                signed_at.into(),
                Option::<String>::None.into(),
                crate::cases::consent::TEXT_VERSION.to_string().into(),
                crate::cases::consent::text_digest(&text).into(),
                Option::<i32>::None.into(),
            ]);
        }

        // Opinions: the original one, and the second once the consultation was held.
        let surgery_first = rng.bool();
        let original_at = match compared_at {
            Some(compared) => Some(between(rng, created, compared)),
            None if reached == 2 && rng.bool() => Some(between(rng, created, leaves(2))),
            None => None,
        };
        let second_at = compared_at.zip(held_at).map(|(compared, held)| between(rng, held, compared));
        for (round, at, clinician, surgery, diagnosis) in [
            (1, original_at, "Dr. First Opinion", surgery_first, "Condition as first diagnosed"),
            (
                2,
                second_at,
                "Dr. Second Opinion",
                surgery_first && rng.bool(),
                "Condition confirmed with a different stage",
            ),
        ] {
            let Some(at) = at else { continue };
            touched = touched.max(at);
            let plan = if surgery { "Surgery" } else { "Medication and monitoring" };
            tables.opinions.push([
                id.into(),
                round.into(),
                clinician.to_string().into(),
                diagnosis.to_string().into(),
                plan.to_string().into(),
                surgery.into(),
                String::new().into(),
                at.into(),
                Some(advocate).into(),
            ]);
        }

        // The stage history, in the order the moves were made.
        let mut moves = 0;
        let mut history = |from: Option<Stage>, to: Stage, at: DateTime<Utc>, note: Option<&str>| {
            moves += 1;
            tables.history.push([
                id.into(),
                from.into(),
                to.into(),
                ROUND.into(),
                at.into(),
                Some(advocate).into(),
                note.map(str::to_string).into(),
            ]);
        };
        history(None, Stage::RecordsRequested, created, None);
        for i in 1..=reached {
            history(Some(Stage::PATH[i - 1]), Stage::PATH[i], path.entered[i], None);
        }
        if let Some(at) = path.withdrawn_at {
            let note = Some("The patient decided to continue with the first plan.");
            history(Some(Stage::PATH[reached]), Stage::Withdrawn, at, note);
        }

        let decided = (stage == Stage::DecisionMade).then(|| {
            let choice = match rng.u8(..20) {
                0 => OpinionChoice::Other,
                1..=9 => OpinionChoice::Round(1),
                _ => OpinionChoice::Round(2),
            };
            (choice, between(rng, path.entered[3], path.entered[4]))
        });
        // About half of the patients answer the survey after deciding, mostly content.
        if let Some((_, decided_at)) = decided.filter(|_| rng.u8(..100) < 45) {
            let satisfaction = [5, 5, 5, 4, 4, 4, 3, 2][rng.usize(..8)];
            let recommend = (satisfaction * 2 + rng.i32(-1..=0)).clamp(0, 10);
            tables.surveys.push([
                id.into(),
                satisfaction.into(),
                recommend.into(),
                String::new().into(),
                (decided_at + Duration::hours(rng.i64(2..120))).min(now).into(),
                "patient".to_string().into(),
            ]);
        }
        let (held_since, hold_reason, held_seconds) = if open {
            let held_since = (rng.u8(..10) == 0).then(|| between(rng, stage_entered_at, now));
            let hold_reason = held_since.map(|_| HoldReason::ALL[rng.usize(..HoldReason::ALL.len())]);
            // Some cases were on hold before in this stage, which moved their due date.
            let earlier = if rng.u8(..100) < 15 {
                let span = (held_since.unwrap_or(now) - stage_entered_at).num_seconds().max(0);
                (span as f64 * 0.3 * rng.f64()) as i64
            } else {
                0
            };
            (held_since, hold_reason, earlier)
        } else {
            (None, None, 0)
        };
        if let Some(at) = held_since {
            touched = touched.max(at);
        }
        let clock =
            StageClock { entered_at: stage_entered_at, held_since, held_before: Duration::seconds(held_seconds) };
        let due = clock.due_at(self.levels, stage, urgency);
        let closed_at = (!open).then_some(stage_entered_at);
        let reference = format!("{}-{}-{:06}", self.reference_prefix, created.format("%Y"), id);
        let terms = crate::cases::search::case_terms(&patient.name, &patient.email, Some(&patient.phone), &reference);
        let version = moves + received + i32::from(held_since.is_some());
        tables.cases.push([
            id.into(),
            reference.into(),
            patient.name.into(),
            patient.email.into(),
            Some(patient.phone).into(),
            patient.timezone.to_string().into(),
            "en".to_string().into(),
            patient.specialty.to_string().into(),
            reason.into(),
            urgency.into(),
            patient.summary.into(),
            Some(advocate).into(),
            stage.into(),
            ROUND.into(),
            stage_entered_at.into(),
            due.into(),
            held_since.into(),
            hold_reason.into(),
            Option::<String>::None.into(),
            held_seconds.into(),
            decided.map(|(choice, _)| choice).into(),
            decided.map(|_| "The patient prefers the less invasive plan.".to_string()).into(),
            decided.map(|(_, at)| at).into(),
            version.into(),
            created.into(),
            touched.into(),
            closed_at.into(),
            "Symptoms began eight months ago; first seen by the family doctor.".to_string().into(),
            "Ibuprofen 400 mg as needed; omeprazole 20 mg daily".to_string().into(),
            "Do you agree with the diagnosis?\nWhat happens if we wait?".to_string().into(),
            Some(store::unsubscribe_token()?).into(),
            Option::<DateTime<Utc>>::None.into(),
            Option::<DateTime<Utc>>::None.into(),
            // An open case is looked at by the first reminder scan.
            open.then_some(touched).into(),
        ]);
        for term in terms {
            tables.terms.push([term.into(), id.into()]);
        }
        let overdue = open && held_since.is_none() && due.is_some_and(|due| due < now);
        Ok(Outcome { stage, overdue, held: held_since.is_some() })
    }

    /// A closed case: decided after the whole path, or withdrawn on the way.
    /// Cases opened recently went through faster, so that all of it lies
    /// before `now`.
    fn closed_path(&self, created: DateTime<Utc>, urgency: Urgency, rng: &mut fastrand::Rng) -> Path {
        let withdrawn_from = (rng.u8(..100) < 12).then(|| match rng.u8(..20) {
            0..=9 => 0,
            10..=15 => 1,
            16..=18 => 2,
            _ => 3,
        });
        // Decided: four stages passed. Withdrawn from stage i: i passed, and time in i.
        let steps = withdrawn_from.map_or(4, |i| i + 1);
        let spans: Vec<Duration> = (0..steps).map(|i| self.time_in(i, urgency, rng)).collect();
        let total: Duration = spans.iter().fold(Duration::zero(), |sum, d| sum + *d);
        let room = (self.now - created - Duration::minutes(1)).max(Duration::zero());
        let factor = if total > room { room.num_seconds() as f64 / total.num_seconds().max(1) as f64 } else { 1.0 };
        let mut at = created;
        let mut entered = vec![created];
        for span in &spans {
            at += scale(*span, factor);
            entered.push(at);
        }
        let withdrawn_at = withdrawn_from.and_then(|_| entered.pop());
        Path { entered, withdrawn_at }
    }

    /// An open case: where the usual pace has taken it by `now`, or, when it
    /// should have been decided already, stalled past its due date in one stage.
    fn open_path(&self, created: DateTime<Utc>, urgency: Urgency, rank: u32, rng: &mut fastrand::Rng) -> Path {
        let mut entered = vec![created];
        let mut at = created;
        for i in 0..4 {
            let span = self.time_in(i, urgency, rng);
            if at + span > self.now {
                return Path { entered, withdrawn_at: None };
            }
            at += span;
            if i < 3 {
                entered.push(at);
            }
        }
        let stage = STALLED_IN[rank as usize % STALLED_IN.len()];
        let allowance = self.levels.allowance(Stage::PATH[stage], urgency).unwrap_or(Duration::days(7));
        let since = (self.now - scale(allowance, 1.05 + 1.5 * rng.f64())).max(created);
        let mut entered = vec![created];
        for i in 1..=stage {
            let share = i as f64 / stage as f64;
            entered.push(created + scale(since - created, share));
        }
        Path { entered, withdrawn_at: None }
    }
}

/// The moves of one case: when it entered each stage of the path it reached
/// (the first is when it was opened), and when it was withdrawn, if it was.
struct Path {
    entered: Vec<DateTime<Utc>>,
    withdrawn_at: Option<DateTime<Utc>>,
}

/// `d × factor`, to the second, so times keep the precision they started with.
fn scale(d: Duration, factor: f64) -> Duration {
    Duration::seconds((d.num_seconds() as f64 * factor) as i64)
}

/// A time between `from` and `to` (`from` when they are the wrong way round).
fn between(rng: &mut fastrand::Rng, from: DateTime<Utc>, to: DateTime<Utc>) -> DateTime<Utc> {
    from + scale((to - from).max(Duration::zero()), rng.f64())
}

impl Default for Tables {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels() -> ServiceLevels {
        let settings = crate::config::Settings::defaults().expect("defaults are valid");
        ServiceLevels::from_settings(&settings.service_levels)
    }

    #[test]
    fn newer_cases_are_opened_later_and_none_in_the_future() {
        let levels = levels();
        let now = crate::db::now();
        let load = Caseload { now, total: 1000, open: 40, levels: &levels, reference_prefix: "SO", advocates: &[1] };
        let mut rng = fastrand::Rng::with_seed(1);
        let first = load.opened_at(0, &mut rng);
        let last = load.opened_at(999, &mut rng);
        assert!(first < last && last <= now);
        assert!(now - first > Duration::days(700));
        let recent = (0..1000).filter(|i| now - load.opened_at(*i, &mut rng) < Duration::days(365)).count();
        assert!(recent > 600, "the newer year holds most cases: {recent}");
    }

    #[test]
    fn paths_run_forward_and_end_before_now() {
        let levels = levels();
        let now = crate::db::now();
        let load = Caseload { now, total: 500, open: 40, levels: &levels, reference_prefix: "SO", advocates: &[1] };
        let mut rng = fastrand::Rng::with_seed(3);
        let mut open = 0;
        for index in 0..500 {
            let created = load.opened_at(index, &mut rng);
            let path = match load.open_rank(index) {
                Some(rank) => {
                    open += 1;
                    load.open_path(created, Urgency::Routine, rank, &mut rng)
                }
                None => load.closed_path(created, Urgency::Expedited, &mut rng),
            };
            assert_eq!(path.entered[0], created);
            assert!(path.entered.windows(2).all(|w| w[0] <= w[1]), "{:?}", path.entered);
            let last = path.withdrawn_at.unwrap_or(*path.entered.last().expect("entered"));
            assert!(last <= now && last >= created);
        }
        assert_eq!(open, 40);
    }
}
