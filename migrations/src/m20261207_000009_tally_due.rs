//! Open cases that are not on hold, per advocate, stage and the UTC day their
//! stage falls due. The overdue figures add up the days before today from
//! here and count only today's cases from the rows, so their cost follows
//! the number of days with overdue work, not the number of overdue cases.
//! Filled here from the open cases; the case writes keep it from then on.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("tally_due")
                    .col(integer("advocate_key"))
                    .col(string("stage"))
                    .col(big_integer("due_day"))
                    .col(big_integer("n"))
                    .primary_key(Index::create().col("advocate_key").col("stage").col("due_day"))
                    .to_owned(),
            )
            .await?;
        let conn = manager.get_connection();
        // The overdue sum reads the days before today, with their counts, from the index alone.
        conn.execute_unprepared("CREATE INDEX ix_tally_due_day ON tally_due (due_day, stage, advocate_key, n)").await?;
        let due_day = match manager.get_database_backend() {
            sea_orm::DbBackend::Postgres => "FLOOR(EXTRACT(EPOCH FROM stage_due_at) / 86400)::BIGINT",
            _ => "CAST(strftime('%s', stage_due_at) AS INTEGER) / 86400",
        };
        // Unassigned cases count under advocate key 0, as the other tallies keep them.
        conn.execute_unprepared(&format!(
            "INSERT INTO tally_due (advocate_key, stage, due_day, n) \
             SELECT COALESCE(advocate_id, 0), stage, {due_day}, COUNT(*) FROM cases \
             WHERE closed_at IS NULL AND held_since IS NULL AND stage_due_at IS NOT NULL \
             AND stage IN ('records_requested', 'specialist_chosen', 'consultation_held', 'opinions_compared') \
             GROUP BY COALESCE(advocate_id, 0), stage, {due_day}"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("tally_due").to_owned()).await
    }
}
