//! Pool-wide admin endpoints: the pool summary, the rotation strategy at runtime, the
//! recent-requests ring, the compact live feed the dashboard polls, and the health probes
//! `/healthz` and `/readyz` for the reverse proxy, and `/metrics` for Prometheus.

use super::{Admin, AdminError, view};
use crate::cluster::FirstPass;
use crate::http::state::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use rotor_actors::Strategy;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// The strategy set at runtime through `PUT /admin/strategy`, which wins over the config's
/// until the daemon restarts. One per admin router, i.e. per daemon.
#[derive(Debug, Default)]
pub struct StrategyOverride(Mutex<Option<Strategy>>);

impl StrategyOverride {
    /// The override, if one was set.
    fn get(&self) -> Option<Strategy> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a new override.
    fn set(&self, s: Strategy) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
    }
}

/// The strategy in force: the runtime override, else the config's (both serialise to
/// `least_used` / `round_robin` / `sticky`).
fn current_strategy(state: &AppState, o: &StrategyOverride) -> Value {
    match o.get() {
        Some(s) => json!(s),
        None => json!(state.config().pool.strategy),
    }
}

/// `GET /admin/pool`: the pool summary plus whether it serves and why.
pub async fn summary(_: Admin, State(state): State<AppState>) -> Json<Value> {
    let s = state.pool().summary().await;
    let mut j = serde_json::to_value(&s).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut j {
        map.insert(
            "reason".into(),
            json!(view::serving_reason(
                &s,
                state.quarantined().len(),
                state.now_ms()
            )),
        );
        map.insert("quarantined".into(), json!(state.quarantined().len()));
    }
    Json(j)
}

/// Body of `PUT /admin/strategy`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyBody {
    /// `least_used`, `round_robin` or `sticky`.
    pub strategy: Strategy,
}

/// `GET /admin/strategy`.
pub async fn get_strategy(
    _: Admin,
    State(state): State<AppState>,
    Extension(o): Extension<Arc<StrategyOverride>>,
) -> Json<Value> {
    Json(json!({ "strategy": current_strategy(&state, &o) }))
}

/// `PUT /admin/strategy`: switches the rotation strategy at runtime.
pub async fn put_strategy(
    _: Admin,
    State(state): State<AppState>,
    Extension(o): Extension<Arc<StrategyOverride>>,
    body: Result<Json<StrategyBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    let Json(body) = body.map_err(|e| {
        AdminError::BadRequest(format!(
            "expected {{\"strategy\": \"least_used\" | \"round_robin\" | \"sticky\"}}: {}",
            e.body_text()
        ))
    })?;
    state.pool().set_strategy(body.strategy).await;
    o.set(body.strategy);
    Ok(Json(json!({ "strategy": body.strategy })))
}

/// Query of `GET /admin/requests`.
#[derive(Debug, Deserialize)]
pub struct RequestsQuery {
    /// How many of the newest records to return (default 100, at most 10 000).
    pub limit: Option<usize>,
}

/// `GET /admin/requests?limit=N`: the newest requests, newest first.
pub async fn requests(
    _: Admin,
    State(state): State<AppState>,
    q: Result<Query<RequestsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, AdminError> {
    let Query(q) = q?;
    let limit = q.limit.unwrap_or(100).min(10_000);
    let list = state.recent().list(limit);
    Ok(Json(json!({ "count": list.len(), "requests": list })))
}

/// `GET /admin/live`: everything the dashboard shows, compact — summary, headroom, one short
/// row per account, the strategy, the usage series and the newest requests.
pub async fn live(
    _: Admin,
    State(state): State<AppState>,
    Extension(o): Extension<Arc<StrategyOverride>>,
) -> Json<Value> {
    let now = state.now_ms();
    let summary = state.pool().summary().await;
    let accounts = state.pool().accounts().await;
    let rows: Vec<Value> = accounts
        .iter()
        .map(|a| {
            let mut r = view::row(a);
            super::cluster::add_owner(&state, &a.id, &mut r);
            r
        })
        .collect();
    let series: Vec<[i64; 6]> = state
        .metrics()
        .series(now)
        .iter()
        .map(|p| {
            [
                p.t,
                p.requests as i64,
                p.errors as i64,
                p.upstream_429s as i64,
                p.input_tokens as i64,
                p.output_tokens as i64,
            ]
        })
        .collect();
    let mut feed = json!({
        "now": now,
        "started_at": state.started_at(),
        "reason": view::serving_reason(&summary, state.quarantined().len(), now),
        "summary": summary,
        "headroom": view::headroom(&accounts),
        "strategy": current_strategy(&state, &o),
        "accounts": rows,
        "series": { "slot_ms": state.metrics().series_slot_ms(), "points": series },
        "requests": state.recent().list(25),
        "quarantined": view::quarantined(state.quarantined()),
    });
    // The dashboard's Nodes panel: only when clustered, so a single node's feed is unchanged.
    if let (Some(c), Value::Object(map)) = (state.cluster(), &mut feed) {
        map.insert("cluster".into(), crate::cluster::report::report(c));
    }
    Json(feed)
}

/// Unknown path under `/admin`.
pub async fn not_found(uri: axum::http::Uri) -> AdminError {
    AdminError::NoRoute(uri.path().to_owned())
}

/// Known path, wrong method (e.g. `PUT /admin/pool`).
pub async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> AdminError {
    AdminError::MethodNotAllowed(format!("{method} {}", uri.path()))
}

/// `GET /healthz`: the process is alive and answering.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /metrics`: reads the pool's summary and accounts and renders every family for
/// Prometheus.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let summary = state.pool().summary().await;
    let accounts = state.pool().accounts().await;
    let body = state.metrics().render(&summary, &accounts);
    let content_type = [(
        axum::http::header::CONTENT_TYPE,
        crate::metrics::CONTENT_TYPE,
    )];
    (content_type, body).into_response()
}

/// `GET /readyz`: 200 iff the pool is serving, else 503 with the reason; both say how many
/// account files were quarantined at start (they never count as accounts: a data dir of
/// unreadable files is not ready).
pub async fn readyz(State(state): State<AppState>) -> Response {
    let s = state.pool().summary().await;
    let quarantined = state.quarantined().len();
    // A cluster node is ready while it holds its session, owning accounts or not (it can
    // forward); while not Held nothing it answers would be its own to give.
    if let Some(why) = state.cluster_refusal() {
        let body = json!({ "ready": false, "reason": why, "soonest_reset_at": s.soonest_reset_at,
            "quarantined": quarantined });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    if let Some(cluster) = state.cluster() {
        // Held, but what it should own is not running until a claim pass of this session
        // completed; a TTL of failing passes later it is ready anyway and says why.
        let overdue = match cluster.first_pass() {
            FirstPass::Done => None,
            FirstPass::Waiting => {
                let why = "this node holds its cluster session and has not completed its first \
                           claim pass yet";
                let body = json!({ "ready": false, "reason": why,
                    "soonest_reset_at": s.soonest_reset_at, "quarantined": quarantined });
                return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            }
            FirstPass::Overdue(ms) => Some(format!(
                "this node holds its cluster session, but no claim pass has completed in the \
                 {:.1} s since it was acquired (the database refuses or is slow: see the log); \
                 ready anyway: it serves what it owns and forwards the rest",
                ms as f64 / 1000.0
            )),
        };
        let reason = match overdue {
            Some(why) => why,
            None if s.total == 0 => {
                "this node holds its cluster session and owns no account yet".to_owned()
            }
            None => view::serving_reason(&s, quarantined, state.now_ms()),
        };
        let body = json!({ "ready": true, "reason": reason,
            "soonest_reset_at": s.soonest_reset_at, "quarantined": quarantined });
        return (StatusCode::OK, Json(body)).into_response();
    }
    let reason = view::serving_reason(&s, quarantined, state.now_ms());
    let status = if s.serving {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "ready": s.serving, "reason": reason,
        "soonest_reset_at": s.soonest_reset_at, "quarantined": quarantined });
    (status, Json(body)).into_response()
}
