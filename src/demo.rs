//! `codex-rotor demo`: the README's first command. Runs the simulator of the Codex backend
//! in-process, creates N simulated accounts, imports their `auth.json` the way an operator
//! would, serves the daemon in front of them, and prints the pool key with copy-paste setup
//! for Codex CLI, Claude Code and curl ([`setup`]). No real account, no network beyond
//! 127.0.0.1 for the simulator, nothing to configure. Its data directory — a private temporary
//! one unless `--data-dir` names one — is handled by [`data`]: removed at the end when it is
//! the demo's own, earlier demo accounts replaced when it is not.

pub mod data;
pub mod setup;

pub use setup::instructions;

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
    /// The Codex home the demo wrote for Codex CLI (inside the data directory).
    pub codex_home: PathBuf,
    /// Accounts of an earlier demo on the same data directory that this one replaced.
    pub replaced: usize,
    /// The temporary data directory the demo made, removed when the demo is dropped.
    owned_dir: Option<data::OwnedDir>,
    /// The data directory's lock, as `serve` holds it: a second demo, a `serve` or the offline
    /// `accounts` CLI on the same directory is refused while this demo runs.
    _lock: crate::store::DataDirLock,
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
    // The pool flushes every account file before the data directory may go.
    demo.daemon.shutdown().await;
    demo.sim.shutdown().await;
    drop(demo.owned_dir);
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
    let (data_dir, owned_dir) = match args.data_dir {
        Some(dir) => (dir, None),
        None => {
            let dir = data::OwnedDir::create(&random_hex())?;
            (dir.path().to_path_buf(), Some(dir))
        }
    };
    let lock = crate::store::DataDirLock::acquire(&data_dir, "demo")
        .context("cannot run the demo on this data directory")?;
    let (store, earlier, _) =
        FileStore::open(&data_dir).with_context(|| format!("opening {}", data_dir.display()))?;
    let replaced = data::forget_earlier(&store, earlier, &data_dir)?;
    let mut opts = SimOptions::default();
    if let Some(t) = args.sim_quota_tokens {
        opts.primary_quota_tokens = t;
    }
    let sim = Simulator::start(opts, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("starting the simulator")?;
    let mut records = Vec::new();
    for _ in 0..args.accounts {
        let created = sim.create_account(AccountSpec::default());
        for mut rec in import_auth_json(&created.auth_json)? {
            rec.identity.label = Some(data::DEMO_LABEL.to_owned());
            store.save(&rec).context("saving an imported account")?;
            records.push(rec);
        }
    }
    let cfg = config(&sim, args.listen, &pool_key, &admin_key, &data_dir);
    let daemon = start(cfg, Arc::new(store), records).await?;
    let addr = daemon.addr.to_string();
    lock.describe(
        &format!(
            "codex-rotor demo (pid {}, listening on {addr})",
            std::process::id()
        ),
        Some(&addr),
    );
    let codex_home = setup::codex_home(&data_dir);
    setup::write_codex_home(&codex_home, daemon.addr)
        .with_context(|| format!("writing the demo's Codex home {}", codex_home.display()))?;
    Ok(Demo {
        sim,
        daemon,
        pool_key,
        admin_key,
        data_dir,
        codex_home,
        replaced,
        owned_dir,
        _lock: lock,
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
