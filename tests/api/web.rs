//! The staff pages over HTTP: every route for every role, sessions, sign-in
//! throttling, forgery protection and escaping.

use reqwest::{StatusCode, header};
use serde_json::json;

use crate::common::{Backend, PASSWORD, TestApp, web_client};

crate::on_both_databases!(
    every_page_answers_each_role_as_it_should,
    advocates_cannot_change_another_advocates_case_through_forms,
    cross_site_posts_are_refused,
    sessions_rotate_end_and_expire,
    page_views_do_not_rewrite_the_session_each_time,
    repeated_failed_sign_ins_are_slowed_then_refused,
    admins_manage_users_and_tokens,
    text_is_escaped_on_every_page,
    a_case_is_worked_through_the_forms,
    notes_and_contacts_are_kept_from_the_case_page,
    the_printable_summary_gives_the_consultation_in_the_patients_time,
    the_stylesheet_is_cached_compressed_and_draws_its_icons,
    admins_assign_cases_from_the_case_page,
    admins_see_who_has_each_case_and_the_unassigned_queue,
    a_form_address_opened_directly_leads_back_to_the_case,
    a_form_sent_after_the_session_ended_is_kept_through_sign_in,
    staff_change_their_own_password,
    the_home_page_starts_with_the_day,
    admins_sort_page_and_assign_several_cases_at_once,
    a_checklist_saved_from_an_older_page_keeps_changes_made_since,
);

async fn status_of(client: &reqwest::Client, url: &str) -> (StatusCode, Option<String>) {
    let response = client.get(url).send().await.expect("request");
    let location = response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).map(String::from);
    (response.status(), location)
}

async fn body_of(client: &reqwest::Client, url: &str) -> String {
    let response = client.get(url).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    response.text().await.expect("body")
}

async fn post_form(client: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
    let response = client.post(url).form(form).send().await.expect("request");
    let status = response.status();
    (status, response.text().await.expect("body"))
}

async fn every_page_answers_each_role_as_it_should(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let mine = app.open_case(&app.advocate.token, "Mine Page").await;
    let theirs = app.open_case(&app.other_advocate.token, "Theirs Page").await;
    let specialist = app.add_specialist("Dr. Pages", true).await;
    let b = &app.base;
    let shared = [
        "/".to_string(),
        "/?stage=records_requested&overdue=true&q=mine&urgency=routine&page=0".to_string(),
        "/cases/new".to_string(),
        format!("/cases/{mine}"),
        format!("/cases/{mine}/summary"),
        "/specialists".to_string(),
        "/specialists?specialty=oncology&q=dr".to_string(),
        "/specialists/new".to_string(),
    ];
    let edit_specialist = format!("/specialists/{specialist}/edit");
    let admin_only = [
        "/admin",
        "/admin/users",
        "/admin/tokens",
        "/admin/outbox",
        "/admin/audit",
        "/admin/audit.csv",
        edit_specialist.as_str(),
    ];
    let foreign = [format!("/cases/{theirs}"), format!("/cases/{theirs}/summary")];

    let anonymous = web_client();
    for path in shared.iter().chain(foreign.iter()).map(String::as_str).chain(admin_only) {
        let (status, location) = status_of(&anonymous, &format!("{b}{path}")).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "anonymous {path}");
        assert!(location.as_deref().is_some_and(|l| l.starts_with("/login?next=")), "anonymous {path}: {location:?}");
    }
    let (status, _) = status_of(&anonymous, &format!("{b}/login")).await;
    assert_eq!(status, StatusCode::OK);

    let advocate = app.signed_in("advocate@example.org").await;
    for path in &shared {
        assert_eq!(status_of(&advocate, &format!("{b}{path}")).await.0, StatusCode::OK, "advocate {path}");
    }
    for path in &foreign {
        assert_eq!(status_of(&advocate, &format!("{b}{path}")).await.0, StatusCode::NOT_FOUND, "advocate {path}");
    }
    for path in admin_only {
        assert_eq!(status_of(&advocate, &format!("{b}{path}")).await.0, StatusCode::FORBIDDEN, "advocate {path}");
    }
    for (path, form) in [
        ("/admin/users", vec![("name", "X"), ("email", "x@example.org"), ("role", "admin")]),
        ("/admin/tokens", vec![("email", "advocate@example.org"), ("label", "mine")]),
        (&*format!("/admin/users/{}", app.other_advocate.id), vec![("active", "false")]),
        ("/admin/tokens/1/revoke", vec![]),
    ] {
        let (status, _) = post_form(&advocate, &format!("{b}{path}"), &form).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "advocate POST {path}");
    }
    for path in ["/cases/abc", "/cases/0", "/nowhere", "/cases/999999"] {
        let (status, _) = status_of(&advocate, &format!("{b}{path}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }

    let admin = app.signed_in("admin@example.org").await;
    for path in shared.iter().chain(foreign.iter()).map(String::as_str).chain(admin_only) {
        assert_eq!(status_of(&admin, &format!("{b}{path}")).await.0, StatusCode::OK, "admin {path}");
    }
    let caseload = body_of(&admin, &format!("{b}/?advocate={}", app.other_advocate.id)).await;
    assert!(caseload.contains("Theirs Page") && !caseload.contains("Mine Page"), "an advocate's caseload view");
    assert!(
        !caseload.contains(&format!("href=\"/cases/{mine}\"")),
        "its activity list shows only that advocate's cases"
    );
    assert!(caseload.contains(&format!("href=\"/cases/{theirs}\"")));
}

async fn advocates_cannot_change_another_advocates_case_through_forms(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let theirs = app.open_case(&app.other_advocate.token, "Not Yours").await;
    let advocate = app.signed_in("advocate@example.org").await;
    let b = &app.base;
    for (suffix, form) in [
        ("transition", vec![("to", "withdrawn"), ("note", "taking over"), ("confirm", "on")]),
        ("hold", vec![("reason", "other")]),
        ("resume", vec![]),
        ("records", vec![("status.lab_results", "received")]),
        ("specialist", vec![("specialist_id", "1")]),
        ("consultation", vec![("scheduled_at", "2026-01-01T10:00"), ("mode", "virtual")]),
        ("opinions", vec![("round", "original"), ("clinician", "x"), ("diagnosis", "x"), ("treatment_plan", "x")]),
        ("comparison", vec![("diagnosis_agrees", "yes"), ("treatment_agrees", "no")]),
        ("decision", vec![("chosen_opinion", "other"), ("reason", "x")]),
        ("details", vec![("summary", "rewritten")]),
    ] {
        let (status, _) = post_form(&advocate, &format!("{b}/cases/{theirs}/{suffix}"), &form).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{suffix}");
    }
    let (_, case) = app.get(&app.other_advocate.token, &format!("/api/v1/cases/{theirs}")).await;
    assert_eq!(case["stage"], "records_requested");
    assert_ne!(case["summary"], "rewritten");
    assert_eq!(case["history"].as_array().map(Vec::len), Some(1));
}

async fn cross_site_posts_are_refused(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let advocate = app.signed_in("advocate@example.org").await;
    let url = format!("{}/cases/new", app.base);
    let form = [
        ("patient.name", "Forged Patient"),
        ("patient.email", "forged@example.org"),
        ("specialty", "Oncology"),
        ("reason", "other"),
        ("urgency", "routine"),
    ];
    for (name, value) in [("origin", "http://evil.example"), ("sec-fetch-site", "cross-site")] {
        let response = advocate.post(&url).header(name, value).form(&form).send().await.expect("sent");
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{name}: {value}");
        assert!(response.text().await.expect("body").contains("sent from another site"));
    }
    let (_, list) = app.get(&app.advocate.token, "/api/v1/cases").await;
    assert!(list["items"].as_array().expect("items").is_empty(), "the forged posts created nothing");

    // The same form from the site itself goes through.
    let response = advocate
        .post(&url)
        .header("origin", app.base.as_str())
        .header("sec-fetch-site", "same-origin")
        .form(&form)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (_, list) = app.get(&app.advocate.token, "/api/v1/cases").await;
    assert_eq!(list["items"].as_array().expect("items").len(), 1);
}

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("secondlook_session="))
        .map(String::from)
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_string()
}

async fn sessions_rotate_end_and_expire(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let plain =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().build().expect("client");
    let home = format!("{}/", app.base);
    // A session id planted before sign-in is not the one used after it.
    let planted = "secondlook_session=AAAAAAAAAAAAAAAAAAAAAA";
    let response = plain
        .post(format!("{}/login", app.base))
        .header(header::COOKIE, planted)
        .form(&[("email", "advocate@example.org"), ("password", PASSWORD)])
        .send()
        .await
        .expect("sign in");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let set_cookie = session_cookie(&response).expect("a session cookie");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    assert!(!set_cookie.contains("Secure"), "not Secure unless configured: {set_cookie}");
    let cookie = cookie_value(&set_cookie);
    assert_ne!(cookie, planted);
    let with = |c: &str| plain.get(&home).header(header::COOKIE, c.to_string()).send();
    assert_eq!(with(&cookie).await.expect("home").status(), StatusCode::OK);
    assert_eq!(with(planted).await.expect("home").status(), StatusCode::SEE_OTHER);

    // Signing out ends the session on the server, not only in this browser.
    let response =
        plain.post(format!("{}/logout", app.base)).header(header::COOKIE, cookie.clone()).send().await.expect("out");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(with(&cookie).await.expect("home").status(), StatusCode::SEE_OTHER, "the old cookie no longer works");

    // Idle timeout.
    let Some(idle_app) =
        TestApp::start_with(backend, |s| s.web.session_idle_timeout = std::time::Duration::from_secs(1)).await
    else {
        return;
    };
    let client = idle_app.signed_in("advocate@example.org").await;
    assert_eq!(status_of(&client, &format!("{}/", idle_app.base)).await.0, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let (status, location) = status_of(&client, &format!("{}/", idle_app.base)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "idle session ended");
    assert!(location.is_some_and(|l| l.starts_with("/login")));

    // Absolute lifetime, even while active.
    let Some(short_app) =
        TestApp::start_with(backend, |s| s.web.session_absolute_lifetime = std::time::Duration::from_secs(2)).await
    else {
        return;
    };
    let client = short_app.signed_in("advocate@example.org").await;
    for _ in 0..2 {
        assert_eq!(status_of(&client, &format!("{}/", short_app.base)).await.0, StatusCode::OK);
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
    assert_eq!(status_of(&client, &format!("{}/", short_app.base)).await.0, StatusCode::SEE_OTHER, "lifetime ran out");
}

fn banner(page: &str) -> String {
    let start = page.find("role=\"alert\">").map(|i| i + "role=\"alert\">".len()).unwrap_or(0);
    page[start..].split('<').next().unwrap_or_default().to_string()
}

async fn repeated_failed_sign_ins_are_slowed_then_refused(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let client = web_client();
    let login = format!("{}/login", app.base);
    let (status, unknown) =
        post_form(&client, &login, &[("email", "nobody@example.org"), ("password", "whatever it is")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, wrong) =
        post_form(&client, &login, &[("email", "advocate@example.org"), ("password", "not the password")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(banner(&unknown), banner(&wrong), "the same message whether or not the account exists");
    assert_eq!(banner(&wrong), "Email or password is wrong.");

    for _ in 0..4 {
        post_form(&client, &login, &[("email", "advocate@example.org"), ("password", "still not it")]).await;
    }
    let (status, page) = post_form(&client, &login, &[("email", "advocate@example.org"), ("password", PASSWORD)]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "even the right password waits out the lockout");
    assert!(banner(&page).contains("Too many failed sign-ins"), "{}", banner(&page));
    // Other accounts are not affected.
    app.signed_in("other@example.org").await;

    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    use secondlook::db::entities::audit_entry;
    let count = |action: &'static str| {
        audit_entry::Entity::find().filter(audit_entry::Column::Action.eq(action)).count(&app.db)
    };
    assert_eq!(count("auth.sign_in_failed").await.expect("count"), 6, "one unknown email and five wrong passwords");
    assert_eq!(count("auth.sign_in_refused").await.expect("count"), 1);
}

async fn admins_manage_users_and_tokens(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let admin = app.signed_in("admin@example.org").await;
    let other = app.signed_in("other@example.org").await;
    let b = &app.base;

    let (status, page) = post_form(
        &admin,
        &format!("{b}/admin/users"),
        &[("name", "New Person"), ("email", "new@example.org"), ("role", "advocate"), ("timezone", "Europe/Oslo")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{page}");
    let password =
        page.split("<code class=\"secret\">").nth(1).and_then(|s| s.split('<').next()).expect("password shown once");
    let fresh = web_client();
    let (status, _) =
        post_form(&fresh, &format!("{b}/login"), &[("email", "new@example.org"), ("password", password)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the new user signs in with the shown password");
    let (status, page) = post_form(
        &admin,
        &format!("{b}/admin/users"),
        &[("name", "Dup"), ("email", "new@example.org"), ("role", "advocate")],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("already exists"));

    // Deactivation stops the user's open sessions and tokens at once.
    let (status, _) =
        post_form(&admin, &format!("{b}/admin/users/{}", app.other_advocate.id), &[("active", "false")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(status_of(&other, &format!("{b}/")).await.0, StatusCode::SEE_OTHER);
    assert_eq!(app.get(&app.other_advocate.token, "/api/v1/cases").await.0, StatusCode::UNAUTHORIZED);
    let (status, _) =
        post_form(&web_client(), &format!("{b}/login"), &[("email", "other@example.org"), ("password", PASSWORD)])
            .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a deactivated user cannot sign in");
    // Turning the account on again brings the person back, not their old tokens.
    let (status, _) =
        post_form(&admin, &format!("{b}/admin/users/{}", app.other_advocate.id), &[("active", "true")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.get(&app.other_advocate.token, "/api/v1/cases").await.0,
        StatusCode::UNAUTHORIZED,
        "revoked for good"
    );
    let (status, _) =
        post_form(&web_client(), &format!("{b}/login"), &[("email", "other@example.org"), ("password", PASSWORD)])
            .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "a re-activated user signs in");
    // An admin cannot lock themselves out.
    let (status, _) = post_form(&admin, &format!("{b}/admin/users/{}", app.admin.id), &[("active", "false")]).await;
    assert_eq!(status, StatusCode::CONFLICT);

    let (status, page) =
        post_form(&admin, &format!("{b}/admin/tokens"), &[("email", "advocate@example.org"), ("label", "reporting")])
            .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = page
        .split("<code class=\"secret\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("token shown once")
        .to_string();
    assert_eq!(app.get(&token, "/api/v1/cases").await.0, StatusCode::OK);
    let listing = body_of(&admin, &format!("{b}/admin/tokens")).await;
    assert!(listing.contains("reporting") && !listing.contains(&token), "the list never shows token text");
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use secondlook::db::entities::api_token;
    let row = api_token::Entity::find()
        .filter(api_token::Column::Label.eq("reporting"))
        .one(&app.db)
        .await
        .expect("query")
        .expect("row");
    let (status, _) = post_form(&admin, &format!("{b}/admin/tokens/{}/revoke", row.id), &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(app.get(&token, "/api/v1/cases").await.0, StatusCode::UNAUTHORIZED);
}

const NASTY: &str = "<script>alert(\"x\")</script> O'Brien & <b>bold</b>";

async fn text_is_escaped_on_every_page(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let advocate = app.signed_in("advocate@example.org").await;
    let b = &app.base;
    let (status, _) = post_form(
        &advocate,
        &format!("{b}/cases/new"),
        &[
            ("patient.name", NASTY),
            ("patient.email", "p@example.org"),
            ("specialty", NASTY),
            ("reason", "uncertain"),
            ("urgency", "expedited"),
            ("summary", NASTY),
            ("patient_questions", NASTY),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, list) = app.get(&app.advocate.token, "/api/v1/cases").await;
    let id = list["items"][0]["id"].as_i64().expect("id");
    let specialist = json!({ "name": NASTY, "specialty": NASTY, "institution": NASTY });
    assert_eq!(app.post(&app.admin.token, "/api/v1/specialists", specialist).await.0, StatusCode::CREATED);
    let note = json!({ "status": "received", "note": NASTY });
    assert_eq!(
        app.put(&app.advocate.token, &format!("/api/v1/cases/{id}/records/lab_results"), note).await.0,
        StatusCode::OK
    );
    let admin = app.signed_in("admin@example.org").await;
    for (client, path) in [
        (&advocate, "/".to_string()),
        (&advocate, format!("/cases/{id}")),
        (&advocate, format!("/cases/{id}/summary")),
        (&advocate, "/specialists".to_string()),
        (&admin, "/admin".to_string()),
    ] {
        let page = body_of(client, &format!("{b}{path}")).await;
        assert!(!page.contains("<script>alert"), "{path} renders a script tag");
        assert!(!page.contains("<b>bold</b>"), "{path} renders markup");
        if path != "/admin" {
            assert!(
                page.contains("&#60;script&#62;") || page.contains("&lt;script&gt;"),
                "{path} shows the text escaped"
            );
        }
    }
}

/// The whole flow over plain HTTP forms, as a browser without JavaScript sends them.
async fn a_case_is_worked_through_the_forms(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let specialist = app.add_specialist("Dr. Form", true).await.to_string();
    let advocate = app.signed_in("advocate@example.org").await;
    let b = &app.base;
    let (status, page) = post_form(
        &advocate,
        &format!("{b}/cases/new"),
        &[
            ("patient.name", ""),
            ("patient.email", "bad"),
            ("specialty", "Oncology"),
            ("reason", "other"),
            ("urgency", "routine"),
            ("summary", "kept text"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("is required") && page.contains("not a valid email address"), "field-level errors");
    assert!(page.contains("kept text"), "what was typed is kept");

    let response = advocate
        .post(format!("{b}/cases/new"))
        .form(&[
            ("patient.name", "Form Patient"),
            ("patient.email", "fp@example.org"),
            ("specialty", "Oncology"),
            ("reason", "surgery_recommended"),
            ("urgency", "routine"),
        ])
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let case_path =
        response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).expect("location").to_string();
    let url = |suffix: &str| format!("{b}{case_path}/{suffix}");
    let ok = |(status, page): (StatusCode, String)| {
        assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    };
    let page = body_of(&advocate, &format!("{b}{case_path}")).await;
    assert!(page.contains("Not yet: choose a specialist first"), "the move button says why it is disabled");

    ok(post_form(
        &advocate,
        &url("records"),
        &[("status.pathology_report", "received"), ("note.pathology_report", "biopsy slides")],
    )
    .await);
    ok(post_form(&advocate, &url("specialist"), &[("specialist_id", &specialist)]).await);
    ok(post_form(&advocate, &url("transition"), &[("to", "specialist_chosen")]).await);
    let (status, page) =
        post_form(&advocate, &url("consultation"), &[("scheduled_at", "not a time"), ("mode", "virtual")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("is not a date and time"));
    let past = (chrono::Utc::now() - chrono::Duration::hours(3)).format("%Y-%m-%dT%H:%M").to_string();
    ok(post_form(
        &advocate,
        &url("consultation"),
        &[("scheduled_at", &past), ("mode", "virtual"), ("location", "https://video.example")],
    )
    .await);
    ok(post_form(&advocate, &url("transition"), &[("to", "consultation_held")]).await);
    ok(post_form(
        &advocate,
        &url("opinions"),
        &[
            ("round", "original"),
            ("clinician", "Dr. One"),
            ("diagnosis", "Hernia"),
            ("treatment_plan", "Surgery"),
            ("recommends_surgery", "on"),
        ],
    )
    .await);
    ok(post_form(
        &advocate,
        &url("opinions"),
        &[("round", "second"), ("clinician", "Dr. Form"), ("diagnosis", "Hernia"), ("treatment_plan", "Physiotherapy")],
    )
    .await);
    let (status, page) = post_form(&advocate, &url("comparison"), &[("risk_notes", "none")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("answer yes or no"));
    ok(post_form(
        &advocate,
        &url("comparison"),
        &[("diagnosis_agrees", "yes"), ("treatment_agrees", "no"), ("summary", "Same diagnosis")],
    )
    .await);
    ok(post_form(&advocate, &url("transition"), &[("to", "opinions_compared")]).await);
    ok(post_form(&advocate, &url("decision"), &[("chosen_opinion", "second"), ("reason", "Avoids surgery")]).await);
    ok(post_form(&advocate, &url("transition"), &[("to", "decision_made")]).await);
    let page = body_of(&advocate, &format!("{b}{case_path}")).await;
    assert!(
        page.contains("<strong>Decided</strong> — the patient follows: Second opinion."),
        "the outcome heads the page"
    );
    assert!(page.contains("Opinions compared → Decision made"), "history in words, not stage codes");
    assert!(
        page.contains("records checklist: Pathology / biopsy report marked received"),
        "the audit line names the record"
    );
    assert!(page.contains("moved to “Decision made”"));
    let (status, page) =
        post_form(&advocate, &url("transition"), &[("to", "withdrawn"), ("note", "too late"), ("confirm", "on")]).await;
    assert_eq!(status, StatusCode::CONFLICT, "a decided case cannot be withdrawn");
    assert!(page.contains("cannot move"));

    let admin = app.signed_in("admin@example.org").await;
    let overview = body_of(&admin, &format!("{b}/admin")).await;
    let outcomes = overview.split("id=\"outcomes\"").nth(1).expect("outcomes section");
    assert!(outcomes.contains("1 decided cases."), "{outcomes}");
    assert!(
        outcomes.contains(
            "<th scope=\"row\">Treatment changed</th><td data-label=\"Cases\">1</td><td data-label=\"Share\">100%</td>"
        ),
        "{outcomes}"
    );
    assert!(
        outcomes
            .contains("<th scope=\"row\">Surgery recommended first, not followed</th><td data-label=\"Cases\">1</td>"),
        "{outcomes}"
    );
    assert!(outcomes.contains("<th scope=\"row\">Diagnosis changed</th><td data-label=\"Cases\">0</td>"), "{outcomes}");
}

async fn notes_and_contacts_are_kept_from_the_case_page(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let id = app.open_case(&app.advocate.token, "Journal Patient").await;
    let advocate = app.signed_in("advocate@example.org").await;
    let b = &app.base;
    let case_url = format!("{b}/cases/{id}");

    let (status, page) = post_form(&advocate, &format!("{case_url}/notes"), &[("body", " ")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("is required"), "the note's problem is shown by the note form");
    let (status, _) = post_form(&advocate, &format!("{case_url}/notes"), &[("body", "Prefers email & texts")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // The confirmation shows where the person is: in the notes, not at the top of the page.
    let page = body_of(&advocate, &case_url).await;
    let (top, rest) = page.split_once("<header class=\"case-head\">").expect("case header");
    let notes_section =
        rest.split("id=\"notes-h\"").nth(1).and_then(|s| s.split("</section>").next()).unwrap_or_default();
    assert!(notes_section.contains("Note added."), "{notes_section}");
    assert!(!top.contains("Note added."), "not at the top");
    // Withdrawing needs the tick that says so; without it the case stays open and the reason stays typed.
    let (status_w, page) =
        post_form(&advocate, &format!("{case_url}/transition"), &[("to", "withdrawn"), ("note", "Moved abroad")]).await;
    assert_eq!(status_w, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("tick the box") && page.contains("Moved abroad"), "the problem is shown, the text kept");
    let (_, case) = app.get(&app.advocate.token, &format!("/api/v1/cases/{id}")).await;
    assert_eq!(case["stage"], "records_requested");
    assert_eq!(status, StatusCode::SEE_OTHER);

    let contact_form = |follow_up: String| {
        vec![
            ("with", "specialist_office".to_string()),
            ("channel", "phone".to_string()),
            ("direction", "outbound".to_string()),
            ("summary", "Booked the consultation slot".to_string()),
            ("follow_up_on", follow_up),
        ]
    };
    let late = contact_form((chrono::Utc::now() - chrono::Duration::days(3)).date_naive().to_string());
    let late: Vec<(&str, &str)> = late.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, page) = post_form(&advocate, &format!("{case_url}/contacts"), &late).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("is in the past") && page.contains("Booked the consultation slot"), "typed text is kept");
    let today = contact_form(chrono::Utc::now().date_naive().to_string());
    let today: Vec<(&str, &str)> = today.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _) = post_form(&advocate, &format!("{case_url}/contacts"), &today).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    let page = body_of(&advocate, &case_url).await;
    assert!(
        page.contains("Prefers email &#38; texts") || page.contains("Prefers email &amp; texts"),
        "the note is listed, escaped"
    );
    assert!(page.contains("phone · outbound"), "the contact is listed");
    assert!(page.contains("Mark follow-up done"));
    let home = body_of(&advocate, &format!("{b}/")).await;
    let follow_up_link = format!("/cases/{id}#contacts");
    assert!(home.contains(&follow_up_link), "the follow-up is on the caseload");
    let other = app.signed_in("other@example.org").await;
    let theirs = body_of(&other, &format!("{b}/")).await;
    assert!(!theirs.contains(&follow_up_link), "another advocate does not see it");

    let (_, contacts) = app.get(&app.advocate.token, &format!("/api/v1/cases/{id}/contacts")).await;
    let contact_id = contacts["items"][0]["id"].as_i64().expect("contact id");
    let (status, _) = post_form(&advocate, &format!("{case_url}/contacts/{contact_id}/done"), &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let page = body_of(&advocate, &case_url).await;
    assert!(page.contains("Follow-up done") && !page.contains("Mark follow-up done"));
    let home = body_of(&advocate, &format!("{b}/")).await;
    assert!(!home.contains(&follow_up_link), "a done follow-up leaves the caseload's follow-ups");

    let withdraw = [("to", "withdrawn"), ("note", "Moved abroad"), ("confirm", "on")];
    let (status, _) = post_form(&advocate, &format!("{case_url}/transition"), &withdraw).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let page = body_of(&advocate, &case_url).await;
    assert!(page.contains("<strong>Withdrawn</strong>: “Moved abroad”"), "the reason heads the page");
}

async fn the_printable_summary_gives_the_consultation_in_the_patients_time(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let token = app.advocate.token.clone();
    let specialist = app.add_specialist("Dr. Zone", true).await;
    // The patient lives in Chicago (common::new_case); the staff member's zone is UTC.
    let id = app.open_case(&token, "Zone Patient").await;
    let (s, b) = app
        .put(&token, &format!("/api/v1/cases/{id}/specialist"), serde_json::json!({ "specialist_id": specialist }))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let moved = serde_json::json!({ "to": "specialist_chosen" });
    assert_eq!(app.move_case(&token, id, moved).await.0, StatusCode::OK);
    let visit = serde_json::json!({ "scheduled_at": "2030-01-15T16:00:00Z", "mode": "in_person" });
    let (s, b) = app.put(&token, &format!("/api/v1/cases/{id}/consultation"), visit).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let advocate = app.signed_in("advocate@example.org").await;
    let page = body_of(&advocate, &format!("{}/cases/{id}/summary", app.base)).await;
    assert!(page.contains("Tue 15 Jan 2030, 10:00 (CST, America/Chicago time)"), "{page}");
}

async fn the_stylesheet_is_cached_compressed_and_draws_its_icons(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let client = reqwest::Client::new();
    let url = format!("{}/static/app.css", app.base);
    let first = client.get(&url).send().await.expect("stylesheet");
    assert_eq!(first.status(), StatusCode::OK);
    let tag = first.headers().get(header::ETAG).and_then(|v| v.to_str().ok()).expect("an entity tag").to_string();
    let cache =
        first.headers().get(header::CACHE_CONTROL).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(cache.contains("max-age=") && !cache.contains("no-store"), "{cache}");
    let css = first.text().await.expect("text");
    // Icons come from drawn shapes: no symbol characters a font might lack.
    for line in css.lines().filter(|l| l.contains("content:")) {
        assert!(line.is_ascii(), "a typed symbol in {line}");
    }
    assert!(css.contains("mask:"), "the icons are drawn");

    let again = client.get(&url).header(header::IF_NONE_MATCH, &tag).send().await.expect("revalidate");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.bytes().await.expect("body").is_empty());

    let zipped = client.get(&url).header(header::ACCEPT_ENCODING, "gzip").send().await.expect("compressed");
    assert_eq!(zipped.headers().get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()), Some("gzip"));
    let size = zipped.bytes().await.expect("body").len();
    assert!(size < css.len() / 2, "{size} compressed bytes for {} plain", css.len());
}

async fn admins_assign_cases_from_the_case_page(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let created = app.post(&app.admin.token, "/api/v1/cases", crate::common::new_case("Queue Patient")).await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    let id = created.1["id"].as_i64().expect("id");
    let admin = app.signed_in("admin@example.org").await;
    let case_url = format!("{}/cases/{id}", app.base);
    let page = body_of(&admin, &case_url).await;
    assert!(page.contains("id=\"assign-advocate\"") && page.contains(">Unassigned</option>"), "admins get the form");

    let advocate_id = app.advocate.id.to_string();
    let (status, _) = post_form(&admin, &format!("{case_url}/assign"), &[("advocate_id", &advocate_id)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, case) = app.get(&app.admin.token, &format!("/api/v1/cases/{id}")).await;
    assert_eq!(case["advocate"]["id"], app.advocate.id);
    let page = body_of(&admin, &case_url).await;
    assert!(page.contains(&format!("<option value=\"{advocate_id}\" selected>")), "the form shows who has it");

    // The advocate now sees the case but cannot hand it on.
    let advocate = app.signed_in("advocate@example.org").await;
    let theirs = body_of(&advocate, &case_url).await;
    assert!(!theirs.contains("assign-advocate"), "advocates get no assignment form");
    let other = app.other_advocate.id.to_string();
    let (status, _) = post_form(&advocate, &format!("{case_url}/assign"), &[("advocate_id", &other)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, case) = app.get(&app.admin.token, &format!("/api/v1/cases/{id}")).await;
    assert_eq!(case["advocate"]["id"], app.advocate.id, "unchanged");

    let (status, _) = post_form(&admin, &format!("{case_url}/assign"), &[("advocate_id", "")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, case) = app.get(&app.admin.token, &format!("/api/v1/cases/{id}")).await;
    assert!(case["advocate"].is_null(), "back in the unassigned queue: {case}");
}

async fn a_form_address_opened_directly_leads_back_to_the_case(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let id = app.open_case(&app.advocate.token, "Bookmarked Patient").await;
    let advocate = app.signed_in("advocate@example.org").await;
    for suffix in ["opinions", "hold", "records", "contacts/3/done"] {
        let (status, location) = status_of(&advocate, &format!("{}/cases/{id}/{suffix}", app.base)).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{suffix}");
        assert_eq!(location.as_deref(), Some(format!("/cases/{id}").as_str()), "{suffix}");
    }
    // Elsewhere, a page that says what happened rather than a bare error.
    let response = advocate.get(format!("{}/logout", app.base)).send().await.expect("get");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let page = response.text().await.expect("page");
    assert!(page.contains("only takes a submitted form"), "{page}");
}

async fn a_form_sent_after_the_session_ended_is_kept_through_sign_in(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let id = app.open_case(&app.advocate.token, "Lapsed Patient").await;
    // A browser whose session is gone (signed out elsewhere, or expired) sends a note.
    let lapsed = crate::common::web_client();
    let typed = "Spoke to the daughter <she> \"agreed\" & will bring the scans\nSecond line";
    let (status, page) = post_form(&lapsed, &format!("{}/cases/{id}/notes", app.base), &[("body", typed)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("Your session ended before this form was sent"), "{page}");
    assert!(page.contains(&format!("name=\"unsent_action\" value=\"/cases/{id}/notes\"")), "{page}");
    assert!(page.contains("name=\"unsent.body\""), "the typed text rides along: {page}");
    assert!(!page.contains("<she>"), "and is escaped");
    let (_, notes) = app.get(&app.advocate.token, &format!("/api/v1/cases/{id}/notes")).await;
    assert_eq!(notes["items"].as_array().map(Vec::len), Some(0), "nothing was saved yet");

    // Signing in from that page (as the browser submits it) shows the form to send.
    let sign_in = [
        ("email", "advocate@example.org"),
        ("password", crate::common::PASSWORD),
        ("next", "/"),
        ("unsent_action", &format!("/cases/{id}/notes")),
        ("unsent.body", typed),
    ];
    let (status, resend) = post_form(&lapsed, &format!("{}/login", app.base), &sign_in).await;
    assert_eq!(status, StatusCode::OK, "{resend}");
    assert!(resend.contains("has not been sent yet") && resend.contains("Send it now"), "{resend}");
    assert!(resend.contains(&format!("action=\"/cases/{id}/notes\"")));
    assert!(
        resend.contains("name=\"body\" value=\"Spoke to the daughter &#60;she&#62;")
            || resend.contains("name=\"body\" value=\"Spoke to the daughter &lt;she&gt;"),
        "the page's form holds the typed text, escaped: {resend}"
    );
    let (status, _) = post_form(&lapsed, &format!("{}/cases/{id}/notes", app.base), &[("body", typed)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, notes) = app.get(&app.advocate.token, &format!("/api/v1/cases/{id}/notes")).await;
    assert_eq!(notes["items"][0]["body"], typed, "sent once signed in, exactly as typed");

    // A carried form may only go to a path on this site.
    let elsewhere = [
        ("email", "advocate@example.org"),
        ("password", crate::common::PASSWORD),
        ("next", "/"),
        ("unsent_action", "//evil.example/steal"),
        ("unsent.body", "x"),
    ];
    let fresh = crate::common::web_client();
    let (status, _) = post_form(&fresh, &format!("{}/login", app.base), &elsewhere).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "an off-site target is ignored; the sign-in goes on as usual");
}

async fn admins_see_who_has_each_case_and_the_unassigned_queue(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    app.open_case(&app.advocate.token, "Assigned Patient").await;
    let created = app.post(&app.admin.token, "/api/v1/cases", crate::common::new_case("Waiting Patient")).await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    let admin = app.signed_in("admin@example.org").await;
    let all = body_of(&admin, &format!("{}/", app.base)).await;
    assert!(all.contains("<th scope=\"col\">Advocate</th>"), "admins get an advocate column");
    assert!(all.contains("Assigned Patient") && all.contains("Waiting Patient"));
    assert!(all.contains("<td data-label=\"Advocate\">Unassigned</td>"), "the case nobody has says so");

    let queue = body_of(&admin, &format!("{}/?advocate=0", app.base)).await;
    assert!(queue.contains("Unassigned cases"), "{queue}");
    assert!(queue.contains("Waiting Patient") && !queue.contains("Assigned Patient"), "only the unassigned case");
    assert!(queue.contains("<option value=\"0\" selected>Unassigned</option>"), "the filter shows the queue");
    let counts = queue.split("class=\"stage-counts\"").nth(1).and_then(|s| s.split("</ul>").next()).unwrap_or_default();
    assert!(counts.contains("<span class=\"count\">1</span> Records requested"), "{counts}");

    let advocate = app.signed_in("advocate@example.org").await;
    let mine = body_of(&advocate, &format!("{}/?advocate=0", app.base)).await;
    assert!(!mine.contains("<th scope=\"col\">Advocate</th>") && !mine.contains("Waiting Patient"));
    assert!(mine.contains("Assigned Patient"), "an advocate's own list ignores the admin filter");
}

async fn staff_change_their_own_password(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let b = &app.base;
    let here = app.signed_in("advocate@example.org").await;
    let elsewhere = app.signed_in("advocate@example.org").await;
    let url = format!("{b}/account/password");
    let new = "a brand new long password";
    for (form, field) in [
        (
            vec![("current_password", "wrong"), ("new_password", new), ("repeat_password", new)],
            "is not your current password",
        ),
        (vec![("current_password", PASSWORD), ("new_password", "short"), ("repeat_password", "short")], "at least 12"),
        (
            vec![("current_password", PASSWORD), ("new_password", new), ("repeat_password", "different one here")],
            "does not match",
        ),
    ] {
        let (status, page) = post_form(&here, &url, &form).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.contains(field), "{field}");
    }
    let (status, _) =
        post_form(&here, &url, &[("current_password", PASSWORD), ("new_password", new), ("repeat_password", new)])
            .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(body_of(&here, &format!("{b}/account")).await.contains("Your password is changed"), "this session goes on");
    assert_eq!(status_of(&elsewhere, &format!("{b}/")).await.0, StatusCode::SEE_OTHER, "other sessions end");
    let (status, _) =
        post_form(&web_client(), &format!("{b}/login"), &[("email", "advocate@example.org"), ("password", PASSWORD)])
            .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old password no longer works");
    let (status, _) =
        post_form(&web_client(), &format!("{b}/login"), &[("email", "advocate@example.org"), ("password", new)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

/// Activity keeps a session alive, but a burst of page views writes its row
/// at most once: the idle deadline is renewed once a minute, not per page.
async fn page_views_do_not_rewrite_the_session_each_time(backend: Backend) {
    use sea_orm::{EntityTrait, QueryOrder};
    use secondlook::db::entities::session;
    let Some(app) = TestApp::start(backend).await else { return };
    let client = app.signed_in("advocate@example.org").await;
    assert_eq!(status_of(&client, &format!("{}/", app.base)).await.0, StatusCode::OK);
    let deadline = || async {
        let rows =
            session::Entity::find().order_by_asc(session::Column::ExpiresAt).all(&app.db).await.expect("sessions");
        assert_eq!(rows.len(), 1, "one signed-in session");
        (rows[0].expires_at, rows[0].data.clone())
    };
    let first = deadline().await;
    assert!(first.1.contains("seen_at"), "the first page view marks the session: {}", first.1);
    for _ in 0..5 {
        assert_eq!(status_of(&client, &format!("{}/", app.base)).await.0, StatusCode::OK);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(deadline().await, first, "five more page views within the minute left the row as it was");
}

async fn the_home_page_starts_with_the_day(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let token = app.advocate.token.clone();
    let mut now = chrono::Utc::now();
    let day_end = |now: chrono::DateTime<chrono::Utc>| {
        (now.date_naive() + chrono::Duration::days(1)).and_hms_opt(0, 0, 0).expect("midnight").and_utc()
    };
    if day_end(now) - now < chrono::Duration::minutes(1) {
        // "Due today" needs some of today left (the advocate's day is in UTC).
        tokio::time::sleep(std::time::Duration::from_secs(70)).await;
        now = chrono::Utc::now();
    }
    let set_due = |id: i64, at: chrono::DateTime<chrono::Utc>| {
        let db = app.db.clone();
        async move {
            use sea_orm::{ActiveModelTrait, ActiveValue::Set};
            let id = i32::try_from(id).expect("id");
            let row = secondlook::db::entities::case::ActiveModel {
                id: Set(id),
                stage_due_at: Set(Some(at)),
                ..Default::default()
            };
            row.update(&db).await.expect("set the due date");
        }
    };
    let late = app.open_case(&token, "Late Larkin").await;
    set_due(late, now - chrono::Duration::days(2)).await;
    let soon = app.open_case(&token, "Soon Sorensen").await;
    set_due(soon, day_end(now) - chrono::Duration::seconds(30)).await;
    let held = app.open_case(&token, "Held Hansen").await;
    assert_eq!(
        app.post(&token, &format!("/api/v1/cases/{held}/hold"), json!({ "reason": "other" })).await.0,
        StatusCode::OK
    );
    set_due(held, now - chrono::Duration::days(3)).await;
    let theirs = app.open_case(&app.other_advocate.token, "Other Otto").await;
    set_due(theirs, now - chrono::Duration::days(1)).await;
    let later = app.open_case(&token, "Later Lund").await;
    let contact = json!({
        "with": "insurer", "channel": "phone", "direction": "outbound", "summary": "Asked about pre-approval",
        "follow_up_on": now.date_naive().to_string(),
    });
    assert_eq!(app.post(&token, &format!("/api/v1/cases/{later}/contacts"), contact).await.0, StatusCode::CREATED);
    let visit = app.open_case(&token, "Visit Vance").await;
    let specialist = app.add_specialist("Dr. Day", true).await;
    let path = |p: &str| format!("/api/v1/cases/{visit}/{p}");
    assert_eq!(app.put(&token, &path("specialist"), json!({ "specialist_id": specialist })).await.0, StatusCode::OK);
    let tomorrow_ten = (now.date_naive() + chrono::Duration::days(1)).and_hms_opt(10, 0, 0).expect("10:00").and_utc();
    let booking = json!({ "scheduled_at": tomorrow_ten.to_rfc3339(), "mode": "virtual" });
    let (s, b) = app.put(&token, &path("consultation"), booking).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let advocate = app.signed_in("advocate@example.org").await;
    let home = body_of(&advocate, &format!("{}/", app.base)).await;
    let start = home.find("id=\"today-h\"").expect("the day's section");
    let today = &home[start..start + home[start..].find("</section>").expect("its end")];
    let block = |title: &str| {
        let from = today.find(&format!("<h3>{title}</h3>")).unwrap_or_else(|| panic!("{title}: {today}"));
        let rest = &today[from..];
        rest[..rest.find("</div>").expect("block end")].to_string()
    };
    assert!(today.contains(&now.format("%A %-d %B").to_string()), "{today}");
    let overdue = block("Overdue");
    assert!(overdue.contains("Late Larkin") && overdue.contains("Overdue by 2 days"), "{overdue}");
    assert!(!overdue.contains("Held Hansen"), "a held case waits for something else: {overdue}");
    assert!(!today.contains("Other Otto"), "only the advocate's own cases");
    assert!(block("Due today").contains("Soon Sorensen"));
    assert!(!block("Due today").contains("Later Lund"), "due in two weeks, not today");
    let follow_ups = block("Follow-ups due");
    assert!(follow_ups.contains("Later Lund") && follow_ups.contains("Insurer by phone"), "{follow_ups}");
    let visits = block("Consultations today and tomorrow");
    assert!(
        visits.contains("Tomorrow 10:00") && visits.contains("Visit Vance") && visits.contains("virtual"),
        "{visits}"
    );
    // The whole list still follows, and a narrowed list leaves the day out.
    assert!(home.contains("Open cases, soonest due first"));
    // A held case's page offers Resume right in the hold banner.
    let held_page = body_of(&advocate, &format!("{}/cases/{held}", app.base)).await;
    let banner = held_page.split("class=\"hold-banner\"").nth(1).expect("the hold banner");
    let banner = &banner[..banner.find("</div>").expect("banner end")];
    assert!(
        banner.contains(&format!("action=\"/cases/{held}/resume\"")) && banner.contains("Resume the case"),
        "{banner}"
    );
    let narrowed = body_of(&advocate, &format!("{}/?stage=records_requested", app.base)).await;
    assert!(!narrowed.contains("id=\"today-h\""));
}

async fn admins_sort_page_and_assign_several_cases_at_once(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let mut queued = Vec::new();
    for name in ["Cora Queue", "Abe Queue", "Bea Queue"] {
        let (s, b) = app.post(&app.admin.token, "/api/v1/cases", crate::common::new_case(name)).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        queued.push(b["id"].as_i64().expect("id"));
    }
    // Enough more for three pages.
    for n in 0..60 {
        app.open_case(&app.other_advocate.token, &format!("Filler {n:02}")).await;
    }
    let admin = app.signed_in("admin@example.org").await;
    let order = |html: &str, names: &[&str]| -> Vec<usize> {
        names.iter().map(|n| html.find(n).unwrap_or_else(|| panic!("{n} listed"))).collect()
    };
    let by_name = body_of(&admin, &format!("{}/?advocate=0&sort=patient", app.base)).await;
    let at = order(&by_name, &["Abe Queue", "Bea Queue", "Cora Queue"]);
    assert!(at[0] < at[1] && at[1] < at[2], "A to Z by patient");
    assert!(by_name.contains("aria-sort=\"ascending\"><a class=\"sort\" href=\"/?sort=patient"), "{by_name}");
    let newest = body_of(&admin, &format!("{}/?advocate=0&sort=newest", app.base)).await;
    let at = order(&newest, &["Bea Queue", "Abe Queue", "Cora Queue"]);
    assert!(at[0] < at[1] && at[1] < at[2], "newest first");
    assert!(newest.contains("aria-sort=\"descending\""), "the reference column says how it is sorted");

    // Numbered pages: 63 cases are three pages of 25.
    let all = body_of(&admin, &format!("{}/?sort=oldest", app.base)).await;
    assert!(all.contains("Page 1 of 3 (63 cases)"), "{all}");
    assert!(all.contains("<span aria-current=\"page\">1</span>"));
    assert!(all.contains("page=2\" aria-label=\"Page 3\">3</a>"), "{all}");
    let third = body_of(&admin, &format!("{}/?sort=oldest&page=2", app.base)).await;
    assert!(third.contains("<span aria-current=\"page\">3</span>") && third.contains("Filler 59"));

    // Two of the queue's cases ticked and assigned to the advocate at once.
    let form = [
        ("advocate_id", app.advocate.id.to_string()),
        (&*format!("case.{}", queued[0]), "on".to_string()),
        (&*format!("case.{}", queued[2]), "on".to_string()),
        ("back", "/?advocate=0".to_string()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, location) = {
        let response = admin.post(format!("{}/cases/assign", app.base)).form(&form).send().await.expect("post");
        let location = response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).map(String::from);
        (response.status(), location)
    };
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/?advocate=0"), "back to the list as it was");
    let queue = body_of(&admin, &format!("{}/?advocate=0", app.base)).await;
    assert!(queue.contains("2 cases assigned to Avery Advocate."), "{queue}");
    assert!(queue.contains("Abe Queue") && !queue.contains("Cora Queue") && !queue.contains("Bea Queue"));
    for id in [queued[0], queued[2]] {
        let (_, case) = app.get(&app.advocate.token, &format!("/api/v1/cases/{id}")).await;
        assert_eq!(case["advocate"]["id"].as_i64(), Some(app.advocate.id), "{case}");
    }
    let (_, trail) = app.get(&app.admin.token, &format!("/api/v1/audit?case_id={}", queued[0])).await;
    assert!(trail.to_string().contains("case.update"), "each assignment is audited: {trail}");

    // Nothing ticked, or nobody chosen, says so; advocates cannot do it.
    let (status, _) = post_form(&admin, &format!("{}/cases/assign", app.base), &[("advocate_id", "none")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(body_of(&admin, &format!("{}/", app.base)).await.contains("Tick the cases to assign first"));
    let ticked = format!("case.{}", queued[1]);
    let (status, _) = post_form(&admin, &format!("{}/cases/assign", app.base), &[(&ticked, "on")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(body_of(&admin, &format!("{}/", app.base)).await.contains("Choose an advocate, or the unassigned queue"));
    let advocate = app.signed_in("advocate@example.org").await;
    let (status, _) =
        post_form(&advocate, &format!("{}/cases/assign", app.base), &[(&ticked, "on"), ("advocate_id", "none")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, case) = app.get(&app.admin.token, &format!("/api/v1/cases/{}", queued[1])).await;
    assert!(case["advocate"].is_null(), "still unassigned: {case}");

    // The overview's counts lead to the lists they count.
    let overview = body_of(&admin, &format!("{}/admin", app.base)).await;
    assert!(overview.contains("href=\"/?stage=records_requested\""), "{overview}");
    assert!(overview.contains("href=\"/?stage=records_requested&amp;overdue=true\""), "{overview}");
    assert!(overview.contains(&format!("href=\"/?advocate={}&amp;overdue=true\"", app.advocate.id)), "{overview}");
}

async fn a_checklist_saved_from_an_older_page_keeps_changes_made_since(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let id = app.open_case(&app.advocate.token, "Checklist Patient").await;
    let advocate = app.signed_in("advocate@example.org").await;
    let page = body_of(&advocate, &format!("{}/cases/{id}", app.base)).await;
    assert!(page.contains("name=\"was.status.lab_results\" value=\"requested\""), "the page says what it showed");
    // Meanwhile someone else records the lab results as received.
    let received = json!({ "status": "received", "note": "faxed by the lab" });
    let (s, b) =
        app.put(&app.other_advocate.token, &format!("/api/v1/cases/{id}/records/lab_results"), received.clone()).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another advocate's case: {b}");
    let (s, b) = app.put(&app.admin.token, &format!("/api/v1/cases/{id}/records/lab_results"), received).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // The older page saves a change to another record: every row is sent, as shown then.
    let mut form: Vec<(String, String)> = Vec::new();
    for kind in ["lab_results", "imaging_ct"] {
        form.push((format!("was.status.{kind}"), "requested".into()));
        form.push((format!("was.note.{kind}"), String::new()));
        form.push((format!("note.{kind}"), String::new()));
    }
    form.push(("status.lab_results".into(), "requested".into()));
    form.push(("status.imaging_ct".into(), "not_applicable".into()));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, _) = post_form(&advocate, &format!("{}/cases/{id}/records", app.base), &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, case) = app.get(&app.advocate.token, &format!("/api/v1/cases/{id}")).await;
    let status_of = |kind: &str| {
        case["records"].as_array().expect("records").iter().find(|r| r["kind"] == kind).expect("record")["status"]
            .clone()
    };
    assert_eq!(status_of("imaging_ct"), "not_applicable", "the change made on the page is saved");
    assert_eq!(status_of("lab_results"), "received", "the change made elsewhere is kept: {case}");
    // "Mark all" marks what is still requested now, keeping notes.
    let (status, _) = post_form(&advocate, &format!("{}/cases/{id}/records", app.base), &[("all", "received")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, case) = app.get(&app.advocate.token, &format!("/api/v1/cases/{id}")).await;
    let records = case["records"].as_array().expect("records");
    assert!(records.iter().all(|r| r["status"] != "requested"), "{case}");
    assert_eq!(records.iter().filter(|r| r["status"] == "not_applicable").count(), 1);
    let page = body_of(&advocate, &format!("{}/cases/{id}", app.base)).await;
    assert!(page.contains("Every record still requested is marked received (7 updated)."), "{page}");
}
