//! The outbox: every email is a row, unique by its reminder key, so queueing
//! twice never doubles an email. Senders claim a batch of rows with a lease
//! in one statement (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: one atomic
//! UPDATE), send, then record the outcomes a group at a time; a lease that
//! runs out (a crashed sender) is taken over.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement, Value, prelude::Expr, sea_query::OnConflict,
};
use serde_json::json;

use crate::{
    audit::{self, Subject},
    auth::Actor,
    db::{self, entities::outbox_message},
    error::{AppError, AppResult},
};

pub const QUEUED: &str = "queued";
pub const SENT: &str = "sent";
pub const FAILED: &str = "failed";
/// Never to be sent: the case's patient data was erased before it went out.
pub const CANCELLED: &str = "cancelled";

/// A rendered email ready to queue.
#[derive(Debug, Clone)]
pub struct Draft {
    pub key: String,
    pub case_id: Option<i32>,
    pub kind: String,
    pub recipient_email: String,
    pub recipient_name: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub ics: Option<String>,
    pub unsubscribe_url: Option<String>,
    pub send_after: DateTime<Utc>,
}

/// Queues a draft unless one with its key exists. Returns whether it was new.
pub async fn enqueue<C: ConnectionTrait>(conn: &C, draft: Draft) -> AppResult<bool> {
    Ok(enqueue_many(conn, vec![draft]).await? > 0)
}

/// Queues drafts whose keys are not in the outbox yet, a few statements for
/// all of them. Returns how many were new.
pub async fn enqueue_many<C: ConnectionTrait>(conn: &C, drafts: Vec<Draft>) -> AppResult<usize> {
    let now = db::now();
    let mut rows = drafts.into_iter().map(|draft| outbox_message::ActiveModel {
        dedupe_key: Set(draft.key),
        case_id: Set(draft.case_id),
        kind: Set(draft.kind),
        recipient_email: Set(draft.recipient_email),
        recipient_name: Set(draft.recipient_name),
        subject: Set(draft.subject),
        body_text: Set(draft.body_text),
        body_html: Set(draft.body_html),
        ics: Set(draft.ics),
        unsubscribe_url: Set(draft.unsubscribe_url),
        status: Set(QUEUED.to_string()),
        attempts: Set(0),
        next_attempt_at: Set(draft.send_after),
        lease_until: Set(None),
        lease_owner: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        sent_at: Set(None),
        updated_at: Set(now),
        ..Default::default()
    });
    let mut queued = 0;
    loop {
        let batch: Vec<_> = rows.by_ref().take(ENQUEUE_BATCH).collect();
        if batch.is_empty() {
            break;
        }
        let inserted = outbox_message::Entity::insert_many(batch)
            .on_conflict(OnConflict::column(outbox_message::Column::DedupeKey).do_nothing().to_owned())
            .exec_without_returning(conn)
            .await?;
        queued += usize::try_from(inserted).unwrap_or(usize::MAX);
    }
    Ok(queued)
}

/// Rows per INSERT: well inside both databases' limits on bound values.
const ENQUEUE_BATCH: usize = 100;

/// Keys already in the outbox for these cases.
pub async fn keys_for_cases<C: ConnectionTrait>(conn: &C, case_ids: &[i32]) -> AppResult<Vec<String>> {
    Ok(outbox_message::Entity::find()
        .select_only()
        .column(outbox_message::Column::DedupeKey)
        .filter(outbox_message::Column::CaseId.is_in(case_ids.to_vec()))
        .into_tuple()
        .all(conn)
        .await?)
}

pub async fn key_exists<C: ConnectionTrait>(conn: &C, key: &str) -> AppResult<bool> {
    Ok(outbox_message::Entity::find().filter(outbox_message::Column::DedupeKey.eq(key)).one(conn).await?.is_some())
}

/// Claims up to `limit` emails that are due and not leased by a live sender.
pub async fn claim(
    db: &DatabaseConnection,
    owner: &str,
    limit: u64,
    lease: Duration,
) -> AppResult<Vec<outbox_message::Model>> {
    let now = db::now();
    let backend = db.get_database_backend();
    let lock = if backend == DbBackend::Postgres { "FOR UPDATE SKIP LOCKED" } else { "" };
    let sql = format!(
        "UPDATE outbox SET lease_owner = ?, lease_until = ?, updated_at = ? WHERE id IN ( \
           SELECT id FROM outbox WHERE status = 'queued' AND next_attempt_at <= ? \
           AND (lease_until IS NULL OR lease_until < ?) ORDER BY next_attempt_at, id LIMIT ? {lock}) \
         RETURNING *"
    );
    let values: Vec<Value> = vec![
        owner.into(),
        (now + lease).into(),
        now.into(),
        now.into(),
        now.into(),
        i64::try_from(limit).unwrap_or(i64::MAX).into(),
    ];
    let stmt = Statement::from_sql_and_values(backend, db::placeholders(backend, &sql), values);
    // A write like the others: on SQLite it waits its turn in order.
    let txn = db::begin_write(db).await?;
    let mut rows = outbox_message::Entity::find().from_raw_sql(stmt).all(&txn).await?;
    txn.commit().await?;
    rows.sort_by_key(|r| (r.next_attempt_at, r.id));
    Ok(rows)
}

fn system() -> Actor {
    Actor::system("mailer")
}

/// What became of one claimed email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// A temporary failure: try again at `next`, unless attempts have run out.
    Retry {
        error: String,
        next: DateTime<Utc>,
    },
    Failed {
        error: String,
    },
    /// Not tried: too little of its lease was left to send it and record the
    /// outcome before another sender could take it over. It goes back to the queue.
    Unsent,
}

/// A claimed email's outcome, with what recording it needs from its row.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub id: i32,
    pub case_id: Option<i32>,
    pub kind: String,
    /// Attempts before this one, as claimed.
    pub attempts: i32,
    pub outcome: Outcome,
}

impl Attempt {
    pub fn new(row: &outbox_message::Model, outcome: Outcome) -> Self {
        Self { id: row.id, case_id: row.case_id, kind: row.kind.clone(), attempts: row.attempts, outcome }
    }
}

/// Rows written by one statement, well below the bound parameters either
/// database accepts (at most five per row).
const GROUP: usize = 500;

/// Records the outcomes of emails this sender claimed, in one transaction:
/// one UPDATE per outcome (sent, to retry, failed, unsent) and the timeline
/// entries of the sent and failed ones. Rows another sender has taken over
/// since are left alone, and get no entry. After a temporary failure the
/// email is tried again at its `next` time, or marked failed once
/// `max_attempts` are used up.
pub async fn record(db: &DatabaseConnection, owner: &str, attempts: &[Attempt], max_attempts: u32) -> AppResult<()> {
    if attempts.is_empty() {
        return Ok(());
    }
    let mut sent = Vec::new();
    let mut retry = Vec::new();
    let mut failed = Vec::new();
    let mut unsent = Vec::new();
    for attempt in attempts {
        match &attempt.outcome {
            Outcome::Sent => sent.push(attempt),
            Outcome::Retry { error, next } => {
                let count = attempt.attempts + 1;
                if u32::try_from(count).unwrap_or(u32::MAX) >= max_attempts {
                    failed.push((attempt, format!("gave up after {count} attempts; last: {error}")));
                } else {
                    retry.push((attempt, error.clone(), *next));
                }
            }
            Outcome::Failed { error } => failed.push((attempt, error.clone())),
            Outcome::Unsent => unsent.push(attempt),
        }
    }
    let txn = db::begin_write(db).await?;
    let backend = txn.get_database_backend();
    let now = db::now();
    let mut settled: Vec<(&Attempt, &'static str)> = Vec::new();

    for group in sent.chunks(GROUP) {
        let sql = format!(
            "UPDATE outbox SET status = ?, sent_at = ?, attempts = attempts + 1, lease_until = NULL, \
             last_error = NULL, updated_at = ? WHERE lease_owner = ? AND id IN ({}) RETURNING id",
            marks(group.len())
        );
        let mut values: Vec<Value> = vec![SENT.into(), now.into(), now.into(), owner.into()];
        values.extend(group.iter().map(|a| Value::from(a.id)));
        let kept = updated_ids(&txn, backend, &sql, values).await?;
        settled.extend(group.iter().filter(|a| kept.contains(&a.id)).map(|a| (*a, "mail.sent")));
    }
    for group in failed.chunks(GROUP) {
        let sql = format!(
            "UPDATE outbox SET status = ?, sent_at = NULL, attempts = attempts + 1, lease_until = NULL, \
             last_error = CASE id{} END, updated_at = ? WHERE lease_owner = ? AND id IN ({}) RETURNING id",
            " WHEN ? THEN ?".repeat(group.len()),
            marks(group.len())
        );
        let mut values: Vec<Value> = vec![FAILED.into()];
        for (attempt, error) in group {
            values.extend([Value::from(attempt.id), Value::from(error.as_str())]);
        }
        values.extend([Value::from(now), Value::from(owner)]);
        values.extend(group.iter().map(|(a, _)| Value::from(a.id)));
        let kept = updated_ids(&txn, backend, &sql, values).await?;
        settled.extend(group.iter().filter(|(a, _)| kept.contains(&a.id)).map(|(a, _)| (*a, "mail.failed")));
    }
    for group in retry.chunks(GROUP) {
        let sql = format!(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = CASE id{} END, lease_until = NULL, \
             last_error = CASE id{} END, updated_at = ? WHERE lease_owner = ? AND id IN ({})",
            " WHEN ? THEN ?".repeat(group.len()),
            " WHEN ? THEN ?".repeat(group.len()),
            marks(group.len())
        );
        let mut values: Vec<Value> = Vec::with_capacity(group.len() * 5 + 2);
        for (attempt, _, next) in group {
            values.extend([Value::from(attempt.id), Value::from(*next)]);
        }
        for (attempt, error, _) in group {
            values.extend([Value::from(attempt.id), Value::from(error.as_str())]);
        }
        values.extend([Value::from(now), Value::from(owner)]);
        values.extend(group.iter().map(|(a, _, _)| Value::from(a.id)));
        txn.execute_raw(Statement::from_sql_and_values(backend, db::placeholders(backend, &sql), values)).await?;
    }
    for group in unsent.chunks(GROUP) {
        let sql = format!(
            "UPDATE outbox SET lease_until = NULL, updated_at = ? WHERE lease_owner = ? AND id IN ({})",
            marks(group.len())
        );
        let mut values: Vec<Value> = vec![now.into(), owner.into()];
        values.extend(group.iter().map(|a| Value::from(a.id)));
        txn.execute_raw(Statement::from_sql_and_values(backend, db::placeholders(backend, &sql), values)).await?;
    }

    // The server's error can quote the recipient's address; it stays on the
    // outbox row, out of the timeline.
    let entries = settled.iter().map(|(attempt, action)| {
        let subject = Subject { entity: "email", entity_id: Some(attempt.id), case_id: attempt.case_id };
        (*action, subject, json!({ "kind": attempt.kind, "to": recipient_role(&attempt.kind) }))
    });
    audit::record_many(&txn, &system(), entries).await?;
    txn.commit().await?;
    Ok(())
}

fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Runs an UPDATE … RETURNING id and gives the ids it changed.
async fn updated_ids(
    txn: &DatabaseTransaction,
    backend: DbBackend,
    sql: &str,
    values: Vec<Value>,
) -> AppResult<HashSet<i32>> {
    let rows =
        txn.query_all_raw(Statement::from_sql_and_values(backend, db::placeholders(backend, sql), values)).await?;
    let mut ids = HashSet::with_capacity(rows.len());
    for row in rows {
        ids.insert(row.try_get::<i32>("", "id")?);
    }
    Ok(ids)
}

fn recipient_role(kind: &str) -> &'static str {
    match kind {
        "records_nudge" | "consultation_reminder" | "report_request" => "patient",
        "weekly_summary" => "admin",
        "password_reset" => "staff",
        _ => "advocate",
    }
}

/// An admin sends a failed email again.
pub async fn retry(db: &DatabaseConnection, actor: &Actor, id: i32) -> AppResult<()> {
    if !actor.is_admin() {
        return Err(AppError::Forbidden("only admins can retry emails".into()));
    }
    let txn = db::begin_write(db).await?;
    let row = outbox_message::Entity::find_by_id(id).one(&txn).await?.ok_or(AppError::NotFound)?;
    if row.status != FAILED {
        return Err(AppError::conflict("not_failed", "only failed emails can be retried"));
    }
    let now = db::now();
    outbox_message::Entity::update_many()
        .col_expr(outbox_message::Column::Status, Expr::value(QUEUED))
        .col_expr(outbox_message::Column::Attempts, Expr::value(0))
        .col_expr(outbox_message::Column::NextAttemptAt, Expr::value(now))
        .col_expr(outbox_message::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(outbox_message::Column::UpdatedAt, Expr::value(now))
        .filter(outbox_message::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    let subject = Subject { entity: "email", entity_id: Some(id), case_id: row.case_id };
    audit::record(&txn, actor, "mail.retry", subject, json!({ "kind": row.kind })).await?;
    txn.commit().await?;
    Ok(())
}

/// The newest emails with a status, for the admin page.
pub async fn list(db: &DatabaseConnection, status: &str, limit: u64) -> AppResult<Vec<outbox_message::Model>> {
    Ok(outbox_message::Entity::find()
        .filter(outbox_message::Column::Status.eq(status))
        .order_by_desc(outbox_message::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// Backoff before attempt `attempts + 1`: base × 2^attempts, capped at six
/// hours, plus up to a quarter more at random so retries spread out.
pub fn next_attempt(now: DateTime<Utc>, base: Duration, attempts: i32, jitter: f64) -> DateTime<Utc> {
    let factor = 2i64.saturating_pow(u32::try_from(attempts.clamp(0, 20)).unwrap_or(20));
    let delay = base
        .checked_mul(i32::try_from(factor).unwrap_or(i32::MAX))
        .unwrap_or(Duration::hours(6))
        .min(Duration::hours(6));
    let extra = Duration::milliseconds((delay.num_milliseconds() as f64 * 0.25 * jitter.clamp(0.0, 1.0)) as i64);
    now + delay + extra
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        let now = db::now();
        let base = Duration::minutes(1);
        assert_eq!(next_attempt(now, base, 0, 0.0), now + Duration::minutes(1));
        assert_eq!(next_attempt(now, base, 3, 0.0), now + Duration::minutes(8));
        assert_eq!(next_attempt(now, base, 3, 1.0), now + Duration::minutes(10));
        assert_eq!(next_attempt(now, base, 30, 0.0), now + Duration::hours(6));
    }
}
