//! A one-row table that `/healthz` writes to, so the health check proves the
//! database can keep a write, not only answer a read.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("health_probe")
                    .col(integer("id").primary_key())
                    .col(timestamp_with_time_zone("checked_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("health_probe").to_owned()).await
    }
}
