//! Care partners: family members or friends a patient (or their advocate)
//! invites to the portal of their case, with the rights chosen for them —
//! always to see where the case stands, and if granted to upload records
//! and to edit the questions; never to sign consent or invite others.
//! Removing a care partner stops their links at once.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::Deserialize;

use crate::{
    db::entities::portal_partner,
    error::{AppError, AppResult, FieldErrors},
    validate::{check_email, check_text, limits},
};

/// Most care partners a case may have at once, and invite in a day (each
/// invitation is an email to an address the inviter typed).
pub const MOST_PARTNERS: u64 = 10;

/// Whom to invite, and what they may do.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invitation {
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub may_upload: bool,
    #[serde(default)]
    pub may_edit_questions: bool,
    /// They get the consultation reminders the patient gets.
    #[serde(default)]
    pub gets_reminders: bool,
}

impl Invitation {
    pub fn check(&self) -> AppResult<()> {
        let mut errors = FieldErrors::new();
        check_text(&mut errors, "name", &self.name, limits::NAME, true);
        check_email(&mut errors, "email", &self.email);
        errors.into_result()
    }
}

/// What a care partner may do, in words ("… may see where the second
/// opinion stands, send records").
pub fn rights(partner: &portal_partner::Model) -> Vec<&'static str> {
    let mut rights = vec!["see where the second opinion stands, the appointment and the questions for the specialist"];
    if partner.may_upload {
        rights.push("send records");
    }
    if partner.may_edit_questions {
        rights.push("add and change the questions");
    }
    if partner.gets_reminders {
        rights.push("get the appointment reminders");
    }
    rights
}

/// The care partners of a case still able to use the portal, in the order invited.
pub async fn current<C: ConnectionTrait>(conn: &C, case_id: i32) -> AppResult<Vec<portal_partner::Model>> {
    Ok(portal_partner::Entity::find()
        .filter(portal_partner::Column::CaseId.eq(case_id))
        .filter(portal_partner::Column::RevokedAt.is_null())
        .order_by_asc(portal_partner::Column::Id)
        .limit(MOST_PARTNERS)
        .all(conn)
        .await?)
}

/// Adds a care partner to the case (the caller holds the case's write and
/// audits it).
pub async fn add<C: ConnectionTrait>(
    conn: &C,
    case_id: i32,
    invitation: &Invitation,
    invited_by: &str,
    now: DateTime<Utc>,
) -> AppResult<portal_partner::Model> {
    invitation.check()?;
    let email = invitation.email.trim().to_lowercase();
    let existing = current(conn, case_id).await?;
    if existing.iter().any(|p| p.email == email) {
        return Err(AppError::conflict("already_invited", format!("{email} is already a care partner on this case")));
    }
    if existing.len() as u64 >= MOST_PARTNERS {
        return Err(AppError::conflict(
            "too_many_partners",
            format!("a case has at most {MOST_PARTNERS} care partners; remove one first"),
        ));
    }
    let invited_today = portal_partner::Entity::find()
        .filter(portal_partner::Column::CaseId.eq(case_id))
        .filter(portal_partner::Column::InvitedAt.gt(now - chrono::Duration::days(1)))
        .count(conn)
        .await?;
    if invited_today >= MOST_PARTNERS {
        return Err(AppError::conflict(
            "too_many_invitations",
            format!("at most {MOST_PARTNERS} invitations a day; try again tomorrow"),
        ));
    }
    Ok(portal_partner::ActiveModel {
        case_id: Set(case_id),
        name: Set(invitation.name.trim().to_string()),
        email: Set(email),
        may_upload: Set(invitation.may_upload),
        may_edit_questions: Set(invitation.may_edit_questions),
        gets_reminders: Set(invitation.gets_reminders),
        invited_at: Set(now),
        invited_by: Set(invited_by.to_string()),
        revoked_at: Set(None),
        ..Default::default()
    }
    .insert(conn)
    .await?)
}

/// Removes care partner `partner_id` of the case and withdraws their links.
pub async fn remove<C: ConnectionTrait>(
    conn: &C,
    case_id: i32,
    partner_id: i32,
    now: DateTime<Utc>,
) -> AppResult<portal_partner::Model> {
    let partner = portal_partner::Entity::find_by_id(partner_id)
        .one(conn)
        .await?
        .filter(|p| p.case_id == case_id && p.revoked_at.is_none())
        .ok_or(AppError::NotFound)?;
    let mut change: portal_partner::ActiveModel = partner.clone().into();
    change.revoked_at = Set(Some(now));
    let removed = change.update(conn).await?;
    super::links::withdraw_partner(conn, partner.id, now).await?;
    Ok(removed)
}
