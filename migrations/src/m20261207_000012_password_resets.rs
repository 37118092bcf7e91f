//! Password reset links. A row is one link: whose account it opens, until
//! when, and whether it was used or withdrawn. Only a digest of the link's
//! token is kept. An emailed link gets its token when the email is handed to
//! the mail server, so until then `token_hash` is NULL (which the unique
//! index lets many rows share).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("password_resets")
                    .col(pk_auto("id"))
                    .col(integer("user_id"))
                    .col(string_null("token_hash"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("used_at"))
                    .col(timestamp_with_time_zone_null("withdrawn_at"))
                    .foreign_key(
                        &mut ForeignKey::create()
                            .from("password_resets", "user_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Restrict)
                            .to_owned(),
                    )
                    .to_owned(),
            )
            .await?;
        let conn = manager.get_connection();
        for sql in [
            // Opening a link looks its digest up; two links never share one.
            "CREATE UNIQUE INDEX ux_password_resets_token ON password_resets (token_hash)",
            // A user's links still open, to withdraw them all at once.
            "CREATE INDEX ix_password_resets_open ON password_resets (user_id) \
             WHERE used_at IS NULL AND withdrawn_at IS NULL",
        ] {
            conn.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("password_resets").to_owned()).await
    }
}
