//! Read-only views across many cases: an advocate's caseload and the admin
//! overview. Everything is counted by the database (GROUP BY, window
//! functions), never by loading cases into memory. Reading a caseload
//! leaves an audit entry (`case.list`): which patients someone listed is part
//! of the record.

pub mod full_scan;

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbBackend, EntityTrait, FromQueryResult, Order, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement, Value, sea_query::Expr,
};
use serde::Serialize;

use crate::{
    auth::Actor,
    cases::{Stage, scope::CaseScope, tallies},
    db::{self, entities::case},
    error::AppResult,
};

/// The orders the caseload can be read in, each along an index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CaseloadSort {
    /// Soonest due first (the overdue at the top).
    #[default]
    Due,
    Newest,
    Oldest,
    /// Patient name, A to Z.
    Patient,
}

impl CaseloadSort {
    pub const ALL: [CaseloadSort; 4] = [Self::Due, Self::Newest, Self::Oldest, Self::Patient];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Due => "due",
            Self::Newest => "newest",
            Self::Oldest => "oldest",
            Self::Patient => "patient",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == word)
    }
}

#[derive(Debug, Clone, Default)]
pub struct CaseloadFilter {
    pub sort: CaseloadSort,
    pub stage: Option<Stage>,
    pub urgency: Option<String>,
    pub overdue: bool,
    pub query: Option<String>,
    /// Admins only: one advocate's caseload.
    pub advocate_id: Option<i32>,
    pub page: u64,
}

pub const PAGE_SIZE: u64 = 25;
/// Highest caseload page number accepted (a quarter of a million cases deep).
pub const MAX_PAGE: u64 = 10_000;

pub struct Caseload {
    pub stage_counts: Vec<(Stage, i64)>,
    pub cases: Vec<ListedCase>,
    /// Matching cases; with `more`, only a lower bound.
    pub total: u64,
    pub more: bool,
    pub upcoming: Vec<Upcoming>,
    /// Follow-ups not yet done, due within the next week or already late.
    pub follow_ups: Vec<crate::cases::journal::FollowUpDue>,
    pub activity: Vec<Activity>,
}

/// What a caseload row shows of a case, and no more: the list is read on
/// every visit, so it leaves the clinical text and contact details behind.
#[derive(Debug, Clone, FromQueryResult)]
pub struct ListedCase {
    pub id: i32,
    pub reference: String,
    pub patient_name: String,
    pub urgency: crate::vocabulary::Urgency,
    pub stage: Stage,
    pub stage_due_at: Option<DateTime<Utc>>,
    pub held_since: Option<DateTime<Utc>>,
    /// Set on a decided or withdrawn case, which only a search or a final stage lists.
    pub closed_at: Option<DateTime<Utc>>,
    pub erased_at: Option<DateTime<Utc>>,
    pub advocate_id: Option<i32>,
    /// The patient did something in the portal no advocate has looked at.
    pub portal_activity_at: Option<DateTime<Utc>>,
}

/// One line of recent activity on the caseload.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Activity {
    pub at: DateTime<Utc>,
    pub case_id: Option<i32>,
    pub action: String,
    pub actor: String,
    pub reference: String,
    pub patient_name: String,
    pub erased_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct Upcoming {
    pub case_id: i32,
    pub reference: String,
    pub patient_name: String,
    pub scheduled_at: DateTime<Utc>,
    pub mode: Option<String>,
}

pub async fn caseload(
    db: &DatabaseConnection,
    reads: &crate::audit::reads::ReadTrail,
    actor: &Actor,
    filter: &CaseloadFilter,
    now: DateTime<Utc>,
) -> AppResult<Caseload> {
    crate::validate::check_search("q", filter.query.as_deref())?;
    if filter.page > MAX_PAGE {
        return Err(crate::error::FieldErrors::single("page", format!("must be at most {MAX_PAGE}")));
    }
    let scope = CaseScope::of(actor, filter.advocate_id);
    // Open is `closed_at IS NULL` (a case gets its closing time as it
    // reaches a final stage), which is also the condition of the partial
    // indexes the list walks in due order.
    let open = Condition::all().add(case::Column::ClosedAt.is_null()).add(scope.condition());

    let stage_counts = open_counts(db, &scope).await?;
    let matching = match filter.query.as_deref() {
        Some(q) => crate::cases::search::matching(db, "q", q, &scope).await?,
        None => None,
    };
    // A search reaches closed cases too: a decided case is still one people
    // need to find. It matches a bounded number of cases, so sorting them costs little.
    let with_closed = matching.is_some();
    let mut listed = if with_closed { scope.condition() } else { open.clone() };
    if let Some(stage) = filter.stage {
        listed = listed.add(case::Column::Stage.eq(stage));
    }
    if let Some(urgency) = filter.urgency.as_deref() {
        listed = listed.add(case::Column::Urgency.eq(urgency));
    }
    if filter.overdue {
        listed = listed.add(case::Column::HeldSince.is_null()).add(case::Column::StageDueAt.lt(now));
    }
    if let Some(matching) = matching {
        listed = listed.add(matching);
    }
    let offset = filter.page * PAGE_SIZE;
    let mut cases = listed_cases().filter(listed.clone());
    if with_closed {
        // Open cases first, then closed ones.
        cases = cases.order_by(Expr::cust("CASE WHEN closed_at IS NULL THEN 0 ELSE 1 END"), Order::Asc);
    }
    cases = match filter.sort {
        CaseloadSort::Due if with_closed => cases
            .order_by(Expr::cust("CASE WHEN stage_due_at IS NULL THEN 1 ELSE 0 END"), Order::Asc)
            .order_by(case::Column::StageDueAt, Order::Asc)
            .order_by(case::Column::ClosedAt, Order::Desc)
            .order_by(case::Column::Id, Order::Asc),
        CaseloadSort::Due => {
            cases.order_by(case::Column::StageDueAt, Order::Asc).order_by(case::Column::Id, Order::Asc)
        }
        CaseloadSort::Newest => cases.order_by(case::Column::Id, Order::Desc),
        CaseloadSort::Oldest => cases.order_by(case::Column::Id, Order::Asc),
        CaseloadSort::Patient => {
            cases.order_by(case::Column::PatientName, Order::Asc).order_by(case::Column::Id, Order::Asc)
        }
    };
    let cases = cases.offset(offset).limit(PAGE_SIZE).into_model::<ListedCase>().all(db).await?;
    let narrowed = filter.urgency.is_some() || filter.overdue || with_closed;
    let (total, more) = if narrowed {
        // Counting every match would read them all; count up to a bound.
        let bound = offset + COUNT_BOUND;
        let counted = case::Entity::find()
            .select_only()
            .column(case::Column::Id)
            .filter(listed)
            .limit(bound + 1)
            .count(db)
            .await?;
        (counted.min(bound), counted > bound)
    } else {
        let counted: i64 =
            stage_counts.iter().filter(|(stage, _)| filter.stage.is_none_or(|s| s == *stage)).map(|(_, n)| *n).sum();
        (u64::try_from(counted).unwrap_or(0), false)
    };

    let backend = db.get_database_backend();
    let scope_sql = scope.sql("c");
    // Both lists walk a partial index in order and look each row's case up
    // by its key, reading about as many rows as they show whatever the size
    // of the tables. Each database is told so in its own way: SQLite keeps
    // the tables of a CROSS JOIN in the order written; PostgreSQL reorders
    // joins, but runs a LATERAL subquery with a LIMIT once per outer row.
    let open_early = "c.closed_at IS NULL AND c.stage IN ('records_requested', 'specialist_chosen')";
    let (upcoming_case, activity_case) = match backend {
        DbBackend::Postgres => (
            format!(
                " CROSS JOIN LATERAL (SELECT c.id, c.reference, c.patient_name FROM cases c \
                 WHERE c.id = r.case_id AND c.round = r.round AND {open_early}{scope_sql} LIMIT 1) c WHERE"
            ),
            format!(
                " CROSS JOIN LATERAL (SELECT c.reference, c.patient_name, c.erased_at FROM cases c \
                 WHERE c.id = a.case_id{scope_sql} LIMIT 1) c WHERE"
            ),
        ),
        _ => (
            format!(" CROSS JOIN cases c WHERE c.id = r.case_id AND r.round = c.round AND {open_early}{scope_sql} AND"),
            format!(" CROSS JOIN cases c WHERE c.id = a.case_id{scope_sql} AND"),
        ),
    };
    let upcoming = Upcoming::find_by_statement(Statement::from_sql_and_values(
        backend,
        db::placeholders(
            backend,
            &format!(
                "SELECT c.id AS case_id, c.reference, c.patient_name, r.consultation_scheduled_at AS scheduled_at, \
                 r.consultation_mode AS mode FROM case_rounds r{upcoming_case} \
                 r.consultation_held_at IS NULL AND r.consultation_scheduled_at >= ? \
                 AND r.consultation_scheduled_at < ? ORDER BY r.consultation_scheduled_at LIMIT 50"
            ),
        ),
        [Value::from(now), Value::from(now + Duration::days(14))],
    ))
    .all(db)
    .await?;

    let follow_ups =
        crate::cases::journal::follow_ups_due(db, &scope, (now + Duration::days(7)).date_naive(), FOLLOW_UPS_SHOWN)
            .await?;

    // The terms repeat the partial index's condition word for word so SQLite
    // uses it. Each line names its case's patient.
    let activity = Activity::find_by_statement(Statement::from_sql_and_values(
        backend,
        db::placeholders(
            backend,
            &format!(
                "SELECT a.at, a.case_id, a.action, a.actor, c.reference, c.patient_name, c.erased_at \
                 FROM audit_log a{activity_case} a.case_id IS NOT NULL \
                 AND a.action NOT IN ('case.viewed', 'access.denied', 'mail.sent') AND a.at >= ? \
                 ORDER BY a.id DESC LIMIT 30"
            ),
        ),
        [Value::from(now - Duration::days(14))],
    ))
    .all(db)
    .await?;
    // The filters, but not the search text: it is often a patient's name.
    let detail = serde_json::json!({
        "view": "caseload", "sort": filter.sort.as_str(), "stage": filter.stage, "urgency": filter.urgency, "overdue": filter.overdue,
        "advocate_id": filter.advocate_id, "searched": crate::validate::is_given(filter.query.as_deref()),
        "page": filter.page, "shown": cases.len(),
    });
    reads.record(actor, crate::audit::LISTED, crate::audit::Subject::named("cases"), detail).await?;
    Ok(Caseload { stage_counts, cases, total, more, upcoming, follow_ups, activity })
}

/// The columns a list of cases shows ([`ListedCase`]).
fn listed_cases() -> sea_orm::Select<case::Entity> {
    case::Entity::find().select_only().columns([
        case::Column::Id,
        case::Column::Reference,
        case::Column::PatientName,
        case::Column::Urgency,
        case::Column::Stage,
        case::Column::StageDueAt,
        case::Column::HeldSince,
        case::Column::ClosedAt,
        case::Column::ErasedAt,
        case::Column::AdvocateId,
        case::Column::PortalActivityAt,
    ])
}

/// What a working day starts with: the open cases past their due date
/// (longest overdue first) and those due before the day ends. Cases on hold
/// wait for something else and are left out.
#[derive(Debug, Clone)]
pub struct Today {
    pub overdue: Vec<ListedCase>,
    /// More are overdue than `overdue` holds.
    pub overdue_more: bool,
    pub due_today: Vec<ListedCase>,
    pub due_today_more: bool,
}

/// How many cases each of today's lists shows before "and more".
pub const TODAY_SHOWN: u64 = 8;

/// Today's lists for `actor` (narrowed to one advocate's cases, or the
/// unassigned queue, for an admin): each reads the open cases in due order
/// along the partial index and stops after a few.
pub async fn today(
    db: &DatabaseConnection,
    reads: &crate::audit::reads::ReadTrail,
    actor: &Actor,
    advocate_id: Option<i32>,
    now: DateTime<Utc>,
    day_end: DateTime<Utc>,
) -> AppResult<Today> {
    let open = Condition::all()
        .add(case::Column::ClosedAt.is_null())
        .add(case::Column::HeldSince.is_null())
        .add(CaseScope::of(actor, advocate_id).condition());
    let due_between = |from: Option<DateTime<Utc>>, to: DateTime<Utc>| {
        let mut cond = open.clone().add(case::Column::StageDueAt.lt(to));
        if let Some(from) = from {
            cond = cond.add(case::Column::StageDueAt.gte(from));
        }
        listed_cases()
            .filter(cond)
            .order_by(case::Column::StageDueAt, Order::Asc)
            .order_by(case::Column::Id, Order::Asc)
            .limit(TODAY_SHOWN + 1)
            .into_model::<ListedCase>()
    };
    let mut overdue = due_between(None, now).all(db).await?;
    let mut due_today = due_between(Some(now), day_end).all(db).await?;
    let overdue_more = overdue.len() as u64 > TODAY_SHOWN;
    let due_today_more = due_today.len() as u64 > TODAY_SHOWN;
    overdue.truncate(TODAY_SHOWN as usize);
    due_today.truncate(TODAY_SHOWN as usize);
    let detail = serde_json::json!({
        "view": "today", "advocate_id": advocate_id, "shown": overdue.len() + due_today.len(),
    });
    reads.record(actor, crate::audit::LISTED, crate::audit::Subject::named("cases"), detail).await?;
    Ok(Today { overdue, overdue_more, due_today, due_today_more })
}

/// The most follow-ups the caseload lists.
pub const FOLLOW_UPS_SHOWN: u64 = 20;

/// How many matches past the page a narrowed list counts before it says "more".
pub const COUNT_BOUND: u64 = 1_000;

/// Open cases per stage among those in `scope`, from the tallies.
async fn open_counts(db: &DatabaseConnection, scope: &CaseScope) -> AppResult<Vec<(Stage, i64)>> {
    let backend = db.get_database_backend();
    let rows = StageCount::find_by_statement(Statement::from_string(
        backend,
        format!(
            "SELECT stage, CAST(SUM(n) AS BIGINT) AS n FROM tally_stage WHERE 1 = 1{} GROUP BY stage",
            scope.sql_on_key("advocate_key")
        ),
    ))
    .all(db)
    .await?;
    Ok(per_open_stage(&rows))
}

fn per_open_stage(rows: &[StageCount]) -> Vec<(Stage, i64)> {
    Stage::PATH[..4]
        .iter()
        .map(|stage| (*stage, rows.iter().find(|r| r.stage == stage.as_str()).map_or(0, |r| r.n)))
        .collect()
}

/// Days between two timestamp columns, as a real number, in this database's dialect.
fn days_between(backend: DbBackend, from: &str, to: &str) -> String {
    match backend {
        DbBackend::Postgres => format!("CAST(EXTRACT(EPOCH FROM ({to} - {from})) / 86400 AS DOUBLE PRECISION)"),
        _ => format!("(julianday({to}) - julianday({from}))"),
    }
}

fn whole_weeks_between(backend: DbBackend, from: &str, to: &str) -> String {
    let days = days_between(backend, from, to);
    match backend {
        DbBackend::Postgres => format!("CAST(FLOOR({days} / 7) AS INTEGER)"),
        _ => format!("CAST({days} / 7 AS INTEGER)"),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub open_per_stage: Vec<(Stage, i64)>,
    pub overdue_per_stage: Vec<(Stage, i64)>,
    pub per_advocate: Vec<AdvocateLoad>,
    pub time_in_stage: Vec<StageTiming>,
    /// Oldest week first; the last entry is the current week.
    pub weekly: Vec<WeekCounts>,
    pub outcomes: Outcomes,
    /// What patients said in the survey after their decision.
    pub survey: crate::portal::survey::Figures,
    /// How the providers asked for records answer, busiest first.
    pub records_by_provider: Vec<crate::records_requests::figures::ProviderFigures>,
    /// How insurers answer pre-approval requests.
    pub preapprovals: crate::insurance::PreapprovalFigures,
}

#[derive(Debug, Clone, Serialize, FromQueryResult)]
pub struct AdvocateLoad {
    pub advocate_id: Option<i32>,
    pub name: Option<String>,
    pub open: i64,
    pub overdue: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageTiming {
    pub stage: Stage,
    pub count: i64,
    pub median_days: Option<f64>,
    pub p90_days: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WeekCounts {
    pub week_start: DateTime<Utc>,
    pub opened: i64,
    pub closed: i64,
}

/// The outcomes of decided cases, as the tallies keep them.
pub use crate::cases::tallies::Outcome as Outcomes;

impl Outcomes {
    pub fn share(&self, part: &i64) -> String {
        if self.decided == 0 {
            "—".to_string()
        } else {
            format!("{:.0}%", 100.0 * *part as f64 / self.decided as f64)
        }
    }
}

#[derive(Debug, FromQueryResult)]
struct StageCount {
    stage: String,
    n: i64,
}

#[derive(Debug, FromQueryResult)]
struct TimingRow {
    stage: String,
    n: i64,
    median: Option<f64>,
    p90: Option<f64>,
}

#[derive(Debug, FromQueryResult)]
struct WeekRow {
    weeks_ago: i32,
    n: i64,
}

/// Rows of one week; times a little ahead of `now` (another instance's
/// clock) count as this week.
fn in_week(rows: &[WeekRow], weeks_ago: i32) -> i64 {
    rows.iter().filter(|r| r.weeks_ago.max(0) == weeks_ago).map(|r| r.n).sum()
}

/// The times in stage of the last 90 days, as last computed by this
/// instance. They change only when a stage span ends (a new line of stage
/// history), when the window moves on to another day, or when the tallies
/// are rebuilt; the key holds all three, so a hit is never stale.
#[derive(Debug, Clone, Default)]
pub struct TimingsCache(std::sync::Arc<KeptOnce>);

#[derive(Debug, Default)]
pub struct KeptOnce {
    held: std::sync::Mutex<Option<KeptTimings>>,
    /// Held while the timings are computed, so a burst of views after a
    /// change computes them once and the others wait for that result.
    computing: tokio::sync::Mutex<()>,
}

type TimingsKey = (i64, Option<i64>, Option<DateTime<Utc>>);
type KeptTimings = (TimingsKey, Vec<StageTiming>);

impl TimingsCache {
    fn get(&self, key: &TimingsKey) -> Option<Vec<StageTiming>> {
        let held = self.0.held.lock().ok()?;
        held.as_ref().filter(|(k, _)| k == key).map(|(_, timings)| timings.clone())
    }

    fn put(&self, key: TimingsKey, timings: Vec<StageTiming>) {
        if let Ok(mut held) = self.0.held.lock() {
            *held = Some((key, timings));
        }
    }
}

/// Two one-row reads at the ends of primary keys.
async fn timings_key(db: &DatabaseConnection, since_day: i64) -> AppResult<TimingsKey> {
    use sea_orm::{EntityTrait, QueryOrder, QuerySelect};
    let last_change: Option<i32> = crate::db::entities::stage_change::Entity::find()
        .select_only()
        .column(crate::db::entities::stage_change::Column::Id)
        .order_by_desc(crate::db::entities::stage_change::Column::Id)
        .limit(1)
        .into_tuple()
        .one(db)
        .await?;
    let built = BuiltRow::find_by_statement(Statement::from_string(
        db.get_database_backend(),
        "SELECT built_at FROM tally_state WHERE id = 1",
    ))
    .one(db)
    .await?;
    Ok((since_day, last_change.map(i64::from), built.map(|b| b.built_at)))
}

/// Median and 90th percentile of each open stage's spans that ended on or
/// after `since_day`, from the day-by-stage tallies.
async fn times_in_stage(db: &DatabaseConnection, since_day: i64) -> AppResult<Vec<StageTiming>> {
    let backend = db.get_database_backend();
    let spans = SpanRow::find_by_statement(Statement::from_sql_and_values(
        backend,
        db::placeholders(
            backend,
            "SELECT stage, tenths, CAST(SUM(n) AS BIGINT) AS n FROM tally_stage_time \
             WHERE day >= ? AND stage IN ('records_requested', 'specialist_chosen', 'consultation_held', \
             'opinions_compared') GROUP BY stage, tenths",
        ),
        [Value::from(since_day)],
    ))
    .all(db)
    .await?;
    Ok(Stage::PATH[..4].iter().map(|stage| timing_of(*stage, &spans)).collect())
}

#[derive(Debug, FromQueryResult)]
struct BuiltRow {
    built_at: DateTime<Utc>,
}

pub async fn overview(db: &DatabaseConnection, now: DateTime<Utc>) -> AppResult<Overview> {
    overview_with(db, None, now).await
}

/// [`overview`], reusing the times in stage `timings` holds when they are current.
pub async fn overview_with(
    db: &DatabaseConnection,
    timings: Option<&TimingsCache>,
    now: DateTime<Utc>,
) -> AppResult<Overview> {
    let backend = db.get_database_backend();
    let stmt =
        |sql: &str, values: Vec<Value>| Statement::from_sql_and_values(backend, db::placeholders(backend, sql), values);
    let open_list = "('records_requested', 'specialist_chosen', 'consultation_held', 'opinions_compared')";

    let open_per_stage = open_counts(db, &CaseScope::everything()).await?;
    // Overdue changes with the clock as well as with writes. Days before
    // today come summed from the due-day tally; only cases due earlier today
    // are counted from the rows, along the (stage, due date) index.
    let today = tallies::day_of(now);
    let today_start = tallies::day_start(today).unwrap_or(now);
    let overdue_rows = OverdueRow::find_by_statement(stmt(
        &format!(
            "SELECT stage, CASE WHEN advocate_key = {unassigned} THEN NULL ELSE advocate_key END AS advocate_id, \
             CAST(SUM(n) AS BIGINT) AS n FROM tally_due WHERE due_day < ? GROUP BY stage, advocate_key \
             UNION ALL \
             SELECT stage, advocate_id, COUNT(*) AS n FROM cases WHERE closed_at IS NULL AND held_since IS NULL \
             AND stage IN {open_list} AND stage_due_at >= ? AND stage_due_at < ? GROUP BY stage, advocate_id",
            unassigned = tallies::UNASSIGNED,
        ),
        vec![Value::from(today), Value::from(today_start), Value::from(now)],
    ))
    .all(db)
    .await?;
    let overdue_per_stage = Stage::PATH[..4]
        .iter()
        .map(|stage| (*stage, overdue_rows.iter().filter(|r| r.stage == stage.as_str()).map(|r| r.n).sum()))
        .collect();

    let loads = LoadRow::find_by_statement(stmt(
        &format!(
            "SELECT t.advocate_key, u.name, CAST(SUM(t.n) AS BIGINT) AS open FROM tally_stage t \
             LEFT JOIN users u ON u.id = t.advocate_key WHERE t.stage IN {open_list} \
             GROUP BY t.advocate_key, u.name"
        ),
        vec![],
    ))
    .all(db)
    .await?;
    let mut per_advocate: Vec<AdvocateLoad> = loads
        .into_iter()
        .filter(|l| l.open > 0)
        .map(|l| {
            let advocate_id = (l.advocate_key != crate::cases::tallies::UNASSIGNED).then_some(l.advocate_key);
            AdvocateLoad {
                advocate_id,
                name: l.name,
                open: l.open,
                overdue: overdue_rows.iter().filter(|r| r.advocate_id == advocate_id).map(|r| r.n).sum(),
            }
        })
        .collect();
    // As SQL would order it: most open first, then by name, nameless last.
    per_advocate.sort_by(|a, b| {
        b.open.cmp(&a.open).then_with(|| match (&a.name, &b.name) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        })
    });

    let since_day = tallies::day_of(tallies::window_start(now, 90));
    let key = timings_key(db, since_day).await?;
    let time_in_stage = match timings {
        Some(cache) => match cache.get(&key) {
            Some(found) => found,
            None => {
                let _computing = cache.0.computing.lock().await;
                match cache.get(&key) {
                    Some(found) => found,
                    None => {
                        let computed = times_in_stage(db, since_day).await?;
                        cache.put(key, computed.clone());
                        computed
                    }
                }
            }
        },
        None => times_in_stage(db, since_day).await?,
    };

    // Weeks end with the current hour; an hour ahead of it (another
    // instance's clock) counts as this week.
    let end = tallies::weeks_end(now);
    let end_hour = tallies::hour_of(end);
    // Summed per week by the database: twelve rows, not the 2,016 hours.
    let weeks = WeekTally::find_by_statement(stmt(
        "SELECT CASE WHEN hour >= ? THEN 0 ELSE (? - 1 - hour) / ? END AS ago, \
         CAST(SUM(opened) AS BIGINT) AS opened, CAST(SUM(closed) AS BIGINT) AS closed \
         FROM tally_hour WHERE hour >= ? GROUP BY 1",
        vec![
            Value::from(end_hour),
            Value::from(end_hour),
            Value::from(tallies::WEEK_HOURS),
            Value::from(end_hour - 12 * tallies::WEEK_HOURS),
        ],
    ))
    .all(db)
    .await?;
    let weekly = (0..12)
        .rev()
        .map(|ago: i64| {
            let (opened, closed) = weeks.iter().find(|w| w.ago == ago).map_or((0, 0), |w| (w.opened, w.closed));
            WeekCounts { week_start: end - Duration::weeks(ago + 1), opened, closed }
        })
        .collect();

    let outcomes = Outcomes::find_by_statement(stmt(
        "SELECT decided, diagnosis_changed, treatment_changed, surgery_not_followed FROM tally_outcome WHERE id = 1",
        vec![],
    ))
    .one(db)
    .await?
    .unwrap_or_default();

    let survey = crate::portal::survey::figures(&crate::portal::survey::totals(db).await?, outcomes.decided);
    let records_by_provider = crate::records_requests::figures::by_provider(db, now).await?;
    let preapprovals = crate::insurance::figures(db).await?;
    Ok(Overview {
        open_per_stage,
        overdue_per_stage,
        per_advocate,
        time_in_stage,
        weekly,
        outcomes,
        survey,
        records_by_provider,
        preapprovals,
    })
}

#[derive(Debug, FromQueryResult)]
struct OverdueRow {
    stage: String,
    advocate_id: Option<i32>,
    n: i64,
}

#[derive(Debug, FromQueryResult)]
struct LoadRow {
    advocate_key: i32,
    name: Option<String>,
    open: i64,
}

#[derive(Debug, FromQueryResult)]
struct SpanRow {
    stage: String,
    tenths: i64,
    n: i64,
}

#[derive(Debug, FromQueryResult)]
struct WeekTally {
    /// Whole weeks before the current one; an hour ahead of this
    /// instance's clock (another instance's) counts as this week.
    ago: i64,
    opened: i64,
    closed: i64,
}

/// Median and 90th percentile of a stage's spans, in days, picked by rank
/// from the (length, count) rows the way the full scan ranks single spans.
fn timing_of(stage: Stage, spans: &[SpanRow]) -> StageTiming {
    let mut lengths: Vec<(i64, i64)> =
        spans.iter().filter(|s| s.stage == stage.as_str() && s.n > 0).map(|s| (s.tenths, s.n)).collect();
    lengths.sort_unstable();
    let count: i64 = lengths.iter().map(|(_, n)| n).sum();
    let at_rank = |rank: i64| -> Option<f64> {
        let mut seen = 0;
        lengths.iter().find_map(|(tenths, n)| {
            seen += n;
            // Cast: tenths of a day are small whole numbers.
            (seen >= rank).then_some(*tenths as f64 / 10.0)
        })
    };
    let (median_days, p90_days) =
        if count == 0 { (None, None) } else { (at_rank((count + 1) / 2), at_rank((9 * count + 9) / 10)) };
    StageTiming { stage, count, median_days, p90_days }
}
