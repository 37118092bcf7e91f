//! Insurance on a case and the figures of providers and insurers, on both
//! databases: the member id masked for advocates, the pre-approval rules,
//! a decided pre-approval ending a hold for it, the case page's form, and
//! the per-provider and pre-approval figures agreeing with the rows.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Backend, TestApp};

crate::on_both_databases!(
    a_decided_preapproval_ends_the_hold_and_the_member_id_shows_to_admins_only,
    insurance_is_recorded_from_the_case_page_and_starts_the_cost_notes,
    providers_and_insurers_are_measured_by_how_they_answer,
    an_appeal_deadline_within_the_week_is_in_the_advocates_digest,
);

fn days_ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc3339()
}

async fn a_decided_preapproval_ends_the_hold_and_the_member_id_shows_to_admins_only(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let token = app.advocate.token.clone();
    let case = app.open_case(&token, "Jordan Patient").await;
    let path = format!("/api/v1/cases/{case}/insurance");
    let (status, body) = app.get(&token, &path).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing recorded yet: {body}");

    let (status, held) =
        app.post(&token, &format!("/api/v1/cases/{case}/hold"), json!({ "reason": "insurance_preapproval" })).await;
    assert_eq!(status, StatusCode::OK, "{held}");
    let requested = json!({
        "payer": "Blue Valley Health", "plan": "PPO Gold", "member_id": "BVH-0044-9921",
        "second_opinion_covered": "yes", "preapproval": "requested", "preapproval_requested_at": days_ago(6),
        "preapproval_reference": "PA-77120",
    });
    let (status, saved) = app.put(&token, &path, requested).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["case_resumed"], false, "still waiting for the insurer");
    assert_eq!(saved["member_id"], "••••9921", "an advocate sees the last four characters, not the length");
    let (_, still) = app.get(&token, &format!("/api/v1/cases/{case}")).await;
    assert_eq!(still["hold"]["reason"], "insurance_preapproval");

    // The masked value sent back, as a client that read it would: the stored id stays.
    let mut echoed = saved.clone();
    for field in ["case_id", "member_id_masked", "updated_at", "case_resumed"] {
        echoed.as_object_mut().map(|o| o.remove(field));
    }
    let (status, body) = app.put(&token, &path, echoed).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, full) = app.get(&app.admin.token, &path).await;
    assert_eq!(status, StatusCode::OK, "{full}");
    assert_eq!(full["member_id"], "BVH-0044-9921", "admins see it whole, and it was not overwritten");
    assert_eq!(full["member_id_masked"], false);
    // A mask of something else (typed into, or the id changed meanwhile) never stores dots.
    let (status, refused) =
        app.put(&token, &path, json!({ "preapproval": "requested", "member_id": "••••1234" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "member_id_changed");

    // Refusals, each a clear field error that changes nothing.
    for (body, field) in [
        (json!({ "preapproval": "requested", "preapproval_decided_at": days_ago(1) }), "preapproval_decided_at"),
        (
            json!({ "preapproval": "approved", "preapproval_requested_at": days_ago(2), "preapproval_decided_at": days_ago(3) }),
            "preapproval_decided_at",
        ),
        (json!({ "preapproval": "approved", "appeal_deadline": "2027-01-31" }), "appeal_deadline"),
        (json!({ "preapproval": "requested", "preapproval_requested_at": days_ago(-3) }), "preapproval_requested_at"),
        (json!({ "payer": "x".repeat(201) }), "payer"),
        (json!({ "member_id": "line\nbreak" }), "member_id"),
    ] {
        let (status, refused) = app.put(&token, &path, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {refused}");
        assert!(refused["error"]["fields"][field].is_string(), "{field} named: {refused}");
    }
    let (status, refused) = app.put(&token, &path, json!({ "preapproval": "maybe" })).await;
    assert!(status.is_client_error(), "an unknown word is refused: {refused}");
    let (status, other) = app.get(&app.other_advocate.token, &path).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not another advocate's case: {other}");
    let (_, unchanged) = app.get(&token, &path).await;
    assert_eq!(unchanged["preapproval"], "requested");

    // The insurer says yes: the case goes on by itself, its clock running again.
    let before = still["stage_due_at"].clone();
    let approved = json!({
        "payer": "Blue Valley Health", "plan": "PPO Gold", "second_opinion_covered": "yes",
        "preapproval": "approved", "preapproval_reference": "PA-77120",
        "cost_notes": "Covered in network; $40 specialist copay.",
    });
    let (status, saved) = app.put(&token, &path, approved.clone()).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["case_resumed"], true);
    assert!(saved["preapproval_decided_at"].is_string(), "decided today when no date is given");
    assert!(saved["preapproval_requested_at"].is_string(), "the request date is kept");
    let (_, resumed) = app.get(&token, &format!("/api/v1/cases/{case}")).await;
    assert!(resumed["hold"].is_null(), "off hold: {resumed}");
    assert_ne!(resumed["stage_due_at"], before, "the time held moves the due date");
    let (_, full) = app.get(&app.admin.token, &path).await;
    assert_eq!(full["member_id"], "BVH-0044-9921", "left out of the PUT, the member id stays");
    let (_, audit) = app.get(&app.admin.token, &format!("/api/v1/audit?case_id={case}")).await;
    let actions: Vec<&str> =
        audit["items"].as_array().map(|a| a.iter().filter_map(|e| e["action"].as_str()).collect()).unwrap_or_default();
    assert!(actions.contains(&"case.insurance") && actions.contains(&"case.resume"), "{actions:?}");
    let trail = audit.to_string();
    assert!(!trail.contains("BVH-0044-9921") && !trail.contains("Blue Valley"), "the trail names no payer or id");

    // Denied, appealed, then approved on appeal: the approval is dated when it came.
    let day = |d: i64| days_ago(d);
    let (_, denied) = app
        .put(
            &token,
            &path,
            json!({ "preapproval": "denied", "preapproval_requested_at": day(10), "preapproval_decided_at": day(8) }),
        )
        .await;
    assert_eq!(denied["preapproval"], "denied", "{denied}");
    let (_, appealed) =
        app.put(&token, &path, json!({ "preapproval": "appealed", "appeal_deadline": "2027-06-30" })).await;
    assert_eq!(appealed["preapproval_decided_at"], denied["preapproval_decided_at"], "the denial's date stays");
    let (_, won) = app.put(&token, &path, json!({ "preapproval": "approved" })).await;
    assert_ne!(won["preapproval_decided_at"], denied["preapproval_decided_at"], "a new decision, a new date");
    assert_eq!(won["preapproval_requested_at"], denied["preapproval_requested_at"]);
    let (_, again) = app.put(&token, &path, json!({ "preapproval": "requested" })).await;
    assert_ne!(again["preapproval_requested_at"], denied["preapproval_requested_at"], "asked again: dated now");

    // Saving the same decision again does not touch a new hold of another kind.
    let (status, _) =
        app.post(&token, &format!("/api/v1/cases/{case}/hold"), json!({ "reason": "waiting_for_patient" })).await;
    assert_eq!(status, StatusCode::OK);
    let (_, saved) = app.put(&token, &path, approved).await;
    assert_eq!(saved["case_resumed"], false);
}

async fn insurance_is_recorded_from_the_case_page_and_starts_the_cost_notes(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let case = app.open_case(&app.advocate.token, "Jordan Patient").await;
    let (status, _) = app
        .post(&app.advocate.token, &format!("/api/v1/cases/{case}/hold"), json!({ "reason": "insurance_preapproval" }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let advocate = app.signed_in("advocate@example.org").await;
    let post = |form: Vec<(&'static str, String)>| {
        let advocate = advocate.clone();
        let url = format!("{}/cases/{case}/insurance", app.base);
        async move {
            let response = advocate.post(url).form(&form).send().await.expect("post");
            (response.status(), response.text().await.expect("body"))
        }
    };
    let page = || async {
        advocate.get(format!("{}/cases/{case}", app.base)).send().await.expect("case").text().await.expect("body")
    };
    assert!(page().await.contains("Record the insurance"));

    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let days_back = |d: i64| (chrono::Utc::now() - chrono::Duration::days(d)).format("%Y-%m-%d").to_string();
    let bad = vec![
        ("payer", "Blue Valley Health".to_string()),
        ("second_opinion_covered", "yes".to_string()),
        ("preapproval", "approved".to_string()),
        ("preapproval_requested_at", days_back(2)),
        ("preapproval_decided_at", days_back(5)),
        // Left over from a denial: it goes with the state before, not an error.
        ("appeal_deadline", today.clone()),
    ];
    let (status, html) = post(bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("cannot be before the pre-approval was requested"), "{html}");
    assert!(html.contains("value=\"Blue Valley Health\""), "what was typed is kept");

    let good = vec![
        ("payer", "Blue Valley Health".to_string()),
        ("plan", "PPO Gold".to_string()),
        ("member_id", "BVH-0044-9921".to_string()),
        ("second_opinion_covered", "yes".to_string()),
        ("preapproval", "approved".to_string()),
        ("preapproval_requested_at", (chrono::Utc::now() - chrono::Duration::days(4)).format("%Y-%m-%d").to_string()),
        ("preapproval_decided_at", today),
        ("preapproval_reference", "PA-77120".to_string()),
        ("cost_notes", "Covered in network; $40 copay.".to_string()),
    ];
    let (status, _) = post(good).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let html = page().await;
    assert!(html.contains("the case is off hold and its clock runs again"), "{html}");
    assert!(html.contains("On file: ••••9921") && !html.contains("BVH-0044-9921"), "masked on the page");
    // Saved again with the field left empty, as an advocate sees it: the id stays.
    let again = vec![
        ("payer", "Blue Valley Health".to_string()),
        ("member_id", String::new()),
        ("second_opinion_covered", "yes".to_string()),
        ("preapproval", "approved".to_string()),
        ("cost_notes", "Covered in network; $40 copay.".to_string()),
    ];
    let (status, _) = post(again).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, full) = app.get(&app.admin.token, &format!("/api/v1/cases/{case}/insurance")).await;
    assert_eq!(full["member_id"], "BVH-0044-9921");
    let (_, case_view) = app.get(&app.advocate.token, &format!("/api/v1/cases/{case}")).await;
    assert!(case_view["hold"].is_null());
    let (_, saved) = app.get(&app.advocate.token, &format!("/api/v1/cases/{case}/insurance")).await;
    let requested = saved["preapproval_requested_at"].as_str().unwrap_or_default().to_string();
    let decided = saved["preapproval_decided_at"].as_str().unwrap_or_default().to_string();
    assert!(requested < decided, "{saved}");

    // Through to the comparison: the cost notes start its cost section.
    let specialist = app.add_specialist("Dr. Ada Stone", true).await;
    let token = app.advocate.token.clone();
    let (s, moved) =
        app.move_case(&token, case, json!({ "to": "specialist_chosen", "specialist_id": specialist })).await;
    assert_eq!(s, StatusCode::OK, "{moved}");
    let scheduled = crate::common::hours_from_now(-2);
    let (s, body) = app
        .put(
            &token,
            &format!("/api/v1/cases/{case}/consultation"),
            json!({ "scheduled_at": scheduled, "mode": "virtual" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, moved) = app.move_case(&token, case, json!({ "to": "consultation_held" })).await;
    assert_eq!(s, StatusCode::OK, "{moved}");
    let html = page().await;
    assert!(html.contains("Covered in network; $40 copay.</textarea>"), "the comparison's cost notes start there");
    assert!(html.contains("For cost and convenience — Blue Valley Health"), "{html}");
}

async fn sent_request(app: &TestApp, provider: i64, sent_days_ago: i64) -> i64 {
    let case = app.open_case(&app.advocate.token, "Figure Patient").await;
    let body = json!({
        "provider_id": provider, "type": "patient_access", "kinds": ["lab_results", "imaging_ct"],
        "method": "email", "sent_at": days_ago(sent_days_ago),
    });
    let (status, created) =
        app.post(&app.advocate.token, &format!("/api/v1/cases/{case}/records-requests"), body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_i64().expect("id")
}

async fn providers_and_insurers_are_measured_by_how_they_answer(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let token = app.advocate.token.clone();
    let provider = |name: &str| json!({ "name": name, "kind": "laboratory", "timezone": "UTC", "fax": "+1 555 0100" });
    let (status, quick) = app.post(&token, "/api/v1/providers", provider("Quick Labs")).await;
    assert_eq!(status, StatusCode::CREATED, "{quick}");
    let (_, slow) = app.post(&token, "/api/v1/providers", provider("Slow Imaging")).await;
    let (quick, slow) = (quick["id"].as_i64().expect("id"), slow["id"].as_i64().expect("id"));

    // Quick Labs: one fulfilled in 4 days (in two parts), one in 10, one refused in time.
    for (sent, parts) in [(20, vec![(18, "lab_results"), (16, "imaging_ct")]), (12, vec![(2, "lab_results")])] {
        let id = sent_request(&app, quick, sent).await;
        for (arrived, kind) in parts {
            let body = json!({ "kinds": [kind], "received_at": days_ago(arrived) });
            let (s, r) = app.post(&token, &format!("/api/v1/records-requests/{id}/receipts"), body).await;
            assert_eq!(s, StatusCode::OK, "{r}");
        }
        if sent == 12 {
            let body = json!({ "kinds": ["imaging_ct"], "received_at": days_ago(2) });
            let (s, r) = app.post(&token, &format!("/api/v1/records-requests/{id}/receipts"), body).await;
            assert_eq!((s, r["state"].as_str()), (StatusCode::OK, Some("fulfilled")));
        }
    }
    // Refused in time (25 days after receipt), though typed in only after the due date.
    let refused = sent_request(&app, quick, 40).await;
    let body = json!({ "state": "denied", "denied_reason": "No records under this name", "denied_at": days_ago(15) });
    let (s, r) = app.patch(&token, &format!("/api/v1/records-requests/{refused}"), body).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    // Slow Imaging: one sent 45 days ago and still waiting, one a draft.
    sent_request(&app, slow, 45).await;
    let draft_case = app.open_case(&token, "Draft Patient").await;
    let draft = json!({ "provider_id": slow, "type": "authorization", "kinds": ["lab_results"] });
    app.post(&token, &format!("/api/v1/cases/{draft_case}/records-requests"), draft).await;

    // Pre-approvals: approved in 3 days, denied in 9 (then appealed), one still requested.
    for (requested, decided, outcome) in [(10, Some(7), "approved"), (20, Some(11), "denied"), (2, None, "requested")] {
        let case = app.open_case(&token, "Insured Patient").await;
        let mut body = json!({ "preapproval": outcome, "preapproval_requested_at": days_ago(requested) });
        if let Some(decided) = decided {
            body["preapproval_decided_at"] = json!(days_ago(decided));
        }
        let path = format!("/api/v1/cases/{case}/insurance");
        let (s, saved) = app.put(&token, &path, body.clone()).await;
        assert_eq!(s, StatusCode::OK, "{saved}");
        if outcome == "denied" {
            body["preapproval"] = json!("appealed");
            body["appeal_deadline"] = json!("2027-03-01");
            let (s, saved) = app.put(&token, &path, body).await;
            assert_eq!(s, StatusCode::OK, "{saved}");
        }
    }

    let (status, overview) = app.get(&app.admin.token, "/api/v1/reports/overview").await;
    assert_eq!(status, StatusCode::OK, "{overview}");
    let figures: Vec<Value> = overview["records_by_provider"].as_array().cloned().unwrap_or_default();
    let of = |id: i64| figures.iter().find(|f| f["provider_id"] == id).cloned().unwrap_or_default();
    let q = of(quick);
    assert_eq!(q["name"], "Quick Labs");
    assert_eq!((q["requests"].as_i64(), q["fulfilled"].as_i64(), q["answered"].as_i64()), (Some(3), Some(2), Some(3)));
    assert_eq!(q["median_days_to_fulfil"], 7.0, "4 and 10 days: the median is between them");
    assert_eq!(q["on_time_share"], 1.0);
    assert_eq!(q["overdue_now"], 0);
    let s = of(slow);
    assert_eq!((s["requests"].as_i64(), s["overdue_now"].as_i64()), (Some(1), Some(1)), "a draft was never sent");
    assert!(s["median_days_to_fulfil"].is_null() && s["on_time_share"].is_null());
    assert_eq!(figures[0]["provider_id"], quick, "busiest first");
    let p = &overview["preapprovals"];
    assert_eq!(p["decided"], 2);
    assert_eq!(p["median_days"], 6.0, "3 and 9 days");
    assert_eq!(p["denied_share"], 0.5, "the appeal counts as the denial it answers");

    // The tallies agree with the rows, and a rebuild counts the same.
    let now = chrono::Utc::now();
    let scanned = secondlook::reports::full_scan::overview_by_scan(&app.db, now).await.expect("scan");
    let kept = secondlook::reports::overview(&app.db, now).await.expect("figures");
    assert_eq!(kept.records_by_provider, scanned.records_by_provider);
    assert_eq!(kept.preapprovals, scanned.preapprovals);
    secondlook::records_requests::figures::rebuild(&app.db).await.expect("rebuild");
    secondlook::insurance::rebuild(&app.db).await.expect("rebuild");
    let rebuilt = secondlook::reports::overview(&app.db, now).await.expect("figures");
    assert_eq!(rebuilt.records_by_provider, kept.records_by_provider);
    assert_eq!(rebuilt.preapprovals, kept.preapprovals);

    let admin = app.signed_in("admin@example.org").await;
    let html = admin.get(format!("{}/admin", app.base)).send().await.expect("admin").text().await.expect("body");
    assert!(html.contains("How providers answer records requests") && html.contains("Quick Labs"), "{html}");
    assert!(html.contains("100% of 3") && html.contains("7.0"), "{html}");
    assert!(html.contains("Insurance pre-approvals") && html.contains("50%"), "{html}");
}

async fn an_appeal_deadline_within_the_week_is_in_the_advocates_digest(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let token = app.advocate.token.clone();
    let today = chrono::Utc::now().date_naive();
    let mut references = Vec::new();
    for (state, in_days) in [("denied", 3), ("denied", 20), ("appealed", 2)] {
        let case = app.open_case(&token, "Appeal Patient").await;
        let body = json!({
            "preapproval": state, "preapproval_requested_at": days_ago(9), "preapproval_decided_at": days_ago(2),
            "appeal_deadline": (today + chrono::Duration::days(in_days)).to_string(),
        });
        let (status, saved) = app.put(&token, &format!("/api/v1/cases/{case}/insurance"), body).await;
        assert_eq!(status, StatusCode::OK, "{saved}");
        let (_, view) = app.get(&token, &format!("/api/v1/cases/{case}")).await;
        references.push(view["reference"].as_str().expect("reference").to_string());
    }
    let noon = (today + chrono::Duration::days(1)).and_hms_opt(12, 0, 0).expect("time").and_utc();
    secondlook::reminders::scan::scan(&app.reminders(), noon, false).await.expect("scan");
    let digests = app.digests_to("advocate@example.org").await;
    let digest = digests.last().expect("the day's digest");
    let by = (today + chrono::Duration::days(3)).format("%a %-d %b").to_string();
    let line = format!("Insurance appeal: {} — appeal the denied pre-approval by {by}", references[0]);
    assert!(digest.body_text.contains(&line), "{}", digest.body_text);
    assert!(!digest.body_text.contains(&references[1]), "three weeks away: not yet");
    assert!(!digest.body_text.contains(&references[2]), "already appealed");
}
