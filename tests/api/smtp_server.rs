//! Runs `tests/smtp/server.py` (Python's aiosmtpd) on a loopback port: a real
//! SMTP server whose answers a test can switch between accept, 4xx, 5xx
//! and slow, and whose received messages the test can read.

use std::{path::PathBuf, process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

pub struct SmtpServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

pub struct Received {
    pub raw: String,
    pub recipients: Vec<String>,
}

impl Received {
    /// The value of a top-level header, unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\r\n\r\n").next().unwrap_or_default().replace("\r\n ", " ");
        let prefix = format!("{}:", name.to_ascii_lowercase());
        head.lines().find(|l| l.to_ascii_lowercase().starts_with(&prefix)).map(|l| l[prefix.len()..].trim().to_string())
    }
}

fn available() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl SmtpServer {
    /// Starts the server, or `None` when Python's aiosmtpd is not installed
    /// (which fails the test instead under `CI=true`).
    pub async fn start() -> Option<SmtpServer> {
        if !available() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("python3 with aiosmtpd is required under CI=true (pip install aiosmtpd)");
            }
            eprintln!("skipping: python3 with aiosmtpd is not installed");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let mut server = SmtpServer { port, dir: tempfile::tempdir().expect("mail folder"), child: None };
        server.resume().await;
        Some(server)
    }

    fn maildir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    pub fn set_mode(&self, mode: &str) {
        std::fs::write(self.dir.path().join("mode"), mode).expect("write mode");
    }

    /// Starts (again) on the same port.
    pub async fn resume(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(self.port.to_string())
            .arg(self.maildir())
            .arg(self.dir.path().join("mode"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
        assert!(matches!(ready, Ok(Ok(Some(ref l))) if l == "ready"), "SMTP test server did not start: {ready:?}");
        self.child = Some(child);
    }

    /// Stops the server; connections to its port are refused until `resume`.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }

    pub fn messages(&self) -> Vec<Received> {
        let Ok(entries) = std::fs::read_dir(self.maildir()) else { return Vec::new() };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|path| Received {
                raw: std::fs::read_to_string(&path).expect("read message"),
                recipients: std::fs::read_to_string(path.with_extension("rcpt"))
                    .unwrap_or_default()
                    .lines()
                    .map(String::from)
                    .collect(),
            })
            .collect()
    }
}
