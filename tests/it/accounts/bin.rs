//! Helpers for the tests that drive the real `codex-rotor` binary on a data directory: the
//! offline `accounts` command, a `serve` daemon on a free port (killed when dropped), and a
//! config pointing it at the simulator.

use codex_rotor::sim::SimHandle;
use codex_rotor::store::FileStore;
use rotor_actors::AccountRecord;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `codex-rotor accounts --data-dir DIR <args>` with `env` set.
pub fn offline(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_codex-rotor"));
    cmd.arg("accounts")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("CODEX_ROTOR_ADMIN_URL")
        .env_remove(rotor_actors::fault::ENV);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null()).output().expect("the binary runs")
}

/// stdout of a run that must have succeeded.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The records of a data directory, as a restarted daemon would load them.
pub fn records(data: &Path) -> Vec<AccountRecord> {
    FileStore::open(data).expect("data dir opens").1
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Writes `config.toml` in `dir`: data in `data`, listening on `port`, upstream = `sim` (or a
/// closed local port, so nothing leaves 127.0.0.1), plus `extra` TOML.
pub fn config(dir: &Path, data: &Path, port: u16, sim: Option<&SimHandle>, extra: &str) -> PathBuf {
    let (base, token) = match sim {
        Some(s) => (s.backend_url(), s.token_url()),
        None => (
            "http://127.0.0.1:1/backend-api".to_owned(),
            "http://127.0.0.1:1/oauth/token".to_owned(),
        ),
    };
    let text = format!(
        "data_dir = {data:?}\n{extra}\n[server]\nlisten = \"127.0.0.1:{port}\"\n[upstream]\nbase_url = {base:?}\ntoken_url = {token:?}\n",
        data = data.display().to_string(),
    );
    let path = dir.join(format!("config-{port}.toml"));
    std::fs::write(&path, text).expect("config written");
    path
}

/// A `codex-rotor serve` child, SIGKILLed and reaped when dropped.
pub struct Serve {
    /// The process.
    pub child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Where its stderr goes.
    pub log: PathBuf,
}

impl Serve {
    /// Starts `serve --config config` and waits until it listens on `port`.
    pub fn start(config: &Path, port: u16) -> Serve {
        let log = config.with_extension("log");
        let child = Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env_remove(rotor_actors::fault::ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("daemon starts");
        let mut s = Serve { child, port, log };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("serve exited with {status}: {}", s.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "serve never listened: {}",
                s.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, like a crash or the OOM killer: no destructor runs.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 50 ms for up to `limit` (async, so an in-process simulator keeps serving).
pub async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}
