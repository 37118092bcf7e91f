//! The case journal: notes and the contact log. Entries are added and read
//! under the same access rules as the case; adding one locks the case like
//! any other case write and leaves an audit entry saying what was added, not
//! what it says. A contact may carry a follow-up date, which keeps it on the
//! advocate's list until it is marked done.

use chrono::{Duration, NaiveDate, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, FromQueryResult,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::store::{self, VIEWED};
use crate::{
    actor::Actor,
    audit::{Subject, reads::ReadTrail},
    db::{
        self,
        entities::{case_contact, case_note, user},
    },
    error::{AppError, AppResult, FieldErrors},
    ids::CaseId,
    validate::{check_text, limits},
    vocabulary::{ContactChannel, ContactDirection, ContactParty},
};

/// Audit actions of the journal.
pub const NOTE_ADDED: &str = "case.note";
pub const CONTACT_LOGGED: &str = "case.contact";
pub const FOLLOW_UP_DONE: &str = "case.follow_up_done";

/// The most entries one read returns, newest first.
pub const MAX_ENTRIES: u64 = 500;

/// How far ahead a follow-up may be set.
const FOLLOW_UP_HORIZON_DAYS: i64 = 730;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteInput {
    pub body: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    pub with: ContactParty,
    pub channel: ContactChannel,
    pub direction: ContactDirection,
    pub summary: String,
    #[serde(default)]
    pub follow_up_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Author {
    pub id: i32,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NoteView {
    pub id: i32,
    pub case_id: i32,
    pub body: String,
    pub author: Option<Author>,
    pub created_at: chrono::DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContactView {
    pub id: i32,
    pub case_id: i32,
    pub with: ContactParty,
    pub channel: ContactChannel,
    pub direction: ContactDirection,
    pub summary: String,
    pub follow_up_on: Option<NaiveDate>,
    pub done_at: Option<chrono::DateTime<Utc>>,
    pub done_by: Option<Author>,
    pub author: Option<Author>,
    pub created_at: chrono::DateTime<Utc>,
}

pub async fn add_note(
    db: &DatabaseConnection,
    actor: &Actor,
    case_id: CaseId,
    input: NoteInput,
) -> AppResult<NoteView> {
    let mut errors = FieldErrors::new();
    check_text(&mut errors, "body", &input.body, limits::LONG_TEXT, true);
    errors.into_result()?;
    let case_id = case_id.get();
    let w = store::begin_case_write(db, actor, case_id, NOTE_ADDED).await?;
    let row = case_note::ActiveModel {
        case_id: Set(case_id),
        body: Set(input.body),
        author_id: Set(actor.user_id),
        created_at: Set(w.now),
        ..Default::default()
    }
    .insert(&w.txn)
    .await?;
    w.commit_with(actor, Default::default(), NOTE_ADDED, json!({ "note_id": row.id })).await?;
    let authors = authors(db, [row.author_id]).await?;
    Ok(note_view(row, &authors))
}

pub async fn add_contact(
    db: &DatabaseConnection,
    actor: &Actor,
    case_id: CaseId,
    input: ContactInput,
) -> AppResult<ContactView> {
    let mut errors = FieldErrors::new();
    check_text(&mut errors, "summary", &input.summary, limits::LONG_TEXT, true);
    if let Some(on) = input.follow_up_on {
        // A day of slack either side of UTC's today: the advocate's today may differ.
        let today = Utc::now().date_naive();
        if on < today - Duration::days(1) {
            errors.add("follow_up_on", "is in the past");
        } else if on > today + Duration::days(FOLLOW_UP_HORIZON_DAYS) {
            errors.add("follow_up_on", "must be within two years");
        }
    }
    errors.into_result()?;
    let case_id = case_id.get();
    let w = store::begin_case_write(db, actor, case_id, CONTACT_LOGGED).await?;
    let row = case_contact::ActiveModel {
        case_id: Set(case_id),
        party: Set(input.with),
        channel: Set(input.channel),
        direction: Set(input.direction),
        summary: Set(input.summary),
        follow_up_on: Set(input.follow_up_on),
        done_at: Set(None),
        done_by: Set(None),
        author_id: Set(actor.user_id),
        created_at: Set(w.now),
        ..Default::default()
    }
    .insert(&w.txn)
    .await?;
    let detail = json!({
        "contact_id": row.id, "with": row.party, "channel": row.channel, "direction": row.direction,
        "follow_up_on": row.follow_up_on,
    });
    w.commit_with(actor, Default::default(), CONTACT_LOGGED, detail).await?;
    let authors = authors(db, [row.author_id]).await?;
    Ok(contact_view(row, &authors))
}

/// Marks a contact's follow-up done. Marking it again changes nothing.
pub async fn follow_up_done(
    db: &DatabaseConnection,
    actor: &Actor,
    case_id: CaseId,
    contact_id: i32,
) -> AppResult<ContactView> {
    let case_id = case_id.get();
    let w = store::begin_case_write(db, actor, case_id, FOLLOW_UP_DONE).await?;
    let found = case_contact::Entity::find_by_id(contact_id)
        .filter(case_contact::Column::CaseId.eq(case_id))
        .one(&w.txn)
        .await?
        .ok_or(AppError::NotFound)?;
    if found.follow_up_on.is_none() {
        return Err(AppError::conflict("no_follow_up", "this contact has no follow-up to mark done"));
    }
    let row = if found.done_at.is_some() {
        w.txn.rollback().await?;
        found
    } else {
        let mut changes = case_contact::ActiveModel { id: Set(found.id), ..Default::default() };
        changes.done_at = Set(Some(w.now));
        changes.done_by = Set(actor.user_id);
        let row = changes.update(&w.txn).await?;
        let detail = json!({ "contact_id": row.id, "follow_up_on": row.follow_up_on });
        w.commit_with(actor, Default::default(), FOLLOW_UP_DONE, detail).await?;
        row
    };
    let authors = authors(db, [row.author_id, row.done_by]).await?;
    Ok(contact_view(row, &authors))
}

/// The case's notes, newest first (at most [`MAX_ENTRIES`]); the read is audited.
pub async fn notes(
    db: &DatabaseConnection,
    reads: &ReadTrail,
    actor: &Actor,
    case_id: CaseId,
) -> AppResult<Vec<NoteView>> {
    let case_id = case_id.get();
    store::check_access(db, actor, case_id, VIEWED).await?;
    reads.record(actor, VIEWED, Subject::case(case_id), json!({ "part": "notes" })).await?;
    let rows = notes_of(db, case_id).await?;
    let authors = authors(db, rows.iter().map(|r| r.author_id)).await?;
    Ok(rows.into_iter().map(|row| note_view(row, &authors)).collect())
}

/// The case's contacts, newest first (at most [`MAX_ENTRIES`]); the read is audited.
pub async fn contacts(
    db: &DatabaseConnection,
    reads: &ReadTrail,
    actor: &Actor,
    case_id: CaseId,
) -> AppResult<Vec<ContactView>> {
    let case_id = case_id.get();
    store::check_access(db, actor, case_id, VIEWED).await?;
    reads.record(actor, VIEWED, Subject::case(case_id), json!({ "part": "contacts" })).await?;
    let rows = contacts_of(db, case_id).await?;
    let authors = authors(db, rows.iter().flat_map(|r| [r.author_id, r.done_by])).await?;
    Ok(rows.into_iter().map(|row| contact_view(row, &authors)).collect())
}

/// Notes of a case the caller already may see, newest first, without an audit entry.
pub async fn notes_of<C: ConnectionTrait>(conn: &C, case_id: i32) -> AppResult<Vec<case_note::Model>> {
    Ok(case_note::Entity::find()
        .filter(case_note::Column::CaseId.eq(case_id))
        .order_by_desc(case_note::Column::Id)
        .limit(MAX_ENTRIES)
        .all(conn)
        .await?)
}

/// Contacts of a case the caller already may see, newest first, without an audit entry.
pub async fn contacts_of<C: ConnectionTrait>(conn: &C, case_id: i32) -> AppResult<Vec<case_contact::Model>> {
    Ok(case_contact::Entity::find()
        .filter(case_contact::Column::CaseId.eq(case_id))
        .order_by_desc(case_contact::Column::Id)
        .limit(MAX_ENTRIES)
        .all(conn)
        .await?)
}

/// Names of the staff who wrote entries, by id.
pub async fn authors<C: ConnectionTrait>(
    conn: &C,
    ids: impl IntoIterator<Item = Option<i32>>,
) -> AppResult<Vec<Author>> {
    let mut ids: Vec<i32> = ids.into_iter().flatten().collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(i32, String)> = user::Entity::find()
        .select_only()
        .columns([user::Column::Id, user::Column::Name])
        .filter(user::Column::Id.is_in(ids))
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows.into_iter().map(|(id, name)| Author { id, name }).collect())
}

fn author(id: Option<i32>, authors: &[Author]) -> Option<Author> {
    let id = id?;
    authors.iter().find(|a| a.id == id).cloned()
}

pub fn note_view(row: case_note::Model, authors: &[Author]) -> NoteView {
    NoteView {
        id: row.id,
        case_id: row.case_id,
        author: author(row.author_id, authors),
        body: row.body,
        created_at: row.created_at,
    }
}

pub fn contact_view(row: case_contact::Model, authors: &[Author]) -> ContactView {
    ContactView {
        id: row.id,
        case_id: row.case_id,
        with: row.party,
        channel: row.channel,
        direction: row.direction,
        follow_up_on: row.follow_up_on,
        done_at: row.done_at,
        done_by: author(row.done_by, authors),
        author: author(row.author_id, authors),
        summary: row.summary,
        created_at: row.created_at,
    }
}

/// A follow-up still to do, as the due lists show it: the case, when, and
/// who it is with — not what the contact was about.
#[derive(Debug, Clone, FromQueryResult)]
pub struct FollowUpDue {
    pub contact_id: i32,
    pub case_id: i32,
    pub reference: String,
    pub patient_name: String,
    pub follow_up_on: NaiveDate,
    pub party: ContactParty,
    pub channel: ContactChannel,
}

impl FollowUpDue {
    /// Who the follow-up is with and how, as the lists word it: "Provider by fax".
    pub fn with_whom(&self) -> String {
        format!("{} by {}", self.party.label(), self.channel.label().to_lowercase())
    }
}

/// Follow-ups not yet done that fall on or before `through`, oldest first,
/// on cases in `scope` whose patient data is kept. Walks the partial index
/// of open follow-ups in date order and looks each one's case up by its key.
pub async fn follow_ups_due<C: ConnectionTrait>(
    conn: &C,
    scope: &super::scope::CaseScope,
    through: NaiveDate,
    limit: u64,
) -> AppResult<Vec<FollowUpDue>> {
    let backend = conn.get_database_backend();
    let scope_sql = scope.sql("c");
    let case_lookup = match backend {
        sea_orm::DbBackend::Postgres => format!(
            " CROSS JOIN LATERAL (SELECT c.reference, c.patient_name FROM cases c \
             WHERE c.id = k.case_id AND c.erased_at IS NULL{scope_sql} LIMIT 1) c WHERE"
        ),
        _ => format!(" CROSS JOIN cases c WHERE c.id = k.case_id AND c.erased_at IS NULL{scope_sql} AND"),
    };
    let sql = format!(
        "SELECT k.id AS contact_id, k.case_id, c.reference, c.patient_name, k.follow_up_on, k.party, k.channel \
         FROM case_contacts k{case_lookup} k.done_at IS NULL AND k.follow_up_on IS NOT NULL AND k.follow_up_on <= ? \
         ORDER BY k.follow_up_on, k.case_id LIMIT {limit}"
    );
    Ok(FollowUpDue::find_by_statement(sea_orm::Statement::from_sql_and_values(
        backend,
        db::placeholders(backend, &sql),
        [sea_orm::Value::from(through)],
    ))
    .all(conn)
    .await?)
}
