//! Who may see and change what: tokens, advocate isolation, admin-only routes.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{Backend, TestApp};

crate::on_both_databases!(
    requests_without_a_valid_token_are_refused,
    advocates_see_only_their_own_cases,
    admins_see_everything_and_assign_cases,
    health_check_answers,
);

async fn requests_without_a_valid_token_are_refused(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    for token in [None, Some("sl_not-a-real-token"), Some("garbage"), Some("")] {
        let (s, b) = app.call(token, Method::GET, "/api/v1/cases", None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{token:?}: {b}");
        assert_eq!(b["error"]["code"], "unauthenticated");
    }
    let (s, _) = app.call(None, Method::POST, "/api/v1/cases", Some(crate::common::new_case("No Token"))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Tokens of deactivated users stop working at once.
    app.sql(&format!("UPDATE users SET active = {} WHERE id = {}", sql_bool(backend, false), app.other_advocate.id))
        .await;
    let (s, _) = app.get(&app.other_advocate.token, "/api/v1/cases").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Revoked tokens too.
    app.sql("UPDATE api_tokens SET revoked_at = created_at").await;
    let (s, _) = app.get(&app.admin.token, "/api/v1/cases").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

fn sql_bool(backend: Backend, value: bool) -> &'static str {
    match (backend, value) {
        (Backend::Sqlite, true) => "1",
        (Backend::Sqlite, false) => "0",
        (Backend::Postgres, true) => "TRUE",
        (Backend::Postgres, false) => "FALSE",
    }
}

async fn advocates_see_only_their_own_cases(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let mine = app.open_case(&app.advocate.token, "Mine Only").await;
    let theirs = app.open_case(&app.other_advocate.token, "Not Yours").await;
    let intruder = &app.advocate.token;

    let (s, missing) = app.get(intruder, "/api/v1/cases/999999").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, foreign) = app.get(intruder, &format!("/api/v1/cases/{theirs}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(foreign, missing, "another advocate's case answers exactly like a missing one");

    let writes = [
        (Method::POST, "transition", json!({ "to": "withdrawn", "note": "x" })),
        (Method::POST, "hold", json!({ "reason": "other" })),
        (Method::POST, "resume", json!({})),
        (Method::PUT, "records/lab_results", json!({ "status": "received" })),
        (Method::PUT, "specialist", json!({ "specialist_id": 1 })),
        (Method::PUT, "consultation", json!({ "scheduled_at": "2026-01-01T10:00:00Z", "mode": "virtual" })),
        (
            Method::POST,
            "opinions",
            json!({ "round": "original", "clinician": "x", "diagnosis": "x", "treatment_plan": "x", "recommends_surgery": false }),
        ),
        (Method::PUT, "comparison", json!({ "diagnosis_agrees": true, "treatment_agrees": true })),
        (Method::PUT, "decision", json!({ "chosen_opinion": "other", "reason": "x" })),
        (Method::POST, "notes", json!({ "body": "x" })),
        (
            Method::POST,
            "contacts",
            json!({ "with": "patient", "channel": "phone", "direction": "inbound", "summary": "x" }),
        ),
    ];
    for (method, suffix, body) in writes {
        let (s, b) =
            app.call(Some(intruder), method.clone(), &format!("/api/v1/cases/{theirs}/{suffix}"), Some(body)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {suffix}: {b}");
    }
    let (s, _) = app.patch(intruder, &format!("/api/v1/cases/{theirs}"), json!({ "summary": "mine now" })).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (_, list) = app.get(intruder, "/api/v1/cases").await;
    let ids: Vec<i64> =
        list["items"].as_array().expect("items").iter().map(|i| i["id"].as_i64().expect("id")).collect();
    assert_eq!(ids, vec![mine]);
    let (_, list) = app.get(intruder, &format!("/api/v1/cases?advocate_id={}", app.other_advocate.id)).await;
    assert!(list["items"].as_array().expect("items").is_empty(), "filtering by another advocate reveals nothing");

    // The other advocate's case is untouched.
    let (s, b) = app.get(&app.other_advocate.token, &format!("/api/v1/cases/{theirs}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["stage"], "records_requested");
    assert_eq!(b["history"].as_array().expect("history").len(), 1);

    // Advocates cannot reassign, list users, or open cases for someone else.
    let (s, _) =
        app.patch(intruder, &format!("/api/v1/cases/{mine}"), json!({ "advocate_id": app.other_advocate.id })).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = app.get(intruder, "/api/v1/users").await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let mut body = crate::common::new_case("For Someone Else");
    body["advocate_id"] = json!(app.other_advocate.id);
    let (s, b) = app.post(intruder, "/api/v1/cases", body).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");

    // Each refused access is in the audit log.
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    use secondlook::db::entities::audit_entry;
    let denied = audit_entry::Entity::find()
        .filter(audit_entry::Column::Action.eq("access.denied"))
        .filter(audit_entry::Column::ActorId.eq(i32::try_from(app.advocate.id).expect("id")));
    let on_cases = denied.clone().filter(audit_entry::Column::Entity.eq("case")).count(&app.db).await.expect("count");
    assert_eq!(on_cases, 13, "one entry per refused request on an existing case");
    // And one per 403 answer: the user list and reassigning a case.
    let refusals = denied.filter(audit_entry::Column::Entity.eq("route")).count(&app.db).await.expect("count");
    assert_eq!(refusals, 2);

    // Reading a case is recorded too: who looked at which patient.
    assert_eq!(app.get(intruder, &format!("/api/v1/cases/{mine}")).await.0, StatusCode::OK);
    app.reads.flush().await;
    let viewed = audit_entry::Entity::find()
        .filter(audit_entry::Column::Action.eq("case.viewed"))
        .filter(audit_entry::Column::CaseId.eq(i32::try_from(mine).expect("id")))
        .filter(audit_entry::Column::ActorId.eq(i32::try_from(app.advocate.id).expect("id")))
        .count(&app.db)
        .await
        .expect("count");
    assert_eq!(viewed, 1);
}

async fn admins_see_everything_and_assign_cases(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let admin = &app.admin.token;
    let a = app.open_case(&app.advocate.token, "Case A").await;
    let b = app.open_case(&app.other_advocate.token, "Case B").await;
    let (s, unassigned) = app.post(admin, "/api/v1/cases", crate::common::new_case("Case C")).await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(unassigned["advocate"].is_null(), "an admin's case without advocate_id is unassigned");
    let c = unassigned["id"].as_i64().expect("id");

    let (_, list) = app.get(admin, "/api/v1/cases").await;
    assert_eq!(list["items"].as_array().expect("items").len(), 3);
    let (_, list) = app.get(admin, &format!("/api/v1/cases?advocate_id={}", app.advocate.id)).await;
    let ids: Vec<i64> =
        list["items"].as_array().expect("items").iter().map(|i| i["id"].as_i64().expect("id")).collect();
    assert_eq!(ids, vec![a]);
    assert_eq!(app.get(admin, &format!("/api/v1/cases/{b}")).await.0, StatusCode::OK);

    let (s, assigned) =
        app.patch(admin, &format!("/api/v1/cases/{c}"), json!({ "advocate_id": app.advocate.id })).await;
    assert_eq!(s, StatusCode::OK, "{assigned}");
    assert_eq!(assigned["advocate"]["id"].as_i64(), Some(app.advocate.id));
    assert_eq!(app.get(&app.advocate.token, &format!("/api/v1/cases/{c}")).await.0, StatusCode::OK, "now theirs");
    let (s, _) = app.patch(admin, &format!("/api/v1/cases/{c}"), json!({ "advocate_id": null })).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(app.get(&app.advocate.token, &format!("/api/v1/cases/{c}")).await.0, StatusCode::NOT_FOUND);
    let (s, b) = app.patch(admin, &format!("/api/v1/cases/{c}"), json!({ "advocate_id": 424242 })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(b["error"]["fields"]["advocate_id"].is_string());

    let (s, users) = app.get(admin, "/api/v1/users").await;
    assert_eq!(s, StatusCode::OK);
    let emails: Vec<&str> =
        users["items"].as_array().expect("items").iter().map(|u| u["email"].as_str().expect("email")).collect();
    assert_eq!(emails, vec!["admin@example.org", "advocate@example.org", "other@example.org"]);
    assert!(users["items"][0].get("password_hash").is_none(), "hashes never leave the server");
}

async fn health_check_answers(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let (s, b) = app.call(None, Method::GET, "/healthz", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["status"], "ok");
    let (s, b) = app.call(None, Method::GET, "/api/v1/nothing-here", None).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let (s, b) = app.call(Some(&app.admin.token), Method::DELETE, "/api/v1/cases", None).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")));
}
