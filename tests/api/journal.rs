//! The case journal over the API: notes and the contact log with its
//! follow-ups, under the case's access rules, audited without their text,
//! and blanked by an erasure.

use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Backend, TestApp};

crate::on_both_databases!(
    notes_are_kept_newest_first_for_whoever_may_see_the_case,
    contacts_carry_follow_ups_until_marked_done,
    journal_input_is_checked_field_by_field,
    a_due_follow_up_is_in_the_advocates_daily_digest,
);

async fn notes_are_kept_newest_first_for_whoever_may_see_the_case(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let token = app.advocate.token.clone();
    let id = app.open_case(&token, "Noted Patient").await;
    let notes = format!("/api/v1/cases/{id}/notes");
    let secret = "Prefers calls after 5 pm; daughter translates.";
    let (s, first) = app.post(&token, &notes, json!({ "body": secret })).await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    assert_eq!(first["body"], secret);
    assert_eq!(first["author"]["id"], app.advocate.id);
    let (s, second) = app.post(&token, &notes, json!({ "body": "Asked the clinic for the pathology slides." })).await;
    assert_eq!(s, StatusCode::CREATED, "{second}");

    let (s, listed) = app.get(&token, &notes).await;
    assert_eq!(s, StatusCode::OK, "{listed}");
    let ids: Vec<_> = listed["items"].as_array().expect("items").iter().map(|n| n["id"].clone()).collect();
    assert_eq!(ids, vec![second["id"].clone(), first["id"].clone()], "newest first");

    // Another advocate's case is not theirs to read or write: as if it did not exist.
    let other = app.other_advocate.token.clone();
    assert_eq!(app.get(&other, &notes).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.post(&other, &notes, json!({ "body": "Not mine" })).await.0, StatusCode::NOT_FOUND);
    let (s, seen_by_admin) = app.get(&app.admin.token, &notes).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(seen_by_admin["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(app.get(&token, "/api/v1/cases/999999/notes").await.0, StatusCode::NOT_FOUND);

    // The trail says a note was added, not what it says.
    let (s, trail) = app.get(&app.admin.token, &format!("/api/v1/audit?case_id={id}&action=case.note")).await;
    assert_eq!(s, StatusCode::OK, "{trail}");
    assert_eq!(trail["items"].as_array().map(Vec::len), Some(2));
    assert!(!trail.to_string().contains("daughter"), "{trail}");

    // A patient's access request carries the notes; an erasure blanks them.
    let (s, export) = app.get(&app.admin.token, &format!("/api/v1/cases/{id}/export")).await;
    assert_eq!(s, StatusCode::OK, "{export}");
    assert_eq!(export["notes"][0]["body"], secret, "oldest first in the export");
    // Only a closed case is erased.
    let (s, b) =
        app.move_case(&token, id, json!({ "to": "withdrawn", "note": "Chose to stay with her oncologist" })).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app.post(&app.admin.token, &format!("/api/v1/cases/{id}/erase"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, after) = app.get(&app.admin.token, &notes).await;
    assert!(after["items"].as_array().expect("items").iter().all(|n| n["body"] == ""), "{after}");
    assert_eq!(app.post(&app.admin.token, &notes, json!({ "body": "Too late" })).await.0, StatusCode::CONFLICT);
}

async fn contacts_carry_follow_ups_until_marked_done(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let token = app.advocate.token.clone();
    let id = app.open_case(&token, "Called Patient").await;
    let contacts = format!("/api/v1/cases/{id}/contacts");
    let follow_up_on = (Utc::now() + Duration::days(2)).date_naive().to_string();
    let call = json!({
        "with": "provider", "channel": "fax", "direction": "outbound",
        "summary": "Faxed the records request to the imaging centre.", "follow_up_on": follow_up_on,
    });
    let (s, logged) = app.post(&token, &contacts, call).await;
    assert_eq!(s, StatusCode::CREATED, "{logged}");
    assert_eq!((logged["with"].clone(), logged["channel"].clone()), (json!("provider"), json!("fax")));
    assert_eq!(logged["follow_up_on"], follow_up_on);
    assert!(logged["done_at"].is_null());
    let plain =
        json!({ "with": "patient", "channel": "phone", "direction": "inbound", "summary": "Patient called back." });
    let (s, plain) = app.post(&token, &contacts, plain).await;
    assert_eq!(s, StatusCode::CREATED, "{plain}");
    assert!(plain["follow_up_on"].is_null());

    let (s, listed) = app.get(&token, &contacts).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(listed["items"][1]["summary"], "Faxed the records request to the imaging centre.");

    let done = |contact: &serde_json::Value| format!("{contacts}/{}/done", contact["id"]);
    let (s, marked) = app.post(&token, &done(&logged), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{marked}");
    assert!(marked["done_at"].is_string(), "{marked}");
    assert_eq!(marked["done_by"]["id"], app.advocate.id);
    let (s, again) = app.post(&token, &done(&logged), json!({})).await;
    assert_eq!(s, StatusCode::OK, "marking again changes nothing");
    assert_eq!(again["done_at"], marked["done_at"]);
    let (s, refused) = app.post(&token, &done(&plain), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "no_follow_up");
    // A contact is reached only through its own case.
    let elsewhere = app.open_case(&token, "Elsewhere").await;
    let wrong_case = format!("/api/v1/cases/{elsewhere}/contacts/{}/done", logged["id"]);
    assert_eq!(app.post(&token, &wrong_case, json!({})).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.post(&app.other_advocate.token, &done(&logged), json!({})).await.0, StatusCode::NOT_FOUND);

    let (_, trail) = app.get(&app.admin.token, &format!("/api/v1/audit?case_id={id}&action=case.follow_up_done")).await;
    assert_eq!(trail["items"].as_array().map(Vec::len), Some(1), "{trail}");
    let (_, logged_trail) = app.get(&app.admin.token, &format!("/api/v1/audit?case_id={id}&action=case.contact")).await;
    assert!(!logged_trail.to_string().contains("imaging centre"), "{logged_trail}");
}

async fn journal_input_is_checked_field_by_field(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let token = app.advocate.token.clone();
    let id = app.open_case(&token, "Checked Patient").await;
    let notes = format!("/api/v1/cases/{id}/notes");
    let contacts = format!("/api/v1/cases/{id}/contacts");

    let (s, b) = app.post(&token, &notes, json!({ "body": "   " })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b["error"]["fields"]["body"].is_string(), "{b}");
    let (s, b) = app.post(&token, &notes, json!({ "body": "x".repeat(20_001) })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, b) = app.post(&token, &notes, json!({ "body": "ok", "pinned": true })).await;
    assert!(s.is_client_error(), "unknown fields are refused: {s} {b}");

    let past = (Utc::now() - Duration::days(5)).date_naive().to_string();
    let base = json!({ "with": "insurer", "channel": "email", "direction": "outbound", "summary": "Asked about pre-approval." });
    let mut late = base.clone();
    late["follow_up_on"] = json!(past);
    let (s, b) = app.post(&token, &contacts, late).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b["error"]["fields"]["follow_up_on"].is_string(), "{b}");
    let mut odd = base.clone();
    odd["with"] = json!("neighbour");
    let (s, b) = app.post(&token, &contacts, odd).await;
    assert!(s.is_client_error(), "{s} {b}");
    assert!(b["error"]["code"].is_string(), "{b}");
    let mut blank = base.clone();
    blank["summary"] = json!("");
    let (s, b) = app.post(&token, &contacts, blank).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b["error"]["fields"]["summary"].is_string(), "{b}");
    // Nothing was written by the refused requests.
    let (_, listed) = app.get(&token, &contacts).await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(0));
    let (_, listed) = app.get(&token, &notes).await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(0));
}

async fn a_due_follow_up_is_in_the_advocates_daily_digest(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let token = app.advocate.token.clone();
    let id = app.open_case(&token, "Digest Patient").await;
    let today = Utc::now().date_naive();
    let call = json!({
        "with": "insurer", "channel": "phone", "direction": "outbound",
        "summary": "Claims line promised an answer on the MRI", "follow_up_on": today.to_string(),
    });
    let (s, b) = app.post(&token, &format!("/api/v1/cases/{id}/contacts"), call).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (_, case) = app.get(&token, &format!("/api/v1/cases/{id}")).await;
    let reference = case["reference"].as_str().expect("reference").to_string();

    // Noon (UTC, the staff's zone here) the next day: past the digest time.
    let noon = (today + Duration::days(1)).and_hms_opt(12, 0, 0).expect("time").and_utc();
    let reminders = app.reminders();
    secondlook::reminders::scan::scan(&reminders, noon, false).await.expect("scan");
    let digests = app.digests_to("advocate@example.org").await;
    assert_eq!(digests.len(), 1, "one digest for the advocate");
    let body = &digests[0].body_text;
    assert!(body.contains(&format!("Follow-up: {reference} — Insurer by phone, since {today}")), "{body}");
    assert!(
        !body.contains("MRI") && !body.contains("Digest Patient"),
        "the email names the case, not its contents: {body}"
    );

    // Once done, the next day's digest has nothing about it.
    let (_, contacts) = app.get(&token, &format!("/api/v1/cases/{id}/contacts")).await;
    let done = format!("/api/v1/cases/{id}/contacts/{}/done", contacts["items"][0]["id"]);
    assert_eq!(app.post(&token, &done, json!({})).await.0, StatusCode::OK);
    secondlook::reminders::scan::scan(&reminders, noon + Duration::days(1), false).await.expect("scan");
    let later = app.digests_to("advocate@example.org").await;
    assert!(later.iter().skip(1).all(|d| !d.body_text.contains("Follow-up:")), "{later:?}");
}
