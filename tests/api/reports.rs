//! The figures API: the numbers the admin page shows, for admins only.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Backend, TestApp};

crate::on_both_databases!(the_overview_api_gives_the_admin_figures);

async fn the_overview_api_gives_the_admin_figures(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let token = app.advocate.token.clone();
    let specialist = app.add_specialist("Dr. Figures", true).await;
    let decided = app.open_case(&token, "Decided Figure").await;
    crate::workflow::to_opinions_compared(&app, &token, decided, specialist).await;
    let decision = json!({ "chosen_opinion": "second", "reason": "Talked it through" });
    let (s, b) = app.put(&token, &format!("/api/v1/cases/{decided}/decision"), decision).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(app.move_case(&token, decided, json!({ "to": "decision_made" })).await.0, StatusCode::OK);
    let late = app.open_case(&app.other_advocate.token, "Late Figure").await;
    app.open_case(&app.other_advocate.token, "On Time Figure").await;
    let unassigned = app.post(&app.admin.token, "/api/v1/cases", crate::common::new_case("Nobody Yet")).await;
    assert_eq!(unassigned.0, StatusCode::CREATED, "{}", unassigned.1);
    let due = (chrono::Utc::now() - chrono::Duration::days(2)).to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    app.sql(&format!("UPDATE cases SET stage_due_at = '{due}' WHERE id = {late}")).await;
    // The due date was changed behind the application's back: recount.
    secondlook::cases::tallies::rebuild(&app.db).await.expect("rebuild the tallies");

    let (s, refused) = app.get(&token, "/api/v1/reports/overview").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"]["code"], "forbidden");

    let (s, body) = app.get(&app.admin.token, "/api/v1/reports/overview").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let now = chrono::Utc::now();
    let scanned = secondlook::reports::full_scan::overview_by_scan(&app.db, now).await.expect("figures from every row");

    let pipeline: Vec<(String, i64, i64)> = body["pipeline"]
        .as_array()
        .expect("pipeline")
        .iter()
        .map(|p| {
            (
                p["stage"].as_str().unwrap_or_default().to_string(),
                p["open"].as_i64().unwrap_or(-1),
                p["overdue"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    let expected: Vec<(String, i64, i64)> = scanned
        .open_per_stage
        .iter()
        .zip(&scanned.overdue_per_stage)
        .map(|((stage, open), (_, overdue))| (stage.as_str().to_string(), *open, *overdue))
        .collect();
    assert_eq!(pipeline, expected);
    assert_eq!(pipeline[0], ("records_requested".to_string(), 3, 1), "three gathering records, one of them late");

    let workload: Vec<(Option<i64>, i64, i64)> = body["workload"]
        .as_array()
        .expect("workload")
        .iter()
        .map(|w| (w["advocate_id"].as_i64(), w["open"].as_i64().unwrap_or(-1), w["overdue"].as_i64().unwrap_or(-1)))
        .collect();
    assert_eq!(workload, vec![(Some(app.other_advocate.id), 2, 1), (None, 1, 0)]);

    assert_eq!(body["outcomes"]["decided"], 1);
    assert_eq!(body["outcomes"]["treatment_changed"], scanned.outcomes.treatment_changed);
    let records_time = &body["stage_times"][0];
    assert_eq!(records_time["stage"], "records_requested");
    assert_eq!(records_time["completed"], 1, "the decided case left records_requested");
    assert!(records_time["median_days"].is_number(), "{records_time}");
    let weeks = body["weekly"].as_array().expect("weeks");
    assert_eq!(weeks.len(), 12);
    assert_eq!(weeks.last().map(|w| (w["opened"].clone(), w["closed"].clone())), Some((json!(4), json!(1))));
    assert!(body["as_of"].as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()));
    // Nothing about patients: no names, emails or references in the figures.
    let text = body.to_string();
    for private in ["Decided Figure", "Late Figure", "Nobody Yet", "@example"] {
        assert!(!text.contains(private), "{private} leaked into the figures");
    }
}
