//! Tallies: the summary rows the caseload and the admin figures read instead
//! of counting every case on each view — cases per advocate and stage, cases
//! opened and closed per hour, time spent in a stage per day it ended (in
//! tenths of a day), open cases per day their stage falls due, and decision
//! outcomes. What a change adds to them is a pure function of the change;
//! the case writes apply it in the same transaction, so the tallies move
//! with the rows they summarise.
//! [`rebuild`] recomputes them from the rows, for databases that predate
//! them or were loaded in bulk.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, Statement, Value,
};

use super::aggregate::CaseState;
use crate::{
    db::{
        self, bulk,
        entities::{case, stage_change},
    },
    error::AppResult,
    vocabulary::{OpinionChoice, Stage},
};

/// The advocate key of cases nobody is assigned to.
pub const UNASSIGNED: i32 = 0;

/// Decision outcomes, counted over decided cases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromQueryResult, serde::Serialize)]
pub struct Outcome {
    pub decided: i64,
    pub diagnosis_changed: i64,
    pub treatment_changed: i64,
    pub surgery_not_followed: i64,
}

/// What one change adds to the tallies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    /// (advocate key, stage, change in the number of cases)
    pub stage: Vec<(i32, Stage, i64)>,
    /// (hour, opened, closed)
    pub hour: Vec<(i64, i64, i64)>,
    /// (day the span ended, stage, its length in tenths of a day, spans)
    pub stage_time: Vec<(i64, Stage, i64, i64)>,
    /// (advocate key, stage, day its stage falls due, change in the number of cases)
    pub due: Vec<(i32, Stage, i64, i64)>,
    pub outcome: Option<Outcome>,
}

/// Where a case counts among the cases that can fall overdue: open, not on
/// hold, with a due date. The key is (advocate key, stage, due day).
pub fn due_key(row: &case::Model) -> Option<(i32, Stage, i64)> {
    if row.closed_at.is_some() || row.held_since.is_some() {
        return None;
    }
    open_due_key(row.advocate_id, row.stage, row.stage_due_at)
}

/// [`due_key`] of a case known to be neither closed nor on hold.
fn open_due_key(advocate: Option<i32>, stage: Stage, due: Option<DateTime<Utc>>) -> Option<(i32, Stage, i64)> {
    (!stage.is_final()).then_some((advocate_key(advocate), stage, day_of(due?)))
}

/// A case row changed (or appeared, when `before` is `None`): it leaves the
/// due day it counted under and joins its new one.
pub fn due_moved(before: Option<&case::Model>, after: &case::Model) -> Delta {
    let (from, to) = (before.and_then(due_key), due_key(after));
    if from == to {
        return Delta::default();
    }
    let mut due = Vec::with_capacity(2);
    if let Some((key, stage, day)) = from {
        due.push((key, stage, day, -1));
    }
    if let Some((key, stage, day)) = to {
        due.push((key, stage, day, 1));
    }
    Delta { due, ..Delta::default() }
}

pub fn advocate_key(advocate: Option<i32>) -> i32 {
    advocate.unwrap_or(UNASSIGNED)
}

/// Hours and days since the Unix epoch, in UTC.
pub fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(3600)
}

pub fn day_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(86_400)
}

/// The start of an hour or day counted by [`hour_of`] / [`day_of`].
pub fn hour_start(hour: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(hour.checked_mul(3600)?, 0)
}

/// The start of a UTC day counted by [`day_of`].
pub fn day_start(day: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(day.checked_mul(86_400)?, 0)
}

/// Hours in a week.
pub const WEEK_HOURS: i64 = 7 * 24;

/// Where the weekly figures' weeks end: the end of the current hour, so a
/// week is a whole number of the hours the tallies count by.
pub fn weeks_end(now: DateTime<Utc>) -> DateTime<Utc> {
    hour_start(hour_of(now) + 1).unwrap_or(now)
}

/// Where the time-in-stage window starts: the start of the UTC day `days`
/// ago, so the window is a whole number of the days the tallies count by.
pub fn window_start(now: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    let from = now - chrono::Duration::days(days);
    day_start(day_of(from)).unwrap_or(from)
}

/// A span's length in tenths of a day, rounded to the nearest. Rounding is
/// monotonic, so a median or percentile of the tenths is the rounded
/// median or percentile of the exact lengths: what the page shows.
pub fn tenths_of_day(entered: DateTime<Utc>, left: DateTime<Utc>) -> i64 {
    let micros = (left - entered).num_microseconds().unwrap_or(i64::MAX);
    // Cast: a span's length fits a f64 to well within a tenth of a day.
    (micros as f64 / 8_640_000_000.0).round_ties_even() as i64
}

/// A case was opened in `stage` at `at`.
pub fn opened(advocate: Option<i32>, stage: Stage, at: DateTime<Utc>) -> Delta {
    Delta { stage: vec![(advocate_key(advocate), stage, 1)], hour: vec![(hour_of(at), 1, 0)], ..Delta::default() }
}

/// A case moved on at `now`: the span it spent in its stage ended. When the
/// move closes the case, the case counts as closed this hour, and a decision
/// adds its outcome.
pub fn moved(state: &CaseState, to: Stage, now: DateTime<Utc>) -> Delta {
    let row = &state.row;
    let key = advocate_key(row.advocate_id);
    let mut delta = Delta {
        stage: vec![(key, row.stage, -1), (key, to, 1)],
        stage_time: vec![(day_of(now), row.stage, tenths_of_day(row.stage_entered_at, now), 1)],
        ..Delta::default()
    };
    if to.is_final() {
        delta.hour.push((hour_of(now), 0, 1));
    }
    if to == Stage::DecisionMade {
        delta.outcome = outcome_of(state);
    }
    delta
}

/// A case in `stage` changed hands.
pub fn reassigned(stage: Stage, from: Option<i32>, to: Option<i32>) -> Delta {
    if from == to {
        return Delta::default();
    }
    Delta { stage: vec![(advocate_key(from), stage, -1), (advocate_key(to), stage, 1)], ..Delta::default() }
}

/// What a decided case adds to the outcomes: whether the opinion of its last
/// round changed the diagnosis or the treatment, and whether the patient
/// passed on a surgery the original opinion recommended.
pub fn outcome_of(state: &CaseState) -> Option<Outcome> {
    let round = state.round.as_ref()?;
    let opinion = |n: i32| state.opinions.iter().find(|o| o.round == n);
    let first_recommends = opinion(1).is_some_and(|o| o.recommends_surgery);
    let passed_on = match state.row.chosen_opinion {
        Some(OpinionChoice::Other) => true,
        Some(OpinionChoice::Round(n)) => opinion(n).is_some_and(|o| !o.recommends_surgery),
        None => false,
    };
    Some(Outcome {
        decided: 1,
        diagnosis_changed: i64::from(round.diagnosis_agrees == Some(false)),
        treatment_changed: i64::from(round.treatment_agrees == Some(false)),
        surgery_not_followed: i64::from(first_recommends && passed_on),
    })
}

/// Longest span the day-count tallies tell apart; longer ones count as this.
pub const MOST_DAYS: i64 = 366;

/// Whole days from `from` to `to`, for the day-count tallies: never below
/// zero, at most [`MOST_DAYS`].
pub fn days_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_days().clamp(0, MOST_DAYS)
}

/// The median of spans counted by whole days (`(days, how many)`, in any
/// order); `None` when nothing was counted.
pub fn median_days(counts: &[(i64, i64)]) -> Option<f64> {
    let mut counts: Vec<(i64, i64)> = counts.iter().copied().filter(|(_, n)| *n > 0).collect();
    counts.sort_unstable();
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    // The values at the two middle positions (the same one for an odd total).
    let at = |position: i64| {
        let mut seen = 0;
        counts.iter().find(|(_, n)| {
            seen += n;
            seen > position
        })
    };
    let low = at((total - 1) / 2)?.0;
    let high = at(total / 2)?.0;
    Some((low + high) as f64 / 2.0)
}

/// Adds `delta` to the tallies, inside the caller's transaction.
pub async fn apply<C: ConnectionTrait>(conn: &C, delta: &Delta) -> AppResult<()> {
    let backend = conn.get_database_backend();
    let run =
        |sql: &str, values: Vec<Value>| Statement::from_sql_and_values(backend, db::placeholders(backend, sql), values);
    for (key, stage, n) in &delta.stage {
        conn.execute_raw(run(
            "INSERT INTO tally_stage (advocate_key, stage, n) VALUES (?, ?, ?) \
             ON CONFLICT (advocate_key, stage) DO UPDATE SET n = tally_stage.n + excluded.n",
            vec![(*key).into(), stage.as_str().into(), (*n).into()],
        ))
        .await?;
    }
    for (hour, opened, closed) in &delta.hour {
        conn.execute_raw(run(
            "INSERT INTO tally_hour (hour, opened, closed) VALUES (?, ?, ?) ON CONFLICT (hour) DO UPDATE \
             SET opened = tally_hour.opened + excluded.opened, closed = tally_hour.closed + excluded.closed",
            vec![(*hour).into(), (*opened).into(), (*closed).into()],
        ))
        .await?;
    }
    for (day, stage, tenths, n) in &delta.stage_time {
        conn.execute_raw(run(
            "INSERT INTO tally_stage_time (day, stage, tenths, n) VALUES (?, ?, ?, ?) \
             ON CONFLICT (day, stage, tenths) DO UPDATE SET n = tally_stage_time.n + excluded.n",
            vec![(*day).into(), stage.as_str().into(), (*tenths).into(), (*n).into()],
        ))
        .await?;
    }
    for (key, stage, day, n) in &delta.due {
        conn.execute_raw(run(
            "INSERT INTO tally_due (advocate_key, stage, due_day, n) VALUES (?, ?, ?, ?) \
             ON CONFLICT (advocate_key, stage, due_day) DO UPDATE SET n = tally_due.n + excluded.n",
            vec![(*key).into(), stage.as_str().into(), (*day).into(), (*n).into()],
        ))
        .await?;
        if *n < 0 {
            // Emptied days go, so the overdue sum reads only days with cases.
            conn.execute_raw(run(
                "DELETE FROM tally_due WHERE advocate_key = ? AND stage = ? AND due_day = ? AND n = 0",
                vec![(*key).into(), stage.as_str().into(), (*day).into()],
            ))
            .await?;
        }
    }
    if let Some(o) = &delta.outcome {
        conn.execute_raw(run(
            "INSERT INTO tally_outcome (id, decided, diagnosis_changed, treatment_changed, surgery_not_followed) \
             VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET \
             decided = tally_outcome.decided + excluded.decided, \
             diagnosis_changed = tally_outcome.diagnosis_changed + excluded.diagnosis_changed, \
             treatment_changed = tally_outcome.treatment_changed + excluded.treatment_changed, \
             surgery_not_followed = tally_outcome.surgery_not_followed + excluded.surgery_not_followed",
            vec![
                o.decided.into(),
                o.diagnosis_changed.into(),
                o.treatment_changed.into(),
                o.surgery_not_followed.into(),
            ],
        ))
        .await?;
    }
    Ok(())
}

/// Builds the tallies once for a database whose rows predate them.
pub async fn ensure_built(db: &DatabaseConnection) -> AppResult<()> {
    let built = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), "SELECT id FROM tally_state WHERE id = 1"))
        .await?;
    if built.is_none() {
        rebuild(db).await?;
    }
    Ok(())
}

/// An open case's id, advocate, stage and due date, as a rebuild reads them.
type OpenDue = (i32, Option<i32>, Stage, Option<DateTime<Utc>>);

/// How many rows a rebuild reads or writes per statement.
const CHUNK: u64 = 5_000;

/// Recomputes every tally from the case rows, in one write transaction that
/// keeps case writes out until it commits.
pub async fn rebuild(db: &DatabaseConnection) -> AppResult<()> {
    let txn = db::begin_write(db).await?;
    let backend = txn.get_database_backend();
    if backend == DbBackend::Postgres {
        // Self-exclusive, and blocks case updates but not reads.
        txn.execute_unprepared("LOCK TABLE cases IN SHARE ROW EXCLUSIVE MODE").await?;
    }
    for table in ["tally_stage", "tally_hour", "tally_stage_time", "tally_due", "tally_outcome", "tally_state"] {
        txn.execute_unprepared(&format!("DELETE FROM {table}")).await?;
    }
    txn.execute_unprepared(
        "INSERT INTO tally_stage (advocate_key, stage, n) \
         SELECT COALESCE(advocate_id, 0), stage, COUNT(*) FROM cases GROUP BY COALESCE(advocate_id, 0), stage",
    )
    .await?;

    let mut total = Delta::default();
    let mut hours: HashMap<i64, (i64, i64)> = HashMap::new();
    let mut last_case = 0;
    loop {
        let rows: Vec<(i32, DateTime<Utc>, Option<DateTime<Utc>>)> = case::Entity::find()
            .select_only()
            .columns([case::Column::Id, case::Column::CreatedAt, case::Column::ClosedAt])
            .filter(case::Column::Id.gt(last_case))
            .order_by_asc(case::Column::Id)
            .limit(CHUNK)
            .into_tuple()
            .all(&txn)
            .await?;
        let Some(last) = rows.last() else { break };
        last_case = last.0;
        for (_, created, closed) in rows {
            hours.entry(hour_of(created)).or_default().0 += 1;
            if let Some(closed) = closed {
                hours.entry(hour_of(closed)).or_default().1 += 1;
            }
        }
    }
    total.hour = hours.into_iter().map(|(hour, (opened, closed))| (hour, opened, closed)).collect();

    let mut due: HashMap<(i32, Stage, i64), i64> = HashMap::new();
    let mut last_open = 0;
    loop {
        let rows: Vec<OpenDue> = case::Entity::find()
            .select_only()
            .columns([case::Column::Id, case::Column::AdvocateId, case::Column::Stage, case::Column::StageDueAt])
            .filter(case::Column::Id.gt(last_open))
            .filter(case::Column::ClosedAt.is_null())
            .filter(case::Column::HeldSince.is_null())
            .order_by_asc(case::Column::Id)
            .limit(CHUNK)
            .into_tuple()
            .all(&txn)
            .await?;
        let Some(last) = rows.last() else { break };
        last_open = last.0;
        for key in rows.into_iter().filter_map(|(_, advocate, stage, due)| open_due_key(advocate, stage, due)) {
            *due.entry(key).or_default() += 1;
        }
    }
    total.due = due.into_iter().map(|((key, stage, day), n)| (key, stage, day, n)).collect();

    // A span of history ends where the same case's next history line
    // begins; cases are read a range of ids at a time, lines in case order.
    let mut spans: HashMap<(i64, Stage, i64), i64> = HashMap::new();
    let step = i32::try_from(CHUNK).unwrap_or(i32::MAX);
    let mut from_case = 0;
    while from_case < last_case {
        let rows: Vec<(i32, Stage, DateTime<Utc>)> = stage_change::Entity::find()
            .select_only()
            .columns([stage_change::Column::CaseId, stage_change::Column::ToStage, stage_change::Column::At])
            .filter(stage_change::Column::CaseId.gt(from_case))
            .filter(stage_change::Column::CaseId.lte(from_case.saturating_add(step)))
            .order_by_asc(stage_change::Column::CaseId)
            .order_by_asc(stage_change::Column::Id)
            .into_tuple()
            .all(&txn)
            .await?;
        from_case = from_case.saturating_add(step);
        for pair in rows.windows(2) {
            let ((case_id, stage, entered), (next_case, _, left)) = (pair[0], pair[1]);
            if case_id == next_case {
                *spans.entry((day_of(left), stage, tenths_of_day(entered, left))).or_default() += 1;
            }
        }
    }
    total.stage_time = spans.into_iter().map(|((day, stage, tenths), n)| (day, stage, tenths, n)).collect();
    total.outcome = Some(outcomes_by_scan(&txn).await?);
    insert_totals(&txn, total).await?;
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        db::placeholders(backend, "INSERT INTO tally_state (id, built_at) VALUES (1, ?)"),
        [Value::from(db::now())],
    ))
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Writes a rebuild's totals into the emptied tables: plain multi-row
/// inserts, hundreds of rows a statement, since a large database has
/// hundreds of thousands of (day, stage, length) spans.
async fn insert_totals<C: ConnectionTrait>(conn: &C, total: Delta) -> AppResult<()> {
    bulk::Table::new("tally_hour", &["hour", "opened", "closed"])
        .insert_all(
            conn,
            total.hour.into_iter().map(|(hour, opened, closed)| [hour.into(), opened.into(), closed.into()]),
        )
        .await?;
    bulk::Table::new("tally_stage_time", &["day", "stage", "tenths", "n"])
        .insert_all(
            conn,
            total
                .stage_time
                .into_iter()
                .map(|(day, stage, tenths, n)| [day.into(), stage.as_str().into(), tenths.into(), n.into()]),
        )
        .await?;
    bulk::Table::new("tally_due", &["advocate_key", "stage", "due_day", "n"])
        .insert_all(
            conn,
            total.due.into_iter().map(|(key, stage, day, n)| [key.into(), stage.as_str().into(), day.into(), n.into()]),
        )
        .await?;
    apply(conn, &Delta { stage: total.stage, outcome: total.outcome, ..Delta::default() }).await
}

/// The outcomes counted over every decided case, as the tallies keep them.
pub async fn outcomes_by_scan<C: ConnectionTrait>(conn: &C) -> AppResult<Outcome> {
    let backend = conn.get_database_backend();
    let chosen_round =
        (1..=10).map(|r| format!("WHEN '{}' THEN {r}", crate::vocabulary::round_name(r))).collect::<Vec<_>>().join(" ");
    let found = Outcome::find_by_statement(Statement::from_string(
        backend,
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
    ))
    .one(conn)
    .await?;
    Ok(found.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_days_reads_the_middle_of_the_counts() {
        assert_eq!(median_days(&[]), None);
        assert_eq!(median_days(&[(4, 0)]), None);
        assert_eq!(median_days(&[(9, 1)]), Some(9.0));
        // 2, 3, 3, 10: the middle two are 3 and 3.
        assert_eq!(median_days(&[(10, 1), (3, 2), (2, 1)]), Some(3.0));
        // 1, 1, 5, 7: between 1 and 5.
        assert_eq!(median_days(&[(7, 1), (1, 2), (5, 1)]), Some(3.0));
        let day = |d: i64| DateTime::<Utc>::from_timestamp(d * 86_400, 0).unwrap_or_default();
        assert_eq!(days_between(day(10), day(3)), 0);
        assert_eq!(days_between(day(0), day(1000)), MOST_DAYS);
    }
}
