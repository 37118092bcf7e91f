//! Retention: erases cases closed longer ago than the configured age, in
//! bounded batches, as `system:retention`. Erasure is idempotent and locks
//! each case, so several instances running it at once do no harm.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio_cron_scheduler::{Job, JobScheduler};

use super::erasure;
use crate::{
    auth::Actor,
    cases::Stage,
    db::entities::case,
    documents::store::Documents,
    error::{AppError, AppResult},
    ids::CaseId,
};

/// Cases looked up per query.
const BATCH: u64 = 100;
/// Most cases erased in one run; the next run continues.
const MAX_PER_RUN: usize = 2_000;
/// When the scheduled run starts: hourly, at a minute of its own.
const SCHEDULE: &str = "0 41 * * * *";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    /// Cases erased by this run.
    pub erased: usize,
    /// Cases another run erased first.
    pub skipped: usize,
    /// Cases that could not be erased (logged; tried again next run).
    pub failed: usize,
}

/// Erases the cases closed before `now - keep_for`.
pub async fn run(
    db: &DatabaseConnection,
    documents: &Documents,
    keep_for: Duration,
    now: DateTime<Utc>,
) -> AppResult<RetentionReport> {
    let keep_for =
        chrono::Duration::from_std(keep_for).map_err(|_| AppError::Internal("retention period is too long".into()))?;
    let Some(cutoff) = now.checked_sub_signed(keep_for) else {
        return Ok(RetentionReport::default());
    };
    let actor = Actor::system("retention");
    let closed: Vec<Stage> = Stage::ALL.iter().copied().filter(|s| s.is_final()).collect();
    let mut report = RetentionReport::default();
    let mut after = 0;
    while report.erased + report.failed < MAX_PER_RUN {
        // Uses the (erased_at, closed_at) index.
        let ids: Vec<i32> = case::Entity::find()
            .select_only()
            .column(case::Column::Id)
            .filter(case::Column::ErasedAt.is_null())
            .filter(case::Column::ClosedAt.lt(cutoff))
            .filter(case::Column::Stage.is_in(closed.clone()))
            .filter(case::Column::Id.gt(after))
            .order_by_asc(case::Column::Id)
            .limit(BATCH)
            .into_tuple()
            .all(db)
            .await?;
        let Some(last) = ids.last() else { break };
        after = *last;
        for id in ids {
            match erasure::erase_only(db, documents, &actor, CaseId(id)).await {
                Ok(true) => report.erased += 1,
                Ok(false) | Err(AppError::NotFound) => report.skipped += 1,
                Err(err) => {
                    tracing::error!(case_id = id, error = %err, "retention could not erase a case");
                    report.failed += 1;
                }
            }
        }
    }
    Ok(report)
}

/// Adds the hourly retention run to the scheduler.
pub async fn schedule(
    scheduler: &JobScheduler,
    db: DatabaseConnection,
    documents: Documents,
    keep_for: Duration,
) -> Result<(), String> {
    let fail = |e: tokio_cron_scheduler::JobSchedulerError| format!("scheduler: {e}");
    let job = Job::new_async(SCHEDULE, move |_, _| {
        let (db, documents) = (db.clone(), documents.clone());
        Box::pin(async move {
            match run(&db, &documents, keep_for, crate::db::now()).await {
                Ok(report) if report != RetentionReport::default() => tracing::info!(
                    erased = report.erased,
                    skipped = report.skipped,
                    failed = report.failed,
                    "retention run finished"
                ),
                Ok(_) => {}
                Err(err) => tracing::error!(error = %err, "retention run failed"),
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
