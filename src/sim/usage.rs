//! `GET /backend-api/wham/usage` (docs/protocol.md §9) and `GET /backend-api/codex/models`.

use super::conn::ConnControl;
use super::fault::{self, Effect};
use super::options::{EXTRA_LIMIT_ID, FaultTarget};
use super::quota::Window;
use super::reply;
use super::responses::{authorize, count_status};
use super::state::{World, now_ms};
use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;

/// One window in the `/wham/usage` shape (integers, as the OpenAPI model has them).
fn window(w: &Window, now: i64) -> Value {
    let reset_at = w.reset_at_or_start(now);
    json!({
        "used_percent": w.used_percent().floor() as i64,
        "limit_window_seconds": (w.window_ms + 999) / 1000,
        "reset_after_seconds": ((reset_at - now).max(0) + 999) / 1000,
        "reset_at": (reset_at + 999) / 1000,
    })
}

fn rate_limit(windows: &[&Window], now: i64) -> Value {
    let reached = windows.iter().any(|w| w.exhausted());
    let mut v = json!({"allowed": !reached, "limit_reached": reached, "primary_window": window(windows[0], now)});
    if let Some(s) = windows.get(1) {
        v["secondary_window"] = window(s, now);
    } else {
        v["secondary_window"] = Value::Null;
    }
    v
}

/// The answer a scripted fault on `target` gives instead of the endpoint's own, if one hits
/// (a delay fault waits, then lets the endpoint answer).
async fn scripted(
    world: &World,
    account: Option<&str>,
    target: FaultTarget,
    conn: &Option<Extension<Arc<ConnControl>>>,
    now: i64,
) -> Option<Response> {
    let kind = world.take_fault(account, target)?;
    match fault::effect(kind, target, conn.as_ref().map(|c| &c.0), now) {
        Effect::Replace(resp) => {
            count_status(world, account, resp.status());
            Some(resp)
        }
        Effect::Reset(resp) => Some(resp),
        Effect::Delay(d) => {
            tokio::time::sleep(d).await;
            None
        }
        Effect::Stream(_) => Some(fault::reset(conn.as_ref().map(|c| &c.0))),
    }
}

/// Quota of the calling account in the `/wham/usage` shape.
pub(crate) async fn wham_usage(
    State(world): State<Arc<World>>,
    conn: Option<Extension<Arc<ConnControl>>>,
    headers: HeaderMap,
) -> Response {
    let now = now_ms();
    let (account, auth) = authorize(&world, &headers, now);
    world.count(account.as_deref(), |c| c.usage_probes += 1);
    if let Some(resp) = scripted(&world, account.as_deref(), FaultTarget::Usage, &conn, now).await {
        return resp;
    }
    let id = match auth {
        Ok(id) => id,
        Err(resp) => return resp,
    };
    let body = world.with_account(&id, now, |a| {
        let q = &a.quota;
        let main = rate_limit(&[&q.primary, &q.secondary], now);
        let reached = q.primary.exhausted() || q.secondary.exhausted();
        let additional: Vec<Value> = q
            .extra
            .iter()
            .map(|e| json!({"limit_name": "GPT-5.3-Codex-Spark", "metered_feature": EXTRA_LIMIT_ID,
                "rate_limit": rate_limit(&[e], now)}))
            .collect();
        json!({
            "plan_type": a.plan,
            "rate_limit": main,
            "credits": {"has_credits": a.credits_balance.is_some(), "unlimited": false,
                "balance": a.credits_balance.clone().unwrap_or_else(|| "0".into())},
            "additional_rate_limits": additional,
            "rate_limit_reached_type": if reached { json!({"type": "rate_limit_reached"}) } else { Value::Null },
        })
    });
    match body {
        Some(b) => reply::json_status(StatusCode::OK, b),
        None => reply::error(
            StatusCode::UNAUTHORIZED,
            "token_invalid",
            "invalid_request_error",
            "Unknown account.",
        ),
    }
}

/// The model catalog (`{"models":[…]}`), with an `x-models-etag`; like every backend
/// endpoint it answers only a known account's token.
pub(crate) async fn models(
    State(world): State<Arc<World>>,
    conn: Option<Extension<Arc<ConnControl>>>,
    headers: HeaderMap,
) -> Response {
    let now = now_ms();
    let (account, auth) = authorize(&world, &headers, now);
    world.count(account.as_deref(), |c| c.model_fetches += 1);
    if let Some(resp) = scripted(&world, account.as_deref(), FaultTarget::Models, &conn, now).await
    {
        return resp;
    }
    if let Err(resp) = auth {
        return resp;
    }
    let models: Vec<Value> = world
        .opts
        .models
        .iter()
        .enumerate()
        .map(|(i, slug)| {
            let levels: Vec<Value> = ["low", "medium", "high"]
                .iter()
                .map(|e| json!({"effort": e, "description": e}))
                .collect();
            json!({
                "slug": slug, "display_name": slug, "description": format!("Simulated {slug}"),
                "default_reasoning_level": "medium",
                "supported_reasoning_levels": levels,
                "shell_type": "shell_command", "visibility": "list", "supported_in_api": true,
                "priority": i, "context_window": 272_000,
            })
        })
        .collect();
    let mut resp = reply::json_status(StatusCode::OK, json!({ "models": models }));
    reply::put(
        resp.headers_mut(),
        "x-models-etag",
        format!("\"sim-{}\"", world.opts.models.len()),
    );
    resp
}
