//! Insurance on a case (payer, plan, member id, whether a second opinion is
//! covered, the pre-approval and its dates, an appeal deadline, cost notes),
//! and the tallies behind the records and pre-approval figures: requests
//! per provider by outcome and whole days taken, and pre-approval decisions
//! by outcome and days taken, so the figures read a few summary rows
//! whatever the number of cases.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("case_insurance")
                    .col(pk_auto("id"))
                    .col(integer("case_id").unique_key())
                    .col(string("payer"))
                    .col(string("plan"))
                    .col(string("member_id"))
                    .col(string("second_opinion_covered"))
                    .col(string("preapproval"))
                    .col(timestamp_with_time_zone_null("preapproval_requested_at"))
                    .col(timestamp_with_time_zone_null("preapproval_decided_at"))
                    .col(string("preapproval_reference"))
                    .col(date_null("appeal_deadline"))
                    .col(text("cost_notes"))
                    .col(integer_null("updated_by"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        &mut ForeignKey::create()
                            .from("case_insurance", "case_id")
                            .to("cases", "id")
                            .on_delete(ForeignKeyAction::Cascade)
                            .to_owned(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("tally_provider_requests")
                    .col(integer("provider_id"))
                    // made, fulfilled or denied
                    .col(string("outcome"))
                    .col(integer("days"))
                    .col(integer("on_time"))
                    .col(big_integer("n"))
                    .primary_key(Index::create().col("provider_id").col("outcome").col("days").col("on_time"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("tally_preapprovals")
                    // approved or denied
                    .col(string("outcome"))
                    .col(integer("days"))
                    .col(big_integer("n"))
                    .primary_key(Index::create().col("outcome").col("days"))
                    .to_owned(),
            )
            .await?;
        // Denied pre-approvals still to appeal, soonest deadline first (the digest).
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX ix_case_insurance_appeal ON case_insurance (appeal_deadline, case_id) \
                 WHERE preapproval = 'denied' AND appeal_deadline IS NOT NULL",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["tally_preapprovals", "tally_provider_requests", "case_insurance"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
