//! The `secondlook` binary as an operator uses it: serve on a fresh database
//! (first admin printed once), then users, tokens and demo data from a second
//! process while the server runs, and a graceful stop on SIGTERM.

use std::{process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, Command},
};

use crate::common::{Backend, fresh_database};

crate::on_both_databases!(
    operator_commands_work_against_a_running_server,
    documents_outlive_a_key_rotation_and_the_check_finds_what_is_missing
);

fn secondlook(database_url: &str, workdir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_secondlook"));
    cmd.env_clear()
        .env("DATABASE_URL", database_url)
        .env("SECONDLOOK_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .current_dir(workdir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if database_url.starts_with("postgres") {
        // Instances sharing PostgreSQL must be given the master key and a
        // shared document store; this one shares its directory with no one.
        cmd.env("SECONDLOOK_MASTER_KEY", crate::common::TEST_MASTER_KEY)
            .env("SECONDLOOK__DOCUMENTS__LOCAL_DIR_SHARED", "true");
    }
    cmd
}

async fn output(url: &str, workdir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    output_with(url, workdir, &[], args, stdin).await
}

async fn output_with(
    url: &str,
    workdir: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    let mut cmd = secondlook(url, workdir);
    cmd.envs(env.iter().copied()).args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("binary starts");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(text.as_bytes()).await.expect("write stdin");
        drop(pipe);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("command finishes in time")
        .expect("command ran");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `secondlook <args>` against `database_url` from a scratch folder.
pub async fn run_cli(database_url: &str, args: &[&str]) -> (bool, String, String) {
    run_cli_with(database_url, &[], args).await
}

/// [`run_cli`] with settings given as environment variables.
pub async fn run_cli_with(database_url: &str, env: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let workdir = tempfile::tempdir().expect("workdir");
    output_with(database_url, workdir.path(), env, args, None).await
}

/// Reads the server's start-up lines: its URL and the generated admin password.
async fn start_server(child: &mut Child) -> (String, String) {
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let (mut url, mut password) = (None, None);
    let read = async {
        while let Some(line) = lines.next_line().await.expect("read line") {
            if let Some(rest) = line.strip_prefix("SecondLook is running at ") {
                url = Some(rest.trim().to_string());
            }
            if let Some((_, rest)) = line.split_once("(shown once, change it after signing in): ") {
                password = Some(rest.trim().to_string());
            }
            if url.is_some() && password.is_some() {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read).await.expect("server starts in time");
    // Keep reading, as a terminal would, so the server never writes into a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (url.expect("URL printed"), password.expect("admin password printed"))
}

async fn operator_commands_work_against_a_running_server(backend: Backend) {
    let Some((url, _dir)) = fresh_database(backend).await else {
        return;
    };
    let workdir = tempfile::tempdir().expect("workdir");

    let (ok, out, err) = output(&url, workdir.path(), &["migrate"], None).await;
    assert!(ok, "migrate failed: {out}{err}");
    assert!(out.contains("up to date"), "{out}");

    let mut server = secondlook(&url, workdir.path());
    // The scheduler stays off here so that the run-once below is the only sender.
    server.arg("serve").env("SECONDLOOK__REMINDERS__ENABLED", "false").stdout(Stdio::piped()).stderr(Stdio::null());
    let mut server = server.spawn().expect("server starts");
    let (base, admin_password) = start_server(&mut server).await;
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    assert!(admin_password.len() >= 12, "a strong generated password");

    let (ok, token, err) =
        output(&url, workdir.path(), &["token", "create", "--email", "admin@secondlook.local", "--label", "cli"], None)
            .await;
    assert!(ok, "{err}");
    let token = token.trim().to_string();
    assert!(token.starts_with("sl_"), "{token}");

    let add = ["user", "add", "--email", "Sam@Example.org", "--name", "Sam Advocate", "--role", "advocate"];
    let (ok, out, err) = output(&url, workdir.path(), &add, Some("a piped-in password\n")).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("Created advocate sam@example.org"), "{out}");
    assert!(!out.contains("Password"), "a piped password is not echoed");
    let (ok, _, err) = output(&url, workdir.path(), &add, Some("another password here\n")).await;
    assert!(!ok, "a second account with the same email is refused");
    assert!(err.contains("already exists"), "{err}");
    let (ok, _, err) = output(
        &url,
        workdir.path(),
        &["user", "add", "--email", "x@example.org", "--name", "X", "--role", "advocate"],
        Some("short\n"),
    )
    .await;
    assert!(!ok);
    assert!(err.contains("at least 12"), "{err}");

    let (ok, out, err) = output(&url, workdir.path(), &["demo-data", "--cases", "12"], None).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("Created 12 demo cases"), "{out}");
    let (ok, out, err) = output(&url, workdir.path(), &["audit", "verify"], None).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("Audit trail intact:"), "{out}");
    let (ok, out, err) = output(&url, workdir.path(), &["tallies", "rebuild"], None).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("Tallies recounted"), "{out}");

    // A fresh install writes what it would send as .eml files.
    let (ok, out, err) = output(&url, workdir.path(), &["reminders", "run-once", "--dry-run"], None).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("would be queued (dry run: nothing queued or sent)"), "{out}");
    assert!(
        !workdir.path().join("data/mail").exists()
            || std::fs::read_dir(workdir.path().join("data/mail")).expect("dir").next().is_none()
    );
    let (ok, out, err) = output(&url, workdir.path(), &["reminders", "run-once"], None).await;
    assert!(ok, "{out}{err}");
    let written = std::fs::read_dir(workdir.path().join("data/mail")).expect("mail folder").count();
    assert!(written > 0, "{out}");
    assert!(out.contains(&format!("{written} sent")), "{out}");

    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let health = client.get(format!("{base}/healthz")).send().await.expect("health");
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    let list: serde_json::Value = client
        .get(format!("{base}/api/v1/cases?limit=100"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 12, "{list}");
    let mut stages: Vec<&str> = items.iter().map(|i| i["stage"].as_str().expect("stage")).collect();
    stages.sort_unstable();
    stages.dedup();
    assert!(stages.len() >= 3, "demo cases span the stages: {stages:?}");

    let pid = server.id().expect("pid").to_string();
    let signalled = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    assert!(signalled.success());
    let status = tokio::time::timeout(Duration::from_secs(30), server.wait())
        .await
        .expect("server stops after SIGTERM")
        .expect("wait");
    assert!(status.success(), "graceful stop exits cleanly: {status}");
}

/// Starts `secondlook serve` from `workdir` with `env`; the server, its
/// URL and everything it printed before it was ready.
async fn serve_with(url: &str, workdir: &std::path::Path, env: &[(&str, &str)]) -> (Child, String) {
    let mut server = secondlook(url, workdir);
    server
        .arg("serve")
        .envs(env.iter().copied())
        .env("SECONDLOOK__REMINDERS__ENABLED", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = server.spawn().expect("server starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = String::new();
    let read = async {
        while let Some(line) = lines.next_line().await.expect("read line") {
            printed.push_str(&line);
            printed.push('\n');
            if line.starts_with("Sign in at ") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read).await.expect("server starts in time");
    // The notes printed with the start-up message follow at once.
    while let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_millis(300), lines.next_line()).await {
        printed.push_str(&line);
        printed.push('\n');
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let base = printed
        .lines()
        .find_map(|l| l.strip_prefix("SecondLook is running at "))
        .expect("URL printed")
        .trim()
        .to_string();
    (child, format!("{base}\n{printed}"))
}

async fn stop(mut server: Child) {
    let _ = server.kill().await;
    let _ = server.wait().await;
}

async fn documents_outlive_a_key_rotation_and_the_check_finds_what_is_missing(backend: Backend) {
    let Some((url, _dir)) = fresh_database(backend).await else {
        return;
    };
    let workdir = tempfile::tempdir().expect("workdir");
    let dir = workdir.path();
    let key_file = dir.join("data/master.key");

    // On SQLite the first start makes the master key, and says to back it up.
    let (server, printed) = serve_with(&url, dir, &[]).await;
    let base = printed.lines().next().expect("base").to_string();
    if backend == Backend::Sqlite {
        assert!(printed.contains("A master key for documents was created in data/master.key"), "{printed}");
        assert!(printed.contains("Back it up now"), "{printed}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).expect("key file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only its owner reads the key");
    } else {
        assert!(!key_file.exists(), "a PostgreSQL setup is given its key");
    }
    let (ok, token, err) =
        output(&url, dir, &["token", "create", "--email", "admin@secondlook.local", "--label", "cli"], None).await;
    assert!(ok, "{err}");
    let token = token.trim().to_string();
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let case: serde_json::Value = client
        .post(format!("{base}/api/v1/cases"))
        .bearer_auth(&token)
        .json(&crate::common::new_case("Kim Keys"))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let case_id = case["id"].as_i64().expect("case id");
    let letter = b"A letter to the specialist, plain text.\n".repeat(3000);
    let form = reqwest::multipart::Form::new()
        .text("kind", "letter")
        .part("file", reqwest::multipart::Part::bytes(letter.clone()).file_name("letter.txt"));
    let uploaded: serde_json::Value = client
        .post(format!("{base}/api/v1/cases/{case_id}/documents"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("json");
    let doc_id = uploaded["id"].as_i64().unwrap_or_else(|| panic!("{uploaded}"));
    stop(server).await;

    // A rotation moves the document to a new master key.
    let new_key = "IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=";
    let rotated_env: Vec<(&str, &str)> = if backend == Backend::Sqlite {
        vec![]
    } else {
        vec![("SECONDLOOK_MASTER_KEY", new_key), ("SECONDLOOK_PREVIOUS_MASTER_KEY", crate::common::TEST_MASTER_KEY)]
    };
    let old_key = std::fs::read_to_string(&key_file).ok();
    let (ok, out, err) = output_with(&url, dir, &rotated_env, &["keys", "rotate"], None).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("Moved 1 documents"), "{out}");
    if let Some(old_key) = old_key {
        let now = std::fs::read_to_string(&key_file).expect("key file");
        assert_ne!(now, old_key, "the key file holds the new key");
        assert!(out.contains(".retired-"), "{out}");
    }
    // Run again, nothing is left to move.
    let (ok, out, err) = output_with(&url, dir, &rotated_env, &["keys", "rotate"], None).await;
    assert!(ok, "{out}{err}");

    let pg_new_key: Vec<(&str, &str)> =
        if backend == Backend::Sqlite { vec![] } else { vec![("SECONDLOOK_MASTER_KEY", new_key)] };
    let (server, printed) = serve_with(&url, dir, &pg_new_key).await;
    let base = printed.lines().next().expect("base").to_string();
    let body = client
        .get(format!("{base}/api/v1/documents/{doc_id}/content"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("download")
        .bytes()
        .await
        .expect("body");
    assert_eq!(body.as_ref(), letter.as_slice(), "the document opens under the new key");
    stop(server).await;

    // The check: all in order, then a missing file and a stray one.
    let (ok, out, err) = output_with(&url, dir, &pg_new_key, &["documents", "check"], None).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("1 documents, 1 stored files"), "{out}");
    let case_dir = dir.join(format!("data/documents/cases/{case_id}"));
    let stored: Vec<_> = std::fs::read_dir(&case_dir).expect("case files").flatten().map(|e| e.path()).collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    std::fs::remove_file(&stored[0]).expect("remove");
    std::fs::write(case_dir.join("stray"), b"left behind").expect("stray file");
    let (ok, out, err) = output_with(&url, dir, &pg_new_key, &["documents", "check"], None).await;
    assert!(!ok, "problems make the check fail: {out}");
    assert!(out.contains(&format!("damaged: document {doc_id}")), "{out}");
    assert!(out.contains(&format!("orphan: stored file cases/{case_id}/stray")), "{out}{err}");
}
