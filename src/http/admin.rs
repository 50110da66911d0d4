//! The admin API under `/admin`, behind its own admin key (`Authorization: Bearer ADMINKEY`,
//! compared in constant time; the client keys are never accepted here) or a dashboard session
//! cookie. Operators use it to see which account serves, which is locked, why and until when,
//! and to act on accounts. This file only wires routes and the auth layer; the handlers live in
//! `admin/accounts.rs` (per-account reads and actions), `admin/transfer.rs` (import/export),
//! `admin/pool.rs` (pool, strategy, recent requests, live feed, health), `admin/cluster.rs`
//! (the nodes and who owns what), and the JSON shapes in `admin/view.rs`.
//!
//! When clustered, every account answer (list, one, explain, probe, the live feed's rows)
//! carries `owner`: the id of the node that owns it, `null` when no live node does.
//!
//! | Method | Path | Answer |
//! |---|---|---|
//! | GET | `/admin/accounts` | `{count, accounts: [...]}`: each account's identity, `status`, `derived_status`, `quota`, `buckets` (name, title, `used_percent`, `limit_reached`, `window_secs`, `reset_at`, `resets_in_secs`, `resets_in`), `usage`, `leases`, `cooldown_until`, `holds` (kind, reason, until), `verify`, `last_error` — never a token |
//! | GET | `/admin/accounts/{id}` | one account, same shape |
//! | GET | `/admin/accounts/{id}/explain` | `{available, reasons, holds, until, until_in}` from the account actor |
//! | POST | `/admin/accounts/{id}/enable`, `/disable` | the account afterwards |
//! | POST | `/admin/accounts/{id}/probe` | 202; the actor reads the usage endpoint now |
//! | DELETE | `/admin/accounts/{id}` | `{removed}` |
//! | POST | `/admin/accounts/import` | body = accounts.json / auth.json / token list → `{added, updated, kept_newer, kept_inactive, imported, results}` |
//! | GET | `/admin/accounts/export[?ids=a,b]` | the predecessor's accounts.json, with tokens (`no-store`) |
//! | GET | `/admin/pool` | pool summary + `reason` + `quarantined` (account files moved aside at start) |
//! | GET, PUT | `/admin/strategy` | `{strategy}`: `least_used`, `round_robin`, `sticky` |
//! | GET | `/admin/requests?limit=N` | newest requests first (recent-requests ring) |
//! | GET | `/admin/live` | the dashboard's compact feed (with the quarantined account files, and `cluster` when clustered) |
//! | GET | `/admin/cluster` | `{"enabled": false}` on a single node; clustered: `node` (id, advertise, epoch, `standing` held/fenced/unacquired, `deadline_left_ms`, owned, summary), `peers` (id, epoch, advertise, owned, summary), `owners` (account → node id) |
//!
//! Errors are JSON `{"error": {"type", "message"}}` (401 unauthorized, 403 csrf, 404 not_found,
//! 400 invalid_request, 409 pool_error, 429 too_many_attempts).
//!
//! Guessing the admin key is braked per client address ([`auth_attempt`], the bucket in
//! [`crate::keys::throttle`]): each wrong `Authorization: Bearer` here and each wrong key at the
//! dashboard's `/login` spends one of `admin.auth_failure_burst` attempts, refilled one per
//! `admin.auth_failure_refill`; past it the address gets 429 with `Retry-After`, even for the
//! right key. Session cookies are not counted (a session id is 256 random bits; a stale one
//! polling the feed is not a guess). `/healthz`, `/readyz` and `/metrics` come from
//! [`health_router`].
//!
//! With no admin key configured the admin API is open only while every client is on this
//! machine — a loopback listener and no reverse proxy in front (`trust_forwarded_headers`
//! off; behind a proxy every request arrives from loopback). Config validation refuses to
//! start otherwise, and [`Admin`] checks it again; `admin.enabled = false` hides it entirely
//! (404).

mod accounts;
pub mod cluster;
pub mod error;
pub mod login;
mod pool;
pub mod session;
mod transfer;
pub mod view;

use crate::http::state::AppState;
use crate::keys::throttle;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, header};
use axum::routing::{get, post};
pub use error::AdminError;
use std::net::SocketAddr;

/// Header the dashboard sends on every state-changing request; a cross-site form cannot set
/// it, so together with `SameSite=Strict` it closes CSRF.
pub const CSRF_HEADER: &str = "x-rotor-csrf";

/// The `/admin/*` routes, behind the admin key or a dashboard session.
pub fn router() -> Router<AppState> {
    let api = Router::new()
        .route("/accounts", get(accounts::list))
        .route("/accounts/import", post(transfer::import))
        .route("/accounts/export", get(transfer::export))
        .route(
            "/accounts/{id}",
            get(accounts::one).delete(accounts::remove),
        )
        .route("/accounts/{id}/explain", get(accounts::explain))
        .route("/accounts/{id}/enable", post(accounts::enable))
        .route("/accounts/{id}/disable", post(accounts::disable))
        .route("/accounts/{id}/probe", post(accounts::probe))
        .route("/pool", get(pool::summary))
        .route("/strategy", get(pool::get_strategy).put(pool::put_strategy))
        .route("/requests", get(pool::requests))
        .route("/live", get(pool::live))
        .route("/cluster", get(cluster::get))
        .fallback(pool::not_found)
        .method_not_allowed_fallback(pool::wrong_method);
    Router::new()
        .nest("/admin", api)
        .layer(axum::Extension(std::sync::Arc::new(
            pool::StrategyOverride::default(),
        )))
}

/// `/healthz` (the process answers) and `/readyz` (200 iff the pool is serving, else 503 with
/// the reason), for the reverse proxy and orchestrators; plus `/metrics` for Prometheus. Open:
/// they reveal no secret.
pub fn health_router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(pool::healthz))
        .route("/readyz", get(pool::readyz))
        .route("/metrics", get(pool::metrics))
}

/// The configured admin key, read from wherever the config names it, and masked in every log
/// line from its first use on.
pub fn admin_key_of(config: &crate::config::Config) -> Result<Option<String>, String> {
    let key = config
        .admin
        .resolve(&crate::config::access::process_env)
        .map(|k| k.map(|s| s.expose().to_owned()))
        .map_err(|e| format!("admin key: {e}"))?;
    if let Some(k) = &key {
        crate::logging::register_secret(k);
    }
    Ok(key)
}

/// Proof that a request carries the admin key or a live dashboard session (with the CSRF
/// header when it changes state). Every admin handler takes it as its first argument, so a
/// handler without auth does not compile into the router by accident.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl axum::extract::FromRequestParts<AppState> for Admin {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied();
        authorize(state, &parts.method, &parts.headers, peer).map(|()| Admin)
    }
}

/// Takes one attempt from the failure budget of the client behind `headers` / `peer` (the TCP
/// peer, or the address a trusted reverse proxy names), before an admin key is compared: 429
/// once that address has guessed wrong `admin.auth_failure_burst` times in a row. Call
/// [`throttle::Attempt::succeeded`] when the key was right; dropping the attempt counts it as
/// a failure. Shared by the Bearer check here and the dashboard login.
pub fn auth_attempt<'a>(
    state: &'a AppState,
    config: &crate::config::Config,
    headers: &HeaderMap,
    peer: Option<ConnectInfo<SocketAddr>>,
) -> Result<throttle::Attempt<'a>, AdminError> {
    let peer = peer.map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
    let client = config.server.client_origin(headers, peer).ip;
    let budget = throttle::Budget {
        burst: config.admin.auth_failure_burst,
        refill: config.admin.auth_failure_refill,
    };
    state
        .keys()
        .admin_failures()
        .attempt(client, budget, tokio::time::Instant::now())
        .map_err(|t| AdminError::Throttled {
            retry_after_secs: t.retry_after_secs,
        })
}

/// The decision behind [`Admin`].
fn authorize(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    peer: Option<ConnectInfo<SocketAddr>>,
) -> Result<(), AdminError> {
    let config = state.config();
    if !config.admin.enabled {
        return Err(AdminError::Disabled);
    }
    let Some(key) = admin_key_of(&config).map_err(AdminError::Unauthorized)? else {
        if config.server.clients_are_local() {
            return Ok(());
        }
        return Err(AdminError::Unauthorized(
            "no admin key is configured; the admin API is only open on loopback, without a \
             reverse proxy in front"
                .into(),
        ));
    };
    if let Some(presented) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
    {
        let attempt = auth_attempt(state, &config, headers, peer)?;
        return if session::keys_match(presented.trim(), &key) {
            attempt.succeeded();
            Ok(())
        } else {
            Err(AdminError::Unauthorized("wrong admin key".into()))
        };
    }
    if let Some(id) = session::from_cookie_header(headers)
        && session::valid(&id, &session::fingerprint(&key))
    {
        let reads = matches!(*method, Method::GET | Method::HEAD);
        if !reads && !headers.contains_key(CSRF_HEADER) {
            return Err(AdminError::Csrf);
        }
        return Ok(());
    }
    Err(AdminError::Unauthorized(
        "admin key required: send Authorization: Bearer <admin key> (or log in to the dashboard)"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AdminConfig, Config, Secret};

    #[test]
    fn the_admin_key_is_read_from_the_config_and_masked_in_logs() {
        let mut cfg = Config::default();
        assert_eq!(admin_key_of(&cfg), Ok(None), "no key configured");
        cfg.admin = AdminConfig {
            key: Some(Secret::from("admin-key-masked-0000")),
            ..Default::default()
        };
        assert_eq!(
            admin_key_of(&cfg).ok().flatten().as_deref(),
            Some("admin-key-masked-0000")
        );
        assert_eq!(
            crate::logging::redact("key admin-key-masked-0000 here"),
            format!("key {} here", crate::logging::MASK)
        );
    }
}
