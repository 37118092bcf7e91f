//! The trail of reads — who listed cases, who opened one — written in
//! batches. Every page view would otherwise be a write transaction of its
//! own (and, on SQLite, wait its turn behind every other writer); here the
//! entries of many views go into the chain in one transaction, a moment
//! later. Changes are never batched: they are recorded in the transaction
//! that makes them. Readers of the trail flush first, so what they see
//! includes every read this instance has served.

use std::time::Duration;

use sea_orm::DatabaseConnection;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::{Subject, chain};
use crate::{actor::Actor, db, db::entities::audit_entry};

/// Entries written per transaction at most.
const BATCH: usize = 256;
/// How long the first entry of a batch waits for others to join it.
const GATHER: Duration = Duration::from_millis(25);
/// Entries waiting at most; past this, a read waits for room (back-pressure
/// rather than unbounded memory).
const QUEUE: usize = 8_192;

enum Message {
    Entry(Box<audit_entry::ActiveModel>),
    Flush(oneshot::Sender<()>),
}

/// A handle on this instance's read trail; cheap to clone.
#[derive(Clone)]
pub struct ReadTrail {
    sender: mpsc::Sender<Message>,
    db: DatabaseConnection,
}

impl ReadTrail {
    /// Starts the writer task; it ends once every handle is dropped and what
    /// it holds is written.
    pub fn start(db: DatabaseConnection) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(db.clone(), receiver));
        Self { sender, db }
    }

    /// Adds a read to the trail. Should the writer be gone, the entry is
    /// written at once instead, so no read goes unrecorded.
    pub async fn record(
        &self,
        actor: &Actor,
        action: &str,
        subject: Subject,
        detail: Value,
    ) -> Result<(), sea_orm::DbErr> {
        let entry = super::model(actor, action, subject, detail, Some(db::now()));
        match self.sender.send(Message::Entry(Box::new(entry))).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendError(Message::Entry(entry))) => write(&self.db, vec![*entry]).await,
            Err(_) => Ok(()),
        }
    }

    /// Waits until every read recorded so far is in the database.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

async fn write(db: &DatabaseConnection, entries: Vec<audit_entry::ActiveModel>) -> Result<(), sea_orm::DbErr> {
    let txn = db::begin_write(db).await?;
    chain::append_many(&txn, entries).await?;
    txn.commit().await
}

async fn write_batches(db: DatabaseConnection, mut receiver: mpsc::Receiver<Message>) {
    while let Some(first) = receiver.recv().await {
        let mut entries = Vec::new();
        let mut waiting = Vec::new();
        take(first, &mut entries, &mut waiting);
        let deadline = tokio::time::Instant::now() + GATHER;
        while entries.len() < BATCH && waiting.is_empty() {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(message)) => take(message, &mut entries, &mut waiting),
                Ok(None) | Err(_) => break,
            }
        }
        if !entries.is_empty() {
            let count = entries.len();
            // One retry: a busy or briefly unreachable database is the usual cause.
            let first_try = write(&db, entries.clone()).await;
            if let Err(err) = first_try {
                tracing::warn!(error = %err, count, "could not write read entries to the audit trail; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Err(err) = write(&db, entries).await {
                    tracing::error!(error = %err, count, "read entries could not be written to the audit trail");
                }
            }
        }
        for done in waiting {
            let _ = done.send(());
        }
    }
}

fn take(message: Message, entries: &mut Vec<audit_entry::ActiveModel>, waiting: &mut Vec<oneshot::Sender<()>>) {
    match message {
        Message::Entry(entry) => entries.push(*entry),
        Message::Flush(done) => waiting.push(done),
    }
}
