//! `rotor-lab bench proxy`: what the daemon costs. The same small streamed Responses load is
//! driven against the simulator directly and through codex-rotor, at concurrency 1, 16 and 64,
//! and the table reports requests/s, the latency the proxy adds (p50, p99), the daemon's CPU
//! time per request and its peak RSS with 1 000 accounts in the pool.
//!
//! Between the two sits the floor: the same load through a bare pass-through built from the
//! same libraries ([`super::passthrough`]), measured in the same run, so the table separates
//! the cost of the extra HTTP hop from the cost of what codex-rotor does on top of it.
//!
//! The daemon runs as a child process (`rotor-lab serve`, this same binary) so its CPU time
//! and memory are its own: they are read from `/proc/<pid>/stat` (utime + stime) and
//! `/proc/<pid>/status` (`VmHWM`). The simulator runs on one core-equivalent thread of this
//! process and the load generator on the rest, so everything shares the machine's cores, as on
//! the target box.

use crate::bench::spawn_sim_on_one_core;
use crate::loadgen::{self, LoadReport, LoadSpec, Stop};
use crate::procfs;
use anyhow::Context;
use codex_rotor::sim::{AccountSpec, SimHandle, SimOptions};
use codex_rotor::store::FileStore;
use rotor_actors::Store;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Knobs of `bench proxy`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProxyBench {
    /// Accounts in the pool.
    #[arg(long, default_value_t = 1000)]
    pub accounts: usize,
    /// How long each measurement runs (after a 1 s warm-up).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Concurrency levels to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub concurrency: Vec<usize>,
    /// Words per answer (more words = more SSE events per response).
    #[arg(long, default_value_t = 8)]
    pub words: usize,
    /// Rounds per concurrency level. Each round measures direct, bare and proxied one after the
    /// other, so a burst of load from elsewhere on the machine lands in one round's three legs
    /// rather than in one leg of every comparison; the tables then show the median round and,
    /// for the ratios, the spread over the rounds.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub repeat: u32,
    /// Keep the daemon's accounts in this PostgreSQL database (`[store] backend = "postgres"`;
    /// a libpq connection string or URL of an empty database) instead of the files of a data
    /// directory, to compare the two stores.
    #[arg(long, env = "ROTOR_BENCH_STORE_URL")]
    pub store_url: Option<String>,
}

/// The store key of a bench daemon on PostgreSQL (the data is thrown away after the run).
const BENCH_STORE_KEY: &str = "YmVuY2gtc3RvcmUta2V5LW5vdC1hLXNlY3JldC0wMDA=";

/// One concurrency level: its rounds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// Concurrent connections.
    pub concurrency: usize,
    /// One entry per round (`--repeat`), in the order they ran.
    pub rounds: Vec<Round>,
}

/// One round at one concurrency level: the direct, bare and proxied legs, run back to back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Round {
    /// Straight to the simulator.
    pub direct: LoadReport,
    /// Through the bare pass-through (the floor).
    pub bare: LoadReport,
    /// Through codex-rotor.
    pub proxied: LoadReport,
    /// Bare pass-through CPU during its run.
    pub bare_cpu: Cpu,
    /// Daemon CPU during the proxied run.
    pub daemon_cpu: Cpu,
}

/// CPU time of a process, split as `/proc/<pid>/stat` splits it, and how often its threads
/// went to sleep.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Cpu {
    /// In user space.
    pub user: Duration,
    /// In the kernel on the process's behalf (here mostly loopback TCP).
    pub system: Duration,
    /// Voluntary context switches summed over the process's threads
    /// (`/proc/<pid>/task/*/status`): each is a thread parking (in `epoll_wait` or on a futex)
    /// that something later had to wake. This count moves far less with the machine's other
    /// load than CPU time does (within ±3 % at c=1 over runs whose CPU figures spread by a
    /// fifth), so it shows a change in how often the runtime hands work between threads even
    /// where the CPU figures are too noisy to.
    pub parks: u64,
}

impl Cpu {
    /// User + system.
    pub fn total(self) -> Duration {
        self.user + self.system
    }

    /// What was spent since `earlier`.
    fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
            parks: self.parks.saturating_sub(earlier.parks),
        }
    }
}

/// The whole benchmark.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProxyReport {
    /// One row per concurrency level.
    pub rows: Vec<Row>,
    /// Daemon peak resident set (`VmHWM`), bytes.
    pub peak_rss: u64,
    /// Daemon resident set after start-up with the accounts loaded, bytes.
    pub idle_rss: u64,
    /// Of `idle_rss`, what the daemon allocated (`RssAnon`), bytes; the rest is mostly the
    /// executable's clean pages, which grow with the binary, not with what the daemon holds.
    pub idle_anon: u64,
    /// What the daemon has allocated after the load (`RssAnon`), bytes.
    pub end_anon: u64,
    /// Bare pass-through peak resident set, bytes.
    pub bare_peak_rss: u64,
    /// Accounts in the pool.
    pub accounts: usize,
    /// Daemon CPU per second with no request in flight (account ticks, flushes, probes):
    /// the background cost the per-request figure is corrected by.
    pub idle_cpu_per_sec: Duration,
    /// The daemon's store: `files` or `postgres` (`--store-url`).
    pub store: &'static str,
}

/// Runs the benchmark.
pub async fn run(b: &ProxyBench) -> anyhow::Result<ProxyReport> {
    let one_core = spawn_sim_on_one_core(SimOptions {
        answer_words: b.words,
        ..SimOptions::default()
    })?;
    let sim = one_core.handle.clone();
    let dir = std::env::temp_dir().join(format!("codex-rotor-bench-{}", std::process::id()));
    let key = "bench-pool-key-0123456789abcdef";
    let store = b.store_url.as_deref();
    let (direct_token, direct_account) = make_accounts(&sim, &dir, b.accounts, store).await?;
    let mut daemon = Child::daemon(&sim, &dir, key, store).await?;
    let mut bare = Child::passthrough(&sim, &dir, &direct_token, &direct_account).await?;
    let idle_rss = daemon.rss("VmRSS")?;
    let idle_anon = daemon.rss("RssAnon")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_from = daemon.cpu()?.total();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_cpu_per_sec = daemon.cpu()?.total().saturating_sub(idle_from) / 3;
    let body = codex_body();
    let mut rows = Vec::new();
    for &c in &b.concurrency {
        let mut rounds = Vec::new();
        let direct_spec = |stop| LoadSpec {
            url: codex_rotor::responses_url(&sim.backend_url()),
            headers: headers(&direct_token, Some(&direct_account)),
            body: body.clone().into(),
            concurrency: c,
            stop,
            expect_body_contains: Some("\"response.completed\"".into()),
            ..LoadSpec::default()
        };
        let proxied_spec = |stop| LoadSpec {
            url: format!("http://{}/v1/responses", daemon.addr),
            headers: headers(key, None),
            ..direct_spec(stop)
        };
        let bare_spec = |stop| LoadSpec {
            url: format!("http://{}/v1/responses", bare.addr),
            ..proxied_spec(stop)
        };
        for _ in 0..b.repeat {
            loadgen::run(direct_spec(Stop::Duration(Duration::from_secs(1)))).await?;
            let direct = loadgen::run(direct_spec(Stop::Duration(b.duration))).await?;
            loadgen::run(bare_spec(Stop::Duration(Duration::from_secs(1)))).await?;
            let before = bare.cpu()?;
            let bare_run = loadgen::run(bare_spec(Stop::Duration(b.duration))).await?;
            let bare_cpu = bare.cpu()?.since(before);
            loadgen::run(proxied_spec(Stop::Duration(Duration::from_secs(1)))).await?;
            let before = daemon.cpu()?;
            let proxied = loadgen::run(proxied_spec(Stop::Duration(b.duration))).await?;
            let daemon_cpu = daemon.cpu()?.since(before);
            // Settle between rounds so one round's backlog (flushes) is not billed to the next.
            tokio::time::sleep(Duration::from_secs(1)).await;
            rounds.push(Round {
                direct,
                bare: bare_run,
                proxied,
                bare_cpu,
                daemon_cpu,
            });
        }
        rows.push(Row {
            concurrency: c,
            rounds,
        });
    }
    let peak_rss = daemon.rss("VmHWM")?;
    let end_anon = daemon.rss("RssAnon")?;
    let bare_peak_rss = bare.rss("VmHWM")?;
    daemon.stop();
    bare.stop();
    sim.shutdown().await;
    drop(one_core);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ProxyReport {
        rows,
        peak_rss,
        idle_rss,
        idle_anon,
        end_anon,
        bare_peak_rss,
        accounts: b.accounts,
        idle_cpu_per_sec,
        store: if store.is_some() { "postgres" } else { "files" },
    })
}

/// A small streamed request as the Codex CLI sends it: already in the backend's shape
/// (`codex_rotor::internals::shape`), so the daemon passes it on as the same bytes.
pub(super) fn codex_body() -> String {
    serde_json::json!({"model": "gpt-5.5", "stream": true, "store": false,
        "instructions": "You are Codex.", "include": ["reasoning.encrypted_content"], "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "say hi"}]}]})
    .to_string()
}

/// The conversation id the Codex CLI sends with every turn of one thread, for
/// `bench instructions --codex-ids`.
pub(super) const CODEX_THREAD: &str = "0199a3e4-7b1c-4f2a-9d3e-5c6b7a8f9e01";

/// [`codex_body`] with the thread's `prompt_cache_key`, as every Codex turn carries it (the
/// daemon replaces such client ids per account, so this body is written over, not passed on
/// as the same bytes).
pub(super) fn codex_body_with_ids() -> String {
    serde_json::json!({"model": "gpt-5.5", "stream": true, "store": false,
        "instructions": "You are Codex.", "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": CODEX_THREAD,
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "say hi"}]}]})
    .to_string()
}

pub(super) fn headers(token: &str, account: Option<&str>) -> Vec<(String, String)> {
    let mut h = vec![
        ("authorization".into(), format!("Bearer {token}")),
        ("content-type".into(), "application/json".into()),
        ("accept".into(), "text/event-stream".into()),
    ];
    if let Some(a) = account {
        h.push(("chatgpt-account-id".into(), a.to_owned()));
    }
    h
}

/// Creates `n` simulator accounts with effectively unlimited quota and imports them into the
/// data dir (or the database of `store_url`); returns the first account's token and id for the
/// direct runs.
pub(super) async fn make_accounts(
    sim: &SimHandle,
    dir: &Path,
    n: usize,
    store_url: Option<&str>,
) -> anyhow::Result<(String, String)> {
    let (store, _, _) = FileStore::open(dir).context("opening the bench data dir")?;
    let mut records = Vec::new();
    let mut first = None;
    for _ in 0..n.max(1) {
        let created = sim.create_account(AccountSpec {
            primary_quota_tokens: Some(u64::MAX / 4),
            secondary_quota_tokens: Some(u64::MAX / 4),
            access_token_ttl: Some(Duration::from_secs(365 * 24 * 3600)),
            ..AccountSpec::default()
        });
        for rec in codex_rotor::demo::import_auth_json(&created.auth_json)? {
            match store_url {
                Some(_) => records.push(rec),
                None => store.save(&rec)?,
            }
        }
        if first.is_none() {
            let token = created.auth_json["tokens"]["access_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            first = Some((token, created.id.clone()));
        }
    }
    if let Some(url) = store_url {
        let key = codex_rotor::store::StoreKey::parse(BENCH_STORE_KEY, "the bench")?;
        codex_rotor::store::postgres::records::write_new(url, &key, &records)
            .await
            .context("filling the bench database (it must be empty: createdb a fresh one)")?;
    }
    first.context("no account created")
}

/// Writes the daemon's config for the accounts in `dir` (the pool key `key`, a free loopback
/// port, the PostgreSQL store of `store_url` if given); returns its path and the address the
/// daemon will listen on.
pub(super) fn daemon_config(
    sim: &SimHandle,
    dir: &Path,
    key: &str,
    store_url: Option<&str>,
) -> anyhow::Result<(std::path::PathBuf, std::net::SocketAddr)> {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let key_file = dir.join("pool.key");
    std::fs::write(&key_file, key)?;
    let config = dir.join("bench.toml");
    let mut toml = format!(
        "data_dir = {dir:?}\n[server]\nlisten = \"{addr}\"\n[upstream]\nbase_url = {:?}\ntoken_url = {:?}\n[[keys.keys]]\nname = \"bench\"\nkey_file = {key_file:?}\n",
        sim.backend_url(),
        sim.token_url(),
    );
    if let Some(url) = store_url {
        toml.push_str(&format!("[store]\nbackend = \"postgres\"\nurl = {url:?}\n"));
    }
    std::fs::write(&config, toml)?;
    Ok((config, addr))
}

/// A child process serving HTTP: the daemon, or the bare pass-through.
pub(super) struct Child {
    pub(super) child: std::process::Child,
    pub(super) addr: std::net::SocketAddr,
}

impl Child {
    /// `codex-rotor serve` on the accounts in `dir`.
    async fn daemon(
        sim: &SimHandle,
        dir: &Path,
        key: &str,
        store_url: Option<&str>,
    ) -> anyhow::Result<Child> {
        let (config, addr) = daemon_config(sim, dir, key, store_url)?;
        let exe = std::env::current_exe().context("locating this binary")?;
        // `CODEX_ROTOR_BENCH_WRAPPER="heaptrack -o /tmp/x"` runs the daemon under a profiler
        // (build with `--no-default-features` so heaptrack sees the allocations). The table's CPU
        // and RSS figures are then the wrapper's, and a wrapper that does not pass on the kill
        // leaves the daemon running: stop it with SIGTERM by its pid to get the profile.
        let wrapper = std::env::var("CODEX_ROTOR_BENCH_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut cmd = match words.next() {
            Some(program) => {
                let mut c = Command::new(program);
                c.args(words).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let child = cmd
            .args(["--config"])
            .arg(&config)
            .args(["--log-level", "warn", "serve"])
            .env("CODEX_ROTOR_STORE_KEY", BENCH_STORE_KEY)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the daemon")?;
        Child { child, addr }.healthy("the daemon").await
    }

    /// The bare pass-through in front of the simulator, as the one account `token`/`account`.
    async fn passthrough(
        sim: &SimHandle,
        dir: &Path,
        token: &str,
        account: &str,
    ) -> anyhow::Result<Child> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let credentials = dir.join("passthrough.credentials");
        std::fs::write(&credentials, format!("{token}\n{account}\n"))?;
        let exe = std::env::current_exe().context("locating this binary")?;
        let child = Command::new(exe)
            .args(["--log-level", "warn", "bench", "passthrough", "--listen"])
            .arg(addr.to_string())
            .arg("--upstream")
            .arg(codex_rotor::responses_url(&sim.backend_url()))
            .arg("--credentials")
            .arg(&credentials)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the bare pass-through")?;
        Child { child, addr }.healthy("the bare pass-through").await
    }

    /// Waits until `GET /healthz` answers 2xx.
    async fn healthy(self, what: &str) -> anyhow::Result<Child> {
        self.healthy_within(what, Duration::from_secs(15)).await
    }

    /// Waits up to `bound` until `GET /healthz` answers 2xx.
    pub(super) async fn healthy_within(self, what: &str, bound: Duration) -> anyhow::Result<Child> {
        let client = reqwest::Client::builder().no_proxy().build()?;
        for _ in 0..bound.as_millis().div_ceil(50) {
            if client
                .get(format!("http://{}/healthz", self.addr))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(self);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("{what} did not come up on {}", self.addr)
    }

    /// User and system CPU time of the process so far.
    fn cpu(&self) -> anyhow::Result<Cpu> {
        let pid = self.child.id();
        let (user, system) = procfs::cpu(pid).context("odd /proc stat")?;
        Ok(Cpu {
            user,
            system,
            parks: procfs::parks(pid),
        })
    }

    /// A `/proc/<pid>/status` memory field in bytes.
    fn rss(&self, field: &str) -> anyhow::Result<u64> {
        let kib = procfs::status_kib(self.child.id(), field).context("no such status field")?;
        Ok(kib * 1024)
    }

    pub(super) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The figures one round contributes to the tables (rates in requests/s, times in ms).
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    direct_rps: f64,
    bare_rps: f64,
    proxy_rps: f64,
    /// bare ÷ direct, %.
    bare_pct: f64,
    /// proxy ÷ direct, %.
    proxy_pct: f64,
    /// proxy ÷ bare, %.
    proxy_bare_pct: f64,
    direct_p50: f64,
    proxy_p50: f64,
    added_p50: f64,
    direct_p99: f64,
    proxy_p99: f64,
    added_p99: f64,
    /// Daemon CPU per request less its idle background.
    cpu_less_idle: f64,
    /// Bare pass-through CPU per request in user space, and in the kernel.
    bare_user: f64,
    bare_system: f64,
    /// Daemon CPU per request in user space, and in the kernel.
    user: f64,
    system: f64,
    /// Thread parks per request, bare pass-through and daemon.
    bare_parks: f64,
    parks: f64,
}

impl Figures {
    /// A round's figures; every ratio and difference is taken within the round.
    fn of(round: &Round, idle_cpu_per_sec: Duration) -> Figures {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let per = |x: f64, n: u64| if n == 0 { 0.0 } else { x / n as f64 };
        let per_req = |cpu: Duration, n: u64| per(ms(cpu), n);
        let pct = |a: f64, b: f64| 100.0 * a / b.max(1e-9);
        let (d, b, p) = (&round.direct, &round.bare, &round.proxied);
        let idle = idle_cpu_per_sec.mul_f64(p.elapsed.as_secs_f64());
        Figures {
            direct_rps: d.rps,
            bare_rps: b.rps,
            proxy_rps: p.rps,
            bare_pct: pct(b.rps, d.rps),
            proxy_pct: pct(p.rps, d.rps),
            proxy_bare_pct: pct(p.rps, b.rps),
            direct_p50: ms(d.latency.p50),
            proxy_p50: ms(p.latency.p50),
            added_p50: ms(p.latency.p50) - ms(d.latency.p50),
            direct_p99: ms(d.latency.p99),
            proxy_p99: ms(p.latency.p99),
            added_p99: ms(p.latency.p99) - ms(d.latency.p99),
            cpu_less_idle: per_req(round.daemon_cpu.total().saturating_sub(idle), p.requests),
            bare_user: per_req(round.bare_cpu.user, b.requests),
            bare_system: per_req(round.bare_cpu.system, b.requests),
            user: per_req(round.daemon_cpu.user, p.requests),
            system: per_req(round.daemon_cpu.system, p.requests),
            bare_parks: per(round.bare_cpu.parks as f64, b.requests),
            parks: per(round.daemon_cpu.parks as f64, p.requests),
        }
    }
}

/// The median over a level's rounds of one figure.
fn med(figs: &[Figures], f: fn(&Figures) -> f64) -> f64 {
    median(figs.iter().map(f))
}

/// The median of `values` (the mean of the two middle ones for an even count; 0 for none).
fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The tables of the report. With several rounds per level every cell is the median round's
/// figure, and each ratio is followed by its range over the rounds.
pub fn render(r: &ProxyReport) -> String {
    let rounds = r.rows.first().map_or(1, |row| row.rounds.len());
    let of_rounds = if rounds > 1 {
        format!("; median of {rounds} rounds, ratios with their (min–max) over the rounds")
    } else {
        String::new()
    };
    let mut out = format!(
        "bench proxy: small streamed responses, direct to the simulator, through a bare pass-through \
         (the floor: same libraries, no pool) and through codex-rotor ({} accounts in {}{of_rounds})\n\
         | c  | direct req/s | bare req/s | proxy req/s | bare/direct | proxy/direct | proxy/bare |\n\
         |----|-------------:|-----------:|------------:|------------:|-------------:|-----------:|\n",
        r.accounts, r.store
    );
    let figures: Vec<Vec<Figures>> = r
        .rows
        .iter()
        .map(|row| {
            row.rounds
                .iter()
                .map(|round| Figures::of(round, r.idle_cpu_per_sec))
                .collect()
        })
        .collect();
    for (row, figs) in r.rows.iter().zip(&figures) {
        let m = |f| med(figs, f);
        let ratio = |f: fn(&Figures) -> f64| {
            let cell = format!("{:.0}%", m(f));
            if figs.len() < 2 {
                return cell;
            }
            let lo = figs.iter().map(f).fold(f64::INFINITY, f64::min);
            let hi = figs.iter().map(f).fold(f64::NEG_INFINITY, f64::max);
            format!("{cell} ({lo:.0}–{hi:.0}%)")
        };
        out.push_str(&format!(
            "| {:<2} | {:>12.0} | {:>10.0} | {:>11.0} | {:>11} | {:>12} | {:>10} |\n",
            row.concurrency,
            m(|f| f.direct_rps),
            m(|f| f.bare_rps),
            m(|f| f.proxy_rps),
            ratio(|f| f.bare_pct),
            ratio(|f| f.proxy_pct),
            ratio(|f| f.proxy_bare_pct),
        ));
    }
    out.push_str(
        "\n| c  | direct p50 | proxy p50 | added p50 | direct p99 | proxy p99 | added p99 | bare CPU/req | CPU/request | CPU/req − idle |\n\
         |----|-----------:|----------:|----------:|-----------:|----------:|----------:|-------------:|------------:|---------------:|\n",
    );
    for (row, figs) in r.rows.iter().zip(&figures) {
        let m = |f| med(figs, f);
        out.push_str(&format!(
            "| {:<2} | {:>8.3}ms | {:>7.3}ms | {:>7.3}ms | {:>8.3}ms | {:>7.3}ms | {:>7.3}ms | {:>10.3}ms | {:>9.3}ms | {:>12.3}ms |\n",
            row.concurrency,
            m(|f| f.direct_p50),
            m(|f| f.proxy_p50),
            m(|f| f.added_p50),
            m(|f| f.direct_p99),
            m(|f| f.proxy_p99),
            m(|f| f.added_p99),
            m(|f| f.bare_user + f.bare_system),
            m(|f| f.user + f.system),
            m(|f| f.cpu_less_idle),
        ));
        for (n, round) in row.rounds.iter().enumerate() {
            for (what, run) in [("bare", &round.bare), ("proxied", &round.proxied)] {
                if run.errors + run.incomplete > 0 || run.ok != run.requests {
                    out.push_str(&format!(
                        "     ({what}, round {}: {} errors, {} incomplete, statuses {:?})\n",
                        n + 1,
                        run.errors,
                        run.incomplete,
                        run.statuses
                    ));
                }
            }
        }
    }
    out.push_str(
        "\nwhere the CPU goes, per request (user space / kernel, from /proc/<pid>/stat; parks: \
         a thread going to sleep until woken, from voluntary context switches):\n\
         | c  | bare user | bare kernel | proxy user | proxy kernel | bare parks | proxy parks |\n\
         |----|----------:|------------:|-----------:|-------------:|-----------:|------------:|\n",
    );
    for (row, figs) in r.rows.iter().zip(&figures) {
        let m = |f| med(figs, f);
        out.push_str(&format!(
            "| {:<2} | {:>7.3}ms | {:>9.3}ms | {:>8.3}ms | {:>10.3}ms | {:>10.2} | {:>11.2} |\n",
            row.concurrency,
            m(|f| f.bare_user),
            m(|f| f.bare_system),
            m(|f| f.user),
            m(|f| f.system),
            m(|f| f.bare_parks),
            m(|f| f.parks),
        ));
    }
    out.push_str(&format!(
        "daemon RSS: {:.1} MiB after loading the accounts ({:.1} MiB allocated), peak {:.1} MiB \
         ({:.1} MiB allocated at the end); idle CPU {:.1} ms/s; bare pass-through peak RSS {:.1} MiB\n",
        r.idle_rss as f64 / 1048576.0,
        r.idle_anon as f64 / 1048576.0,
        r.peak_rss as f64 / 1048576.0,
        r.end_anon as f64 / 1048576.0,
        r.idle_cpu_per_sec.as_secs_f64() * 1000.0,
        r.bare_peak_rss as f64 / 1048576.0,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bench measures the pass-through of a Codex body: the daemon must forward it as the
    /// same bytes, or the figures are of the rewrite path instead.
    #[test]
    fn the_bench_body_passes_through_as_the_same_bytes() {
        use codex_rotor::internals::shape;
        let body = bytes::Bytes::from(codex_body());
        let look = shape::look(&body).expect("look");
        let (sent, _) = shape::for_upstream(&body, &look, None).expect("shaped");
        assert_eq!(sent.as_ptr(), body.as_ptr(), "rewritten: {sent:?}");
    }

    fn run(rps: f64, requests: u64, p50_ms: u64, p99_ms: u64) -> LoadReport {
        LoadReport {
            requests,
            ok: requests,
            rps,
            elapsed: Duration::from_secs(5),
            latency: crate::loadgen::Percentiles {
                p50: Duration::from_millis(p50_ms),
                p99: Duration::from_millis(p99_ms),
                ..Default::default()
            },
            ..LoadReport::default()
        }
    }

    fn round(proxy_rps: f64, proxy_p50_ms: u64, daemon_cpu_ms: u64) -> Round {
        Round {
            direct: run(1000.0, 5000, 1, 2),
            bare: run(600.0, 3000, 2, 4),
            proxied: run(proxy_rps, 1000, proxy_p50_ms, 9),
            bare_cpu: Cpu {
                user: Duration::from_millis(180),
                system: Duration::from_millis(120),
                parks: 6000,
            },
            daemon_cpu: Cpu {
                user: Duration::from_millis(daemon_cpu_ms * 3 / 4),
                system: Duration::from_millis(daemon_cpu_ms / 4),
                parks: daemon_cpu_ms * 15,
            },
        }
    }

    fn report(rounds: Vec<Round>) -> ProxyReport {
        ProxyReport {
            rows: vec![Row {
                concurrency: 16,
                rounds,
            }],
            peak_rss: 30 << 20,
            idle_rss: 20 << 20,
            idle_anon: 6 << 20,
            end_anon: 9 << 20,
            bare_peak_rss: 16 << 20,
            accounts: 1000,
            idle_cpu_per_sec: Duration::ZERO,
            store: "files",
        }
    }

    /// The cells of the c=16 row of the throughput table (`ms` false) or the latency table.
    fn cells(text: &str, ms: bool) -> Vec<&str> {
        let mark = if ms { "ms" } else { "%" };
        let row = text
            .lines()
            .find(|l| l.starts_with("| 16 ") && l.contains(mark))
            .unwrap_or_else(|| panic!("no c=16 row with {mark}:\n{text}"));
        row.split('|').map(str::trim).collect()
    }

    #[test]
    fn median_takes_the_middle_or_the_mean_of_the_two_middles() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median([7.0]), 7.0);
        assert_eq!(median(std::iter::empty()), 0.0);
    }

    #[test]
    fn several_rounds_show_the_median_round_and_each_ratio_s_spread() {
        // proxy ÷ direct is 30 %, 50 % and 40 % in the three rounds.
        let text = render(&report(vec![
            round(300.0, 2, 100),
            round(500.0, 4, 300),
            round(400.0, 3, 200),
        ]));
        assert!(text.contains("median of 3 rounds"), "{text}");
        let row = cells(&text, false);
        assert_eq!(row[2], "1000");
        assert_eq!(row[4], "400");
        assert_eq!(row[5], "60% (60–60%)");
        assert_eq!(row[6], "40% (30–50%)");
        assert_eq!(row[7], "67% (50–83%)");
        let lat = cells(&text, true);
        // Added p50: 1, 3 and 2 ms over the direct 1 ms; the median round adds 2 ms.
        assert_eq!(lat[4], "2.000ms");
        // Daemon CPU per request: 0.1, 0.3 and 0.2 ms.
        assert_eq!(lat[9], "0.200ms");
        // The split: the daemon spent three quarters in user space, the bare pass-through 60 %.
        let split = text
            .lines()
            .filter(|l| l.starts_with("| 16 ") && l.contains("ms"))
            .nth(1)
            .unwrap_or_else(|| panic!("no CPU split row:\n{text}"));
        let split: Vec<&str> = split.split('|').map(str::trim).collect();
        assert_eq!(split[2..6], ["0.060ms", "0.040ms", "0.150ms", "0.050ms"]);
        // Parks per request: the bare pass-through's 6 000 over 3 000 requests; the daemon's
        // 1 500, 4 500 and 3 000 over 1 000 requests each, of which 3 is the median.
        assert_eq!(split[6..8], ["2.00", "3.00"]);
    }

    #[test]
    fn one_round_prints_plain_figures_and_a_failed_round_is_named() {
        let mut bad = round(400.0, 3, 200);
        bad.proxied.errors = 2;
        let text = render(&report(vec![bad]));
        assert!(!text.contains("rounds"), "{text}");
        let row = cells(&text, false);
        assert_eq!(row[6], "40%", "{row:?}");
        assert_eq!(row[7], "67%", "plain figures, no ranges: {row:?}");
        assert!(
            text.contains("(proxied, round 1: 2 errors, 0 incomplete"),
            "{text}"
        );
    }
}
