//! Database schema for SecondLook, as an ordered list of migrations.
//!
//! Every migration must run on both SQLite and PostgreSQL. SQLite cannot add a
//! foreign key to an existing table, so foreign keys are always declared in the
//! `create_table` statement that makes the table.

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_case_workflow;
mod m20261122_000002_staff_web;
mod m20261122_000003_outbox;
mod m20261123_000004_health_probe;
mod m20261123_000005_case_erasure;
mod m20261123_000006_audit_chain;
mod m20261123_000007_tallies;
mod m20261123_000008_remind_at;
mod m20261207_000009_tally_due;
mod m20261207_000010_case_journal;
mod m20261207_000011_case_search;
mod m20261207_000012_password_resets;
mod m20261207_000013_caseload_sorts;
mod m20261207_000014_documents;
mod m20261207_000015_patient_portal;
mod m20261207_000016_records_requests;
mod m20261207_000017_insurance;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_case_workflow::Migration),
            Box::new(m20261122_000002_staff_web::Migration),
            Box::new(m20261122_000003_outbox::Migration),
            Box::new(m20261123_000004_health_probe::Migration),
            Box::new(m20261123_000005_case_erasure::Migration),
            Box::new(m20261123_000006_audit_chain::Migration),
            Box::new(m20261123_000007_tallies::Migration),
            Box::new(m20261123_000008_remind_at::Migration),
            Box::new(m20261207_000009_tally_due::Migration),
            Box::new(m20261207_000010_case_journal::Migration),
            Box::new(m20261207_000011_case_search::Migration),
            Box::new(m20261207_000012_password_resets::Migration),
            Box::new(m20261207_000013_caseload_sorts::Migration),
            Box::new(m20261207_000014_documents::Migration),
            Box::new(m20261207_000015_patient_portal::Migration),
            Box::new(m20261207_000016_records_requests::Migration),
            Box::new(m20261207_000017_insurance::Migration),
        ]
    }
}
