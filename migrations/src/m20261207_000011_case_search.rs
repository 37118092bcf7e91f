//! Case search: each case's searchable words (patient name, email, phone,
//! reference), folded to plain lower-case letters and digits, one row per
//! word, so a search reads an index range per word it is given instead of
//! every case. The words are derived data: `case_search_state` says they
//! were built for the cases that existed before this table, and the server
//! builds them at start-up when it is missing. The free-text `search_key`
//! column they replace goes. Also: the caseload's activity list leaves out
//! the routine "email sent" lines, so its partial index does too.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The activity list's condition, which its query repeats word for word.
const ACTIVITY_WITHOUT_MAIL: &str =
    "case_id IS NOT NULL AND action NOT IN ('case.viewed', 'access.denied', 'mail.sent')";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        // PostgreSQL compares the words byte by byte ("C"), as SQLite does, so a
        // prefix is one range of the index whatever the database's locale.
        let word_type = match manager.get_database_backend() {
            sea_orm::DbBackend::Postgres => "TEXT COLLATE \"C\"",
            _ => "TEXT",
        };
        let without_rowid = match manager.get_database_backend() {
            sea_orm::DbBackend::Sqlite => " WITHOUT ROWID",
            _ => "",
        };
        for sql in [
            format!(
                "CREATE TABLE case_search_terms (term {word_type} NOT NULL, \
                 case_id INTEGER NOT NULL REFERENCES cases (id), PRIMARY KEY (term, case_id)){without_rowid}"
            ),
            // A search checks each candidate's other words here, one seek
            // each; replacing a case's words deletes along it.
            "CREATE INDEX ix_case_search_terms_case ON case_search_terms (case_id, term)".to_string(),
            "CREATE TABLE case_search_state (id INTEGER NOT NULL PRIMARY KEY)".to_string(),
            // A database without cases has nothing to build.
            "INSERT INTO case_search_state (id) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM cases)".to_string(),
            "ALTER TABLE cases DROP COLUMN search_key".to_string(),
            // One batch, so one connection drops and makes the index.
            format!(
                "DROP INDEX ix_audit_activity; CREATE INDEX ix_audit_activity ON audit_log (id) WHERE {ACTIVITY_WITHOUT_MAIL}"
            ),
        ] {
            conn.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        for sql in [
            "DROP INDEX ix_audit_activity; CREATE INDEX ix_audit_activity ON audit_log (id) \
             WHERE case_id IS NOT NULL AND action NOT IN ('case.viewed', 'access.denied')",
            "ALTER TABLE cases ADD COLUMN search_key TEXT NOT NULL DEFAULT ''",
            // The old column held the lower-cased name and reference.
            "UPDATE cases SET search_key = LOWER(patient_name || ' ' || reference)",
            "DROP TABLE case_search_state",
            "DROP TABLE case_search_terms",
        ] {
            conn.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
