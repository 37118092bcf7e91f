//! Records requests: the providers that hold patients' records (hospitals,
//! labs, imaging centers… — apart from the specialists who give opinions),
//! each request to one of them for some checklist kinds with its legal
//! clock (when the provider received it, when it is due, one extension),
//! and which kinds have arrived (and the documents that brought them).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("providers")
                    .col(pk_auto("id"))
                    .col(string("name"))
                    .col(string("kind"))
                    .col(string("email"))
                    .col(string("phone"))
                    .col(string("fax"))
                    .col(string("portal_url"))
                    .col(text("address"))
                    .col(text("notes"))
                    .col(string("timezone"))
                    .col(string_null("jurisdiction"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("records_requests")
                    .col(pk_auto("id"))
                    .col(integer("case_id"))
                    .col(integer("provider_id"))
                    .col(string("request_type"))
                    .col(string("state"))
                    .col(string_null("method"))
                    .col(timestamp_with_time_zone_null("sent_at"))
                    .col(timestamp_with_time_zone_null("received_by_provider_at"))
                    .col(timestamp_with_time_zone_null("first_due_at"))
                    .col(timestamp_with_time_zone_null("due_at"))
                    .col(timestamp_with_time_zone_null("extension_notice_received_at"))
                    .col(text_null("extension_reason"))
                    .col(text_null("denied_reason"))
                    .col(timestamp_with_time_zone_null("closed_at"))
                    .col(integer_null("created_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        &mut ForeignKey::create()
                            .from("records_requests", "case_id")
                            .to("cases", "id")
                            .on_delete(ForeignKeyAction::Restrict)
                            .to_owned(),
                    )
                    .foreign_key(
                        &mut ForeignKey::create()
                            .from("records_requests", "provider_id")
                            .to("providers", "id")
                            .on_delete(ForeignKeyAction::Restrict)
                            .to_owned(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("records_request_kinds")
                    .col(pk_auto("id"))
                    .col(integer("request_id"))
                    .col(string("kind"))
                    .col(timestamp_with_time_zone_null("received_at"))
                    // When the receipt was recorded (the arrival date may be earlier).
                    .col(timestamp_with_time_zone_null("recorded_at"))
                    .foreign_key(
                        &mut ForeignKey::create()
                            .from("records_request_kinds", "request_id")
                            .to("records_requests", "id")
                            .on_delete(ForeignKeyAction::Cascade)
                            .to_owned(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(Table::alter().table("documents").add_column(integer_null("records_request_id")).to_owned())
            .await?;
        let conn = manager.get_connection();
        for sql in [
            "CREATE INDEX ix_providers_name ON providers (name, id)",
            "CREATE INDEX ix_records_requests_case ON records_requests (case_id, id)",
            "CREATE INDEX ix_records_requests_provider ON records_requests (provider_id, id)",
            // Requests waiting on their provider, soonest due first (reminders, overdue figures).
            "CREATE INDEX ix_records_requests_waiting ON records_requests (due_at, id) \
             WHERE state IN ('sent', 'acknowledged', 'partially_received')",
            "CREATE UNIQUE INDEX ux_records_request_kinds ON records_request_kinds (request_id, kind)",
            // Records that arrived lately, for telling patients.
            "CREATE INDEX ix_records_request_kinds_recorded ON records_request_kinds (recorded_at) \
             WHERE recorded_at IS NOT NULL",
        ] {
            conn.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("documents").drop_column("records_request_id").to_owned()).await?;
        for table in ["records_request_kinds", "records_requests", "providers"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
