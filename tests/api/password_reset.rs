//! Password resets as people meet them: asking for a link on the sign-in
//! page, the email arriving on a real SMTP server, choosing a new password
//! through the link, links that no longer work, an admin sending a link and
//! an operator printing one — on both databases.

use std::{sync::Arc, time::Duration};

use reqwest::{StatusCode, header};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use secondlook::{
    db::entities::{audit_entry, outbox_message, password_reset},
    reminders::Reminders,
    secrets::digest,
};

use crate::{
    common::{Backend, PASSWORD, TestApp, web_client},
    mail::{part, smtp},
    smtp_server::{Received, SmtpServer},
};

crate::on_both_databases!(
    a_forgotten_password_is_reset_through_the_emailed_link,
    unknown_and_deactivated_emails_get_the_same_answer_and_no_email,
    links_that_no_longer_work_say_why_and_offer_a_new_one,
    admins_email_a_reset_link_and_advocates_cannot,
    the_command_line_prints_a_working_link_and_emails_nothing,
);

const NEW_PASSWORD: &str = "a fresh and long password";

async fn post_form(client: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
    let response = client.post(url).form(form).send().await.expect("request");
    let status = response.status();
    (status, response.text().await.expect("body"))
}

async fn ask_for_link(app: &TestApp, email: &str) -> (StatusCode, String) {
    post_form(&web_client(), &format!("{}/forgot-password", app.base), &[("email", email)]).await
}

/// Sends what the outbox holds, as a scheduler tick would.
async fn deliver(app: &TestApp, server: &SmtpServer) -> secondlook::reminders::SendReport {
    let reminders = Reminders::new(app.db.clone(), Arc::new(smtp(&app.settings, server.port))).expect("reminders");
    reminders.send_due().await.expect("send")
}

fn mail_to(server: &SmtpServer, email: &str) -> Vec<Received> {
    server.messages().into_iter().filter(|m| m.recipients == [email]).collect()
}

/// The reset link in an email's text part.
fn link_in(app: &TestApp, mail: &Received) -> String {
    let text = part(&mail.raw, "text/plain");
    let start = format!("{}/reset-password/", app.base);
    let at = text.find(&start).unwrap_or_else(|| panic!("no reset link in {text}"));
    text[at..].chars().take_while(|c| !c.is_whitespace()).collect()
}

fn token_of(link: &str) -> &str {
    link.rsplit('/').next().expect("token")
}

async fn sign_in(app: &TestApp, email: &str, password: &str) -> StatusCode {
    post_form(&web_client(), &format!("{}/login", app.base), &[("email", email), ("password", password)]).await.0
}

async fn choose(app: &TestApp, link: &str, new: &str, repeat: &str) -> (StatusCode, Option<String>, String) {
    let response = web_client()
        .post(format!("{}/reset-password", app.base))
        .form(&[("token", token_of(link)), ("new_password", new), ("repeat_password", repeat)])
        .send()
        .await
        .expect("request");
    let status = response.status();
    let location = response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).map(String::from);
    (status, location, response.text().await.expect("body"))
}

async fn entries(app: &TestApp, action: &str) -> Vec<audit_entry::Model> {
    app.reads.flush().await;
    audit_entry::Entity::find()
        .filter(audit_entry::Column::Action.eq(action))
        .order_by_asc(audit_entry::Column::Id)
        .all(&app.db)
        .await
        .expect("audit rows")
}

async fn reset_emails(app: &TestApp) -> Vec<outbox_message::Model> {
    outbox_message::Entity::find()
        .filter(outbox_message::Column::Kind.eq("password_reset"))
        .order_by_asc(outbox_message::Column::Id)
        .all(&app.db)
        .await
        .expect("outbox rows")
}

async fn a_forgotten_password_is_reset_through_the_emailed_link(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let Some(server) = SmtpServer::start().await else { return };
    let b = &app.base;
    app.open_case(&app.advocate.token, "Robin Resetcase").await;
    let elsewhere = app.signed_in("advocate@example.org").await;

    let login = web_client().get(format!("{b}/login")).send().await.expect("login").text().await.expect("page");
    assert!(login.contains("href=\"/forgot-password\""), "the sign-in page offers a way out");
    let form = web_client().get(format!("{b}/forgot-password")).send().await.expect("form");
    assert_eq!(form.status(), StatusCode::OK);

    let (status, page) = ask_for_link(&app, " Advocate@Example.org ").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("If an account exists for that address, we sent a link"), "{page}");
    let report = deliver(&app, &server).await;
    assert_eq!(report.sent, 1);
    assert_eq!(deliver(&app, &server).await.sent, 0, "sent once");

    let mails = mail_to(&server, "advocate@example.org");
    assert_eq!(mails.len(), 1, "one email to the account");
    let mail = &mails[0];
    assert_eq!(mail.header("Subject").as_deref(), Some("Choose a new SecondLook password"));
    let text = part(&mail.raw, "text/plain");
    assert!(text.contains("works once, until"), "{text}");
    for private in ["Robin", "Resetcase", "Oncology", "lymphoma", "SO-"] {
        assert!(!mail.raw.contains(private), "the email mentions {private}");
    }
    let link = link_in(&app, mail);
    let html = part(&mail.raw, "text/html");
    assert!(html.contains(&format!("href=\"{link}\"")), "the button leads to the same link");

    // What the database holds opens nothing: a digest of the token, and an
    // outbox row whose text has no token in it.
    let token = token_of(&link);
    let stored = password_reset::Entity::find().all(&app.db).await.expect("resets");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].token_hash.as_deref(), Some(digest(token).as_str()));
    let queued = reset_emails(&app).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].status, "sent");
    assert!(!queued[0].body_text.contains(token) && !queued[0].body_html.contains(token), "no token in the outbox");

    let opened = web_client().get(&link).send().await.expect("link");
    assert_eq!(opened.status(), StatusCode::OK);
    assert_eq!(opened.headers().get(header::REFERRER_POLICY).and_then(|v| v.to_str().ok()), Some("no-referrer"));
    assert_eq!(opened.headers().get(header::CACHE_CONTROL).and_then(|v| v.to_str().ok()), Some("no-store"));
    let page = opened.text().await.expect("page");
    assert!(page.contains("Choose a new password") && page.contains("advocate@example.org"), "{page}");

    let (status, _, page) = choose(&app, &link, NEW_PASSWORD, "something else entirely").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("does not match"), "{page}");
    let (status, _, page) = choose(&app, &link, "short", "short").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("at least 12"), "{page}");
    assert_eq!(sign_in(&app, "advocate@example.org", PASSWORD).await, StatusCode::SEE_OTHER, "nothing changed yet");

    let (status, location, _) = choose(&app, &link, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = location.expect("redirect");
    let done = web_client().get(format!("{b}{location}")).send().await.expect("page").text().await.expect("text");
    assert!(done.contains("Your new password is set"), "{done}");

    assert_eq!(sign_in(&app, "advocate@example.org", PASSWORD).await, StatusCode::UNAUTHORIZED, "old password");
    assert_eq!(sign_in(&app, "advocate@example.org", NEW_PASSWORD).await, StatusCode::SEE_OTHER, "new password");
    let (status, location) = {
        let r = elsewhere.get(format!("{b}/")).send().await.expect("request");
        (r.status(), r.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).map(String::from))
    };
    assert_eq!(status, StatusCode::SEE_OTHER, "the session opened before the reset is signed out");
    assert!(location.is_some_and(|l| l.starts_with("/login")));

    // Single use: the link answers with why, and a way to ask again.
    let again = web_client().get(&link).send().await.expect("link");
    assert_eq!(again.status(), StatusCode::GONE);
    assert_eq!(again.headers().get(header::REFERRER_POLICY).and_then(|v| v.to_str().ok()), Some("no-referrer"));
    let page = again.text().await.expect("page");
    assert!(page.contains("used already") && page.contains("href=\"/forgot-password\""), "{page}");
    let (status, _, page) = choose(&app, &link, "yet another long password", "yet another long password").await;
    assert_eq!(status, StatusCode::GONE);
    assert!(page.contains("used already"), "{page}");
    assert_eq!(sign_in(&app, "advocate@example.org", NEW_PASSWORD).await, StatusCode::SEE_OTHER, "still the new one");

    let requested = entries(&app, "user.password_reset_requested").await;
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0].entity_id, Some(i32::try_from(app.advocate.id).expect("id")));
    assert!(requested[0].actor.starts_with("password-reset:"), "labelled by a digest of the typed email");
    assert!(!requested[0].actor.contains('@'));
    let reset = entries(&app, "user.password_reset").await;
    assert_eq!(reset.len(), 1);
    assert_eq!(reset[0].actor, "advocate@example.org");
    assert!(reset[0].detail.contains("\"sessions_ended\":"), "{}", reset[0].detail);
    let refused = entries(&app, "auth.password_reset_refused").await;
    assert_eq!(refused.len(), 1, "the second use is on record");
    assert!(refused[0].detail.contains("link_used"), "{}", refused[0].detail);
    for entry in requested.iter().chain(&reset).chain(&refused) {
        assert!(!entry.detail.contains(token) && !entry.actor.contains(token), "no token in the trail");
    }
}

async fn unknown_and_deactivated_emails_get_the_same_answer_and_no_email(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let Some(server) = SmtpServer::start().await else { return };
    let admin = app.signed_in("admin@example.org").await;
    let deactivate = format!("{}/admin/users/{}", app.base, app.other_advocate.id);
    assert_eq!(post_form(&admin, &deactivate, &[("active", "false")]).await.0, StatusCode::SEE_OTHER);

    let timed = |email: &'static str| {
        let app = &app;
        async move {
            let started = std::time::Instant::now();
            let answer = ask_for_link(app, email).await;
            (answer, started.elapsed())
        }
    };
    let ((known_status, known_page), known_took) = timed("advocate@example.org").await;
    let ((unknown_status, unknown_page), unknown_took) = timed("nobody@example.org").await;
    let ((inactive_status, inactive_page), inactive_took) = timed("other@example.org").await;
    assert_eq!((known_status, unknown_status, inactive_status), (StatusCode::OK, StatusCode::OK, StatusCode::OK));
    assert_eq!(unknown_page, known_page, "an unknown email gets the very same page");
    assert_eq!(inactive_page, known_page, "so does a deactivated account");
    for took in [known_took, unknown_took, inactive_took] {
        assert!(took >= Duration::from_millis(300), "every answer waits as long as the slowest: {took:?}");
    }

    assert_eq!(deliver(&app, &server).await.sent, 1);
    let recipients: Vec<Vec<String>> = server.messages().into_iter().map(|m| m.recipients).collect();
    assert_eq!(recipients, [vec!["advocate@example.org".to_string()]], "only the active account gets an email");
    assert_eq!(reset_emails(&app).await.len(), 1);

    let refused = entries(&app, "auth.password_reset_refused").await;
    let reasons: Vec<&str> = refused.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(refused.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("no_account") && reasons[1].contains("account_inactive"), "{reasons:?}");

    // A typo gets a readable answer, not a bare error.
    let (status, page) = ask_for_link(&app, "not an email").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("Forgot your password?") && page.contains("aria-invalid=\"true\""), "{page}");

    // Three links an hour per typed email, whether it has an account or not.
    for _ in 0..2 {
        assert_eq!(ask_for_link(&app, "advocate@example.org").await.0, StatusCode::OK);
        assert_eq!(ask_for_link(&app, "nobody@example.org").await.0, StatusCode::OK);
    }
    let (known_status, known_page) = ask_for_link(&app, "advocate@example.org").await;
    let (unknown_status, unknown_page) = ask_for_link(&app, "nobody@example.org").await;
    assert_eq!((known_status, unknown_status), (StatusCode::TOO_MANY_REQUESTS, StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(known_page, unknown_page.replace("nobody@example.org", "advocate@example.org"));
    assert!(known_page.contains("Too many links were asked for"), "{known_page}");
    assert_eq!(reset_emails(&app).await.len(), 3, "the refused request queued nothing");
    assert_eq!(ask_for_link(&app, "someone.else@example.org").await.0, StatusCode::OK, "other emails go on");
}

async fn links_that_no_longer_work_say_why_and_offer_a_new_one(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let Some(server) = SmtpServer::start().await else { return };
    let b = &app.base;

    // Expired: the clock is moved by moving the link's expiry into the past.
    ask_for_link(&app, "advocate@example.org").await;
    deliver(&app, &server).await;
    let expired = link_in(&app, &mail_to(&server, "advocate@example.org")[0]);
    let past =
        (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    app.sql(&format!("UPDATE password_resets SET expires_at = '{past}'")).await;
    let opened = web_client().get(&expired).send().await.expect("link");
    assert_eq!(opened.status(), StatusCode::GONE);
    let page = opened.text().await.expect("page");
    assert!(page.contains("This link has expired") && page.contains("href=\"/forgot-password\""), "{page}");
    let (status, _, page) = choose(&app, &expired, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(page.contains("This link has expired"), "{page}");
    assert_eq!(sign_in(&app, "advocate@example.org", NEW_PASSWORD).await, StatusCode::UNAUTHORIZED);
    assert_eq!(sign_in(&app, "advocate@example.org", PASSWORD).await, StatusCode::SEE_OTHER, "password unchanged");

    // Two links asked for; using one withdraws the other.
    ask_for_link(&app, "advocate@example.org").await;
    ask_for_link(&app, "advocate@example.org").await;
    assert_eq!(deliver(&app, &server).await.sent, 2);
    let mails = mail_to(&server, "advocate@example.org");
    let (first, second) = (link_in(&app, &mails[1]), link_in(&app, &mails[2]));
    assert_ne!(first, second);
    assert_eq!(choose(&app, &second, NEW_PASSWORD, NEW_PASSWORD).await.0, StatusCode::SEE_OTHER);
    let opened = web_client().get(&first).send().await.expect("link");
    assert_eq!(opened.status(), StatusCode::GONE);
    assert!(opened.text().await.expect("page").contains("withdrawn"));
    assert_eq!(
        choose(&app, &first, "the attackers own password", "the attackers own password").await.0,
        StatusCode::GONE
    );
    assert_eq!(sign_in(&app, "advocate@example.org", NEW_PASSWORD).await, StatusCode::SEE_OTHER);

    // A link used up before its email went out: nothing is sent, and the outbox says why.
    ask_for_link(&app, "other@example.org").await;
    let other = app.signed_in("other@example.org").await;
    let changed = post_form(
        &other,
        &format!("{b}/account/password"),
        &[("current_password", PASSWORD), ("new_password", NEW_PASSWORD), ("repeat_password", NEW_PASSWORD)],
    )
    .await;
    assert_eq!(changed.0, StatusCode::SEE_OTHER);
    let report = deliver(&app, &server).await;
    assert_eq!((report.sent, report.failed), (0, 1));
    assert!(mail_to(&server, "other@example.org").is_empty());
    let failed = reset_emails(&app).await.into_iter().find(|m| m.recipient_email == "other@example.org").expect("row");
    assert_eq!(failed.status, "failed");
    assert!(failed.last_error.as_deref().is_some_and(|e| e.contains("withdrawn")), "{:?}", failed.last_error);

    // A link that is not ours, or cut short by a mail program.
    for bad in [format!("{b}/reset-password/not-a-token"), first[..first.len() - 5].to_string()] {
        let opened = web_client().get(&bad).send().await.expect("link");
        assert_eq!(opened.status(), StatusCode::NOT_FOUND, "{bad}");
        let page = opened.text().await.expect("page");
        assert!(page.contains("only part of it arrived") && page.contains("href=\"/forgot-password\""), "{page}");
    }
    let bare = web_client().get(format!("{b}/reset-password")).send().await.expect("request");
    assert_eq!(bare.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()), Some("/forgot-password"));
}

async fn admins_email_a_reset_link_and_advocates_cannot(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let Some(server) = SmtpServer::start().await else { return };
    let b = &app.base;
    let admin = app.signed_in("admin@example.org").await;
    let advocate = app.signed_in("advocate@example.org").await;

    let users = admin.get(format!("{b}/admin/users")).send().await.expect("page").text().await.expect("text");
    let action = format!("action=\"/admin/users/{}/reset-link\"", app.advocate.id);
    assert!(users.contains(&action) && users.contains("Send reset link"), "{users}");

    let to_other = format!("{b}/admin/users/{}/reset-link", app.other_advocate.id);
    let (status, page) = post_form(&advocate, &to_other, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(reset_emails(&app).await.is_empty(), "an advocate's click queues nothing");
    let denied = entries(&app, "access.denied").await;
    assert!(denied.iter().any(|e| e.detail.contains("reset-link")), "the refusal is on record");

    let (status, _) = post_form(&admin, &format!("{b}/admin/users/{}/reset-link", app.advocate.id), &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let users = admin.get(format!("{b}/admin/users")).send().await.expect("page").text().await.expect("text");
    assert!(users.contains("A link to choose a new password is on its way to advocate@example.org"), "{users}");
    assert!(!users.contains("/reset-password/"), "the admin never sees the link");

    assert_eq!(deliver(&app, &server).await.sent, 1);
    let mails = mail_to(&server, "advocate@example.org");
    assert_eq!(mails.len(), 1);
    assert!(part(&mails[0].raw, "text/plain").contains("An administrator sent you this link"));
    let link = link_in(&app, &mails[0]);
    assert_eq!(choose(&app, &link, NEW_PASSWORD, NEW_PASSWORD).await.0, StatusCode::SEE_OTHER);
    assert_eq!(sign_in(&app, "advocate@example.org", NEW_PASSWORD).await, StatusCode::SEE_OTHER);
    assert_eq!(sign_in(&app, "advocate@example.org", PASSWORD).await, StatusCode::UNAUTHORIZED);

    let requested = entries(&app, "user.password_reset_requested").await;
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0].actor, "admin@example.org");
    assert!(requested[0].detail.contains("\"requested_by\":\"admin\""), "{}", requested[0].detail);

    // A deactivated account gets no link; the admin is told why.
    let deactivate = format!("{b}/admin/users/{}", app.other_advocate.id);
    assert_eq!(post_form(&admin, &deactivate, &[("active", "false")]).await.0, StatusCode::SEE_OTHER);
    let (status, page) = post_form(&admin, &to_other, &[]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(page.contains("reactivate the account"), "{page}");
    let (status, _) = post_form(&admin, &format!("{b}/admin/users/99999/reset-link"), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn the_command_line_prints_a_working_link_and_emails_nothing(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let url = app.settings.database.url.expose();
    let env = [("SECONDLOOK__SERVER__PUBLIC_URL", app.base.as_str())];

    let (ok, out, err) =
        crate::cli::run_cli_with(url, &env, &["user", "reset-password", "--email", "Advocate@Example.org"]).await;
    assert!(ok, "{out}{err}");
    let link = out.trim();
    assert!(link.starts_with(&format!("{}/reset-password/", app.base)), "{out}");
    assert_eq!(out.lines().count(), 1, "only the link on standard output: {out}");
    assert!(err.contains("once") && err.contains("not emailed"), "{err}");
    assert!(reset_emails(&app).await.is_empty(), "nothing is queued to email");

    let opened = web_client().get(link).send().await.expect("link");
    assert_eq!(opened.status(), StatusCode::OK);
    assert_eq!(choose(&app, link, NEW_PASSWORD, NEW_PASSWORD).await.0, StatusCode::SEE_OTHER);
    assert_eq!(sign_in(&app, "advocate@example.org", NEW_PASSWORD).await, StatusCode::SEE_OTHER);
    assert_eq!(choose(&app, link, PASSWORD, PASSWORD).await.0, StatusCode::GONE, "single use");

    let requested = entries(&app, "user.password_reset_requested").await;
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0].actor, "system:cli");
    assert!(requested[0].detail.contains("\"via\":\"printed\""), "{}", requested[0].detail);

    let (ok, _, err) =
        crate::cli::run_cli_with(url, &env, &["user", "reset-password", "--email", "nobody@example.org"]).await;
    assert!(!ok);
    assert!(err.contains("no user has this email"), "{err}");
    let admin = app.signed_in("admin@example.org").await;
    let deactivate = format!("{}/admin/users/{}", app.base, app.other_advocate.id);
    assert_eq!(post_form(&admin, &deactivate, &[("active", "false")]).await.0, StatusCode::SEE_OTHER);
    let (ok, _, err) =
        crate::cli::run_cli_with(url, &env, &["user", "reset-password", "--email", "other@example.org"]).await;
    assert!(!ok);
    assert!(err.contains("deactivated"), "{err}");
}
