//! `[keys]` and `[admin]`: who may use the pool and who may administer it. Secrets are named
//! here, not stored: each key comes from an environment variable (`key_env`) or a file
//! (`key_file`, e.g. a systemd credential). A literal `key` exists for programmatic configs
//! (tests, `codex-rotor demo`) and environment overrides; in a config file it is rejected.

use super::secret::Secret;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Looks up an environment variable; injected so tests need not mutate the process env.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The client keys. None configured = an open pool, allowed only on a loopback address.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// One entry per client (`[[keys.keys]]`).
    pub keys: Vec<ClientKeyConfig>,
}

/// One client key and its limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientKeyConfig {
    /// Name shown in logs, metrics and the recent-requests list (the key itself never is).
    pub name: String,
    /// The key itself; only for programmatic configs and env overrides (see module docs).
    pub key: Option<Secret>,
    /// Environment variable holding the key.
    pub key_env: Option<String>,
    /// File holding the key (surrounding whitespace trimmed).
    pub key_file: Option<PathBuf>,
    /// Requests per minute (token bucket, bursts up to this many). Absent = unlimited.
    pub rpm: Option<u32>,
    /// Requests in flight at once. Absent = unlimited.
    pub max_concurrent: Option<u32>,
    /// Models this key may request (globs; `["*"]` = all). Checked against the requested name.
    pub models: Vec<String>,
    /// A disabled key is refused with 403 but keeps its entry (and its name in history).
    pub enabled: bool,
}

impl Default for ClientKeyConfig {
    fn default() -> Self {
        ClientKeyConfig {
            name: String::new(),
            key: None,
            key_env: None,
            key_file: None,
            rpm: None,
            max_concurrent: None,
            models: vec!["*".into()],
            enabled: true,
        }
    }
}

/// The admin API and dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serve `/admin` and the dashboard at all.
    pub enabled: bool,
    /// The admin key itself; only for programmatic configs and env overrides.
    pub key: Option<Secret>,
    /// Environment variable holding the admin key.
    pub key_env: Option<String>,
    /// File holding the admin key.
    pub key_file: Option<PathBuf>,
    /// Lifetime of a dashboard login (cookie session).
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Capacity of the recent-requests ring buffer shown by the admin API.
    pub recent_requests: usize,
    /// Failed admin authentications (a wrong admin key at `/admin` or the dashboard's `/login`)
    /// one client address may make in a row before it is answered 429: the bucket that stops
    /// someone guessing the key, sized so an operator's typos never reach it.
    pub auth_failure_burst: u32,
    /// The bucket regains one failed attempt per this interval.
    #[serde(with = "humantime_serde")]
    pub auth_failure_refill: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            key: None,
            key_env: None,
            key_file: None,
            session_ttl: Duration::from_secs(12 * 3600),
            recent_requests: 1000,
            auth_failure_burst: 10,
            auth_failure_refill: Duration::from_secs(6),
        }
    }
}

/// Reads a secret named by `key` / `key_env` / `key_file` (at most one may be set).
/// `Ok(None)` when none is set; `Err` says what is wrong, without the secret.
pub fn resolve_secret(
    key: &Option<Secret>,
    key_env: &Option<String>,
    key_file: &Option<PathBuf>,
    env: EnvLookup<'_>,
) -> Result<Option<Secret>, String> {
    let set = [key.is_some(), key_env.is_some(), key_file.is_some()];
    if set.iter().filter(|s| **s).count() > 1 {
        return Err("set only one of key, key_env, key_file".into());
    }
    if let Some(k) = key {
        return non_empty(k.expose().trim(), "key is empty").map(Some);
    }
    if let Some(var) = key_env {
        let value = env(var).ok_or_else(|| format!("environment variable {var} is not set"))?;
        return non_empty(
            value.trim(),
            &format!("environment variable {var} is empty"),
        )
        .map(Some);
    }
    if let Some(path) = key_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        return non_empty(text.trim(), &format!("{} is empty", path.display())).map(Some);
    }
    Ok(None)
}

fn non_empty(value: &str, why: &str) -> Result<Secret, String> {
    if value.is_empty() {
        Err(why.to_owned())
    } else {
        Ok(Secret::from(value))
    }
}

impl ClientKeyConfig {
    /// This key's secret, read from wherever the config names it.
    pub fn resolve(&self, env: EnvLookup<'_>) -> Result<Secret, String> {
        resolve_secret(&self.key, &self.key_env, &self.key_file, env)?
            .ok_or_else(|| "one of key_env, key_file (or key) is required".to_owned())
    }
}

impl AdminConfig {
    /// The admin key if one is configured.
    pub fn resolve(&self, env: EnvLookup<'_>) -> Result<Option<Secret>, String> {
        resolve_secret(&self.key, &self.key_env, &self.key_file, env)
    }
}

/// The real process environment, for production callers of the `*_in(env)` functions.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}
