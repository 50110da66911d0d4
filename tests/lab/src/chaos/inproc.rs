//! The daemon in-process, for the scenarios that need no SIGKILL (quota efficiency, Cloudflare
//! challenges): a fresh data dir, K simulator accounts imported the way an operator would
//! (their `auth.json`), one client key, the daemon bound on 127.0.0.1:0. One place for that
//! setup, so the scenarios differ only in their load and their figures.

use codex_rotor::config::secret::Secret;
use codex_rotor::config::{ClientKeyConfig, Config};
use codex_rotor::server::Daemon;
use codex_rotor::sim::{AccountSpec, SimHandle};
use codex_rotor::store::FileStore;
use rotor_actors::Store;
use std::path::PathBuf;
use std::sync::Arc;

/// A daemon started by [`start`], with what the scenario needs to drive and inspect it.
pub struct InProcess {
    /// The running daemon (its address, and its pool for sampling).
    pub daemon: Daemon,
    /// Simulator ids of the accounts, in creation order (for per-account counters).
    pub ids: Vec<String>,
    /// The client key the daemon accepts.
    pub key: &'static str,
    /// The data dir, removed by [`InProcess::stop`].
    dir: PathBuf,
}

/// Creates one simulator account per spec, imports them into a fresh data dir named after
/// `scenario`, and starts the daemon on them with `tweak` applied to its config.
pub async fn start(
    sim: &SimHandle,
    scenario: &str,
    specs: impl IntoIterator<Item = AccountSpec>,
    tweak: impl FnOnce(&mut Config),
) -> anyhow::Result<InProcess> {
    let dir = std::env::temp_dir().join(format!(
        "codex-rotor-{scenario}-{}-{}",
        std::process::id(),
        super::run::now_ms()
    ));
    let (store, _, _) = FileStore::open(&dir)?;
    let (mut records, mut ids) = (Vec::new(), Vec::new());
    for spec in specs {
        let created = sim.create_account(spec);
        for rec in codex_rotor::demo::import_auth_json(&created.auth_json)? {
            store.save(&rec)?;
            records.push(rec);
        }
        ids.push(created.id);
    }
    let key = "scenario-pool-key-0123456789";
    let mut cfg = Config::default();
    cfg.server.listen = ([127, 0, 0, 1], 0).into();
    cfg.data_dir = dir.clone();
    cfg.upstream.base_url = sim.backend_url();
    cfg.upstream.token_url = sim.token_url();
    cfg.keys.keys = vec![ClientKeyConfig {
        name: scenario.into(),
        key: Some(Secret::new(key.to_owned())),
        ..ClientKeyConfig::default()
    }];
    tweak(&mut cfg);
    let daemon = codex_rotor::server::start(cfg, Arc::new(store), records).await?;
    Ok(InProcess {
        daemon,
        ids,
        key,
        dir,
    })
}

impl InProcess {
    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.daemon.addr)
    }

    /// Ordered shutdown of the daemon, then the data dir is removed.
    pub async fn stop(self) {
        self.daemon.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
