//! Admin pages: the service overview, users, and API tokens.

use askama::Template;
use axum::{
    extract::State,
    http::StatusCode,
    response::{Html, IntoResponse, Redirect, Response},
};

use super::{FormFields, FormState, Nav, PathId, Staff, charts, error::PageResult, render};
use crate::{
    auth::{
        Role, passwords,
        tokens::{self, TokenListing},
        users::{self, NewUser, UserView},
    },
    db::entities::outbox_message,
    error::{AppError, FieldErrors},
    ids::UserId,
    reminders::{outbox, reset_mail},
    reports::{self, Overview},
    state::AppState,
};

#[derive(Template)]
#[template(path = "admin.html")]
struct OverviewPage {
    nav: Nav,
    overview: Overview,
    pipeline_svg: String,
    weekly_svg: String,
    weeks: Vec<(String, i64, i64)>,
}

fn days(value: &Option<f64>) -> String {
    value.map_or_else(|| "—".to_string(), |d| format!("{d:.1}"))
}

impl OverviewPage {
    fn days(&self, value: &Option<f64>) -> String {
        days(value)
    }
}

pub async fn overview(State(state): State<AppState>, staff: Staff) -> PageResult<Html<String>> {
    staff.require_admin()?;
    let clock = staff.clock();
    let overview = reports::overview_with(&state.db, Some(&state.timings), clock.now).await?;
    let pipeline: Vec<(String, i64)> =
        overview.open_per_stage.iter().map(|(stage, n)| (stage.label().to_string(), *n)).collect();
    let labels: Vec<String> = overview.weekly.iter().map(|w| clock.date(&w.week_start)).collect();
    let opened: Vec<i64> = overview.weekly.iter().map(|w| w.opened).collect();
    let closed: Vec<i64> = overview.weekly.iter().map(|w| w.closed).collect();
    let short_labels: Vec<String> =
        overview.weekly.iter().map(|w| w.week_start.with_timezone(&clock.tz).format("%-d %b").to_string()).collect();
    let page = OverviewPage {
        nav: staff.nav().await,
        pipeline_svg: charts::bars("Open cases per stage", &pipeline),
        weekly_svg: charts::two_lines(
            "Cases opened and closed per week",
            &short_labels,
            ("Opened", &opened),
            ("Closed", &closed),
        ),
        weeks: labels.into_iter().zip(opened).zip(closed).map(|((l, o), c)| (l, o, c)).collect(),
        overview,
    };
    render(&page)
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    nav: Nav,
    users: Vec<UserView>,
    me: i32,
    form: FormState,
    created_password: Option<(String, String)>,
}

async fn users_page(
    state: &AppState,
    staff: &Staff,
    form: FormState,
    created_password: Option<(String, String)>,
) -> PageResult<UsersPage> {
    let users = users::list(&state.db, &staff.actor).await?;
    Ok(UsersPage { nav: staff.nav().await, users, me: staff.user.id, form, created_password })
}

pub async fn users(State(state): State<AppState>, staff: Staff) -> PageResult<Html<String>> {
    staff.require_admin()?;
    let mut form = FormState::default();
    form.values.insert("timezone".into(), "UTC".into());
    form.values.insert("role".into(), "advocate".into());
    render(&users_page(&state, &staff, form, None).await?)
}

pub async fn create_user(State(state): State<AppState>, staff: Staff, fields: FormFields) -> PageResult<Response> {
    staff.require_admin()?;
    let role = Role::parse(&fields.text("role"));
    let typed_password = fields.optional("password");
    let result = match (role, typed_password.clone().map_or_else(passwords::generate, Ok)) {
        (Some(role), Ok(password)) => {
            let new = NewUser {
                email: fields.text("email"),
                name: fields.text("name"),
                role,
                timezone: fields.optional("timezone").unwrap_or_else(|| "UTC".into()),
                password: password.clone(),
            };
            users::create(&state.db, &staff.actor, new).await.map(|u| (u, password))
        }
        (None, _) => Err(FieldErrors::single("role", "choose admin or advocate")),
        (_, Err(err)) => Err(err),
    };
    match result {
        Ok((user, password)) => {
            // A generated password is shown once, on this page, to hand over in person.
            let shown = typed_password.is_none().then(|| (user.email.clone(), password));
            let page = users_page(&state, &staff, FormState::default(), shown).await?;
            staff.flash(format!("{} can now sign in.", user.email)).await;
            Ok((StatusCode::CREATED, render(&page)?).into_response())
        }
        Err(err) => {
            let form = FormState::refused("user", &fields, err)?;
            let page = users_page(&state, &staff, form, None).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
    }
}

pub async fn update_user(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<UserId>,
    fields: FormFields,
) -> PageResult<Response> {
    staff.require_admin()?;
    let role = fields
        .optional("role")
        .map(|r| Role::parse(&r).ok_or_else(|| FieldErrors::single("role", "choose admin or advocate")));
    let role = role.transpose()?;
    let active = fields.optional("active").map(|a| a == "true");
    let saved = users::update_access(&state.db, &staff.actor, id, role, active).await?;
    let what = match active {
        Some(false) => format!("{} is deactivated; their sessions and tokens no longer work.", saved.email),
        Some(true) => format!("{} is active again; API tokens revoked before stay revoked.", saved.email),
        None => format!("{} is now {}.", saved.email, saved.role),
    };
    staff.flash(what).await;
    Ok(Redirect::to("/admin/users").into_response())
}

/// Emails the user a link to choose a new password. The admin never sees
/// the link: it opens the account.
pub async fn send_reset_link(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<UserId>,
) -> PageResult<Response> {
    staff.require_admin()?;
    let (email, expires_at) = reset_mail::send_by_admin(&state.db, &state.settings, &staff.actor, id).await?;
    staff
        .flash(format!(
            "A link to choose a new password is on its way to {email}. It works once, until {}.",
            staff.clock().at(&expires_at)
        ))
        .await;
    Ok(Redirect::to("/admin/users").into_response())
}

#[derive(Template)]
#[template(path = "admin_tokens.html")]
struct TokensPage {
    nav: Nav,
    tokens: Vec<TokenListing>,
    users: Vec<UserView>,
    new_token: Option<String>,
    clock: super::Clock,
    message: Option<String>,
}

async fn tokens_page(
    state: &AppState,
    staff: &Staff,
    new_token: Option<String>,
    message: Option<String>,
) -> PageResult<TokensPage> {
    Ok(TokensPage {
        nav: staff.nav().await,
        tokens: tokens::list(&state.db, &staff.actor).await?,
        users: users::list(&state.db, &staff.actor).await?.into_iter().filter(|u| u.active).collect(),
        new_token,
        clock: staff.clock(),
        message,
    })
}

pub async fn tokens(State(state): State<AppState>, staff: Staff) -> PageResult<Html<String>> {
    staff.require_admin()?;
    render(&tokens_page(&state, &staff, None, None).await?)
}

pub async fn create_token(State(state): State<AppState>, staff: Staff, fields: FormFields) -> PageResult<Response> {
    staff.require_admin()?;
    match tokens::create(&state.db, &staff.actor, &fields.text("email"), &fields.text("label")).await {
        Ok(token) => {
            Ok((StatusCode::CREATED, render(&tokens_page(&state, &staff, Some(token), None).await?)?).into_response())
        }
        Err(AppError::Validation(errors)) => {
            let message = errors.0.values().cloned().collect::<Vec<_>>().join("; ");
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&tokens_page(&state, &staff, None, Some(message)).await?)?)
                .into_response())
        }
        Err(err) => Err(err.into()),
    }
}

pub async fn revoke_token(
    State(state): State<AppState>,
    staff: Staff,
    PathId(id): PathId<i32>,
) -> PageResult<Response> {
    staff.require_admin()?;
    tokens::revoke(&state.db, &staff.actor, id).await?;
    staff.flash("Token revoked.").await;
    Ok(Redirect::to("/admin/tokens").into_response())
}

#[derive(Template)]
#[template(path = "admin_outbox.html")]
struct OutboxPage {
    nav: Nav,
    clock: super::Clock,
    /// (heading, emails, whether they can be retried)
    sections: Vec<(&'static str, Vec<outbox_message::Model>, bool)>,
}

pub async fn outbox_page(State(state): State<AppState>, staff: Staff) -> PageResult<Html<String>> {
    staff.require_admin()?;
    render(&OutboxPage {
        nav: staff.nav().await,
        clock: staff.clock(),
        sections: vec![
            ("Failed", outbox::list(&state.db, outbox::FAILED, 200).await?, true),
            ("Queued", outbox::list(&state.db, outbox::QUEUED, 200).await?, false),
            ("Sent recently", outbox::list(&state.db, outbox::SENT, 100).await?, false),
        ],
    })
}

pub async fn retry_email(State(state): State<AppState>, staff: Staff, PathId(id): PathId<i32>) -> PageResult<Response> {
    staff.require_admin()?;
    outbox::retry(&state.db, &staff.actor, id).await?;
    staff.flash("The email is queued again.").await;
    Ok(Redirect::to("/admin/outbox").into_response())
}
