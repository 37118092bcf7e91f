//! Users, API tokens, specialists, cases with their rounds, opinions, records
//! checklist and stage history, and the audit log.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn fk(from_table: &'static str, from_col: &'static str, to_table: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create().from(from_table, from_col).to(to_table, "id").on_delete(ForeignKeyAction::Restrict).to_owned()
}

fn index(name: &'static str, table: &'static str, cols: &[&'static str], unique: bool) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(name).table(table);
    for col in cols {
        stmt.col(*col);
    }
    if unique {
        stmt.unique();
    }
    stmt.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("users")
                    .col(pk_auto("id"))
                    .col(string_uniq("email"))
                    .col(string("name"))
                    .col(string("role"))
                    .col(text_null("password_hash"))
                    .col(string("timezone"))
                    .col(boolean("active"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("api_tokens")
                    .col(pk_auto("id"))
                    .col(integer("user_id"))
                    .col(string("label"))
                    .col(string_uniq("token_hash"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("last_used_at"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .foreign_key(&mut fk("api_tokens", "user_id", "users"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("specialists")
                    .col(pk_auto("id"))
                    .col(string("name"))
                    .col(string("specialty"))
                    .col(string("specialty_key"))
                    .col(string("institution"))
                    .col(text("search_key"))
                    .col(string_null("email"))
                    .col(boolean("offers_virtual"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("ix_specialists_specialty", "specialists", &["specialty_key", "id"], false)).await?;

        manager
            .create_table(
                Table::create()
                    .table("cases")
                    .col(pk_auto("id"))
                    .col(string_uniq("reference"))
                    .col(string("patient_name"))
                    .col(string("patient_email"))
                    .col(string_null("patient_phone"))
                    .col(string("patient_timezone"))
                    .col(string("patient_language"))
                    .col(string("specialty"))
                    .col(string("reason"))
                    .col(string("urgency"))
                    .col(text("summary"))
                    .col(text("search_key"))
                    .col(integer_null("advocate_id"))
                    .col(string("stage"))
                    .col(integer("round"))
                    .col(timestamp_with_time_zone("stage_entered_at"))
                    .col(timestamp_with_time_zone_null("stage_due_at"))
                    .col(timestamp_with_time_zone_null("held_since"))
                    .col(string_null("hold_reason"))
                    .col(text_null("hold_note"))
                    .col(big_integer("held_seconds"))
                    .col(string_null("chosen_opinion"))
                    .col(text_null("decision_reason"))
                    .col(timestamp_with_time_zone_null("decided_at"))
                    .col(integer("version"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .col(timestamp_with_time_zone_null("closed_at"))
                    .foreign_key(&mut fk("cases", "advocate_id", "users"))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("ix_cases_advocate", "cases", &["advocate_id", "id"], false)).await?;
        manager.create_index(index("ix_cases_stage_due", "cases", &["stage", "stage_due_at"], false)).await?;

        manager
            .create_table(
                Table::create()
                    .table("case_rounds")
                    .col(pk_auto("id"))
                    .col(integer("case_id"))
                    .col(integer("round"))
                    .col(integer_null("specialist_id"))
                    .col(timestamp_with_time_zone_null("consultation_scheduled_at"))
                    .col(string_null("consultation_mode"))
                    .col(text_null("consultation_location"))
                    .col(timestamp_with_time_zone_null("consultation_held_at"))
                    .col(boolean_null("diagnosis_agrees"))
                    .col(boolean_null("treatment_agrees"))
                    .col(text_null("risk_notes"))
                    .col(text_null("outcome_notes"))
                    .col(text_null("cost_notes"))
                    .col(text_null("comparison_summary"))
                    .col(timestamp_with_time_zone_null("compared_at"))
                    .foreign_key(&mut fk("case_rounds", "case_id", "cases"))
                    .foreign_key(&mut fk("case_rounds", "specialist_id", "specialists"))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("ux_case_rounds", "case_rounds", &["case_id", "round"], true)).await?;

        manager
            .create_table(
                Table::create()
                    .table("opinions")
                    .col(pk_auto("id"))
                    .col(integer("case_id"))
                    .col(integer("round"))
                    .col(string("clinician"))
                    .col(text("diagnosis"))
                    .col(text("treatment_plan"))
                    .col(boolean("recommends_surgery"))
                    .col(text("notes"))
                    .col(timestamp_with_time_zone("recorded_at"))
                    .col(integer_null("recorded_by"))
                    .foreign_key(&mut fk("opinions", "case_id", "cases"))
                    .foreign_key(&mut fk("opinions", "recorded_by", "users"))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("ux_opinions_round", "opinions", &["case_id", "round"], true)).await?;

        manager
            .create_table(
                Table::create()
                    .table("case_records")
                    .col(pk_auto("id"))
                    .col(integer("case_id"))
                    .col(string("kind"))
                    .col(string("status"))
                    .col(timestamp_with_time_zone_null("requested_at"))
                    .col(timestamp_with_time_zone_null("received_at"))
                    .col(text("note"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(&mut fk("case_records", "case_id", "cases"))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("ux_case_records_kind", "case_records", &["case_id", "kind"], true)).await?;

        manager
            .create_table(
                Table::create()
                    .table("stage_history")
                    .col(pk_auto("id"))
                    .col(integer("case_id"))
                    .col(string_null("from_stage"))
                    .col(string("to_stage"))
                    .col(integer("round"))
                    .col(timestamp_with_time_zone("at"))
                    .col(integer_null("by_user_id"))
                    .col(text_null("note"))
                    .foreign_key(&mut fk("stage_history", "case_id", "cases"))
                    .foreign_key(&mut fk("stage_history", "by_user_id", "users"))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("ix_stage_history_case", "stage_history", &["case_id", "id"], false)).await?;

        // The audit log keeps snapshots (actor email) rather than foreign keys so
        // that an entry stays readable whatever later happens to the row it names.
        manager
            .create_table(
                Table::create()
                    .table("audit_log")
                    .col(pk_auto("id"))
                    .col(timestamp_with_time_zone("at"))
                    .col(integer_null("actor_id"))
                    .col(string("actor"))
                    .col(string("action"))
                    .col(string("entity"))
                    .col(integer_null("entity_id"))
                    .col(integer_null("case_id"))
                    .col(string_null("ip"))
                    .col(text("detail"))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("ix_audit_case", "audit_log", &["case_id", "id"], false)).await?;
        manager.create_index(index("ix_audit_at", "audit_log", &["at"], false)).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "audit_log",
            "stage_history",
            "case_records",
            "opinions",
            "case_rounds",
            "cases",
            "specialists",
            "api_tokens",
            "users",
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
