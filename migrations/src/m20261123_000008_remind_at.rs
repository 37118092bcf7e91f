//! When the reminder scan should next look at an open case. The scan reads
//! only the cases whose time has come, along a partial index, instead of
//! every open case on every tick; a change to the case brings the time
//! forward to now. Open cases start due, so the first scan looks at them all.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table("cases").add_column(timestamp_with_time_zone_null("remind_at")).to_owned(),
            )
            .await?;
        let conn = manager.get_connection();
        conn.execute_unprepared("UPDATE cases SET remind_at = stage_entered_at WHERE closed_at IS NULL").await?;
        conn.execute_unprepared("CREATE INDEX ix_cases_remind ON cases (remind_at, id) WHERE closed_at IS NULL")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP INDEX ix_cases_remind").await?;
        manager.alter_table(Table::alter().table("cases").drop_column("remind_at").to_owned()).await
    }
}
