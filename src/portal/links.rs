//! Personal links: `/p/{token}` opens the portal of one case for the patient
//! or one care partner. A link is made for each email as it is sent, works
//! for `portal.link_lifetime`, and stops at once when withdrawn (all links
//! of a case) or when its care partner is removed. Only a digest of the
//! token is kept, and the link carries nothing about the patient.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QuerySelect, prelude::Expr,
};

use crate::{
    actor::Actor,
    db::entities::{case, portal_link, portal_partner},
    error::AppResult,
    secrets::{digest, is_link_token, link_token},
};

/// A link is this path on the public URL, followed by its token.
pub const LINK_PATH: &str = "/p/";

pub fn link(public_url: &str, token: &str) -> String {
    format!("{}{LINK_PATH}{token}", public_url.trim_end_matches('/'))
}

/// Someone holding a working portal link: the patient, or a care partner.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub link_id: i32,
    pub case_id: i32,
    pub partner: Option<portal_partner::Model>,
}

impl Visitor {
    pub fn is_patient(&self) -> bool {
        self.partner.is_none()
    }

    /// How the visitor appears in the audit trail: `patient`, or a care
    /// partner by number, so the trail (which is never rewritten) keeps no
    /// name an erasure would have to remove. Pages show the name.
    pub fn label(&self) -> String {
        match &self.partner {
            None => super::PATIENT.to_string(),
            Some(p) => super::partner_label(p.id),
        }
    }

    pub fn actor(&self, ip: Option<String>) -> Actor {
        Actor::portal(self.case_id, self.label(), ip)
    }

    pub fn may_upload(&self) -> bool {
        self.partner.as_ref().is_none_or(|p| p.may_upload)
    }

    pub fn may_edit_questions(&self) -> bool {
        self.partner.as_ref().is_none_or(|p| p.may_edit_questions)
    }

    /// Consent, care partners and the survey are the patient's alone.
    pub fn may_act_for_patient(&self) -> bool {
        self.is_patient()
    }
}

/// Makes a link to the portal of `case_id` for the patient (`partner_id`
/// `None`) or a care partner, working from `now` for `lifetime`, and
/// returns its token.
pub async fn mint<C: ConnectionTrait>(
    conn: &C,
    case_id: i32,
    partner_id: Option<i32>,
    lifetime: Duration,
    now: DateTime<Utc>,
) -> AppResult<String> {
    let token = link_token()?;
    portal_link::ActiveModel {
        case_id: Set(case_id),
        partner_id: Set(partner_id),
        token_hash: Set(Some(digest(&token))),
        created_at: Set(now),
        expires_at: Set(now + lifetime),
        revoked_at: Set(None),
        opened_at: Set(None),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(token)
}

/// What a token opens.
#[derive(Debug, Clone)]
pub enum Opened {
    Open(Visitor),
    /// The link is past its lifetime; a new one may be asked for.
    Expired(portal_link::Model),
    /// The link was withdrawn (or its care partner removed).
    Withdrawn(portal_link::Model),
    /// No such link, or its case's data was erased.
    Unknown,
}

pub async fn open(db: &DatabaseConnection, token: &str, now: DateTime<Utc>) -> AppResult<Opened> {
    if !is_link_token(token) {
        return Ok(Opened::Unknown);
    }
    let Some(link) =
        portal_link::Entity::find().filter(portal_link::Column::TokenHash.eq(digest(token))).one(db).await?
    else {
        return Ok(Opened::Unknown);
    };
    if link.revoked_at.is_some() {
        return Ok(Opened::Withdrawn(link));
    }
    if link.expires_at <= now {
        return Ok(Opened::Expired(link));
    }
    let Some(visitor) = standing(db, &link, now).await? else {
        return Ok(match link.partner_id {
            Some(_) => Opened::Withdrawn(link),
            None => Opened::Unknown,
        });
    };
    portal_link::Entity::update_many()
        .col_expr(portal_link::Column::OpenedAt, Expr::value(now))
        .filter(portal_link::Column::Id.eq(link.id))
        .exec(db)
        .await?;
    Ok(Opened::Open(visitor))
}

/// The visitor a portal session opened with `link_id`, while the link (not
/// withdrawn, not expired), its care partner and its case's data still
/// stand. Asked on every portal request, so a withdrawal takes effect at once.
pub async fn visitor(db: &DatabaseConnection, link_id: i32, now: DateTime<Utc>) -> AppResult<Option<Visitor>> {
    match portal_link::Entity::find_by_id(link_id).one(db).await? {
        Some(link) => standing(db, &link, now).await,
        None => Ok(None),
    }
}

/// The visitor `link` admits, if it, its care partner and its case's data still stand.
async fn standing(
    db: &DatabaseConnection,
    link: &portal_link::Model,
    now: DateTime<Utc>,
) -> AppResult<Option<Visitor>> {
    if link.revoked_at.is_some() || link.expires_at <= now {
        return Ok(None);
    }
    let erased: Option<Option<DateTime<Utc>>> = case::Entity::find_by_id(link.case_id)
        .select_only()
        .column(case::Column::ErasedAt)
        .into_tuple()
        .one(db)
        .await?;
    if !matches!(erased, Some(None)) {
        return Ok(None);
    }
    let partner = match link.partner_id {
        None => None,
        Some(id) => match portal_partner::Entity::find_by_id(id).one(db).await? {
            Some(p) if p.revoked_at.is_none() && p.case_id == link.case_id => Some(p),
            _ => return Ok(None),
        },
    };
    Ok(Some(Visitor { link_id: link.id, case_id: link.case_id, partner }))
}

/// Withdraws every working link of the case; returns how many.
pub async fn withdraw_all<C: ConnectionTrait>(conn: &C, case_id: i32, now: DateTime<Utc>) -> AppResult<u64> {
    withdraw(conn, portal_link::Column::CaseId.eq(case_id), now).await
}

/// Withdraws the links of one care partner.
pub async fn withdraw_partner<C: ConnectionTrait>(conn: &C, partner_id: i32, now: DateTime<Utc>) -> AppResult<u64> {
    withdraw(conn, portal_link::Column::PartnerId.eq(partner_id), now).await
}

async fn withdraw<C: ConnectionTrait>(
    conn: &C,
    whose: sea_orm::sea_query::SimpleExpr,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    Ok(portal_link::Entity::update_many()
        .col_expr(portal_link::Column::RevokedAt, Expr::value(now))
        .filter(whose)
        .filter(portal_link::Column::RevokedAt.is_null())
        .exec(conn)
        .await?
        .rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_the_portal_path_and_the_token_only() {
        assert_eq!(link("https://secondlook.example/", "abc"), "https://secondlook.example/p/abc");
    }
}
