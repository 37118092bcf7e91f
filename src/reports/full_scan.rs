//! The admin figures recomputed from every row, the way they were before
//! the tallies: for checks and tests that the tallies agree with the rows,
//! never for a page.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{DatabaseConnection, FromQueryResult, Statement, Value};

use super::{
    AdvocateLoad, Overview, StageCount, StageTiming, TimingRow, WeekCounts, WeekRow, days_between, in_week,
    per_open_stage, whole_weeks_between,
};
use crate::{cases::Stage, db, error::AppResult};

pub async fn overview_by_scan(db: &DatabaseConnection, now: DateTime<Utc>) -> AppResult<Overview> {
    let backend = db.get_database_backend();
    let stmt = |sql: String, values: Vec<Value>| {
        Statement::from_sql_and_values(backend, db::placeholders(backend, &sql), values)
    };
    let open_list = "('records_requested', 'specialist_chosen', 'consultation_held', 'opinions_compared')";

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
             GROUP BY c.advocate_id, u.name \
             ORDER BY COUNT(*) DESC, CASE WHEN u.name IS NULL THEN 1 ELSE 0 END, u.name"
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
        vec![Value::from(crate::cases::tallies::window_start(now, 90))],
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

    // The weeks end with the current hour, as the tallies count them; an
    // entry at the very end of an hour belongs to the week before.
    let end = crate::cases::tallies::weeks_end(now);
    let start = end - Duration::weeks(12);
    let weekly_counts = |column: &str| {
        let weeks = whole_weeks_between(backend, column, "?");
        stmt(
            format!(
                "SELECT weeks_ago, COUNT(*) AS n FROM (SELECT {weeks} AS weeks_ago FROM cases \
                 WHERE {column} IS NOT NULL AND {column} >= ?) AS recent GROUP BY weeks_ago"
            ),
            vec![Value::from(end - Duration::milliseconds(1)), Value::from(start)],
        )
    };
    let opened = WeekRow::find_by_statement(weekly_counts("created_at")).all(db).await?;
    let closed = WeekRow::find_by_statement(weekly_counts("closed_at")).all(db).await?;
    let weekly = (0..12)
        .rev()
        .map(|weeks_ago: i32| WeekCounts {
            week_start: end - Duration::weeks(i64::from(weeks_ago) + 1),
            opened: in_week(&opened, weeks_ago),
            closed: in_week(&closed, weeks_ago),
        })
        .collect();

    let outcomes = crate::cases::tallies::outcomes_by_scan(db).await?;
    let survey = crate::portal::survey::figures(&crate::portal::survey::totals_by_scan(db).await?, outcomes.decided);

    Ok(Overview {
        open_per_stage: per_open_stage(&open),
        overdue_per_stage: per_open_stage(&overdue),
        per_advocate,
        time_in_stage,
        weekly,
        outcomes,
        survey,
        records_by_provider: crate::records_requests::figures::by_provider_by_scan(db, now).await?,
        preapprovals: crate::insurance::figures_by_scan(db).await?,
    })
}
