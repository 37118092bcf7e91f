//! The case journal: free-text notes, and the contact log (who was reached,
//! how, which way, what came of it) with an optional follow-up date that
//! stays on the advocate's list until marked done.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn fk(from_table: &'static str, from_col: &'static str, to_table: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create().from(from_table, from_col).to(to_table, "id").on_delete(ForeignKeyAction::Restrict).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("case_notes")
                    .col(pk_auto("id"))
                    .col(integer("case_id"))
                    .col(text("body"))
                    .col(integer_null("author_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(&mut fk("case_notes", "case_id", "cases"))
                    .foreign_key(&mut fk("case_notes", "author_id", "users"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("case_contacts")
                    .col(pk_auto("id"))
                    .col(integer("case_id"))
                    .col(string("party"))
                    .col(string("channel"))
                    .col(string("direction"))
                    .col(text("summary"))
                    .col(date_null("follow_up_on"))
                    .col(timestamp_with_time_zone_null("done_at"))
                    .col(integer_null("done_by"))
                    .col(integer_null("author_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(&mut fk("case_contacts", "case_id", "cases"))
                    .foreign_key(&mut fk("case_contacts", "author_id", "users"))
                    .foreign_key(&mut fk("case_contacts", "done_by", "users"))
                    .to_owned(),
            )
            .await?;
        let conn = manager.get_connection();
        for sql in [
            "CREATE INDEX ix_case_notes_case ON case_notes (case_id, id)",
            "CREATE INDEX ix_case_contacts_case ON case_contacts (case_id, id)",
            // Follow-ups still to do, by date: the due lists read along this.
            "CREATE INDEX ix_case_contacts_follow_up ON case_contacts (follow_up_on, case_id) \
             WHERE done_at IS NULL AND follow_up_on IS NOT NULL",
        ] {
            conn.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("case_contacts").to_owned()).await?;
        manager.drop_table(Table::drop().table("case_notes").to_owned()).await
    }
}
