//! The orders the caseload can be sorted in besides due date — newest or
//! oldest opened, patient name — each read along a partial index over the
//! open cases, for everyone's list and for one advocate's, so a page of a
//! sorted list costs the same at any number of cases.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEXES: [(&str, &str); 4] = [
    ("ix_cases_open_opened", "cases (id) WHERE closed_at IS NULL"),
    ("ix_cases_open_advocate_opened", "cases (advocate_id, id) WHERE closed_at IS NULL"),
    ("ix_cases_open_patient", "cases (patient_name, id) WHERE closed_at IS NULL"),
    ("ix_cases_open_advocate_patient", "cases (advocate_id, patient_name, id) WHERE closed_at IS NULL"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        for (name, on) in INDEXES {
            conn.execute_unprepared(&format!("CREATE INDEX {name} ON {on}")).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        for (name, _) in INDEXES {
            conn.execute_unprepared(&format!("DROP INDEX {name}")).await?;
        }
        Ok(())
    }
}
