//! Starts the real server on a random loopback port against a fresh
//! database — a new SQLite file, or a new database in the test PostgreSQL
//! cluster — with an admin and two advocates holding API tokens.

use std::sync::atomic::{AtomicU32, Ordering};

use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use secondlook::{
    app::{self, AppState},
    auth::{Actor, Role, tokens, users},
    config::Settings,
    db,
};
use serde_json::{Value, json};

use crate::postgres;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct Staff {
    pub id: i64,
    pub token: String,
}

pub struct TestApp {
    backend: Backend,
    pub settings: Settings,
    pub base: String,
    pub db: DatabaseConnection,
    pub client: reqwest::Client,
    pub admin: Staff,
    pub advocate: Staff,
    pub other_advocate: Staff,
    /// The server's trail of reads, to flush before reading `audit_log` directly.
    pub reads: secondlook::audit::reads::ReadTrail,
    /// Where this server keeps document files when they are local.
    pub files: std::path::PathBuf,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: Option<tempfile::TempDir>,
    _files: tempfile::TempDir,
}

/// The master key every test server seals documents with.
pub const TEST_MASTER_KEY: &str = "ERERERERERERERERERERERERERERERERERERERERERE=";

static DATABASES: AtomicU32 = AtomicU32::new(0);

/// Every test user's password.
pub const PASSWORD: &str = "a long enough password";

/// A browser-like client: keeps cookies, does not follow redirects.
pub fn web_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .no_proxy()
        .build()
        .expect("client")
}

/// A fresh, migrated database URL for `backend`, or `None` when PostgreSQL
/// is not available (which fails the test instead under `CI=true`).
pub async fn fresh_database(backend: Backend) -> Option<(String, Option<tempfile::TempDir>)> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temporary folder");
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("secondlook.db").display());
            Some((url, Some(dir)))
        }
        Backend::Postgres => {
            let cluster = match postgres::cluster() {
                Ok(cluster) => cluster,
                Err(why) => {
                    if std::env::var("CI").is_ok_and(|v| v == "true") {
                        panic!("PostgreSQL is required under CI=true: {why}");
                    }
                    eprintln!("skipping the PostgreSQL run: {why}");
                    return None;
                }
            };
            let name = format!("t_{}_{}", std::process::id(), DATABASES.fetch_add(1, Ordering::SeqCst));
            let admin = Database::connect(&cluster.admin_url).await.expect("connect to the test cluster");
            admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create test database");
            admin.close().await.expect("close admin connection");
            let url = match cluster.admin_url.rsplit_once('/') {
                Some((server, _)) => format!("{server}/{name}"),
                None => panic!("unexpected admin URL {}", cluster.admin_url),
            };
            Some((url, None))
        }
    }
}

pub fn test_settings(database_url: &str) -> Settings {
    let mut settings = Settings::defaults().expect("default settings");
    settings.database.url = secondlook::secrets::Secret::new(database_url);
    settings.server.listen = "127.0.0.1:0".parse().expect("address");
    // Tests walk cases through every stage without a patient; the consent
    // rule has tests of its own.
    settings.portal.consent_required = false;
    settings
}

impl TestApp {
    pub async fn start(backend: Backend) -> Option<TestApp> {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> Option<TestApp> {
        let (database_url, dir) = fresh_database(backend).await?;
        Some(Self::start_on(backend, &database_url, dir, adjust).await)
    }

    /// Starts on a database the test made itself (`dir` is kept until the app is dropped).
    pub async fn start_on(
        backend: Backend,
        database_url: &str,
        dir: Option<tempfile::TempDir>,
        adjust: impl FnOnce(&mut Settings),
    ) -> TestApp {
        // Server-side errors show in a failing test's output.
        let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("error").try_init();
        let database_url = database_url.to_string();
        let mut settings = test_settings(&database_url);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        settings.server.public_url = base.clone();
        let files = tempfile::tempdir().expect("documents directory");
        settings.documents.local_dir = files.path().display().to_string();
        settings.documents.master_key = secondlook::secrets::Secret::new(TEST_MASTER_KEY);
        adjust(&mut settings);
        let db = db::connect(&settings.database).await.expect("connect");
        db::migrate(&db).await.expect("migrate");

        let system = Actor::system("tests");
        let mut staff = Vec::new();
        for (email, name, role) in [
            ("admin@example.org", "Ada Admin", Role::Admin),
            ("advocate@example.org", "Avery Advocate", Role::Advocate),
            ("other@example.org", "Olu Other", Role::Advocate),
        ] {
            let new = users::NewUser {
                email: email.into(),
                name: name.into(),
                role,
                timezone: "UTC".into(),
                password: PASSWORD.into(),
            };
            let user = users::create(&db, &system, new).await.expect("create user");
            let token = tokens::create(&db, &system, email, "tests").await.expect("create token");
            staff.push(Staff { id: i64::from(user.id), token });
        }
        let other_advocate = staff.pop().expect("three users");
        let advocate = staff.pop().expect("three users");
        let admin = staff.pop().expect("three users");

        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state_settings = settings.clone();
        let (documents, _) = secondlook::documents::store::Documents::open(&settings).expect("document storage");
        let state = AppState::new(db.clone(), settings, documents);
        let reads = state.reads.clone();
        tokio::spawn(app::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        let client =
            reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).no_proxy().build().expect("client");
        TestApp {
            backend,
            settings: state_settings,
            base,
            db,
            client,
            admin,
            advocate,
            other_advocate,
            reads,
            files: files.path().to_path_buf(),
            _stop: stop,
            _dir: dir,
            _files: files,
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.expect("body read");
        let value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, value)
    }

    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.call(Some(token), Method::GET, path, None).await
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Some(token), Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Some(token), Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Some(token), Method::PATCH, path, Some(body)).await
    }

    /// A web client signed in as `email`.
    pub async fn signed_in(&self, email: &str) -> reqwest::Client {
        let client = web_client();
        let response = client
            .post(format!("{}/login", self.base))
            .form(&[("email", email), ("password", PASSWORD), ("next", "/")])
            .send()
            .await
            .expect("sign in");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "sign-in of {email} failed");
        client
    }

    /// Opens a case as `token`'s user and returns its id.
    pub async fn open_case(&self, token: &str, name: &str) -> i64 {
        let (status, case) = self.post(token, "/api/v1/cases", new_case(name)).await;
        assert_eq!(status, StatusCode::CREATED, "{case}");
        case["id"].as_i64().expect("case id")
    }

    /// Fills the search index as a very large caseload would: `copies`
    /// copies of case `id` (references `COPY-1`…, belonging to no one),
    /// each indexed under just `words`.
    pub async fn copies_indexed_as(&self, id: i64, copies: u64, words: &[&str]) {
        use sea_orm::{Iden, Iterable};
        use secondlook::db::entities::case;
        let mut columns: Vec<String> = case::Column::iter()
            .filter(|c| !matches!(c, case::Column::Id | case::Column::Reference | case::Column::NudgeToken))
            .map(|c| c.to_string())
            .collect();
        let copied = columns.iter().map(|c| format!("c.{c}")).collect::<Vec<_>>().join(", ");
        columns.push("reference".into());
        let copy = format!(
            "INSERT INTO cases ({}) \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {copies}) \
             SELECT {copied}, 'COPY-' || n.i FROM cases c, n WHERE c.id = {id}",
            columns.join(", ")
        );
        self.db.execute_unprepared(&copy).await.expect("copy cases");
        let unowned = "UPDATE cases SET advocate_id = NULL WHERE reference LIKE 'COPY-%'";
        self.db.execute_unprepared(unowned).await.expect("no one's");
        for word in words {
            let fill = format!(
                "INSERT INTO case_search_terms (term, case_id) \
                 SELECT '{word}', id FROM cases WHERE reference LIKE 'COPY-%'"
            );
            self.db.execute_unprepared(&fill).await.expect("fill the index");
        }
    }

    pub async fn add_specialist(&self, name: &str, offers_virtual: bool) -> i64 {
        let body = json!({
            "name": name, "specialty": "Oncology", "institution": "City Hospital",
            "email": "dr@example.org", "offers_virtual": offers_virtual,
        });
        let (status, specialist) = self.post(&self.admin.token, "/api/v1/specialists", body).await;
        assert_eq!(status, StatusCode::CREATED, "{specialist}");
        specialist["id"].as_i64().expect("specialist id")
    }

    pub async fn move_case(&self, token: &str, id: i64, body: Value) -> (StatusCode, Value) {
        self.post(token, &format!("/api/v1/cases/{id}/transition"), body).await
    }

    /// The reminders of this app's database and settings, to scan or send by hand.
    pub fn reminders(&self) -> secondlook::reminders::Reminders {
        secondlook::reminders::Reminders::new(self.db.clone(), std::sync::Arc::new(self.settings.clone()))
            .expect("reminders")
    }

    /// The digests queued so far for the staff member with `email`, oldest first.
    pub async fn digests_to(&self, email: &str) -> Vec<secondlook::db::entities::outbox_message::Model> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        use secondlook::db::entities::outbox_message;
        outbox_message::Entity::find()
            .filter(outbox_message::Column::Kind.eq("digest"))
            .filter(outbox_message::Column::RecipientEmail.eq(email))
            .order_by_asc(outbox_message::Column::Id)
            .all(&self.db)
            .await
            .expect("digests")
    }

    /// Runs a statement straight on the database, for setting up situations
    /// (such as time having passed) that the API cannot create.
    pub async fn sql(&self, statement: &str) {
        self.db.execute_unprepared(statement).await.expect("statement runs");
    }
}

pub fn new_case(name: &str) -> Value {
    json!({
        "patient": { "name": name, "email": "patient@example.org", "phone": "+1 555 010 2030", "timezone": "America/Chicago" },
        "specialty": "Oncology",
        "reason": "cancer_diagnosis",
        "urgency": "routine",
        "summary": "Biopsy suggests lymphoma; patient wants confirmation before chemotherapy.",
    })
}

/// An RFC 3339 time `hours` from now (negative for the past).
pub fn hours_from_now(hours: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::hours(hours)).to_rfc3339()
}

/// Declares each listed `async fn name(backend: Backend)` as two tests, one
/// per database.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )+
        }
    };
}
