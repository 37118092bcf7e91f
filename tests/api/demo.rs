//! `secondlook demo-data`: a caseload written in bulk that the application
//! reads like one it made itself — every case opens through the API and as
//! a page, most are closed with a history ending in their final stage, and
//! every open stage has cases. A second run adds to it.

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{Backend, TestApp};

crate::on_both_databases!(demo_data_writes_cases_the_application_can_open);

const OPEN_STAGES: [&str; 4] = ["records_requested", "specialist_chosen", "consultation_held", "opinions_compared"];

/// Every case the admin can list (ids and stages), following the cursor.
async fn list_all(app: &TestApp, filter: &str) -> Vec<(i64, String)> {
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/cases?limit=100{filter}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let (status, page) = app.get(&app.admin.token, &path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for item in page["items"].as_array().expect("items") {
            found.push((item["id"].as_i64().expect("id"), item["stage"].as_str().expect("stage").to_string()));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return found,
        }
    }
}

fn history_of(case: &Value) -> Vec<(Option<String>, String)> {
    case["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| (h["from"].as_str().map(String::from), h["to"].as_str().expect("to").to_string()))
        .collect()
}

async fn demo_data_writes_cases_the_application_can_open(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let url = app.settings.database.url.expose().to_string();
    let (ok, out, err) = crate::cli::run_cli(&url, &["demo-data", "--cases", "300"]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("Created 300 demo cases for 3 advocates and 12 specialists"), "{out}");
    assert!(out.contains("Demo advocate advocate1@demo.secondlook.local — password: "), "{out}");

    // The figures the demo's recount left are those a scan of every row gives.
    let now = chrono::Utc::now();
    let kept = secondlook::reports::overview(&app.db, now).await.expect("figures");
    let scanned = secondlook::reports::full_scan::overview_by_scan(&app.db, now).await.expect("scan");
    crate::database::assert_same_figures(&kept, &scanned);
    assert!(kept.time_in_stage.iter().all(|t| t.count > 0), "stages were completed lately: {:?}", kept.time_in_stage);
    assert!(kept.outcomes.decided > 100, "{:?}", kept.outcomes);

    let cases = list_all(&app, "").await;
    assert_eq!(cases.len(), 300);
    let count = |stage: &str| cases.iter().filter(|(_, s)| s == stage).count();
    for stage in OPEN_STAGES {
        assert!(count(stage) >= 2, "open cases wait in {stage}: {}", count(stage));
    }
    let closed = count("decision_made") + count("withdrawn");
    assert!(closed >= 200 && count("withdrawn") > 0, "most cases are closed: {closed}");
    let overdue = list_all(&app, "&overdue=true").await;
    assert!(!overdue.is_empty() && overdue.len() < 60, "some open cases are overdue: {}", overdue.len());

    let web = app.signed_in("admin@example.org").await;
    for (n, (id, stage)) in cases.iter().enumerate() {
        let (status, case) = app.get(&app.admin.token, &format!("/api/v1/cases/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{case}");
        assert_eq!(case["stage"].as_str(), Some(stage.as_str()));
        let history = history_of(&case);
        assert_eq!(history.first(), Some(&(None, "records_requested".to_string())), "{case}");
        assert_eq!(history.last().map(|(_, to)| to.as_str()), Some(stage.as_str()), "{case}");
        assert!(history.windows(2).all(|w| w[1].0.as_deref() == Some(w[0].1.as_str())), "{case}");
        assert_eq!(case["records"].as_array().map(Vec::len), Some(9), "one record per kind: {case}");
        match stage.as_str() {
            "decision_made" => {
                assert!(case["decision"].is_object() && case["comparison"].is_object(), "{case}");
                assert_eq!(case["opinions"].as_array().map(Vec::len), Some(2), "{case}");
                assert!(case["closed_at"].is_string() && case["stage_due_at"].is_null(), "{case}");
            }
            "withdrawn" => assert!(case["closed_at"].is_string(), "{case}"),
            _ => assert!(case["stage_due_at"].is_string() && case["closed_at"].is_null(), "{case}"),
        }
        let reference = case["reference"].as_str().expect("reference");
        assert!(reference.starts_with("SO-20") && reference.ends_with(&format!("{id:06}")), "{reference}");
        // The load made each case findable, as one opened through the API is.
        if n % 25 == 0 {
            let name = case["patient"]["name"].as_str().expect("name").to_lowercase();
            let (status, found) = app.get(&app.admin.token, &format!("/api/v1/cases?q={reference}")).await;
            assert_eq!(status, StatusCode::OK, "{found}");
            assert_eq!(found["items"][0]["id"].as_i64(), Some(*id), "{reference}: {found}");
            let words: String = name.split_whitespace().rev().collect::<Vec<_>>().join("+");
            let (_, found) = app.get(&app.admin.token, &format!("/api/v1/cases?q={words}&limit=100")).await;
            let ids: Vec<i64> =
                found["items"].as_array().expect("items").iter().filter_map(|i| i["id"].as_i64()).collect();
            assert!(ids.contains(id), "{name} backwards finds case {id}: {found}");
        }
        // The pages render from the same rows; one in ten is enough to show it.
        if n % 10 == 0 || OPEN_STAGES.contains(&stage.as_str()) && n % 3 == 0 {
            let page = web.get(format!("{}/cases/{id}", app.base)).send().await.expect("page");
            assert_eq!(page.status(), StatusCode::OK, "case page {id}");
            assert!(page.text().await.expect("body").contains(reference));
        }
    }
    for path in ["/", "/admin"] {
        let page = web.get(format!("{}{path}", app.base)).send().await.expect("page");
        assert_eq!(page.status(), StatusCode::OK, "{path}");
    }

    // A second run keeps the accounts and specialists and adds cases after the others.
    let (ok, out, err) = crate::cli::run_cli(&url, &["demo-data", "--cases", "25", "--seed", "8"]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("Created 25 demo cases for 3 advocates and 12 specialists"), "{out}");
    assert!(!out.contains("— password:"), "existing advocates keep their passwords: {out}");
    let again = list_all(&app, "").await;
    assert_eq!(again.len(), 325);
    let (status, specialists) = app.get(&app.admin.token, "/api/v1/specialists?limit=100").await;
    assert_eq!(status, StatusCode::OK, "{specialists}");
    assert_eq!(specialists["items"].as_array().map(Vec::len), Some(12), "{specialists}");
    let (ok, out, err) = crate::cli::run_cli(&url, &["audit", "verify"]).await;
    assert!(ok && out.contains("Audit trail intact"), "{out}{err}");
    let (status, audit) = app.get(&app.admin.token, "/api/v1/audit?action=demo.fill").await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(2), "one entry per load: {audit}");
}
