//! The simulated `auth.openai.com`: `POST /oauth/token` with `grant_type=refresh_token`
//! (docs/protocol.md §7: single-use rotating refresh tokens, `refresh_token_reused` on reuse) or
//! `grant_type=authorization_code` (PKCE S256 verifier checked), and `GET /oauth/authorize`,
//! which approves at once and redirects back with a code. Bodies may be JSON (what Codex sends)
//! or form-encoded (what OAuth libraries send).

use super::conn::ConnControl;
use super::fault::{self, Effect};
use super::options::{FaultTarget, RefreshEvent, RefreshOutcome};
use super::reply;
use super::responses::count_status;
use super::state::{GrantError, TokenSet, World, now_ms};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

/// The fields of a token request this endpoint reads.
#[derive(Debug, Default, Deserialize)]
struct TokenRequest {
    /// `refresh_token` or `authorization_code`.
    grant_type: Option<String>,
    /// The token to rotate (refresh grant).
    refresh_token: Option<String>,
    /// The code from `/oauth/authorize` (code grant).
    code: Option<String>,
    /// PKCE verifier matching the code's challenge (code grant).
    code_verifier: Option<String>,
    /// Must repeat the authorization request's redirect URI (code grant).
    redirect_uri: Option<String>,
}

fn parse_body(headers: &HeaderMap, body: &[u8]) -> Option<TokenRequest> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let looks_json = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if ct.contains("json") || looks_json {
        serde_json::from_slice(body).ok()
    } else {
        serde_urlencoded::from_bytes(body).ok()
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    reply::json_status(
        status,
        json!({"error": error, "error_description": description}),
    )
}

fn grant_error(world: &World, e: GrantError) -> Response {
    let unauthorized = |id: Option<&str>, code: &str, msg: &str| {
        world.count(id, |c| c.served_401 += 1);
        reply::error(StatusCode::UNAUTHORIZED, code, "invalid_request_error", msg)
    };
    match e {
        GrantError::Reused(id) => unauthorized(
            Some(&id),
            "refresh_token_reused",
            "Your refresh token has already been used to generate a new access token. Please try signing in again.",
        ),
        GrantError::Invalid => unauthorized(
            None,
            "refresh_token_invalidated",
            "Your refresh token has been invalidated. Please try signing in again.",
        ),
        GrantError::Deactivated(id) => unauthorized(
            Some(&id),
            "account_deactivated",
            "Your OpenAI account has been deactivated, please check your email for more information.",
        ),
        GrantError::Banned(id) => {
            world.count(Some(&id), |c| c.served_403 += 1);
            reply::error(
                StatusCode::FORBIDDEN,
                "account_banned",
                "invalid_request_error",
                "Your account has been banned for violating our usage policies.",
            )
        }
        GrantError::Mismatch => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "PKCE verification failed.",
        ),
    }
}

fn granted(world: &World, t: TokenSet) -> Response {
    let ttl = world
        .with_account(&t.account_id, now_ms(), |a| a.token_ttl_ms / 1000)
        .unwrap_or(3600);
    reply::json_status(
        StatusCode::OK,
        json!({"id_token": t.id_token, "access_token": t.access_token, "refresh_token": t.refresh_token,
            "token_type": "Bearer", "expires_in": ttl, "scope": "openid profile email offline_access"}),
    )
}

/// What a refresh grant's result goes in the refresh log as.
fn refresh_event(
    result: &Result<TokenSet, GrantError>,
    at: i64,
    caller: Option<String>,
) -> RefreshEvent {
    let (account, outcome) = match result {
        Ok(t) => (Some(t.account_id.clone()), RefreshOutcome::Granted),
        Err(GrantError::Reused(id)) => (Some(id.clone()), RefreshOutcome::Reused),
        Err(GrantError::Deactivated(id) | GrantError::Banned(id)) => {
            (Some(id.clone()), RefreshOutcome::Refused)
        }
        Err(GrantError::Invalid | GrantError::Mismatch) => (None, RefreshOutcome::Invalid),
    };
    RefreshEvent {
        at,
        account,
        caller,
        outcome,
    }
}

/// The token endpoint. A `caller` query parameter is not part of the real endpoint's contract
/// (it ignores unknown parameters); the simulator only writes it into the refresh log, so a
/// harness running several daemons can tell which one exchanged each refresh token.
pub(crate) async fn token(
    State(world): State<Arc<World>>,
    conn: Option<Extension<Arc<ConnControl>>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(kind) = world.take_fault(None, FaultTarget::Token) {
        match fault::effect(
            kind,
            FaultTarget::Token,
            conn.as_ref().map(|c| &c.0),
            now_ms(),
        ) {
            Effect::Replace(resp) => {
                count_status(&world, None, resp.status());
                return resp;
            }
            Effect::Reset(resp) => return resp,
            Effect::Delay(d) => tokio::time::sleep(d).await,
            Effect::Stream(_) => return fault::reset(conn.as_ref().map(|c| &c.0)),
        }
    }
    let Some(req) = parse_body(&headers, &body) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The body is neither JSON nor a form.",
        );
    };
    let now = now_ms();
    let result = match req.grant_type.as_deref() {
        Some("refresh_token") => match req.refresh_token.as_deref() {
            Some(rt) => {
                let result = world.refresh(rt, now);
                world.log_refresh(refresh_event(&result, now, query.get("caller").cloned()));
                result
            }
            None => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Missing refresh_token.",
                );
            }
        },
        Some("authorization_code") => match (req.code.as_deref(), req.code_verifier.as_deref()) {
            (Some(code), Some(verifier)) => {
                match world.exchange_code(code, verifier, req.redirect_uri.as_deref(), now) {
                    Err(GrantError::Invalid) => {
                        return oauth_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_grant",
                            "Unknown or used code.",
                        );
                    }
                    other => other,
                }
            }
            _ => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Missing code or code_verifier.",
                );
            }
        },
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Unsupported grant_type.",
            );
        }
    };
    match result {
        Ok(tokens) => granted(&world, tokens),
        Err(e) => grant_error(&world, e),
    }
}

/// The authorization endpoint: approves at once. `login_hint` (email or sim account id)
/// chooses the account; without it a new account is created. Redirects to `redirect_uri`
/// with `code` and `state`, or answers them as JSON when there is no `redirect_uri`.
pub(crate) async fn authorize(
    State(world): State<Arc<World>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(challenge) = q.get("code_challenge") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code_challenge is required (PKCE).",
        );
    };
    if q.get("code_challenge_method")
        .map_or("plain", String::as_str)
        != "S256"
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code_challenge_method must be S256.",
        );
    }
    if q.get("response_type").is_some_and(|r| r != "code") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_response_type",
            "response_type must be code.",
        );
    }
    let redirect = q.get("redirect_uri");
    let code = world.authorize(
        q.get("login_hint").map(String::as_str),
        challenge,
        redirect.map(String::as_str),
    );
    let state = q.get("state").cloned().unwrap_or_default();
    match redirect {
        Some(uri) => {
            let query =
                serde_urlencoded::to_string([("code", code.as_str()), ("state", state.as_str())])
                    .unwrap_or_default();
            let sep = if uri.contains('?') { '&' } else { '?' };
            (
                StatusCode::FOUND,
                [(header::LOCATION, format!("{uri}{sep}{query}"))],
            )
                .into_response()
        }
        None => reply::json_status(StatusCode::OK, json!({"code": code, "state": state})),
    }
}
