//! The outbox: every email is a row, unique by its reminder key, so queueing
//! twice never doubles an email. Senders claim rows with a lease (PostgreSQL:
//! `FOR UPDATE SKIP LOCKED`; SQLite: one atomic UPDATE), send, then mark
//! them; a lease that runs out (a crashed sender) is taken over.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, Value, prelude::Expr, sea_query::OnConflict,
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
    let now = db::now();
    let row = outbox_message::ActiveModel {
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
    };
    let inserted = outbox_message::Entity::insert(row)
        .on_conflict(OnConflict::column(outbox_message::Column::DedupeKey).do_nothing().to_owned())
        .exec_without_returning(conn)
        .await?;
    Ok(inserted > 0)
}

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
    let mut rows = outbox_message::Entity::find().from_raw_sql(stmt).all(db).await?;
    rows.sort_by_key(|r| (r.next_attempt_at, r.id));
    Ok(rows)
}

fn system() -> Actor {
    Actor::system("mailer")
}

/// Marks a claimed email sent, with its timeline entry, if this sender still holds it.
pub async fn mark_sent(db: &DatabaseConnection, row: &outbox_message::Model, owner: &str) -> AppResult<()> {
    settle(db, row, owner, SENT, None).await
}

/// Ends an email's attempts as sent or failed, writing its timeline entry in
/// the same transaction — unless another sender has since taken it over.
async fn settle(
    db: &DatabaseConnection,
    row: &outbox_message::Model,
    owner: &str,
    status: &'static str,
    error: Option<&str>,
) -> AppResult<()> {
    let txn = db::begin_write(db).await?;
    let now = db::now();
    let sent_at = (status == SENT).then_some(now);
    let updated = outbox_message::Entity::update_many()
        .col_expr(outbox_message::Column::Status, Expr::value(status))
        .col_expr(outbox_message::Column::SentAt, Expr::value(sent_at))
        .col_expr(outbox_message::Column::Attempts, Expr::value(row.attempts + 1))
        .col_expr(outbox_message::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(outbox_message::Column::LastError, Expr::value(error.map(str::to_string)))
        .col_expr(outbox_message::Column::UpdatedAt, Expr::value(now))
        .filter(outbox_message::Column::Id.eq(row.id))
        .filter(outbox_message::Column::LeaseOwner.eq(owner))
        .exec(&txn)
        .await?;
    if updated.rows_affected > 0 {
        let subject = Subject { entity: "email", entity_id: Some(row.id), case_id: row.case_id };
        let (action, detail) = match error {
            None => ("mail.sent", json!({ "kind": row.kind, "to": recipient_role(&row.kind) })),
            // The server's error can quote the recipient's address; it stays on the outbox row.
            Some(_) => ("mail.failed", json!({ "kind": row.kind, "to": recipient_role(&row.kind) })),
        };
        audit::record(&txn, &system(), action, subject, detail).await?;
    }
    txn.commit().await?;
    Ok(())
}

fn recipient_role(kind: &str) -> &'static str {
    match kind {
        "records_nudge" | "consultation_reminder" | "report_request" => "patient",
        "weekly_summary" => "admin",
        _ => "advocate",
    }
}

/// After a temporary failure: try again at `next`, or give up after `max_attempts`.
pub async fn mark_retry(
    db: &DatabaseConnection,
    row: &outbox_message::Model,
    owner: &str,
    error: &str,
    next: DateTime<Utc>,
    max_attempts: u32,
) -> AppResult<()> {
    let attempts = row.attempts + 1;
    if u32::try_from(attempts).unwrap_or(u32::MAX) >= max_attempts {
        return mark_failed(db, row, owner, &format!("gave up after {attempts} attempts; last: {error}")).await;
    }
    let now = db::now();
    outbox_message::Entity::update_many()
        .col_expr(outbox_message::Column::Attempts, Expr::value(attempts))
        .col_expr(outbox_message::Column::NextAttemptAt, Expr::value(next))
        .col_expr(outbox_message::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(outbox_message::Column::LastError, Expr::value(error))
        .col_expr(outbox_message::Column::UpdatedAt, Expr::value(now))
        .filter(outbox_message::Column::Id.eq(row.id))
        .filter(outbox_message::Column::LeaseOwner.eq(owner))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn mark_failed(
    db: &DatabaseConnection,
    row: &outbox_message::Model,
    owner: &str,
    error: &str,
) -> AppResult<()> {
    settle(db, row, owner, FAILED, Some(error)).await
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
