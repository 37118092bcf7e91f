//! Records requests to providers, on both databases: the providers
//! directory, a request's whole life from draft to fulfilled with its
//! legal clock and one extension, the refusals, and access.

use reqwest::StatusCode;
use serde_json::{Value, json};

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use secondlook::db::entities::outbox_message;

use crate::common::{Backend, TestApp};

crate::on_both_databases!(
    a_request_goes_from_draft_to_fulfilled_on_its_legal_clock,
    extensions_and_jurisdictions_follow_the_rules,
    providers_are_checked_and_only_admins_change_them,
    the_advocate_is_reminded_of_due_requests_and_the_patient_told_of_arrivals,
    the_providers_pages_add_list_and_edit,
    a_request_is_made_and_answered_from_the_case_page,
    a_request_letter_is_printed_and_filed_as_a_pdf,
);

fn ts(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value.as_str().unwrap_or_else(|| panic!("a timestamp: {value}")).parse().expect("RFC 3339")
}

async fn provider(app: &TestApp, body: Value) -> i64 {
    let (status, created) = app.post(&app.advocate.token, "/api/v1/providers", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_i64().expect("id")
}

fn mercy() -> Value {
    json!({
        "name": "Mercy General Hospital", "kind": "hospital", "fax": "+1 312 555 0100",
        "email": "records@mercy.example", "address": "100 Main St, Chicago IL", "timezone": "America/Chicago",
    })
}

async fn a_request_goes_from_draft_to_fulfilled_on_its_legal_clock(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let token = app.advocate.token.clone();
    let case = app.open_case(&token, "Jordan Patient").await;
    let mercy = provider(&app, mercy()).await;
    let new = json!({ "provider_id": mercy, "type": "patient_access", "kinds": ["lab_results", "imaging_ct", "lab_results"] });
    let (status, draft) = app.post(&token, &format!("/api/v1/cases/{case}/records-requests"), new).await;
    assert_eq!(status, StatusCode::CREATED, "{draft}");
    assert_eq!(draft["state"], "draft");
    assert_eq!(draft["kinds"], json!(["lab_results", "imaging_ct"]), "each kind once");
    assert!(draft["due_at"].is_null(), "a draft has no clock yet");
    let id = draft["id"].as_i64().expect("id");
    let path = format!("/api/v1/records-requests/{id}");

    // Mailed at 16:00 on 2 March in Chicago: received 5 days later, due 30 days after that.
    let sent_at = "2026-03-02T22:00:00Z";
    let (status, sent) =
        app.patch(&token, &path, json!({ "state": "sent", "method": "mail", "sent_at": sent_at })).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    assert_eq!(sent["state"], "sent");
    assert_eq!(ts(&sent["received_by_provider_at"]), ts(&json!("2026-03-07T22:00:00Z")));
    // 6 April, 23:59:59 in Chicago (CDT, UTC-5).
    assert_eq!(ts(&sent["due_at"]), ts(&json!("2026-04-07T04:59:59Z")));
    assert_eq!(sent["overdue"], true, "that date has passed");
    assert!(sent["extension"].is_null());

    let (status, body) = app.patch(&token, &path, json!({ "state": "sent" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "sent once: {body}");
    let future = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    let (status, body) = app.patch(&token, &path, json!({ "sent_at": future })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "not sent in the future: {body}");
    let (status, body) = app.patch(&token, &path, json!({ "received_by_provider_at": "2026-04-30T12:00:00Z" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "no quiet extension by a late receipt date: {body}");
    let (status, body) =
        app.patch(&token, &path, json!({ "received_by_provider_at": "+262143-12-20T00:00:00Z" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a date out of range is refused, not a crash: {body}");
    let (status, acknowledged) = app.patch(&token, &path, json!({ "state": "acknowledged" })).await;
    assert_eq!(status, StatusCode::OK, "{acknowledged}");
    let (status, body) = app.patch(&token, &path, json!({ "sent_at": "2026-03-03T22:00:00Z" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "answered: the dates stand: {body}");
    let (status, body) = app.patch(&token, &path, json!({ "state": "fulfilled" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "fulfilled follows the receipts: {body}");

    // One extension, with the provider's notice inside the first period.
    // The new date is one of the provider's days: noon of 30 April there stands for all of it.
    let extension = json!({ "notice_received_at": "2026-03-20T15:00:00Z", "reason": "Records are in off-site storage", "new_due_at": "2026-04-30T17:00:00Z" });
    let (status, extended) = app.post(&token, &format!("{path}/extension"), extension.clone()).await;
    assert_eq!(status, StatusCode::OK, "{extended}");
    assert_eq!(ts(&extended["due_at"]), ts(&json!("2026-05-01T04:59:59Z")));
    assert_eq!(ts(&extended["first_due_at"]), ts(&json!("2026-04-07T04:59:59Z")));
    assert_eq!(extended["extension"]["reason"], "Records are in off-site storage");
    let (status, body) = app.post(&token, &format!("{path}/extension"), extension).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "extension_used");

    // What arrives marks the checklist; the rest keeps the request open.
    let (status, partial) = app
        .post(
            &token,
            &format!("{path}/receipts"),
            json!({ "kinds": ["lab_results"], "received_at": "2026-03-25T15:00:00Z" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{partial}");
    assert_eq!(partial["state"], "partially_received");
    assert_eq!(partial["received"], json!(["lab_results"]));
    let (_, case_view) = app.get(&token, &format!("/api/v1/cases/{case}")).await;
    let status_of = |kind: &str| {
        case_view["records"].as_array().expect("records").iter().find(|r| r["kind"] == kind).expect("record")["status"]
            .clone()
    };
    assert_eq!(status_of("lab_results"), "received");
    assert_eq!(status_of("imaging_ct"), "requested");
    let (status, body) = app
        .post(
            &token,
            &format!("{path}/receipts"),
            json!({ "kinds": ["imaging_mri"], "received_at": "2026-03-26T15:00:00Z" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "not asked for: {body}");

    let (status, document) = crate::documents::upload(
        &app,
        &token,
        case,
        "ct.pdf",
        crate::documents::pdf("ct", 1024),
        &[("kind", "imaging_ct")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{document}");
    let receipt =
        json!({ "kinds": ["imaging_ct"], "received_at": "2026-03-27T15:00:00Z", "document_ids": [document["id"]] });
    let (status, fulfilled) = app.post(&token, &format!("{path}/receipts"), receipt).await;
    assert_eq!(status, StatusCode::OK, "{fulfilled}");
    assert_eq!(fulfilled["state"], "fulfilled");
    assert!(fulfilled["closed_at"].is_string());
    assert_eq!(fulfilled["overdue"], false, "answered, so not overdue");
    let (_, case_view) = app.get(&token, &format!("/api/v1/cases/{case}")).await;
    let imaging = case_view["records"].as_array().expect("records").iter().find(|r| r["kind"] == "imaging_ct").cloned();
    assert_eq!(imaging.expect("imaging")["status"], "received");
    let (status, body) = app.patch(&token, &path, json!({ "state": "cancelled" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "a fulfilled request stays so: {body}");

    let (status, list) = app.get(&token, &format!("/api/v1/cases/{case}/records-requests")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["items"][0]["provider_name"], "Mercy General Hospital");
    let (status, _) = app.get(&app.other_advocate.token, &path).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another advocate's case");
    let (status, _) = app.get(&app.other_advocate.token, &format!("/api/v1/cases/{case}/records-requests")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A refusal needs its reason; cancelling closes.
    let new = json!({ "provider_id": mercy, "type": "authorization", "kinds": ["pathology_report"], "method": "fax", "sent_at": "2026-03-02T22:00:00Z" });
    let (_, second) = app.post(&token, &format!("/api/v1/cases/{case}/records-requests"), new).await;
    assert_eq!(second["state"], "sent");
    assert_eq!(ts(&second["due_at"]), ts(&json!("2026-03-17T04:59:59Z")), "our 14-day service level");
    let second_path = format!("/api/v1/records-requests/{}", second["id"]);
    let (status, body) = app.patch(&token, &second_path, json!({ "state": "denied" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, denied) = app
        .patch(&token, &second_path, json!({ "state": "denied", "denied_reason": "No authorization on file" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{denied}");
    assert_eq!(denied["denied_reason"], "No authorization on file");
    assert_eq!(denied["overdue"], false);

    // Withdrawing the case ends what is still asked of providers.
    let waiting = json!({ "provider_id": mercy, "type": "patient_access", "kinds": ["surgical_reports"], "method": "email", "sent_at": "2026-11-30T12:00:00Z" });
    let (_, waiting) = app.post(&token, &format!("/api/v1/cases/{case}/records-requests"), waiting).await;
    let (status, body) = app.move_case(&token, case, json!({ "to": "withdrawn", "note": "Patient stopped" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, ended) = app.get(&token, &format!("/api/v1/records-requests/{}", waiting["id"])).await;
    assert_eq!(ended["state"], "cancelled", "{ended}");
    assert_eq!(ended["overdue"], false);
}

async fn extensions_and_jurisdictions_follow_the_rules(backend: Backend) {
    let Some(app) = TestApp::start_with(backend, |s| {
        s.records_requests.jurisdictions.insert(
            "short_state".into(),
            secondlook::config::JurisdictionSettings { response_days: 15, extension_days: Some(10) },
        );
    })
    .await
    else {
        return;
    };
    let token = app.advocate.token.clone();
    let case = app.open_case(&token, "Jordan Patient").await;
    let local = provider(&app, json!({ "name": "Lakeside Lab", "kind": "laboratory", "email": "lab@lakeside.example", "timezone": "UTC", "jurisdiction": "short_state" })).await;
    let new = json!({ "provider_id": local, "type": "patient_access", "kinds": ["lab_results"], "method": "email", "sent_at": "2026-06-01T10:00:00Z" });
    let (status, sent) = app.post(&token, &format!("/api/v1/cases/{case}/records-requests"), new).await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    assert_eq!(ts(&sent["due_at"]), ts(&json!("2026-06-16T23:59:59Z")), "the jurisdiction's 15 days");
    let path = format!("/api/v1/records-requests/{}/extension", sent["id"]);
    let asked = |notice: &str, new_due: &str| json!({ "notice_received_at": notice, "reason": "Backlog", "new_due_at": new_due });
    let (status, body) = app.post(&token, &path, asked("2026-06-17T09:00:00Z", "2026-06-20T23:59:59Z")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "extension_too_late");
    let (status, body) = app.post(&token, &path, asked("2026-06-10T09:00:00Z", "2026-06-27T23:59:59Z")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "11 days is more than the 10 allowed: {body}");
    assert!(body["error"]["fields"]["new_due_at"].as_str().is_some_and(|m| m.contains("10 days")), "{body}");
    let (status, body) = app.post(&token, &path, asked("2026-06-10T09:00:00Z", "2026-06-26T23:59:59Z")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .patch(
            &token,
            &format!("/api/v1/records-requests/{}", sent["id"]),
            json!({ "sent_at": "2026-06-02T10:00:00Z" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "the extension fixed the dates: {body}");
    assert_eq!(body["error"]["code"], "extension_recorded");
    // A draft cannot be extended.
    let draft = json!({ "provider_id": local, "type": "patient_access", "kinds": ["lab_results"] });
    let (_, draft) = app.post(&token, &format!("/api/v1/cases/{case}/records-requests"), draft).await;
    let (status, body) = app
        .post(
            &token,
            &format!("/api/v1/records-requests/{}/extension", draft["id"]),
            asked("2026-06-10T09:00:00Z", "2026-06-26T23:59:59Z"),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "not_sent");
}

async fn providers_are_checked_and_only_admins_change_them(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let (status, body) = app
        .post(
            &app.advocate.token,
            "/api/v1/providers",
            json!({ "name": "No Way To Reach", "kind": "clinic", "timezone": "Mars/Base", "jurisdiction": "nowhere" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    for field in ["email", "timezone", "jurisdiction"] {
        assert!(body["error"]["fields"][field].is_string(), "{field}: {body}");
    }
    let (status, body) = app
        .post(&app.advocate.token, "/api/v1/providers", json!({ "name": "X", "kind": "spa", "email": "x@example.org" }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "an unknown kind: {body}");
    let id = provider(&app, mercy()).await;
    let (status, body) = app.put(&app.advocate.token, &format!("/api/v1/providers/{id}"), mercy()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let mut changed = mercy();
    changed["fax"] = json!("+1 312 555 0199");
    let (status, body) = app.put(&app.admin.token, &format!("/api/v1/providers/{id}"), changed).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["fax"], "+1 312 555 0199");
    let (status, list) = app.get(&app.advocate.token, "/api/v1/providers?q=mercy").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "found without regard to case");
    let (status, body) = app
        .post(
            &app.advocate.token,
            &format!("/api/v1/cases/{}/records-requests", app.open_case(&app.advocate.token, "Pat").await),
            json!({ "provider_id": 999_999, "type": "patient_access", "kinds": ["lab_results"] }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

async fn the_advocate_is_reminded_of_due_requests_and_the_patient_told_of_arrivals(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let token = app.advocate.token.clone();
    let case = app.open_case(&token, "Jordan Patient").await;
    let lab = provider(
        &app,
        json!({ "name": "Lakeside Lab", "kind": "laboratory", "email": "lab@lakeside.example", "timezone": "UTC" }),
    )
    .await;
    // Sent 27 days ago: due within the next days.
    let sent_at = (chrono::Utc::now() - chrono::Duration::days(27)).to_rfc3339();
    let new = json!({ "provider_id": lab, "type": "patient_access", "kinds": ["lab_results", "imaging_ct"], "method": "email", "sent_at": sent_at });
    let (status, request) = app.post(&token, &format!("/api/v1/cases/{case}/records-requests"), new).await;
    assert_eq!(status, StatusCode::CREATED, "{request}");
    let (_, case_view) = app.get(&token, &format!("/api/v1/cases/{case}")).await;
    let reference = case_view["reference"].as_str().expect("reference").to_string();

    let reminders = app.reminders();
    let emails = |kind: &'static str| {
        let db = app.db.clone();
        async move {
            outbox_message::Entity::find().filter(outbox_message::Column::Kind.eq(kind)).all(&db).await.expect("outbox")
        }
    };
    let now = chrono::Utc::now();
    secondlook::reminders::scan::scan(&reminders, now, false).await.expect("scan");
    secondlook::reminders::scan::scan(&reminders, now, false).await.expect("scan again");
    let due_soon = emails("records_request_due_soon").await;
    assert_eq!(due_soon.len(), 1, "once, however often the scan runs");
    assert_eq!(due_soon[0].recipient_email, "advocate@example.org");
    assert!(due_soon[0].body_text.contains("Lakeside Lab") && due_soon[0].body_text.contains(&reference));
    assert!(!due_soon[0].body_text.contains("Jordan"), "the advocate's email names the case, not the patient");

    let receipt = json!({ "kinds": ["lab_results"], "received_at": chrono::Utc::now().to_rfc3339() });
    let (status, body) =
        app.post(&token, &format!("/api/v1/records-requests/{}/receipts", request["id"]), receipt).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    secondlook::reminders::scan::scan(&reminders, chrono::Utc::now(), false).await.expect("scan");
    secondlook::reminders::scan::scan(&reminders, chrono::Utc::now(), false).await.expect("scan again");
    let arrived = emails("records_arrived").await;
    assert_eq!(arrived.len(), 1, "the patient is told once");
    assert_eq!(arrived[0].recipient_email, "patient@example.org");
    assert!(arrived[0].body_text.contains("Lab results"), "{}", arrived[0].body_text);
    assert!(!arrived[0].body_text.contains("Lakeside"), "not where they came from");

    // Past its due date: the overdue reminder, and a line in the digest.
    let later = now + chrono::Duration::days(4);
    secondlook::reminders::scan::scan(&reminders, later, false).await.expect("scan");
    assert_eq!(emails("records_request_overdue").await.len(), 1);
    let noon = (later.date_naive() + chrono::Duration::days(1)).and_hms_opt(12, 0, 0).expect("time").and_utc();
    secondlook::reminders::scan::scan(&reminders, noon, false).await.expect("scan");
    // A receipt entered days after the records came still tells the patient.
    let other = json!({ "provider_id": lab, "type": "authorization", "kinds": ["medication_list"], "method": "email", "sent_at": (now - chrono::Duration::days(20)).to_rfc3339() });
    let (_, other) = app.post(&token, &format!("/api/v1/cases/{case}/records-requests"), other).await;
    let backdated =
        json!({ "kinds": ["medication_list"], "received_at": (now - chrono::Duration::days(10)).to_rfc3339() });
    let (status, body) =
        app.post(&token, &format!("/api/v1/records-requests/{}/receipts", other["id"]), backdated).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    secondlook::reminders::scan::scan(&reminders, chrono::Utc::now(), false).await.expect("scan");
    assert_eq!(emails("records_arrived").await.len(), 2, "told of the backdated receipt too");
    let digests = emails("digest").await;
    let digest = digests.iter().max_by_key(|d| d.id).expect("the day's digest");
    assert!(
        digest.body_text.contains(&format!("Records request: {reference} — Lakeside Lab, overdue since")),
        "{}",
        digest.body_text
    );
}

async fn the_providers_pages_add_list_and_edit(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let advocate = app.signed_in("advocate@example.org").await;
    let post = |client: reqwest::Client, path: String, form: Vec<(&'static str, &'static str)>| async move {
        let response = client.post(path).form(&form).send().await.expect("post");
        let status = response.status();
        (status, response.text().await.expect("body"))
    };
    let url = |path: &str| format!("{}{path}", app.base);
    let (status, html) = post(
        advocate.clone(),
        url("/providers/new"),
        vec![("name", "Northside Imaging"), ("kind", "imaging_center"), ("timezone", "America/Chicago")],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("give at least one way to send a request"), "{html}");
    assert!(html.contains("value=\"Northside Imaging\""), "what was typed is kept");
    let good = vec![
        ("name", "Northside Imaging"),
        ("kind", "imaging_center"),
        ("fax", "+1 773 555 0142"),
        ("timezone", "America/Chicago"),
    ];
    let (status, _) = post(advocate.clone(), url("/providers/new"), good.clone()).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let list = advocate.get(url("/providers")).send().await.expect("list").text().await.expect("body");
    assert!(list.contains("Northside Imaging") && list.contains("Fax +1 773 555 0142"), "{list}");
    assert!(!list.contains("/edit\">Edit"), "advocates add, admins edit");
    let (_, found) = app.get(&app.admin.token, "/api/v1/providers?q=northside").await;
    let id = found["items"][0]["id"].as_i64().expect("id");
    let (status, _) = post(advocate.clone(), url(&format!("/providers/{id}/edit")), good.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let admin = app.signed_in("admin@example.org").await;
    let mut changed = good;
    changed[2] = ("fax", "+1 773 555 0199");
    let (status, _) = post(admin.clone(), url(&format!("/providers/{id}/edit")), changed).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, provider) = app.get(&app.admin.token, &format!("/api/v1/providers/{id}")).await;
    assert_eq!(provider["fax"], "+1 773 555 0199");
}

async fn a_request_is_made_and_answered_from_the_case_page(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let case = app.open_case(&app.advocate.token, "Jordan Patient").await;
    let mercy = provider(&app, mercy()).await;
    let advocate = app.signed_in("advocate@example.org").await;
    let send = |path: String, form: Vec<(String, String)>| {
        let advocate = advocate.clone();
        async move {
            let response = advocate.post(path).form(&form).send().await.expect("post");
            let status = response.status();
            let location = response.headers().get("location").and_then(|l| l.to_str().ok()).map(String::from);
            (status, location, response.text().await.expect("body"))
        }
    };
    let owned = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
    let page = || async {
        advocate.get(format!("{}/cases/{case}", app.base)).send().await.expect("case").text().await.expect("body")
    };
    let html = page().await;
    assert!(
        html.contains("Ask a provider for records") && html.contains("Mercy General Hospital"),
        "the form lists providers"
    );

    // Nothing ticked: refused on the page, with the form open again.
    let empty = owned(&[("provider_id", &mercy.to_string()), ("type", "patient_access"), ("method", "")]);
    let (status, _, html) = send(format!("{}/cases/{case}/records-requests", app.base), empty).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("name at least one record to ask for"), "{html}");

    let mercy_id = mercy.to_string();
    let new = owned(&[
        ("provider_id", &mercy_id),
        ("type", "patient_access"),
        ("kind.lab_results", "on"),
        ("kind.pathology_report", "on"),
        ("method", "fax"),
        ("sent_at", "2026-12-01T10:00"),
    ]);
    let (status, location, _) = send(format!("{}/cases/{case}/records-requests", app.base), new).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some(format!("/cases/{case}#records-requests").as_str()));
    let html = page().await;
    assert!(html.contains("Request to Mercy General Hospital recorded as sent."), "{html}");
    assert!(html.contains("Lab results, Pathology / biopsy report"), "{html}");
    let (_, list) = app.get(&app.advocate.token, &format!("/api/v1/cases/{case}/records-requests")).await;
    let id = list["items"][0]["id"].as_i64().expect("id");
    // 10:00 on 1 December in the advocate's zone (UTC here), thirty days in Chicago.
    assert_eq!(
        list["items"][0]["due_at"],
        "2026-12-31T23:59:59-06:00"
            .parse::<chrono::DateTime<chrono::FixedOffset>>()
            .map(|d| json!(d.with_timezone(&chrono::Utc)))
            .expect("date")
    );

    let partial = owned(&[("kind.lab_results", "on"), ("received_at", "2026-12-05T09:00")]);
    let (status, _, _) = send(format!("{}/records-requests/{id}/receipt", app.base), partial).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(page().await.contains("Recorded; still waiting on Mercy General Hospital for part of it."));
    let rest = owned(&[("kind.pathology_report", "on"), ("received_at", "2026-12-06T09:00")]);
    let (status, _, _) = send(format!("{}/records-requests/{id}/receipt", app.base), rest).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let html = page().await;
    assert!(html.contains("Everything asked of Mercy General Hospital has arrived."), "{html}");
    let (_, request) = app.get(&app.advocate.token, &format!("/api/v1/records-requests/{id}")).await;
    assert_eq!(request["state"], "fulfilled");
    let (_, case_view) = app.get(&app.advocate.token, &format!("/api/v1/cases/{case}")).await;
    let pathology =
        case_view["records"].as_array().expect("records").iter().find(|r| r["kind"] == "pathology_report").cloned();
    assert_eq!(pathology.expect("pathology")["status"], "received", "the checklist follows");
    let other = app.signed_in("other@example.org").await;
    let response = other
        .post(format!("{}/records-requests/{id}/update", app.base))
        .form(&[("state", "cancelled")])
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "not another advocate's");
}

async fn a_request_letter_is_printed_and_filed_as_a_pdf(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let token = app.advocate.token.clone();
    let case = app.open_case(&token, "Jordan Patient").await;
    let mercy = provider(&app, mercy()).await;
    let new = json!({
        "provider_id": mercy, "type": "patient_access", "kinds": ["lab_results", "pathology_report"],
        "method": "fax", "sent_at": "2026-11-02T15:00:00Z",
    });
    let (_, access) = app.post(&token, &format!("/api/v1/cases/{case}/records-requests"), new).await;
    let access = access["id"].as_i64().expect("id");
    let (status, letter) = app.get(&token, &format!("/api/v1/records-requests/{access}/letter")).await;
    assert_eq!(status, StatusCode::OK, "{letter}");
    let text = letter.to_string();
    assert!(text.contains("45 CFR 164.524"), "{text}");
    assert!(
        text.contains("You received this request on 2 November 2026, so the time to answer ends on 2 December 2026"),
        "{text}"
    );
    assert!(text.contains("Pathology / biopsy report") && text.contains("Mercy General Hospital"));
    assert!(!text.contains("Oncology") && !text.contains("lymphoma"), "no specialty or diagnosis: {text}");
    assert!(letter["missing"].is_null());

    let (status, document) = app.post(&token, &format!("/api/v1/records-requests/{access}/letter"), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{document}");
    assert_eq!(document["kind"], "letter");
    assert_eq!(document["content_type"], "application/pdf");
    let doc = document["id"].as_i64().expect("document id");
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/documents/{doc}/content", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await.expect("pdf");
    assert!(bytes.starts_with(b"%PDF-") && bytes.windows(5).any(|w| w == b"%%EOF"), "a whole PDF");
    assert!(bytes.windows(13).any(|w| w == b"45 CFR 164.52"), "the letter's words are in it");

    // A release on the patient's authorization needs their signature first.
    let release = json!({ "provider_id": mercy, "type": "authorization", "kinds": ["imaging_ct"] });
    let (_, release) = app.post(&token, &format!("/api/v1/cases/{case}/records-requests"), release).await;
    let release = release["id"].as_i64().expect("id");
    let (_, letter) = app.get(&token, &format!("/api/v1/records-requests/{release}/letter")).await;
    assert!(letter["missing"].is_string(), "{letter}");
    let (status, refused) = app.post(&token, &format!("/api/v1/records-requests/{release}/letter"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "authorization_missing");
    let (status, _) =
        app.post(&token, &format!("/api/v1/cases/{case}/consent"), json!({ "signer_name": "Jordan Patient" })).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, letter) = app.get(&token, &format!("/api/v1/records-requests/{release}/letter")).await;
    let text = letter.to_string();
    assert!(letter["missing"].is_null(), "{text}");
    assert!(text.contains("Jordan Patient also signed an authorization for") && text.contains("on paper"), "{text}");
    assert!(text.contains("authorize Mercy General Hospital to release the records listed above"), "{text}");
    let (status, _) = app.post(&token, &format!("/api/v1/records-requests/{release}/letter"), json!({})).await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, _) = app.get(&app.other_advocate.token, &format!("/api/v1/records-requests/{access}/letter")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not another advocate's");

    // A name the PDF's fonts cannot set is not misspelled in a PDF: the page prints it.
    let other = app.open_case(&token, "王芳 Chen").await;
    let new = json!({ "provider_id": mercy, "type": "patient_access", "kinds": ["lab_results"] });
    let (_, theirs) = app.post(&token, &format!("/api/v1/cases/{other}/records-requests"), new).await;
    let theirs = theirs["id"].as_i64().expect("id");
    let (status, refused) = app.post(&token, &format!("/api/v1/records-requests/{theirs}/letter"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "letter_needs_print");
    let (_, letter) = app.get(&token, &format!("/api/v1/records-requests/{theirs}/letter")).await;
    assert!(letter.to_string().contains("I, 王芳 Chen, ask for a copy"), "{letter}");
    let (_, audit) = app.get(&app.admin.token, &format!("/api/v1/audit?case_id={case}")).await;
    assert!(audit.to_string().contains("records_request_letter"), "reading a letter is in the trail");
}
