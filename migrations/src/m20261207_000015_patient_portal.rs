//! The patient portal: personal links (only a digest of each token is
//! kept), care partners a patient invites, signed consents, the survey
//! after a decision and its running totals, which checklist uploads came
//! through the portal, and when a case last had portal activity an
//! advocate has not looked at yet.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn belongs_to_case(table: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create().from(table, "case_id").to("cases", "id").on_delete(ForeignKeyAction::Restrict).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("portal_partners")
                    .col(pk_auto("id"))
                    .col(integer("case_id"))
                    .col(string("name"))
                    .col(string("email"))
                    .col(boolean("may_upload"))
                    .col(boolean("may_edit_questions"))
                    .col(boolean("gets_reminders"))
                    .col(timestamp_with_time_zone("invited_at"))
                    .col(string("invited_by"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .foreign_key(&mut belongs_to_case("portal_partners"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("portal_links")
                    .col(pk_auto("id"))
                    .col(integer("case_id"))
                    .col(integer_null("partner_id"))
                    .col(string_null("token_hash"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .col(timestamp_with_time_zone_null("opened_at"))
                    .foreign_key(&mut belongs_to_case("portal_links"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("portal_consents")
                    .col(pk_auto("id"))
                    .col(integer("case_id"))
                    .col(integer("round"))
                    .col(integer_null("specialist_id"))
                    .col(string("signer_name"))
                    .col(string("signed_by"))
                    .col(string("method"))
                    .col(timestamp_with_time_zone("signed_at"))
                    .col(string_null("ip"))
                    .col(string("text_version"))
                    .col(string("text_sha256"))
                    .col(integer_null("document_id"))
                    .foreign_key(&mut belongs_to_case("portal_consents"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("portal_surveys")
                    .col(pk_auto("id"))
                    .col(integer("case_id"))
                    .col(integer("satisfaction"))
                    .col(integer("recommend"))
                    .col(text("comment"))
                    .col(timestamp_with_time_zone("submitted_at"))
                    .col(string("submitted_by"))
                    .foreign_key(&mut belongs_to_case("portal_surveys"))
                    .to_owned(),
            )
            .await?;
        // One row: the survey figures kept as answers arrive, so /admin
        // never reads every answer.
        manager
            .create_table(
                Table::create()
                    .table("tally_survey")
                    .col(integer("id").primary_key())
                    .col(big_integer("responses"))
                    .col(big_integer("satisfaction_sum"))
                    .col(big_integer("promoters"))
                    .col(big_integer("detractors"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("cases")
                    .add_column(timestamp_with_time_zone_null("portal_activity_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(Table::alter().table("documents").add_column(string_null("uploaded_via")).to_owned())
            .await?;
        let conn = manager.get_connection();
        for sql in [
            "INSERT INTO tally_survey (id, responses, satisfaction_sum, promoters, detractors) VALUES (1, 0, 0, 0, 0)",
            "CREATE UNIQUE INDEX ux_portal_links_token ON portal_links (token_hash)",
            "CREATE INDEX ix_portal_links_case ON portal_links (case_id, created_at)",
            "CREATE INDEX ix_portal_partners_case ON portal_partners (case_id, id)",
            "CREATE INDEX ix_portal_consents_case ON portal_consents (case_id, round, signed_at)",
            "CREATE UNIQUE INDEX ux_portal_surveys_case ON portal_surveys (case_id)",
            // Cases with portal activity no advocate has looked at, per advocate (digest, caseload mark).
            "CREATE INDEX ix_cases_portal_activity ON cases (advocate_id, portal_activity_at) \
             WHERE portal_activity_at IS NOT NULL",
        ] {
            conn.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        conn.execute_unprepared("DROP INDEX ix_cases_portal_activity").await?;
        manager.alter_table(Table::alter().table("documents").drop_column("uploaded_via").to_owned()).await?;
        manager.alter_table(Table::alter().table("cases").drop_column("portal_activity_at").to_owned()).await?;
        for table in ["tally_survey", "portal_surveys", "portal_consents", "portal_links", "portal_partners"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
