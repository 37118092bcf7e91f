//! Documents on a case: one row per file, its bytes kept encrypted in
//! object storage under `object_key`. The row holds what people see (name,
//! kind, links to a checklist item or an opinion round, who uploaded it) and
//! what reading it back needs: the file's own key, wrapped by the master key
//! named in `key_id`. A deleted document keeps its row until purged.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("documents")
                    .col(pk_auto("id"))
                    .col(integer("case_id"))
                    .col(string("kind"))
                    .col(string_null("record_kind"))
                    .col(integer_null("round"))
                    .col(string("name"))
                    .col(string("content_type"))
                    .col(big_integer("size"))
                    .col(string("sha256"))
                    .col(string("object_key"))
                    .col(string("wrapped_key"))
                    .col(string("key_id"))
                    .col(integer_null("uploaded_by"))
                    .col(timestamp_with_time_zone("uploaded_at"))
                    .col(timestamp_with_time_zone_null("deleted_at"))
                    .col(integer_null("deleted_by"))
                    .col(timestamp_with_time_zone_null("damaged_at"))
                    .foreign_key(
                        &mut ForeignKey::create()
                            .from("documents", "case_id")
                            .to("cases", "id")
                            .on_delete(ForeignKeyAction::Restrict)
                            .to_owned(),
                    )
                    .to_owned(),
            )
            .await?;
        let conn = manager.get_connection();
        for sql in [
            // A case's documents, newest first.
            "CREATE INDEX ix_documents_case ON documents (case_id, uploaded_at, id)",
            "CREATE UNIQUE INDEX ux_documents_object ON documents (object_key)",
            // The purge reads deleted documents oldest first.
            "CREATE INDEX ix_documents_deleted ON documents (deleted_at) WHERE deleted_at IS NOT NULL",
            // A key rotation reads the documents still under an older key.
            "CREATE INDEX ix_documents_key ON documents (key_id, id)",
        ] {
            conn.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("documents").to_owned()).await
    }
}
