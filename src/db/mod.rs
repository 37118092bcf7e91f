//! The database: connecting (SQLite or PostgreSQL), migrating, and starting
//! write transactions that behave the same on both.

pub mod entities;

use std::{path::Path, str::FromStr};

use chrono::{DateTime, SubsecRound, Utc};
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::config::DatabaseSettings;

/// Opens the pool. For SQLite the file and its folder are created, WAL is
/// switched on with `synchronous=NORMAL` (durable at each checkpoint, safe
/// against corruption), and foreign keys are enforced.
pub async fn connect(settings: &DatabaseSettings) -> Result<DatabaseConnection, DbErr> {
    let url = settings.url.trim();
    if url.starts_with("sqlite:") {
        ensure_sqlite_folder(url)?;
    }
    let mut options = ConnectOptions::new(url.to_string());
    options
        .max_connections(settings.max_connections)
        .min_connections(0)
        .acquire_timeout(settings.acquire_timeout)
        // Statements carry patient data: keep them out of the logs.
        .sqlx_logging(false);
    let busy = settings.sqlite_busy_timeout;
    options.map_sqlx_sqlite_opts(move |opts| {
        opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
            .busy_timeout(busy)
            .foreign_keys(true)
    });
    Database::connect(options).await
}

fn ensure_sqlite_folder(url: &str) -> Result<(), DbErr> {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    let _ = sea_orm::sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .map_err(|e| DbErr::Custom(format!("invalid SQLite URL: {e}")))?;
    if let Some(parent) = Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| DbErr::Custom(format!("cannot create database folder {}: {e}", parent.display())))?;
    }
    Ok(())
}

/// Key of the PostgreSQL advisory lock that lets one instance migrate at a time.
const MIGRATION_LOCK: i64 = 0x5345_434f_4e44;

/// Runs pending migrations so that processes starting together take turns.
/// SQLite: all pending migrations in one `BEGIN IMMEDIATE` transaction.
/// PostgreSQL: an advisory lock held by an open transaction on one pooled
/// connection while the migrations run (each in its own transaction) on others.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() == DbBackend::Sqlite {
        let txn = begin_write(db).await?;
        Migrator::up(&txn, None).await?;
        return txn.commit().await;
    }
    let lock = db.begin().await?;
    lock.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")).await?;
    let result = Migrator::up(db, None).await;
    lock.commit().await?;
    result
}

/// Starts a transaction that will write. SQLite takes the write lock at once
/// (`BEGIN IMMEDIATE`), so a transaction never fails half-way when it turns
/// from reading to writing while another writer is active; it waits for the
/// busy timeout instead.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let options = match db.get_database_backend() {
        DbBackend::Sqlite => TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        },
        _ => TransactionOptions::default(),
    };
    db.begin_with_options(options).await
}

/// Answers whether the database is reachable.
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.execute_unprepared("SELECT 1").await.is_ok()
}

/// The current time at the precision both databases store (microseconds),
/// so values read back compare equal to the values written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Rewrites `?` placeholders as `$1, $2…` for PostgreSQL, so hand-written
/// SQL can be shared by both databases.
pub fn placeholders(backend: DbBackend, sql: &str) -> String {
    if backend != DbBackend::Postgres {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_only() {
        assert_eq!(placeholders(DbBackend::Postgres, "a = ? AND b < ?"), "a = $1 AND b < $2");
        assert_eq!(placeholders(DbBackend::Sqlite, "a = ? AND b < ?"), "a = ? AND b < ?");
    }
}
