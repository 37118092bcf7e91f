//! Staff accounts: admins and patient advocates.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::Serialize;

use crate::{
    audit::{self, Subject},
    auth::{Actor, Role, password_resets, passwords, throttle},
    db::{
        self,
        entities::{api_token, session, user},
    },
    error::{AppError, AppResult, FieldErrors},
    ids::UserId,
    validate::{check_email, check_line, check_timezone, limits},
};

#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub role: Role,
    pub timezone: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub id: i32,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub timezone: String,
    pub active: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<user::Model> for UserView {
    fn from(u: user::Model) -> Self {
        Self {
            id: u.id,
            email: u.email,
            name: u.name,
            role: u.role,
            timezone: u.timezone,
            active: u.active,
            created_at: u.created_at,
        }
    }
}

pub async fn create(db: &DatabaseConnection, actor: &Actor, new: NewUser) -> AppResult<UserView> {
    let mut errors = FieldErrors::new();
    check_email(&mut errors, "email", &new.email);
    check_line(&mut errors, "name", &new.name, limits::NAME, true);
    check_timezone(&mut errors, "timezone", &new.timezone);
    errors.into_result()?;
    passwords::check_strength(&new.password)?;
    let email = new.email.trim().to_lowercase();
    let password_hash = passwords::hash_blocking(new.password).await?;

    let txn = db::begin_write(db).await?;
    if user::Entity::find().filter(user::Column::Email.eq(&email)).one(&txn).await?.is_some() {
        return Err(FieldErrors::single("email", "a user with this email already exists"));
    }
    let now = db::now();
    let row = user::ActiveModel {
        email: Set(email),
        name: Set(new.name),
        role: Set(new.role),
        password_hash: Set(Some(password_hash)),
        timezone: Set(new.timezone),
        active: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .map_err(|err| match err.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
            FieldErrors::single("email", "a user with this email already exists")
        }
        _ => AppError::from(err),
    })?;
    audit::record(&txn, actor, "user.create", Subject::of("user", row.id), serde_json::json!({ "role": row.role }))
        .await?;
    txn.commit().await?;
    Ok(row.into())
}

pub async fn list(db: &DatabaseConnection, actor: &Actor) -> AppResult<Vec<UserView>> {
    if !actor.is_admin() {
        return Err(AppError::Forbidden("only admins can list users".into()));
    }
    let rows = user::Entity::find().order_by_asc(user::Column::Id).all(db).await?;
    Ok(rows.into_iter().map(UserView::from).collect())
}

/// The most advocates the pages list to name or choose from.
pub const ADVOCATES_LISTED: u64 = 500;

/// Advocate accounts as (id, name, active), oldest first: what the staff
/// pages need to say who has a case and to hand one on. Callers decide who
/// may see the list.
pub async fn advocates(db: &DatabaseConnection) -> AppResult<Vec<(i32, String, bool)>> {
    Ok(user::Entity::find()
        .select_only()
        .columns([user::Column::Id, user::Column::Name, user::Column::Active])
        .filter(user::Column::Role.eq(Role::Advocate))
        .order_by_asc(user::Column::Id)
        .limit(ADVOCATES_LISTED)
        .into_tuple()
        .all(db)
        .await?)
}

pub async fn count(db: &DatabaseConnection) -> AppResult<u64> {
    Ok(user::Entity::find().count(db).await?)
}

pub async fn find_active(db: &DatabaseConnection, id: i32) -> AppResult<Option<user::Model>> {
    Ok(user::Entity::find_by_id(id).one(db).await?.filter(|u| u.active))
}

/// On an empty database, creates the first admin. Returns the generated
/// password when none was supplied, so the caller can show it once.
pub async fn bootstrap_admin(
    db: &DatabaseConnection,
    email: &str,
    name: &str,
    password: Option<String>,
) -> AppResult<Option<BootstrapOutcome>> {
    if count(db).await? > 0 {
        return Ok(None);
    }
    let (password, generated) = match password.filter(|p| !p.is_empty()) {
        Some(p) => (p, false),
        None => (passwords::generate()?, true),
    };
    let new = NewUser {
        email: email.to_string(),
        name: name.to_string(),
        role: Role::Admin,
        timezone: "UTC".to_string(),
        password: password.clone(),
    };
    match create(db, &Actor::system("bootstrap"), new).await {
        Ok(created) => {
            Ok(Some(BootstrapOutcome { email: created.email, generated_password: generated.then_some(password) }))
        }
        // Another instance starting at the same moment created the first account.
        Err(_) if count(db).await? > 0 => Ok(None),
        Err(err) => Err(err),
    }
}

pub struct BootstrapOutcome {
    pub email: String,
    pub generated_password: Option<String>,
}

/// Changes a user's role or active flag. Deactivating ends the user's
/// sessions and revokes their API tokens and password reset links at once.
pub async fn update_access(
    db: &DatabaseConnection,
    actor: &Actor,
    user_id: UserId,
    role: Option<Role>,
    active: Option<bool>,
) -> AppResult<UserView> {
    let user_id = user_id.get();
    if !actor.is_admin() {
        return Err(AppError::Forbidden("only admins can change users".into()));
    }
    if actor.user_id == Some(user_id) && (active == Some(false) || role == Some(Role::Advocate)) {
        return Err(AppError::conflict("own_account", "you cannot deactivate yourself or give up your own admin role"));
    }
    let txn = db::begin_write(db).await?;
    let existing = user::Entity::find_by_id(user_id).one(&txn).await?.ok_or(AppError::NotFound)?;
    let mut row: user::ActiveModel = existing.clone().into();
    if let Some(role) = role {
        row.role = Set(role);
    }
    if let Some(active) = active {
        row.active = Set(active);
    }
    row.updated_at = Set(db::now());
    let saved = row.update(&txn).await?;
    let mut tokens_revoked = 0;
    let mut reset_links_withdrawn = 0;
    if active == Some(false) {
        // Also for good: a link still in a mailbox must not reopen the account once it is on again.
        reset_links_withdrawn = password_resets::withdraw_open(&txn, user_id, db::now()).await?;
        session::Entity::delete_many().filter(session::Column::UserId.eq(user_id)).exec(&txn).await?;
        // For good: turning the account on again later brings no old token back.
        tokens_revoked = api_token::Entity::update_many()
            .col_expr(api_token::Column::RevokedAt, sea_orm::prelude::Expr::value(db::now()))
            .filter(api_token::Column::UserId.eq(user_id))
            .filter(api_token::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?
            .rows_affected;
    }
    audit::record(
        &txn,
        actor,
        "user.update",
        Subject::of("user", user_id),
        serde_json::json!({ "role": { "from": existing.role, "to": saved.role }, "active": { "from": existing.active, "to": saved.active }, "tokens_revoked": tokens_revoked, "reset_links_withdrawn": reset_links_withdrawn }),
    )
    .await?;
    txn.commit().await?;
    Ok(saved.into())
}

/// A signed-in user changes their own password. Their other sessions end,
/// and their open password reset links are withdrawn; the session making the
/// change goes on. Checks of the current password count
/// against the account's sign-in lockout, so a session left open is no way
/// around it.
pub async fn change_password(
    db: &DatabaseConnection,
    actor: &Actor,
    policy: &throttle::Policy,
    current: &str,
    new: &str,
) -> AppResult<()> {
    let user_id = actor.user_id.ok_or(AppError::Unauthenticated)?;
    let user = find_active(db, user_id).await?.ok_or(AppError::Unauthenticated)?;
    let key = throttle::account_key(&user.email);
    match throttle::claim_attempt(db, &key, policy).await?.0 {
        throttle::Verdict::Refuse { until } => {
            let minutes = throttle::minutes_left(until);
            return Err(AppError::RateLimited(format!(
                "Too many wrong passwords. Password checks are paused for about {minutes} minutes."
            )));
        }
        throttle::Verdict::Allow { delay } if !delay.is_zero() => tokio::time::sleep(delay).await,
        throttle::Verdict::Allow { .. } => {}
    }
    let stored = user.password_hash.clone().unwrap_or_default();
    let candidate = current.to_string();
    let matches = tokio::task::spawn_blocking(move || passwords::verify(&candidate, &stored))
        .await
        .map_err(|e| AppError::broken("password check", e))?;
    if !matches {
        return Err(FieldErrors::single("current_password", "is not your current password"));
    }
    throttle::clear(db, &key).await?;
    passwords::check_strength(new)?;
    let hash = passwords::hash_blocking(new.to_string()).await?;
    let txn = db::begin_write(db).await?;
    let mut row: user::ActiveModel = user.into();
    row.password_hash = Set(Some(hash));
    row.updated_at = Set(db::now());
    row.update(&txn).await?;
    session::Entity::delete_many().filter(session::Column::UserId.eq(user_id)).exec(&txn).await?;
    // A reset link asked for earlier would otherwise undo the change.
    let withdrawn = password_resets::withdraw_open(&txn, user_id, db::now()).await?;
    let detail = serde_json::json!({ "reset_links_withdrawn": withdrawn });
    audit::record(&txn, actor, "user.password_changed", Subject::of("user", user_id), detail).await?;
    txn.commit().await?;
    Ok(())
}
