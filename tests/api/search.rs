//! Finding cases as people remember them: a name typed without accents or
//! in another order, an email, a phone number, a reference; closed cases
//! as well as open ones, in the API and on the caseload page; only among
//! the cases the searcher may see; a search too broad to read refused with
//! a request for more letters.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Backend, TestApp, new_case};

crate::on_both_databases!(
    cases_are_found_by_name_email_phone_and_reference,
    a_search_too_broad_to_read_asks_for_more,
    a_common_first_name_with_a_common_surname_is_found
);

fn case_with(name: &str, email: &str, phone: &str) -> Value {
    let mut body = new_case(name);
    body["patient"]["email"] = json!(email);
    body["patient"]["phone"] = json!(phone);
    body
}

async fn found(app: &TestApp, token: &str, query: &str) -> Vec<i64> {
    let path = format!("/api/v1/cases?q={}", urlencoding(query));
    let (status, page) = app.get(token, &path).await;
    assert_eq!(status, StatusCode::OK, "{query:?}: {page}");
    page["items"].as_array().expect("items").iter().map(|i| i["id"].as_i64().expect("id")).collect()
}

fn urlencoding(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn cases_are_found_by_name_email_phone_and_reference(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let token = app.advocate.token.clone();
    let (s, garcia) = app
        .post(
            &token,
            "/api/v1/cases",
            case_with("María José García-López", "MJ.Garcia@example.org", "+1 (617) 555-0142"),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{garcia}");
    let garcia_id = garcia["id"].as_i64().expect("id");
    let reference = garcia["reference"].as_str().expect("reference").to_string();
    let (s, obrien) =
        app.post(&token, "/api/v1/cases", case_with("Robin O'Brien", "robin@example.net", "020 7946 0958")).await;
    assert_eq!(s, StatusCode::CREATED, "{obrien}");
    let obrien_id = obrien["id"].as_i64().expect("id");
    // Another advocate's patient of the same name stays out of this advocate's results.
    let (s, theirs) =
        app.post(&app.other_advocate.token, "/api/v1/cases", case_with("Maria Garcia", "mg@example.org", "")).await;
    assert_eq!(s, StatusCode::CREATED, "{theirs}");
    let theirs_id = theirs["id"].as_i64().expect("id");

    // The García case is decided and closed; a search still finds it, marked closed.
    let (s, b) = app.move_case(&token, garcia_id, json!({ "to": "withdrawn", "note": "Patient chose to stop" })).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    for query in [
        "garcia",
        "GARCÍA",
        "lopez maria",
        "garcia-lopez",
        "mar gar",
        "mj.garcia@example.org",
        "mj.garcia",
        "617 555 0142",
        "(617) 555-0142",
        "0142",
        reference.as_str(),
        &reference.to_lowercase(),
    ] {
        assert_eq!(found(&app, &token, query).await, vec![garcia_id], "{query:?}");
    }
    for query in ["o'brien", "obrien robin", "7946 0958", "robin@example.net"] {
        assert_eq!(found(&app, &token, query).await, vec![obrien_id], "{query:?}");
    }
    for query in ["garcias", "maria smith", "555 0143", "%_"] {
        assert!(found(&app, &token, query).await.is_empty(), "{query:?}");
    }
    let (_, page) = app.get(&token, "/api/v1/cases?q=garcia").await;
    assert_eq!(page["items"][0]["closed"], true, "{page}");
    assert_eq!(page["items"][0]["stage"], "withdrawn");
    let (_, page) = app.get(&token, "/api/v1/cases?q=garcia&state=open").await;
    assert!(page["items"].as_array().expect("items").is_empty(), "{page}");
    let (_, page) = app.get(&token, "/api/v1/cases?state=closed").await;
    assert_eq!(page["items"].as_array().expect("items").len(), 1, "{page}");
    let (s, page) = app.get(&token, "/api/v1/cases?state=finished").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page["error"]["fields"]["state"].is_string(), "{page}");

    // Admins see every match; the other advocate only their own.
    let mut everyone = found(&app, &app.admin.token, "maria garcia").await;
    everyone.sort();
    assert_eq!(everyone, vec![garcia_id, theirs_id]);
    assert_eq!(found(&app, &app.other_advocate.token, "maria garcia").await, vec![theirs_id]);

    // The caseload page: the closed case is listed and marked closed.
    let browser = app.signed_in("advocate@example.org").await;
    let page = browser.get(format!("{}/?q=garcia+maria", app.base)).send().await.expect("home");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(html.contains("Cases matching “garcia maria”"), "{html}");
    assert!(html.contains("María José García-López") && html.contains("due-closed"), "{html}");
    assert!(!html.contains("Robin O&#x27;Brien") && !html.contains("Robin O'Brien"));
    let page = browser.get(format!("{}/?q=nobody+like+this", app.base)).send().await.expect("home");
    assert!(page.text().await.expect("html").contains("No case, open or closed, matches"));
}

async fn a_search_too_broad_to_read_asks_for_more(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let token = app.advocate.token.clone();
    let id = app.open_case(&token, "Pat Smithson").await;
    // More words beginning "smith" than one search reads: as a very large
    // caseload would have.
    let limit = secondlook::cases::search::SCAN_LIMIT;
    let fill = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i <= {limit}) \
         INSERT INTO case_search_terms (term, case_id) SELECT 'smith' || i, {id} FROM n"
    );
    sea_orm::ConnectionTrait::execute_unprepared(&app.db, &fill).await.expect("fill the index");

    let (s, answer) = app.get(&token, "/api/v1/cases?q=smith").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let problem = answer["error"]["fields"]["q"].as_str().expect("a problem with q");
    assert!(problem.contains("type more"), "{problem}");
    // A rarer word alongside lets the search run.
    assert_eq!(found(&app, &token, "smith pat").await, vec![id]);
    assert_eq!(found(&app, &token, "smithson").await, vec![id]);
    // The page says so beside the search box and keeps what was typed.
    let browser = app.signed_in("advocate@example.org").await;
    let page = browser.get(format!("{}/?q=smith", app.base)).send().await.expect("home");
    assert_eq!(page.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = page.text().await.expect("html");
    assert!(html.contains("id=\"f-q-error\"") && html.contains("type more"), "{html}");
    assert!(html.contains("value=\"smith\""), "{html}");

    // More matching cases than a search lists: as many patients sharing a word.
    let url = app.settings.database.url.expose().to_string();
    let (ok, out, err) = crate::cli::run_cli(&url, &["demo-data", "--cases", "1100"]).await;
    assert!(ok, "{out}{err}");
    let everyone = "INSERT INTO case_search_terms (term, case_id) SELECT 'zzshared', id FROM cases";
    sea_orm::ConnectionTrait::execute_unprepared(&app.db, everyone).await.expect("a word every case has");
    let (s, answer) = app.get(&app.admin.token, "/api/v1/cases?q=zzshared").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let problem = answer["error"]["fields"]["q"].as_str().expect("a problem with q");
    assert!(problem.contains("matches more than 1000 cases"), "{problem}");
    // Within one advocate's own cases the same word matches few enough.
    let (s, answer) = app.get(&token, "/api/v1/cases?q=zzshared&limit=100").await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    assert_eq!(answer["items"][0]["id"].as_i64(), Some(id), "{answer}");
}

async fn a_common_first_name_with_a_common_surname_is_found(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let token = app.advocate.token.clone();
    let wanted = app.open_case(&token, "Maria Garcia").await;
    let other_maria = app.open_case(&token, "Maria Okafor").await;
    let garcia_lopez = app.open_case(&token, "Marta García-López").await;
    // Both words far more common than one search reads alone, as a very
    // large caseload would have them.
    let copies = secondlook::cases::search::SCAN_LIMIT + 1;
    app.copies_indexed_as(other_maria, copies, &["maria", "garcia"]).await;

    // Found in either order, whole or begun, with or without accents.
    assert_eq!(found(&app, &token, "garcia maria").await, vec![wanted]);
    assert_eq!(found(&app, &token, "María García").await, vec![wanted]);
    let mut begun = found(&app, &token, "garc mar").await;
    begun.sort();
    assert_eq!(begun, vec![wanted, garcia_lopez]);
    assert_eq!(found(&app, &token, "garcialopez mart").await, vec![garcia_lopez]);
    assert_eq!(found(&app, &token, "lopez marta").await, vec![garcia_lopez]);
    assert!(found(&app, &token, "garcia okafor").await.is_empty());
    assert_eq!(found(&app, &token, "okafor").await, vec![other_maria]);
    // One word alone is still too broad.
    let (s, answer) = app.get(&token, "/api/v1/cases?q=maria").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    // Another advocate's search does not reach these cases.
    let (s, answer) = app.get(&app.other_advocate.token, "/api/v1/cases?q=garcia+maria").await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    assert_eq!(answer["items"].as_array().map(Vec::len), Some(0), "{answer}");
}
