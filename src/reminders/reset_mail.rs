//! The password reset email. It goes through the outbox like every email —
//! one per link, keyed by the link, so it is never queued twice — but the
//! queued row holds no working link: where the token goes, its text has a
//! placeholder, and [`fill`] gives the link its token only when a sender is
//! about to hand the email to the mail server. So the outbox, which backups
//! and exports copy, never holds a token, and the database holds only its
//! digest. A retry gets a fresh token: a link that may have gone out with a
//! failed attempt stops working, and the newest email is the one that counts.
//!
//! The email names no case, patient or health information: only the
//! account, the link and until when it works.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sea_orm::{DatabaseConnection, EntityTrait};

use super::{
    outbox::{self, Draft},
    render::{self, Content},
};
use crate::{
    auth::{
        Actor,
        password_resets::{self, RequestedBy},
    },
    config::Settings,
    db::{
        self,
        entities::{outbox_message, user},
    },
    error::{AppError, AppResult},
    ids::UserId,
};

/// The outbox `kind` of reset emails.
pub const KIND: &str = "password_reset";
const KEY_PREFIX: &str = "password_reset:";
/// Stands in the queued text where the token goes; too short to be a token.
const TOKEN_SLOT: &str = "TOKEN-ADDED-WHEN-SENT";

/// Emails a link to `user`, who asked for it from the sign-in page (the
/// caller has checked the account is active). Returns when the link expires.
pub async fn send_on_request(
    db: &DatabaseConnection,
    settings: &Settings,
    actor: &Actor,
    user: &user::Model,
) -> AppResult<DateTime<Utc>> {
    queue(db, settings, actor, user, RequestedBy::Themselves).await
}

/// An admin emails a link to the active account `user_id`. Returns the
/// account's email and when the link expires.
pub async fn send_by_admin(
    db: &DatabaseConnection,
    settings: &Settings,
    actor: &Actor,
    user_id: UserId,
) -> AppResult<(String, DateTime<Utc>)> {
    if !actor.is_admin() {
        return Err(AppError::Forbidden("only admins can send password reset links".into()));
    }
    let user = user::Entity::find_by_id(user_id.get()).one(db).await?.ok_or(AppError::NotFound)?;
    if !user.active {
        return Err(AppError::conflict(
            "account_inactive",
            format!("{} is deactivated; reactivate the account before sending a reset link.", user.email),
        ));
    }
    let expires_at = queue(db, settings, actor, &user, RequestedBy::Admin).await?;
    Ok((user.email, expires_at))
}

/// Opens a link, queues its email and records both, in one transaction.
async fn queue(
    db: &DatabaseConnection,
    settings: &Settings,
    actor: &Actor,
    user: &user::Model,
    requested_by: RequestedBy,
) -> AppResult<DateTime<Utc>> {
    let now = db::now();
    let expires_at = now + password_resets::valid_for(settings.web.password_reset_valid_for);
    let txn = db::begin_write(db).await?;
    let reset = password_resets::open(&txn, user.id, now, expires_at, None).await?;
    let link = password_resets::link(&settings.public_url(), TOKEN_SLOT);
    let (body_text, body_html) = render::parts(&content(user, expires_at, requested_by, link))?;
    let draft = Draft {
        key: format!("{KEY_PREFIX}{}", reset.id),
        case_id: None,
        kind: KIND.to_string(),
        recipient_email: user.email.clone(),
        recipient_name: user.name.clone(),
        subject: SUBJECT.to_string(),
        body_text,
        body_html,
        ics: None,
        unsubscribe_url: None,
        send_after: now,
    };
    outbox::enqueue(&txn, draft).await?;
    password_resets::record_issued(&txn, actor, user.id, reset.id, requested_by, "email").await?;
    txn.commit().await?;
    Ok(expires_at)
}

const SUBJECT: &str = "Choose a new SecondLook password";

fn content(user: &user::Model, expires_at: DateTime<Utc>, requested_by: RequestedBy, link: String) -> Content {
    let tz: Tz = user.timezone.parse().unwrap_or(Tz::UTC);
    let first_name = user.name.split_whitespace().next().unwrap_or("there");
    let (why, if_unexpected) = match requested_by {
        RequestedBy::Themselves => (
            format!(
                "Someone asked for a link to choose a new password for your SecondLook account, {}. If it was \
                 you, use the button below.",
                user.email
            ),
            "If you did not ask for it, ignore this email: your password stays as it is.",
        ),
        RequestedBy::Admin | RequestedBy::CommandLine => (
            format!(
                "An administrator sent you this link to choose a new password for your SecondLook account, {}.",
                user.email
            ),
            "If you did not expect it, tell your administrator; your password stays as it is until the link is used.",
        ),
    };
    Content {
        subject: SUBJECT.to_string(),
        greeting: format!("Hello {first_name},"),
        paragraphs: vec![
            why,
            format!(
                "The link works once, until {}. After that, ask for a new one from the sign-in page.",
                render::when(expires_at, tz)
            ),
            if_unexpected.to_string(),
            "Do not forward this email: the link opens your account.".to_string(),
        ],
        action: Some(("Choose a new password".to_string(), link)),
        footer: render::staff_footer(),
        ..Content::default()
    }
}

/// A queued reset email made ready to send, or why it is not worth sending.
#[derive(Debug, Clone)]
pub enum Filled {
    Ready(Box<outbox_message::Model>),
    /// Its link can no longer be used: sending it would only confuse.
    Pointless(String),
}

/// Gives the link of the reset email `row` a token (replacing any given by
/// an earlier attempt) and puts the token into the email's text.
pub async fn fill(db: &DatabaseConnection, row: &outbox_message::Model) -> AppResult<Filled> {
    let Some(reset_id) = row.dedupe_key.strip_prefix(KEY_PREFIX).and_then(|id| id.parse::<i32>().ok()) else {
        return Ok(Filled::Pointless("this reset email names no reset link".into()));
    };
    Ok(match password_resets::mint(db, reset_id).await? {
        Some((token, _)) => Filled::Ready(Box::new(with_token(row, &token))),
        None => Filled::Pointless(
            "not sent: the reset link was used, withdrawn or expired before the email could go out".into(),
        ),
    })
}

fn with_token(row: &outbox_message::Model, token: &str) -> outbox_message::Model {
    let mut ready = row.clone();
    ready.body_text = row.body_text.replace(TOKEN_SLOT, token);
    ready.body_html = row.body_html.replace(TOKEN_SLOT, token);
    ready
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::auth::Role;

    fn user() -> user::Model {
        let at = Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).single().expect("valid time");
        user::Model {
            id: 7,
            email: "avery@example.org".into(),
            name: "Avery Advocate".into(),
            role: Role::Advocate,
            password_hash: None,
            timezone: "Europe/Berlin".into(),
            active: true,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn the_queued_email_has_a_place_for_the_token_and_says_until_when() {
        let expires = Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).single().expect("valid time");
        let link = password_resets::link("https://secondlook.example", TOKEN_SLOT);
        let content = content(&user(), expires, RequestedBy::Themselves, link);
        let (text, html) = render::parts(&content).expect("renders");
        let slot_link = format!("https://secondlook.example/reset-password/{TOKEN_SLOT}");
        assert!(text.contains(&slot_link) && html.contains(&slot_link), "{text}");
        assert!(text.contains("Hello Avery,"), "{text}");
        assert!(text.contains("until Monday 7 December 2026 at 11:00 (Europe/Berlin)"), "{text}");
        assert!(text.contains("avery@example.org"));

        let now = expires;
        let row = outbox_message::Model {
            id: 1,
            dedupe_key: format!("{KEY_PREFIX}3"),
            case_id: None,
            kind: KIND.into(),
            recipient_email: "avery@example.org".into(),
            recipient_name: "Avery Advocate".into(),
            subject: SUBJECT.into(),
            body_text: text,
            body_html: html,
            ics: None,
            unsubscribe_url: None,
            status: outbox::QUEUED.into(),
            attempts: 0,
            next_attempt_at: now,
            lease_until: None,
            lease_owner: None,
            last_error: None,
            created_at: now,
            sent_at: None,
            updated_at: now,
        };
        let ready = with_token(&row, "the-token");
        assert!(ready.body_text.contains("https://secondlook.example/reset-password/the-token"));
        assert!(ready.body_html.contains("https://secondlook.example/reset-password/the-token"));
        assert!(!ready.body_text.contains(TOKEN_SLOT) && !ready.body_html.contains(TOKEN_SLOT));
        assert!(!password_resets::well_formed(TOKEN_SLOT), "the placeholder opens nothing");
    }
}
