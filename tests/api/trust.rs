//! Defects an attacker found, each pinned by a test: lockout bursts, hostile
//! parameters, open redirects, headers, revoked tokens, directory edits and
//! patient-facing wording.

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{Backend, PASSWORD, TestApp, web_client};

crate::on_both_databases!(
    a_parallel_burst_cannot_get_past_the_account_lockout,
    a_parallel_burst_cannot_get_past_the_address_lockout,
    the_current_password_check_is_throttled_too,
);

/// Sends `guesses` (email, password) to `/login` all at once from `address`
/// and returns each answer's status, in the order they were sent.
async fn burst(app: &TestApp, address: &str, guesses: Vec<(String, String)>) -> Vec<StatusCode> {
    let login = format!("{}/login", app.base);
    let sends = guesses.into_iter().map(|(email, password)| {
        let login = login.clone();
        async move {
            web_client()
                .post(&login)
                .header("x-forwarded-for", address)
                .form(&[("email", email.as_str()), ("password", password.as_str())])
                .send()
                .await
                .map(|r| r.status())
                .expect("every guess is answered")
        }
    });
    join_all(sends).await
}

async fn count_audit(app: &TestApp, action: &str) -> u64 {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    use secondlook::db::entities::audit_entry;
    audit_entry::Entity::find().filter(audit_entry::Column::Action.eq(action)).count(&app.db).await.expect("count")
}

fn checked(statuses: &[StatusCode]) -> usize {
    statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED || **s == StatusCode::SEE_OTHER).count()
}

async fn a_parallel_burst_cannot_get_past_the_account_lockout(backend: Backend) {
    let Some(app) = TestApp::start_with(backend, |s| s.server.trust_forwarded_for = true).await else { return };
    let lock_after = app.settings.web.account_lockout_after as usize;

    // 200 wrong passwords for one account at once, from many addresses.
    let guesses: Vec<_> = (0..200).map(|n| ("advocate@example.org".to_string(), format!("wrong guess {n}"))).collect();
    let statuses = burst(&app, "198.51.100.1", guesses).await;
    assert!(checked(&statuses) <= lock_after, "{} guesses were checked: {statuses:?}", checked(&statuses));
    assert!(
        statuses.iter().all(|s| [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(s)),
        "{statuses:?}"
    );
    assert!(count_audit(&app, "auth.sign_in_failed").await <= lock_after as u64);

    // A 40-guess burst on another account, the right password 30th.
    let guesses: Vec<_> = (0..40)
        .map(|n| {
            let password = if n == 29 { PASSWORD.to_string() } else { format!("wrong guess {n}") };
            ("other@example.org".to_string(), password)
        })
        .collect();
    let statuses = burst(&app, "198.51.100.2", guesses).await;
    assert_ne!(statuses[29], StatusCode::SEE_OTHER, "the right password got in after the lockout: {statuses:?}");
    assert!(checked(&statuses) <= lock_after, "{statuses:?}");
    assert_eq!(count_audit(&app, "auth.sign_in").await, 0, "nobody signed in");
    // The account is locked even for its owner now, from anywhere.
    let statuses = burst(&app, "198.51.100.3", vec![("other@example.org".into(), PASSWORD.into())]).await;
    assert_eq!(statuses, vec![StatusCode::TOO_MANY_REQUESTS]);
}

async fn a_parallel_burst_cannot_get_past_the_address_lockout(backend: Backend) {
    let Some(app) = TestApp::start_with(backend, |s| s.server.trust_forwarded_for = true).await else { return };
    let lock_after = app.settings.web.address_lockout_after as usize;
    // A spray: one guess each at many accounts, all from one address.
    let guesses: Vec<_> = (0..60).map(|n| (format!("person{n}@example.org"), "Winter2026!".to_string())).collect();
    let statuses = burst(&app, "203.0.113.7", guesses).await;
    assert!(checked(&statuses) <= lock_after, "{} guesses were checked: {statuses:?}", checked(&statuses));
    assert!(statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count() >= 60 - lock_after);
    // That address is paused even for a real account; another address is not.
    let statuses = burst(&app, "203.0.113.7", vec![("advocate@example.org".into(), PASSWORD.into())]).await;
    assert_eq!(statuses, vec![StatusCode::TOO_MANY_REQUESTS]);
    let statuses = burst(&app, "203.0.113.8", vec![("advocate@example.org".into(), PASSWORD.into())]).await;
    assert_eq!(statuses, vec![StatusCode::SEE_OTHER]);

    // Successful sign-ins do not use up an office's allowance.
    let office = "203.0.113.9";
    for _ in 0..lock_after + 5 {
        let statuses = burst(&app, office, vec![("advocate@example.org".into(), PASSWORD.into())]).await;
        assert_eq!(statuses, vec![StatusCode::SEE_OTHER]);
    }
}

async fn the_current_password_check_is_throttled_too(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let client = app.signed_in("advocate@example.org").await;
    let url = format!("{}/account/password", app.base);
    let new = "a brand new long password";
    let change = |current: &'static str| {
        let client = client.clone();
        let url = url.clone();
        async move {
            client
                .post(&url)
                .form(&[("current_password", current), ("new_password", new), ("repeat_password", new)])
                .send()
                .await
                .expect("answered")
        }
    };
    let statuses: Vec<StatusCode> =
        join_all((0..30).map(|_| change("a wrong guess"))).await.into_iter().map(|r| r.status()).collect();
    let checked = statuses.iter().filter(|s| **s == StatusCode::UNPROCESSABLE_ENTITY).count();
    assert!(checked <= app.settings.web.account_lockout_after as usize, "{statuses:?}");
    let refused = change(PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.text().await.expect("page").contains("Too many wrong passwords"));
    // The lock covers signing in as well.
    let statuses = burst(&app, "127.0.0.1", vec![("advocate@example.org".into(), PASSWORD.into())]).await;
    assert_eq!(statuses, vec![StatusCode::TOO_MANY_REQUESTS]);
}
