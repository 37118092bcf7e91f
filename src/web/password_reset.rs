//! Choosing a new password without the old one. `/forgot-password` asks for
//! an email and answers the same whether an account has it or not, and in
//! about the same time; the emailed link leads to `/reset-password/{token}`,
//! where the person chooses a new password. Pages that carry a token tell the
//! browser to send no `Referer`, so the token cannot leak to another site.

use std::time::Duration;

use askama::Template;
use axum::{
    extract::{FromRequestParts, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{Html, IntoResponse, Redirect, Response},
};
use serde_json::json;

use super::{FormFields, FormState, error::PageResult, render};
use crate::{
    audit::{self, Subject},
    auth::{
        password_resets::{self, Link, Redeemed, Stale},
        passwords, throttle,
    },
    error::{AppError, FieldErrors},
    http::{ClientIp, path_param},
    reminders::reset_mail,
    state::AppState,
    validate::check_email,
};

/// The request form's answer never comes sooner than this, so its timing
/// does not tell an address with an account from one without: the work for
/// an account (a link, its email, the audit entry) takes a few milliseconds
/// longer than the audit entry alone.
const ANSWER_NOT_BEFORE: Duration = Duration::from_millis(300);

/// Where the sign-in page says the new password is set.
pub const DONE: &str = "/login?password_reset=done";

#[derive(Template)]
#[template(path = "forgot_password.html")]
struct ForgotPage {
    email: String,
    problem: Option<String>,
    message: Option<String>,
    sent: bool,
    valid_for: String,
}

#[derive(Template)]
#[template(path = "reset_password.html")]
struct ResetPage {
    token: String,
    email: String,
    /// Why the link does not work, instead of the form.
    stale: Option<String>,
    form: FormState,
    min_length: usize,
}

/// "1 hour", "90 minutes": how long links work, for people.
fn in_words(span: Duration) -> String {
    let minutes = span.as_secs() / 60;
    match minutes {
        1 => "1 minute".to_string(),
        60 => "1 hour".to_string(),
        m if m % 60 == 0 => format!("{} hours", m / 60),
        m => format!("{m} minutes"),
    }
}

fn valid_for(state: &AppState) -> String {
    in_words(state.settings.web.password_reset_valid_for)
}

pub async fn forgot_form(State(state): State<AppState>) -> PageResult<Html<String>> {
    render(&ForgotPage {
        email: String::new(),
        problem: None,
        message: None,
        sent: false,
        valid_for: valid_for(&state),
    })
}

pub async fn request_link(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    fields: FormFields,
) -> PageResult<Response> {
    let started = tokio::time::Instant::now();
    let answer = answer_request(&state, ip, &fields).await;
    tokio::time::sleep_until(started + ANSWER_NOT_BEFORE).await;
    answer
}

async fn answer_request(state: &AppState, ip: Option<String>, fields: &FormFields) -> PageResult<Response> {
    let typed = fields.text("email");
    let email = typed.trim().to_lowercase();
    let mut page = ForgotPage { email: typed, problem: None, message: None, sent: false, valid_for: valid_for(state) };
    let mut errors = FieldErrors::new();
    check_email(&mut errors, "email", &email);
    if let Some(problem) = errors.0.remove("email") {
        page.problem = Some(problem);
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response());
    }
    let address = ip.clone().unwrap_or_else(|| "unknown".to_string());
    let actor = password_resets::requester(&email, ip);
    let refused = |reason: &str| json!({ "reason": reason });
    if let Some(until) = password_resets::claim_request(&state.db, &email, &address).await? {
        let subject = Subject::named("password_reset");
        audit::record(&state.db, &actor, "auth.password_reset_refused", subject, refused("too_many_requests")).await?;
        page.message = Some(format!(
            "Too many links were asked for with this email address, or from your network, in the last hour. If an \
             account exists for that address, the links sent already still work: look in your inbox and spam \
             folder. Or try again in about {} minutes.",
            throttle::minutes_left(until)
        ));
        return Ok((StatusCode::TOO_MANY_REQUESTS, render(&page)?).into_response());
    }
    match password_resets::account(&state.db, &email).await? {
        Some(user) if user.active => {
            reset_mail::send_on_request(&state.db, &state.settings, &actor, &user).await?;
        }
        Some(user) => {
            let subject = Subject::of("user", user.id);
            audit::record(&state.db, &actor, "auth.password_reset_refused", subject, refused("account_inactive"))
                .await?;
        }
        None => {
            let subject = Subject::named("password_reset");
            audit::record(&state.db, &actor, "auth.password_reset_refused", subject, refused("no_account")).await?;
        }
    }
    page.sent = true;
    page.email.clear();
    Ok(render(&page)?.into_response())
}

/// The `{token}` of a reset link, as written; a malformed one is looked at
/// like an unknown one, so the person gets the page that explains.
pub struct LinkToken(String);

impl FromRequestParts<AppState> for LinkToken {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        Ok(LinkToken(path_param(parts, "token").await.unwrap_or_default()))
    }
}

/// A token travels in this page's address and form: no `Referer` may carry it on.
fn without_referrer(mut response: Response) -> Response {
    response.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

fn stale_page(state: &AppState, stale: Stale) -> PageResult<Response> {
    let (status, why) = match stale {
        Stale::Unknown => (
            StatusCode::NOT_FOUND,
            "This link is not one SecondLook sent, or only part of it arrived: some mail programs break long \
             links over two lines."
                .to_string(),
        ),
        Stale::Used => (StatusCode::GONE, "This link was used already. Each link works only once.".to_string()),
        Stale::Withdrawn => (
            StatusCode::GONE,
            "This link was withdrawn: the account's password was changed, or the account was deactivated, after \
             it was sent."
                .to_string(),
        ),
        Stale::Expired => (
            StatusCode::GONE,
            format!("This link has expired: links work for {} after they are asked for.", valid_for(state)),
        ),
    };
    let page = ResetPage {
        token: String::new(),
        email: String::new(),
        stale: Some(why),
        form: FormState::default(),
        min_length: passwords::MIN_LENGTH,
    };
    Ok(without_referrer((status, render(&page)?).into_response()))
}

pub async fn choose_form(State(state): State<AppState>, LinkToken(token): LinkToken) -> PageResult<Response> {
    match password_resets::look_up(&state.db, &token).await? {
        Link::Usable { user, .. } => {
            let page = ResetPage {
                token,
                email: user.email,
                stale: None,
                form: FormState::default(),
                min_length: passwords::MIN_LENGTH,
            };
            Ok(without_referrer(render(&page)?.into_response()))
        }
        Link::Stale(stale, _) => stale_page(&state, stale),
    }
}

pub async fn choose_submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    fields: FormFields,
) -> PageResult<Response> {
    let token = fields.text("token");
    let email = match password_resets::look_up(&state.db, &token).await? {
        Link::Usable { user, .. } => user.email,
        Link::Stale(stale, user_id) => {
            password_resets::record_refused(&state.db, stale, user_id, ip).await?;
            return stale_page(&state, stale);
        }
    };
    let new = fields.text("new_password");
    let outcome = if new != fields.text("repeat_password") {
        Err(FieldErrors::single("repeat_password", "does not match the new password"))
    } else {
        password_resets::redeem(&state.db, &token, &new, ip).await
    };
    match outcome {
        Ok(Redeemed::Done { .. }) => Ok(without_referrer(Redirect::to(DONE).into_response())),
        Ok(Redeemed::Refused(stale)) => stale_page(&state, stale),
        Err(AppError::Validation(mut errors)) => {
            // The strength check names the field `password`; here it is the new one.
            if let Some(problem) = errors.0.remove("password") {
                errors.0.insert("new_password".into(), problem);
            }
            let mut form = FormState::refused("password", &fields, AppError::Validation(errors))?;
            form.values.clear();
            let page = ResetPage { token, email, stale: None, form, min_length: passwords::MIN_LENGTH };
            Ok(without_referrer((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response()))
        }
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn how_long_links_work_reads_as_words() {
        assert_eq!(in_words(Duration::from_secs(3600)), "1 hour");
        assert_eq!(in_words(Duration::from_secs(2 * 3600)), "2 hours");
        assert_eq!(in_words(Duration::from_secs(90 * 60)), "90 minutes");
        assert_eq!(in_words(Duration::from_secs(60)), "1 minute");
    }
}
