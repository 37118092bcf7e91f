//! Defects an attacker found, each pinned by a test: lockout bursts, hostile
//! parameters, open redirects, headers, revoked tokens, directory edits and
//! patient-facing wording.

use futures_util::future::join_all;
use reqwest::{StatusCode, header};
use serde_json::json;

use crate::common::{Backend, PASSWORD, TestApp, web_client};

crate::on_both_databases!(
    a_parallel_burst_cannot_get_past_the_account_lockout,
    a_parallel_burst_cannot_get_past_the_address_lockout,
    the_current_password_check_is_throttled_too,
    out_of_range_parameters_answer_readable_errors,
    nul_characters_and_far_dates_are_refused_alike_on_both_databases,
    next_never_leads_off_site,
    answers_carry_the_security_headers,
    only_admins_edit_the_specialists_directory,
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

    // A 40-guess attack on another account with the right password 30th: the
    // first 29 go out at once, then the rest at once. (Within one burst the
    // server may take them in any order, and a right password among the
    // first five checked would rightly get in.)
    let guess = |n: usize| {
        let password = if n == 29 { PASSWORD.to_string() } else { format!("wrong guess {n}") };
        ("other@example.org".to_string(), password)
    };
    let mut statuses = burst(&app, "198.51.100.2", (0..29).map(guess).collect()).await;
    statuses.extend(burst(&app, "198.51.100.2", (29..40).map(guess).collect()).await);
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

async fn get_page(client: &reqwest::Client, url: &str) -> (StatusCode, String) {
    let response = client.get(url).send().await.expect("answered, not dropped");
    let status = response.status();
    (status, response.text().await.expect("body"))
}

async fn out_of_range_parameters_answer_readable_errors(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let b = &app.base;
    let web = app.signed_in("advocate@example.org").await;
    let long_search = format!("/?q={}", "a".repeat(201));
    for (path, expected) in [
        ("/?page=18446744073709551615", StatusCode::UNPROCESSABLE_ENTITY),
        ("/?page=10001", StatusCode::UNPROCESSABLE_ENTITY),
        ("/?page=18446744073709551616", StatusCode::BAD_REQUEST),
        ("/?page=-1", StatusCode::BAD_REQUEST),
        ("/?advocate=abc", StatusCode::BAD_REQUEST),
        (long_search.as_str(), StatusCode::UNPROCESSABLE_ENTITY),
        ("/?page=3", StatusCode::OK),
    ]
    .map(|(p, s)| (p.to_string(), s))
    {
        let (status, page) = get_page(&web, &format!("{b}{path}")).await;
        assert_eq!(status, expected, "{path}");
        if status != StatusCode::OK {
            assert!(page.contains("<h1>"), "{path} answers a readable page: {page}");
        }
    }
    // An oversized form gets a page that says nothing was saved, not a reset.
    let id = app.open_case(&app.advocate.token, "Big Form").await;
    let huge = "x".repeat(app.settings.server.max_body_bytes + 10);
    let response = web
        .post(format!("{b}/cases/{id}/details"))
        .form(&[("summary", huge.as_str()), ("urgency", "routine")])
        .send()
        .await
        .expect("answered, not reset");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(response.text().await.expect("page").contains("nothing was saved"));

    let token = &app.advocate.token;
    for path in [
        "/api/v1/cases?limit=18446744073709551616",
        "/api/v1/cases?limit=0",
        "/api/v1/cases?advocate_id=99999999999",
        "/api/v1/cases?cursor=%FF%FE",
        "/api/v1/specialists?limit=501",
    ] {
        let (status, body) = app.get(token, path).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
        assert_eq!(body["error"]["code"], "validation_failed", "{path}");
    }
    assert_eq!(app.get(token, "/api/v1/cases/18446744073709551615").await.0, StatusCode::NOT_FOUND);
}

async fn nul_characters_and_far_dates_are_refused_alike_on_both_databases(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let b = &app.base;
    let web = app.signed_in("advocate@example.org").await;
    for path in ["/?q=%00", "/?q=a%00b", "/specialists?q=%00", "/specialists?specialty=x%00"] {
        let (status, page) = get_page(&web, &format!("{b}{path}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {page}");
        assert!(page.contains("not allowed"), "{path}");
    }
    let token = &app.advocate.token;
    for path in ["/api/v1/cases?q=%00", "/api/v1/specialists?q=x%00y", "/api/v1/cases?stage=%00"] {
        let (status, body) = app.get(token, path).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
    }
    // Sign-in with a NUL in the email: refused, not a server error.
    let response = web_client()
        .post(format!("{b}/login"))
        .form(&[("email", "a\0b@example.org"), ("password", "whatever it is")])
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = get_page(&web_client(), &format!("{b}/u/abc%00def")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // JSON bodies: a NUL anywhere is named; far dates are refused.
    let id = app.open_case(token, "Far Dates").await;
    let mut body = crate::common::new_case("Nul\u{0}Name");
    body["summary"] = json!("ok");
    let (status, answer) = app.post(token, "/api/v1/cases", body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(answer["error"]["fields"]["patient.name"].is_string(), "{answer}");
    let (status, answer) = app.patch(token, &format!("/api/v1/cases/{id}"), json!({ "summary": "a\u{0}b" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(answer["error"]["fields"]["summary"].is_string(), "{answer}");
    let specialist = app.add_specialist("Dr. Far", true).await;
    let moved = json!({ "to": "specialist_chosen", "specialist_id": specialist });
    assert_eq!(app.move_case(token, id, moved).await.0, StatusCode::OK);
    for when in ["-4714-11-24T00:00:00Z", "-0001-01-01T00:00:00Z", "0999-01-01T00:00:00Z", "+12000-01-01T00:00:00Z"] {
        let visit = json!({ "scheduled_at": when, "mode": "virtual" });
        let (status, answer) = app.put(token, &format!("/api/v1/cases/{id}/consultation"), visit).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{when}: {answer}");
        assert!(answer["error"]["fields"]["scheduled_at"].is_string(), "{when}: {answer}");
    }
    let (status, page) = {
        let response = web
            .post(format!("{b}/cases/{id}/consultation"))
            .form(&[("scheduled_at", "0001-01-01T10:00"), ("mode", "virtual")])
            .send()
            .await
            .expect("answered");
        (response.status(), response.text().await.expect("page"))
    };
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("between the years 1900 and 2199"), "{page}");
    // Nothing was stored by any of it.
    let (_, case) = app.get(token, &format!("/api/v1/cases/{id}")).await;
    assert!(case["rounds"][1]["consultation"]["scheduled_at"].is_null(), "{case}");
}

async fn next_never_leads_off_site(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let b = &app.base;
    for next in [
        "/\t/evil.example",
        "//evil.example",
        "/\\evil.example",
        "https://evil.example",
        "/\r\n/x",
        "/ok\r\nSet-Cookie: a=b",
    ] {
        let response = web_client()
            .post(format!("{b}/login"))
            .form(&[("email", "advocate@example.org"), ("password", PASSWORD), ("next", next)])
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{next:?}");
        let location = response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert_eq!(location, "/", "{next:?}");
    }
    // Already signed in: the sign-in page sends people on, but only on site.
    let web = app.signed_in("advocate@example.org").await;
    for query in ["next=%2F%09%2Fevil.example", "next=%2F%0D%0A%2Fevil", "next=%2Fcases%2Fnew"] {
        let response = web.get(format!("{b}/login?{query}")).send().await.expect("answered");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{query}");
        let location = response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let expected = if query.ends_with("new") { "/cases/new" } else { "/" };
        assert_eq!(location, expected, "{query}");
    }
}

async fn answers_carry_the_security_headers(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let b = &app.base;
    let header_of = |response: &reqwest::Response, name: &str| {
        response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
    };
    let api = app.client.get(format!("{b}/api/v1/cases")).bearer_auth(&app.advocate.token).send().await.expect("api");
    let refused = app.client.get(format!("{b}/api/v1/cases")).send().await.expect("api");
    let page = web_client().get(format!("{b}/login")).send().await.expect("page");
    for (what, response) in [("API", &api), ("refused API", &refused), ("page", &page)] {
        assert_eq!(header_of(response, "x-content-type-options"), "nosniff", "{what}");
        assert_eq!(header_of(response, "referrer-policy"), "no-referrer", "{what}");
        assert!(header_of(response, "permissions-policy").contains("camera=()"), "{what}");
        assert_eq!(header_of(response, "cache-control"), "no-store", "{what}");
        assert!(header_of(response, "strict-transport-security").is_empty(), "no HSTS unless configured");
    }
    // The session cookie ends with the browser session and is HttpOnly.
    let response = web_client()
        .post(format!("{b}/login"))
        .form(&[("email", "advocate@example.org"), ("password", PASSWORD)])
        .send()
        .await
        .expect("sign in");
    let cookie = header_of(&response, "set-cookie");
    assert!(cookie.starts_with("secondlook_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Max-Age") && !cookie.contains("Expires"), "a session cookie: {cookie}");
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");

    // Behind HTTPS: Secure cookies, and HSTS when configured.
    let Some(https) = TestApp::start_with(app.backend(), |s| {
        s.server.public_url = "https://secondlook.example".into();
        s.server.hsts_max_age = std::time::Duration::from_secs(365 * 24 * 3600);
    })
    .await
    else {
        return;
    };
    let response = web_client()
        .post(format!("{}/login", https.base))
        .form(&[("email", "advocate@example.org"), ("password", PASSWORD)])
        .send()
        .await
        .expect("sign in");
    assert!(header_of(&response, "set-cookie").contains("Secure"));
    assert_eq!(header_of(&response, "strict-transport-security"), "max-age=31536000; includeSubDomains");
}

async fn only_admins_edit_the_specialists_directory(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let b = &app.base;
    let entry = json!({
        "name": "Dr. Directory", "specialty": "Cardiology", "institution": "Heart Centre",
        "email": "heart@example.org", "offers_virtual": true,
    });
    let (status, created) = app.post(&app.advocate.token, "/api/v1/specialists", entry.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "advocates may still add entries");
    let id = created["id"].as_i64().expect("id");
    let mut changed = entry.clone();
    changed["email"] = json!("phish@evil.example");
    let (status, body) = app.put(&app.advocate.token, &format!("/api/v1/specialists/{id}"), changed.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let (_, unchanged) = app.get(&app.advocate.token, &format!("/api/v1/specialists/{id}")).await;
    assert_eq!(unchanged["email"], "heart@example.org");
    assert_eq!(count_audit(&app, "access.denied").await, 1, "the refusal is audited");

    let web = app.signed_in("advocate@example.org").await;
    assert_eq!(get_page(&web, &format!("{b}/specialists/{id}/edit")).await.0, StatusCode::FORBIDDEN);
    let response = web
        .post(format!("{b}/specialists/{id}/edit"))
        .form(&[
            ("name", "Dr. Directory"),
            ("specialty", "Cardiology"),
            ("institution", "X"),
            ("email", "phish@evil.example"),
        ])
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.text().await.expect("page").contains("Only admins can edit"));
    let (_, list) = get_page(&web, &format!("{b}/specialists")).await;
    assert!(!list.contains(&format!("/specialists/{id}/edit")), "no edit link for advocates");

    let (status, _) = app.put(&app.admin.token, &format!("/api/v1/specialists/{id}"), changed).await;
    assert_eq!(status, StatusCode::OK, "admins edit");
}

/// A panic in a handler still answers the standard error, through the same
/// layers the API uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_answers_the_standard_500() {
    use axum::{Router, routing::get};
    async fn boom() -> &'static str {
        let parts: Vec<u64> = Vec::new();
        // Stands for any overlooked overflow or index on a request path.
        if parts.is_empty() {
            panic!("handler bug");
        }
        "unreachable"
    }
    let app: Router = secondlook::api::guard(Router::new().route("/boom", get(boom)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    for _ in 0..3 {
        let response = client.get(format!("{base}/boom")).send().await.expect("answered, not dropped");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body: serde_json::Value = response.json().await.expect("JSON");
        assert_eq!(body["error"]["code"], "internal");
    }
}
