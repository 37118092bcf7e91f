//! The audit trail: who did what to which record, when, and from where.
//! Entries are written in the same transaction as the change they describe,
//! so a change and its entry commit or fail together; entries about reads and
//! refusals get a transaction of their own. `chain` seals every entry into a
//! hash chain; `search` reads the trail back for admins.
//!
//! Details hold ids, enum words, names of changed fields and counts — never
//! free text typed about a patient, which is health information.

pub mod chain;
pub mod reads;
pub mod search;

use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr};
use serde_json::Value;

use crate::{actor::Actor, db, db::entities::audit_entry};

pub use chain::{Verification, verify};
pub use search::{AuditFilter, AuditPage};

/// Where an entry is written: inside the caller's transaction, or — given
/// the bare connection — in a write transaction of its own.
pub enum Target<'a> {
    Transaction(&'a DatabaseTransaction),
    Connection(&'a DatabaseConnection),
}

impl<'a> From<&'a DatabaseTransaction> for Target<'a> {
    fn from(txn: &'a DatabaseTransaction) -> Self {
        Target::Transaction(txn)
    }
}

impl<'a> From<&'a db::WriteTransaction> for Target<'a> {
    fn from(txn: &'a db::WriteTransaction) -> Self {
        Target::Transaction(txn)
    }
}

impl<'a> From<&'a DatabaseConnection> for Target<'a> {
    fn from(db: &'a DatabaseConnection) -> Self {
        Target::Connection(db)
    }
}

/// Every action the trail records, for choosing one in a filter.
pub const ACTIONS: &[&str] = &[
    "access.denied",
    "audit.export",
    "auth.password_reset_refused",
    "auth.sign_in",
    "auth.sign_in_failed",
    "auth.sign_in_refused",
    "auth.sign_out",
    "case.comparison",
    "case.consultation",
    "case.contact",
    "case.create",
    "case.decision",
    "case.erased",
    "case.exported",
    "case.follow_up_done",
    "case.hold",
    "case.list",
    "case.note",
    "case.nudges_stopped",
    "case.opinion",
    "case.record",
    "case.resume",
    "case.specialist",
    "case.transition",
    "case.update",
    "case.viewed",
    "database.backed_up",
    "database.exported",
    "database.imported",
    "demo.fill",
    "mail.failed",
    "mail.retry",
    "mail.sent",
    "specialist.create",
    "specialist.update",
    "token.create",
    "token.revoke",
    "user.create",
    "user.password_changed",
    "user.password_reset",
    "user.password_reset_requested",
    "user.update",
];

/// Audit action for a person listing or searching cases.
pub const LISTED: &str = "case.list";

/// Names the sender of a sign-in attempt by the email they typed without
/// storing it: a typo can be someone else's address, or a password typed
/// into the wrong box. Attempts with the same email share a label, so
/// repeated tries still stand out.
pub fn typed_email_label(email: &str) -> String {
    typed_email_label_in("sign-in", email)
}

/// [`typed_email_label`] for an email typed into another form, named by `form`
/// (`password-reset:…`).
pub fn typed_email_label_in(form: &str, email: &str) -> String {
    if email.is_empty() {
        return format!("{form}:(no email)");
    }
    let digest = crate::secrets::digest(email);
    format!("{form}:{}", &digest[..16])
}

/// What an entry is about.
#[derive(Debug, Clone, Copy)]
pub struct Subject {
    pub entity: &'static str,
    pub entity_id: Option<i32>,
    pub case_id: Option<i32>,
}

impl Subject {
    pub fn case(case_id: i32) -> Self {
        Self { entity: "case", entity_id: Some(case_id), case_id: Some(case_id) }
    }

    pub fn of(entity: &'static str, entity_id: i32) -> Self {
        Self { entity, entity_id: Some(entity_id), case_id: None }
    }

    /// Something without a row of its own, such as a route or a list.
    pub fn named(entity: &'static str) -> Self {
        Self { entity, entity_id: None, case_id: None }
    }
}

/// Adds an entry to the end of the trail: inside a given transaction, so it
/// commits or rolls back with the change; given the connection, in a write
/// transaction of its own.
pub async fn record<'a>(
    target: impl Into<Target<'a>>,
    actor: &Actor,
    action: &str,
    subject: Subject,
    detail: Value,
) -> Result<(), DbErr> {
    record_entry(target, actor, action, subject, detail, None).await
}

/// [`record`] for a change made at `at` (the write's own clock), so the
/// entry and the rows it describes carry the same time. The chain still
/// never runs backwards: an earlier `at` than the last entry's is raised to it.
pub async fn record_at<'a>(
    target: impl Into<Target<'a>>,
    actor: &Actor,
    action: &str,
    subject: Subject,
    detail: Value,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), DbErr> {
    record_entry(target, actor, action, subject, detail, Some(at)).await
}

/// Adds entries by one actor to the end of the trail inside `txn`, written
/// and sealed together: cheaper than one [`record`] each when a batch of
/// changes commits at once.
pub async fn record_many<'a>(
    txn: &DatabaseTransaction,
    actor: &Actor,
    entries: impl IntoIterator<Item = (&'a str, Subject, Value)>,
) -> Result<(), DbErr> {
    let models =
        entries.into_iter().map(|(action, subject, detail)| model(actor, action, subject, detail, None)).collect();
    chain::append_many(txn, models).await
}

fn model(
    actor: &Actor,
    action: &str,
    subject: Subject,
    detail: Value,
    at: Option<chrono::DateTime<chrono::Utc>>,
) -> audit_entry::ActiveModel {
    audit_entry::ActiveModel {
        at: at.map_or(sea_orm::ActiveValue::NotSet, Set),
        actor_id: Set(actor.user_id),
        actor: Set(actor.label.clone()),
        action: Set(action.to_string()),
        entity: Set(subject.entity.to_string()),
        entity_id: Set(subject.entity_id),
        case_id: Set(subject.case_id),
        ip: Set(actor.ip.clone()),
        detail: Set(detail.to_string()),
        ..Default::default()
    }
}

async fn record_entry<'a>(
    target: impl Into<Target<'a>>,
    actor: &Actor,
    action: &str,
    subject: Subject,
    detail: Value,
    at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<(), DbErr> {
    let entry = model(actor, action, subject, detail, at);
    match target.into() {
        Target::Transaction(txn) => chain::append(txn, entry).await,
        Target::Connection(db) => {
            let txn = db::begin_write(db).await?;
            chain::append(&txn, entry).await?;
            txn.commit().await
        }
    }
}

/// Records a refused access on its own, outside any transaction that is
/// being rolled back. A failure to write it is logged, not raised: the caller
/// is already answering with a refusal.
pub async fn record_denied(db: &DatabaseConnection, actor: &Actor, subject: Subject, what: &str) {
    let detail = serde_json::json!({ "attempted": what });
    if let Err(err) = record(db, actor, "access.denied", subject, detail).await {
        tracing::error!(error = %err, "could not write the audit entry for a refused access");
    }
    tracing::warn!(actor = %actor.label, entity = subject.entity, entity_id = ?subject.entity_id, attempted = what, "access refused");
}

/// The trail of one case, newest first, leaving out the `skip` actions.
/// The caller has checked access.
pub async fn for_case<C: ConnectionTrait>(
    conn: &C,
    case_id: i32,
    skip: &[&str],
    limit: u64,
) -> Result<Vec<audit_entry::Model>, DbErr> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
    audit_entry::Entity::find()
        .filter(audit_entry::Column::CaseId.eq(case_id))
        .filter(audit_entry::Column::Action.is_not_in(skip.iter().map(|s| s.to_string())))
        .order_by_desc(audit_entry::Column::Id)
        .limit(limit)
        .all(conn)
        .await
}
