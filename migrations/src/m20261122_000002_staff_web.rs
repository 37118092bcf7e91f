//! Server-side sessions, sign-in throttling, and the case background the
//! printable summary needs (history, medications, the patient's questions).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The id column holds a digest of the cookie's session id, never the id itself.
        manager
            .create_table(
                Table::create()
                    .table("sessions")
                    .col(string("id").primary_key())
                    .col(integer_null("user_id"))
                    .col(text("data"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(Index::create().name("ix_sessions_user").table("sessions").col("user_id").to_owned())
            .await?;
        manager
            .create_index(Index::create().name("ix_sessions_expiry").table("sessions").col("expires_at").to_owned())
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("sign_in_failures")
                    .col(string("key").primary_key())
                    .col(integer("failures"))
                    .col(timestamp_with_time_zone("first_failure_at"))
                    .col(timestamp_with_time_zone_null("locked_until"))
                    .to_owned(),
            )
            .await?;

        for column in ["medical_history", "medications", "patient_questions"] {
            manager.alter_table(Table::alter().table("cases").add_column(text(column).default("")).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ["medical_history", "medications", "patient_questions"] {
            manager.alter_table(Table::alter().table("cases").drop_column(column).to_owned()).await?;
        }
        manager.drop_table(Table::drop().table("sign_in_failures").to_owned()).await?;
        manager.drop_table(Table::drop().table("sessions").to_owned()).await
    }
}
