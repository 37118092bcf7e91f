//! A throwaway PostgreSQL cluster for the test run: `initdb` into a temporary
//! folder (as the `postgres` user when the tests run as root, since
//! PostgreSQL refuses to run as root), started on a free loopback port, and
//! stopped and removed by a watcher process once the test binary exits.
//! `SECONDLOOK_TEST_POSTGRES_URL` points the tests at an existing server instead.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
};

pub struct Cluster {
    /// URL of the maintenance database, used to create one database per test.
    pub admin_url: String,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

pub fn cluster() -> Result<&'static Cluster, String> {
    CLUSTER.get_or_init(start).as_ref().map_err(Clone::clone)
}

fn start() -> Result<Cluster, String> {
    if let Ok(url) = std::env::var("SECONDLOOK_TEST_POSTGRES_URL") {
        return Ok(Cluster { admin_url: url });
    }
    let server = Server::create("shared")?;
    server.start()?;
    Ok(Cluster { admin_url: server.admin_url() })
}

/// A PostgreSQL server of the test run's own, which a test may stop and
/// start again.
pub struct Server {
    bin: PathBuf,
    dir: PathBuf,
    data: PathBuf,
    port: u16,
    as_root: bool,
}

impl Server {
    /// Initialises a cluster in a folder of its own (removed when the test binary exits).
    pub fn create(name: &str) -> Result<Server, String> {
        let bin = find_bin_dir().ok_or("PostgreSQL's initdb and pg_ctl were not found")?;
        let as_root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false);
        let dir = std::env::temp_dir().join(format!("secondlook-test-pg-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        if as_root {
            run(Command::new("chown").arg("postgres:postgres").arg(&dir))?;
        }
        let data = dir.join("data");
        let server = Server { bin, dir, data, port: free_port()?, as_root };
        run(server.tool("initdb").arg("-D").arg(&server.data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ]))?;
        spawn_reaper(&server.bin, &server.dir, &server.data, as_root);
        Ok(server)
    }

    fn tool(&self, name: &str) -> Command {
        let path = self.bin.join(name);
        if self.as_root {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    pub fn start(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            self.port,
            self.dir.display()
        );
        run(self
            .tool("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-o")
            .arg(options)
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "start"]))
    }

    /// Stops the server at once, as a crash or an operator would.
    pub fn stop(&self) -> Result<(), String> {
        run(self.tool("pg_ctl").arg("-D").arg(&self.data).args(["-m", "fast", "-w", "stop"]))
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

fn find_bin_dir() -> Option<PathBuf> {
    let on_path =
        std::env::var_os("PATH").map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>()).unwrap_or_default();
    let mut candidates: Vec<PathBuf> = on_path;
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path().join("bin")).collect();
        versions.sort();
        candidates.extend(versions.into_iter().rev());
    }
    candidates.into_iter().find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

/// A detached shell that waits for this process to end, then stops the
/// server and deletes its folder.
fn spawn_reaper(bin: &Path, dir: &Path, data: &Path, as_root: bool) {
    let pg_ctl = bin.join("pg_ctl");
    let stop = if as_root {
        format!("runuser -u postgres -- {} -D {} -m immediate stop", pg_ctl.display(), data.display())
    } else {
        format!("{} -D {} -m immediate stop", pg_ctl.display(), data.display())
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        dir = dir.display()
    );
    let spawned = Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(err) = spawned {
        eprintln!("could not start the PostgreSQL cleanup watcher: {err}");
    }
}
