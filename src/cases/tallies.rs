//! Summary tables (per-stage counts, time-in-stage rollups) kept beside the case tables.

pub async fn rebuild(_db: &sea_orm::DatabaseConnection) -> crate::error::AppResult<()> {
    Ok(())
}
