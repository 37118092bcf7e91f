//! The least server that shows what SecondLook's busiest reads show: plain
//! axum, sqlx and askama on the same database, with no sessions, no audit
//! entries and no access rules. SecondLook's benchmarks divide by its figures
//! to tell the cost of the product from the cost of the stack.
//!
//! ```text
//! secondlook-bench-baseline --port 3901 --database 'sqlite:///tmp/x/secondlook.db?mode=rw'
//! ```
//!
//! Routes: `/` (the first 25 open cases by due date, as HTML), `/api/cases?limit=50`
//! (the newest cases as JSON) and `/select1`.

use std::{net::SocketAddr, str::FromStr, sync::LazyLock};

use askama::Template;
use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    response::{Html, IntoResponse, Response},
    routing::get,
};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{
    ColumnIndex, Decode, Row, Type,
    postgres::{PgPool, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions},
};

/// As many connections as SecondLook's pool has by default.
const POOL_SIZE: u32 = 10;

/// The first page (25 rows, as on SecondLook's) of open cases, soonest due first.
const CASELOAD: &str = "SELECT id, reference, patient_name, stage, urgency, stage_due_at, held_since, erased_at \
     FROM cases WHERE stage IN ('records_requested', 'specialist_chosen', 'consultation_held', 'opinions_compared') \
     ORDER BY stage_due_at ASC, id ASC LIMIT 25";
/// The newest cases, as SecondLook's API lists them.
const LIST_COLUMNS: &str = "SELECT id, reference, patient_name, specialty, reason, urgency, stage, stage_due_at, \
     held_since, erased_at, advocate_id, created_at, updated_at FROM cases ORDER BY id DESC LIMIT ";
const SELECT1: &str = "SELECT CAST(1 AS INTEGER)";

#[derive(Clone)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs one query on whichever database is open and maps each row. The
/// SQL is the same text on both; only a query with a parameter tells the
/// placeholder (`?` or `$1`) apart.
macro_rules! fetch {
    ($db:expr, $sqlite:expr, $postgres:expr, $map:expr, $($bind:expr),*) => {
        match $db {
            Db::Sqlite(pool) => {
                sqlx::query($sqlite)$(.bind($bind))*.fetch_all(pool).await?.iter().map($map).collect::<Result<Vec<_>, _>>()
            }
            Db::Postgres(pool) => {
                sqlx::query($postgres)$(.bind($bind))*.fetch_all(pool).await?.iter().map($map).collect::<Result<Vec<_>, _>>()
            }
        }
    };
    ($db:expr, $sql:expr, $map:expr) => {
        fetch!($db, $sql, $sql, $map,)
    };
}

struct Failure(sqlx::Error);

impl From<sqlx::Error> for Failure {
    fn from(err: sqlx::Error) -> Self {
        Failure(err)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        eprintln!("database: {}", self.0);
        (StatusCode::SERVICE_UNAVAILABLE, "database error\n").into_response()
    }
}

struct CaseloadRow {
    id: i32,
    reference: String,
    patient: String,
    stage: &'static str,
    urgency: String,
    due: String,
    due_class: &'static str,
}

#[derive(Template)]
#[template(path = "caseload.html")]
struct CaseloadPage {
    rows: Vec<CaseloadRow>,
}

#[derive(Serialize)]
struct ListItem {
    id: i32,
    reference: String,
    patient_name: String,
    specialty: String,
    reason: String,
    urgency: String,
    stage: String,
    stage_due_at: Option<DateTime<Utc>>,
    overdue: bool,
    on_hold: bool,
    erased: bool,
    advocate_id: Option<i32>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Serialize)]
struct ListAnswer {
    items: Vec<ListItem>,
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<u32>,
}

fn stage_label(word: &str) -> &'static str {
    match word {
        "records_requested" => "Records requested",
        "specialist_chosen" => "Specialist chosen",
        "consultation_held" => "Consultation held",
        "opinions_compared" => "Opinions compared",
        "decision_made" => "Decision made",
        "withdrawn" => "Withdrawn",
        _ => "Unknown",
    }
}

fn span(d: Duration) -> String {
    if d >= Duration::days(2) {
        format!("{} days", d.num_days())
    } else if d >= Duration::hours(1) {
        format!("{} h", d.num_hours())
    } else {
        format!("{} min", d.num_minutes().max(1))
    }
}

/// The due badge's words and class, in UTC.
fn due_label(due: Option<DateTime<Utc>>, held: bool, now: DateTime<Utc>) -> (String, &'static str) {
    let Some(due) = due else { return ("No due date".into(), "due-none") };
    if held {
        return (format!("On hold (was due {})", due.format("%-d %b %Y")), "due-held");
    }
    let left = due - now;
    if left < Duration::zero() {
        (format!("Overdue by {}", span(-left)), "due-overdue")
    } else if left <= Duration::hours(48) {
        (format!("Due soon: in {}", span(left)), "due-soon")
    } else {
        (format!("Due {}", due.format("%-d %b %Y")), "due-ok")
    }
}

/// Columns: id, reference, patient_name, stage, urgency, stage_due_at, held_since, erased_at.
fn caseload_row<R>(row: &R) -> Result<(CaseloadRow, Option<DateTime<Utc>>, bool), sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<DateTime<Utc>>: Decode<'r, R::Database> + Type<R::Database>,
{
    let erased: Option<DateTime<Utc>> = row.try_get(7)?;
    let held: Option<DateTime<Utc>> = row.try_get(6)?;
    let stage: String = row.try_get(3)?;
    let shown = CaseloadRow {
        id: row.try_get(0)?,
        reference: row.try_get(1)?,
        patient: if erased.is_some() { "Patient data erased".to_string() } else { row.try_get(2)? },
        stage: stage_label(&stage),
        urgency: row.try_get(4)?,
        due: String::new(),
        due_class: "",
    };
    Ok((shown, row.try_get(5)?, held.is_some()))
}

/// Columns: id, reference, patient_name, specialty, reason, urgency, stage,
/// stage_due_at, held_since, erased_at, advocate_id, created_at, updated_at.
fn list_item<R>(row: &R) -> Result<ListItem, sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i32>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<DateTime<Utc>>: Decode<'r, R::Database> + Type<R::Database>,
{
    let stage_due_at: Option<DateTime<Utc>> = row.try_get(7)?;
    let held: Option<DateTime<Utc>> = row.try_get(8)?;
    let erased: Option<DateTime<Utc>> = row.try_get(9)?;
    Ok(ListItem {
        id: row.try_get(0)?,
        reference: row.try_get(1)?,
        patient_name: row.try_get(2)?,
        specialty: row.try_get(3)?,
        reason: row.try_get(4)?,
        urgency: row.try_get(5)?,
        stage: row.try_get(6)?,
        overdue: held.is_none() && stage_due_at.is_some_and(|due| due < Utc::now()),
        stage_due_at,
        on_hold: held.is_some(),
        erased: erased.is_some(),
        advocate_id: row.try_get(10)?,
        created_at: row.try_get(11)?,
        updated_at: row.try_get(12)?,
    })
}

async fn caseload(State(db): State<Db>) -> Result<Response, Failure> {
    let found = fetch!(&db, CASELOAD, caseload_row)?;
    let now = Utc::now();
    let rows = found
        .into_iter()
        .map(|(mut row, due, held)| {
            (row.due, row.due_class) = due_label(due, held, now);
            row
        })
        .collect();
    match (CaseloadPage { rows }).render() {
        Ok(html) => Ok(Html(html).into_response()),
        Err(err) => {
            eprintln!("template: {err}");
            Ok(StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}

async fn api_cases(State(db): State<Db>, Query(query): Query<ListQuery>) -> Result<Json<ListAnswer>, Failure> {
    static SQLITE: LazyLock<String> = LazyLock::new(|| format!("{LIST_COLUMNS}?"));
    static POSTGRES: LazyLock<String> = LazyLock::new(|| format!("{LIST_COLUMNS}$1"));
    let limit = i64::from(query.limit.unwrap_or(50).clamp(1, 200));
    let items = fetch!(&db, SQLITE.as_str(), POSTGRES.as_str(), list_item, limit)?;
    Ok(Json(ListAnswer { items }))
}

fn integer<R>(row: &R) -> Result<i32, sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(0)
}

async fn select1(State(db): State<Db>) -> Result<String, Failure> {
    let one = fetch!(&db, SELECT1, integer)?;
    Ok(format!("{}\n", one.first().copied().unwrap_or_default()))
}

struct Options {
    port: u16,
    database: String,
}

fn options() -> Result<Options, String> {
    let mut port = None;
    let mut database = std::env::var("DATABASE_URL").ok();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let value = args.next().ok_or("--port needs a number")?;
                port = Some(value.parse::<u16>().map_err(|e| format!("--port {value}: {e}"))?);
            }
            "--database" => database = Some(args.next().ok_or("--database needs a URL")?),
            "-h" | "--help" => {
                return Err("usage: secondlook-bench-baseline --port PORT [--database URL]\n\
                            (the database URL defaults to DATABASE_URL)"
                    .into());
            }
            other => return Err(format!("unknown argument {other:?}; try --help")),
        }
    }
    Ok(Options {
        port: port.ok_or("--port is required")?,
        database: database.ok_or("--database URL (or DATABASE_URL) is required")?,
    })
}

async fn connect(url: &str) -> Result<Db, sqlx::Error> {
    if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url)?;
        Ok(Db::Sqlite(SqlitePoolOptions::new().max_connections(POOL_SIZE).connect_with(options).await?))
    } else {
        Ok(Db::Postgres(PgPoolOptions::new().max_connections(POOL_SIZE).connect(url).await?))
    }
}

async fn stopped() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return std::process::ExitCode::from(2);
        }
    };
    let db = match connect(&options.database).await {
        Ok(db) => db,
        Err(err) => {
            eprintln!("cannot open the database: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let app = Router::new()
        .route("/", get(caseload))
        .route("/api/cases", get(api_cases))
        .route("/select1", get(select1))
        .with_state(db);
    let addr = SocketAddr::from(([127, 0, 0, 1], options.port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("cannot listen on {addr}: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("baseline listening on http://{addr}");
    if let Err(err) = axum::serve(listener, app).with_graceful_shutdown(stopped()).await {
        eprintln!("server: {err}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
