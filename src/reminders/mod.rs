//! Reminders: a scan gathers plain facts about open cases and people, the
//! pure planner decides what is due, and each planned reminder is rendered
//! and queued in the outbox under its unique key. A sender then claims due
//! outbox rows and mails them. A scheduler tick only starts a scan and a
//! send; correctness comes from the outbox, so restarts, missed ticks and
//! several instances never lose or double a reminder.

pub mod jobs;
pub mod outbox;
pub mod planner;
pub mod render;
pub mod scan;

use std::sync::Arc;

use chrono::Duration;
use sea_orm::DatabaseConnection;
use tokio::sync::Mutex;

use crate::{config::Settings, error::AppResult, mail::Mailer};

/// Everything a reminder run needs, shared by the scheduler and the CLI.
pub struct Reminders {
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub rules: planner::Rules,
    pub mailer: Mailer,
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
        let mailer = Mailer::new(&settings.mail)?;
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

    /// Sends what is due, claiming a few rows at a time so a lease always
    /// outlasts the sending of what it covers.
    pub async fn send_due(&self) -> AppResult<SendReport> {
        let settings = &self.settings.reminders;
        let lease = Duration::from_std(settings.lease).unwrap_or(Duration::minutes(2));
        let per_send = self.settings.mail.smtp.timeout.as_secs().max(1) * 3;
        let per_claim = (settings.lease.as_secs() / per_send).clamp(1, 50);
        let base = Duration::from_std(settings.retry_base).unwrap_or(Duration::minutes(1));
        let mut report = SendReport::default();
        let mut handled = 0u64;
        while handled < settings.batch_size {
            let rows =
                outbox::claim(&self.db, &self.owner, per_claim.min(settings.batch_size - handled), lease).await?;
            if rows.is_empty() {
                break;
            }
            handled += rows.len() as u64;
            for row in rows {
                match self.mailer.send(&row).await {
                    Ok(()) => {
                        outbox::mark_sent(&self.db, &row, &self.owner).await?;
                        report.sent += 1;
                    }
                    Err(crate::mail::SendError::Temporary(error)) => {
                        let next = outbox::next_attempt(crate::db::now(), base, row.attempts, fastrand::f64());
                        outbox::mark_retry(&self.db, &row, &self.owner, &error, next, settings.max_attempts).await?;
                        tracing::warn!(id = row.id, %error, "email will be retried");
                        report.retried += 1;
                    }
                    Err(crate::mail::SendError::Permanent(error)) => {
                        outbox::mark_failed(&self.db, &row, &self.owner, &error).await?;
                        tracing::warn!(id = row.id, %error, "email failed");
                        report.failed += 1;
                    }
                }
            }
        }
        Ok(report)
    }
}
