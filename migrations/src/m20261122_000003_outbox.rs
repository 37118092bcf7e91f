//! The email outbox (one row per reminder, unique by its key) and the
//! per-case switch patients use to stop nudges.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("outbox")
                    .col(pk_auto("id"))
                    .col(string_uniq("dedupe_key"))
                    .col(integer_null("case_id"))
                    .col(string("kind"))
                    .col(string("recipient_email"))
                    .col(string("recipient_name"))
                    .col(string("subject"))
                    .col(text("body_text"))
                    .col(text("body_html"))
                    .col(text_null("ics"))
                    .col(string_null("unsubscribe_url"))
                    .col(string("status"))
                    .col(integer("attempts"))
                    .col(timestamp_with_time_zone("next_attempt_at"))
                    .col(timestamp_with_time_zone_null("lease_until"))
                    .col(string_null("lease_owner"))
                    .col(text_null("last_error"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("sent_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("ix_outbox_due").table("outbox").col("status").col("next_attempt_at").to_owned(),
            )
            .await?;
        manager.create_index(Index::create().name("ix_outbox_case").table("outbox").col("case_id").to_owned()).await?;
        manager.alter_table(Table::alter().table("cases").add_column(string_null("nudge_token")).to_owned()).await?;
        manager
            .alter_table(
                Table::alter().table("cases").add_column(timestamp_with_time_zone_null("nudges_stopped_at")).to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("ux_cases_nudge_token").table("cases").col("nudge_token").unique().to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("ux_cases_nudge_token").table("cases").to_owned()).await?;
        for column in ["nudge_token", "nudges_stopped_at"] {
            manager.alter_table(Table::alter().table("cases").drop_column(column).to_owned()).await?;
        }
        manager.drop_table(Table::drop().table("outbox").to_owned()).await
    }
}
