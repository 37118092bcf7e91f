//! Moving and keeping the whole database with the real binary: export from
//! SQLite and import into PostgreSQL (and back) with passwords, tokens and
//! new rows working afterwards; refusals of wrong, cut-off and misplaced
//! imports; every table carried; and online SQLite backups.

use std::{path::Path, process::Stdio, time::Duration};

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use secondlook::{
    app::{self, AppState},
    db,
    portability::file::{NOT_CARRIED, tables},
};
use serde_json::{Value, json};

use crate::common::{Backend, PASSWORD, TestApp, fresh_database, test_settings, web_client};

crate::on_both_databases!(the_export_carries_every_table_and_column, backup_copies_a_running_database);

/// Runs the `secondlook` binary against `database_url` with only the given
/// environment. Returns (success, stdout, stderr).
pub async fn run_cli(
    database_url: &str,
    workdir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_secondlook"));
    cmd.env_clear()
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .env("SECONDLOOK_MASTER_KEY", crate::common::TEST_MASTER_KEY)
        .env("SECONDLOOK__DOCUMENTS__LOCAL_DIR_SHARED", "true")
        .envs(env.iter().copied())
        .args(args)
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("command finishes in time")
        .expect("command runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A server on an existing database, as an operator would start one after a move.
struct Server {
    base: String,
    _stop: tokio::sync::oneshot::Sender<()>,
    _files: tempfile::TempDir,
}

async fn serve(database_url: &str) -> Server {
    let mut settings = test_settings(database_url);
    let files = tempfile::tempdir().expect("documents directory");
    settings.documents.local_dir = files.path().display().to_string();
    settings.documents.master_key = secondlook::secrets::Secret::new(crate::common::TEST_MASTER_KEY);
    let (documents, _) = secondlook::documents::store::Documents::open(&settings).expect("document storage");
    let db = db::connect(&settings.database).await.expect("connect");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app::serve(listener, AppState::new(db, settings, documents), async move {
        let _ = stopped.await;
    }));
    Server { base, _stop: stop, _files: files }
}

async fn api(base: &str, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let mut request = client.request(method, format!("{base}{path}")).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Every case as the API shows it, without what depends on the clock.
async fn all_cases(base: &str, token: &str) -> Vec<Value> {
    let (s, list) = api(base, token, reqwest::Method::GET, "/api/v1/cases?limit=100", None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let mut cases = Vec::new();
    for item in list["items"].as_array().expect("items") {
        let id = item["id"].as_i64().expect("id");
        let (s, mut case) = api(base, token, reqwest::Method::GET, &format!("/api/v1/cases/{id}"), None).await;
        assert_eq!(s, StatusCode::OK, "{case}");
        case.as_object_mut().expect("object").remove("overdue");
        cases.push(micros(case));
    }
    assert!(!cases.is_empty());
    cases
}

/// Times at the precision PostgreSQL keeps (SQLite keeps whatever was sent,
/// such as nanoseconds of a consultation time given through the API).
fn micros(value: Value) -> Value {
    match value {
        Value::String(text) => match chrono::DateTime::parse_from_rfc3339(&text) {
            Ok(at) => {
                Value::String(at.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            }
            Err(_) => Value::String(text),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(micros).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, micros(v))).collect()),
        other => other,
    }
}

async fn signs_in(base: &str, email: &str) -> bool {
    let response = web_client()
        .post(format!("{base}/login"))
        .form(&[("email", email), ("password", PASSWORD), ("next", "/")])
        .send()
        .await
        .expect("sign in");
    response.status() == StatusCode::SEE_OTHER
}

async fn new_case_works(base: &str, token: &str) -> i64 {
    let (s, b) =
        api(base, token, reqwest::Method::POST, "/api/v1/cases", Some(crate::common::new_case("After Move"))).await;
    assert_eq!(s, StatusCode::CREATED, "new rows get fresh ids after the import: {b}");
    b["id"].as_i64().expect("id")
}

/// A SQLite database with cases in several stages, a hold and an email,
/// exported, imported into PostgreSQL, served, then moved back to SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_moves_from_sqlite_to_postgres_and_back() {
    let Some(app) = TestApp::start(Backend::Sqlite).await else { return };
    let Some((pg_url, _)) = fresh_database(Backend::Postgres).await else { return };
    let workdir = tempfile::tempdir().expect("workdir");
    let closed = crate::privacy::closed_case(&app).await;
    let held = app.open_case(&app.other_advocate.token, "Held Patient").await;
    let (s, b) =
        app.post(&app.other_advocate.token, &format!("/api/v1/cases/{held}/hold"), json!({ "reason": "other" })).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let withdrawn = app.open_case(&app.advocate.token, "Withdrawn Patient").await;
    let (s, b) = app.move_case(&app.advocate.token, withdrawn, json!({ "to": "withdrawn", "note": "moved" })).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let sqlite_url = app.settings.database.url.expose().to_string();
    // Enough rows that several tables span more than one batch.
    let (ok, out, err) = run_cli(&sqlite_url, workdir.path(), &["demo-data", "--cases", "40"], &[]).await;
    assert!(ok, "{out}{err}");
    let before = all_cases(&app.base, &app.admin.token).await;

    let file = workdir.path().join("move.jsonl");
    let file_arg = file.to_str().expect("path");
    let (ok, out, err) = run_cli(&sqlite_url, workdir.path(), &["export", "--out", file_arg], &[]).await;
    assert!(ok, "{out}{err}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("export file").permissions().mode();
        assert_eq!(mode & 0o077, 0, "only the owner may read an export: {mode:o}");
    }
    let text = std::fs::read_to_string(&file).expect("export file");
    let header: Value = serde_json::from_str(text.lines().next().expect("header")).expect("json");
    assert_eq!(header["format"], "secondlook-export");
    assert_eq!(header["version"], 1);
    assert!(header["schema"].as_str().is_some_and(|s| s.starts_with('m')), "{header}");
    let (ok, _, err) = run_cli(&sqlite_url, workdir.path(), &["export", "--out", file_arg], &[]).await;
    assert!(!ok && err.contains("already exists"), "an export never overwrites: {err}");

    let (ok, out, err) = run_cli(&pg_url, workdir.path(), &["import", "--from", file_arg], &[]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("Imported"), "{out}");
    let records = text.lines().filter(|l| l.ends_with("\"table\":\"case_records\"}")).count();
    assert!(records > 200, "case_records spans more than one batch of 200: {records}");
    let (ok, _, err) = run_cli(&pg_url, workdir.path(), &["import", "--from", file_arg], &[]).await;
    assert!(!ok && err.contains("not empty"), "a second import is refused: {err}");

    let pg = serve(&pg_url).await;
    assert_eq!(all_cases(&pg.base, &app.admin.token).await, before, "cases, history and opinions are the same");
    assert!(signs_in(&pg.base, "admin@example.org").await, "passwords still sign in");
    assert!(!signs_in(&pg.base, "nobody@example.org").await);
    let (s, _) =
        api(&pg.base, &app.advocate.token, reqwest::Method::GET, &format!("/api/v1/cases/{closed}"), None).await;
    assert_eq!(s, StatusCode::OK, "the advocate's API token works");
    let (s, _) = api(&pg.base, &app.advocate.token, reqwest::Method::GET, &format!("/api/v1/cases/{held}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "and access rules still hold");
    // The search words are rebuilt from the imported cases: a closed case is found by name.
    let (s, found) =
        api(&pg.base, &app.advocate.token, reqwest::Method::GET, "/api/v1/cases?q=patient+withdrawn", None).await;
    assert_eq!(s, StatusCode::OK, "{found}");
    assert_eq!(found["items"][0]["id"].as_i64(), Some(withdrawn), "{found}");
    let added = new_case_works(&pg.base, &app.advocate.token).await;
    assert!(added > before.iter().filter_map(|c| c["id"].as_i64()).max().expect("ids"), "{added}");

    // And back: PostgreSQL to a new SQLite file.
    let back = workdir.path().join("back.jsonl");
    let back_arg = back.to_str().expect("path");
    let (ok, out, err) = run_cli(&pg_url, workdir.path(), &["export", "--out", back_arg], &[]).await;
    assert!(ok, "{out}{err}");
    let (sqlite2, _dir2) = fresh_database(Backend::Sqlite).await.expect("sqlite");
    let (ok, out, err) = run_cli(&sqlite2, workdir.path(), &["import", "--from", back_arg], &[]).await;
    assert!(ok, "{out}{err}");
    let lite = serve(&sqlite2).await;
    let mut expected = all_cases(&pg.base, &app.admin.token).await;
    assert_eq!(all_cases(&lite.base, &app.admin.token).await, std::mem::take(&mut expected));
    assert!(signs_in(&lite.base, "advocate@example.org").await);
    assert!(new_case_works(&lite.base, &app.advocate.token).await > added);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_cut_off_files_are_refused_and_leave_the_database_empty() {
    let Some(app) = TestApp::start(Backend::Sqlite).await else { return };
    app.open_case(&app.advocate.token, "Some Patient").await;
    let workdir = tempfile::tempdir().expect("workdir");
    let file = workdir.path().join("all.jsonl");
    let (ok, _, err) = run_cli(
        app.settings.database.url.expose(),
        workdir.path(),
        &["export", "--out", file.to_str().expect("path")],
        &[],
    )
    .await;
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&file).expect("file");
    let lines: Vec<&str> = text.lines().collect();

    let cut = workdir.path().join("cut.jsonl");
    std::fs::write(&cut, lines[..lines.len() - 1].join("\n")).expect("write");
    let missing_row = workdir.path().join("missing.jsonl");
    let mut without: Vec<&str> = lines.clone();
    without.remove(without.len() / 2);
    std::fs::write(&missing_row, without.join("\n")).expect("write");
    let other_version = workdir.path().join("v2.jsonl");
    std::fs::write(&other_version, text.replacen("\"version\":1", "\"version\":2", 1)).expect("write");
    let not_ours = workdir.path().join("other.jsonl");
    std::fs::write(&not_ours, "{\"hello\":\"world\"}\n").expect("write");

    for (file, why) in [
        (&cut, "incomplete"),
        (&missing_row, "the trailer announces"),
        (&other_version, "version 2"),
        (&not_ours, "not a SecondLook export"),
    ] {
        let (url, _dir) = fresh_database(Backend::Sqlite).await.expect("sqlite");
        let (ok, _, err) =
            run_cli(&url, workdir.path(), &["import", "--from", file.to_str().expect("path")], &[]).await;
        assert!(!ok, "{} was accepted", file.display());
        assert!(err.contains(why), "{why}: {err}");
        let db = Database::connect(&url).await.expect("connect");
        let users = db.query_one_raw(Statement::from_string(DbBackend::Sqlite, "SELECT COUNT(*) AS n FROM users"));
        let n: i64 = users.await.expect("count").expect("row").try_get("", "n").expect("n");
        assert_eq!(n, 0, "a refused import leaves the database empty");
    }
}

/// The tables the database really has (minus the migrations' own).
async fn real_tables(db: &sea_orm::DatabaseConnection) -> Vec<String> {
    let sql = match db.get_database_backend() {
        DbBackend::Sqlite => "SELECT name AS t FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        _ => {
            "SELECT table_name::text AS t FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        }
    };
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.expect("tables");
    let mut names: Vec<String> = rows.iter().map(|r| r.try_get::<String>("", "t").expect("name")).collect();
    names.retain(|n| n != "seaql_migrations");
    names.sort();
    names
}

async fn real_columns(db: &sea_orm::DatabaseConnection, table: &str) -> Vec<String> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Sqlite => format!("SELECT name AS c FROM pragma_table_info('{table}')"),
        _ => format!(
            "SELECT column_name::text AS c FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = '{table}'"
        ),
    };
    let rows = db.query_all_raw(Statement::from_string(backend, sql)).await.expect("columns");
    let mut names: Vec<String> = rows.iter().map(|r| r.try_get::<String>("", "c").expect("name")).collect();
    names.sort();
    names
}

async fn the_export_carries_every_table_and_column(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    // A closed case fills every table: rounds, opinions, records, history, outbox, audit.
    crate::privacy::closed_case(&app).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("all.jsonl");
    let counts = secondlook::portability::export(&app.db, &file).await.expect("export");

    let carried = tables();
    for table in real_tables(&app.db).await {
        assert!(
            carried.contains(&table.as_str()) || NOT_CARRIED.contains(&table.as_str()),
            "table {table} is neither exported nor deliberately left out"
        );
    }
    let text = std::fs::read_to_string(&file).expect("file");
    let rows: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    let header = &rows[0];
    assert_eq!(header["tables"], json!(carried));
    let trailer = rows.last().expect("trailer");
    let mut seen_order = Vec::new();
    for table in carried {
        let of_table: Vec<&Value> = rows.iter().filter(|r| r["table"] == table).collect();
        assert!(!of_table.is_empty(), "the test data has rows in {table}");
        assert_eq!(trailer["trailer"]["counts"][table].as_u64(), Some(of_table.len() as u64));
        assert_eq!(counts[table], of_table.len() as u64);
        let ids: Vec<i64> = of_table.iter().map(|r| r["row"]["id"].as_i64().expect("id")).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{table} rows in id order");
        let mut columns: Vec<String> = of_table[0]["row"].as_object().expect("row").keys().cloned().collect();
        columns.sort();
        assert_eq!(columns, real_columns(&app.db, table).await, "every column of {table} is carried");
        seen_order.push(rows.iter().position(|r| r["table"] == table).expect("first row"));
    }
    assert!(seen_order.windows(2).all(|w| w[0] < w[1]), "tables in foreign-key order");
}

async fn backup_copies_a_running_database(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let workdir = tempfile::tempdir().expect("workdir");
    let url = app.settings.database.url.expose().to_string();
    let out = workdir.path().join("backup.db");
    let out_arg = out.to_str().expect("path");
    if backend == Backend::Postgres {
        let (ok, _, err) = run_cli(&url, workdir.path(), &["backup", "--out", out_arg], &[]).await;
        assert!(!ok, "PostgreSQL backups are pg_dump's job");
        assert!(err.contains("pg_dump"), "{err}");
        assert!(!out.exists());
        return;
    }
    for n in 0..3 {
        app.open_case(&app.advocate.token, &format!("Backed Up {n}")).await;
    }
    // Cases keep being written while the backup runs.
    let writer = async {
        for n in 0..5 {
            app.open_case(&app.advocate.token, &format!("During {n}")).await;
        }
    };
    let args = ["backup", "--out", out_arg];
    let (backup, ()) = tokio::join!(run_cli(&url, workdir.path(), &args, &[]), writer);
    assert!(backup.0, "{}{}", backup.1, backup.2);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).expect("backup file").permissions().mode();
        assert_eq!(mode & 0o077, 0, "only the owner may read a backup: {mode:o}");
    }

    let (ok, _, err) = run_cli(&url, workdir.path(), &["backup", "--out", out_arg], &[]).await;
    assert!(!ok && err.contains("already exists"), "never overwrites: {err}");

    // A copy of the backup serves the cases it holds.
    let copy = workdir.path().join("restored.db");
    std::fs::copy(&out, &copy).expect("copy");
    let restored_url = format!("sqlite://{}?mode=rw", copy.display());
    let server = serve(&restored_url).await;
    let (s, list) = api(&server.base, &app.admin.token, reqwest::Method::GET, "/api/v1/cases?limit=100", None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let names: Vec<&str> =
        list["items"].as_array().expect("items").iter().filter_map(|i| i["patient_name"].as_str()).collect();
    for n in 0..3 {
        assert!(names.contains(&format!("Backed Up {n}").as_str()), "{names:?}");
    }
    assert!(names.len() >= 3 && names.len() <= 8, "{names:?}");
}
