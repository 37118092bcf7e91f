//! Summary rows the figures read instead of scanning every case: cases per
//! advocate and stage, cases opened and closed per hour, time spent in a
//! stage per day it ended, and decision outcomes. The case writes keep them
//! in the same transaction as the change; `tally_state` records that they
//! were built from the rows that existed before them. Also the partial
//! indexes the caseload's list and activity read along.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const PARTIAL_INDEXES: [&str; 5] = [
    // Overdue counts per stage and advocate, read from the index alone.
    "CREATE INDEX ix_cases_overdue ON cases (stage, stage_due_at, advocate_id) \
     WHERE closed_at IS NULL AND held_since IS NULL",
    "CREATE INDEX ix_cases_open_due ON cases (stage_due_at, id) WHERE closed_at IS NULL",
    "CREATE INDEX ix_cases_open_advocate_due ON cases (advocate_id, stage_due_at, id) WHERE closed_at IS NULL",
    "CREATE INDEX ix_audit_activity ON audit_log (id) \
     WHERE case_id IS NOT NULL AND action NOT IN ('case.viewed', 'access.denied')",
    "CREATE INDEX ix_case_rounds_upcoming ON case_rounds (consultation_scheduled_at) \
     WHERE consultation_held_at IS NULL AND consultation_scheduled_at IS NOT NULL",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("tally_stage")
                    .col(integer("advocate_key"))
                    .col(string("stage"))
                    .col(big_integer("n"))
                    .primary_key(Index::create().col("advocate_key").col("stage"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("tally_hour")
                    .col(big_integer("hour").primary_key())
                    .col(big_integer("opened"))
                    .col(big_integer("closed"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("tally_stage_time")
                    .col(big_integer("day"))
                    .col(string("stage"))
                    .col(big_integer("tenths"))
                    .col(big_integer("n"))
                    .primary_key(Index::create().col("day").col("stage").col("tenths"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("tally_outcome")
                    .col(integer("id").primary_key())
                    .col(big_integer("decided"))
                    .col(big_integer("diagnosis_changed"))
                    .col(big_integer("treatment_changed"))
                    .col(big_integer("surgery_not_followed"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("tally_state")
                    .col(integer("id").primary_key())
                    .col(timestamp_with_time_zone("built_at"))
                    .to_owned(),
            )
            .await?;
        let conn = manager.get_connection();
        for sql in PARTIAL_INDEXES {
            conn.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        for name in [
            "ix_cases_overdue",
            "ix_cases_open_due",
            "ix_cases_open_advocate_due",
            "ix_audit_activity",
            "ix_case_rounds_upcoming",
        ] {
            conn.execute_unprepared(&format!("DROP INDEX {name}")).await?;
        }
        for table in ["tally_stage", "tally_hour", "tally_stage_time", "tally_outcome", "tally_state"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
