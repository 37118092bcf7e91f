//! Sample data for trying the product and for benchmarks: advocates,
//! specialists, and a caseload of any size opened over the last two years —
//! mostly closed, a few percent still open in every open stage, some of
//! those overdue or on hold. The accounts and specialists go through the
//! real operations; the cases are written straight as rows, many per
//! statement, the way the case operations would have left them, with one
//! audit entry for the whole load.

mod caseload;

use std::{collections::BTreeMap, time::Instant};

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    Statement,
};
use serde_json::json;

use crate::{
    audit::{self, Subject},
    auth::{Actor, Role, passwords, users},
    cases::{Stage, store::CaseRules, tallies},
    db::{
        self,
        entities::{specialist, user},
    },
    error::{AppError, AppResult},
    specialists::{self, SpecialistInput},
};
use caseload::{Caseload, Outcome, Patient, Tables};

/// Cases written per transaction: large enough that commits cost little,
/// small enough that other writers get their turn and memory stays flat.
const CASES_PER_TRANSACTION: u32 = 50_000;

/// Audit action of a demo load.
pub const FILLED: &str = "demo.fill";

const FIRST_NAMES: [&str; 40] = [
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
    "Quentin",
    "Rosa",
    "Samir",
    "Tamsin",
    "Ugo",
    "Valentina",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zofia",
    "Aiko",
    "Bongani",
    "Carmen",
    "Dariusz",
    "Esther",
    "Felipe",
    "Gulnara",
    "Henrik",
    "Ifeoma",
    "José",
    "Kwame",
    "Leila",
    "Mateo",
    "Nadia",
];
const LAST_NAMES: [&str; 64] = [
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
    "Abara",
    "Bergström",
    "Castillo",
    "Dubois",
    "Eriksen",
    "Fitzgerald",
    "Gonzaga",
    "Horvath",
    "Iyer",
    "Jansen",
    "Kowalczyk",
    "Lefebvre",
    "Mahlangu",
    "Nakamura",
    "Oyelaran",
    "Petrov",
    "Quispe",
    "Rossi",
    "Sato",
    "Takahashi",
    "Uchenna",
    "Varga",
    "Whitaker",
    "Xu",
    "Yilmaz",
    "Zapata",
    "Achebe",
    "Björk",
    "Cruz",
    "Delgado",
    "Ezeh",
    "Fontaine",
    "Gallagher",
    "Huang",
    "Ibrahim",
    "Jovanović",
    "Kariuki",
    "Lopes",
    "Mensah",
    "Nguyen",
    "Olsen",
    "Park",
    "Qureshi",
    "Rahman",
    "Santos",
    "Tremblay",
    "Ueda",
    "Vasquez",
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
    let specialists = ensure_specialists(db, &system).await?;
    let advocate_ids: Vec<i32> = advocates.iter().map(|(id, _)| *id).collect();
    let load = Caseload {
        now: db::now(),
        total: cases,
        open: open_count(cases),
        levels: &rules.levels,
        reference_prefix: &rules.defaults.reference_prefix,
        advocates: &advocate_ids,
    };
    let started = Instant::now();
    let tally = write_cases(db, &load, &specialists, &mut rng).await?;
    let detail = json!({ "cases": cases, "open": tally.open, "seed": seed });
    audit::record(db, &system, FILLED, Subject::named("cases"), detail).await?;
    let figures_started = Instant::now();
    tallies::rebuild(db).await?;
    tracing::info!(seconds = figures_started.elapsed().as_secs_f64(), "demo: case tallies built");
    crate::portal::survey::rebuild(db).await?;
    crate::records_requests::figures::rebuild(db).await?;
    crate::insurance::rebuild(db).await?;
    tracing::info!(seconds = figures_started.elapsed().as_secs_f64(), "demo: all figures built");
    // A bulk load leaves PostgreSQL's planner statistics describing the
    // empty tables; until autovacuum refreshes them it may pick full scans.
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        db.execute_unprepared("ANALYZE").await?;
    }

    let mut summary = format!(
        "Created {cases} demo cases for {} advocates and {} specialists in {:.1} s:\n",
        advocates.len(),
        specialists.iter().map(Vec::len).sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
    for (stage, count) in &tally.per_stage {
        summary.push_str(&format!("  {stage}: {count}\n"));
    }
    summary.push_str(&format!("{} open, {} of them overdue and {} on hold.\n", tally.open, tally.overdue, tally.held));
    summary.push_str("Advocates sign in as advocate1@demo.secondlook.local … advocate3@demo.secondlook.local; their passwords are printed above when first created.");
    Ok(summary)
}

/// How many cases of a caseload are still open: a few percent, and enough
/// in a small one to find some in every open stage.
fn open_count(total: u32) -> u32 {
    (total / 25).max((total / 2).min(40))
}

#[derive(Debug, Default)]
struct Tally {
    per_stage: BTreeMap<Stage, u64>,
    open: u64,
    overdue: u64,
    held: u64,
}

impl Tally {
    fn add(&mut self, outcome: Outcome) {
        *self.per_stage.entry(outcome.stage).or_default() += 1;
        if !outcome.stage.is_final() {
            self.open += 1;
        }
        self.overdue += u64::from(outcome.overdue);
        self.held += u64::from(outcome.held);
    }
}

async fn write_cases(
    db: &DatabaseConnection,
    load: &Caseload<'_>,
    specialists: &[Vec<(i32, bool)>],
    rng: &mut fastrand::Rng,
) -> AppResult<Tally> {
    let summaries: Vec<String> =
        SPECIALTIES.iter().map(|(_, summary)| format!("Patient seeks a second opinion on {summary}.")).collect();
    let mut tables = Tables::new();
    let mut tally = Tally::default();
    let mut index = 0;
    while index < load.total {
        let count = (load.total - index).min(CASES_PER_TRANSACTION);
        let txn = db::begin_write(db).await?;
        let cache = LargerCache::take(&txn).await?;
        let written = async {
            for id in reserve_ids(&txn, count).await? {
                let specialty = rng.usize(..SPECIALTIES.len());
                let first = FIRST_NAMES[rng.usize(..FIRST_NAMES.len())];
                let last = LAST_NAMES[rng.usize(..LAST_NAMES.len())];
                let patient = Patient {
                    name: format!("{first} {last}"),
                    email: format!("{}.{}{}@patients.example", first.to_lowercase(), index, rng.u16(100..999)),
                    phone: format!("+1 555 {:03} {:04}", rng.u16(100..999), rng.u16(1000..9999)),
                    timezone: TIMEZONES[rng.usize(..TIMEZONES.len())],
                    specialty: SPECIALTIES[specialty].0,
                    summary: summaries[specialty].clone(),
                };
                let choices = &specialists[specialty];
                let specialist = choices
                    .get(rng.usize(..choices.len().max(1)))
                    .copied()
                    .ok_or_else(|| AppError::Internal(format!("no demo specialist in {}", patient.specialty)))?;
                tally.add(load.add(&mut tables, index, id, patient, specialist, rng)?);
                index += 1;
                if tables.cases.has_full_batch() {
                    tables.write_full(&txn).await?;
                }
            }
            tables.write_all(&txn).await?;
            AppResult::Ok(())
        }
        .await;
        let restored = cache.give_back(&txn).await;
        written?;
        restored?;
        txn.commit().await?;
        let step = (load.total / 10).max(1);
        if index % step < count || index == load.total {
            tracing::info!(written = index, total = load.total, "demo cases");
        }
    }
    Ok(tally)
}

/// A larger SQLite page cache for one transaction of the load, on its own
/// connection, set back before the transaction ends. The unique index on
/// the random unsubscribe tokens takes inserts all over; with the default
/// cache its pages are written out again and again.
struct LargerCache(Option<i64>);

/// In KiB, as SQLite reads a negative `cache_size`.
const LOAD_CACHE_KIB: i64 = 128 * 1024;

impl LargerCache {
    async fn take(txn: &DatabaseTransaction) -> AppResult<Self> {
        let backend = txn.get_database_backend();
        if backend != DbBackend::Sqlite {
            return Ok(Self(None));
        }
        let row = txn.query_one_raw(Statement::from_string(backend, "PRAGMA cache_size")).await?;
        let Some(before) = row.map(|row| row.try_get_by_index::<i64>(0)).transpose()? else {
            return Ok(Self(None));
        };
        txn.execute_unprepared(&format!("PRAGMA cache_size = -{LOAD_CACHE_KIB}")).await?;
        Ok(Self(Some(before)))
    }

    async fn give_back(self, txn: &DatabaseTransaction) -> AppResult<()> {
        if let Some(before) = self.0 {
            txn.execute_unprepared(&format!("PRAGMA cache_size = {before}")).await?;
        }
        Ok(())
    }
}

/// Ids for the next `count` cases, which their references carry. PostgreSQL
/// hands them out from the id sequence, so rows others insert meanwhile
/// never collide; SQLite's write lock, held by `txn`, keeps the ones after
/// the highest taken free.
async fn reserve_ids(txn: &DatabaseTransaction, count: u32) -> AppResult<Vec<i32>> {
    let backend = txn.get_database_backend();
    if backend == DbBackend::Postgres {
        let sql = "SELECT nextval(pg_get_serial_sequence('cases', 'id')) FROM generate_series(1, $1)";
        let rows = txn.query_all_raw(Statement::from_sql_and_values(backend, sql, [i64::from(count).into()])).await?;
        return rows
            .iter()
            .map(|row| {
                let id: i64 = row.try_get_by_index(0)?;
                i32::try_from(id).map_err(|_| AppError::Internal(format!("case id {id} is out of range")))
            })
            .collect();
    }
    // With AUTOINCREMENT, SQLite never reuses an id it handed out, even of a deleted row.
    let sql = "SELECT MAX(COALESCE((SELECT MAX(id) FROM cases), 0), \
               COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'cases'), 0))";
    let row = txn.query_one_raw(Statement::from_string(backend, sql)).await?;
    let last: i64 = match row {
        Some(row) => row.try_get_by_index(0)?,
        None => 0,
    };
    let out_of_range = || AppError::Internal(format!("case ids after {last} are out of range"));
    let first = i32::try_from(last + 1).map_err(|_| out_of_range())?;
    let end = first.checked_add_unsigned(count).ok_or_else(out_of_range)?;
    Ok((first..end).collect())
}

/// The directory's demo specialists, two per specialty (the first of each
/// offering video consultations), created on the first run.
async fn ensure_specialists(db: &DatabaseConnection, system: &Actor) -> AppResult<Vec<Vec<(i32, bool)>>> {
    let mut found = Vec::new();
    for (i, (specialty, _)) in SPECIALTIES.iter().enumerate() {
        let mut pair = Vec::new();
        for j in 0..2 {
            let email = format!("specialist{i}{j}@demo.secondlook.local");
            let existing = specialist::Entity::find().filter(specialist::Column::Email.eq(&email)).one(db).await?;
            let entry = match existing {
                Some(s) => (s.id, s.offers_virtual),
                None => {
                    let name = format!(
                        "Dr. {} {}",
                        FIRST_NAMES[(i * 2 + j + 5) % FIRST_NAMES.len()],
                        LAST_NAMES[(i * 3 + j + 7) % LAST_NAMES.len()]
                    );
                    let input = SpecialistInput {
                        name,
                        specialty: (*specialty).to_string(),
                        institution: INSTITUTIONS[(i + j) % INSTITUTIONS.len()].to_string(),
                        email: Some(email),
                        offers_virtual: j == 0,
                    };
                    let created = specialists::create(db, system, input).await?;
                    (created.id, created.offers_virtual)
                }
            };
            pair.push(entry);
        }
        found.push(pair);
    }
    Ok(found)
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
