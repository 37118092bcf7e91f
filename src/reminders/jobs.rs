//! The scheduler: cron ticks (UTC) that start a reminder run, and hourly
//! housekeeping. A tick carries no state of its own; see the module above.

use std::sync::Arc;

use tokio_cron_scheduler::{Job, JobScheduler};

use super::Reminders;
use crate::auth::sessions::DbSessionStore;

/// Checks a cron expression the way the scheduler will read it.
pub fn check_schedule(schedule: &str) -> Result<(), String> {
    Job::new_async(schedule, |_, _| Box::pin(async {}))
        .map(|_| ())
        .map_err(|e| format!("reminders.schedule {schedule:?} is not a six-field cron expression: {e}"))
}

pub async fn start(
    reminders: Option<Arc<Reminders>>,
    sessions: DbSessionStore,
    schedule: &str,
) -> Result<JobScheduler, String> {
    let fail = |e: tokio_cron_scheduler::JobSchedulerError| format!("scheduler: {e}");
    let scheduler = JobScheduler::new().await.map_err(fail)?;
    if let Some(reminders) = reminders {
        check_schedule(schedule)?;
        let job = Job::new_async(schedule, move |_, _| {
            let reminders = reminders.clone();
            Box::pin(async move { reminders.tick().await })
        })
        .map_err(fail)?;
        scheduler.add(job).await.map_err(fail)?;
    }
    let housekeeping = Job::new_async("0 17 * * * *", move |_, _| {
        let sessions = sessions.clone();
        Box::pin(async move {
            match sessions.delete_expired().await {
                Ok(n) if n > 0 => tracing::info!(removed = n, "expired sessions removed"),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "could not remove expired sessions"),
            }
        })
    })
    .map_err(fail)?;
    scheduler.add(housekeeping).await.map_err(fail)?;
    scheduler.start().await.map_err(fail)?;
    Ok(scheduler)
}
