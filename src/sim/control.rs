//! The `/sim/` control API: the [`super::SimHandle`] operations over HTTP, for operators and
//! out-of-process tests. Everything is JSON; account views never contain tokens (only the
//! answer to account creation does, as the `auth.json` the caller asked for).
//!
//! | Method + path | Body | Answer |
//! |---|---|---|
//! | `GET /sim` | — | `{accounts: [view…], totals, faults}` |
//! | `POST /sim/accounts` | `AccountSpec` (may be empty) | `CreatedAccount` `{id, email, auth_json}` |
//! | `GET /sim/accounts` / `GET /sim/accounts/{id}` | — | account views (quota, counters, standing) |
//! | `GET /sim/accounts/{id}/counters` | — | `Counters` |
//! | `POST /sim/accounts/{id}/usage` | `{primary_used_percent?, secondary_used_percent?, extra_used_percent?}` | view |
//! | `POST /sim/accounts/{id}/quota` | `{primary_quota_tokens?, secondary_quota_tokens?, extra_quota_tokens?}` | view |
//! | `POST /sim/accounts/{id}/ban` · `/deactivate` · `/reinstate` · `/expire` | — | view |
//! | `POST /sim/faults` | `FaultSpec` e.g. `{"kind":"rate_limit","retry_after_secs":2,"count":1}` | 204 |
//! | `GET /sim/faults` · `DELETE /sim/faults` | — | list · 204 |
//! | `GET /sim/counters` | — | totals |
//! | `GET /sim/refreshes` | — | every refresh-token exchange `[{at, account, caller, outcome}]`, oldest first |

use super::options::{AccountSpec, FaultSpec};
use super::reply;
use super::state::{Standing, World};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::Arc;

/// The `/sim/` routes.
pub(crate) fn router() -> Router<Arc<World>> {
    Router::new()
        .route("/sim", get(overview))
        .route("/sim/accounts", post(create).get(list))
        .route("/sim/accounts/{id}", get(one))
        .route("/sim/accounts/{id}/counters", get(counters))
        .route("/sim/accounts/{id}/usage", post(usage))
        .route("/sim/accounts/{id}/quota", post(quota))
        .route("/sim/accounts/{id}/{action}", post(standing))
        .route("/sim/faults", post(inject).get(faults).delete(clear))
        .route("/sim/counters", get(totals))
        .route("/sim/refreshes", get(refreshes))
}

/// Parses a JSON body; an empty body is the type's default.
fn body<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON body: {e}"))
}

fn view_or_404(world: &World, id: &str) -> Response {
    match world.account_view(id) {
        Some(v) => reply::json_status(StatusCode::OK, v),
        None => not_found(id),
    }
}

fn not_found(id: &str) -> Response {
    reply::error(
        StatusCode::NOT_FOUND,
        "account_not_found",
        "invalid_request_error",
        &format!("no simulated account {id:?}"),
    )
}

async fn overview(State(world): State<Arc<World>>) -> Response {
    let accounts: Vec<Value> = world
        .account_ids()
        .iter()
        .filter_map(|id| world.account_view(id))
        .collect();
    reply::json_status(
        StatusCode::OK,
        json!({"accounts": accounts, "totals": world.totals(), "faults": world.faults()}),
    )
}

async fn create(State(world): State<Arc<World>>, bytes: Bytes) -> Response {
    match body::<AccountSpec>(&bytes) {
        Ok(spec) => {
            let created = world.create_account(spec);
            reply::json_status(StatusCode::CREATED, json!(created))
        }
        Err(e) => reply::bad_request(None, &e),
    }
}

async fn list(State(world): State<Arc<World>>) -> Response {
    let accounts: Vec<Value> = world
        .account_ids()
        .iter()
        .filter_map(|id| world.account_view(id))
        .collect();
    reply::json_status(StatusCode::OK, Value::Array(accounts))
}

async fn one(State(world): State<Arc<World>>, Path(id): Path<String>) -> Response {
    view_or_404(&world, &id)
}

async fn counters(State(world): State<Arc<World>>, Path(id): Path<String>) -> Response {
    match world.account_view(&id) {
        Some(_) => reply::json_status(StatusCode::OK, json!(world.counters(&id))),
        None => not_found(&id),
    }
}

/// Body of `POST /sim/accounts/{id}/usage`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageBody {
    /// New fill of the 5 h window, 0..=100.
    primary_used_percent: Option<f64>,
    /// New fill of the weekly window, 0..=100.
    secondary_used_percent: Option<f64>,
    /// New fill of the `codex_bengalfox` window, 0..=100.
    extra_used_percent: Option<f64>,
}

async fn usage(State(world): State<Arc<World>>, Path(id): Path<String>, bytes: Bytes) -> Response {
    let b: UsageBody = match body(&bytes) {
        Ok(b) => b,
        Err(e) => return reply::bad_request(None, &e),
    };
    if !world.set_usage(
        &id,
        b.primary_used_percent,
        b.secondary_used_percent,
        b.extra_used_percent,
    ) {
        return not_found(&id);
    }
    view_or_404(&world, &id)
}

/// Body of `POST /sim/accounts/{id}/quota`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaBody {
    /// Tokens per 5 h window.
    primary_quota_tokens: Option<u64>,
    /// Tokens per weekly window.
    secondary_quota_tokens: Option<u64>,
    /// Tokens per `codex_bengalfox` window (adds the limit if missing).
    extra_quota_tokens: Option<u64>,
}

async fn quota(State(world): State<Arc<World>>, Path(id): Path<String>, bytes: Bytes) -> Response {
    let b: QuotaBody = match body(&bytes) {
        Ok(b) => b,
        Err(e) => return reply::bad_request(None, &e),
    };
    if !world.set_quota(
        &id,
        b.primary_quota_tokens,
        b.secondary_quota_tokens,
        b.extra_quota_tokens,
    ) {
        return not_found(&id);
    }
    view_or_404(&world, &id)
}

async fn standing(
    State(world): State<Arc<World>>,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let found = match action.as_str() {
        "ban" => world.set_standing(&id, Standing::Banned),
        "deactivate" => world.set_standing(&id, Standing::Deactivated),
        "reinstate" => world.set_standing(&id, Standing::Active),
        "expire" => world.expire_access_tokens(&id),
        other => {
            let msg = format!("unknown action {other:?} (ban, deactivate, reinstate, expire)");
            return reply::error(
                StatusCode::NOT_FOUND,
                "unknown_action",
                "invalid_request_error",
                &msg,
            );
        }
    };
    if !found {
        return not_found(&id);
    }
    view_or_404(&world, &id)
}

async fn inject(State(world): State<Arc<World>>, bytes: Bytes) -> Response {
    match serde_json::from_slice::<FaultSpec>(&bytes) {
        Ok(spec) => {
            world.inject(spec);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => reply::bad_request(None, &format!("invalid fault: {e}")),
    }
}

async fn faults(State(world): State<Arc<World>>) -> Response {
    reply::json_status(StatusCode::OK, json!(world.faults()))
}

async fn clear(State(world): State<Arc<World>>) -> Response {
    world.clear_faults();
    StatusCode::NO_CONTENT.into_response()
}

async fn totals(State(world): State<Arc<World>>) -> Response {
    reply::json_status(StatusCode::OK, json!(world.totals()))
}

async fn refreshes(State(world): State<Arc<World>>) -> Response {
    reply::json_status(StatusCode::OK, json!(world.refresh_log()))
}
