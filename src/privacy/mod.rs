//! Patients' rights over their data: a case's full export (for an access
//! request), erasure of a closed case's identifying data and free text, and
//! the retention rule that erases closed cases after a configured time.

pub mod archive;
pub mod case_export;
pub mod erasure;
pub mod retention;

pub use erasure::erase;

use sea_orm::{DatabaseConnection, EntityTrait, QuerySelect};

use crate::{
    audit::{self, Subject},
    auth::Actor,
    db::entities::case,
    error::{AppError, AppResult},
};

/// Lets admins through. An advocate is refused with 403 on a case of their
/// own and, like everywhere else, with 404 on a case they may not see, so
/// the answer never reveals that a case exists. Refusals are audited.
async fn admins_only(db: &DatabaseConnection, actor: &Actor, case_id: i32, what: &str) -> AppResult<()> {
    let owner: Option<Option<i32>> =
        case::Entity::find_by_id(case_id).select_only().column(case::Column::AdvocateId).into_tuple().one(db).await?;
    let Some(owner) = owner else { return Err(AppError::NotFound) };
    if actor.is_admin() {
        return Ok(());
    }
    audit::record_denied(db, actor, Subject::case(case_id), what).await;
    if actor.may_see_case(case_id, owner) {
        Err(AppError::Forbidden(format!("only admins may do this ({what})")))
    } else {
        Err(AppError::NotFound)
    }
}
