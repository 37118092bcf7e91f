//! The audit trail as an admin uses it: refusals and case lists on the
//! record, the API and the page with their filters and paging, the CSV
//! download, no free text in any entry, and a hash chain that survives
//! concurrent writers and shows tampering.

use reqwest::{Method, StatusCode, header};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, prelude::Expr};
use secondlook::db::entities::audit_entry;
use serde_json::{Value, json};

use crate::common::{Backend, TestApp, hours_from_now, new_case, web_client};

crate::on_both_databases!(
    refusals_are_recorded_by_route_pattern,
    case_lists_are_recorded_without_the_search_text,
    the_audit_api_filters_and_pages,
    the_audit_page_and_its_csv,
    no_free_text_reaches_the_trail,
    a_failed_sign_in_does_not_record_the_typed_email,
    the_chain_survives_concurrent_writers_and_shows_tampering,
    entries_from_before_the_chain_are_counted_apart,
);

async fn all_entries(app: &TestApp) -> Vec<audit_entry::Model> {
    app.reads.flush().await;
    audit_entry::Entity::find().order_by_asc(audit_entry::Column::Id).all(&app.db).await.expect("audit rows")
}

async fn entries_of(app: &TestApp, action: &str) -> Vec<audit_entry::Model> {
    app.reads.flush().await;
    audit_entry::Entity::find()
        .filter(audit_entry::Column::Action.eq(action))
        .order_by_asc(audit_entry::Column::Id)
        .all(&app.db)
        .await
        .expect("audit rows")
}

fn detail(entry: &audit_entry::Model) -> Value {
    serde_json::from_str(&entry.detail).expect("detail is JSON")
}

/// Fails when `marker` shows up anywhere in the trail, whatever its case.
async fn assert_nowhere_in_trail(app: &TestApp, marker: &str) {
    let marker = marker.to_lowercase();
    for entry in all_entries(app).await {
        let text = format!("{entry:?}").to_lowercase();
        assert!(!text.contains(&marker), "{marker} leaked into the audit trail: {entry:?}");
    }
}

async fn refusals_are_recorded_by_route_pattern(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let b = &app.base;
    let (s, _) = app.call(None, Method::GET, "/api/v1/cases?q=Hermione%20Secretname", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = app.call(Some("sl_forged"), Method::GET, "/api/v1/cases/7", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, body) = app.get(&app.advocate.token, "/api/v1/audit").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let advocate = app.signed_in("advocate@example.org").await;
    let page = advocate.get(format!("{b}/admin/users?name=Hermione+Secretname")).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    let form = advocate.post(format!("{b}/admin/tokens")).form(&[("email", "x@example.org")]).send().await;
    assert_eq!(form.expect("post").status(), StatusCode::FORBIDDEN);
    let mine = app.open_case(&app.advocate.token, "Reassign Me").await;
    let reassign = json!({ "advocate_id": app.other_advocate.id });
    let (s, _) = app.patch(&app.advocate.token, &format!("/api/v1/cases/{mine}"), reassign).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Requests that are answered are not refusals.
    assert_eq!(app.get(&app.admin.token, "/api/v1/audit").await.0, StatusCode::OK);
    assert_eq!(app.get(&app.advocate.token, "/api/v1/cases").await.0, StatusCode::OK);

    let denied = entries_of(&app, "access.denied").await;
    let seen: Vec<(Option<i32>, String, String, i64)> = denied
        .iter()
        .map(|e| {
            let d = detail(e);
            let route = d["route"].as_str().expect("route").to_string();
            let method = d["method"].as_str().expect("method").to_string();
            (e.actor_id, route, method, d["status"].as_i64().expect("status"))
        })
        .collect();
    let advocate_id = i32::try_from(app.advocate.id).expect("id");
    assert_eq!(
        seen,
        vec![
            (None, "/api/v1/cases".into(), "GET".into(), 401),
            (None, "/api/v1/cases/{id}".into(), "GET".into(), 401),
            (Some(advocate_id), "/api/v1/audit".into(), "GET".into(), 403),
            (Some(advocate_id), "/admin/users".into(), "GET".into(), 403),
            (Some(advocate_id), "/admin/tokens".into(), "POST".into(), 403),
            (Some(advocate_id), "/api/v1/cases/{id}".into(), "PATCH".into(), 403),
        ]
    );
    assert_eq!(denied[5].case_id.map(i64::from), Some(mine), "a refusal about a case is in the case's trail");
    assert_eq!(denied[0].case_id, None);
    for entry in &denied {
        assert_eq!(entry.ip.as_deref(), Some("127.0.0.1"), "the client's address is recorded");
    }
    assert_eq!(denied[0].actor, "anonymous");
    assert_eq!(denied[2].actor, "advocate@example.org");
    assert_nowhere_in_trail(&app, "Secretname").await;
}

async fn case_lists_are_recorded_without_the_search_text(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    app.open_case(&app.advocate.token, "Zebediah Quill").await;
    let (s, list) = app.get(&app.advocate.token, "/api/v1/cases?q=zebediah&stage=records_requested").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    let (s, _) = app.get(&app.advocate.token, "/api/v1/cases?overdue=true").await;
    assert_eq!(s, StatusCode::OK);
    let advocate = app.signed_in("advocate@example.org").await;
    let home = advocate.get(format!("{}/?q=Zebediah&urgency=routine", app.base)).send().await.expect("home");
    assert_eq!(home.status(), StatusCode::OK);

    let lists = entries_of(&app, "case.list").await;
    assert_eq!(lists.len(), 3, "{lists:?}");
    let advocate_id = i32::try_from(app.advocate.id).expect("id");
    assert!(lists.iter().all(|e| e.actor_id == Some(advocate_id)));
    let (search, overdue, page) = (detail(&lists[0]), detail(&lists[1]), detail(&lists[2]));
    assert_eq!((search["searched"].clone(), search["stage"].clone()), (json!(true), json!("records_requested")));
    assert_eq!(search["shown"], 1);
    assert_eq!((overdue["searched"].clone(), overdue["overdue"].clone()), (json!(false), json!(true)));
    assert_eq!((page["searched"].clone(), page["urgency"].clone()), (json!(true), json!("routine")));
    assert_nowhere_in_trail(&app, "zebediah").await;
}

async fn the_audit_api_filters_and_pages(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let first = app.open_case(&app.advocate.token, "Audit One").await;
    let second = app.open_case(&app.advocate.token, "Audit Two").await;
    let (s, _) =
        app.post(&app.advocate.token, &format!("/api/v1/cases/{first}/hold"), json!({ "reason": "other" })).await;
    assert_eq!(s, StatusCode::OK);
    let admin = &app.admin.token;

    let (s, page) = app.get(admin, &format!("/api/v1/audit?case_id={first}")).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let items = page["items"].as_array().expect("items");
    let actions: Vec<&str> = items.iter().map(|i| i["action"].as_str().expect("action")).collect();
    assert_eq!(actions, ["case.hold", "case.create"], "newest first, only this case");
    let hold = &items[0];
    assert_eq!(hold["subject"], json!({ "type": "case", "id": first, "case_id": first }));
    assert_eq!(hold["actor"]["user_id"], app.advocate.id);
    assert_eq!(hold["actor"]["label"], "advocate@example.org");
    assert_eq!(hold["address"], "127.0.0.1");
    assert_eq!(hold["details"]["reason"], "other", "details are an object, not a string");
    assert!(chrono::DateTime::parse_from_rfc3339(hold["at"].as_str().expect("at")).is_ok());
    assert!(hold["id"].as_i64().is_some());
    assert_eq!(page["next_cursor"], Value::Null);

    let (_, created) = app.get(admin, "/api/v1/audit?action=case.create").await;
    let cases: Vec<i64> =
        created["items"].as_array().expect("items").iter().map(|i| i["subject"]["id"].as_i64().expect("id")).collect();
    assert_eq!(cases, [second, first]);
    let (_, by_user) = app.get(admin, &format!("/api/v1/audit?user_id={}&action=case.create", app.advocate.id)).await;
    assert_eq!(by_user["items"].as_array().map(Vec::len), Some(2));
    let (_, by_other) = app.get(admin, &format!("/api/v1/audit?user_id={}", app.other_advocate.id)).await;
    assert_eq!(by_other["items"], json!([]));
    let (_, future) = app.get(admin, &format!("/api/v1/audit?since={}", hours_from_now(1).replace('+', "%2B"))).await;
    assert_eq!(future["items"], json!([]));
    let (_, past) = app.get(admin, &format!("/api/v1/audit?until={}", hours_from_now(-1).replace('+', "%2B"))).await;
    assert_eq!(past["items"], json!([]));
    let (_, recent) = app
        .get(admin, &format!("/api/v1/audit?action=case.create&since={}", hours_from_now(-1).replace('+', "%2B")))
        .await;
    assert_eq!(recent["items"].as_array().map(Vec::len), Some(2));
    // A time window cuts the trail exactly at an entry's stored time.
    let hold = entries_of(&app, "case.hold").await.pop().expect("hold entry");
    let at = hold.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let ids = |page: &Value| -> Vec<i64> {
        page["items"].as_array().expect("items").iter().map(|i| i["id"].as_i64().expect("id")).collect()
    };
    let everything: Vec<i64> = all_entries(&app).await.iter().rev().map(|e| i64::from(e.id)).collect();
    let (_, from_hold) = app.get(admin, &format!("/api/v1/audit?since={at}&limit=200")).await;
    let want: Vec<i64> = everything.iter().copied().filter(|id| *id >= i64::from(hold.id)).collect();
    assert_eq!(ids(&from_hold), want);
    let (_, before_hold) = app.get(admin, &format!("/api/v1/audit?until={at}&limit=200")).await;
    let want: Vec<i64> = everything.iter().copied().filter(|id| *id < i64::from(hold.id)).collect();
    assert_eq!(ids(&before_hold), want);
    assert!(!want.is_empty());

    // Paging two at a time visits every entry once, newest first.
    let everything = all_entries(&app).await.len();
    let mut seen: Vec<i64> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/audit?limit=2&cursor={c}"),
            None => "/api/v1/audit?limit=2".to_string(),
        };
        let (s, page) = app.get(admin, &path).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|i| i["id"].as_i64().expect("id")));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    // The reads themselves write nothing, so the count is stable.
    assert_eq!(seen.len(), everything);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "strictly newest first: {seen:?}");

    for (query, field) in [
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=MTIz", "cursor"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("case_id=abc", "case_id"),
        ("action=case.deleted", "action"),
    ] {
        let (s, body) = app.get(admin, &format!("/api/v1/audit?{query}")).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["error"]["code"], "validation_failed", "{query}");
        assert!(body["error"]["fields"][field].is_string(), "{query}: {body}");
    }
    let (s, body) = app.call(None, Method::GET, "/api/v1/audit", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthenticated");
    let (s, body) = app.get(&app.advocate.token, "/api/v1/audit?cursor=bogus").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "advocates are refused before anything else: {body}");
}

async fn the_audit_page_and_its_csv(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let b = &app.base;
    for i in 0..3 {
        app.open_case(&app.advocate.token, &format!("Page Patient {i}")).await;
    }
    let advocate = app.signed_in("advocate@example.org").await;
    for path in ["/admin/audit", "/admin/audit.csv"] {
        let response = advocate.get(format!("{b}{path}")).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let anonymous = web_client();
    let response = anonymous.get(format!("{b}/admin/audit")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    let admin = app.signed_in("admin@example.org").await;
    let home = admin.get(format!("{b}/admin")).send().await.expect("admin").text().await.expect("body");
    assert!(home.contains("href=\"/admin/audit\""), "linked from the admin navigation");
    let page = admin.get(format!("{b}/admin/audit?action=case.create")).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("body");
    assert_eq!(html.matches("<td data-label=\"Action\">case.create</td>").count(), 3, "{html}");
    assert!(!html.contains(">user.create</td>"), "the action filter applies");
    assert!(html.contains("href=\"/admin/audit.csv?action=case.create\""), "{html}");
    assert!(html.contains("class=\"table-wrap\""), "the table scrolls on narrow screens");

    let bad = admin.get(format!("{b}/admin/audit?since=soon&case=x")).send().await.expect("page");
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = bad.text().await.expect("body");
    assert!(html.contains("since:") && html.contains("case:"), "{html}");

    // An "Older entries" link pages through more than one screenful.
    for i in 0..55 {
        let (s, _) = app.get(&app.advocate.token, &format!("/api/v1/cases?limit={}", i % 5 + 1)).await;
        assert_eq!(s, StatusCode::OK);
    }
    let html = admin.get(format!("{b}/admin/audit?action=case.list")).send().await.expect("page");
    let html = html.text().await.expect("body");
    assert_eq!(html.matches("<td data-label=\"Action\">case.list</td>").count(), 50);
    let older = html.split("href=\"").filter_map(|s| s.split('"').next()).find(|l| l.contains("before="));
    let older = older.expect("an older-entries link").replace("&#38;", "&").replace("&amp;", "&");
    let html = admin.get(format!("{b}{older}")).send().await.expect("older").text().await.expect("body");
    assert_eq!(
        html.matches("<td data-label=\"Action\">case.list</td>").count(),
        5,
        "the rest, on the second page: {older}"
    );

    let csv = admin.get(format!("{b}/admin/audit.csv?action=case.create")).send().await.expect("csv");
    assert_eq!(csv.status(), StatusCode::OK);
    let content_type = csv.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(String::from);
    assert_eq!(content_type.as_deref(), Some("text/csv; charset=utf-8"));
    let text = csv.text().await.expect("body");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "id,at_utc,actor_id,actor,action,subject_type,subject_id,case_id,address,details");
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[1..].iter().all(|l| l.contains(",case.create,case,")), "{text}");
    let all = admin.get(format!("{b}/admin/audit.csv")).send().await.expect("csv").text().await.expect("body");
    assert!(all.lines().count() > 60, "everything when unfiltered");
    assert!(!entries_of(&app, "audit.export").await.is_empty(), "downloads are on the record");
    let bad = admin.get(format!("{b}/admin/audit.csv?until=never")).send().await.expect("csv");
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

const MARKER: &str = "Qxvmarker";

async fn no_free_text_reaches_the_trail(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let m = |what: &str| format!("{MARKER} {what}");
    let admin = &app.admin.token;
    let token = &app.advocate.token;
    let specialist = json!({
        "name": m("name"), "specialty": m("specialty"), "institution": m("institution"),
        "email": "qxvmarker@example.org", "offers_virtual": true,
    });
    let (s, created) = app.post(admin, "/api/v1/specialists", specialist).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let specialist_id = created["id"].as_i64().expect("id");
    let renamed = json!({
        "name": m("renamed"), "specialty": m("specialty 2"), "institution": m("institution 2"), "offers_virtual": true,
    });
    assert_eq!(app.put(admin, &format!("/api/v1/specialists/{specialist_id}"), renamed).await.0, StatusCode::OK);

    let mut body = new_case(&m("patient"));
    body["patient"]["email"] = json!("qxvmarker.patient@example.org");
    body["specialty"] = json!(m("specialty"));
    body["summary"] = json!(m("summary"));
    body["medical_history"] = json!(m("history"));
    body["medications"] = json!(m("medications"));
    body["patient_questions"] = json!(m("questions"));
    let (s, case) = app.post(token, "/api/v1/cases", body).await;
    assert_eq!(s, StatusCode::CREATED, "{case}");
    let id = case["id"].as_i64().expect("id");
    let path = |p: &str| format!("/api/v1/cases/{id}/{p}");
    let patch = json!({
        "summary": m("summary 2"), "medical_history": m("history 2"),
        "medications": m("medications 2"), "patient_questions": m("questions 2"),
    });
    assert_eq!(app.patch(token, &format!("/api/v1/cases/{id}"), patch).await.0, StatusCode::OK);
    let record = json!({ "status": "received", "note": m("record note") });
    assert_eq!(app.put(token, &path("records/lab_results"), record).await.0, StatusCode::OK);
    assert_eq!(app.post(token, &path("hold"), json!({ "reason": "other", "note": m("hold") })).await.0, StatusCode::OK);
    assert_eq!(app.post(token, &path("resume"), json!({})).await.0, StatusCode::OK);
    let (s, b) = app
        .move_case(token, id, json!({ "to": "specialist_chosen", "specialist_id": specialist_id, "note": m("move") }))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let visit = json!({ "scheduled_at": hours_from_now(-1), "mode": "virtual", "location": m("location") });
    assert_eq!(app.put(token, &path("consultation"), visit).await.0, StatusCode::OK);
    assert_eq!(
        app.move_case(token, id, json!({ "to": "consultation_held", "note": m("held") })).await.0,
        StatusCode::OK
    );
    for round in ["original", "second"] {
        let opinion = json!({
            "round": round, "clinician": m("clinician"), "diagnosis": m("diagnosis"),
            "treatment_plan": m("plan"), "recommends_surgery": true, "notes": m("notes"),
        });
        assert_eq!(app.post(token, &path("opinions"), opinion).await.0, StatusCode::CREATED);
    }
    let comparison = json!({
        "diagnosis_agrees": false, "treatment_agrees": true, "risk_notes": m("risk"),
        "outcome_notes": m("outcome"), "cost_notes": m("cost"), "summary": m("comparison"),
    });
    assert_eq!(app.put(token, &path("comparison"), comparison).await.0, StatusCode::OK);
    assert_eq!(app.move_case(token, id, json!({ "to": "opinions_compared" })).await.0, StatusCode::OK);
    let decision = json!({ "chosen_opinion": "second", "reason": m("decision") });
    assert_eq!(app.put(token, &path("decision"), decision).await.0, StatusCode::OK);
    let (s, _) = app.get(token, &format!("/api/v1/cases?q={MARKER}")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app.call(None, Method::GET, &format!("/api/v1/cases?q={MARKER}"), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Staff accounts and token labels typed on the admin pages.
    let web = app.signed_in("admin@example.org").await;
    let user = [("name", "Qxvmarker Person"), ("email", "qxvmarker@example.org"), ("role", "advocate")];
    let response = web.post(format!("{}/admin/users", app.base)).form(&user).send().await.expect("user");
    assert!(response.status().is_success() || response.status().is_redirection(), "{}", response.status());
    let label = [("email", "advocate@example.org"), ("label", "Qxvmarker label")];
    let response = web.post(format!("{}/admin/tokens", app.base)).form(&label).send().await.expect("token");
    assert!(response.status().is_success() || response.status().is_redirection(), "{}", response.status());

    let actions: Vec<String> = all_entries(&app).await.into_iter().map(|e| e.action).collect();
    for action in [
        "specialist.create",
        "specialist.update",
        "case.create",
        "case.update",
        "case.record",
        "case.hold",
        "case.transition",
        "case.consultation",
        "case.opinion",
        "case.comparison",
        "case.decision",
        "user.create",
        "token.create",
    ] {
        assert!(actions.iter().any(|a| a == action), "the writes were audited: {action} missing from {actions:?}");
    }
    assert_nowhere_in_trail(&app, MARKER).await;
    let update = entries_of(&app, "specialist.update").await;
    assert_eq!(detail(&update[0])["changed"], json!(["name", "specialty", "institution", "email"]));
}

async fn a_failed_sign_in_does_not_record_the_typed_email(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let client = web_client();
    let typed = "Nobody.Unknown-7731@Example.org";
    let response = client
        .post(format!("{}/login", app.base))
        .form(&[("email", typed), ("password", "whatever it was"), ("next", "/")])
        .send()
        .await
        .expect("sign in");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let failed = entries_of(&app, "auth.sign_in_failed").await;
    assert_eq!(failed.len(), 1);
    assert!(failed[0].actor.starts_with("sign-in:"), "{:?}", failed[0]);
    assert_eq!(failed[0].actor.len(), "sign-in:".len() + 16);
    assert_nowhere_in_trail(&app, "nobody.unknown").await;
    // The same typed email gets the same label, so repeated attempts stand out.
    client
        .post(format!("{}/login", app.base))
        .form(&[("email", typed), ("password", "another guess"), ("next", "/")])
        .send()
        .await
        .expect("sign in");
    let failed = entries_of(&app, "auth.sign_in_failed").await;
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0].actor, failed[1].actor);
}

async fn the_chain_survives_concurrent_writers_and_shows_tampering(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let app = std::sync::Arc::new(app);
    let mut writers = Vec::new();
    for i in 0..40 {
        let app = app.clone();
        writers.push(tokio::spawn(async move {
            let token = if i % 2 == 0 { &app.advocate.token } else { &app.other_advocate.token };
            let (status, body) = app.post(token, "/api/v1/cases", new_case(&format!("Parallel {i}"))).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            // Reads that leave entries too, interleaved with the writes.
            assert_eq!(app.get(token, "/api/v1/cases?limit=1").await.0, StatusCode::OK);
        }));
    }
    for writer in writers {
        writer.await.expect("writer finished");
    }
    let entries = all_entries(&app).await;
    assert_eq!(entries_of(&app, "case.create").await.len(), 40);
    let report = secondlook::audit::verify(&app.db).await.expect("verify");
    assert_eq!(report.first_bad, None, "{report:?}");
    assert_eq!(report.verified, entries.len() as u64);
    assert_eq!(report.unchained, 0);

    // Editing one entry's details is found at that entry.
    let edited = &entries[entries.len() / 2];
    audit_entry::Entity::update_many()
        .col_expr(audit_entry::Column::Detail, Expr::value("{\"reason\":\"other\"}"))
        .filter(audit_entry::Column::Id.eq(edited.id))
        .exec(&app.db)
        .await
        .expect("edit");
    let report = secondlook::audit::verify(&app.db).await.expect("verify");
    assert_eq!(report.first_bad, Some(edited.id), "{report:?}");
    let (ok, out, err) = crate::cli::run_cli(app.settings.database.url.expose(), &["audit", "verify"]).await;
    assert!(!ok, "verify fails on a broken chain: {out}");
    assert!(err.contains(&format!("broken at entry {}", edited.id)), "{err}");

    // Put back, the chain is whole again.
    audit_entry::Entity::update_many()
        .col_expr(audit_entry::Column::Detail, Expr::value(edited.detail.clone()))
        .filter(audit_entry::Column::Id.eq(edited.id))
        .exec(&app.db)
        .await
        .expect("restore");
    let (ok, out, err) = crate::cli::run_cli(app.settings.database.url.expose(), &["audit", "verify"]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains(&format!("{} entries verified", entries.len())), "{out}");

    // Deleting an entry breaks the link of the one after it.
    let removed = &entries[10];
    app.sql(&format!("DELETE FROM audit_log WHERE id = {}", removed.id)).await;
    let report = secondlook::audit::verify(&app.db).await.expect("verify");
    assert_eq!(report.first_bad, Some(entries[11].id), "{report:?}");
    assert_eq!(report.verified, 10);
}

async fn entries_from_before_the_chain_are_counted_apart(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    // A log as it was before the chain existed: entries without hashes.
    app.sql("DELETE FROM audit_log").await;
    for action in ["case.create", "case.viewed"] {
        audit_entry::ActiveModel {
            at: Set(secondlook::db::now()),
            actor_id: Set(None),
            actor: Set("system:old".into()),
            action: Set(action.into()),
            entity: Set("case".into()),
            entity_id: Set(Some(1)),
            case_id: Set(Some(1)),
            ip: Set(None),
            detail: Set("{}".into()),
            prev_hash: Set(None),
            hash: Set(None),
            ..Default::default()
        }
        .insert(&app.db)
        .await
        .expect("old entry");
    }
    app.open_case(&app.advocate.token, "After The Upgrade").await;
    app.open_case(&app.advocate.token, "Also After").await;
    let report = secondlook::audit::verify(&app.db).await.expect("verify");
    assert_eq!((report.unchained, report.first_bad), (2, None), "{report:?}");
    assert_eq!(report.verified, all_entries(&app).await.len() as u64 - 2);
    let first_chained = all_entries(&app).await[2].clone();
    assert_eq!(first_chained.prev_hash.as_deref(), Some(secondlook::audit::chain::GENESIS));

    // Emptying a chained entry's hash does not pass it off as an old one.
    let last = all_entries(&app).await.pop().expect("entries");
    app.sql(&format!("UPDATE audit_log SET hash = NULL, prev_hash = NULL WHERE id = {}", last.id)).await;
    let report = secondlook::audit::verify(&app.db).await.expect("verify");
    assert_eq!(report.first_bad, Some(last.id), "{report:?}");
}
