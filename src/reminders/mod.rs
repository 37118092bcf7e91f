//! Reminders: a scan gathers plain facts about open cases and people, the
//! pure planner decides what is due, and each planned reminder is rendered
//! and queued in the outbox under its unique key. A sender then claims due
//! outbox rows and mails them. A scheduler tick only starts a scan and a
//! send; correctness comes from the outbox, so restarts, missed ticks and
//! several instances never lose or double a reminder. The outbox also
//! carries password reset emails (`reset_mail`) and portal links
//! (`portal_mail`), whose links get their tokens only as they are sent.

pub mod jobs;
pub mod outbox;
pub mod planner;
pub mod portal_mail;
pub mod render;
pub mod reset_mail;
pub mod scan;

use std::sync::Arc;

use chrono::Duration;
use futures_util::StreamExt;
use sea_orm::DatabaseConnection;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, mpsc};

use crate::{
    config::Settings,
    db::entities::outbox_message,
    error::{AppError, AppResult},
    mail::{Mailer, SendError},
};

/// Most rows claimed at a time per pooled mail connection: enough that
/// claiming is a small share of the work.
const CLAIM_PER_CONNECTION: u64 = 64;

/// Longest an outcome waits for others to be recorded with: a write costs
/// about the same whatever it covers.
pub const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

/// Sent emails per pooled mail connection that may wait to be recorded
/// before sending pauses for the database. Also the bound on what a crash
/// can send twice: an email sent but not yet recorded goes out again once
/// its lease runs out, so this stays small.
pub const UNRECORDED_PER_CONNECTION: usize = 8;

/// Everything a reminder run needs, shared by the scheduler and the CLI.
pub struct Reminders {
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub rules: planner::Rules,
    pub mailer: Arc<Mailer>,
    /// Names this process's leases in the outbox.
    pub owner: String,
    /// One run at a time in this process, even when a run outlasts a tick.
    running: Mutex<()>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SendReport {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
}

impl Reminders {
    pub fn new(db: DatabaseConnection, settings: Arc<Settings>) -> Result<Self, String> {
        let rules = planner::Rules::from_settings(&settings.reminders)?;
        let mailer = Arc::new(Mailer::new(&settings.mail)?);
        let random = crate::auth::random_bytes::<4>().map_err(|e| e.to_string())?;
        let owner = format!(
            "{}-{}-{:02x}{:02x}{:02x}{:02x}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "instance".into()),
            std::process::id(),
            random[0],
            random[1],
            random[2],
            random[3]
        );
        Ok(Self { db, settings, rules, mailer, owner, running: Mutex::new(()) })
    }

    /// A scheduler tick: scan, then send. Skipped when the previous run in
    /// this process has not finished.
    pub async fn tick(&self) {
        let Ok(_guard) = self.running.try_lock() else {
            tracing::info!("reminder run still in progress; skipping this tick");
            return;
        };
        match scan::scan(self, crate::db::now(), false).await {
            Ok(report) if report.queued > 0 => {
                tracing::info!(planned = report.planned, queued = report.queued, "reminders queued")
            }
            Ok(_) => {}
            Err(err) => tracing::error!(error = %err, "reminder scan failed"),
        }
        match self.send_due().await {
            Ok(report) if report != SendReport::default() => {
                tracing::info!(sent = report.sent, retried = report.retried, failed = report.failed, "emails processed")
            }
            Ok(_) => {}
            Err(err) => tracing::error!(error = %err, "sending emails failed"),
        }
    }

    /// Sends what is due, at most `reminders.batch_size` emails. Three parts
    /// run side by side: claiming batches of rows, one batch ahead of the
    /// sending; sending over the mail pool, one message per connection at a
    /// time; and recording outcomes, each write covering what finished
    /// while the previous one ran, or within [`GATHER`] after. A row is only
    /// sent while enough of its lease is left to send it and record it, so
    /// no other sender can take it over meanwhile; the rest go back to the
    /// queue unsent. At most [`UNRECORDED_PER_CONNECTION`] sent emails per
    /// connection wait to be recorded, which bounds what a crash can make a
    /// later run send again.
    pub async fn send_due(&self) -> AppResult<SendReport> {
        let settings = &self.settings.reminders;
        let lease = Duration::from_std(settings.lease).unwrap_or(Duration::minutes(2));
        let timeout = Duration::from_std(self.settings.mail.smtp.timeout).unwrap_or(Duration::seconds(20));
        // One timeout to send, as much again to record the outcome; a lease
        // shorter than that keeps half of itself for the purpose.
        let reserve = timeout.checked_mul(2).unwrap_or(timeout).min(lease / 2);
        let base = Duration::from_std(settings.retry_base).unwrap_or(Duration::minutes(1));
        let parallel = self.mailer.parallel_sends();
        let window = (lease - reserve).to_std().unwrap_or_default();
        let mut claim_size = ClaimSize::new(parallel, window, self.settings.mail.smtp.timeout);
        let batch_size = settings.batch_size;
        let max_attempts = settings.max_attempts;

        let (claimed_tx, mut claimed_rx) = mpsc::channel::<Vec<outbox_message::Model>>(1);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(outbox::Attempt, OwnedSemaphorePermit)>();
        let unrecorded = Arc::new(Semaphore::new(parallel * UNRECORDED_PER_CONNECTION));
        let gather = parallel * UNRECORDED_PER_CONNECTION / 2;

        let claiming = async move {
            let mut handled = 0u64;
            // When the sender took the batch before last, and how big that was.
            let mut taking: Option<(std::time::Instant, u64)> = None;
            let mut last_claimed = 0u64;
            while handled < batch_size {
                // Claim only once the previous batch is being sent, so leases
                // do not run while rows wait their turn.
                let Ok(slot) = claimed_tx.reserve().await else { break };
                let now = std::time::Instant::now();
                if let Some((since, rows)) = taking {
                    claim_size.observe(rows, now - since);
                }
                taking = Some((now, last_claimed));
                let limit = claim_size.rows().min(batch_size - handled);
                // On SQLite, claims and records wait their turn in `begin_write`.
                let rows = outbox::claim(&self.db, &self.owner, limit, lease).await?;
                if rows.is_empty() {
                    break;
                }
                last_claimed = rows.len() as u64;
                handled += last_claimed;
                slot.send(rows);
            }
            Ok::<(), AppError>(())
        };

        let sending = async move {
            let rows =
                futures_util::stream::poll_fn(|cx| claimed_rx.poll_recv(cx)).flat_map(futures_util::stream::iter);
            rows.for_each_concurrent(parallel, |row| {
                let done_tx = done_tx.clone();
                let unrecorded = unrecorded.clone();
                async move {
                    // Closed only when recording stopped on an error, which ends the run anyway.
                    let Ok(permit) = unrecorded.acquire_owned().await else { return };
                    let mut attempt = outbox::Attempt::new(&row, outbox::Outcome::Unsent);
                    if row.lease_until.is_some_and(|until| crate::db::now() + reserve <= until) {
                        attempt.outcome = match self.prepare(row, base).await {
                            Ok(row) => self.hand_over(row, base, attempt.attempts).await,
                            Err(outcome) => outcome,
                        };
                    }
                    let _ = done_tx.send((attempt, permit));
                }
            })
            .await;
            Ok::<(), AppError>(())
        };

        let recording = async move {
            let mut report = SendReport::default();
            let mut attempts = Vec::new();
            let mut permits = Vec::new();
            while let Some((attempt, permit)) = done_rx.recv().await {
                attempts.push(attempt);
                permits.push(permit);
                let until = tokio::time::Instant::now() + GATHER;
                while attempts.len() < gather {
                    match tokio::time::timeout_at(until, done_rx.recv()).await {
                        Ok(Some((attempt, permit))) => {
                            attempts.push(attempt);
                            permits.push(permit);
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
                outbox::record(&self.db, &self.owner, &attempts, max_attempts).await?;
                // Counted and logged only once written: a failed write is never reported as sent.
                for attempt in &attempts {
                    match &attempt.outcome {
                        outbox::Outcome::Sent => report.sent += 1,
                        outbox::Outcome::Retry { error, .. } => {
                            tracing::warn!(id = attempt.id, %error, "email will be retried");
                            report.retried += 1;
                        }
                        outbox::Outcome::Failed { error } => {
                            tracing::warn!(id = attempt.id, %error, "email failed");
                            report.failed += 1;
                        }
                        outbox::Outcome::Unsent => {}
                    }
                }
                attempts.clear();
                // Dropping the permits lets more emails go out.
                permits.clear();
            }
            Ok::<SendReport, AppError>(report)
        };

        // A failed claim stops further claims, while what was already claimed
        // is still sent and recorded; a failed record stops everything, and
        // what was sent but not recorded waits for its lease to run out.
        let (claimed, sent) = tokio::join!(claiming, async { tokio::try_join!(sending, recording) });
        let ((), report) = sent?;
        claimed?;
        Ok(report)
    }

    /// What goes to the mail server for `row`: most emails as queued; a
    /// reset email first gets its link's token (see `reset_mail`). One no
    /// longer worth sending fails, saying why.
    async fn prepare(
        &self,
        row: outbox_message::Model,
        base: Duration,
    ) -> Result<outbox_message::Model, outbox::Outcome> {
        if portal_mail::carries_link(&row) {
            return match portal_mail::fill(&self.db, &self.settings, &row).await {
                Ok(portal_mail::Filled::Ready(ready)) => Ok(*ready),
                Ok(portal_mail::Filled::Pointless(error)) => Err(outbox::Outcome::Failed { error }),
                Err(err) => Err(outbox::Outcome::Retry {
                    error: format!("could not make the portal link: {err}"),
                    next: outbox::next_attempt(crate::db::now(), base, row.attempts, fastrand::f64()),
                }),
            };
        }
        if row.kind != reset_mail::KIND {
            return Ok(row);
        }
        match reset_mail::fill(&self.db, &row).await {
            Ok(reset_mail::Filled::Ready(ready)) => Ok(*ready),
            Ok(reset_mail::Filled::Pointless(error)) => Err(outbox::Outcome::Failed { error }),
            Err(err) => Err(outbox::Outcome::Retry {
                error: format!("could not give the reset link its token: {err}"),
                next: outbox::next_attempt(crate::db::now(), base, row.attempts, fastrand::f64()),
            }),
        }
    }

    /// Hands one email to the mail server and says what became of it.
    async fn hand_over(&self, row: outbox_message::Model, base: Duration, attempts: i32) -> outbox::Outcome {
        // A task of its own, so messages are built and sent on every core.
        let mailer = self.mailer.clone();
        let sent = tokio::spawn(async move { mailer.send(&row).await }).await;
        match sent {
            Ok(Ok(())) => outbox::Outcome::Sent,
            Ok(Err(SendError::Temporary(error))) => {
                let next = outbox::next_attempt(crate::db::now(), base, attempts, fastrand::f64());
                outbox::Outcome::Retry { error, next }
            }
            Ok(Err(SendError::Permanent(error))) => outbox::Outcome::Failed { error },
            // Whether it went out is unknown: like a crash, it may be sent again.
            Err(panicked) => outbox::Outcome::Retry {
                error: format!("sending failed unexpectedly: {panicked}"),
                next: outbox::next_attempt(crate::db::now(), base, attempts, fastrand::f64()),
            },
        }
    }
}

/// How many rows to claim at a time. Claimed rows wait for the batch before
/// them to be sent, then for their own turn, all within `window` (the
/// lease less what sending and recording one row may take). Until sending
/// has shown its pace, a batch is sized as if every send took the full
/// timeout; after that, to take a quarter of the window at the pace seen.
struct ClaimSize {
    parallel: u64,
    window: std::time::Duration,
    rows: u64,
}

impl ClaimSize {
    fn new(parallel: usize, window: std::time::Duration, timeout: std::time::Duration) -> Self {
        let parallel = u64::try_from(parallel.max(1)).unwrap_or(1);
        let per_connection = (window.as_secs_f64() / (2.0 * timeout.as_secs_f64().max(0.001))) as u64;
        Self { parallel, window, rows: parallel * per_connection.clamp(1, CLAIM_PER_CONNECTION) }
    }

    fn rows(&self) -> u64 {
        self.rows
    }

    /// The sender went through `rows` in `took`.
    fn observe(&mut self, rows: u64, took: std::time::Duration) {
        if rows == 0 {
            return;
        }
        let per_second = rows as f64 / took.as_secs_f64().max(0.000_001);
        let fits = (per_second * self.window.as_secs_f64() / 4.0) as u64;
        self.rows = fits.clamp(self.parallel, self.parallel * CLAIM_PER_CONNECTION);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn claims_start_small_and_follow_the_pace_of_sending() {
        // Two minutes' lease less 40 s kept back, 20 s timeout, four connections.
        let mut size = ClaimSize::new(4, Duration::from_secs(80), Duration::from_secs(20));
        assert_eq!(size.rows(), 8, "two sends per connection would fit even at the timeout");
        size.observe(8, Duration::from_millis(2));
        assert_eq!(size.rows(), 4 * CLAIM_PER_CONNECTION, "a fast server gets full batches");
        size.observe(8, Duration::from_secs(8));
        assert_eq!(size.rows(), 20, "one email a second: a quarter of 80 s");
        size.observe(4, Duration::from_secs(120));
        assert_eq!(size.rows(), 4, "never below one per connection");
        let short = ClaimSize::new(4, Duration::from_secs(1), Duration::from_secs(20));
        assert_eq!(short.rows(), 4, "a lease shorter than the timeout still claims one per connection");
    }
}
