//! The patient portal as its people meet it, on both databases: the link in
//! an email that reached a real SMTP server opens the patient's page, where
//! they send a record, keep their questions and sign consent; staff see each
//! action; care partners see what they were allowed to and no more; links
//! stop at once when withdrawn; an expired link offers a new one; a portal
//! session reaches neither staff pages nor the API; consent gates the
//! consultation; the survey feeds the figures.

use std::sync::Arc;

use reqwest::{StatusCode, header};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use secondlook::{
    db::entities::{audit_entry, case, document, outbox_message, portal_link},
    reminders::Reminders,
    secrets::digest,
};
use serde_json::{Value, json};

use crate::{
    common::{Backend, TestApp, hours_from_now, web_client},
    documents::pdf,
    mail::{part, smtp},
    smtp_server::SmtpServer,
    workflow::to_opinions_compared,
};

crate::on_both_databases!(
    a_patient_works_their_case_from_the_emailed_link,
    care_partners_do_what_they_were_allowed_and_stop_when_removed,
    a_portal_session_reaches_nothing_but_its_own_case,
    an_expired_link_offers_a_new_one_to_the_address_on_file_only,
    consent_is_needed_before_the_consultation_is_held,
    the_survey_after_the_decision_feeds_the_figures,
    chosen_care_partners_get_the_appointment_reminder_and_the_advocate_the_news,
);

/// Sends what the outbox holds, as a scheduler tick would.
async fn deliver(app: &TestApp, server: &SmtpServer) {
    let reminders = Reminders::new(app.db.clone(), Arc::new(smtp(&app.settings, server.port))).expect("reminders");
    let report = reminders.send_due().await.expect("send");
    assert_eq!(report.failed, 0, "{report:?}");
}

/// The newest portal link in the newest email to `email`.
fn portal_link_to(app: &TestApp, server: &SmtpServer, email: &str) -> String {
    let mail = server.messages().into_iter().rev().find(|m| m.recipients == [email]).expect("an email to them");
    let text = part(&mail.raw, "text/plain");
    let start = format!("{}/p/", app.base);
    let at = text.find(&start).unwrap_or_else(|| panic!("no portal link in {text}"));
    text[at..].chars().take_while(|c| !c.is_whitespace()).collect()
}

/// Opens `link` in a fresh browser-like client, which then holds the portal session.
async fn open_portal(link: &str) -> reqwest::Client {
    let client = web_client();
    let response = client.get(link).send().await.expect("open link");
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "the link opens the page");
    assert_eq!(response.headers()[header::LOCATION], "/portal");
    client
}

async fn page(app: &TestApp, client: &reqwest::Client) -> (StatusCode, String) {
    let response = client.get(format!("{}/portal", app.base)).send().await.expect("portal page");
    let status = response.status();
    (status, response.text().await.expect("body"))
}

async fn post(app: &TestApp, client: &reqwest::Client, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
    let response = client.post(format!("{}{path}", app.base)).form(form).send().await.expect("post");
    let status = response.status();
    (status, response.text().await.expect("body"))
}

async fn upload(app: &TestApp, client: &reqwest::Client, record_kind: &str, bytes: Vec<u8>) -> StatusCode {
    let form = reqwest::multipart::Form::new()
        .text("kind", "other")
        .text("record_kind", record_kind.to_string())
        .part("file", reqwest::multipart::Part::bytes(bytes).file_name("labs.pdf"));
    client.post(format!("{}/portal/documents", app.base)).multipart(form).send().await.expect("upload").status()
}

/// The value of the hidden input `name` on a page.
fn hidden(html: &str, name: &str) -> String {
    let at = html.find(&format!("name=\"{name}\" value=\"")).unwrap_or_else(|| panic!("no {name} in the page"));
    html[at..].split("value=\"").nth(1).and_then(|v| v.split('"').next()).expect("value").to_string()
}

async fn entries(app: &TestApp, case_id: i64) -> Vec<audit_entry::Model> {
    app.reads.flush().await;
    audit_entry::Entity::find()
        .filter(audit_entry::Column::CaseId.eq(i32::try_from(case_id).expect("id")))
        .order_by_asc(audit_entry::Column::Id)
        .all(&app.db)
        .await
        .expect("audit rows")
}

async fn send_link(app: &TestApp, id: i64) {
    let (status, body) = app.post(&app.advocate.token, &format!("/api/v1/cases/{id}/portal-link"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

async fn a_patient_works_their_case_from_the_emailed_link(backend: Backend) {
    let Some(server) = SmtpServer::start().await else { return };
    let Some(app) = TestApp::start(backend).await else { return };
    let id = app.open_case(&app.advocate.token, "Jordan Patient").await;
    send_link(&app, id).await;
    // The queued email holds no working link; the sent one does.
    let queued = outbox_message::Entity::find()
        .filter(outbox_message::Column::Kind.eq("portal_link"))
        .one(&app.db)
        .await
        .expect("outbox")
        .expect("queued");
    deliver(&app, &server).await;
    let link = portal_link_to(&app, &server, "patient@example.org");
    let token = link.rsplit('/').next().expect("token");
    let kept = outbox_message::Entity::find_by_id(queued.id).one(&app.db).await.expect("outbox").expect("kept");
    assert_eq!(kept.status, "sent");
    assert!(!kept.body_text.contains(token) && !kept.body_html.contains(token), "the outbox never holds the token");
    let stored = portal_link::Entity::find().one(&app.db).await.expect("links").expect("one link");
    assert_eq!(stored.token_hash.as_deref(), Some(digest(token).as_str()), "only the digest is kept");
    assert!(!link.contains("Jordan"), "the link carries no patient data");

    let patient = open_portal(&link).await;
    let (status, html) = page(&app, &patient).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Hello Jordan"), "{html}");
    assert!(html.contains("aria-current=\"step\">Records requested"), "where the case stands");
    assert!(html.contains("Avery Advocate") && html.contains("advocate@example.org"), "who their advocate is");
    assert!(html.contains("Still needed"));

    // A record sent against its checklist item is received, marked as the patient's.
    assert_eq!(upload(&app, &patient, "lab_results", pdf("labs", 2048)).await, StatusCode::SEE_OTHER);
    let (_, case) = app.get(&app.advocate.token, &format!("/api/v1/cases/{id}")).await;
    let labs = case["records"].as_array().expect("records").iter().find(|r| r["kind"] == "lab_results").cloned();
    assert_eq!(labs.expect("labs")["status"], "received");
    let sent = document::Entity::find().one(&app.db).await.expect("documents").expect("the upload");
    assert_eq!(sent.uploaded_via.as_deref(), Some("patient"));
    assert_eq!(sent.uploaded_by, None);
    let (_, html) = page(&app, &patient).await;
    assert!(html.contains("labs.pdf") && html.contains("by you"), "they see what they sent");
    // A file of a kind not taken is refused on the page, in words.
    assert_eq!(
        upload(&app, &patient, "imaging_ct", b"MZ\x90\x00 not a record".to_vec()).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );

    // Questions: added, moved, changed, removed — the same text staff see.
    for question in ["Is surgery needed?", "What if we wait?"] {
        let (status, _) = post(
            &app,
            &patient,
            "/portal/questions",
            &[("part", "consultation"), ("action", "add"), ("question", question)],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
    }
    let up = [("part", "consultation"), ("action", "up"), ("position", "1"), ("shown", "What if we wait?")];
    let (status, _) = post(&app, &patient, "/portal/questions", &up).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, case) = app.get(&app.advocate.token, &format!("/api/v1/cases/{id}")).await;
    assert_eq!(case["patient_questions"], "What if we wait?\nIs surgery needed?");
    // Changed elsewhere since the page was shown: an edit names the question it saw.
    let (status, _) = app
        .patch(
            &app.advocate.token,
            &format!("/api/v1/cases/{id}"),
            json!({ "patient_questions": "Is surgery needed?" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let stale = [("part", "consultation"), ("action", "remove"), ("position", "0"), ("shown", "What if we wait?")];
    let (status, html) = post(&app, &patient, "/portal/questions", &stale).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "not another question in its place");
    assert!(html.contains("changed since the page was shown"), "{html}");
    let (_, case) = app.get(&app.advocate.token, &format!("/api/v1/cases/{id}")).await;
    assert_eq!(case["patient_questions"], "Is surgery needed?");
    let (status, html) =
        post(&app, &patient, "/portal/questions", &[("part", "consultation"), ("action", "add"), ("question", "  ")])
            .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "an empty question is refused on the page");
    assert!(html.contains("Not saved: the question"), "{html}");

    // Consent, signed with a typed name against the text shown.
    let (_, html) = page(&app, &patient).await;
    let shown = hidden(&html, "text_digest");
    let (status, html) =
        post(&app, &patient, "/portal/consent", &[("full_name", "Jordan Patient"), ("text_digest", &shown)]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "the box must be ticked");
    assert!(html.contains("value=\"Jordan Patient\""), "the typed name is kept");
    let (status, _) = post(
        &app,
        &patient,
        "/portal/consent",
        &[("full_name", "Jordan  Patient"), ("agree", "yes"), ("text_digest", &shown)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, portal) = app.get(&app.advocate.token, &format!("/api/v1/cases/{id}/portal")).await;
    assert_eq!(status, StatusCode::OK, "{portal}");
    assert_eq!(portal["consent"]["signer_name"], "Jordan Patient");
    assert_eq!(portal["consent"]["method"], "portal");
    assert_eq!(portal["consent"]["text_sha256"].as_str().map(str::len), Some(64));
    let consent_doc = portal["consent"]["document_id"].as_i64().expect("kept as a document");
    let (_, doc) = app.get(&app.advocate.token, &format!("/api/v1/documents/{consent_doc}")).await;
    assert_eq!(doc["kind"], "consent", "{doc}");

    // Staff see every action, by whom, and the case waits for review.
    let actions: Vec<(String, String)> =
        entries(&app, id).await.into_iter().map(|e| (e.action, e.actor)).filter(|(_, a)| a == "patient").collect();
    for action in ["document.uploaded", "case.update", "case.consent_signed", "case.viewed"] {
        assert!(actions.iter().any(|(a, _)| a == action), "{action} by the patient in {actions:?}");
    }
    assert!(portal["needs_review_since"].is_string(), "{portal}");
    let advocate = app.signed_in("advocate@example.org").await;
    let home = advocate.get(format!("{}/", app.base)).send().await.expect("home").text().await.expect("body");
    assert!(home.contains("New from patient"), "the caseload marks the case");
    let case_page =
        advocate.get(format!("{}/cases/{id}", app.base)).send().await.expect("case").text().await.expect("body");
    assert!(case_page.contains("New from the patient since"), "the case page says what is new");
    // A details form opened before the patient's latest change does not undo it.
    let details = |questions: &'static str, shown: &'static str| {
        let advocate = advocate.clone();
        let url = format!("{}/cases/{id}/details", app.base);
        async move {
            let form = [
                ("urgency", "routine"),
                ("summary", "Biopsy suggests lymphoma."),
                ("medical_history", ""),
                ("medications", ""),
                ("patient_questions", questions),
                ("was_patient_questions", shown),
            ];
            advocate.post(url).form(&form).send().await.expect("details").status()
        }
    };
    assert_eq!(details("Old list", "Old list").await, StatusCode::SEE_OTHER, "questions left as shown");
    let (_, case) = app.get(&app.advocate.token, &format!("/api/v1/cases/{id}")).await;
    let kept = case["patient_questions"].as_str().expect("questions").to_string();
    assert!(kept.contains("Is surgery needed?"), "the patient's list stands: {kept}");
    assert_eq!(details("Rewritten", "Old list").await, StatusCode::CONFLICT, "a change over a newer list");
    let (_, case) = app.get(&app.advocate.token, &format!("/api/v1/cases/{id}")).await;
    assert_eq!(case["patient_questions"].as_str(), Some(kept.as_str()));
    assert!(case_page.contains("the patient, in the portal"), "documents say who sent them");
    assert!(case_page.contains("consent to share records signed"), "the activity names the action");
    assert!(case_page.contains("Signed in the portal by Jordan Patient"));
    let home = advocate.get(format!("{}/", app.base)).send().await.expect("home").text().await.expect("body");
    assert!(!home.contains("New from patient"), "opening the case is looking at it");
}

async fn care_partners_do_what_they_were_allowed_and_stop_when_removed(backend: Backend) {
    let Some(server) = SmtpServer::start().await else { return };
    let Some(app) = TestApp::start(backend).await else { return };
    let id = app.open_case(&app.advocate.token, "Jordan Patient").await;
    send_link(&app, id).await;
    deliver(&app, &server).await;
    let patient = open_portal(&portal_link_to(&app, &server, "patient@example.org")).await;
    let (status, _) = post(
        &app,
        &patient,
        "/portal/partners",
        &[("name", "Sam Rivera"), ("email", "Sam@Example.org"), ("may_edit_questions", "yes")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, html) =
        post(&app, &patient, "/portal/partners", &[("name", "Sam"), ("email", "sam@example.org")]).await;
    assert_eq!(status, StatusCode::CONFLICT, "invited once");
    assert!(html.contains("already a care partner"));
    deliver(&app, &server).await;
    let partner = open_portal(&portal_link_to(&app, &server, "sam@example.org")).await;
    let (status, html) = page(&app, &partner).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Sam Rivera (care partner of Jordan Patient)"), "{html}");
    assert!(html.contains("aria-current=\"step\">Records requested"), "they see the status");
    assert!(!html.contains("action=\"/portal/consent\""), "no consent form for them");
    assert!(!html.contains("action=\"/portal/partners\""), "they invite no one");

    let (status, _) = post(&app, &partner, "/portal/consent", &[("full_name", "Sam Rivera"), ("agree", "yes")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a care partner never signs");
    assert_eq!(upload(&app, &partner, "lab_results", pdf("labs", 512)).await, StatusCode::FORBIDDEN, "not granted");
    let (status, _) = post(
        &app,
        &partner,
        "/portal/questions",
        &[("part", "consultation"), ("action", "add"), ("question", "Side effects?")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "granted");
    let (_, portal) = app.get(&app.advocate.token, &format!("/api/v1/cases/{id}/portal")).await;
    let partner_id = portal["care_partners"][0]["id"].as_i64().expect("partner");
    let actors: Vec<String> =
        entries(&app, id).await.into_iter().filter(|e| e.action == "case.update").map(|e| e.actor).collect();
    assert_eq!(actors, [format!("care-partner:{partner_id}")], "their actions are theirs, by number");
    let advocate = app.signed_in("advocate@example.org").await;
    let case_page =
        advocate.get(format!("{}/cases/{id}", app.base)).send().await.expect("case").text().await.expect("body");
    assert!(case_page.contains("care partner Sam Rivera"), "staff see who did it by name");

    // The patient removes them: their very next request is refused.
    let (status, _) = post(&app, &patient, &format!("/portal/partners/{partner_id}/remove"), &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, html) = page(&app, &partner).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(html.contains("Your page is closed"));
    assert_eq!(page(&app, &patient).await.0, StatusCode::OK, "the patient stays in");

    // Staff invite and remove through the API as well.
    let invitation = json!({ "name": "Ari Lee", "email": "ari@example.org", "may_upload": true });
    let (status, body) =
        app.post(&app.advocate.token, &format!("/api/v1/cases/{id}/portal/partners"), invitation).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let path = format!("/api/v1/cases/{id}/portal/partners/{}", body["id"]);
    let (status, _) = app.call(Some(&app.other_advocate.token), reqwest::Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not their case");
    let (status, _) = app.call(Some(&app.advocate.token), reqwest::Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Inviting and removing again and again sends no more than ten invitations a day.
    let mut refused = None;
    for n in 0..12 {
        let invitation = json!({ "name": format!("Guest {n}"), "email": format!("guest{n}@example.org") });
        let (status, body) =
            app.post(&app.advocate.token, &format!("/api/v1/cases/{id}/portal/partners"), invitation).await;
        if status != StatusCode::CREATED {
            refused = Some((n, status, body));
            break;
        }
        let path = format!("/api/v1/cases/{id}/portal/partners/{}", body["id"]);
        app.call(Some(&app.advocate.token), reqwest::Method::DELETE, &path, None).await;
    }
    let (n, status, body) = refused.expect("a limit");
    assert_eq!((n, status), (8, StatusCode::CONFLICT), "two invited before, ten a day: {body}");
    assert_eq!(body["error"]["code"], "too_many_invitations");
}

async fn a_portal_session_reaches_nothing_but_its_own_case(backend: Backend) {
    let Some(server) = SmtpServer::start().await else { return };
    let Some(app) = TestApp::start(backend).await else { return };
    let id = app.open_case(&app.advocate.token, "Jordan Patient").await;
    let other = app.open_case(&app.advocate.token, "Casey Other").await;
    send_link(&app, id).await;
    deliver(&app, &server).await;
    let patient = open_portal(&portal_link_to(&app, &server, "patient@example.org")).await;
    for staff_page in ["/", format!("/cases/{id}").as_str(), format!("/cases/{other}").as_str(), "/admin"] {
        let response = patient.get(format!("{}{staff_page}", app.base)).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{staff_page} asks for a staff sign-in");
        assert!(response.headers()[header::LOCATION].to_str().expect("location").starts_with("/login"));
    }
    for api in ["/api/v1/cases", format!("/api/v1/cases/{id}").as_str(), format!("/api/v1/cases/{id}/portal").as_str()]
    {
        let response = patient.get(format!("{}{api}", app.base)).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{api}");
    }
    // Posting a staff form with the portal cookie changes nothing.
    let response = patient
        .post(format!("{}/cases/{other}/notes", app.base))
        .form(&[("body", "from the portal")])
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "the staff sign-in page answers");
    let (_, notes) = app.get(&app.advocate.token, &format!("/api/v1/cases/{other}/notes")).await;
    assert_eq!(notes["items"].as_array().map(Vec::len), Some(0));
    // A cross-site form is refused as on staff pages.
    let response = patient
        .post(format!("{}/portal/questions", app.base))
        .header("Origin", "https://evil.example")
        .header("Sec-Fetch-Site", "cross-site")
        .form(&[("part", "consultation"), ("action", "add"), ("question", "forged")])
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let headers = patient.get(format!("{}/portal", app.base)).send().await.expect("page").headers().clone();
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");

    // Withdrawing every link signs the patient out at their next page.
    let (status, body) = app
        .call(Some(&app.advocate.token), reqwest::Method::DELETE, &format!("/api/v1/cases/{id}/portal-links"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["withdrawn"], 1);
    assert_eq!(page(&app, &patient).await.0, StatusCode::UNAUTHORIZED);
    // What a form sent then held is not saved, and not lost either: the page shows it.
    let late = [("part", "consultation"), ("action", "add"), ("question", "Will I need a second biopsy?")];
    let (status, html) = post(&app, &patient, "/portal/questions", &late).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(html.contains("was not") && html.contains("Will I need a second biopsy?"), "{html}");
    let (_, case) = app.get(&app.advocate.token, &format!("/api/v1/cases/{id}")).await;
    assert_eq!(case["patient_questions"], "", "nothing saved");
    let link = portal_link_to(&app, &server, "patient@example.org");
    let response = web_client().get(&link).send().await.expect("open");
    assert_eq!(response.status(), StatusCode::GONE, "a withdrawn link opens nothing");
    let (status, _) = app
        .call(Some(&app.other_advocate.token), reqwest::Method::POST, &format!("/api/v1/cases/{id}/portal-link"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another advocate's case");
    let garbage = web_client().get(format!("{}/p/not-a-token", app.base)).send().await.expect("open");
    assert_eq!(garbage.status(), StatusCode::NOT_FOUND);
}

async fn an_expired_link_offers_a_new_one_to_the_address_on_file_only(backend: Backend) {
    let Some(server) = SmtpServer::start().await else { return };
    let Some(app) = TestApp::start(backend).await else { return };
    let id = app.open_case(&app.advocate.token, "Jordan Patient").await;
    send_link(&app, id).await;
    deliver(&app, &server).await;
    let link = portal_link_to(&app, &server, "patient@example.org");
    app.sql("UPDATE portal_links SET expires_at = created_at").await;
    let response = web_client().get(&link).send().await.expect("open");
    assert_eq!(response.status(), StatusCode::GONE);
    let html = response.text().await.expect("body");
    assert!(html.contains("This link has expired") && html.contains("Email me a new link"), "{html}");

    let renew = format!("{link}/renew");
    let emails = || async {
        outbox_message::Entity::find()
            .filter(outbox_message::Column::Kind.eq("portal_link"))
            .all(&app.db)
            .await
            .expect("outbox")
            .len()
    };
    let wrong = web_client().post(&renew).form(&[("email", "someone@else.org")]).send().await.expect("renew");
    let wrong_answer = wrong.text().await.expect("body");
    assert_eq!(emails().await, 1, "nothing for an address not on file");
    let right = web_client().post(&renew).form(&[("email", "Patient@Example.org ")]).send().await.expect("renew");
    assert_eq!(right.text().await.expect("body"), wrong_answer, "the same answer whatever was typed");
    assert_eq!(emails().await, 2, "a new link for the address on file");
    deliver(&app, &server).await;
    let fresh = portal_link_to(&app, &server, "patient@example.org");
    assert_ne!(fresh, link);
    let patient = open_portal(&fresh).await;
    assert_eq!(page(&app, &patient).await.0, StatusCode::OK);
    for _ in 0..5 {
        web_client().post(&renew).form(&[("email", "patient@example.org")]).send().await.expect("renew");
    }
    assert_eq!(emails().await, 4, "three new links an hour at most");
    let asked: Vec<String> =
        entries(&app, id).await.into_iter().filter(|e| e.action == "case.portal_link_sent").map(|e| e.actor).collect();
    assert_eq!(asked.len(), 4);
    assert!(asked[1..].iter().all(|a| a == "system:portal-new-link"), "{asked:?}");
}

async fn consent_is_needed_before_the_consultation_is_held(backend: Backend) {
    let Some(app) = TestApp::start_with(backend, |s| s.portal.consent_required = true).await else { return };
    let token = app.advocate.token.clone();
    let id = app.open_case(&token, "Jordan Patient").await;
    let specialist = app.add_specialist("Dr. Rosa Lind", true).await;
    let path = |p: &str| format!("/api/v1/cases/{id}/{p}");
    app.put(&token, &path("specialist"), json!({ "specialist_id": specialist })).await;
    let (status, _) = app.move_case(&token, id, json!({ "to": "specialist_chosen" })).await;
    assert_eq!(status, StatusCode::OK);
    let consultation = json!({ "scheduled_at": hours_from_now(-2), "mode": "in_person", "location": "Room 4" });
    app.put(&token, &path("consultation"), consultation).await;
    let (status, body) = app.move_case(&token, id, json!({ "to": "consultation_held" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "requirements_unmet");
    assert!(body["error"]["fields"]["consent"].as_str().is_some_and(|m| m.contains("authorization")), "{body}");
    let advocate = app.signed_in("advocate@example.org").await;
    let case_page = || async {
        advocate.get(format!("{}/cases/{id}", app.base)).send().await.expect("case").text().await.expect("body")
    };
    let waiting = "the patient has not signed the authorization to share their records";
    assert!(case_page().await.contains(waiting), "the case page says why the consultation cannot be marked held");
    let (status, body) = app.post(&token, &path("consent"), json!({ "signer_name": "  " })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = app.post(&token, &path("consent"), json!({ "signer_name": "Jordan Patient" })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, portal) = app.get(&token, &path("portal")).await;
    assert_eq!(portal["consent"]["method"], "paper");
    assert_eq!(portal["consent"]["signed_by"], "advocate@example.org");
    assert!(!case_page().await.contains(waiting));
    // Another specialist chosen since: the signature named the first one.
    let other = app.add_specialist("Dr. Omar Reyes", false).await;
    let (status, body) = app.put(&token, &path("specialist"), json!({ "specialist_id": other })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.move_case(&token, id, json!({ "to": "consultation_held" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "the consent named Dr. Rosa Lind: {body}");
    let (_, portal) = app.get(&token, &path("portal")).await;
    assert!(portal["consent"].is_null(), "no consent in force for Dr. Omar Reyes: {portal}");
    assert!(case_page().await.contains(waiting));
    let (status, _) = app.post(&token, &path("consent"), json!({ "signer_name": "Jordan Patient" })).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app.move_case(&token, id, json!({ "to": "consultation_held" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn the_survey_after_the_decision_feeds_the_figures(backend: Backend) {
    let Some(server) = SmtpServer::start().await else { return };
    let Some(app) = TestApp::start(backend).await else { return };
    let token = app.advocate.token.clone();
    let specialist = app.add_specialist("Dr. Rosa Lind", true).await;
    let id = app.open_case(&token, "Jordan Patient").await;
    send_link(&app, id).await;
    deliver(&app, &server).await;
    let patient = open_portal(&portal_link_to(&app, &server, "patient@example.org")).await;
    let (_, html) = page(&app, &patient).await;
    assert!(!html.contains("How did we do?"), "not before the decision");
    let (status, _) = post(&app, &patient, "/portal/survey", &[("satisfaction", "5"), ("recommend", "10")]).await;
    assert_eq!(status, StatusCode::CONFLICT);

    let invitation = json!({ "name": "Sam Rivera", "email": "sam@example.org", "gets_reminders": true });
    let (status, body) = app.post(&token, &format!("/api/v1/cases/{id}/portal/partners"), invitation).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    to_opinions_compared(&app, &token, id, specialist).await;
    let (status, body) = app
        .put(
            &token,
            &format!("/api/v1/cases/{id}/decision"),
            json!({ "chosen_opinion": "second", "reason": "Less invasive" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.move_case(&token, id, json!({ "to": "decision_made" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, html) = page(&app, &patient).await;
    assert!(html.contains("How did we do?"), "{html}");
    assert!(!html.contains("action=\"/portal/documents\""), "a closed case takes no more files");
    assert_eq!(upload(&app, &patient, "lab_results", pdf("late", 512)).await, StatusCode::CONFLICT, "nor by hand");
    let late = [("part", "follow_up"), ("action", "add"), ("question", "One more?")];
    assert_eq!(post(&app, &patient, "/portal/questions", &late).await.0, StatusCode::CONFLICT);
    let (status, html) = post(&app, &patient, "/portal/survey", &[("satisfaction", "7"), ("recommend", "10")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("how satisfied you are"), "{html}");
    let (status, _) = post(
        &app,
        &patient,
        "/portal/survey",
        &[("satisfaction", "4"), ("recommend", "9"), ("comment", "Clear and kind")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _) = post(&app, &patient, "/portal/survey", &[("satisfaction", "1"), ("recommend", "0")]).await;
    assert_eq!(status, StatusCode::CONFLICT, "answered once");
    let (status, overview) = app.get(&app.admin.token, "/api/v1/reports/overview").await;
    assert_eq!(status, StatusCode::OK);
    let survey: &Value = &overview["survey"];
    assert_eq!(survey["responses"], 1, "{overview}");
    assert_eq!(survey["mean_satisfaction"], 4.0);
    assert_eq!(survey["nps"], 100.0);
    assert_eq!(survey["response_rate"], 1.0);
    let row = case::Entity::find_by_id(i32::try_from(id).expect("id")).one(&app.db).await.expect("case");
    assert!(row.expect("case").portal_activity_at.is_some());

    // Erasing the closed case takes the portal's personal data with it; the figures stay.
    let (status, body) = app.post(&app.admin.token, &format!("/api/v1/cases/{id}/erase"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(page(&app, &patient).await.0, StatusCode::UNAUTHORIZED, "the patient's page closes");
    let partners = secondlook::db::entities::portal_partner::Entity::find().all(&app.db).await.expect("partners");
    assert!(partners.iter().all(|p| p.name.is_empty() && p.email.is_empty() && p.revoked_at.is_some()), "{partners:?}");
    let answers = secondlook::db::entities::portal_survey::Entity::find().all(&app.db).await.expect("answers");
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].comment, "");
    let (_, overview) = app.get(&app.admin.token, "/api/v1/reports/overview").await;
    assert_eq!(overview["survey"]["responses"], 1);
}

async fn chosen_care_partners_get_the_appointment_reminder_and_the_advocate_the_news(backend: Backend) {
    let Some(server) = SmtpServer::start().await else { return };
    let Some(app) = TestApp::start(backend).await else { return };
    let token = app.advocate.token.clone();
    let id = app.open_case(&token, "Jordan Patient").await;
    for (name, email, reminders) in [("Sam Rivera", "sam@example.org", true), ("Ari Lee", "ari@example.org", false)] {
        let invitation = json!({ "name": name, "email": email, "gets_reminders": reminders });
        let (status, body) = app.post(&token, &format!("/api/v1/cases/{id}/portal/partners"), invitation).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // The patient adds a question from their page.
    send_link(&app, id).await;
    deliver(&app, &server).await;
    let patient = open_portal(&portal_link_to(&app, &server, "patient@example.org")).await;
    let question = [("part", "consultation"), ("action", "add"), ("question", "Can I keep working?")];
    assert_eq!(post(&app, &patient, "/portal/questions", &question).await.0, StatusCode::SEE_OTHER);

    // A day and a bit before the consultation.
    let now = chrono::Utc::now();
    let specialist = app.add_specialist("Dr. Rosa Lind", true).await;
    app.put(&token, &format!("/api/v1/cases/{id}/specialist"), json!({ "specialist_id": specialist })).await;
    let (status, _) = app.move_case(&token, id, json!({ "to": "specialist_chosen" })).await;
    assert_eq!(status, StatusCode::OK);
    let visit = json!({ "scheduled_at": (now + chrono::Duration::hours(30)).to_rfc3339(), "mode": "virtual" });
    let (status, body) = app.put(&token, &format!("/api/v1/cases/{id}/consultation"), visit).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let reminders = Reminders::new(app.db.clone(), Arc::new(smtp(&app.settings, server.port))).expect("reminders");
    secondlook::reminders::scan::scan(&reminders, chrono::Utc::now(), false).await.expect("scan");
    // Whatever the patient's quiet hours held back, as if they had passed.
    app.sql("UPDATE outbox SET next_attempt_at = created_at WHERE status = 'queued'").await;
    deliver(&app, &server).await;

    let to = |email: &str| {
        server
            .messages()
            .into_iter()
            .filter(|m| m.recipients == [email])
            .map(|m| part(&m.raw, "text/plain"))
            .filter(|text| text.contains("second-opinion appointment"))
            .collect::<Vec<_>>()
    };
    let patient_reminder = to("patient@example.org");
    assert_eq!(patient_reminder.len(), 1, "the patient's reminder");
    assert!(patient_reminder[0].contains("Can I keep working?"), "their own questions: {}", patient_reminder[0]);
    let partner_reminder = to("sam@example.org");
    assert_eq!(partner_reminder.len(), 1, "the care partner who asked for reminders");
    assert!(
        partner_reminder[0].contains("Hello Sam")
            && partner_reminder[0].contains("Jordan's second-opinion appointment")
    );
    assert!(to("ari@example.org").is_empty(), "not the one who did not");
    let partner = open_portal(&portal_link_to(&app, &server, "sam@example.org")).await;
    let (_, html) = page(&app, &partner).await;
    assert!(html.contains("Sam Rivera (care partner of Jordan Patient)"), "the reminder carries their own link");

    // The advocate's digest the next day names the case with news from the patient.
    let (_, case) = app.get(&token, &format!("/api/v1/cases/{id}")).await;
    let reference = case["reference"].as_str().expect("reference").to_string();
    let noon = (now.date_naive() + chrono::Duration::days(1)).and_hms_opt(12, 0, 0).expect("time").and_utc();
    secondlook::reminders::scan::scan(&reminders, noon, false).await.expect("scan");
    let digest = outbox_message::Entity::find()
        .filter(outbox_message::Column::Kind.eq("digest"))
        .one(&app.db)
        .await
        .expect("outbox")
        .expect("a digest");
    assert!(digest.body_text.contains(&format!("New from the patient: {reference}")), "{}", digest.body_text);
    assert!(!digest.body_text.contains("keep working"), "the digest names the case, not what was written");
}
