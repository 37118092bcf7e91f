//! A case's way through the stages: the happy path, every refused move, a
//! third-opinion round, holds, urgency, listing, and concurrent moves.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Backend, TestApp, hours_from_now};

crate::on_both_databases!(
    happy_path_through_all_five_stages,
    every_refused_move_says_why,
    a_third_opinion_round,
    hold_and_resume_move_the_due_date,
    urgency_change_recomputes_the_due_date,
    listing_filters_and_pages,
    concurrent_transitions_have_one_winner_per_step,
);

fn stages(case: &Value) -> Vec<(Option<String>, String)> {
    case["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| (h["from"].as_str().map(String::from), h["to"].as_str().expect("to").to_string()))
        .collect()
}

fn ts(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value.as_str().expect("timestamp").parse().expect("RFC 3339")
}

/// Walks a fresh case to `opinions_compared` through the API.
pub(crate) async fn to_opinions_compared(app: &TestApp, token: &str, id: i64, specialist: i64) {
    let path = |p: &str| format!("/api/v1/cases/{id}/{p}");
    let (s, b) = app.put(token, &path("specialist"), json!({ "specialist_id": specialist })).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app.move_case(token, id, json!({ "to": "specialist_chosen" })).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let consultation = json!({ "scheduled_at": hours_from_now(-2), "mode": "in_person", "location": "Room 4" });
    let (s, b) = app.put(token, &path("consultation"), consultation).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app.move_case(token, id, json!({ "to": "consultation_held" })).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for (round, surgery) in [("original", true), ("second", false)] {
        let opinion = json!({
            "round": round, "clinician": format!("Dr. {round}"), "diagnosis": "Follicular lymphoma",
            "treatment_plan": if surgery { "Resection" } else { "Watchful waiting" }, "recommends_surgery": surgery,
        });
        let (s, b) = app.post(token, &path("opinions"), opinion).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let comparison = json!({
        "diagnosis_agrees": true, "treatment_agrees": false, "risk_notes": "Surgery carries infection risk",
        "outcome_notes": "Similar 5-year outcomes", "cost_notes": "Waiting costs less", "summary": "Same diagnosis, different plan",
    });
    let (s, b) = app.put(token, &path("comparison"), comparison).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app.move_case(token, id, json!({ "to": "opinions_compared" })).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

async fn happy_path_through_all_five_stages(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let token = app.advocate.token.clone();
    let specialist = app.add_specialist("Dr. Rosa Lind", true).await;
    let (status, case) = app.post(&token, "/api/v1/cases", crate::common::new_case("Jordan Patient")).await;
    assert_eq!(status, StatusCode::CREATED, "{case}");
    let id = case["id"].as_i64().expect("id");
    assert_eq!(case["stage"], "records_requested");
    assert!(case["reference"].as_str().expect("reference").starts_with("SO-20"), "{}", case["reference"]);
    assert_eq!(case["advocate"]["id"].as_i64(), Some(app.advocate.id), "an advocate's new case is theirs");
    assert_eq!(case["records"].as_array().expect("records").len(), 9);
    let entered = ts(&case["stage_entered_at"]);
    assert_eq!(ts(&case["stage_due_at"]) - entered, chrono::Duration::days(14), "routine records allowance");

    let (s, b) =
        app.put(&token, &format!("/api/v1/cases/{id}/records/lab_results"), json!({ "status": "received" })).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let lab =
        b["records"].as_array().expect("records").iter().find(|r| r["kind"] == "lab_results").cloned().expect("lab");
    assert_eq!(lab["status"], "received");
    assert!(lab["received_at"].is_string());

    to_opinions_compared(&app, &token, id, specialist).await;
    let (s, b) = app.get(&token, &format!("/api/v1/cases/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["stage"], "opinions_compared");
    assert_eq!(b["specialist"]["id"].as_i64(), Some(specialist));
    assert_eq!(b["consultation"]["mode"], "in_person");
    assert!(b["consultation"]["held_at"].is_string(), "held time defaults to the scheduled time");
    assert_eq!(b["opinions"].as_array().expect("opinions").len(), 2);
    assert_eq!(b["comparison"]["treatment_agrees"], false);
    assert_eq!(ts(&b["stage_due_at"]) - ts(&b["stage_entered_at"]), chrono::Duration::days(14));

    let decision = json!({ "chosen_opinion": "second", "reason": "Avoids surgery with similar outcomes" });
    let (s, b) = app.put(&token, &format!("/api/v1/cases/{id}/decision"), decision).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, done) = app.move_case(&token, id, json!({ "to": "decision_made", "note": "Patient decided" })).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["stage"], "decision_made");
    assert!(done["stage_due_at"].is_null(), "a final stage has no due date");
    assert_eq!(done["overdue"], false);
    assert!(done["closed_at"].is_string());
    assert_eq!(done["decision"]["chosen_opinion"], "second");
    let expected: Vec<(Option<String>, String)> = vec![
        (None, "records_requested".into()),
        (Some("records_requested".into()), "specialist_chosen".into()),
        (Some("specialist_chosen".into()), "consultation_held".into()),
        (Some("consultation_held".into()), "opinions_compared".into()),
        (Some("opinions_compared".into()), "decision_made".into()),
    ];
    assert_eq!(stages(&done), expected);
    assert_eq!(done["history"][4]["note"], "Patient decided");
    assert_eq!(done["history"][4]["by"]["id"].as_i64(), Some(app.advocate.id));

    let actions: Vec<(String,)> = audit_actions(&app, id).await;
    for wanted in [
        "case.create",
        "case.record",
        "case.specialist",
        "case.transition",
        "case.consultation",
        "case.opinion",
        "case.comparison",
        "case.decision",
    ] {
        assert!(actions.iter().any(|(a,)| a == wanted), "audit log lacks {wanted}: {actions:?}");
    }
    assert_eq!(actions.iter().filter(|(a,)| a == "case.transition").count(), 4);
}

async fn audit_actions(app: &TestApp, case_id: i64) -> Vec<(String,)> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
    use secondlook::db::entities::audit_entry;
    audit_entry::Entity::find()
        .select_only()
        .column(audit_entry::Column::Action)
        .filter(audit_entry::Column::CaseId.eq(i32::try_from(case_id).expect("small id")))
        .order_by_asc(audit_entry::Column::Id)
        .into_tuple()
        .all(&app.db)
        .await
        .expect("audit rows")
}

/// The missing pieces a `requirements_unmet` answer names, sorted.
fn unmet(body: &Value) -> Vec<String> {
    assert_eq!(body["error"]["code"], "requirements_unmet", "{body}");
    let mut missing: Vec<String> = body["error"]["fields"].as_object().expect("fields").keys().cloned().collect();
    missing.sort();
    missing
}

async fn every_refused_move_says_why(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let token = app.advocate.token.clone();
    let specialist = app.add_specialist("Dr. Kim", false).await;
    let id = app.open_case(&token, "Refused Moves").await;
    let path = |p: &str| format!("/api/v1/cases/{id}/{p}");

    // Skipping ahead or going back is not a move the machine knows.
    for to in ["consultation_held", "opinions_compared", "decision_made", "records_requested"] {
        let (s, b) = app.move_case(&token, id, json!({ "to": to })).await;
        assert_eq!(s, StatusCode::CONFLICT, "{to}: {b}");
        assert_eq!(b["error"]["code"], "invalid_transition", "{to}: {b}");
    }
    let (s, b) = app.move_case(&token, id, json!({ "to": "specialist_chosen" })).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(unmet(&b), vec!["specialist"]);

    // A specialist given with the move satisfies it.
    let (s, b) = app.move_case(&token, id, json!({ "to": "specialist_chosen", "specialist_id": specialist })).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["specialist"]["id"].as_i64(), Some(specialist));

    let (s, b) = app.move_case(&token, id, json!({ "to": "consultation_held" })).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(unmet(&b), vec!["consultation"]);
    // This specialist sees patients only in person.
    let virtual_visit = json!({ "scheduled_at": hours_from_now(48), "mode": "virtual" });
    let (s, b) = app.put(&token, &path("consultation"), virtual_visit).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b["error"]["fields"]["mode"].is_string());
    let future = json!({ "scheduled_at": hours_from_now(48), "mode": "in_person", "location": "Clinic B" });
    let (s, b) = app.put(&token, &path("consultation"), future).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app.move_case(&token, id, json!({ "to": "consultation_held" })).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(unmet(&b), vec!["consultation_not_yet_held"]);
    let held_in_future =
        json!({ "scheduled_at": hours_from_now(-1), "mode": "in_person", "held_at": hours_from_now(5) });
    let (s, b) = app.put(&token, &path("consultation"), held_in_future).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b["error"]["fields"]["held_at"].is_string());
    let past = json!({ "scheduled_at": hours_from_now(-3), "mode": "in_person", "held_at": hours_from_now(-2) });
    assert_eq!(app.put(&token, &path("consultation"), past).await.0, StatusCode::OK);
    assert_eq!(app.move_case(&token, id, json!({ "to": "consultation_held" })).await.0, StatusCode::OK);

    let (s, b) = app.move_case(&token, id, json!({ "to": "opinions_compared" })).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(unmet(&b), vec!["comparison", "current_round_opinion", "original_opinion"]);
    // A decision cannot be recorded before the opinions are compared.
    let decision = json!({ "chosen_opinion": "original", "reason": "x" });
    let (s, b) = app.put(&token, &path("decision"), decision.clone()).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("wrong_stage")));
    // Opinions of rounds the case has not reached are refused.
    let third = json!({ "round": "third", "clinician": "Dr. X", "diagnosis": "d", "treatment_plan": "t", "recommends_surgery": false });
    let (s, b) = app.post(&token, &path("opinions"), third).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b["error"]["fields"]["round"].is_string());

    let original = json!({ "round": "original", "clinician": "Dr. A", "diagnosis": "d", "treatment_plan": "t", "recommends_surgery": true });
    assert_eq!(app.post(&token, &path("opinions"), original.clone()).await.0, StatusCode::CREATED);
    // Recording the same round again replaces it.
    assert_eq!(app.post(&token, &path("opinions"), original).await.0, StatusCode::OK);
    let (s, b) = app.move_case(&token, id, json!({ "to": "opinions_compared" })).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(unmet(&b), vec!["comparison", "current_round_opinion"]);
    let second = json!({ "round": "second", "clinician": "Dr. B", "diagnosis": "d2", "treatment_plan": "t2", "recommends_surgery": false });
    assert_eq!(app.post(&token, &path("opinions"), second).await.0, StatusCode::CREATED);
    let comparison = json!({ "diagnosis_agrees": false, "treatment_agrees": false });
    assert_eq!(app.put(&token, &path("comparison"), comparison).await.0, StatusCode::OK);
    assert_eq!(app.move_case(&token, id, json!({ "to": "opinions_compared" })).await.0, StatusCode::OK);

    let (s, b) = app.move_case(&token, id, json!({ "to": "decision_made" })).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(unmet(&b), vec!["decision"]);
    let (s, b) = app.put(&token, &path("decision"), json!({ "chosen_opinion": "fifth", "reason": "x" })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "an opinion that was never recorded: {b}");

    // Withdrawal needs a note; after it nothing moves or changes.
    let (s, b) = app.move_case(&token, id, json!({ "to": "withdrawn" })).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(unmet(&b), vec!["note"]);
    let (s, b) = app.move_case(&token, id, json!({ "to": "withdrawn", "note": "Patient moved abroad" })).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["stage_due_at"].is_null());
    for to in ["records_requested", "specialist_chosen", "decision_made", "withdrawn"] {
        let (s, b) = app.move_case(&token, id, json!({ "to": to, "note": "again" })).await;
        assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("invalid_transition")), "{to}");
    }
    let (s, b) = app.put(&token, &path("records/lab_results"), json!({ "status": "received" })).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("case_closed")));
    let (s, b) = app.post(&token, &path("hold"), json!({ "reason": "waiting_for_patient" })).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("case_closed")));
    let (s, b) = app.move_case(&token, id, json!({ "to": "sideways" })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "unknown stage: {b}");
    assert!(b["error"]["fields"]["to"].is_string());
}

async fn a_third_opinion_round(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let token = app.advocate.token.clone();
    let first = app.add_specialist("Dr. First", true).await;
    let second = app.add_specialist("Dr. Second", true).await;
    let id = app.open_case(&token, "Third Round").await;
    to_opinions_compared(&app, &token, id, first).await;
    let path = |p: &str| format!("/api/v1/cases/{id}/{p}");

    let (s, b) = app.move_case(&token, id, json!({ "to": "specialist_chosen" })).await;
    assert_eq!(s, StatusCode::CONFLICT, "a further round needs its own specialist");
    assert_eq!(unmet(&b), vec!["specialist"]);
    let request =
        json!({ "to": "specialist_chosen", "specialist_id": second, "note": "Opinions disagree on treatment" });
    let (s, b) = app.move_case(&token, id, request).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["round"], "third");
    assert_eq!(b["stage"], "specialist_chosen");
    assert_eq!(b["specialist"]["id"].as_i64(), Some(second));
    assert!(b["consultation"].is_null(), "the new round starts without a consultation");
    assert!(b["comparison"].is_null(), "the new round needs a new comparison");
    assert!(b["stage_due_at"].is_string());

    let visit =
        json!({ "scheduled_at": hours_from_now(-1), "mode": "virtual", "location": "https://video.example/room" });
    assert_eq!(app.put(&token, &path("consultation"), visit).await.0, StatusCode::OK);
    assert_eq!(app.move_case(&token, id, json!({ "to": "consultation_held" })).await.0, StatusCode::OK);
    let (s, b) = app.move_case(&token, id, json!({ "to": "opinions_compared" })).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(
        unmet(&b),
        vec!["comparison", "current_round_opinion"],
        "the second opinion does not count for round three"
    );
    let third = json!({ "round": "third", "clinician": "Dr. Second", "diagnosis": "Follicular lymphoma", "treatment_plan": "Watchful waiting", "recommends_surgery": false });
    assert_eq!(app.post(&token, &path("opinions"), third).await.0, StatusCode::CREATED);
    assert_eq!(
        app.put(&token, &path("comparison"), json!({ "diagnosis_agrees": true, "treatment_agrees": true })).await.0,
        StatusCode::OK
    );
    assert_eq!(app.move_case(&token, id, json!({ "to": "opinions_compared" })).await.0, StatusCode::OK);
    let decision = json!({ "chosen_opinion": "third", "reason": "Two of three specialists advise waiting" });
    assert_eq!(app.put(&token, &path("decision"), decision).await.0, StatusCode::OK);
    let (s, b) = app.move_case(&token, id, json!({ "to": "decision_made" })).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["opinions"].as_array().expect("opinions").len(), 3);
    let history = stages(&b);
    assert_eq!(history.len(), 8);
    assert_eq!(history[4], (Some("opinions_compared".into()), "specialist_chosen".into()));
    assert_eq!(b["history"][4]["round"], "third");
    assert_eq!(b["decision"]["chosen_opinion"], "third");
}

async fn hold_and_resume_move_the_due_date(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let token = app.advocate.token.clone();
    let id = app.open_case(&token, "Held Case").await;
    let path = |p: &str| format!("/api/v1/cases/{id}/{p}");
    // The records stage started 20 days ago: 6 days overdue on the 14-day allowance.
    let entered = chrono::Utc::now() - chrono::Duration::days(20);
    let due = entered + chrono::Duration::days(14);
    app.sql(&format!(
        "UPDATE cases SET stage_entered_at = '{}', stage_due_at = '{}' WHERE id = {id}",
        db_time(app.backend(), entered),
        db_time(app.backend(), due)
    ))
    .await;
    let (_, b) = app.get(&token, &format!("/api/v1/cases/{id}")).await;
    assert_eq!(b["overdue"], true, "{b}");
    let (_, listed) = app.get(&token, "/api/v1/cases?overdue=true").await;
    assert_eq!(listed["items"].as_array().expect("items").len(), 1);

    let (s, held) =
        app.post(&token, &path("hold"), json!({ "reason": "insurance_preapproval", "note": "Form sent 3 May" })).await;
    assert_eq!(s, StatusCode::OK, "{held}");
    assert_eq!(held["overdue"], false, "a held case is never overdue");
    assert_eq!(held["hold"]["reason"], "insurance_preapproval");
    assert_eq!(ts(&held["stage_due_at"]), ts(&b["stage_due_at"]), "holding does not move the date by itself");
    let (_, listed) = app.get(&token, "/api/v1/cases?overdue=true").await;
    assert!(listed["items"].as_array().expect("items").is_empty(), "held cases are not listed as overdue");
    let (s, b) = app.post(&token, &path("hold"), json!({ "reason": "other" })).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("already_on_hold")));

    // Ten days on hold.
    let since = chrono::Utc::now() - chrono::Duration::days(10);
    app.sql(&format!("UPDATE cases SET held_since = '{}' WHERE id = {id}", db_time(app.backend(), since))).await;
    let (s, resumed) = app.post(&token, &path("resume"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{resumed}");
    assert!(resumed["hold"].is_null());
    let moved = ts(&resumed["stage_due_at"]) - ts(&held["stage_due_at"]);
    assert!(
        moved >= chrono::Duration::days(10) && moved < chrono::Duration::days(10) + chrono::Duration::minutes(5),
        "due date moved by {moved}"
    );
    assert_eq!(resumed["overdue"], false, "20 days in stage minus 10 on hold is within 14 days");
    let (s, b) = app.post(&token, &path("resume"), json!({})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("not_on_hold")));

    // A move ends a hold.
    assert_eq!(app.post(&token, &path("hold"), json!({ "reason": "waiting_for_patient" })).await.0, StatusCode::OK);
    let (s, b) = app.move_case(&token, id, json!({ "to": "withdrawn", "note": "Patient declined" })).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["hold"].is_null());
}

async fn urgency_change_recomputes_the_due_date(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let token = app.advocate.token.clone();
    let id = app.open_case(&token, "Urgent Case").await;
    let (s, b) = app.patch(&token, &format!("/api/v1/cases/{id}"), json!({ "urgency": "expedited" })).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["urgency"], "expedited");
    assert_eq!(ts(&b["stage_due_at"]) - ts(&b["stage_entered_at"]), chrono::Duration::days(3));
    let (s, b) = app.patch(&token, &format!("/api/v1/cases/{id}"), json!({ "summary": "Updated <summary>" })).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["summary"], "Updated <summary>");
    assert_eq!(b["urgency"], "expedited", "absent fields stay as they were");
    let (s, b) = app.patch(&token, &format!("/api/v1/cases/{id}"), json!({ "urgency": "whenever" })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(b["error"]["fields"]["urgency"].is_string());
}

async fn listing_filters_and_pages(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let token = app.advocate.token.clone();
    let mut ids = Vec::new();
    for n in 0..7 {
        ids.push(app.open_case(&token, &format!("Patient Number{n}")).await);
    }
    let specialist = app.add_specialist("Dr. Filter", false).await;
    let moved = ids[2];
    let (s, _) = app.move_case(&token, moved, json!({ "to": "specialist_chosen", "specialist_id": specialist })).await;
    assert_eq!(s, StatusCode::OK);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/cases?limit=3&cursor={c}"),
            None => "/api/v1/cases?limit=3".to_string(),
        };
        let (s, b) = app.get(&token, &path).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        pages += 1;
        seen.extend(b["items"].as_array().expect("items").iter().map(|i| i["id"].as_i64().expect("id")));
        match b["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first, "every case once, newest first");

    let (_, b) = app.get(&token, "/api/v1/cases?stage=specialist_chosen").await;
    let only: Vec<i64> = b["items"].as_array().expect("items").iter().map(|i| i["id"].as_i64().expect("id")).collect();
    assert_eq!(only, vec![moved]);
    let (_, b) = app.get(&token, "/api/v1/cases?q=number4").await;
    assert_eq!(b["items"].as_array().expect("items").len(), 1, "search ignores case: {b}");
    assert_eq!(b["items"][0]["patient_name"], "Patient Number4");
    let (_, b) = app.get(&token, "/api/v1/cases?q=100%25").await;
    assert!(b["items"].as_array().expect("items").is_empty(), "% is matched literally");

    for bad in ["stage=nowhere", "limit=0", "limit=1000", "cursor=garbage", "overdue=maybe", "limit=abc", "colour=red"]
    {
        let (s, b) = app.get(&token, &format!("/api/v1/cases?{bad}")).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {b}");
        assert_eq!(b["error"]["code"], "validation_failed", "{bad}");
    }
}

async fn concurrent_transitions_have_one_winner_per_step(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let token = app.advocate.token.clone();
    let specialist = app.add_specialist("Dr. Race", true).await;
    let id = app.open_case(&token, "Contended Case").await;
    let path = |p: &str| format!("/api/v1/cases/{id}/{p}");
    assert_eq!(app.put(&token, &path("specialist"), json!({ "specialist_id": specialist })).await.0, StatusCode::OK);
    let app = std::sync::Arc::new(app);

    let race = |to: &'static str| {
        let app = app.clone();
        let token = token.clone();
        async move {
            let tasks: Vec<_> = (0..20)
                .map(|_| {
                    let app = app.clone();
                    let token = token.clone();
                    tokio::spawn(async move { app.move_case(&token, id, json!({ "to": to, "note": "race" })).await })
                })
                .collect();
            let mut wins = 0;
            for task in tasks {
                let (status, body) = task.await.expect("task finished");
                match status {
                    StatusCode::OK => wins += 1,
                    StatusCode::CONFLICT => {
                        assert_eq!(
                            body["error"]["code"], "invalid_transition",
                            "a loser sees the move already made: {body}"
                        )
                    }
                    other => panic!("unexpected {other}: {body}"),
                }
            }
            wins
        }
    };
    assert_eq!(race("specialist_chosen").await, 1);
    let visit = json!({ "scheduled_at": hours_from_now(-1), "mode": "virtual" });
    assert_eq!(app.put(&token, &path("consultation"), visit).await.0, StatusCode::OK);
    assert_eq!(race("consultation_held").await, 1);
    assert_eq!(race("withdrawn").await, 1);

    let (_, b) = app.get(&token, &format!("/api/v1/cases/{id}")).await;
    let history = stages(&b);
    assert_eq!(history.len(), 4, "{history:?}");
    for pair in history.windows(2) {
        assert_eq!(pair[1].0.as_deref(), Some(pair[0].1.as_str()), "each entry starts where the last ended");
    }
    assert_eq!(b["stage"], "withdrawn");
}

/// A time literal each database compares correctly with stored values.
fn db_time(backend: Backend, t: chrono::DateTime<chrono::Utc>) -> String {
    match backend {
        // sqlx stores SQLite timestamps as RFC 3339 text with an offset.
        Backend::Sqlite => t.to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
        Backend::Postgres => t.to_rfc3339(),
    }
}
