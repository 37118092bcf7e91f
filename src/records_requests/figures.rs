//! How providers answer records requests: per provider, the requests sent,
//! the median days from their receipt of a request to the last records
//! arriving, the share answered (records in full, or a refusal) by the due
//! date, and how many are overdue now. The counts come from a tally kept
//! in step with the requests (keyed by provider, outcome, whole days and
//! whether on time), so the figures read summary rows whatever the number
//! of cases; only "overdue now" reads requests, along the index of those
//! still waiting.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, Statement, Value,
};
use serde::Serialize;

use crate::{
    cases::tallies,
    db::{
        self,
        entities::{records_request, records_request_kind},
    },
    error::AppResult,
    vocabulary::RequestState,
};

/// Most providers the figures list, busiest first.
const MOST_PROVIDERS: usize = 50;

/// Where a request counts in the tally: (outcome, days, on time).
pub type Key = (&'static str, i64, bool);

/// A request's count once sent.
pub const MADE: Key = ("made", 0, false);

/// Where a request that has ended counts: fulfilled when its last records
/// arrived (`last_arrival`), denied when refused (`closed_at`); days from the
/// provider's receipt of the request, and whether by its due date.
pub fn answered(row: &records_request::Model, last_arrival: Option<DateTime<Utc>>) -> Option<Key> {
    let (outcome, at) = match row.state {
        RequestState::Fulfilled => ("fulfilled", last_arrival.or(row.closed_at)?),
        RequestState::Denied => ("denied", row.closed_at?),
        _ => return None,
    };
    let received = row.received_by_provider_at?;
    Some((outcome, tallies::days_between(received, at), row.due_at.is_some_and(|due| at <= due)))
}

/// Adds `n` requests of `provider_id` under `key`, inside the caller's transaction.
pub async fn count<C: ConnectionTrait>(conn: &C, provider_id: i32, key: Key, n: i64) -> AppResult<()> {
    let backend = conn.get_database_backend();
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        db::placeholders(
            backend,
            "INSERT INTO tally_provider_requests (provider_id, outcome, days, on_time, n) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (provider_id, outcome, days, on_time) DO UPDATE SET n = tally_provider_requests.n + excluded.n",
        ),
        [
            Value::from(provider_id),
            Value::from(key.0),
            Value::from(key.1),
            Value::from(i32::from(key.2)),
            Value::from(n),
        ],
    ))
    .await?;
    Ok(())
}

/// One provider's figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProviderFigures {
    pub provider_id: i32,
    pub name: String,
    /// Requests sent to the provider.
    pub requests: i64,
    /// Requests fulfilled, and the median days they took.
    pub fulfilled: i64,
    pub median_days_to_fulfil: Option<f64>,
    /// Requests answered (fulfilled or refused), and the share of them answered by the due date.
    pub answered: i64,
    pub on_time_share: Option<f64>,
    pub overdue_now: i64,
}

#[derive(Debug, FromQueryResult)]
struct TallyRow {
    provider_id: i32,
    outcome: String,
    days: i32,
    on_time: i32,
    n: i64,
}

#[derive(Debug, FromQueryResult)]
struct OverdueRow {
    provider_id: i32,
    n: i64,
}

/// The figures of the busiest providers, from the tally.
pub async fn by_provider<C: ConnectionTrait>(conn: &C, now: DateTime<Utc>) -> AppResult<Vec<ProviderFigures>> {
    let tally = TallyRow::find_by_statement(Statement::from_string(
        conn.get_database_backend(),
        "SELECT provider_id, outcome, days, on_time, n FROM tally_provider_requests WHERE n <> 0",
    ))
    .all(conn)
    .await?;
    summarise(conn, tally, now).await
}

/// [`by_provider`] counted from every request, for checks that the tally
/// agrees with the rows; never for a page.
pub async fn by_provider_by_scan(db: &DatabaseConnection, now: DateTime<Utc>) -> AppResult<Vec<ProviderFigures>> {
    let mut tally = Vec::new();
    let mut after = 0;
    loop {
        let rows = requests_after(db, after).await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        tally.extend(keys_of(db, &rows).await?.into_iter().map(|((provider_id, (outcome, days, on_time)), n)| {
            TallyRow { provider_id, outcome: outcome.to_string(), days: days as i32, on_time: i32::from(on_time), n }
        }));
    }
    summarise(db, tally, now).await
}

async fn summarise<C: ConnectionTrait>(
    conn: &C,
    tally: Vec<TallyRow>,
    now: DateTime<Utc>,
) -> AppResult<Vec<ProviderFigures>> {
    let backend = conn.get_database_backend();
    let overdue = OverdueRow::find_by_statement(Statement::from_sql_and_values(
        backend,
        db::placeholders(
            backend,
            &format!(
                "SELECT provider_id, CAST(COUNT(*) AS BIGINT) AS n FROM records_requests \
                 WHERE {} AND due_at < ? GROUP BY provider_id",
                super::WAITING
            ),
        ),
        [Value::from(now)],
    ))
    .all(conn)
    .await?;
    let mut per: BTreeMap<i32, (Vec<&TallyRow>, i64)> = BTreeMap::new();
    for row in &tally {
        per.entry(row.provider_id).or_default().0.push(row);
    }
    for row in &overdue {
        per.entry(row.provider_id).or_default().1 = row.n;
    }
    let mut figures: Vec<ProviderFigures> = per
        .into_iter()
        .map(|(provider_id, (rows, overdue_now))| {
            let sum = |keep: &dyn Fn(&TallyRow) -> bool| rows.iter().filter(|r| keep(r)).map(|r| r.n).sum::<i64>();
            let fulfilled_days: Vec<(i64, i64)> =
                rows.iter().filter(|r| r.outcome == "fulfilled").map(|r| (i64::from(r.days), r.n)).collect();
            let answered = sum(&|r| r.outcome != "made");
            let on_time = sum(&|r| r.outcome != "made" && r.on_time != 0);
            ProviderFigures {
                provider_id,
                name: String::new(),
                requests: sum(&|r| r.outcome == "made"),
                fulfilled: fulfilled_days.iter().map(|(_, n)| n).sum(),
                median_days_to_fulfil: tallies::median_days(&fulfilled_days),
                answered,
                on_time_share: (answered > 0).then(|| on_time as f64 / answered as f64),
                overdue_now,
            }
        })
        .collect();
    figures.sort_by(|a, b| {
        b.requests.cmp(&a.requests).then(b.overdue_now.cmp(&a.overdue_now)).then(a.provider_id.cmp(&b.provider_id))
    });
    figures.truncate(MOST_PROVIDERS);
    let ids: Vec<i32> = figures.iter().map(|f| f.provider_id).collect();
    let names = crate::providers::by_id(conn, ids).await?;
    for f in &mut figures {
        f.name = names.get(&f.provider_id).map(|p| p.name.clone()).unwrap_or_default();
    }
    Ok(figures)
}

/// The next requests after id `after`, a chunk at a time, for the scans.
async fn requests_after<C: ConnectionTrait>(conn: &C, after: i32) -> AppResult<Vec<records_request::Model>> {
    Ok(records_request::Entity::find()
        .filter(records_request::Column::Id.gt(after))
        .order_by_asc(records_request::Column::Id)
        .limit(2_000)
        .all(conn)
        .await?)
}

/// What `rows` add to the tally, summed by provider and key.
async fn keys_of<C: ConnectionTrait>(
    conn: &C,
    rows: &[records_request::Model],
) -> AppResult<BTreeMap<(i32, Key), i64>> {
    let arrivals = last_arrivals(conn, rows.iter().map(|r| r.id).collect()).await?;
    let mut keys: BTreeMap<(i32, Key), i64> = BTreeMap::new();
    for row in rows {
        // Sent for real: a provider's receipt date is set only on sending.
        if row.received_by_provider_at.is_some() {
            *keys.entry((row.provider_id, MADE)).or_default() += 1;
        }
        if let Some(key) = answered(row, arrivals.get(&row.id).copied()) {
            *keys.entry((row.provider_id, key)).or_default() += 1;
        }
    }
    Ok(keys)
}

/// The arrival of the last records of each of `ids` that has any.
async fn last_arrivals<C: ConnectionTrait>(conn: &C, ids: Vec<i32>) -> AppResult<BTreeMap<i32, DateTime<Utc>>> {
    let kinds = records_request_kind::Entity::find()
        .filter(records_request_kind::Column::RequestId.is_in(ids))
        .filter(records_request_kind::Column::ReceivedAt.is_not_null())
        .all(conn)
        .await?;
    let mut last = BTreeMap::new();
    for k in kinds {
        if let Some(at) = k.received_at {
            let entry = last.entry(k.request_id).or_insert(at);
            *entry = (*entry).max(at);
        }
    }
    Ok(last)
}

/// The last arrival among the records of request `id`.
pub async fn last_arrival<C: ConnectionTrait>(conn: &C, id: i32) -> AppResult<Option<DateTime<Utc>>> {
    Ok(last_arrivals(conn, vec![id]).await?.remove(&id))
}

/// Counts the tally once for a database whose requests predate it: when it
/// is empty but a sent request exists (two one-row reads otherwise).
pub async fn ensure_built(db: &DatabaseConnection) -> AppResult<()> {
    let backend = db.get_database_backend();
    let counted = db
        .query_one_raw(Statement::from_string(backend, "SELECT provider_id FROM tally_provider_requests LIMIT 1"))
        .await?;
    if counted.is_some() {
        return Ok(());
    }
    let sent = records_request::Entity::find()
        .select_only()
        .column(records_request::Column::Id)
        .filter(records_request::Column::ReceivedByProviderAt.is_not_null())
        .limit(1)
        .into_tuple::<i32>()
        .one(db)
        .await?;
    if sent.is_some() {
        rebuild(db).await?;
    }
    Ok(())
}

/// Counts the tally anew from the requests (after an import or a bulk load).
pub async fn rebuild(db: &DatabaseConnection) -> AppResult<()> {
    let txn = db::begin_write(db).await?;
    txn.execute_unprepared("DELETE FROM tally_provider_requests").await?;
    let mut after = 0;
    loop {
        let rows = requests_after(&txn, after).await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        for ((provider_id, key), n) in keys_of(&txn, &rows).await? {
            count(&txn, provider_id, key, n).await?;
        }
    }
    txn.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::RequestType;

    fn day(d: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000 + d * 86_400, 0).unwrap_or_default()
    }

    fn request(state: RequestState) -> records_request::Model {
        records_request::Model {
            id: 1,
            case_id: 1,
            provider_id: 1,
            request_type: RequestType::PatientAccess,
            state,
            method: None,
            sent_at: Some(day(0)),
            received_by_provider_at: Some(day(0)),
            first_due_at: Some(day(30)),
            due_at: Some(day(30)),
            extension_notice_received_at: None,
            extension_reason: None,
            denied_reason: None,
            closed_at: Some(day(40)),
            created_by: None,
            created_at: day(0),
            updated_at: day(0),
        }
    }

    #[test]
    fn a_request_counts_by_when_its_records_arrived_not_when_that_was_typed_in() {
        let fulfilled = request(RequestState::Fulfilled);
        // Recorded on day 40, arrived on day 12: on time, twelve days.
        assert_eq!(answered(&fulfilled, Some(day(12))), Some(("fulfilled", 12, true)));
        assert_eq!(answered(&fulfilled, Some(day(31))), Some(("fulfilled", 31, false)));
        assert_eq!(answered(&request(RequestState::Denied), None), Some(("denied", 40, false)));
        assert_eq!(answered(&request(RequestState::Cancelled), None), None);
        assert_eq!(answered(&request(RequestState::PartiallyReceived), Some(day(3))), None);
    }
}
