//! Signing in and out. Failed attempts are counted per account and per
//! address; the answer is the same whether the email exists or not.

use std::sync::OnceLock;

use askama::Template;
use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;
use tower_sessions::Session;

use super::{FormFields, PageQuery, SIGNED_IN_AT_KEY, Staff, error::PageResult, render};
use crate::auth::sessions::USER_KEY;
use crate::{
    audit::{self, Subject},
    auth::{
        Actor, passwords,
        throttle::{self, Verdict},
    },
    db::entities::user,
    error::AppError,
    http::ClientIp,
    state::AppState,
};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    email: String,
    next: String,
    message: Option<String>,
    notice: Option<String>,
    /// A form sent after the session ended, carried through the sign-in.
    unsent: Option<Unsent>,
}

/// A form that arrived after its sender's session had ended: where it was
/// going and what was typed in it, so that signing in again loses nothing.
/// It travels in the sign-in form itself, never stored on the server.
#[derive(Debug, Clone)]
pub struct Unsent {
    pub action: String,
    pub fields: Vec<(String, String)>,
}

const UNSENT_ACTION: &str = "unsent_action";
const UNSENT_PREFIX: &str = "unsent.";

impl Unsent {
    /// The form carried in a sign-in form's fields, if any; only to a path on this site.
    fn carried_in(fields: &FormFields) -> Option<Unsent> {
        let action = fields.optional(UNSENT_ACTION)?;
        let action = safe_next(Some(action.as_str()));
        if action == "/" {
            return None;
        }
        let mut carried: Vec<(String, String)> = fields
            .0
            .iter()
            .filter_map(|(name, value)| name.strip_prefix(UNSENT_PREFIX).map(|n| (n.to_string(), value.clone())))
            .collect();
        carried.sort();
        Some(Unsent { action, fields: carried })
    }
}

/// The sign-in page for a form that arrived after the session ended: it
/// says so and carries the form along.
pub fn sign_in_to_send(unsent: Unsent) -> PageResult<Response> {
    let page = LoginPage {
        email: String::new(),
        next: unsent.action.clone(),
        message: None,
        notice: Some(
            "Your session ended before this form was sent, so nothing was saved yet. Sign in again: what you \
             typed is kept and you can send it next."
                .into(),
        ),
        unsent: Some(unsent),
    };
    Ok((StatusCode::UNAUTHORIZED, render(&page)?).into_response())
}

#[derive(Template)]
#[template(path = "resend.html")]
struct ResendPage {
    unsent: Unsent,
    /// Where "do not send" leads: the case, or the home page.
    back: String,
}

impl ResendPage {
    /// A form field's name as a person reads it: `treatment_plan` → "Treatment plan".
    fn label(&self, name: &str) -> String {
        let words = match name {
            "body" => "note",
            "to" => "move to",
            other => other,
        };
        let spaced = words.replace(['_', '.'], " ");
        let mut chars = spaced.chars();
        chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
    }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    signed_out: Option<String>,
    #[serde(default)]
    password_reset: Option<String>,
}

/// Only a path on this site, so a crafted link cannot bounce people
/// elsewhere. Browsers drop tabs and line breaks from addresses and read a
/// backslash as a slash, so `/\t/evil.example` or `/\\evil.example` would
/// lead off site: anything with control characters, backslashes or a
/// second leading slash is refused, and what is left must parse as a path.
pub fn safe_next(next: Option<&str>) -> String {
    let acceptable = |n: &str| {
        n.len() <= 2048
            && n.starts_with('/')
            && !n[1..].starts_with(['/', '\\'])
            && !n.chars().any(|c| c.is_control() || c == '\\' || c.is_whitespace())
            && n.parse::<axum::http::uri::PathAndQuery>().is_ok()
    };
    match next {
        Some(n) if acceptable(n) => n.to_string(),
        _ => "/".to_string(),
    }
}

pub async fn form(session: Session, PageQuery(query): PageQuery<LoginQuery>) -> PageResult<Response> {
    if session.get::<i32>(USER_KEY).await.ok().flatten().is_some() {
        return Ok(Redirect::to(&safe_next(query.next.as_deref())).into_response());
    }
    let notice = if query.password_reset.is_some() {
        Some("Your new password is set, and every session of your account was signed out. Sign in with it.".to_string())
    } else {
        query.signed_out.map(|_| "You are signed out.".to_string())
    };
    let page =
        LoginPage { email: String::new(), next: safe_next(query.next.as_deref()), message: None, notice, unsent: None };
    Ok(render(&page)?.into_response())
}

/// A hash to check passwords against when the email is unknown, so that
/// both cases take the same time.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| passwords::hash("not the password of anyone at all").unwrap_or_default())
}

pub async fn submit(
    State(state): State<AppState>,
    session: Session,
    ClientIp(ip): ClientIp,
    fields: FormFields,
) -> PageResult<Response> {
    let email = fields.text("email").trim().to_lowercase();
    let password = fields.text("password");
    let next = safe_next(fields.optional("next").as_deref());
    let unsent = Unsent::carried_in(&fields);
    let ip = ip.unwrap_or_else(|| "unknown".to_string());
    let (account_policy, address_policy) = throttle::policies(&state.settings.web);
    let account_key = throttle::account_key(&email);
    let address_key = throttle::address_key(&ip);
    let mut attempt = Actor::system("sign-in");
    attempt.label = audit::typed_email_label(&email);
    attempt.ip = Some(ip.clone());
    let refuse =
        |page: LoginPage, status: StatusCode| -> PageResult<Response> { Ok((status, render(&page)?).into_response()) };

    // Each attempt is counted before its password is looked at (see
    // `throttle`); a refused one is not counted against the address.
    let (account_verdict, account) = throttle::claim_attempt(&state.db, &account_key, &account_policy).await?;
    let (verdicts, refused_until) = match account_verdict {
        Verdict::Refuse { until } => ([account_verdict, account_verdict], Some(until)),
        Verdict::Allow { .. } => {
            let (address_verdict, _) = throttle::claim_attempt(&state.db, &address_key, &address_policy).await?;
            if let Verdict::Refuse { until } = address_verdict {
                throttle::give_back_attempt(&state.db, &account_key, &account_policy).await?;
                ([account_verdict, address_verdict], Some(until))
            } else {
                ([account_verdict, address_verdict], None)
            }
        }
    };
    if let Some(until) = refused_until {
        audit::record(
            &state.db,
            &attempt,
            "auth.sign_in_refused",
            Subject { entity: "sign_in", entity_id: None, case_id: None },
            serde_json::json!({}),
        )
        .await?;
        let minutes = throttle::minutes_left(until);
        let message =
            format!("Too many failed sign-ins. Sign-in is paused for about {minutes} minutes; try again later.");
        return refuse(
            LoginPage { email, next, message: Some(message), notice: None, unsent },
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let delay = verdicts
        .iter()
        .map(|v| match v {
            Verdict::Allow { delay } => *delay,
            Verdict::Refuse { .. } => std::time::Duration::ZERO,
        })
        .max()
        .unwrap_or_default();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }

    let found = user::Entity::find().filter(user::Column::Email.eq(&email)).one(&state.db).await?.filter(|u| u.active);
    let stored = found.as_ref().and_then(|u| u.password_hash.clone()).unwrap_or_else(|| dummy_hash().to_string());
    let candidate = password.clone();
    let matches = tokio::task::spawn_blocking(move || passwords::verify(&candidate, &stored))
        .await
        .map_err(|e| AppError::broken("password check", e))?;
    let Some(user) = found.filter(|_| matches && !password.is_empty()) else {
        audit::record(
            &state.db,
            &attempt,
            "auth.sign_in_failed",
            Subject { entity: "sign_in", entity_id: None, case_id: None },
            serde_json::json!({ "failures": account.count }),
        )
        .await?;
        let message = if account.is_locked(crate::db::now()) {
            "Email or password is wrong. Too many failed sign-ins: sign-in is paused for a while.".to_string()
        } else {
            "Email or password is wrong.".to_string()
        };
        return refuse(
            LoginPage { email, next, message: Some(message), notice: None, unsent },
            StatusCode::UNAUTHORIZED,
        );
    };

    throttle::clear(&state.db, &account_key).await?;
    throttle::give_back_attempt(&state.db, &address_key, &address_policy).await?;
    // A new session id at sign-in, so an id planted before cannot be used after.
    session.cycle_id().await.map_err(AppError::session)?;
    session.insert(USER_KEY, user.id).await.map_err(AppError::session)?;
    session.insert(SIGNED_IN_AT_KEY, chrono::Utc::now().timestamp()).await.map_err(AppError::session)?;
    let role = user.role;
    let actor = Actor::user(user.id, &user.email, role, Some(ip));
    audit::record(&state.db, &actor, "auth.sign_in", Subject::of("user", user.id), serde_json::json!({})).await?;
    if let Some(unsent) = unsent {
        // Sent again only by the person, from a page that shows it: the form
        // may no longer fit the case, which can have moved on meanwhile.
        let back = super::case_in_path(&unsent.action).map_or_else(|| "/".to_string(), |id| format!("/cases/{id}"));
        return Ok(render(&ResendPage { unsent, back })?.into_response());
    }
    Ok(Redirect::to(&next).into_response())
}

pub async fn sign_out(State(state): State<AppState>, staff: Staff) -> PageResult<Response> {
    audit::record(&state.db, &staff.actor, "auth.sign_out", Subject::of("user", staff.user.id), serde_json::json!({}))
        .await?;
    staff.session.flush().await.map_err(AppError::session)?;
    Ok(Redirect::to("/login?signed_out=1").into_response())
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/cases/4")), "/cases/4");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
        assert_eq!(safe_next(Some("/\t/evil.example")), "/");
        assert_eq!(safe_next(Some("/\r\n/evil.example")), "/");
        assert_eq!(safe_next(Some("/cases\\..\\evil")), "/");
        assert_eq!(safe_next(Some("/ /evil.example")), "/");
        assert_eq!(safe_next(Some("/cases?q=a%20b&stage=records_requested")), "/cases?q=a%20b&stage=records_requested");
    }
}
