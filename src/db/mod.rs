//! The database: connecting (SQLite or PostgreSQL), migrating, starting
//! write transactions that behave the same on both, and telling apart the
//! failures that mean "storage unavailable, try again" from programming errors,
//! and writing many rows in few statements.

pub mod bulk;
pub mod entities;
mod write;

pub use write::{WriteTransaction, begin_write};

use std::{path::Path, str::FromStr};

use chrono::{DateTime, SubsecRound, Utc};
use futures_util::future::BoxFuture;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, RuntimeErr, TransactionTrait,
    sqlx::{Connection as _, sqlite::SqliteConnection},
};

use crate::config::DatabaseSettings;

/// Opens the pool. For SQLite the file and its folder are created, WAL is
/// switched on with `synchronous=NORMAL` (durable at each checkpoint, safe
/// against corruption), foreign keys are enforced, and each connection's
/// page cache and prepared statements are held to [`SQLITE_CACHE_KIB`] and
/// [`SQLITE_STATEMENTS_KEPT`].
pub async fn connect(settings: &DatabaseSettings) -> Result<DatabaseConnection, DbErr> {
    let url = settings.url.expose().trim();
    if settings.is_sqlite() {
        ensure_sqlite_folder(url)?;
    }
    let mut options = ConnectOptions::new(url.to_string());
    options
        .max_connections(settings.pool_size())
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
            .pragma("cache_size", format!("-{SQLITE_CACHE_KIB}"))
            .statement_cache_capacity(SQLITE_STATEMENTS_KEPT)
    });
    options.map_sqlx_sqlite_pool_opts(|pool| pool.after_release(|conn, _| release_sqlite(conn)));
    options.map_sqlx_postgres_pool_opts(|pool| {
        pool.after_release(|conn, _| {
            let clean = !conn.is_in_transaction();
            Box::pin(async move { Ok(keep_or_close(clean)) })
        })
    });
    Database::connect(options).await
}

/// Prepared statements each SQLite connection keeps, least recently used
/// dropped first. A busy page runs a handful; each kept statement holds its
/// compiled program (tens of KiB for the larger joins), so the driver's
/// default of 100 per connection made up most of the process's memory.
pub const SQLITE_STATEMENTS_KEPT: usize = 16;

/// Page cache per SQLite connection, in KiB. The hot pages are the indexes
/// the busy pages walk and the newest rows; beyond that the operating
/// system's file cache serves reads, so memory stays flat as cases grow.
pub const SQLITE_CACHE_KIB: u32 = 1024;

/// Whether a connection handed back to the pool may be used again. A COMMIT
/// that failed (a full disk, an I/O error) can leave SQLite inside the
/// transaction, or leave the driver counting one that SQLite already rolled
/// back; either way the next "transaction" on that connection would silently
/// nest inside the old one and never commit. Such a connection is closed and
/// the pool opens a fresh one.
fn release_sqlite(conn: &mut SqliteConnection) -> BoxFuture<'_, Result<bool, sea_orm::sqlx::Error>> {
    Box::pin(async move {
        // Locking the handle waits for the rollback queued when the failed
        // transaction was dropped, so what follows sees its outcome.
        let mut handle = conn.lock_handle().await?;
        let raw = handle.as_raw_handle();
        // SAFETY: `raw` is the live connection handle, locked for this task
        // until `handle` is dropped; the call only reads a flag.
        let autocommit = unsafe { libsqlite3_sys::sqlite3_get_autocommit(raw.as_ptr()) } != 0;
        drop(handle);
        Ok(keep_or_close(autocommit && !conn.is_in_transaction()))
    })
}

fn keep_or_close(clean: bool) -> bool {
    if !clean {
        tracing::warn!("closing a database connection left inside a failed transaction");
    }
    clean
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
        Migrator::up(&*txn, None).await?;
        return txn.commit().await;
    }
    let lock = db.begin().await?;
    lock.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")).await?;
    let result = Migrator::up(db, None).await;
    lock.commit().await?;
    result
}

/// What a database error means for the person waiting on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection could be had: the server is down or unreachable.
    Unreachable,
    /// The database answered but could not keep the change: disk full, I/O
    /// error, read-only, locked past the busy timeout, shutting down. Nothing
    /// was saved; trying again later can succeed.
    Storage,
    /// Anything else: a bug or a constraint the code should have checked.
    Other,
}

/// Sorts a database error into a [`Failure`].
pub fn failure(err: &DbErr) -> Failure {
    let sqlx = match err {
        DbErr::ConnectionAcquire(_) => return Failure::Unreachable,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        DbErr::Conn(_) => return Failure::Unreachable,
        _ => return Failure::Other,
    };
    use sea_orm::sqlx::Error as E;
    match sqlx.as_ref() {
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => Failure::Unreachable,
        // The connection was left in a state no new transaction can start from.
        E::BeginFailed | E::InvalidSavePointStatement => Failure::Storage,
        E::Database(db) => {
            let code = db.code().unwrap_or_default();
            if let Ok(sqlite) = code.parse::<i32>() {
                // SQLite's extended codes carry the primary code in the low byte:
                // BUSY, LOCKED, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL.
                return match sqlite & 0xff {
                    5 | 6 | 8 | 10 | 11 | 13 | 14 | 15 => Failure::Storage,
                    _ => Failure::Other,
                };
            }
            // PostgreSQL: connection exceptions, insufficient resources (disk
            // full, out of memory, too many connections), operator
            // intervention (shutting down), system errors (I/O).
            match code.get(..2) {
                Some("08") => Failure::Unreachable,
                Some("53" | "57" | "58") => Failure::Storage,
                _ => Failure::Other,
            }
        }
        _ => Failure::Other,
    }
}

/// Answers whether the database is reachable.
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.execute_unprepared("SELECT 1").await.is_ok()
}

/// This instance's last word on whether its database keeps writes. A probe
/// that succeeded stands for [`HealthProbe::FRESH_MS`] from when it began,
/// and one probe runs at a time, with the checks that arrive meanwhile
/// taking its answer: a load balancer, or a burst of checks, costs about a
/// write a second. A failure stands for nothing later: the next check that
/// arrives after it probes again.
#[derive(Debug, Default)]
pub struct HealthProbe {
    /// When the last successful probe began, in milliseconds since the
    /// epoch; 0 when the last probe failed or none ran yet.
    ok_since_ms: std::sync::atomic::AtomicI64,
    /// The last probe's answer and when it came; held while a probe runs.
    last: tokio::sync::Mutex<Option<(i64, Result<(), ProbeFailure>)>>,
}

/// Why a health probe failed, as the health check reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeFailure {
    pub kind: Failure,
    pub message: String,
}

impl HealthProbe {
    pub const FRESH_MS: i64 = 1_000;

    pub async fn check(&self, db: &DatabaseConnection) -> Result<(), ProbeFailure> {
        use std::sync::atomic::Ordering;
        let arrived = Utc::now().timestamp_millis();
        if self.is_fresh(arrived) {
            return Ok(());
        }
        let mut last = self.last.lock().await;
        // A probe that answered after this check arrived answers it too.
        if let Some((_, outcome)) = last.as_ref().filter(|(answered, _)| *answered >= arrived) {
            return outcome.clone();
        }
        let began = Utc::now().timestamp_millis();
        let outcome =
            check_writable(db).await.map_err(|err| ProbeFailure { kind: failure(&err), message: err.to_string() });
        // Probes never overlap (the lock is held), so no older success can
        // overwrite a newer failure here.
        self.ok_since_ms.store(if outcome.is_ok() { began } else { 0 }, Ordering::Relaxed);
        *last = Some((Utc::now().timestamp_millis(), outcome.clone()));
        outcome
    }

    fn is_fresh(&self, now_ms: i64) -> bool {
        let since = self.ok_since_ms.load(std::sync::atomic::Ordering::Relaxed);
        since > 0 && (0..Self::FRESH_MS).contains(&(now_ms - since))
    }
}

/// Answers whether the database can keep a write right now: a one-row
/// upsert in a write transaction, committed. On SQLite this goes through
/// the same journal as every other write, so a full disk shows here too.
pub async fn check_writable(db: &DatabaseConnection) -> Result<(), DbErr> {
    let txn = begin_write(db).await?;
    let sql = placeholders(
        db.get_database_backend(),
        "INSERT INTO health_probe (id, checked_at) VALUES (1, ?) \
         ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
    );
    let statement = sea_orm::Statement::from_sql_and_values(db.get_database_backend(), sql, [now().into()]);
    txn.execute_raw(statement).await?;
    txn.commit().await
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

    #[tokio::test]
    async fn a_health_probe_keeps_a_success_for_a_second_and_never_a_failure() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("probe.db").display());
        let db = Database::connect(url).await.expect("database");
        let create = "CREATE TABLE health_probe (id INTEGER PRIMARY KEY, checked_at TEXT NOT NULL)";
        db.execute_unprepared(create).await.expect("table");
        let probe = HealthProbe::default();
        assert_eq!(probe.check(&db).await, Ok(()));

        // Within the second, the success stands even though a write would now fail.
        db.execute_unprepared("DROP TABLE health_probe").await.expect("drop");
        assert_eq!(probe.check(&db).await, Ok(()));
        assert!(check_writable(&db).await.is_err());

        // After it, the failure shows…
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        let failed = probe.check(&db).await.expect_err("the probe cannot write");
        assert_eq!(failed.kind, Failure::Other);

        // …and is not kept: the next check probes again.
        db.execute_unprepared(create).await.expect("table again");
        assert_eq!(probe.check(&db).await, Ok(()));
    }
}
