//! Bad input gets a clear error and changes nothing; odd but valid text is
//! stored and returned exactly.

use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::common::{Backend, TestApp, hours_from_now, new_case};

crate::on_both_databases!(
    malformed_and_mistyped_bodies_are_refused,
    oversized_input_is_refused_without_side_effects,
    unicode_and_html_are_stored_exactly,
    unknown_ids_answer_not_found,
);

async fn raw_post(app: &TestApp, path: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let response = app
        .client
        .post(format!("{}{path}", app.base))
        .bearer_auth(&app.advocate.token)
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .expect("sent");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn case_count(app: &TestApp) -> usize {
    let (_, b) = app.get(&app.admin.token, "/api/v1/cases?limit=100").await;
    b["items"].as_array().expect("items").len()
}

async fn malformed_and_mistyped_bodies_are_refused(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    for body in ["{", "not json", "{\"patient\": }", "[1,2", "{} trailing"] {
        let (s, b) = raw_post(&app, "/api/v1/cases", "application/json", body.as_bytes().to_vec()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {b}");
        assert_eq!(b["error"]["code"], "malformed_json");
        assert!(b["error"]["fields"].is_object(), "the error shape always has fields");
    }
    let (s, b) = raw_post(&app, "/api/v1/cases", "text/plain", b"{}".to_vec()).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("unsupported_media_type")));

    let cases: Vec<(Value, &str)> = vec![
        (
            json!({ "patient": { "name": 42, "email": "a@b.org" }, "specialty": "x", "reason": "other", "urgency": "routine" }),
            "patient.name",
        ),
        (
            json!({ "patient": { "name": "A", "email": "a@b.org" }, "specialty": "x", "reason": "gut_feeling", "urgency": "routine" }),
            "reason",
        ),
        (
            json!({ "patient": { "name": "A", "email": "a@b.org" }, "specialty": "x", "reason": "other", "urgency": "someday" }),
            "urgency",
        ),
        (
            json!({ "patient": { "name": "A", "email": "a@b.org" }, "reason": "other", "urgency": "routine" }),
            "specialty",
        ),
        (
            json!({ "patient": { "email": "a@b.org" }, "specialty": "x", "reason": "other", "urgency": "routine" }),
            "patient.name",
        ),
        (
            json!({ "patient": { "name": "A", "email": "a@b.org" }, "specialty": "x", "reason": "other", "urgency": "routine", "advocate_id": "me" }),
            "advocate_id",
        ),
        (
            json!({ "patient": { "name": "A", "email": "a@b.org" }, "specialty": "x", "reason": "other", "urgency": "routine", "priority": 1 }),
            "priority",
        ),
        (
            json!({ "patient": { "name": "A", "email": "not-an-email" }, "specialty": "x", "reason": "other", "urgency": "routine" }),
            "patient.email",
        ),
        (
            json!({ "patient": { "name": "A", "email": "a@b.org", "timezone": "Moon/Base" }, "specialty": "x", "reason": "other", "urgency": "routine" }),
            "patient.timezone",
        ),
        (
            json!({ "patient": { "name": "A", "email": "a@b.org", "phone": "call me maybe" }, "specialty": "x", "reason": "other", "urgency": "routine" }),
            "patient.phone",
        ),
        (
            json!({ "patient": { "name": "   ", "email": "a@b.org" }, "specialty": "x", "reason": "other", "urgency": "routine" }),
            "patient.name",
        ),
        (
            json!({ "patient": { "name": "Line\nBreak", "email": "a@b.org" }, "specialty": "x", "reason": "other", "urgency": "routine" }),
            "patient.name",
        ),
        (json!([1, 2, 3]), "body"),
    ];
    for (body, field) in cases {
        let (s, b) = app.post(&app.advocate.token, "/api/v1/cases", body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {b}");
        assert_eq!(b["error"]["code"], "validation_failed");
        assert!(b["error"]["fields"][field].is_string(), "expected an error on {field}: {b}");
    }
    // Header injection through a name is impossible: line breaks are refused above.
    assert_eq!(case_count(&app).await, 0, "nothing was stored");

    let id = app.open_case(&app.advocate.token, "Typed Fields").await;
    let (s, b) = app
        .put(
            &app.advocate.token,
            &format!("/api/v1/cases/{id}/consultation"),
            json!({ "scheduled_at": "next tuesday", "mode": "virtual" }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b["error"]["fields"]["scheduled_at"].is_string());
    let (s, b) = app
        .put(&app.advocate.token, &format!("/api/v1/cases/{id}/records/lab_results"), json!({ "status": "lost" }))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b["error"]["fields"]["status"].is_string());
    let (s, _) = app
        .put(&app.advocate.token, &format!("/api/v1/cases/{id}/records/dental_xray"), json!({ "status": "received" }))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "an unknown checklist item");
    let (s, b) = app.post(&app.advocate.token, &format!("/api/v1/cases/{id}/hold"), json!({ "reason": "bored" })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
}

async fn oversized_input_is_refused_without_side_effects(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let huge = format!("{{\"patient\":{{\"name\":\"{}\"}}}}", "x".repeat(2 * 1024 * 1024));
    let (s, b) = raw_post(&app, "/api/v1/cases", "application/json", huge.into_bytes()).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    assert_eq!(b["error"]["code"], "payload_too_large");

    let long_name = "N".repeat(10_000);
    let (s, b) = app.post(&app.advocate.token, "/api/v1/cases", new_case(&long_name)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b["error"]["fields"]["patient.name"].as_str().expect("message").contains("at most"));
    let mut body = new_case("Fine Name");
    body["specialty"] = json!("S".repeat(10_000));
    let (s, b) = app.post(&app.advocate.token, "/api/v1/cases", body).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(b["error"]["fields"]["specialty"].is_string());
    let specialist = json!({ "name": "D".repeat(10_000), "specialty": "Oncology" });
    let (s, _) = app.post(&app.admin.token, "/api/v1/specialists", specialist).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(case_count(&app).await, 0);

    // A long but allowed summary is kept whole.
    let mut body = new_case("Long Summary");
    let summary = "Ω".repeat(10_000);
    body["summary"] = json!(summary);
    let (s, b) = app.post(&app.advocate.token, "/api/v1/cases", body).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["summary"].as_str().map(|s| s.chars().count()), Some(10_000));
}

const TRICKY: &str = "<script>alert(\"x\")</script> O'Brien & Søn — 山田太郎 👩🏽‍⚕️ \\ %_ ' \" `";

async fn unicode_and_html_are_stored_exactly(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let token = app.advocate.token.clone();
    let t = |suffix: &str| format!("{TRICKY} {suffix}");
    let (s, specialist) = app
        .post(
            &app.admin.token,
            "/api/v1/specialists",
            json!({ "name": t("name"), "specialty": t("specialty"), "institution": t("inst"), "offers_virtual": true }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{specialist}");
    assert_eq!(specialist["name"], t("name"));
    assert_eq!(specialist["institution"], t("inst"));
    let specialist_id = specialist["id"].as_i64().expect("id");

    let body = json!({
        "patient": { "name": t("patient"), "email": "zoë@example.org", "language": "pt-BR" },
        "specialty": t("specialty"), "reason": "rare_condition", "urgency": "expedited",
        "summary": format!("{}\nsecond line\tand a tab", t("summary")),
    });
    let (s, case) = app.post(&token, "/api/v1/cases", body).await;
    assert_eq!(s, StatusCode::CREATED, "{case}");
    let id = case["id"].as_i64().expect("id");
    let path = |p: &str| format!("/api/v1/cases/{id}/{p}");
    assert_eq!(
        app.put(&token, &path("records/medication_list"), json!({ "status": "not_applicable", "note": t("record") }))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        app.post(&token, &path("hold"), json!({ "reason": "other", "note": t("hold") })).await.0,
        StatusCode::OK
    );
    let (_, held) = app.get(&token, &format!("/api/v1/cases/{id}")).await;
    assert_eq!(held["hold"]["note"], t("hold"));
    assert_eq!(app.post(&token, &path("resume"), json!({})).await.0, StatusCode::OK);
    let (s, b) = app
        .move_case(&token, id, json!({ "to": "specialist_chosen", "specialist_id": specialist_id, "note": t("move") }))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let visit = json!({ "scheduled_at": hours_from_now(-1), "mode": "virtual", "location": t("location") });
    assert_eq!(app.put(&token, &path("consultation"), visit).await.0, StatusCode::OK);
    assert_eq!(app.move_case(&token, id, json!({ "to": "consultation_held" })).await.0, StatusCode::OK);
    for round in ["original", "second"] {
        let opinion = json!({
            "round": round, "clinician": t("clinician"), "diagnosis": t("diagnosis"),
            "treatment_plan": t("plan"), "recommends_surgery": true, "notes": t("notes"),
        });
        assert_eq!(app.post(&token, &path("opinions"), opinion).await.0, StatusCode::CREATED);
    }
    let comparison = json!({
        "diagnosis_agrees": true, "treatment_agrees": true, "risk_notes": t("risk"),
        "outcome_notes": t("outcome"), "cost_notes": t("cost"), "summary": t("comparison"),
    });
    assert_eq!(app.put(&token, &path("comparison"), comparison).await.0, StatusCode::OK);
    assert_eq!(app.move_case(&token, id, json!({ "to": "opinions_compared" })).await.0, StatusCode::OK);
    assert_eq!(
        app.put(&token, &path("decision"), json!({ "chosen_opinion": "other", "reason": t("decision") })).await.0,
        StatusCode::OK
    );

    let (_, c) = app.get(&token, &format!("/api/v1/cases/{id}")).await;
    let expect = [
        (&c["patient"]["name"], t("patient")),
        (&c["patient"]["email"], "zoë@example.org".to_string()),
        (&c["patient"]["language"], "pt-BR".to_string()),
        (&c["specialty"], t("specialty")),
        (&c["summary"], format!("{}\nsecond line\tand a tab", t("summary"))),
        (&c["history"][1]["note"], t("move")),
        (&c["consultation"]["location"], t("location")),
        (&c["opinions"][0]["clinician"], t("clinician")),
        (&c["opinions"][1]["diagnosis"], t("diagnosis")),
        (&c["opinions"][1]["treatment_plan"], t("plan")),
        (&c["opinions"][1]["notes"], t("notes")),
        (&c["comparison"]["risk_notes"], t("risk")),
        (&c["comparison"]["outcome_notes"], t("outcome")),
        (&c["comparison"]["cost_notes"], t("cost")),
        (&c["comparison"]["summary"], t("comparison")),
        (&c["decision"]["reason"], t("decision")),
        (&c["specialist"]["name"], t("name")),
    ];
    for (got, want) in expect {
        assert_eq!(got.as_str(), Some(want.as_str()), "in {c}");
    }
    let record = c["records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["kind"] == "medication_list")
        .cloned()
        .expect("record");
    assert_eq!(record["note"], t("record"));

    // Search finds names in other scripts; punctuation alone finds nothing rather than everything.
    let (_, found) = app.get(&token, "/api/v1/cases?q=%E5%B1%B1%E7%94%B0").await;
    assert_eq!(found["items"].as_array().expect("items").len(), 1, "{found}");
    let (s, found) = app.get(&token, "/api/v1/cases?q=%25_").await;
    assert_eq!(s, StatusCode::OK);
    assert!(found["items"].as_array().expect("items").is_empty(), "{found}");
}

async fn unknown_ids_answer_not_found(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    for path in [
        "/api/v1/cases/0",
        "/api/v1/cases/-4",
        "/api/v1/cases/abc",
        "/api/v1/cases/99999999999",
        "/api/v1/specialists/77",
    ] {
        let (s, b) = app.get(&app.admin.token, path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {b}");
        assert_eq!(b["error"]["code"], "not_found");
    }
    let (s, _) = app.move_case(&app.admin.token, 31337, json!({ "to": "withdrawn", "note": "x" })).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let id = app.open_case(&app.advocate.token, "Specialist Check").await;
    let (s, b) =
        app.put(&app.advocate.token, &format!("/api/v1/cases/{id}/specialist"), json!({ "specialist_id": 5555 })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b["error"]["fields"]["specialist_id"].is_string());
}
