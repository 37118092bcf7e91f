//! Read-only views across many cases: an advocate's caseload and the admin
//! overview. Everything is counted by the database (GROUP BY, window
//! functions), never by loading cases into memory. Reading a caseload
//! leaves an audit entry (`case.list`): which patients someone listed is part
//! of the record.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbBackend, EntityTrait, FromQueryResult, Order, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement, Value,
};
use serde::Serialize;

use crate::{
    auth::Actor,
    cases::{Stage, scope::CaseScope, values::round_name},
    db::{
        self,
        entities::{audit_entry, case},
    },
    error::AppResult,
    validate::like_contains,
};

#[derive(Debug, Clone, Default)]
pub struct CaseloadFilter {
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
    pub cases: Vec<case::Model>,
    pub total: u64,
    pub upcoming: Vec<Upcoming>,
    pub activity: Vec<audit_entry::Model>,
}

#[derive(Debug, Clone, FromQueryResult)]
pub struct Upcoming {
    pub case_id: i32,
    pub reference: String,
    pub patient_name: String,
    pub scheduled_at: DateTime<Utc>,
    pub mode: Option<String>,
}

fn open_stages() -> impl Iterator<Item = Stage> {
    Stage::ALL.iter().copied().filter(|s| !s.is_final())
}

pub async fn caseload(
    db: &DatabaseConnection,
    actor: &Actor,
    filter: &CaseloadFilter,
    now: DateTime<Utc>,
) -> AppResult<Caseload> {
    crate::validate::check_search("q", filter.query.as_deref())?;
    if filter.page > MAX_PAGE {
        return Err(crate::error::FieldErrors::single("page", format!("must be at most {MAX_PAGE}")));
    }
    let scope = CaseScope::of(actor, filter.advocate_id);
    let open = Condition::all().add(case::Column::Stage.is_in(open_stages())).add(scope.condition());

    let counts: Vec<(String, i64)> = case::Entity::find()
        .select_only()
        .column(case::Column::Stage)
        .column_as(case::Column::Id.count(), "n")
        .filter(open.clone())
        .group_by(case::Column::Stage)
        .into_tuple()
        .all(db)
        .await?;
    let stage_counts = Stage::PATH[..4]
        .iter()
        .map(|stage| (*stage, counts.iter().find(|(s, _)| s == stage.as_str()).map_or(0, |(_, n)| *n)))
        .collect();

    let mut listed = open.clone();
    if let Some(stage) = filter.stage {
        listed = listed.add(case::Column::Stage.eq(stage));
    }
    if let Some(urgency) = filter.urgency.as_deref() {
        listed = listed.add(case::Column::Urgency.eq(urgency));
    }
    if filter.overdue {
        listed = listed.add(case::Column::HeldSince.is_null()).add(case::Column::StageDueAt.lt(now));
    }
    if let Some(q) = filter.query.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        listed = listed.add(case::Column::SearchKey.like(like_contains(&q.to_lowercase())));
    }
    let query = case::Entity::find()
        .filter(listed)
        .order_by(case::Column::StageDueAt, Order::Asc)
        .order_by(case::Column::Id, Order::Asc);
    let paginator = query.paginate(db, PAGE_SIZE);
    let total = paginator.num_items().await?;
    let cases = paginator.fetch_page(filter.page).await?;

    let backend = db.get_database_backend();
    let scope_sql = scope.sql("c");
    let upcoming = Upcoming::find_by_statement(Statement::from_sql_and_values(
        backend,
        db::placeholders(
            backend,
            &format!(
                "SELECT c.id AS case_id, c.reference, c.patient_name, r.consultation_scheduled_at AS scheduled_at, \
                 r.consultation_mode AS mode FROM case_rounds r JOIN cases c ON c.id = r.case_id AND r.round = c.round \
                 WHERE r.consultation_held_at IS NULL AND r.consultation_scheduled_at >= ? \
                 AND r.consultation_scheduled_at < ? AND c.stage IN ('records_requested', 'specialist_chosen'){scope_sql} \
                 ORDER BY r.consultation_scheduled_at LIMIT 50"
            ),
        ),
        [Value::from(now), Value::from(now + Duration::days(14))],
    ))
    .all(db)
    .await?;

    let mut activity_query = audit_entry::Entity::find()
        .filter(audit_entry::Column::At.gte(now - Duration::days(14)))
        .filter(audit_entry::Column::CaseId.is_not_null())
        .filter(audit_entry::Column::Action.is_not_in(["access.denied", crate::cases::store::VIEWED]));
    if let Some(in_view) = scope.case_ids() {
        activity_query =
            activity_query.filter(audit_entry::Column::CaseId.in_subquery(sea_orm::QueryTrait::into_query(in_view)));
    }
    let activity = activity_query.order_by_desc(audit_entry::Column::Id).limit(30).all(db).await?;
    // The filters, but not the search text: it is often a patient's name.
    let detail = serde_json::json!({
        "view": "caseload", "stage": filter.stage, "urgency": filter.urgency, "overdue": filter.overdue,
        "advocate_id": filter.advocate_id, "searched": crate::validate::is_given(filter.query.as_deref()),
        "page": filter.page, "shown": cases.len(),
    });
    crate::audit::record(db, actor, crate::audit::LISTED, crate::audit::Subject::named("cases"), detail).await?;
    Ok(Caseload { stage_counts, cases, total, upcoming, activity })
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

#[derive(Debug, Clone, Default, Serialize, FromQueryResult)]
pub struct Outcomes {
    pub decided: i64,
    pub diagnosis_changed: i64,
    pub treatment_changed: i64,
    pub surgery_not_followed: i64,
}

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

pub async fn overview(db: &DatabaseConnection, now: DateTime<Utc>) -> AppResult<Overview> {
    let backend = db.get_database_backend();
    let stmt = |sql: String, values: Vec<Value>| {
        Statement::from_sql_and_values(backend, db::placeholders(backend, &sql), values)
    };
    let open_list = "('records_requested', 'specialist_chosen', 'consultation_held', 'opinions_compared')";

    let per_stage = |rows: Vec<StageCount>| -> Vec<(Stage, i64)> {
        Stage::PATH[..4]
            .iter()
            .map(|stage| (*stage, rows.iter().find(|r| r.stage == stage.as_str()).map_or(0, |r| r.n)))
            .collect()
    };
    let open = StageCount::find_by_statement(stmt(
        format!("SELECT stage, COUNT(*) AS n FROM cases WHERE stage IN {open_list} GROUP BY stage"),
        vec![],
    ))
    .all(db)
    .await?;
    let overdue = StageCount::find_by_statement(stmt(
        format!(
            "SELECT stage, COUNT(*) AS n FROM cases WHERE stage IN {open_list} AND held_since IS NULL \
             AND stage_due_at < ? GROUP BY stage"
        ),
        vec![Value::from(now)],
    ))
    .all(db)
    .await?;

    let per_advocate = AdvocateLoad::find_by_statement(stmt(
        format!(
            "SELECT c.advocate_id, u.name, COUNT(*) AS open, \
             SUM(CASE WHEN c.held_since IS NULL AND c.stage_due_at < ? THEN 1 ELSE 0 END) AS overdue \
             FROM cases c LEFT JOIN users u ON u.id = c.advocate_id WHERE c.stage IN {open_list} \
             GROUP BY c.advocate_id, u.name ORDER BY COUNT(*) DESC, u.name"
        ),
        vec![Value::from(now)],
    ))
    .all(db)
    .await?;

    let days = days_between(backend, "entered", "left_at");
    let timing = TimingRow::find_by_statement(stmt(
        format!(
            "WITH spans AS ( \
               SELECT to_stage AS stage, at AS entered, \
                      LEAD(at) OVER (PARTITION BY case_id ORDER BY id) AS left_at \
               FROM stage_history), \
             done AS ( \
               SELECT stage, {days} AS days FROM spans \
               WHERE left_at IS NOT NULL AND left_at >= ? AND stage IN {open_list}), \
             ranked AS ( \
               SELECT stage, days, ROW_NUMBER() OVER (PARTITION BY stage ORDER BY days) AS rn, \
                      COUNT(*) OVER (PARTITION BY stage) AS n FROM done) \
             SELECT stage, n, \
               MAX(CASE WHEN rn = (n + 1) / 2 THEN days END) AS median, \
               MAX(CASE WHEN rn = (9 * n + 9) / 10 THEN days END) AS p90 \
             FROM ranked GROUP BY stage, n"
        ),
        vec![Value::from(now - Duration::days(90))],
    ))
    .all(db)
    .await?;
    let time_in_stage = Stage::PATH[..4]
        .iter()
        .map(|stage| {
            let row = timing.iter().find(|r| r.stage == stage.as_str());
            StageTiming {
                stage: *stage,
                count: row.map_or(0, |r| r.n),
                median_days: row.and_then(|r| r.median),
                p90_days: row.and_then(|r| r.p90),
            }
        })
        .collect();

    let start = now - Duration::weeks(12);
    let weekly_counts = |column: &str| {
        let weeks = whole_weeks_between(backend, column, "?");
        stmt(
            format!(
                "SELECT weeks_ago, COUNT(*) AS n FROM (SELECT {weeks} AS weeks_ago FROM cases \
                 WHERE {column} IS NOT NULL AND {column} > ?) AS recent GROUP BY weeks_ago"
            ),
            vec![Value::from(now), Value::from(start)],
        )
    };
    let opened = WeekRow::find_by_statement(weekly_counts("created_at")).all(db).await?;
    let closed = WeekRow::find_by_statement(weekly_counts("closed_at")).all(db).await?;
    let weekly = (0..12)
        .rev()
        .map(|weeks_ago: i32| WeekCounts {
            week_start: now - Duration::weeks(i64::from(weeks_ago) + 1),
            opened: in_week(&opened, weeks_ago),
            closed: in_week(&closed, weeks_ago),
        })
        .collect();

    let chosen_round = (1..=10).map(|r| format!("WHEN '{}' THEN {r}", round_name(r))).collect::<Vec<_>>().join(" ");
    let outcomes = Outcomes::find_by_statement(stmt(
        format!(
            "SELECT COUNT(*) AS decided, \
               COALESCE(SUM(CASE WHEN r.diagnosis_agrees = FALSE THEN 1 ELSE 0 END), 0) AS diagnosis_changed, \
               COALESCE(SUM(CASE WHEN r.treatment_agrees = FALSE THEN 1 ELSE 0 END), 0) AS treatment_changed, \
               COALESCE(SUM(CASE WHEN o_first.recommends_surgery = TRUE \
                   AND (o_followed.recommends_surgery = FALSE OR c.chosen_opinion = 'other') THEN 1 ELSE 0 END), 0) \
                 AS surgery_not_followed \
             FROM cases c \
             JOIN case_rounds r ON r.case_id = c.id AND r.round = c.round \
             LEFT JOIN opinions o_first ON o_first.case_id = c.id AND o_first.round = 1 \
             LEFT JOIN opinions o_followed ON o_followed.case_id = c.id \
               AND o_followed.round = (CASE c.chosen_opinion {chosen_round} ELSE 0 END) \
             WHERE c.stage = 'decision_made'"
        ),
        vec![],
    ))
    .one(db)
    .await?
    .unwrap_or_default();

    Ok(Overview {
        open_per_stage: per_stage(open),
        overdue_per_stage: per_stage(overdue),
        per_advocate,
        time_in_stage,
        weekly,
        outcomes,
    })
}
