//! `/account`: the signed-in user's own password.

use askama::Template;
use axum::{
    extract::State,
    http::StatusCode,
    response::{Html, IntoResponse, Redirect, Response},
};

use super::{FormFields, FormState, Nav, SIGNED_IN_AT_KEY, Staff, error::PageResult, render};
use crate::auth::sessions::USER_KEY;
use crate::{
    auth::{throttle, users},
    error::{AppError, FieldErrors},
    state::AppState,
};

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    nav: Nav,
    email: String,
    form: FormState,
}

pub async fn page(staff: Staff) -> PageResult<Html<String>> {
    render(&AccountPage { nav: staff.nav().await, email: staff.user.email.clone(), form: FormState::default() })
}

pub async fn change_password(State(state): State<AppState>, staff: Staff, fields: FormFields) -> PageResult<Response> {
    let new = fields.text("new_password");
    let result = if new != fields.text("repeat_password") {
        Err(FieldErrors::single("repeat_password", "does not match the new password"))
    } else {
        let (policy, _) = throttle::policies(&state.settings.web);
        users::change_password(&state.db, &staff.actor, &policy, &fields.text("current_password"), &new).await.map_err(
            |err| {
                match err {
                    // The strength check names the field `password`; here it is the new one.
                    AppError::Validation(mut errors) => {
                        if let Some(problem) = errors.0.remove("password") {
                            errors.0.insert("new_password".into(), problem);
                        }
                        AppError::Validation(errors)
                    }
                    other => other,
                }
            },
        )
    };
    match result {
        Ok(()) => {
            // Other sessions were ended; this one continues under a new id.
            let keep = AppError::session;
            staff.session.cycle_id().await.map_err(keep)?;
            staff.session.insert(USER_KEY, staff.user.id).await.map_err(keep)?;
            let signed_in_at = staff.session.get::<i64>(SIGNED_IN_AT_KEY).await.map_err(keep)?;
            staff.session.insert(SIGNED_IN_AT_KEY, signed_in_at.unwrap_or_default()).await.map_err(keep)?;
            staff.flash("Your password is changed. Other sessions of yours were signed out.").await;
            Ok(Redirect::to("/account").into_response())
        }
        Err(err) => {
            let status = if matches!(err, AppError::RateLimited(_)) {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            let mut form = FormState::refused("password", &fields, err)?;
            form.values.clear();
            let page = AccountPage { nav: staff.nav().await, email: staff.user.email.clone(), form };
            Ok((status, render(&page)?).into_response())
        }
    }
}
