//! The queries behind the busiest pages read along an index, on both
//! databases: every statement the caseload, the admin figures, the API list
//! and a case view run is captured and explained. A full scan of a table
//! that grows with the cases fails here, not in a slow week.

use std::sync::{Arc, Mutex};

use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, Statement, TransactionTrait};
use secondlook::{
    actor::{Actor, Role},
    cases::store,
    ids::CaseId,
    reports::{self, CaseloadFilter, CaseloadSort},
};

use crate::common::{Backend, TestApp};

crate::on_both_databases!(the_busiest_queries_read_along_an_index);

/// Tables whose size follows the number of cases (or of what was done to them,
/// or of the days their due dates span).
const GROWING: [&str; 20] = [
    "cases",
    "case_rounds",
    "case_records",
    "opinions",
    "stage_history",
    "audit_log",
    "outbox",
    "sessions",
    "tally_due",
    "case_notes",
    "case_contacts",
    "case_search_terms",
    "documents",
    "portal_links",
    "portal_partners",
    "portal_consents",
    "portal_surveys",
    "records_requests",
    "records_request_kinds",
    "case_insurance",
];

/// Explains `statement`; the lines of its plan.
async fn plan(db: &sea_orm::DatabaseConnection, statement: &Statement) -> Vec<String> {
    let values = statement.values.clone().map(|v| v.0).unwrap_or_default();
    match db.get_database_backend() {
        DbBackend::Postgres => {
            // Tiny test tables are cheaper to read whole, so the planner
            // would scan them anyway; forbidding scans asks whether an
            // index could serve the query at all.
            let txn = db.begin().await.expect("begin");
            txn.execute_unprepared("SET LOCAL enable_seqscan = off").await.expect("set");
            let sql = format!("EXPLAIN {}", statement.sql);
            let rows = txn
                .query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values))
                .await
                .expect("explain");
            txn.rollback().await.expect("rollback");
            rows.iter().map(|r| r.try_get::<String>("", "QUERY PLAN").expect("plan line")).collect()
        }
        _ => {
            let sql = format!("EXPLAIN QUERY PLAN {}", statement.sql);
            let rows = db
                .query_all_raw(Statement::from_sql_and_values(DbBackend::Sqlite, sql, values))
                .await
                .expect("explain");
            rows.iter().map(|r| r.try_get::<String>("", "detail").expect("plan line")).collect()
        }
    }
}

/// The table or alias a plan line reads whole, if it does.
fn full_scan(line: &str, backend: DbBackend) -> Option<String> {
    let line = line.trim();
    match backend {
        DbBackend::Postgres => {
            let rest = line.split("Seq Scan on ").nth(1)?;
            rest.split_whitespace().next().map(str::to_string)
        }
        _ => {
            let rest = line.strip_prefix("SCAN ")?;
            if rest.contains("USING") || rest.starts_with("CONSTANT ROW") {
                return None;
            }
            rest.split_whitespace().next().map(str::to_string)
        }
    }
}

/// SQLite shows reading a table in primary key order as a scan; with no
/// condition and a LIMIT it stops after that many rows (the newest audit
/// entry, say), so it costs the same at any size.
fn walks_the_key_from_one_end(statement: &Statement, lines: &[String]) -> bool {
    let sql = statement.sql.replace(" WHERE TRUE", "");
    !sql.contains(" WHERE ")
        && sql.contains("\"id\" DESC LIMIT")
        && lines.len() == 1
        && !lines.iter().any(|l| l.contains("TEMP B-TREE"))
}

async fn the_busiest_queries_read_along_an_index(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let specialist = app.add_specialist("Dr. Plan", true).await;
    let mut last = 0;
    for n in 0..4 {
        last = app.open_case(&app.advocate.token, &format!("Planned {n}")).await;
    }
    crate::workflow::to_opinions_compared(&app, &app.advocate.token, last, specialist).await;
    app.open_case(&app.other_advocate.token, "Someone Else's").await;
    let follow_up = serde_json::json!({
        "with": "provider", "channel": "phone", "direction": "outbound", "summary": "Asked for the slides",
        "follow_up_on": chrono::Utc::now().date_naive().to_string(),
    });
    let (s, b) = app.post(&app.advocate.token, &format!("/api/v1/cases/{last}/contacts"), follow_up).await;
    assert_eq!(s, reqwest::StatusCode::CREATED, "{b}");
    let (s, b) = app
        .post(&app.advocate.token, &format!("/api/v1/cases/{last}/notes"), serde_json::json!({ "body": "Called" }))
        .await;
    assert_eq!(s, reqwest::StatusCode::CREATED, "{b}");

    // A records request on its way, and a denied pre-approval to appeal.
    let provider = serde_json::json!({ "name": "Plan Lab", "kind": "laboratory", "fax": "+1 555 0100" });
    let (s, provider) = app.post(&app.advocate.token, "/api/v1/providers", provider).await;
    assert_eq!(s, reqwest::StatusCode::CREATED, "{provider}");
    let sent = (chrono::Utc::now() - chrono::Duration::days(40)).to_rfc3339();
    let request = serde_json::json!({
        "provider_id": provider["id"], "type": "patient_access", "kinds": ["lab_results"], "method": "fax", "sent_at": sent,
    });
    let (s, request) = app.post(&app.advocate.token, &format!("/api/v1/cases/{last}/records-requests"), request).await;
    assert_eq!(s, reqwest::StatusCode::CREATED, "{request}");
    let deadline = (chrono::Utc::now() + chrono::Duration::days(3)).date_naive().to_string();
    let denied = serde_json::json!({ "preapproval": "denied", "appeal_deadline": deadline });
    let (s, b) = app.put(&app.advocate.token, &format!("/api/v1/cases/{last}/insurance"), denied).await;
    assert_eq!(s, reqwest::StatusCode::OK, "{b}");

    // Words too common to look up alone: a search of two such words looks
    // them up as a pair of a name's words.
    app.copies_indexed_as(last, 2_001, &["zzalpha", "zzbravo"]).await;
    if app.db.get_database_backend() == DbBackend::Postgres {
        // As autovacuum would after so many new rows: the plans below are
        // chosen for the tables as they now are.
        app.db.execute_unprepared("ANALYZE cases").await.expect("analyze");
        // And an audit trail with the history a busy service has (ids below
        // the real ones, so the chain's newest entry stays the newest):
        // planned for a handful of entries, the activity list would rightly
        // sort them, which at scale would mean sorting every match.
        let history = "INSERT INTO audit_log (id, at, actor, action, entity, entity_id, case_id, detail) \
             SELECT -g, now() - (g % 60) * interval '1 day', 'history', 'case.update', 'case', c.id, c.id, '{}' \
             FROM generate_series(1, 20000) g, (SELECT MIN(id) AS id FROM cases) c";
        app.db.execute_unprepared(history).await.expect("history");
        app.db.execute_unprepared("ANALYZE audit_log").await.expect("analyze");
    }

    let captured: Arc<Mutex<Vec<Statement>>> = Arc::default();
    let mut db = app.db.clone();
    let sink = captured.clone();
    db.set_metric_callback(move |info| {
        if let Ok(mut seen) = sink.lock() {
            seen.push(info.statement.clone());
        }
    });
    let reads = secondlook::audit::reads::ReadTrail::start(db.clone());
    let now = chrono::Utc::now();
    let advocate_id = i32::try_from(app.advocate.id).expect("id");
    let advocate = Actor::user(advocate_id, "advocate@example.org", Role::Advocate, None);
    let admin = Actor::user(i32::try_from(app.admin.id).expect("id"), "admin@example.org", Role::Admin, None);
    for (actor, filter) in [
        (&advocate, CaseloadFilter::default()),
        (&admin, CaseloadFilter::default()),
        (&admin, CaseloadFilter { advocate_id: Some(advocate_id), ..CaseloadFilter::default() }),
        (&advocate, CaseloadFilter { urgency: Some("routine".into()), ..CaseloadFilter::default() }),
        (&advocate, CaseloadFilter { query: Some("planned 3".into()), ..CaseloadFilter::default() }),
        (&admin, CaseloadFilter { query: Some("Planned".into()), ..CaseloadFilter::default() }),
        (&admin, CaseloadFilter { query: Some("zzalpha zzbravo".into()), ..CaseloadFilter::default() }),
        (&advocate, CaseloadFilter { sort: CaseloadSort::Patient, ..CaseloadFilter::default() }),
        (&admin, CaseloadFilter { sort: CaseloadSort::Patient, ..CaseloadFilter::default() }),
        (&advocate, CaseloadFilter { sort: CaseloadSort::Newest, ..CaseloadFilter::default() }),
        (&admin, CaseloadFilter { sort: CaseloadSort::Oldest, page: 1, ..CaseloadFilter::default() }),
    ] {
        reports::caseload(&db, &reads, actor, &filter, now).await.expect("caseload");
    }
    for actor in [&advocate, &admin] {
        let day_end = now + chrono::Duration::hours(10);
        reports::today(&db, &reads, actor, None, now, day_end).await.expect("today");
    }
    reports::overview(&db, now).await.expect("figures");
    let list = store::ListFilter {
        stage: None,
        overdue: false,
        advocate_id: None,
        query: None,
        closed: None,
        limit: 50,
        after_id: None,
    };
    store::list(&db, &reads, &admin, &list).await.expect("list");
    let searched = store::ListFilter { query: Some("someone else".into()), ..list };
    assert_eq!(store::list(&db, &reads, &admin, &searched).await.expect("search").items.len(), 1);
    store::view(&db, &reads, &advocate, CaseId(i32::try_from(last).expect("id"))).await.expect("case");
    let last_id = i32::try_from(last).expect("id");
    assert_eq!(secondlook::cases::journal::notes_of(&db, last_id).await.expect("notes").len(), 1);
    assert_eq!(secondlook::cases::journal::contacts_of(&db, last_id).await.expect("contacts").len(), 1);
    assert!(secondlook::documents::store::of_case(&db, last_id, true).await.expect("documents").is_empty());
    // The patient portal: a link opened, a page's checks, what staff see of it.
    let token =
        secondlook::portal::links::mint(&db, last_id, None, chrono::Duration::days(1), now).await.expect("link");
    let opened = secondlook::portal::links::open(&db, &token, now).await.expect("open");
    let secondlook::portal::links::Opened::Open(visitor) = opened else { panic!("the link opens") };
    assert!(secondlook::portal::links::visitor(&db, visitor.link_id, now).await.expect("visitor").is_some());
    let row = secondlook::db::entities::case::Entity::find_by_id(last_id).one(&db).await.expect("case").expect("row");
    secondlook::portal::summary(&db, &row, true, now).await.expect("portal summary");
    secondlook::portal::partner_names(&db, last_id).await.expect("partner names");
    let reminders = secondlook::reminders::Reminders::new(db.clone(), std::sync::Arc::new(app.settings.clone()))
        .expect("reminders");
    let scanned = secondlook::reminders::scan::scan(&reminders, now, false).await.expect("scan");
    assert!(scanned.planned > 0, "the new cases had something due: {scanned:?}");
    let again = secondlook::reminders::scan::scan(&reminders, now, false).await.expect("second scan");
    assert_eq!(again.planned, 0, "looked-at cases wait for their next look");
    // Tomorrow at noon the advocate's digest is due: its reads too.
    let noon = (now.date_naive() + chrono::Duration::days(1)).and_hms_opt(12, 0, 0).expect("noon").and_utc();
    secondlook::reminders::scan::scan(&reminders, noon, false).await.expect("digest scan");
    let request_id = i32::try_from(request["id"].as_i64().expect("request id")).expect("id");
    let context = secondlook::records_requests::LetterContext {
        settings: &app.settings.records_requests,
        organisation: "SecondLook",
        zone: chrono_tz::Tz::UTC,
    };
    secondlook::records_requests::letter_for(&db, &reads, &advocate, &context, request_id).await.expect("letter");
    secondlook::insurance::of_case(&db, &advocate, last_id).await.expect("insurance");

    let statements = captured.lock().expect("captured").clone();
    let reads: Vec<&Statement> = statements
        .iter()
        .filter(|s| {
            let sql = s.sql.trim_start().to_uppercase();
            sql.starts_with("SELECT") || sql.starts_with("WITH")
        })
        .collect();
    assert!(reads.len() >= 20, "the pages' reads were captured: {}", reads.len());
    for part in ["appeal_deadline", "tally_provider_requests", "FROM \"records_requests\""] {
        assert!(reads.iter().any(|s| s.sql.contains(part)), "{part} was read and is planned below");
    }
    let mut listed_by_due = 0;
    let mut paired_lookups = 0;
    let mut walked_in_order = 0;
    for statement in reads {
        let lines = plan(&app.db, statement).await;
        if walks_the_key_from_one_end(statement, &lines) {
            continue;
        }
        let values = statement.values.as_ref().map(|v| v.0.clone()).unwrap_or_default();
        if statement.sql.contains("FROM case_search_terms t0")
            && values.iter().any(|v| matches!(v, sea_orm::Value::String(Some(s)) if s.starts_with('~')))
        {
            paired_lookups += 1;
        }
        // A search that matched nothing lists with a condition that is
        // false before any row is read; SQLite still names the table.
        if statement.sql.contains("WHERE 1 = 0") {
            continue;
        }
        for line in &lines {
            if let Some(table) = full_scan(line, app.db.get_database_backend()) {
                // The hand-written queries name their tables by these aliases.
                let table = match table.as_str() {
                    "c" => "cases".to_string(),
                    "a" => "audit_log".to_string(),
                    "r" => "case_rounds".to_string(),
                    "t0" | "t1" => "case_search_terms".to_string(),
                    other => other.to_string(),
                };
                assert!(
                    !GROWING.contains(&table.as_str()),
                    "reads all of {table}:\n{}\n{}",
                    statement.sql,
                    lines.join("\n")
                );
            }
        }
        // The upcoming visits and the recent activity stop after the rows
        // they show only if they read them already in order: a sort or a
        // hash join would first gather every match, as many as there are
        // cases.
        if statement.sql.contains("FROM case_rounds r") || statement.sql.contains("FROM audit_log a") {
            walked_in_order += 1;
            let plan_text = lines.join("\n");
            assert!(
                !plan_text.contains("TEMP B-TREE") && !plan_text.contains("Sort") && !plan_text.contains("Hash"),
                "a caseload side list reads its rows in order:\n{}\n{plan_text}",
                statement.sql
            );
        }
        if statement.sql.contains("ORDER BY \"cases\".\"stage_due_at\"") {
            listed_by_due += 1;
            let plan_text = lines.join("\n");
            assert!(
                plan_text.contains("ix_cases_open_due") || plan_text.contains("ix_cases_open_advocate_due"),
                "the caseload list walks the open cases in due order:\n{}\n{plan_text}",
                statement.sql
            );
        }
    }
    assert_eq!(paired_lookups, 1, "the search of two common words looked them up as a pair");
    assert!(listed_by_due >= 4, "each caseload read its list: {listed_by_due}");
    assert!(walked_in_order >= 8, "each caseload read its side lists: {walked_in_order}");
}
