//! Erasure of a closed case's patient data: when it happened, and an index
//! that lets the retention job find closed, not yet erased cases by age.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table("cases").add_column(timestamp_with_time_zone_null("erased_at")).to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("ix_cases_retention").table("cases").col("erased_at").col("closed_at").to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("ix_cases_retention").table("cases").to_owned()).await?;
        manager.alter_table(Table::alter().table("cases").drop_column("erased_at").to_owned()).await
    }
}
