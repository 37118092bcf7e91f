//! API tokens: shown once at creation, stored only as a SHA-256 digest. A
//! token of 256 random bits needs no slow hash; the digest only keeps a
//! database leak from handing out working tokens.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Duration;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    prelude::Expr,
};

use crate::{
    audit::{self, Subject},
    auth::{Actor, random_bytes},
    db::{
        self,
        entities::{api_token, user},
    },
    error::{AppError, AppResult, FieldErrors},
    validate::{check_line, limits},
};

const PREFIX: &str = "sl_";

pub use crate::secrets::digest;

/// Creates a token for the user with `email`; returns the token text, which
/// is never stored or shown again.
pub async fn create(db: &DatabaseConnection, actor: &Actor, email: &str, label: &str) -> AppResult<String> {
    let mut errors = FieldErrors::new();
    check_line(&mut errors, "label", label, limits::NAME, false);
    errors.into_result()?;
    let owner = user::Entity::find()
        .filter(user::Column::Email.eq(email.trim().to_lowercase()))
        .one(db)
        .await?
        .filter(|u| u.active)
        .ok_or_else(|| FieldErrors::single("email", "no active user has this email"))?;
    let token = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()?));
    let txn = db::begin_write(db).await?;
    let row = api_token::ActiveModel {
        user_id: Set(owner.id),
        label: Set(label.to_string()),
        token_hash: Set(digest(&token)),
        created_at: Set(db::now()),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        actor,
        "token.create",
        Subject::of("api_token", row.id),
        serde_json::json!({ "user_id": owner.id }),
    )
    .await?;
    txn.commit().await?;
    Ok(token)
}

#[derive(Debug, Clone)]
pub struct TokenListing {
    pub id: i32,
    pub user_email: String,
    pub label: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Every token (never its text), newest first. Admins only.
pub async fn list(db: &DatabaseConnection, actor: &Actor) -> AppResult<Vec<TokenListing>> {
    if !actor.is_admin() {
        return Err(AppError::Forbidden("only admins can manage API tokens".into()));
    }
    let rows = api_token::Entity::find().order_by_desc(api_token::Column::Id).all(db).await?;
    let owners = user::Entity::find().all(db).await?;
    Ok(rows
        .into_iter()
        .map(|t| TokenListing {
            id: t.id,
            user_email: owners.iter().find(|u| u.id == t.user_id).map_or_else(String::new, |u| u.email.clone()),
            label: t.label,
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        })
        .collect())
}

pub async fn revoke(db: &DatabaseConnection, actor: &Actor, token_id: i32) -> AppResult<()> {
    if !actor.is_admin() {
        return Err(AppError::Forbidden("only admins can manage API tokens".into()));
    }
    let txn = db::begin_write(db).await?;
    let result = api_token::Entity::update_many()
        .col_expr(api_token::Column::RevokedAt, Expr::value(db::now()))
        .filter(api_token::Column::Id.eq(token_id))
        .filter(api_token::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    if result.rows_affected == 0 {
        return Err(AppError::NotFound);
    }
    audit::record(&txn, actor, "token.revoke", Subject::of("api_token", token_id), serde_json::json!({})).await?;
    txn.commit().await?;
    Ok(())
}

/// Finds the active user a bearer token belongs to.
pub async fn authenticate(db: &DatabaseConnection, token: &str, ip: Option<String>) -> AppResult<Actor> {
    if !token.starts_with(PREFIX) || token.len() > 128 {
        return Err(AppError::Unauthenticated);
    }
    let found = api_token::Entity::find()
        .filter(api_token::Column::TokenHash.eq(digest(token)))
        .filter(api_token::Column::RevokedAt.is_null())
        .one(db)
        .await?
        .ok_or(AppError::Unauthenticated)?;
    let owner =
        user::Entity::find_by_id(found.user_id).one(db).await?.filter(|u| u.active).ok_or(AppError::Unauthenticated)?;
    let role = owner.role;
    let now = db::now();
    // Recording every use would turn each read into a write; once a minute is enough.
    // Bookkeeping only: a database that cannot take this write must not turn
    // a read into a failure.
    if found.last_used_at.is_none_or(|t| now - t > Duration::minutes(1)) {
        let stamped = api_token::Entity::update_many()
            .col_expr(api_token::Column::LastUsedAt, Expr::value(now))
            .filter(api_token::Column::Id.eq(found.id))
            .exec(db)
            .await;
        if let Err(err) = stamped {
            tracing::warn!(error = %err, "could not record when an API token was last used");
        }
    }
    Ok(Actor::user(owner.id, &owner.email, role, ip))
}

#[cfg(test)]
mod tests {
    use super::digest;

    #[test]
    fn digest_is_hex_sha256() {
        assert_eq!(digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
