//! The REAL Codex CLI and the REAL Claude Code (npm packages pinned in
//! `tests/clients/node/package.json`, installed by `tests/run`) driven against the daemon in
//! front of the simulator, all on 127.0.0.1: a plain answer, a tool round trip and an exhausted
//! pool for each, and the setup `codex-rotor demo` prints, followed as printed (`demo.rs`). Between the daemon and the simulator sits a [`wire::WireLog`] relay that keeps
//! every byte, so a test compares what the client printed with what the simulator really
//! answered. Every client runs with a fresh `HOME`, a cleared environment, telemetry and update
//! checks off, and every proxy variable pointing at a [`wire::ProxyTrap`] that must stay
//! untouched: nothing may try to leave 127.0.0.1.
//!
//! Binaries: `$CODEX_BIN` / `$CLAUDE_BIN`, else `tests/clients/node/node_modules/.bin/…`; a
//! missing one fails the test with the instruction to run `tests/run`.
//! Run: `cargo test --test it clients::`.

mod claude;
mod codex;
mod demo;
pub(crate) mod wire;

use crate::support::TestEnv;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use wire::{ProxyTrap, WireLog};

/// Longest a single client run may take before it is killed and the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Path of a client binary: `$var`, else the npm install location; panics when it is missing.
fn client_bin(var: &str, name: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/clients/node/node_modules/.bin")
            .join(name)
    });
    assert!(
        path.is_file(),
        "{name} is not installed at {} (${var}): run tests/run, which installs the pinned \
         Codex CLI and Claude Code with npm ci into tests/clients/node",
        path.display()
    );
    path
}

/// What one client run left behind.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Both streams, for failure messages and for checks that do not care which one.
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// A client's private world: temp `HOME`, a working directory, and the proxy trap.
struct Sandbox {
    dir: tempfile::TempDir,
    trap: ProxyTrap,
}

impl Sandbox {
    async fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in ["home", "work", "tmp"] {
            std::fs::create_dir(dir.path().join(sub)).expect("sandbox dir");
        }
        Sandbox {
            dir,
            trap: ProxyTrap::start().await,
        }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// Runs `bin args…` in `work/` with a cleared environment: `PATH`, the sandbox's `HOME` and
    /// `TMPDIR`, every proxy variable at the trap, and `vars`. Stdin is closed; the process
    /// gets its own process group, killed whole if it outlives `limit` ([`RUN_LIMIT`] for the
    /// ordinary runs; shorter where the test is about the client giving up promptly).
    async fn run_within(
        &self,
        limit: Duration,
        bin: &Path,
        args: &[&str],
        vars: &[(&str, String)],
    ) -> Run {
        let trap = format!("http://{}", self.trap.addr);
        let mut cmd = tokio::process::Command::new(bin);
        cmd.args(args)
            .current_dir(self.path("work"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("TMPDIR", self.path("tmp"))
            .env("LANG", "C.UTF-8")
            .env("NO_COLOR", "1")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost");
        for var in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
        ] {
            cmd.env(var, &trap);
        }
        cmd.envs(vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
        let pid = child.id().expect("running child has a pid");
        let mut out = child.stdout.take().expect("piped stdout");
        let mut err = child.stderr.take().expect("piped stderr");
        let out = tokio::spawn(async move {
            let mut b = Vec::new();
            let _ = out.read_to_end(&mut b).await;
            String::from_utf8_lossy(&b).into_owned()
        });
        let err = tokio::spawn(async move {
            let mut b = Vec::new();
            let _ = err.read_to_end(&mut b).await;
            String::from_utf8_lossy(&b).into_owned()
        });
        let (status, timed_out) = match tokio::time::timeout(limit, child.wait()).await {
            Ok(status) => (status.expect("waiting for the client"), false),
            Err(_) => {
                // The client and anything it spawned: the whole process group.
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .status();
                (child.wait().await.expect("killed client is reaped"), true)
            }
        };
        let run = Run {
            status,
            stdout: drained(out).await,
            stderr: drained(err).await,
        };
        assert!(
            !timed_out,
            "{} did not finish within {limit:?}: {run}",
            bin.display()
        );
        run
    }

    /// Fails the test if any client tried to reach the outside through the proxy variables.
    fn assert_stayed_local(&self) {
        let hits = self.trap.hits();
        assert!(
            hits.is_empty(),
            "a client tried to leave 127.0.0.1: {hits:?}"
        );
    }
}

/// A pipe reader's text; a grandchild that kept the pipe open past the exit is not waited for
/// longer than a few seconds.
async fn drained(reader: tokio::task::JoinHandle<String>) -> String {
    match tokio::time::timeout(Duration::from_secs(5), reader).await {
        Ok(text) => text.unwrap_or_default(),
        Err(_) => "<pipe still held open by a leftover process>".to_owned(),
    }
}

/// Simulator + daemon with `n` accounts, the daemon reaching the simulator through a
/// [`WireLog`].
async fn env_with_wire(n: usize) -> (TestEnv, WireLog) {
    WireLog::behind(n).await
}

/// The daemon's recorded requests of one route (`"responses"`, `"messages"`), oldest first.
fn records(env: &TestEnv, route: &str) -> Vec<codex_rotor::RequestRecord> {
    let mut v: Vec<_> = env
        .state
        .recent()
        .list(1000)
        .into_iter()
        .filter(|r| r.route == route)
        .collect();
    v.reverse();
    v
}

/// The records of `route` once at least `n` are there (a streamed request is recorded when its
/// stream ends, which can be just after the client printed the answer and exited).
async fn settled(env: &TestEnv, route: &str, n: usize) -> Vec<codex_rotor::RequestRecord> {
    env.eventually(&format!("{n} {route} request(s) recorded"), || async {
        records(env, route).len() >= n
    })
    .await;
    records(env, route)
}

/// The one assistant message the simulator completed, or a failure listing what it did send.
fn only_message(wire: &WireLog) -> String {
    let messages = wire.messages();
    assert_eq!(messages.len(), 1, "one answer: {:?}", wire.outputs());
    messages.into_iter().next().unwrap_or_default()
}

/// Makes every simulated account answer `429 usage_limit_reached`.
fn exhaust(env: &TestEnv) {
    for id in &env.sim_ids {
        env.sim.set_usage(id, 100.0, 10.0);
    }
}
