//! Runs `s3s-fs` (an S3-compatible server keeping each object as a file,
//! installed by `.ci/run`) on a loopback port over a directory of the test's
//! own, so a test can read what reached the server's disk, and stop and
//! start the server under a running app.

use std::{path::PathBuf, process::Stdio, time::Duration};

use tokio::process::{Child, Command};

pub const BUCKET: &str = "documents";
pub const ACCESS_KEY: &str = "test-access-key";
pub const SECRET_KEY: &str = "test-secret-key-0123456789";

pub struct S3Server {
    pub port: u16,
    pub root: tempfile::TempDir,
    child: Option<Child>,
}

/// The `s3s-fs` program: on the PATH, or where `cargo install` puts it.
fn program() -> Option<PathBuf> {
    let mut places: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).map(|dir| dir.join("s3s-fs")).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        places.push(PathBuf::from(home).join(".cargo/bin/s3s-fs"));
    }
    places.into_iter().find(|p| p.is_file())
}

impl S3Server {
    /// A server with an empty bucket, or `None` when `s3s-fs` is not
    /// installed (which fails the test instead under `CI=true`).
    pub async fn start() -> Option<S3Server> {
        let Some(_) = program() else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("s3s-fs is required under CI=true: cargo install s3s-fs --features binary");
            }
            eprintln!("skipping: s3s-fs is not installed");
            return None;
        };
        let root = tempfile::tempdir().expect("S3 root");
        std::fs::create_dir(root.path().join(BUCKET)).expect("bucket");
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            probe.local_addr().expect("address").port()
        };
        let mut server = S3Server { port, root, child: None };
        server.resume().await;
        Some(server)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Points `settings` at this server.
    pub fn configure(&self, settings: &mut secondlook::config::Settings) {
        let documents = &mut settings.documents;
        documents.storage = secondlook::config::DocumentStorage::S3;
        documents.s3.endpoint = self.endpoint();
        documents.s3.bucket = BUCKET.into();
        documents.s3.region = "us-east-1".into();
        documents.s3.access_key_id = ACCESS_KEY.into();
        documents.s3.secret_access_key = secondlook::secrets::Secret::new(SECRET_KEY);
        documents.s3.allow_http = true;
    }

    /// Stops the server: requests to it now fail to connect.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }

    /// Starts the server again on the same port and directory.
    pub async fn resume(&mut self) {
        let program = program().expect("s3s-fs");
        let child = Command::new(program)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start s3s-fs");
        self.child = Some(child);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("s3s-fs did not start listening on port {}", self.port);
    }
}
