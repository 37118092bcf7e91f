//! Sample data for trying the product and for benchmarks: advocates,
//! specialists, and cases in every stage, some of them overdue. Cases are
//! walked through the real case operations, then moved back in time.

use chrono::Duration;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, prelude::Expr};

use crate::{
    auth::{Actor, Role, passwords, users},
    cases::{
        Stage, Urgency,
        store::{self, CaseRules},
        values::{ConsultationMode, HoldReason, Reason, RecordKind, RecordStatus},
    },
    db::{
        self,
        entities::{case, case_round, stage_change, user},
    },
    error::AppResult,
    ids::CaseId,
    specialists::{self, SpecialistInput},
};

const FIRST_NAMES: [&str; 16] = [
    "Amara",
    "Bernard",
    "Chloé",
    "Dmitri",
    "Elena",
    "Farid",
    "Grace",
    "Hiroshi",
    "Ines",
    "Jamal",
    "Katarzyna",
    "Luis",
    "Mei",
    "Noah",
    "Olusegun",
    "Priya",
];
const LAST_NAMES: [&str; 16] = [
    "Okafor",
    "Lindqvist",
    "Martin",
    "Ivanova",
    "García",
    "Haddad",
    "O'Brien",
    "Tanaka",
    "Moreau",
    "Washington",
    "Nowak",
    "Fernández",
    "Chen",
    "Schmidt",
    "Adeyemi",
    "Raman",
];
const SPECIALTIES: [(&str, &str); 6] = [
    ("Oncology", "a suspicious mass found on a CT scan"),
    ("Cardiology", "a recommendation for valve replacement surgery"),
    ("Orthopedics", "spinal fusion recommended for chronic back pain"),
    ("Neurology", "a diagnosis of early-onset multiple sclerosis"),
    ("Rheumatology", "joint pain that has not responded to treatment"),
    ("Gastroenterology", "a diagnosis of Crohn's disease"),
];
const INSTITUTIONS: [&str; 4] =
    ["University Medical Center", "St. Mary's Hospital", "Lakeside Cancer Institute", "Northside Specialty Clinic"];
const TIMEZONES: [&str; 5] =
    ["America/New_York", "America/Los_Angeles", "Europe/London", "Europe/Berlin", "Asia/Kolkata"];

pub async fn fill(db: &DatabaseConnection, rules: &CaseRules, cases: u32, seed: u64) -> AppResult<String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let system = Actor::system("demo-data");
    let advocates = ensure_advocates(db, &system).await?;

    let mut specialist_ids = Vec::new();
    for (i, (specialty, _)) in SPECIALTIES.iter().enumerate() {
        for j in 0..2 {
            let name = format!("Dr. {} {}", FIRST_NAMES[(i * 2 + j + 5) % 16], LAST_NAMES[(i * 3 + j + 7) % 16]);
            let created = specialists::create(
                db,
                &system,
                SpecialistInput {
                    name,
                    specialty: (*specialty).to_string(),
                    institution: INSTITUTIONS[(i + j) % INSTITUTIONS.len()].to_string(),
                    email: Some(format!("specialist{}{}@demo.secondlook.local", i, j)),
                    offers_virtual: j == 0,
                },
            )
            .await?;
            specialist_ids.push((i, created.id, j == 0));
        }
    }

    let mut per_stage = std::collections::BTreeMap::<&str, u32>::new();
    for n in 0..cases {
        let (advocate_id, advocate_email) = &advocates[n as usize % advocates.len()];
        let actor = Actor::user(*advocate_id, advocate_email, Role::Advocate, None);
        let specialty_index = rng.usize(..SPECIALTIES.len());
        let (specialty, summary) = SPECIALTIES[specialty_index];
        let urgency = if rng.u8(..4) == 0 { Urgency::Expedited } else { Urgency::Routine };
        let first = FIRST_NAMES[rng.usize(..16)];
        let last = LAST_NAMES[rng.usize(..16)];
        let new = store::NewCase {
            patient: store::NewPatient {
                name: format!("{first} {last}"),
                email: format!("{}.{}{}@patients.example", first.to_lowercase(), n, rng.u16(100..999)),
                phone: Some(format!("+1 555 {:03} {:04}", rng.u16(100..999), rng.u16(1000..9999))),
                timezone: Some(TIMEZONES[rng.usize(..TIMEZONES.len())].to_string()),
                language: Some("en".to_string()),
            },
            specialty: specialty.to_string(),
            reason: Reason::ALL[rng.usize(..Reason::ALL.len())],
            urgency,
            summary: format!("Patient seeks a second opinion on {summary}."),
            advocate_id: None,
            medical_history: "Symptoms began eight months ago; first seen by the family doctor.".to_string(),
            medications: "Ibuprofen 400 mg as needed; omeprazole 20 mg daily".to_string(),
            patient_questions: "Do you agree with the diagnosis?\nWhat happens if we wait?".to_string(),
        };
        let created = store::create(db, rules, &actor, new).await?;
        let target = pick_stage(&mut rng);
        let specialist = specialist_ids
            .iter()
            .filter(|(i, _, _)| *i == specialty_index)
            .nth(rng.usize(..2))
            .copied()
            .unwrap_or(specialist_ids[0]);
        walk(db, rules, &actor, created.id, target, specialist, &mut rng).await?;

        // Spread cases over the last weeks; about one in four lands overdue.
        let age_days = if rng.u8(..4) == 0 { rng.i64(20..45) } else { rng.i64(0..6) };
        backdate(db, created.id, Duration::days(age_days) + Duration::hours(rng.i64(0..24))).await?;
        if target != Stage::DecisionMade && target != Stage::Withdrawn && rng.u8(..10) == 0 {
            let hold = store::HoldRequest { reason: HoldReason::InsurancePreapproval, note: None };
            store::hold(db, &actor, CaseId(created.id), hold).await?;
        }
        *per_stage.entry(target.as_str()).or_default() += 1;
    }

    let mut summary = format!(
        "Created {cases} demo cases for {} advocates and {} specialists:\n",
        advocates.len(),
        specialist_ids.len()
    );
    for (stage, count) in per_stage {
        summary.push_str(&format!("  {stage}: {count}\n"));
    }
    summary.push_str("Advocates sign in as advocate1@demo.secondlook.local … advocate3@demo.secondlook.local; their passwords are printed above when first created.");
    Ok(summary)
}

fn pick_stage(rng: &mut fastrand::Rng) -> Stage {
    match rng.u8(..20) {
        0..=4 => Stage::RecordsRequested,
        5..=8 => Stage::SpecialistChosen,
        9..=11 => Stage::ConsultationHeld,
        12..=14 => Stage::OpinionsCompared,
        15..=18 => Stage::DecisionMade,
        _ => Stage::Withdrawn,
    }
}

async fn ensure_advocates(db: &DatabaseConnection, system: &Actor) -> AppResult<Vec<(i32, String)>> {
    let mut found = Vec::new();
    for (i, name) in ["Sam Rivera", "Dana Whitfield", "Ade Mensah"].iter().enumerate() {
        let email = format!("advocate{}@demo.secondlook.local", i + 1);
        let existing = user::Entity::find().filter(user::Column::Email.eq(&email)).one(db).await?;
        let id = match existing {
            Some(u) => u.id,
            None => {
                let password = passwords::generate()?;
                let new = users::NewUser {
                    email: email.clone(),
                    name: (*name).to_string(),
                    role: Role::Advocate,
                    timezone: TIMEZONES[i % TIMEZONES.len()].to_string(),
                    password: password.clone(),
                };
                let created = users::create(db, system, new).await?;
                println!("Demo advocate {email} — password: {password}");
                created.id
            }
        };
        found.push((id, email));
    }
    Ok(found)
}

async fn walk(
    db: &DatabaseConnection,
    rules: &CaseRules,
    actor: &Actor,
    case_id: i32,
    target: Stage,
    (_, specialist_id, offers_virtual): (usize, i32, bool),
    rng: &mut fastrand::Rng,
) -> AppResult<()> {
    let move_to = |to: Stage, note: Option<&str>| store::TransitionRequest {
        to,
        note: note.map(String::from),
        specialist_id: None,
    };
    for kind in RecordKind::ALL.iter().take(rng.usize(2..RecordKind::ALL.len())) {
        let update = store::RecordUpdate { status: RecordStatus::Received, note: String::new() };
        store::set_record(db, actor, CaseId(case_id), *kind, update).await?;
    }
    if target == Stage::Withdrawn {
        let request = move_to(Stage::Withdrawn, Some("The patient decided to continue with the first plan."));
        store::transition(db, rules, actor, CaseId(case_id), request).await?;
        return Ok(());
    }
    if target == Stage::RecordsRequested {
        return Ok(());
    }
    store::set_specialist(db, actor, CaseId(case_id), store::SpecialistChoice { specialist_id }).await?;
    store::transition(db, rules, actor, CaseId(case_id), move_to(Stage::SpecialistChosen, None)).await?;
    let mode = if offers_virtual { ConsultationMode::Virtual } else { ConsultationMode::InPerson };
    let location = Some(if offers_virtual {
        "Video link sent by the clinic".to_string()
    } else {
        "Clinic, 3rd floor".to_string()
    });
    if target == Stage::SpecialistChosen {
        let upcoming = store::ConsultationInput {
            scheduled_at: db::now() + Duration::days(rng.i64(1..12)),
            mode,
            location,
            held_at: None,
        };
        store::set_consultation(db, actor, CaseId(case_id), upcoming).await?;
        return Ok(());
    }
    let held_at = db::now() - Duration::hours(2);
    let held = store::ConsultationInput { scheduled_at: held_at, mode, location, held_at: Some(held_at) };
    store::set_consultation(db, actor, CaseId(case_id), held).await?;
    store::transition(db, rules, actor, CaseId(case_id), move_to(Stage::ConsultationHeld, None)).await?;
    if target == Stage::ConsultationHeld {
        return Ok(());
    }
    let surgery_first = rng.bool();
    for (round, clinician, surgery, diagnosis) in [
        ("original", "Dr. First Opinion", surgery_first, "Condition as first diagnosed"),
        ("second", "Dr. Second Opinion", surgery_first && rng.bool(), "Condition confirmed with a different stage"),
    ] {
        let input = store::OpinionInput {
            round: round.to_string(),
            clinician: clinician.to_string(),
            diagnosis: diagnosis.to_string(),
            treatment_plan: if surgery { "Surgery".to_string() } else { "Medication and monitoring".to_string() },
            recommends_surgery: surgery,
            notes: String::new(),
        };
        store::record_opinion(db, actor, CaseId(case_id), input).await?;
    }
    let comparison = store::ComparisonInput {
        diagnosis_agrees: rng.bool(),
        treatment_agrees: rng.bool(),
        risk_notes: "Discussed surgical and non-surgical risks.".to_string(),
        outcome_notes: "Similar expected outcomes at one year.".to_string(),
        cost_notes: "Second option has lower out-of-pocket cost.".to_string(),
        summary: "Both specialists agree further imaging is needed.".to_string(),
    };
    store::set_comparison(db, actor, CaseId(case_id), comparison).await?;
    store::transition(db, rules, actor, CaseId(case_id), move_to(Stage::OpinionsCompared, None)).await?;
    if target == Stage::OpinionsCompared {
        return Ok(());
    }
    let decision = store::DecisionInput {
        chosen_opinion: if rng.bool() { "second".to_string() } else { "original".to_string() },
        reason: "The patient prefers the less invasive plan.".to_string(),
    };
    store::set_decision(db, actor, CaseId(case_id), decision).await?;
    store::transition(db, rules, actor, CaseId(case_id), move_to(Stage::DecisionMade, None)).await?;
    Ok(())
}

/// Moves every timestamp of one case back by `by`, as if it had been opened earlier.
async fn backdate(db: &DatabaseConnection, case_id: i32, by: Duration) -> AppResult<()> {
    let txn = db::begin_write(db).await?;
    let c = case::Entity::find_by_id(case_id).one(&txn).await?;
    if let Some(c) = c {
        let shift = |t: chrono::DateTime<chrono::Utc>| t - by;
        case::Entity::update_many()
            .col_expr(case::Column::CreatedAt, Expr::value(shift(c.created_at)))
            .col_expr(case::Column::UpdatedAt, Expr::value(shift(c.updated_at)))
            .col_expr(case::Column::StageEnteredAt, Expr::value(shift(c.stage_entered_at)))
            .col_expr(case::Column::StageDueAt, Expr::value(c.stage_due_at.map(shift)))
            .col_expr(case::Column::DecidedAt, Expr::value(c.decided_at.map(shift)))
            .col_expr(case::Column::ClosedAt, Expr::value(c.closed_at.map(shift)))
            .filter(case::Column::Id.eq(case_id))
            .exec(&txn)
            .await?;
        for h in stage_change::Entity::find().filter(stage_change::Column::CaseId.eq(case_id)).all(&txn).await? {
            stage_change::Entity::update_many()
                .col_expr(stage_change::Column::At, Expr::value(shift(h.at)))
                .filter(stage_change::Column::Id.eq(h.id))
                .exec(&txn)
                .await?;
        }
        for r in case_round::Entity::find().filter(case_round::Column::CaseId.eq(case_id)).all(&txn).await? {
            // Upcoming consultations stay in the future; past ones move with the case.
            let held = r.consultation_held_at.is_some();
            case_round::Entity::update_many()
                .col_expr(case_round::Column::ConsultationHeldAt, Expr::value(r.consultation_held_at.map(shift)))
                .col_expr(
                    case_round::Column::ConsultationScheduledAt,
                    Expr::value(if held {
                        r.consultation_scheduled_at.map(shift)
                    } else {
                        r.consultation_scheduled_at
                    }),
                )
                .col_expr(case_round::Column::ComparedAt, Expr::value(r.compared_at.map(shift)))
                .filter(case_round::Column::Id.eq(r.id))
                .exec(&txn)
                .await?;
        }
    }
    txn.commit().await?;
    Ok(())
}
