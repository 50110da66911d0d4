//! A throwaway PostgreSQL for the tests and the lab: `initdb` into a temporary directory and
//! `pg_ctl start` listening on a Unix socket inside it and, when asked
//! ([`ThrowawayPg::start_with_tcp`]), on a loopback TCP port as well (so a relay the harness
//! controls can stand between one node and the database). Stopped and deleted when dropped.
//! Uses the Debian `postgresql` package's binaries (tests/run installs it). When run as root,
//! the server runs as the `postgres` user (PostgreSQL refuses root).
//!
//! One file for both users: the lab's `rotor_lab::pg`, and `tests/it` includes it by path (the
//! integration tests cannot depend on the lab, which depends on `codex-rotor`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One running server.
pub struct ThrowawayPg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    run_as: Option<String>,
    /// The port, both of the socket file's name and of the TCP listener if any.
    port: u16,
    /// Whether it also listens on `127.0.0.1:port`.
    tcp: bool,
}

/// The directory of `initdb`/`pg_ctl`: `$ROTOR_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<major>/bin`.
fn pg_bin() -> PathBuf {
    if let Ok(p) = std::env::var("ROTOR_PG_BIN") {
        return PathBuf::from(p);
    }
    let mut majors: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: run tests/run (it installs Debian's postgresql)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    majors.sort();
    majors
        .pop()
        .expect("no /usr/lib/postgresql/<major>/bin/initdb: install the postgresql package")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A loopback port free right now (bound, then released for the server to bind).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl ThrowawayPg {
    /// Starts a fresh server on a Unix socket only; panics with what is missing if it cannot.
    pub fn start() -> Self {
        Self::init(false)
    }

    /// Starts a fresh server on a Unix socket and on `127.0.0.1:`[`Self::port`].
    pub fn start_with_tcp() -> Self {
        Self::init(true)
    }

    fn init(tcp: bool) -> Self {
        let bin = pg_bin();
        let dir = tempfile::Builder::new()
            .prefix("rotor-pg-")
            .tempdir()
            .expect("temp dir");
        let run_as = is_root().then(|| "postgres".to_owned());
        if let Some(user) = &run_as {
            let ok = Command::new("chown")
                .args([
                    &format!("{user}:{user}"),
                    dir.path().to_str().expect("utf-8"),
                ])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown of the PostgreSQL test directory to {user}");
        }
        let port = if tcp { free_port() } else { 5432 };
        let pg = Self {
            dir,
            bin,
            run_as,
            port,
            tcp,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                path(&data),
                "-U",
                "rotor",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        pg.restart();
        pg
    }

    /// Starts the server (again, after [`Self::stop`]) on the same data, socket and port,
    /// waiting until it accepts.
    pub fn restart(&self) {
        let listen = if self.tcp { "127.0.0.1" } else { "" };
        let opts = format!(
            "-c listen_addresses='{listen}' -p {} -k {} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=200",
            self.port,
            self.socket_dir().display()
        );
        let data = self.data();
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                path(&data),
                "-o",
                &opts,
                "-l",
                path(&log),
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
    }

    /// Stops the server (`pg_ctl stop -m fast`: clients are disconnected at once), keeping its
    /// data: a database outage for the nodes.
    pub fn stop(&self) {
        let data = self.data();
        self.run("pg_ctl", &["-D", path(&data), "-m", "fast", "-w", "stop"]);
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The postmaster's process id (its `postmaster.pid`), while it runs: a harness that
    /// pauses the whole server (SIGSTOP) signals it and its backends.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// The port (of the socket file's name, and of the TCP listener if any).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port` when it listens on TCP.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp
            .then(|| SocketAddr::from(([127, 0, 0, 1], self.port)))
    }

    /// Runs one PostgreSQL binary (as the server's user when root), panicking with its output.
    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let out = match &self.run_as {
            Some(user) => Command::new("runuser")
                .args(["-u", user, "--"])
                .arg(&exe)
                .args(args)
                .output(),
            None => Command::new(&exe).args(args).output(),
        }
        .unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A libpq connection string for database `postgres` as user `rotor` (Unix socket).
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// The Unix-socket connection string of database `name`.
    pub fn url_of(&self, name: &str) -> String {
        format!(
            "host={} port={} user=rotor dbname={name}",
            self.socket_dir().display(),
            self.port
        )
    }

    /// Creates database `name` and returns its (Unix-socket) connection string.
    pub async fn database(&self, name: &str) -> String {
        let (client, conn) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("connect to the throwaway PostgreSQL");
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("create database {name}"))
            .await
            .expect("create database");
        drop(client);
        let _ = task.await;
        self.url_of(name)
    }
}

/// The TCP connection string of database `name` at `addr` (the server's listener, or a relay
/// in front of it).
pub fn tcp_url(addr: SocketAddr, name: &str) -> String {
    format!(
        "host={} port={} user=rotor dbname={name} connect_timeout=2",
        addr.ip(),
        addr.port()
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

impl Drop for ThrowawayPg {
    fn drop(&mut self) {
        let data = self.data();
        let exe = self.bin.join("pg_ctl");
        let args = ["-D", path(&data), "-m", "immediate", "-w", "stop"];
        let _ = match &self.run_as {
            Some(user) => Command::new("runuser")
                .args(["-u", user, "--"])
                .arg(&exe)
                .args(args)
                .output(),
            None => Command::new(&exe).args(args).output(),
        };
    }
}
