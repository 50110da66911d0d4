//! What a SIGHUP may change in a running daemon. Keys, the rotation strategy, limits, models,
//! upstream budgets and the admin key take effect at once (readers take `AppState::config()`
//! per request); a few settings are baked into the listener, the pool or the log subscriber at
//! start and need a restart — those are reported, so the operator is told instead of silently
//! ignored.

use super::{Config, Strategy};
use std::collections::BTreeMap;

/// Settings read once at start. A change to a key under one of these prefixes needs a restart.
pub const RESTART_REQUIRED: &[&str] = &[
    "data_dir",
    "server.listen",
    "server.path_prefix",
    "server.trust_forwarded_headers",
    "server.max_body_bytes",
    "server.header_read_timeout",
    "server.keep_alive_timeout",
    "admin.enabled",
    "admin.recent_requests",
    "pool.max_leases_per_account",
    "pool.tick",
    "pool.default_429_backoff",
    "pool.restart_budget",
    "pool.plan_routes",
    "refresh",
    "upstream.base_url",
    "upstream.token_url",
    "upstream.connect_timeout",
    "logging",
    "store",
];

/// The outcome of comparing the running config with a freshly loaded one.
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadPlan {
    /// The new rotation strategy, when it changed (`PoolHandle::set_strategy`).
    pub strategy: Option<Strategy>,
    /// Every changed key, dotted (secrets compare as `***`, so key rotation does not show:
    /// call `KeyStore::reload` on every reload regardless).
    pub changed: Vec<String>,
    /// Changed keys that only take effect after a restart (log them as warnings).
    pub needs_restart: Vec<String>,
}

impl ReloadPlan {
    /// Compares `old` (running) with `new` (just loaded and validated).
    pub fn between(old: &Config, new: &Config) -> ReloadPlan {
        let changed = diff(&flatten(old), &flatten(new));
        let needs_restart = changed
            .iter()
            .filter(|k| {
                RESTART_REQUIRED.iter().any(|p| {
                    k.as_str() == *p
                        || k.starts_with(&format!("{p}."))
                        || k.starts_with(&format!("{p}["))
                })
            })
            .cloned()
            .collect();
        ReloadPlan {
            strategy: (old.pool.strategy != new.pool.strategy).then_some(new.pool.strategy),
            changed,
            needs_restart,
        }
    }
}

fn flatten(cfg: &Config) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(table) = toml::Table::try_from(cfg) {
        walk(&toml::Value::Table(table), String::new(), &mut out);
    }
    out
}

fn walk(v: &toml::Value, key: String, out: &mut BTreeMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let sub = if key.is_empty() {
                    k.clone()
                } else {
                    format!("{key}.{k}")
                };
                walk(v, sub, out);
            }
        }
        toml::Value::Array(items)
            if items.is_empty() || items.iter().any(toml::Value::is_table) =>
        {
            for (i, v) in items.iter().enumerate() {
                walk(v, format!("{key}[{i}]"), out);
            }
            out.insert(format!("{key}.len"), items.len().to_string());
        }
        other => {
            out.insert(key, other.to_string());
        }
    }
}

fn diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let mut keys: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(b.keys().filter(|k| !a.contains_key(*k)).cloned())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_changes() {
        let old = Config::default();
        let mut new = Config::default();
        assert_eq!(
            ReloadPlan::between(&old, &new).changed,
            Vec::<String>::new()
        );
        new.pool.strategy = Strategy::RoundRobin;
        new.limits.max_concurrent_requests = 10;
        new.server.listen = "127.0.0.1:9999".parse().unwrap();
        new.keys.keys.push(crate::config::ClientKeyConfig {
            name: "n".into(),
            rpm: Some(5),
            ..Default::default()
        });
        new.refresh.margin = std::time::Duration::from_secs(1);
        let plan = ReloadPlan::between(&old, &new);
        assert_eq!(plan.strategy, Some(Strategy::RoundRobin));
        assert_eq!(
            plan.changed,
            vec![
                "keys.keys.len",
                "keys.keys[0].enabled",
                "keys.keys[0].models",
                "keys.keys[0].name",
                "keys.keys[0].rpm",
                "limits.max_concurrent_requests",
                "pool.strategy",
                "refresh.margin",
                "server.listen",
            ]
        );
        assert_eq!(plan.needs_restart, vec!["refresh.margin", "server.listen"]);
    }
}
