//! The daemon under test as a real child process: `rotor-lab serve` on a fixed loopback port
//! and data directory, so it can be SIGKILLed (no destructors, no flush) and started again on
//! the same state. Also reads its resident memory from `/proc` and its admin API.

use anyhow::Context;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The pool key the chaos daemon accepts.
pub const POOL_KEY: &str = "chaos-pool-key-0123456789abcdef";
/// The admin key the chaos daemon accepts.
pub const ADMIN_KEY: &str = "chaos-admin-key-0123456789abcdef";

/// A `rotor-lab serve` child and how to start it again.
pub struct ChildDaemon {
    /// The binary (`rotor-lab`, or `codex-rotor` with the fault points).
    bin: PathBuf,
    /// Its config file.
    config: PathBuf,
    /// Where its stderr goes (appended across restarts).
    log: PathBuf,
    /// The fixed address it listens on.
    pub addr: SocketAddr,
    child: Option<Child>,
    http: reqwest::Client,
    /// Account whose actor panics once (`CODEX_ROTOR_PANIC_ACCOUNT`); the next spawn takes it,
    /// so a restarted process does not panic it again.
    panic_account: Option<String>,
    /// Extra environment of every spawn (store key, cluster secret).
    env: Vec<(String, String)>,
}

/// Writes a daemon config for the simulator at `backend`/`token_url`, listening on `addr`.
pub fn write_config(
    dir: &Path,
    addr: SocketAddr,
    backend: &str,
    token_url: &str,
    tick: &str,
) -> anyhow::Result<PathBuf> {
    let path = dir.join("config.toml");
    let (pool_key, admin_key) = (dir.join("pool.key"), dir.join("admin.key"));
    std::fs::write(&pool_key, POOL_KEY).context("writing the pool key file")?;
    std::fs::write(&admin_key, ADMIN_KEY).context("writing the admin key file")?;
    let text = format!(
        "data_dir = {data:?}\n[server]\nlisten = \"{addr}\"\nshutdown_grace = \"2s\"\n\
         [[keys.keys]]\nname = \"chaos\"\nkey_file = {pk:?}\n[admin]\nkey_file = {ak:?}\n\
         [upstream]\nbase_url = {backend:?}\ntoken_url = {token_url:?}\n[pool]\ntick = {tick:?}\n",
        data = dir.join("data").display().to_string(),
        pk = pool_key.display().to_string(),
        ak = admin_key.display().to_string(),
    );
    std::fs::write(&path, text).context("writing the chaos config")?;
    Ok(path)
}

/// A free loopback port (bound then released; the daemon binds it right after).
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

impl ChildDaemon {
    /// Starts the daemon and waits until `/healthz` answers. With `panic_account`, that
    /// account's actor panics once in this first process (not after a restart).
    pub async fn start(
        bin: PathBuf,
        config: PathBuf,
        log: PathBuf,
        addr: SocketAddr,
        panic_account: Option<String>,
    ) -> anyhow::Result<ChildDaemon> {
        Self::start_with_env(bin, config, log, addr, panic_account, Vec::new()).await
    }

    /// [`ChildDaemon::start`] with extra environment variables, kept for every restart.
    pub async fn start_with_env(
        bin: PathBuf,
        config: PathBuf,
        log: PathBuf,
        addr: SocketAddr,
        panic_account: Option<String>,
        env: Vec<(String, String)>,
    ) -> anyhow::Result<ChildDaemon> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()?;
        let mut d = ChildDaemon {
            bin,
            config,
            log,
            addr,
            child: None,
            http,
            panic_account,
            env,
        };
        d.spawn().await?;
        Ok(d)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut cmd = Command::new(&self.bin);
        cmd.env_remove(rotor_actors::fault::PANIC_ENV);
        if let Some(id) = self.panic_account.take() {
            cmd.env(rotor_actors::fault::PANIC_ENV, id);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let child = cmd
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.child = Some(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                anyhow::bail!(
                    "the daemon exited at start ({status}); see {}",
                    self.log.display()
                );
            }
            if self.get_ok("/healthz").await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!(
            "the daemon did not become healthy in 30 s; see {}",
            self.log.display()
        )
    }

    async fn get_ok(&self, path: &str) -> bool {
        self.http
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// SIGKILL: no destructors, no flush, no graceful anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and data dir.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn().await
    }

    /// SIGTERM and wait (bounded), so the pool flushes every account file.
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends a signal by name (`STOP`, `CONT`, `TERM`) to the running child.
    pub fn signal(&self, name: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{name}"))
                .arg(c.id().to_string())
                .status();
        }
    }

    /// `GET path` on the daemon: its status, or `None` when it does not answer in `within`.
    pub async fn status_of(&self, path: &str, within: Duration) -> Option<u16> {
        let r = self
            .http
            .get(format!("http://{}{path}", self.addr))
            .timeout(within)
            .send()
            .await
            .ok()?;
        Some(r.status().as_u16())
    }

    /// `GET path` on the daemon as text (e.g. `/metrics`).
    pub async fn text(&self, path: &str) -> anyhow::Result<String> {
        let r = self
            .http
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "{path}: {}", r.status());
        Ok(r.text().await?)
    }

    /// The child's process id, if running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Resident set size in KiB (from `/proc/<pid>/status`), if running.
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        crate::procfs::status_kib(pid, "VmRSS")
    }

    /// The allocated part of the resident set (`RssAnon`; the rest is mostly the executable's
    /// clean, shared pages: [`crate::procfs::status_kib`]) in KiB, if running.
    pub fn anon_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        crate::procfs::status_kib(pid, "RssAnon")
    }

    /// CPU time (user + system) in milliseconds so far, if running.
    pub fn cpu_ms(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        cpu_ms_of(pid)
    }

    /// `GET /admin{path}` as JSON.
    pub async fn admin(&self, path: &str) -> anyhow::Result<Value> {
        let r = self
            .http
            .get(format!("http://{}/admin{path}", self.addr))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "admin {path}: {}", r.status());
        Ok(r.json().await?)
    }

    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for ChildDaemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// utime + stime of a process in milliseconds.
pub fn cpu_ms_of(pid: u32) -> Option<u64> {
    let (user, system) = crate::procfs::cpu(pid)?;
    Some((user + system).as_millis() as u64)
}
