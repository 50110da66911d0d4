//! `POST /backend-api/codex/responses`: authenticate, apply scripted faults, check quota
//! (429 `usage_limit_reached`, docs/protocol.md §6), charge tokens, and answer as SSE (§5) or as one
//! JSON object, always with the `x-codex-*` headers of §4.

use super::conn::ConnControl;
use super::corpus;
use super::fault::{self, Effect};
use super::options::{FaultKind, FaultTarget};
use super::quota::Refusal;
use super::reply::{self, put};
use super::state::{Auth, World, now_ms};
use super::stream::{Answer, Usage};
use super::strict;
use super::turn;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The bearer token of a request, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .map(str::trim)
}

/// Authenticates a backend call, answering 401/403 in upstream's shapes when it fails.
pub(crate) fn authorize(
    world: &World,
    headers: &HeaderMap,
    now: i64,
) -> (Option<String>, Result<String, Response>) {
    let auth = bearer(headers).map_or(Auth::Unknown, |t| world.authenticate(t, now));
    match auth {
        Auth::Ok(id) => (Some(id.clone()), Ok(id)),
        Auth::Unknown => (
            None,
            Err(unauthorized(
                world,
                None,
                "token_invalid",
                "Could not parse your authentication token. Please try signing in again.",
            )),
        ),
        Auth::Expired(id) => {
            let r = unauthorized(
                world,
                Some(&id),
                "token_expired",
                "Provided authentication token is expired. Please try signing in again.",
            );
            (Some(id), Err(r))
        }
        Auth::Deactivated(id) => {
            let r = unauthorized(
                world,
                Some(&id),
                "account_deactivated",
                "Your OpenAI account has been deactivated, please check your email for more information.",
            );
            (Some(id), Err(r))
        }
        Auth::Banned(id) => {
            world.count(Some(&id), |c| c.served_403 += 1);
            let r = reply::error(
                StatusCode::FORBIDDEN,
                "account_banned",
                "invalid_request_error",
                "Your account has been banned for violating our usage policies.",
            );
            (Some(id), Err(r))
        }
    }
}

fn unauthorized(world: &World, id: Option<&str>, code: &str, message: &str) -> Response {
    world.count(id, |c| c.served_401 += 1);
    reply::error(
        StatusCode::UNAUTHORIZED,
        code,
        "invalid_request_error",
        message,
    )
}

/// Counts a fault-made answer by its status.
pub(crate) fn count_status(world: &World, account: Option<&str>, status: StatusCode) {
    match status.as_u16() {
        429 => world.count(account, |c| c.served_429 += 1),
        403 => world.count(account, |c| c.served_403 += 1),
        500..=599 => world.count(account, |c| c.served_5xx += 1),
        _ => {}
    }
}

/// The handler.
pub(crate) async fn handle(
    State(world): State<Arc<World>>,
    conn: Option<axum::Extension<Arc<ConnControl>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let conn = conn.map(|c| c.0);
    let now = now_ms();
    let (account, auth) = authorize(&world, &headers, now);
    if account.is_some() {
        world.count(account.as_deref(), |c| c.requests += 1);
    }
    let mut shape = None;
    if let Some(kind) = world.take_fault(account.as_deref(), FaultTarget::Responses) {
        match fault::effect(kind, FaultTarget::Responses, conn.as_ref(), now) {
            Effect::Replace(mut resp) => {
                count_status(&world, account.as_deref(), resp.status());
                let is_html = resp.headers().contains_key("cf-mitigated");
                if let Some(id) = account.as_deref().filter(|_| !is_html) {
                    world.with_account(id, now, |a| {
                        let credits = a.credits_balance.as_deref();
                        reply::quota_headers(resp.headers_mut(), &a.quota, false, credits, now);
                    });
                }
                return resp;
            }
            Effect::Reset(resp) => return resp,
            Effect::Delay(d) => tokio::time::sleep(d).await,
            Effect::Stream(k) => shape = Some(k),
        }
    }
    let id = match auth {
        Ok(id) => id,
        Err(resp) => return resp,
    };
    let parsed = match turn::json(&body) {
        Ok(v) => v,
        Err(e) => return reply::bad_request(e.param, &e.message),
    };
    if !world.opts.lenient
        && let Some(refusal) = strict::refusal(&parsed, world.opts.seed, &id)
    {
        return refusal;
    }
    if !world.opts.lenient
        && let Some(refusal) = strict::too_old(&world.opts.min_client_version, &parsed, &headers)
    {
        return refusal;
    }
    let turn = match turn::read(&parsed, body.len()) {
        Ok(t) => t,
        Err(e) => return reply::bad_request(e.param, &e.message),
    };
    drop(parsed);
    if world.opts.reject_unknown_models && !world.opts.models.contains(&turn.model) {
        let detail = format!(
            "The '{}' model is not supported when using Codex with a ChatGPT account.",
            turn.model
        );
        return reply::json_status(StatusCode::BAD_REQUEST, json!({"detail": detail}));
    }
    let now = now_ms();
    let extra = reply::uses_extra_limit(&turn.model);
    let plan = turn::plan(&turn, world.opts.seed, world.opts.answer_words);
    let outcome = world.with_account(&id, now, |a| {
        let mut h = HeaderMap::new();
        if let Err(refusal) = a.quota.check(extra, now) {
            a.counters.served_429 += 1;
            reply::quota_headers(&mut h, &a.quota, extra, a.credits_balance.as_deref(), now);
            return (Err((refusal, a.plan.clone())), h);
        }
        let cached = match &turn.prompt_cache_key {
            Some(k) => a
                .cache
                .insert(k.clone(), turn.input_tokens)
                .unwrap_or(0)
                .min(turn.input_tokens),
            None => 0,
        };
        let usage = Usage {
            input: turn.input_tokens,
            cached,
            output: plan.output_tokens,
            reasoning: plan.reasoning_tokens,
        };
        let charged = usage.input + usage.output;
        a.quota.charge(charged, extra, now);
        let c = &mut a.counters;
        c.tokens += charged;
        c.input_tokens += usage.input;
        c.cached_tokens += usage.cached;
        c.output_tokens += usage.output;
        c.reasoning_tokens += usage.reasoning;
        c.completed += u64::from(matches!(
            shape,
            None | Some(
                FaultKind::HugeEvent { .. }
                    | FaultKind::SplitEvent { .. }
                    | FaultKind::HugeHeader { .. }
                    | FaultKind::Linger { .. }
            )
        ));
        reply::quota_headers(&mut h, &a.quota, extra, a.credits_balance.as_deref(), now);
        (Ok(usage), h)
    });
    let (usage, mut h) = match outcome {
        None => return reset_unknown(&world),
        Some((Err((refusal, plan_type)), h)) => return usage_limit(refusal, &plan_type, h, now),
        Some((Ok(usage), h)) => (usage, h),
    };
    let serial = world.serial();
    let turn_state = headers
        .get("x-codex-turn-state")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| format!("ts_sim_{serial:x}"), String::from);
    put(&mut h, "x-codex-turn-state", turn_state);
    put(&mut h, "openai-model", &turn.model);
    put(&mut h, "x-request-id", format!("req_sim_{serial:x}"));
    if let Some(FaultKind::HugeHeader { name, bytes }) = &shape {
        huge_header(&mut h, name, *bytes);
    }
    let response_id = format!("resp_sim{serial:012x}");
    let answer = Answer {
        encrypted: turn
            .encrypted_reasoning
            .then(|| strict::mint(world.opts.seed, &id, &response_id)),
        id: response_id,
        model: &turn.model,
        created_at: now / 1000,
        plan: &plan,
        usage,
        prompt_cache_key: turn.prompt_cache_key.as_deref(),
        completed_output: world.opts.completed_output,
        huge_delta: match shape {
            Some(FaultKind::HugeEvent { bytes } | FaultKind::SplitEvent { bytes, .. }) => {
                Some(bytes)
            }
            _ => None,
        },
    };
    if !turn.stream {
        if let Some(FaultKind::PrematureClose { .. }) = shape {
            return fault::reset(conn.as_ref());
        }
        h.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        return (StatusCode::OK, h, answer.response(true)).into_response();
    }
    let mut frames = answer.sse();
    match &shape {
        Some(FaultKind::ResponseFailed { code, after_events }) => {
            let mut failed = corpus::response_failed(code);
            failed["response"]["id"] = answer.id.as_str().into();
            frames = frames.cut_with(*after_events, failed);
        }
        Some(FaultKind::ErrorEvent { after_events, code }) => {
            let mut ev = corpus::event_data(corpus::ERROR_EVENT);
            if let Some(code) = code {
                ev["code"] = code.as_str().into();
                ev["message"] = code.as_str().into();
            }
            frames = frames.cut_with(*after_events, ev);
        }
        _ => {}
    }
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    (
        StatusCode::OK,
        h,
        sse_body(frames, shape, world.opts.event_delay, conn),
    )
        .into_response()
}

/// Adds the [`FaultKind::HugeHeader`] header (`x` repeated); an invalid name adds nothing.
fn huge_header(h: &mut HeaderMap, name: &str, bytes: usize) {
    if let (Ok(n), Ok(v)) = (
        header::HeaderName::from_bytes(name.as_bytes()),
        header::HeaderValue::from_str(&"x".repeat(bytes)),
    ) {
        h.insert(n, v);
    }
}

/// The token was valid a moment ago but its account vanished: treat as unknown.
fn reset_unknown(world: &World) -> Response {
    unauthorized(
        world,
        None,
        "token_invalid",
        "Could not find the account of this token.",
    )
}

/// The 429 `usage_limit_reached` answer, body exactly as docs/protocol.md §6.
fn usage_limit(refusal: Refusal, plan_type: &str, mut h: HeaderMap, now: i64) -> Response {
    let (reset_at, extra) = match refusal {
        Refusal::Codex { reset_at } => (reset_at, false),
        Refusal::Extra { reset_at } => (reset_at, true),
    };
    let resets_at = (reset_at + 999) / 1000;
    let resets_in = ((reset_at - now).max(0) + 999) / 1000;
    put(&mut h, "x-codex-active-limit", reply::active_limit(extra));
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    let body = json!({"error": {"type": "usage_limit_reached", "plan_type": plan_type,
        "resets_at": resets_at, "resets_in_seconds": resets_in}});
    (StatusCode::TOO_MANY_REQUESTS, h, body.to_string()).into_response()
}

/// The SSE body: all frames at once when nothing shapes it, otherwise one frame at a time
/// with delays, a stall (between frames, or inside the largest one for
/// [`FaultKind::SplitEvent`]), or a premature (optionally mid-chunk) close.
fn sse_body(
    frames: super::stream::Frames,
    shape: Option<FaultKind>,
    delay: Duration,
    conn: Option<Arc<ConnControl>>,
) -> Body {
    let unshaped = matches!(
        shape,
        None | Some(
            FaultKind::HugeEvent { .. }
                | FaultKind::HugeHeader { .. }
                | FaultKind::ResponseFailed { .. }
                | FaultKind::ErrorEvent { .. }
        )
    );
    if unshaped && delay.is_zero() {
        return Body::from(frames.body);
    }
    let mut frames = frames.split();
    let last = frames.len().saturating_sub(1);
    let linger = match shape {
        Some(FaultKind::Linger { millis }) => Some(Duration::from_millis(millis)),
        _ => None,
    };
    if linger.is_some() {
        // An empty chunk after the terminal event: the body is held open while it waits.
        frames.push(Bytes::new());
    }
    let (stop_at, mid_chunk, stall) = match shape {
        Some(FaultKind::PrematureClose {
            after_events,
            mid_chunk,
        }) => (Some(after_events.min(last)), mid_chunk, None),
        Some(FaultKind::Stall {
            after_events,
            millis,
        }) => (None, false, Some((after_events, millis))),
        _ => (None, false, None),
    };
    let stall = stall.or(linger.map(|d| (last + 1, d.as_millis() as u64)));
    let stall = match shape {
        Some(FaultKind::SplitEvent { millis, .. }) => Some((split_largest(&mut frames), millis)),
        _ => stall,
    };
    let stream = async_stream(frames, stop_at, mid_chunk, stall, delay, conn);
    Body::from_stream(stream)
}

/// Cuts the largest frame in two, all but its last [`SPLIT_TAIL`] bytes and the rest; returns
/// the index of the second part (where the pause goes).
fn split_largest(frames: &mut Vec<Bytes>) -> usize {
    let Some((i, f)) = frames.iter().enumerate().max_by_key(|(_, f)| f.len()) else {
        return 0;
    };
    let cut = f.len().saturating_sub(SPLIT_TAIL);
    let (head, tail) = (f.slice(..cut), f.slice(cut..));
    frames[i] = head;
    frames.insert(i + 1, tail);
    i + 1
}

/// What [`FaultKind::SplitEvent`] holds back of its event until after the pause.
const SPLIT_TAIL: usize = 64;

fn async_stream(
    frames: Vec<Bytes>,
    stop_at: Option<usize>,
    mid_chunk: bool,
    stall: Option<(usize, u64)>,
    delay: Duration,
    conn: Option<Arc<ConnControl>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures::stream::unfold(0usize, move |i| {
        let frame = frames.get(i).cloned();
        let conn = conn.clone();
        async move {
            let frame = frame?;
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if let Some((at, millis)) = stall
                && i == at
            {
                tokio::time::sleep(Duration::from_millis(millis)).await;
            }
            if stop_at == Some(i) {
                if !mid_chunk {
                    return None;
                }
                // Let hyper flush what was sent, then allow one byte of the next chunk's size line.
                tokio::time::sleep(Duration::from_millis(20)).await;
                conn.as_ref()?.cut_after(1);
            }
            Some((Ok(frame), i + 1))
        }
    })
}
