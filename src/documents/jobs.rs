//! The hourly purge of documents deleted longer ago than
//! `documents.purge_deleted_after`. Every instance may run it: a document
//! already purged by another is simply no longer found.

use sea_orm::DatabaseConnection;
use tokio_cron_scheduler::{Job, JobScheduler};

use super::store::{Documents, purge_deleted};

/// At minute 17 of every hour, UTC.
const SCHEDULE: &str = "0 17 * * * *";

pub async fn schedule_purge(
    scheduler: &JobScheduler,
    db: DatabaseConnection,
    documents: Documents,
) -> Result<(), String> {
    let fail = |e: tokio_cron_scheduler::JobSchedulerError| format!("scheduler: {e}");
    let job = Job::new_async(SCHEDULE, move |_, _| {
        let (db, documents) = (db.clone(), documents.clone());
        Box::pin(async move {
            match purge_deleted(&db, &documents, crate::db::now()).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "deleted documents purged"),
                Err(err) => tracing::error!(error = %err, "purging deleted documents failed"),
            }
        })
    })
    .map_err(fail)?;
    scheduler.add(job).await.map_err(fail)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_a_valid_cron_expression() {
        assert!(Job::new_async(SCHEDULE, |_, _| Box::pin(async {})).is_ok());
    }
}
