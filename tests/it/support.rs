//! Shared helpers of the integration tests: start the simulator and the daemon in-process on
//! 127.0.0.1:0 (real sockets, real HTTP), create N simulated accounts and import them the way
//! an operator would (their `auth.json` through the accounts importer), and talk to the daemon
//! with a plain HTTP client. Other areas may add functions at the end of this file.

#![allow(dead_code)]

use codex_rotor::AppState;
use codex_rotor::config::secret::Secret;
use codex_rotor::config::{ClientKeyConfig, Config};
use codex_rotor::server::{Daemon, start};
use codex_rotor::sim::{AccountSpec, SimHandle, SimOptions, Simulator};
use codex_rotor::store::FileStore;
use rotor_actors::{AccountView, Store};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The pool key every test daemon accepts.
pub const POOL_KEY: &str = "test-pool-key-0123456789";
/// The admin key every test daemon accepts.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789";
/// The secret every cluster node of the tests signs forwarded requests with (base64 of 42
/// bytes; a test value).
pub const CLUSTER_SECRET: &str = "Y2x1c3Rlci1jaGFvcy1mb3J3YXJkaW5nLXNlY3JldC0wMTIzNDU2Nzg5";

/// Simulator + daemon + accounts, torn down on [`TestEnv::shutdown`] (or dropped with the test).
pub struct TestEnv {
    /// The simulator (fault injection, counters).
    pub sim: SimHandle,
    /// The daemon's address.
    pub addr: SocketAddr,
    /// The daemon's shared state (pool handle for assertions).
    pub state: AppState,
    /// Simulator ids of the accounts, in creation order.
    pub sim_ids: Vec<String>,
    /// HTTP client (no proxy, no retries).
    pub http: reqwest::Client,
    daemon: Option<Daemon>,
    _dir: tempfile::TempDir,
}

/// Loopback address with a free port.
pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A daemon configuration pointed at `sim`, with [`POOL_KEY`] and [`ADMIN_KEY`].
pub fn test_config(sim: &SimHandle, data_dir: &std::path::Path) -> Config {
    let mut cfg = Config::default();
    cfg.server.listen = loopback();
    cfg.data_dir = data_dir.to_path_buf();
    cfg.upstream.base_url = sim.backend_url();
    cfg.upstream.token_url = sim.token_url();
    cfg.keys.keys = vec![ClientKeyConfig {
        name: "test".into(),
        key: Some(Secret::new(POOL_KEY.to_owned())),
        ..ClientKeyConfig::default()
    }];
    cfg.admin.key = Some(Secret::new(ADMIN_KEY.to_owned()));
    cfg
}

/// Simulator with default options, `n` accounts, default daemon config.
pub async fn start_env(n: usize) -> TestEnv {
    start_env_with(SimOptions::default(), n, |_, _| {}).await
}

/// Simulator with `opts`, `n` accounts, and a daemon config adjusted by `tweak` (which sees
/// the running simulator, e.g. to put a [`TcpTap`] in front of it).
pub async fn start_env_with(
    opts: SimOptions,
    n: usize,
    tweak: impl FnOnce(&mut Config, &SimHandle),
) -> TestEnv {
    let sim = Simulator::start(opts, loopback())
        .await
        .expect("simulator starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, _, _) = FileStore::open(dir.path()).expect("store opens");
    let mut records = Vec::new();
    let mut sim_ids = Vec::new();
    for _ in 0..n {
        let created = sim.create_account(AccountSpec::default());
        let recs =
            codex_rotor::demo::import_auth_json(&created.auth_json).expect("auth.json imports");
        for rec in recs {
            store.save(&rec).expect("record saved");
            records.push(rec);
        }
        sim_ids.push(created.id);
    }
    let mut cfg = test_config(&sim, dir.path());
    tweak(&mut cfg, &sim);
    let daemon = start(cfg, Arc::new(store), records)
        .await
        .expect("daemon starts");
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    TestEnv {
        sim,
        addr: daemon.addr,
        state: daemon.state.clone(),
        sim_ids,
        http,
        daemon: Some(daemon),
        _dir: dir,
    }
}

/// A minimal Responses request body.
pub fn responses_body(stream: bool) -> Value {
    json!({"model": "gpt-5.5", "stream": stream, "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}]})
}

impl TestEnv {
    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `POST /v1/responses` with the pool key.
    pub async fn responses(&self, body: &Value) -> reqwest::Response {
        self.responses_with(body, &[]).await
    }

    /// `POST /v1/responses` with the pool key and extra headers.
    pub async fn responses_with(
        &self,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url("/v1/responses"))
            .bearer_auth(POOL_KEY)
            .json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("daemon answers")
    }

    /// Every account as the pool sees it.
    pub async fn views(&self) -> Vec<AccountView> {
        self.state.pool().accounts().await
    }

    /// The pool's view of the account the simulator calls `sim_id`.
    pub async fn view_of(&self, sim_id: &str) -> AccountView {
        self.views()
            .await
            .into_iter()
            .find(|v| v.identity.chatgpt_account_id.as_deref() == Some(sim_id))
            .expect("account imported")
    }

    /// The simulator id of a pool account id.
    pub async fn sim_id_of(&self, account_id: &str) -> String {
        let v = self
            .state
            .pool()
            .account(account_id)
            .await
            .expect("account exists");
        v.identity
            .chatgpt_account_id
            .expect("sim accounts carry their workspace id")
    }

    /// Total responses requests the simulator received.
    pub fn upstream_requests(&self) -> u64 {
        self.sim_ids
            .iter()
            .map(|id| self.sim.counters(id).requests)
            .sum()
    }

    /// Polls `check` every 20 ms for up to 5 s; panics with `what` if it never holds.
    pub async fn eventually<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..250 {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("condition never held: {what}");
    }

    /// The daemon's latest recorded request (the recent-requests ring).
    pub fn last_record(&self) -> codex_rotor::RequestRecord {
        self.state
            .recent()
            .list(1)
            .into_iter()
            .next()
            .expect("a request was recorded")
    }

    /// Ordered shutdown of daemon and simulator.
    pub async fn shutdown(mut self) {
        if let Some(d) = self.daemon.take() {
            d.shutdown().await;
        }
        self.sim.clone().shutdown().await;
    }

    /// Restarts the daemon as an operator would: ordered shutdown (every account flushes its
    /// file), then a new daemon with the same configuration over the records read back from
    /// the data directory. The simulator keeps running.
    pub async fn restart(&mut self) {
        let cfg = (*self.state.config()).clone();
        self.take_daemon().shutdown().await;
        let (store, records, _) = FileStore::open(&cfg.data_dir).expect("store reopens");
        let daemon = start(cfg, Arc::new(store), records)
            .await
            .expect("daemon restarts");
        self.addr = daemon.addr;
        self.state = daemon.state.clone();
        self.daemon = Some(daemon);
    }

    /// Takes the daemon out (for shutdown tests that drive it themselves).
    pub fn take_daemon(&mut self) -> Daemon {
        self.daemon.take().expect("daemon still running")
    }
}

/// Reads an SSE body to the end and returns the JSON `type` of every `data:` event.
pub fn event_types(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|frame| frame.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// A TCP relay between the daemon and the simulator that counts connections and sees them
/// close: how a test proves that the daemon cancelled an upstream request (the connection is
/// closed long before the simulator finished writing).
#[derive(Clone)]
pub struct TcpTap {
    /// Where the daemon connects.
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub opened: Arc<std::sync::atomic::AtomicU64>,
    /// Connections whose daemon side has closed.
    pub closed: Arc<std::sync::atomic::AtomicU64>,
}

impl TcpTap {
    /// Starts relaying to `target` (must be called inside a tokio runtime).
    pub fn start(target: SocketAddr) -> TcpTap {
        use std::sync::atomic::Ordering;
        let std_listener = std::net::TcpListener::bind(loopback()).expect("tap binds");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("tap addr");
        let listener = tokio::net::TcpListener::from_std(std_listener).expect("tap listener");
        let tap = TcpTap {
            addr,
            opened: Default::default(),
            closed: Default::default(),
        };
        let t = tap.clone();
        tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                t.opened.fetch_add(1, Ordering::SeqCst);
                let closed = t.closed.clone();
                tokio::spawn(async move {
                    let Ok(mut up) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut dr, mut dw) = down.split();
                    let (mut ur, mut uw) = up.split();
                    // The daemon closing its side ends the relay; upstream data alone does not.
                    let daemon_side = tokio::io::copy(&mut dr, &mut uw);
                    let upstream_side = async {
                        let _ = tokio::io::copy(&mut ur, &mut dw).await;
                        std::future::pending::<()>().await
                    };
                    tokio::select! {
                        _ = daemon_side => {}
                        _ = upstream_side => {}
                    }
                    closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        tap
    }

    /// Connections opened minus connections the daemon closed.
    pub fn open_now(&self) -> u64 {
        use std::sync::atomic::Ordering;
        self.opened.load(Ordering::SeqCst) - self.closed.load(Ordering::SeqCst)
    }
}
