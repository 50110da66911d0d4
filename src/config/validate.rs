//! The checks behind `Config::validate`: each pushes a [`ConfigProblem`] naming its key and
//! carries on, so an operator sees every problem in one `config check`.

use super::access::EnvLookup;
use super::{Config, ConfigProblem, Secret};
use std::time::Duration;

/// Collects problems; small helpers keep each check to one line.
struct Checker(Vec<ConfigProblem>);

impl Checker {
    fn fail(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigProblem::new(key, message));
    }
    fn positive(&mut self, key: &str, value: u64) {
        if value == 0 {
            self.fail(key, "must be > 0");
        }
    }
    fn duration(&mut self, key: &str, value: Duration) {
        if value.is_zero() {
            self.fail(key, "must be longer than 0s");
        }
    }
    fn non_empty(&mut self, key: &str, value: &str) {
        if value.trim().is_empty() {
            self.fail(key, "must not be empty");
        }
    }
    fn url(&mut self, key: &str, value: &str) {
        if !(value.starts_with("http://") || value.starts_with("https://")) {
            self.fail(key, "must be an http:// or https:// URL");
        } else if value.ends_with('/') {
            self.fail(key, "must not end with '/'");
        }
    }
}

/// Every problem of `cfg`.
pub(super) fn all(cfg: &Config, env: EnvLookup<'_>) -> Vec<ConfigProblem> {
    let mut c = Checker(Vec::new());
    for key in &cfg.literal_secrets_in_file {
        c.fail(
            key.clone(),
            "a secret in the config file; use key_env or key_file instead",
        );
    }
    if cfg.data_dir.as_os_str().is_empty() {
        c.fail("data_dir", "must not be empty");
    }
    server(&mut c, cfg);
    let client_keys = keys(&mut c, cfg, env);
    admin(&mut c, cfg, env, &client_keys);
    pool(&mut c, cfg);
    upstream(&mut c, cfg);
    models(&mut c, cfg);
    limits(&mut c, cfg);
    store(&mut c, cfg, env);
    cluster(&mut c, cfg, env);
    c.0.extend(bind(cfg, env));
    c.0
}

fn server(c: &mut Checker, cfg: &Config) {
    let s = &cfg.server;
    let p = &s.path_prefix;
    if !p.is_empty() && (!p.starts_with('/') || p.ends_with('/') || p.contains(['?', '#', ' '])) {
        c.fail(
            "server.path_prefix",
            "must be empty or like \"/codex\" (leading '/', no trailing '/')",
        );
    }
    c.duration("server.sse_heartbeat", s.sse_heartbeat);
    c.duration("server.header_read_timeout", s.header_read_timeout);
    c.duration("server.keep_alive_timeout", s.keep_alive_timeout);
    c.positive("server.max_body_bytes", s.max_body_bytes as u64);
}

/// Checks the client keys; returns the secrets that resolved, by config index.
fn keys(c: &mut Checker, cfg: &Config, env: EnvLookup<'_>) -> Vec<(usize, Secret)> {
    let mut resolved: Vec<(usize, Secret)> = Vec::new();
    for (i, k) in cfg.keys.keys.iter().enumerate() {
        let at = |field: &str| format!("keys.keys[{i}].{field}");
        c.non_empty(&at("name"), &k.name);
        if let Some(j) = cfg.keys.keys[..i].iter().position(|o| o.name == k.name) {
            if !k.name.trim().is_empty() {
                c.fail(at("name"), format!("duplicate of keys.keys[{j}].name"));
            }
        }
        if k.rpm == Some(0) {
            c.fail(at("rpm"), "must be > 0 (omit it for no limit)");
        }
        if k.max_concurrent == Some(0) {
            c.fail(at("max_concurrent"), "must be > 0 (omit it for no limit)");
        }
        if k.models.is_empty() {
            c.fail(
                at("models"),
                "must list at least one model or glob (\"*\" = all)",
            );
        }
        for (m, pat) in k.models.iter().enumerate() {
            c.non_empty(&at(&format!("models[{m}]")), pat);
        }
        match k.resolve(env) {
            Ok(secret) => {
                if let Some((j, _)) = resolved
                    .iter()
                    .find(|(_, s)| s.ct_eq(secret.expose().as_bytes()))
                {
                    c.fail(
                        at("key"),
                        format!("same key as keys.keys[{j}]; every client needs its own"),
                    );
                }
                resolved.push((i, secret));
            }
            Err(message) => c.fail(
                source_key(&at(""), k.key_env.is_some(), k.key_file.is_some()),
                message,
            ),
        }
    }
    resolved
}

/// The field to blame for a secret that did not resolve.
fn source_key(prefix: &str, env: bool, file: bool) -> String {
    let field = match (env, file) {
        (true, false) => "key_env",
        (false, true) => "key_file",
        _ => "key",
    };
    format!("{prefix}{field}")
}

fn admin(c: &mut Checker, cfg: &Config, env: EnvLookup<'_>, client: &[(usize, Secret)]) {
    let a = &cfg.admin;
    match a.resolve(env) {
        Ok(Some(secret)) => {
            if let Some((j, _)) = client
                .iter()
                .find(|(_, s)| s.ct_eq(secret.expose().as_bytes()))
            {
                c.fail(
                    source_key("admin.", a.key_env.is_some(), a.key_file.is_some()),
                    format!("must differ from every client key (equals keys.keys[{j}])"),
                );
            }
        }
        Ok(None) => {}
        Err(message) => c.fail(
            source_key("admin.", a.key_env.is_some(), a.key_file.is_some()),
            message,
        ),
    }
    c.duration("admin.session_ttl", a.session_ttl);
    c.positive("admin.recent_requests", a.recent_requests as u64);
    c.positive("admin.auth_failure_burst", a.auth_failure_burst.into());
    c.duration("admin.auth_failure_refill", a.auth_failure_refill);
}

fn pool(c: &mut Checker, cfg: &Config) {
    let p = &cfg.pool;
    c.positive(
        "pool.max_leases_per_account",
        p.max_leases_per_account.into(),
    );
    c.duration("pool.tick", p.tick);
    c.duration("pool.default_429_backoff", p.default_429_backoff);
    for (prefix, plans) in &p.plan_routes {
        let key = format!("pool.plan_routes.\"{prefix}\"");
        if prefix.is_empty() {
            c.fail(key.clone(), "model prefix must not be empty");
        }
        if plans.is_empty() || plans.iter().any(|p| p.trim().is_empty()) {
            c.fail(key, "must list at least one plan, none empty");
        }
    }
    let r = &cfg.refresh;
    c.duration("refresh.margin", r.margin);
    c.positive("refresh.max_concurrent", r.max_concurrent as u64);
    c.positive("refresh.max_per_minute", r.max_per_minute.into());
    c.non_empty("refresh.client_id", &r.client_id);
    c.url("refresh.authorize_url", &r.authorize_url);
}

fn upstream(c: &mut Checker, cfg: &Config) {
    let u = &cfg.upstream;
    c.url("upstream.base_url", &u.base_url);
    c.url("upstream.token_url", &u.token_url);
    c.duration("upstream.connect_timeout", u.connect_timeout);
    c.duration("upstream.first_byte_timeout", u.first_byte_timeout);
    c.duration("upstream.request_deadline", u.request_deadline);
    c.duration("upstream.idle_timeout", u.idle_timeout);
    c.positive(
        "upstream.max_accounts_per_request",
        u.max_accounts_per_request.into(),
    );
    c.non_empty("upstream.user_agent", &u.user_agent);
    c.non_empty("upstream.originator", &u.originator);
}

fn models(c: &mut Checker, cfg: &Config) {
    let m = &cfg.models;
    c.non_empty("models.default_model", &m.default_model);
    for (from, to) in &m.aliases {
        if from.trim().is_empty() || to.trim().is_empty() {
            c.fail(
                format!("models.aliases.\"{from}\""),
                "alias and target must not be empty",
            );
        }
    }
    for (i, name) in m.list.iter().enumerate() {
        c.non_empty(&format!("models.list[{i}]"), name);
    }
}

fn limits(c: &mut Checker, cfg: &Config) {
    let l = &cfg.limits;
    c.positive(
        "limits.max_concurrent_requests",
        l.max_concurrent_requests as u64,
    );
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&cfg.logging.level) {
        c.fail("logging.level", format!("not a valid filter: {e}"));
    }
}

/// The listen-address rules (see `Config::validate_bind`).
pub(super) fn bind(cfg: &Config, env: EnvLookup<'_>) -> Vec<ConfigProblem> {
    let mut c = Checker(Vec::new());
    let addr = cfg.server.listen;
    if cfg.keys.keys.is_empty() && !addr.ip().is_loopback() {
        c.fail(
            "server.listen",
            format!("{addr} is not a loopback address and no client key is configured; add [[keys.keys]] or listen on 127.0.0.1"),
        );
    } else if cfg.keys.keys.is_empty() && !cfg.server.clients_are_local() {
        // Behind a reverse proxy a loopback listener says nothing about who the clients are:
        // an open pool would serve the accounts to whoever reaches the proxy.
        c.fail(
            "keys.keys",
            "a client key is required behind a reverse proxy (server.trust_forwarded_headers = \
             true: clients may be anywhere, whatever the listen address); add [[keys.keys]]",
        );
    }
    let a = &cfg.admin;
    if !cfg.server.clients_are_local() && a.enabled && !matches!(a.resolve(env), Ok(Some(_))) {
        let why = if addr.ip().is_loopback() {
            "behind a reverse proxy (server.trust_forwarded_headers = true: clients may be \
             anywhere, whatever the listen address)"
                .to_owned()
        } else {
            format!("when listening on {addr}")
        };
        c.fail(
            "admin.key_env",
            format!("an admin key is required {why} (or set admin.enabled = false)"),
        );
    }
    c.0
}

/// With `backend = "postgres"`: a connection string, and a store key that parses.
fn store(c: &mut Checker, cfg: &Config, env: EnvLookup<'_>) {
    let s = &cfg.store;
    if s.backend != super::Backend::Postgres {
        return;
    }
    if let Err((key, message)) = s.resolve_url(env) {
        c.fail(key, message);
    }
    match s.resolve_key(env) {
        Ok((key, source)) => {
            if let Err(message) = super::store::decode_key(key.expose(), &source) {
                let field = if s.key_file.is_some() {
                    "store.key_file"
                } else {
                    "store.key_env"
                };
                c.fail(field, message);
            }
        }
        Err((key, message)) => c.fail(key, message),
    }
}

/// With `[cluster] enabled = true`: the PostgreSQL store, a node id, an `advertise` URL peers
/// can reach, a secret that decodes to enough bytes, and lease timings that leave room to
/// renew (docs/cluster.md "The node's own view").
fn cluster(c: &mut Checker, cfg: &Config, env: EnvLookup<'_>) {
    let k = &cfg.cluster;
    if !k.enabled {
        return;
    }
    if cfg.store.backend != super::Backend::Postgres {
        c.fail(
            "cluster.enabled",
            "needs [store] backend = \"postgres\": the nodes share the pool through the database",
        );
    }
    let checks = [
        k.resolve_node_id().err(),
        k.resolve_advertise(cfg.server.listen).err(),
        k.resolve_secret(env).err(),
    ];
    for (key, message) in checks.into_iter().flatten() {
        c.fail(key, message);
    }
    c.duration("cluster.ttl", k.ttl);
    c.duration("cluster.claim_every", k.claim_every);
    c.duration("cluster.peer_head_timeout", k.peer_head_timeout);
    if k.margin >= k.ttl / 2 {
        c.fail(
            "cluster.margin",
            format!(
                "must be less than half of cluster.ttl ({}): a node renews every ttl/5 and \
                 must still hold its lease after the margin",
                humantime::format_duration(k.ttl)
            ),
        );
    }
    if k.claim_every > k.ttl {
        c.fail(
            "cluster.claim_every",
            format!(
                "must not exceed cluster.ttl ({}): a dead node's accounts wait for the next claim",
                humantime::format_duration(k.ttl)
            ),
        );
    }
}

/// Keys of the config holding a literal secret (`key = "…"`), right after parsing a file.
pub(super) fn literal_secrets(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if cfg.admin.key.is_some() {
        out.push("admin.key".to_owned());
    }
    for (i, k) in cfg.keys.keys.iter().enumerate() {
        if k.key.is_some() {
            out.push(format!("keys.keys[{i}].key"));
        }
    }
    out
}
