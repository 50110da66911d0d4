//! A throwaway PostgreSQL for the tests: `initdb` into a temporary directory and `pg_ctl
//! start` listening only on a Unix socket inside it (no TCP port), stopped and deleted when
//! dropped. Uses the Debian `postgresql` package's binaries (tests/run installs it). When the
//! tests run as root, the server runs as the `postgres` user (PostgreSQL refuses root).

use std::path::{Path, PathBuf};
use std::process::Command;

/// One running server.
pub struct ThrowawayPg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    run_as: Option<String>,
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

impl ThrowawayPg {
    /// Starts a fresh server; panics with what is missing if it cannot.
    pub fn start() -> Self {
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
        let pg = Self { dir, bin, run_as };
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
        pg.start_server();
        pg
    }

    /// Starts the server on the data directory (`pg_ctl start`, waiting until it accepts).
    fn start_server(&self) {
        let opts = format!(
            "-c listen_addresses='' -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.socket_dir().display()
        );
        let log = self.dir.path().join("server.log");
        let data = self.data();
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

    /// Stops the server (`pg_ctl stop -m fast`: clients are disconnected at once), keeping
    /// its data: a database outage for the nodes.
    pub fn stop(&self) {
        let data = self.data();
        self.run("pg_ctl", &["-D", path(&data), "-m", "fast", "-w", "stop"]);
    }

    /// Starts the stopped server again on the same data and socket.
    pub fn restart(&self) {
        self.start_server();
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket_dir(&self) -> &Path {
        self.dir.path()
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

    /// A libpq connection string for database `postgres` as user `rotor`.
    pub fn url(&self) -> String {
        format!(
            "host={} user=rotor dbname=postgres",
            self.socket_dir().display()
        )
    }

    /// Creates database `name` and returns its connection string.
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
        format!(
            "host={} user=rotor dbname={name}",
            self.socket_dir().display()
        )
    }
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
