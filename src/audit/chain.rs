//! The hash chain that makes the audit log tamper-evident.
//!
//! Each entry stores `prev_hash` (the `hash` of the entry before it in id
//! order, or [`GENESIS`] for the first) and `hash` = SHA-256 over
//! `prev_hash` and an unambiguous encoding of the entry's stored columns. The
//! hash depends only on stored values, so a table copied row by row verifies
//! unchanged. Editing a row breaks its own hash; deleting one breaks the next
//! entry's link. Removing the newest entries, or emptying the hashes of all
//! chained entries (which then pass for entries older than the chain),
//! leaves no broken link — compare the counts `verify` reports with an
//! earlier run for that.
//!
//! Appends are serialised so that two writers never chain from the same
//! entry: on PostgreSQL with a transaction-scoped advisory lock taken right
//! before the append and released at commit; on SQLite every write
//! transaction already holds the database's write lock (`db::begin_write`).

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use sha2::{Digest, Sha256};

use crate::db::entities::audit_entry;

/// `prev_hash` of the first chained entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Key of the PostgreSQL advisory lock that serialises appends.
const CHAIN_LOCK: i64 = 0x5345_434f_4e44_4155;

/// Entries read per query while verifying.
const VERIFY_BATCH: u64 = 1000;

/// Versions the encoding, so a future change of fields cannot collide with it.
const DOMAIN: &[u8] = b"secondlook.audit.v1";

fn put(buf: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        None => buf.push(0),
        Some(bytes) => {
            buf.push(1);
            buf.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            buf.extend_from_slice(bytes);
        }
    }
}

/// The hash an entry must carry, from its stored columns and `prev_hash`.
/// Each field is written as a presence byte, then a length and the bytes, so
/// no two different entries encode alike. `at` counts microseconds since the
/// epoch, the precision both databases store.
pub fn entry_hash(entry: &audit_entry::Model) -> String {
    let mut buf = Vec::with_capacity(256 + entry.detail.len());
    put(&mut buf, Some(DOMAIN));
    put(&mut buf, entry.prev_hash.as_deref().map(str::as_bytes));
    put(&mut buf, Some(entry.id.to_string().as_bytes()));
    put(&mut buf, Some(entry.at.timestamp_micros().to_string().as_bytes()));
    put(&mut buf, entry.actor_id.map(|id| id.to_string()).as_deref().map(str::as_bytes));
    put(&mut buf, Some(entry.actor.as_bytes()));
    put(&mut buf, Some(entry.action.as_bytes()));
    put(&mut buf, Some(entry.entity.as_bytes()));
    put(&mut buf, entry.entity_id.map(|id| id.to_string()).as_deref().map(str::as_bytes));
    put(&mut buf, entry.case_id.map(|id| id.to_string()).as_deref().map(str::as_bytes));
    put(&mut buf, entry.ip.as_deref().map(str::as_bytes));
    put(&mut buf, Some(entry.detail.as_bytes()));
    crate::secrets::hex(&Sha256::digest(&buf))
}

/// Inserts `entry` at the end of the chain, inside `txn`.
pub(super) async fn append(txn: &DatabaseTransaction, entry: audit_entry::ActiveModel) -> Result<(), DbErr> {
    append_many(txn, vec![entry]).await
}

/// Most entries sealed by one statement, well below what either database
/// accepts as bound parameters (five per entry).
const SEAL_BATCH: usize = 500;

/// Inserts `entries` at the end of the chain, inside `txn`, with one insert
/// and one sealing update per [`SEAL_BATCH`] entries rather than two
/// statements each.
pub(super) async fn append_many(
    txn: &DatabaseTransaction,
    entries: Vec<audit_entry::ActiveModel>,
) -> Result<(), DbErr> {
    if entries.is_empty() {
        return Ok(());
    }
    let backend = txn.get_database_backend();
    if backend == DbBackend::Postgres {
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({CHAIN_LOCK})")).await?;
    }
    let last: Option<(Option<String>, DateTime<Utc>)> = audit_entry::Entity::find()
        .select_only()
        .column(audit_entry::Column::Hash)
        .column(audit_entry::Column::At)
        .order_by_desc(audit_entry::Column::Id)
        .limit(1)
        .into_tuple()
        .one(txn)
        .await?;
    let (last_hash, last_at) = last.unzip();
    // After only unchained (older) entries, or none, the chain starts here.
    let mut prev = last_hash.flatten().unwrap_or_else(|| GENESIS.to_string());
    // Times never run backwards along the chain, even when the clock is set
    // back, so a time range is an id range (see `search`). Entries added
    // together share one time, so their order among themselves cannot break it.
    let wanted = entries
        .iter()
        .map(|entry| match &entry.at {
            sea_orm::ActiveValue::Set(at) | sea_orm::ActiveValue::Unchanged(at) => *at,
            sea_orm::ActiveValue::NotSet => crate::db::now(),
        })
        .max()
        .unwrap_or_else(crate::db::now);
    let at = last_at.map_or(wanted, |last| wanted.max(last));
    let mut pending = entries;
    while !pending.is_empty() {
        let rest = pending.split_off(pending.len().min(SEAL_BATCH));
        let batch: Vec<audit_entry::ActiveModel> = pending
            .into_iter()
            .map(|mut entry| {
                entry.at = Set(at);
                entry.prev_hash = Set(None);
                entry.hash = Set(None);
                entry
            })
            .collect();
        let count = batch.len();
        // Ids are only known once inserted; the links and hashes are filled
        // in right after, in the same transaction, so no one ever sees an
        // entry without them.
        let mut stored = audit_entry::Entity::insert_many(batch).exec_with_returning(txn).await?;
        if stored.len() != count {
            return Err(DbErr::Custom(format!("{count} audit entries written, {} read back", stored.len())));
        }
        stored.sort_by_key(|entry| entry.id);
        let mut links: Vec<sea_orm::Value> = Vec::with_capacity(count * 2);
        let mut hashes: Vec<sea_orm::Value> = Vec::with_capacity(count * 2);
        let mut ids: Vec<sea_orm::Value> = Vec::with_capacity(count);
        for entry in &mut stored {
            entry.prev_hash = Some(std::mem::take(&mut prev));
            let hash = entry_hash(entry);
            links.extend([entry.id.into(), entry.prev_hash.clone().into()]);
            hashes.extend([entry.id.into(), hash.clone().into()]);
            ids.push(entry.id.into());
            prev = hash;
        }
        let cases = |n: usize| " WHEN ? THEN ?".repeat(n);
        let sql = format!(
            "UPDATE audit_log SET prev_hash = CASE id{} END, hash = CASE id{} END WHERE id IN ({})",
            cases(count),
            cases(count),
            vec!["?"; count].join(", ")
        );
        let values: Vec<sea_orm::Value> = links.into_iter().chain(hashes).chain(ids).collect();
        let statement = Statement::from_sql_and_values(backend, crate::db::placeholders(backend, &sql), values);
        let updated = txn.execute_raw(statement).await?;
        if updated.rows_affected() != count as u64 {
            return Err(DbErr::Custom(format!("{count} audit entries written, {} sealed", updated.rows_affected())));
        }
        pending = rest;
    }
    Ok(())
}

/// What a walk along the chain found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    /// Chained entries whose link and hash are right.
    pub verified: u64,
    /// Entries from before the chain existed, at the start of the log.
    pub unchained: u64,
    /// The first entry whose link or hash is wrong: it was edited, or the
    /// entry before it was deleted or edited.
    pub first_bad: Option<i32>,
}

/// Walks the whole log in id order, a batch at a time, and stops at the
/// first broken link.
pub async fn verify(db: &DatabaseConnection) -> Result<Verification, DbErr> {
    let mut report = Verification::default();
    let mut prev: Option<String> = None;
    let mut after = 0;
    loop {
        let batch = audit_entry::Entity::find()
            .filter(audit_entry::Column::Id.gt(after))
            .order_by_asc(audit_entry::Column::Id)
            .limit(VERIFY_BATCH)
            .all(db)
            .await?;
        let Some(last) = batch.last() else { return Ok(report) };
        after = last.id;
        for entry in &batch {
            let Some(hash) = entry.hash.as_deref() else {
                if prev.is_none() {
                    report.unchained += 1;
                    continue;
                }
                report.first_bad = Some(entry.id);
                return Ok(report);
            };
            let expected_prev = prev.as_deref().unwrap_or(GENESIS);
            if entry.prev_hash.as_deref() != Some(expected_prev) || entry_hash(entry) != hash {
                report.first_bad = Some(entry.id);
                return Ok(report);
            }
            report.verified += 1;
            prev = Some(hash.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn entry() -> audit_entry::Model {
        audit_entry::Model {
            id: 7,
            at: Utc.timestamp_micros(1_790_000_000_123_456).single().expect("time"),
            actor_id: Some(3),
            actor: "ada@example.org".into(),
            action: "case.update".into(),
            entity: "case".into(),
            entity_id: Some(12),
            case_id: Some(12),
            ip: Some("127.0.0.1".into()),
            detail: r#"{"summary":{"changed":true}}"#.into(),
            prev_hash: Some(GENESIS.into()),
            hash: None,
        }
    }

    #[test]
    fn every_stored_field_changes_the_hash() {
        let base = entry_hash(&entry());
        assert_eq!(base.len(), 64);
        assert_eq!(base, entry_hash(&entry()), "the hash is deterministic");
        let changes: [fn(&mut audit_entry::Model); 11] = [
            |e| e.id = 8,
            |e| e.at += chrono::Duration::microseconds(1),
            |e| e.actor_id = None,
            |e| e.actor.push('x'),
            |e| e.action = "case.view".into(),
            |e| e.entity = "user".into(),
            |e| e.entity_id = None,
            |e| e.case_id = Some(13),
            |e| e.ip = None,
            |e| e.detail = "{}".into(),
            |e| e.prev_hash = Some("1".repeat(64)),
        ];
        for change in changes {
            let mut changed = entry();
            change(&mut changed);
            assert_ne!(entry_hash(&changed), base);
        }
    }

    #[test]
    fn moving_text_between_fields_changes_the_hash() {
        let mut a = entry();
        a.actor = "ab".into();
        a.action = "c".into();
        let mut b = entry();
        b.actor = "a".into();
        b.action = "bc".into();
        assert_ne!(entry_hash(&a), entry_hash(&b));
        // An absent value differs from an empty one.
        let mut none = entry();
        none.ip = None;
        let mut empty = entry();
        empty.ip = Some(String::new());
        assert_ne!(entry_hash(&none), entry_hash(&empty));
    }
}
