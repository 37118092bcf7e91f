//! Generated hostile requests against the API and the forms: wrong types,
//! NUL and control characters, huge numbers, far dates, bogus cursors, odd
//! content types. No answer may be a 5xx or a dropped connection, and
//! afterwards every case must still read back whole. The run is seeded
//! (`SECONDLOOK_FUZZ_SEED` picks another seed); a failure names the seed and
//! the request, so it can be replayed.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::common::{Backend, TestApp};

crate::on_both_databases!(generated_hostile_requests_never_fail_the_server);

/// Requests per database; the suite runs both.
const REQUESTS: usize = 10_000;
/// A bound on the whole run, so a hang cannot hold CI.
const TIME_LIMIT: Duration = Duration::from_secs(600);

const STAGES: &[&str] =
    &["records_requested", "specialist_chosen", "consultation_held", "opinions_compared", "decision_made", "withdrawn"];

/// A value meant to break something.
fn hostile(rng: &mut fastrand::Rng) -> Value {
    match rng.u8(0..22) {
        0 => json!("\u{0}"),
        1 => json!(format!("a\u{0}b{}", rng.u32(..))),
        2 => json!("\u{1}\u{7f}\r\n\t"),
        3 => json!(u64::MAX),
        4 => json!(i64::MIN),
        5 => json!(1e308),
        6 => json!(-1),
        7 => json!(0),
        8 => json!("-4714-11-24T00:00:00Z"),
        9 => json!("+275760-09-13T00:00:00Z"),
        10 => json!("0000-00-00T00:00:00Z"),
        11 => json!("x".repeat(rng.usize(200..30_000))),
        12 => json!(null),
        13 => json!(true),
        14 => json!([1, "two", null]),
        15 => json!({ "nested": { "deeper": "\u{0}" } }),
        16 => json!("'; DROP TABLE cases; --"),
        17 => json!("<script>alert(1)</script>"),
        18 => json!("ＳＯ－２０２６\u{202e}\u{fffd}"),
        19 => json!(STAGES[rng.usize(..STAGES.len())]),
        20 => json!("2026-13-45T25:61:61Z"),
        _ => json!(""),
    }
}

/// The same, as text for a query string or a form field.
fn hostile_text(rng: &mut fastrand::Rng) -> String {
    match hostile(rng) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

fn id_text(rng: &mut fastrand::Rng, ids: &[i64]) -> String {
    match rng.u8(0..10) {
        0 => "0".into(),
        1 => "-1".into(),
        2 => "18446744073709551616".into(),
        3 => "abc".into(),
        4 => "%00".into(),
        5 => "2147483648".into(),
        _ => ids.get(rng.usize(..ids.len().max(1))).copied().unwrap_or(1).to_string(),
    }
}

/// A sensible body for each writing route, to be bent one field at a time,
/// so the requests reach past the first check.
fn template(route: &str, specialist: i64) -> Value {
    match route {
        "cases" => crate::common::new_case("Fuzz Patient"),
        "patch" => json!({ "summary": "s", "urgency": "expedited", "medications": "m" }),
        "transition" => json!({ "to": "specialist_chosen", "specialist_id": specialist, "note": "n" }),
        "hold" => json!({ "reason": "waiting_for_patient", "note": "n" }),
        "record" => json!({ "status": "received", "note": "n" }),
        "specialist" => json!({ "specialist_id": specialist }),
        "consultation" => json!({ "scheduled_at": "2027-01-10T10:00:00Z", "mode": "virtual", "location": "l" }),
        "opinions" => json!({
            "round": "second", "clinician": "Dr. F", "diagnosis": "d", "treatment_plan": "t",
            "recommends_surgery": false, "notes": "n",
        }),
        "comparison" => json!({ "diagnosis_agrees": true, "treatment_agrees": false, "summary": "s" }),
        "decision" => json!({ "chosen_opinion": "second", "reason": "r" }),
        "specialists" => {
            json!({ "name": "Dr. Fuzz", "specialty": "Oncology", "institution": "I", "offers_virtual": true })
        }
        _ => json!({}),
    }
}

fn bend(rng: &mut fastrand::Rng, mut body: Value) -> Value {
    if rng.u8(0..10) == 0 {
        return hostile(rng);
    }
    let Some(fields) = body.as_object_mut() else { return body };
    let keys: Vec<String> = fields.keys().cloned().collect();
    for _ in 0..rng.usize(1..3) {
        match rng.u8(0..6) {
            0 => {
                fields.insert(format!("unknown_{}", rng.u8(..)), hostile(rng));
            }
            1 if !keys.is_empty() => {
                fields.remove(&keys[rng.usize(..keys.len())]);
            }
            _ if !keys.is_empty() => {
                let key = &keys[rng.usize(..keys.len())];
                let value = hostile(rng);
                if let Some(Value::Object(inner)) = fields.get_mut(key) {
                    let inner_keys: Vec<String> = inner.keys().cloned().collect();
                    if let Some(k) = inner_keys.get(rng.usize(..inner_keys.len().max(1))) {
                        inner.insert(k.clone(), value);
                    }
                } else {
                    fields.insert(key.clone(), value);
                }
            }
            _ => {}
        }
    }
    body
}

struct Request {
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Option<Vec<u8>>,
    /// Which client sends it: an API token, the advocate's browser session, or nobody.
    who: Who,
}

#[derive(Clone, Copy, Debug)]
enum Who {
    Advocate,
    Admin,
    Anonymous,
    Browser,
    AdminBrowser,
}

fn api_request(rng: &mut fastrand::Rng, ids: &[i64], specialist: i64) -> Request {
    let id = id_text(rng, ids);
    let (method, path, template_name) = match rng.u8(0..20) {
        0 => (Method::GET, "/api/v1/cases".to_string(), None),
        1 => (Method::POST, "/api/v1/cases".to_string(), Some("cases")),
        2 => (Method::GET, format!("/api/v1/cases/{id}"), None),
        3 => (Method::PATCH, format!("/api/v1/cases/{id}"), Some("patch")),
        4 => (Method::POST, format!("/api/v1/cases/{id}/transition"), Some("transition")),
        5 => (Method::POST, format!("/api/v1/cases/{id}/hold"), Some("hold")),
        6 => (Method::POST, format!("/api/v1/cases/{id}/resume"), None),
        7 => (Method::PUT, format!("/api/v1/cases/{id}/records/lab_results"), Some("record")),
        8 => (Method::PUT, format!("/api/v1/cases/{id}/specialist"), Some("specialist")),
        9 => (Method::PUT, format!("/api/v1/cases/{id}/consultation"), Some("consultation")),
        10 => (Method::POST, format!("/api/v1/cases/{id}/opinions"), Some("opinions")),
        11 => (Method::PUT, format!("/api/v1/cases/{id}/comparison"), Some("comparison")),
        12 => (Method::PUT, format!("/api/v1/cases/{id}/decision"), Some("decision")),
        13 => (Method::GET, "/api/v1/specialists".to_string(), None),
        14 => (Method::POST, "/api/v1/specialists".to_string(), Some("specialists")),
        15 => (Method::PUT, format!("/api/v1/specialists/{}", id_text(rng, &[specialist])), Some("specialists")),
        16 => (Method::GET, "/api/v1/audit".to_string(), None),
        17 => (Method::GET, format!("/api/v1/cases/{id}/export"), None),
        18 => (Method::POST, format!("/api/v1/cases/{id}/erase"), None),
        _ => (Method::GET, "/api/v1/users".to_string(), None),
    };
    let mut path = path;
    if method == Method::GET || rng.u8(0..4) == 0 {
        path.push('?');
        for _ in 0..rng.usize(0..4) {
            let key = [
                "q",
                "limit",
                "cursor",
                "stage",
                "overdue",
                "advocate_id",
                "specialty",
                "x",
                "case_id",
                "user_id",
                "action",
                "since",
                "until",
            ][rng.usize(..13)];
            let value = match key {
                "cursor" if rng.bool() => {
                    ["aWQ6MTA", "aWQ6LTE", "aWQ6OTk5OTk5OTk5OTk5", "!!!", "%FF"][rng.usize(..5)].to_string()
                }
                _ => hostile_text(rng),
            };
            path.push_str(&format!("{key}={}&", form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>()));
        }
    }
    let (content_type, body) = match template_name {
        Some(name) => {
            let body = bend(rng, template(name, specialist));
            match rng.u8(0..12) {
                0 => (Some("text/plain"), Some(body.to_string().into_bytes())),
                1 => (Some("application/x-www-form-urlencoded"), Some(b"a=b&c=%00".to_vec())),
                2 => (None, Some(body.to_string().into_bytes())),
                3 => (Some("application/json"), Some(b"{\"broken\": ".to_vec())),
                4 => (Some("application/json; charset=latin1"), Some(vec![0xff, 0xfe, b'{', b'}'])),
                _ => (Some("application/json"), Some(body.to_string().into_bytes())),
            }
        }
        None => (None, None),
    };
    let who = match rng.u8(0..10) {
        0 => Who::Anonymous,
        1 | 2 => Who::Admin,
        _ => Who::Advocate,
    };
    Request { method, path, content_type, body, who }
}

fn form_request(rng: &mut fastrand::Rng, ids: &[i64], specialist: i64) -> Request {
    let id = id_text(rng, ids);
    let (method, path, fields): (Method, String, &[&str]) = match rng.u8(0..19) {
        0 => (Method::GET, "/".into(), &["q", "stage", "urgency", "overdue", "advocate", "page"]),
        1 => (Method::GET, "/specialists".into(), &["q", "specialty"]),
        2 => (Method::GET, format!("/cases/{id}"), &[]),
        3 => (Method::GET, format!("/cases/{id}/summary"), &[]),
        4 => (
            Method::POST,
            "/cases/new".into(),
            &["name", "email", "specialty", "reason", "urgency", "summary", "timezone"],
        ),
        5 => (Method::POST, format!("/cases/{id}/transition"), &["to", "note", "specialist_id"]),
        6 => (Method::POST, format!("/cases/{id}/hold"), &["reason", "note"]),
        7 => (Method::POST, format!("/cases/{id}/resume"), &[]),
        8 => (Method::POST, format!("/cases/{id}/records"), &["status.lab_results", "note.imaging_ct", "all"]),
        9 => (Method::POST, format!("/cases/{id}/specialist"), &["specialist_id"]),
        10 => (Method::POST, format!("/cases/{id}/consultation"), &["scheduled_at", "mode", "location", "held_at"]),
        11 => (
            Method::POST,
            format!("/cases/{id}/opinions"),
            &["round", "clinician", "diagnosis", "treatment_plan", "recommends_surgery", "notes"],
        ),
        12 => (
            Method::POST,
            format!("/cases/{id}/comparison"),
            &["diagnosis_agrees", "treatment_agrees", "summary", "risk_notes"],
        ),
        13 => (Method::POST, format!("/cases/{id}/decision"), &["chosen_opinion", "reason"]),
        14 => (Method::POST, format!("/cases/{id}/details"), &["urgency", "summary", "medications", "medical_history"]),
        15 => {
            (Method::POST, "/specialists/new".into(), &["name", "specialty", "institution", "email", "offers_virtual"])
        }
        16 => (Method::GET, format!("/u/{}", hostile_text(rng).chars().take(80).collect::<String>()), &[]),
        17 if rng.bool() => {
            (Method::GET, "/admin/audit".into(), &["case", "user", "action", "since", "until", "before"])
        }
        17 => (Method::GET, "/admin/audit.csv".into(), &["case", "user", "action", "since", "until"]),
        _ => (Method::GET, format!("/login?next={}", hostile_text(rng)), &[]),
    };
    let _ = specialist;
    let mut pairs = form_urlencoded::Serializer::new(String::new());
    for field in fields {
        if rng.u8(0..5) > 0 {
            let value = match (*field, rng.bool()) {
                ("to", true) => STAGES[rng.usize(..STAGES.len())].to_string(),
                ("scheduled_at" | "held_at", true) => {
                    ["2027-01-10T10:00", "0001-01-01T00:00", "275760-01-01T00:00"][rng.usize(..3)].into()
                }
                ("specialist_id", true) => specialist.to_string(),
                _ => hostile_text(rng),
            };
            pairs.append_pair(field, &value);
        }
    }
    let encoded = pairs.finish();
    let (path, body) = if method == Method::GET {
        let joiner = if path.contains('?') { '&' } else { '?' };
        (format!("{path}{joiner}{encoded}"), None)
    } else {
        (path, Some(encoded.into_bytes()))
    };
    let content_type = body.as_ref().map(|_| "application/x-www-form-urlencoded");
    let who = if path.starts_with("/admin") { Who::AdminBrowser } else { Who::Browser };
    Request { method, path, content_type, body, who }
}

async fn generated_hostile_requests_never_fail_the_server(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let seed = std::env::var("SECONDLOOK_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261123_u64);
    let mut rng = fastrand::Rng::with_seed(seed);
    let specialist = app.add_specialist("Dr. Fuzz Target", true).await;
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(app.open_case(&app.advocate.token, &format!("Fuzz Case {n}")).await);
    }
    ids.push(app.open_case(&app.other_advocate.token, "Someone Else's").await);
    let browser = app.signed_in("advocate@example.org").await;
    let admin_browser = app.signed_in("admin@example.org").await;
    let started = Instant::now();
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();

    for n in 0..REQUESTS {
        assert!(started.elapsed() < TIME_LIMIT, "seed {seed}: ran past the time limit after {n} requests");
        let request = if rng.u8(0..3) == 0 {
            form_request(&mut rng, &ids, specialist)
        } else {
            api_request(&mut rng, &ids, specialist)
        };
        let client = match request.who {
            Who::Browser => &browser,
            Who::AdminBrowser => &admin_browser,
            _ => &app.client,
        };
        let mut builder = client.request(request.method.clone(), format!("{}{}", app.base, request.path));
        match request.who {
            Who::Advocate => builder = builder.bearer_auth(&app.advocate.token),
            Who::Admin => builder = builder.bearer_auth(&app.admin.token),
            Who::Anonymous | Who::Browser | Who::AdminBrowser => {}
        }
        if let Some(content_type) = request.content_type {
            builder = builder.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        if let Some(body) = request.body.clone() {
            builder = builder.body(body);
        }
        let describe = || {
            format!(
                "seed {seed}, request {n}: {:?} {} {} as {:?}: {}",
                request.method,
                request.path,
                request.content_type.unwrap_or("-"),
                request.who,
                request
                    .body
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect::<String>()
            )
        };
        let response = match builder.send().await {
            Ok(response) => response,
            Err(err) => panic!("dropped connection ({err:?}) — {}", describe()),
        };
        let status = response.status();
        let text = match response.text().await {
            Ok(text) => text,
            Err(err) => panic!("body cut off ({err}) — {}", describe()),
        };
        assert!(
            !status.is_server_error(),
            "{status} — {} — answered: {}",
            describe(),
            text.chars().take(300).collect::<String>()
        );
        *by_status.entry(status.as_u16()).or_default() += 1;
        if status == StatusCode::CREATED
            && request.path == "/api/v1/cases"
            && let Some(id) = serde_json::from_str::<Value>(&text).ok().and_then(|v| v["id"].as_i64())
        {
            ids.push(id);
        }
    }
    eprintln!("{backend:?}: {REQUESTS} generated requests with seed {seed} in {:?}: {by_status:?}", started.elapsed());
    assert!(by_status.get(&200).is_some_and(|n| *n > 100), "too few requests got through to real work: {by_status:?}");

    // Integrity: every case reads back, and its stage is where its history ends.
    let backend_kind = app.db.get_database_backend();
    let rows = app
        .db
        .query_all_raw(Statement::from_string(
            backend_kind,
            "SELECT c.id, c.stage, (SELECT h.to_stage FROM stage_history h WHERE h.case_id = c.id ORDER BY h.id DESC LIMIT 1) AS last \
             FROM cases c ORDER BY c.id",
        ))
        .await
        .expect("integrity query");
    assert!(rows.len() >= 7);
    for row in rows {
        let id: i32 = row.try_get("", "id").expect("id");
        let stage: String = row.try_get("", "stage").expect("stage");
        let last: Option<String> = row.try_get("", "last").expect("last");
        assert_eq!(Some(&stage), last.as_ref(), "case {id}: stage and history disagree");
        let (status, case) = app.get(&app.admin.token, &format!("/api/v1/cases/{id}")).await;
        assert_eq!(status, StatusCode::OK, "case {id} no longer reads: {case}");
        assert_eq!(case["stage"], stage.as_str(), "case {id}");
    }
}
