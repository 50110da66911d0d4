//! `codex-rotor demo`: the README's first command. Runs the simulator of the Codex backend
//! in-process, creates N simulated accounts, imports their `auth.json` the way an operator
//! would, serves the daemon in front of them, and prints the pool key with copy-paste setup
//! for Codex CLI, Claude Code and curl. No real account, no network beyond 127.0.0.1 for the
//! simulator, nothing to configure.

use crate::config::secret::Secret;
use crate::config::{ClientKeyConfig, Config};
use crate::server::{Daemon, start};
use crate::sim::{AccountSpec, SimHandle, SimOptions, Simulator};
use crate::store::FileStore;
use anyhow::Context;
use rotor_actors::{AccountRecord, Store};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `codex-rotor demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Address the daemon listens on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// How many simulated accounts to create and import.
    #[arg(long, default_value_t = 8)]
    pub accounts: usize,
    /// Pool API key clients use (generated when absent).
    #[arg(long, value_name = "KEY")]
    pub pool_key: Option<String>,
    /// Admin API key (generated when absent).
    #[arg(long, value_name = "KEY")]
    pub admin_key: Option<String>,
    /// Where account files go (a fresh temporary directory when absent).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Tokens each simulated account may use per 5-hour window (small = see rotation quickly).
    #[arg(long, value_name = "N")]
    pub sim_quota_tokens: Option<u64>,
}

/// A running demo: simulator + daemon.
pub struct Demo {
    /// The simulator.
    pub sim: SimHandle,
    /// The daemon.
    pub daemon: Daemon,
    /// Pool key clients use.
    pub pool_key: String,
    /// Admin key.
    pub admin_key: String,
    /// Data directory in use.
    pub data_dir: PathBuf,
}

/// Runs the demo until Ctrl-C / SIGTERM. With nobody reading its stdout (the instructions,
/// pool key included, would be lost) it stops at once.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let signals = crate::signals::Signals::install().context("installing signal handlers")?;
    let demo = launch(args).await?;
    let printed = crate::out!("{}", instructions(&demo));
    if printed.is_ok() {
        signals.shutdown_requested().await;
        let _ = crate::outln!("\nstopping…");
    }
    demo.daemon.shutdown().await;
    demo.sim.shutdown().await;
    Ok(printed?)
}

/// Starts simulator and daemon; used by `run` and by tests.
pub async fn launch(args: DemoArgs) -> anyhow::Result<Demo> {
    let pool_key = args
        .pool_key
        .unwrap_or_else(|| format!("rotor-{}", random_hex()));
    let admin_key = args
        .admin_key
        .unwrap_or_else(|| format!("admin-{}", random_hex()));
    let data_dir = args
        .data_dir
        .unwrap_or_else(|| std::env::temp_dir().join(format!("codex-rotor-demo-{}", random_hex())));
    let mut opts = SimOptions::default();
    if let Some(t) = args.sim_quota_tokens {
        opts.primary_quota_tokens = t;
    }
    let sim = Simulator::start(opts, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("starting the simulator")?;
    let (store, mut records, _) =
        FileStore::open(&data_dir).with_context(|| format!("opening {}", data_dir.display()))?;
    for _ in 0..args.accounts {
        let created = sim.create_account(AccountSpec::default());
        for rec in import_auth_json(&created.auth_json)? {
            store.save(&rec).context("saving an imported account")?;
            records.push(rec);
        }
    }
    let cfg = config(&sim, args.listen, &pool_key, &admin_key, &data_dir);
    let daemon = start(cfg, Arc::new(store), records).await?;
    Ok(Demo {
        sim,
        daemon,
        pool_key,
        admin_key,
        data_dir,
    })
}

/// Imports one Codex CLI `auth.json` with the accounts importer (what `accounts import` does).
pub fn import_auth_json(auth_json: &serde_json::Value) -> anyhow::Result<Vec<AccountRecord>> {
    let bytes = serde_json::to_vec(auth_json)?;
    crate::accounts::parse_file(&bytes, now_ms()).context("importing a simulated auth.json")
}

/// The daemon's configuration for the demo: defaults pointed at the simulator, one pool key.
pub fn config(
    sim: &SimHandle,
    listen: SocketAddr,
    pool_key: &str,
    admin_key: &str,
    data_dir: &std::path::Path,
) -> Config {
    let mut cfg = Config::default();
    cfg.server.listen = listen;
    cfg.data_dir = data_dir.to_path_buf();
    cfg.upstream.base_url = sim.backend_url();
    cfg.upstream.token_url = sim.token_url();
    cfg.keys.keys = vec![ClientKeyConfig {
        name: "demo".into(),
        key: Some(Secret::new(pool_key.to_owned())),
        ..ClientKeyConfig::default()
    }];
    cfg.admin.key = Some(Secret::new(admin_key.to_owned()));
    cfg
}

/// What the operator reads after `demo` started.
pub fn instructions(d: &Demo) -> String {
    let addr = d.daemon.addr;
    let key = &d.pool_key;
    format!(
        r#"
codex-rotor demo is running
  daemon     http://{addr}   (in front of a simulated Codex backend at {sim})
  accounts   {n} simulated accounts, files in {dir}
  pool key   {key}
  admin key  {admin}
  dashboard  http://{addr}/   (admin key)

── curl ────────────────────────────────────────────────────────────────
curl -N http://{addr}/v1/responses \
  -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \
  -d '{{"model":"gpt-5.5","stream":true,"input":"Say hello"}}'
curl -s http://{addr}/admin/pool -H "Authorization: Bearer {admin}"

── Codex CLI (~/.codex/config.toml) ─────────────────────────────────────
model = "gpt-5.5"
model_provider = "rotor"
[model_providers.rotor]
name = "codex-rotor"
base_url = "http://{addr}/v1"
wire_api = "responses"
env_key = "ROTOR_API_KEY"

then:  export ROTOR_API_KEY={key}; codex exec "say hello"

── Claude Code ──────────────────────────────────────────────────────────
export ANTHROPIC_BASE_URL=http://{addr}
export ANTHROPIC_API_KEY={key}
claude -p "say hello"

Press Ctrl-C to stop.
"#,
        sim = d.sim.base_url(),
        n = d.sim.accounts().len(),
        dir = d.data_dir.display(),
        admin = d.admin_key,
    )
}

fn random_hex() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
