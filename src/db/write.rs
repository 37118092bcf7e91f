//! Write transactions. SQLite lets one writer at a time hold its lock and
//! makes the others poll for it, sleeping longer between tries the longer
//! they wait, so under a burst of writes a few unlucky ones wait far longer
//! than the work ahead of them. Writers of this process therefore queue for
//! their turn first, in arrival order, and only then take SQLite's lock;
//! other processes on the same file (a CLI job) still meet the busy timeout.
//! PostgreSQL locks rows, not the database, and needs no queue.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, LazyLock, Mutex},
};

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult, QueryResult,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};
use tokio::sync::OwnedMutexGuard;

/// One queue per SQLite file open in this process.
static WRITER_TURNS: LazyLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> = LazyLock::new(Default::default);

/// A transaction that will write. It holds this process's writer turn on
/// SQLite until it commits, rolls back or is dropped.
pub struct WriteTransaction {
    transaction: DatabaseTransaction,
    _turn: Option<OwnedMutexGuard<()>>,
}

impl WriteTransaction {
    pub async fn commit(self) -> Result<(), DbErr> {
        self.transaction.commit().await
    }

    pub async fn rollback(self) -> Result<(), DbErr> {
        self.transaction.rollback().await
    }
}

impl std::ops::Deref for WriteTransaction {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.transaction
    }
}

/// Starts a transaction that will write. SQLite takes the write lock at once
/// (`BEGIN IMMEDIATE`), after this process's earlier writers, so a
/// transaction never fails half-way when it turns from reading to writing.
pub async fn begin_write(db: &DatabaseConnection) -> Result<WriteTransaction, DbErr> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return Ok(WriteTransaction { transaction: db.begin().await?, _turn: None });
    }
    let turn = match sqlite_turns(db) {
        Some(queue) => Some(queue.lock_owned().await),
        None => None,
    };
    let options =
        TransactionOptions { sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate), ..Default::default() };
    Ok(WriteTransaction { transaction: db.begin_with_options(options).await?, _turn: turn })
}

/// The queue of the SQLite file behind `db`; none for a database in memory,
/// which only its own connection sees.
fn sqlite_turns(db: &DatabaseConnection) -> Option<Arc<tokio::sync::Mutex<()>>> {
    let options = db.get_sqlite_connection_pool().connect_options();
    let file = options.get_filename();
    if file.as_os_str().is_empty() || file.as_os_str() == ":memory:" {
        return None;
    }
    // A poisoned map only means another thread panicked while inserting;
    // the map itself is still whole.
    let mut turns = WRITER_TURNS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    Some(turns.entry(file.to_path_buf()).or_default().clone())
}

#[async_trait::async_trait]
impl ConnectionTrait for WriteTransaction {
    fn get_database_backend(&self) -> DbBackend {
        self.transaction.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.transaction.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.transaction.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.transaction.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.transaction.query_all_raw(stmt).await
    }

    fn support_returning(&self) -> bool {
        self.transaction.support_returning()
    }
}
