//! Password reset links: a link that lets whoever holds it choose a new
//! password for one account, once, for a limited time (`web.password_reset_valid_for`).
//!
//! Only a SHA-256 digest of a link's token is stored: 256 random bits need no
//! slow hash, and a copy of the table opens no account. An emailed link gets
//! its token only when the email is handed to the mail server (see
//! `reminders::reset_mail`), so the queued email holds no working link
//! either; a printed link (the command line) gets its token at once.
//!
//! Using a link sets the password, withdraws the account's other open links,
//! ends all of its sessions and lifts a sign-in lockout, in one transaction
//! with its audit entry. Links are only issued for, and only work for,
//! active accounts; deactivating an account or changing its password
//! withdraws its open links.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, EntityTrait, QueryFilter, prelude::Expr,
};
use serde_json::json;

use crate::{
    audit::{self, Subject},
    auth::{
        Actor, passwords,
        throttle::{self, Verdict},
    },
    db::{
        self,
        entities::{password_reset, session, sign_in_failure, user},
    },
    error::{AppError, AppResult, FieldErrors},
    secrets::digest,
};

/// A link is this path on the public URL, followed by its token.
pub const LINK_PATH: &str = "/reset-password/";

/// The address a link's `token` opens.
pub fn link(public_url: &str, token: &str) -> String {
    format!("{public_url}{LINK_PATH}{token}")
}

/// Who asked for a link, as the audit trail and the email put it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestedBy {
    /// Someone who typed the account's email into the sign-in page's form.
    Themselves,
    Admin,
    CommandLine,
}

impl RequestedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestedBy::Themselves => "self",
            RequestedBy::Admin => "admin",
            RequestedBy::CommandLine => "cli",
        }
    }
}

/// How many links one typed email, and one client address, may ask for
/// within [`REQUEST_WINDOW`]. Each request emails someone: the limits keep
/// the form from being used to flood a mailbox or to probe many addresses.
/// They are counted per typed email whether or not it has an account, so
/// being refused says nothing about which addresses exist.
pub const REQUESTS_PER_EMAIL: i32 = 3;
pub const REQUESTS_PER_ADDRESS: i32 = 20;
pub const REQUEST_WINDOW: Duration = Duration::hours(1);

fn new_token() -> AppResult<String> {
    crate::secrets::link_token()
}

/// Whether `token` could be one of ours (see [`crate::secrets::is_link_token`]).
pub fn well_formed(token: &str) -> bool {
    crate::secrets::is_link_token(token)
}

/// A link is usable while it is neither used nor withdrawn and has not expired.
fn usable(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(password_reset::Column::UsedAt.is_null())
        .add(password_reset::Column::WithdrawnAt.is_null())
        .add(password_reset::Column::ExpiresAt.gt(now))
}

/// How long links work, from the setting.
pub fn valid_for(setting: std::time::Duration) -> Duration {
    Duration::from_std(setting).unwrap_or(Duration::hours(1))
}

/// The account with this email, if any (deactivated ones too).
pub async fn account<C: ConnectionTrait>(conn: &C, email: &str) -> AppResult<Option<user::Model>> {
    Ok(user::Entity::find().filter(user::Column::Email.eq(email.trim().to_lowercase())).one(conn).await?)
}

/// Opens a link for `user_id`, working until `expires_at`. Given a `token`
/// it works at once; without one it waits for [`mint`].
pub async fn open<C: ConnectionTrait>(
    conn: &C,
    user_id: i32,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    token: Option<&str>,
) -> AppResult<password_reset::Model> {
    Ok(password_reset::ActiveModel {
        user_id: Set(user_id),
        token_hash: Set(token.map(digest)),
        created_at: Set(now),
        expires_at: Set(expires_at),
        used_at: Set(None),
        withdrawn_at: Set(None),
        ..Default::default()
    }
    .insert(conn)
    .await?)
}

/// The audit entry for a link issued to `user_id`. `via` says how it
/// travels: `email`, or `printed` for the operator to hand over.
pub async fn record_issued(
    txn: &DatabaseTransaction,
    actor: &Actor,
    user_id: i32,
    reset_id: i32,
    requested_by: RequestedBy,
    via: &str,
) -> AppResult<()> {
    let detail = json!({ "reset_id": reset_id, "requested_by": requested_by.as_str(), "via": via });
    audit::record(txn, actor, "user.password_reset_requested", Subject::of("user", user_id), detail).await?;
    Ok(())
}

/// Gives the usable link `reset_id` a new token and returns it, or `None`
/// when the link was used, withdrawn or has expired. A token given before
/// stops working: only the newest one is stored.
pub async fn mint(db: &DatabaseConnection, reset_id: i32) -> AppResult<Option<(String, password_reset::Model)>> {
    let token = new_token()?;
    let now = db::now();
    let txn = db::begin_write(db).await?;
    let changed = password_reset::Entity::update_many()
        .col_expr(password_reset::Column::TokenHash, Expr::value(digest(&token)))
        .filter(password_reset::Column::Id.eq(reset_id))
        .filter(usable(now))
        .exec(&txn)
        .await?
        .rows_affected;
    if changed == 0 {
        return Ok(None);
    }
    let row = password_reset::Entity::find_by_id(reset_id).one(&txn).await?;
    txn.commit().await?;
    Ok(row.map(|row| (token, row)))
}

/// Issues a link for the active account with `email` and returns its token
/// and when it expires, for the operator to hand over: nothing is emailed.
pub async fn issue_printed(
    db: &DatabaseConnection,
    actor: &Actor,
    email: &str,
    valid_for: Duration,
) -> AppResult<(String, DateTime<Utc>)> {
    let owner = account(db, email).await?.ok_or_else(|| FieldErrors::single("email", "no user has this email"))?;
    if !owner.active {
        return Err(AppError::conflict(
            "account_inactive",
            format!("{} is deactivated; reactivate the account before resetting its password", owner.email),
        ));
    }
    let token = new_token()?;
    let now = db::now();
    let expires_at = now + valid_for;
    let txn = db::begin_write(db).await?;
    let reset = open(&txn, owner.id, now, expires_at, Some(&token)).await?;
    record_issued(&txn, actor, owner.id, reset.id, RequestedBy::CommandLine, "printed").await?;
    txn.commit().await?;
    Ok((token, expires_at))
}

/// Withdraws every usable link of `user_id`; returns how many there were.
pub async fn withdraw_open<C: ConnectionTrait>(conn: &C, user_id: i32, now: DateTime<Utc>) -> AppResult<u64> {
    Ok(password_reset::Entity::update_many()
        .col_expr(password_reset::Column::WithdrawnAt, Expr::value(now))
        .filter(password_reset::Column::UserId.eq(user_id))
        .filter(usable(now))
        .exec(conn)
        .await?
        .rows_affected)
}

/// Why a link does not work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// Not a link we issued, or one cut short.
    Unknown,
    Used,
    /// Replaced by a password change, or its account was deactivated.
    Withdrawn,
    Expired,
}

impl Stale {
    /// The word for the audit trail.
    pub fn reason(self) -> &'static str {
        match self {
            Stale::Unknown => "unknown_link",
            Stale::Used => "link_used",
            Stale::Withdrawn => "link_withdrawn",
            Stale::Expired => "link_expired",
        }
    }
}

/// What a link's token leads to.
#[derive(Debug, Clone)]
pub enum Link {
    Usable {
        reset: password_reset::Model,
        user: user::Model,
    },
    /// With the account it was for, when known.
    Stale(Stale, Option<i32>),
}

/// Looks up the link `token` opens.
pub async fn look_up<C: ConnectionTrait>(conn: &C, token: &str) -> AppResult<Link> {
    if !well_formed(token) {
        return Ok(Link::Stale(Stale::Unknown, None));
    }
    let Some(reset) =
        password_reset::Entity::find().filter(password_reset::Column::TokenHash.eq(digest(token))).one(conn).await?
    else {
        return Ok(Link::Stale(Stale::Unknown, None));
    };
    let owner = Some(reset.user_id);
    let stale = if reset.used_at.is_some() {
        Some(Stale::Used)
    } else if reset.withdrawn_at.is_some() {
        Some(Stale::Withdrawn)
    } else if reset.expires_at <= db::now() {
        Some(Stale::Expired)
    } else {
        None
    };
    if let Some(stale) = stale {
        return Ok(Link::Stale(stale, owner));
    }
    match user::Entity::find_by_id(reset.user_id).one(conn).await?.filter(|u| u.active) {
        Some(user) => Ok(Link::Usable { reset, user }),
        // Deactivating withdraws links; this covers one made in between.
        None => Ok(Link::Stale(Stale::Withdrawn, owner)),
    }
}

/// What became of a new password sent with a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// The password is set; `sessions_ended` sessions were signed out.
    Done {
        user_id: i32,
        sessions_ended: u64,
    },
    Refused(Stale),
}

/// Sets `new_password` on the account the link `token` opens, for someone
/// at `ip`. A password too weak is a validation error and leaves the link
/// usable; a link that does not work is `Refused` (and audited).
pub async fn redeem(
    db: &DatabaseConnection,
    token: &str,
    new_password: &str,
    ip: Option<String>,
) -> AppResult<Redeemed> {
    let (reset, owner) = match look_up(db, token).await? {
        Link::Usable { reset, user } => (reset, user),
        Link::Stale(stale, user_id) => return refuse(db, stale, user_id, ip).await,
    };
    passwords::check_strength(new_password)?;
    let hash = passwords::hash_blocking(new_password.to_string()).await?;
    let now = db::now();
    let txn = db::begin_write(db).await?;
    // Claimed under the same conditions that made it usable, so of two forms
    // sent with one link only one sets a password.
    let claimed = password_reset::Entity::update_many()
        .col_expr(password_reset::Column::UsedAt, Expr::value(now))
        .filter(password_reset::Column::Id.eq(reset.id))
        .filter(usable(now))
        .exec(&txn)
        .await?
        .rows_affected;
    let current = user::Entity::find_by_id(owner.id).one(&txn).await?.filter(|u| u.active && claimed == 1);
    let Some(current) = current else {
        txn.rollback().await?;
        let stale = match look_up(db, token).await? {
            Link::Stale(stale, _) => stale,
            Link::Usable { .. } => Stale::Used,
        };
        return refuse(db, stale, Some(owner.id), ip).await;
    };
    let key = throttle::account_key(&current.email);
    let actor = Actor::user(current.id, &current.email, current.role, ip);
    let mut row: user::ActiveModel = current.into();
    row.password_hash = Set(Some(hash));
    row.updated_at = Set(now);
    row.update(&txn).await?;
    let withdrawn = withdraw_open(&txn, owner.id, now).await?;
    let sessions_ended =
        session::Entity::delete_many().filter(session::Column::UserId.eq(owner.id)).exec(&txn).await?.rows_affected;
    // The lockout guards the old password against guessing; whoever chose
    // the new one has shown they hold the account's mailbox (or were handed
    // the link by an admin).
    sign_in_failure::Entity::delete_by_id(key).exec(&txn).await?;
    let detail = json!({ "reset_id": reset.id, "links_withdrawn": withdrawn, "sessions_ended": sessions_ended });
    audit::record(&txn, &actor, "user.password_reset", Subject::of("user", owner.id), detail).await?;
    txn.commit().await?;
    Ok(Redeemed::Done { user_id: owner.id, sessions_ended })
}

/// Records that someone at `ip` tried to use a link that does not work.
pub async fn record_refused(
    db: &DatabaseConnection,
    stale: Stale,
    user_id: Option<i32>,
    ip: Option<String>,
) -> AppResult<()> {
    let mut actor = Actor::system("password-reset");
    actor.ip = ip;
    let subject = user_id.map_or(Subject::named("password_reset"), |id| Subject::of("user", id));
    audit::record(db, &actor, "auth.password_reset_refused", subject, json!({ "reason": stale.reason() })).await?;
    Ok(())
}

async fn refuse(
    db: &DatabaseConnection,
    stale: Stale,
    user_id: Option<i32>,
    ip: Option<String>,
) -> AppResult<Redeemed> {
    record_refused(db, stale, user_id, ip).await?;
    Ok(Redeemed::Refused(stale))
}

fn request_policy(lock_after: i32) -> throttle::Policy {
    // No slowing down: a wait would only hold the answer page back.
    throttle::Policy { slow_down_after: i32::MAX, lock_after, window: REQUEST_WINDOW }
}

/// Counts a request for a link for the typed `email` from `ip` (see
/// [`REQUESTS_PER_EMAIL`]). `Some(until)` when it is one too many; a request
/// refused for its address is not counted against the email.
pub async fn claim_request(db: &DatabaseConnection, email: &str, ip: &str) -> AppResult<Option<DateTime<Utc>>> {
    let email_policy = request_policy(REQUESTS_PER_EMAIL);
    let address_policy = request_policy(REQUESTS_PER_ADDRESS);
    let email_key = format!("reset-{}", throttle::account_key(email));
    let address_key = format!("reset-{}", throttle::address_key(ip));
    if let Verdict::Refuse { until } = throttle::claim_attempt(db, &email_key, &email_policy).await?.0 {
        return Ok(Some(until));
    }
    if let Verdict::Refuse { until } = throttle::claim_attempt(db, &address_key, &address_policy).await?.0 {
        throttle::give_back_attempt(db, &email_key, &email_policy).await?;
        return Ok(Some(until));
    }
    Ok(None)
}

/// The actor of someone asking for a link by typing `email`: nobody known
/// yet, labelled by a digest of what they typed (see `audit::typed_email_label`).
pub fn requester(email: &str, ip: Option<String>) -> Actor {
    let mut actor = Actor::anonymous(ip);
    actor.label = audit::typed_email_label_in("password-reset", email);
    actor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_recognised() {
        let a = new_token().expect("random");
        let b = new_token().expect("random");
        assert_ne!(a, b);
        assert!(well_formed(&a), "{a}");
        assert!(!well_formed(&a[..a.len() - 1]), "a link cut short");
        assert!(!well_formed(&format!("{}=", &a[..a.len() - 1])));
        assert!(!well_formed("../../etc/passwd"));
        assert_eq!(link("https://example.org", "abc"), "https://example.org/reset-password/abc");
    }

    #[test]
    fn refusals_name_their_reason() {
        let reasons: Vec<&str> =
            [Stale::Unknown, Stale::Used, Stale::Withdrawn, Stale::Expired].iter().map(|s| s.reason()).collect();
        assert_eq!(reasons, ["unknown_link", "link_used", "link_withdrawn", "link_expired"]);
    }
}
