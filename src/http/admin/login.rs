//! The HTTP side of adding an account by login, for the dashboard: `POST
//! /admin/accounts/login` starts a PKCE login and answers the URL to open; the browser comes back
//! either to `GET /auth/callback` (when the redirect URI points at the daemon; protected by the
//! single-use `state` nonce, since a cross-site redirect carries no dashboard cookie) or the
//! operator pastes the URL it landed on into `POST /admin/accounts/login/complete`. Either way
//! the tokens become an account through the same validation as an import, and the pool's
//! duplicate rules apply. The pending logins live in this router's own state, so merging it is
//! the whole integration: `router.merge(admin::login::router(&cfg, client))`.

use crate::http::admin::{Admin, AdminError};
use crate::http::state::AppState;
use crate::oauth::login::{LoginError, LoginSessions, LoginSettings, StartedLogin};
use axum::extract::{RawQuery, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// The login routes, with their pending-login store attached.
pub fn router(cfg: &crate::config::Config, client: reqwest::Client) -> Router<AppState> {
    let sessions = Arc::new(LoginSessions::new(client, LoginSettings::from_config(cfg)));
    Router::new()
        .route("/admin/accounts/login", post(start))
        .route("/admin/accounts/login/complete", post(complete))
        .route("/auth/callback", get(callback))
        .layer(Extension(sessions))
}

/// `POST /admin/accounts/login` → `{authorize_url, state}`.
async fn start(
    _: Admin,
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<LoginSessions>>,
) -> Result<Json<StartedLogin>, AdminError> {
    sessions
        .start(state.now_ms())
        .map(Json)
        .map_err(login_error)
}

/// Body of `POST /admin/accounts/login/complete`. Holds a one-time code: no `Debug`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Complete {
    /// The full URL the browser landed on after signing in (or its query string).
    callback_url: String,
}

/// `POST /admin/accounts/login/complete {callback_url}` → the pool's add outcome.
async fn complete(
    _: Admin,
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<LoginSessions>>,
    body: Result<Json<Complete>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    let Json(body) = body.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    finish(&state, &sessions, &body.callback_url)
        .await
        .map(Json)
}

/// `GET /auth/callback?code=…&state=…`: the redirect target of a login.
async fn callback(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<LoginSessions>>,
    RawQuery(query): RawQuery,
) -> Response {
    match finish(&state, &sessions, query.as_deref().unwrap_or("")).await {
        Ok(_) => Html("<!doctype html><title>codex-rotor</title><p>Account added. You can close this tab.</p>")
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// Exchanges the code and adds the account.
async fn finish(
    state: &AppState,
    sessions: &LoginSessions,
    callback: &str,
) -> Result<Value, AdminError> {
    let now = state.now_ms();
    let tokens = sessions
        .complete_from_callback(callback, now)
        .await
        .map_err(login_error)?;
    let rec = crate::accounts::login_record(&tokens, now)
        .map_err(|e| AdminError::BadRequest(e.to_string()))?;
    let email = rec.identity.email.clone();
    let mut report = crate::accounts::merge::MergeReport::default();
    let outcome = crate::accounts::add_one(state.add_target(), rec, &mut report)
        .await
        .map_err(|e| AdminError::Pool(e.to_string()))?;
    tracing::info!(?outcome, "account added by login");
    Ok(json!({ "email": email, "outcome": outcome }))
}

/// Maps a login failure to the admin API's error shape (never echoing a code or token).
fn login_error(e: LoginError) -> AdminError {
    match e {
        LoginError::Exchange(_) => AdminError::Pool(e.to_string()),
        _ => AdminError::BadRequest(e.to_string()),
    }
}
