//! The operator dashboard at `/`: a single page (HTML, CSS and plain JS embedded in the binary
//! with `include_str!`, no CDN, no build step) that logs in with the admin key and then polls
//! the admin API's compact live feed (`/admin/live`) every few seconds. Login opens a
//! server-side session (see [`crate::http::admin::session`]): the browser holds only a random id in
//! an `HttpOnly; SameSite=Strict` cookie, never the key.
//!
//! All URLs the page uses are relative, so the dashboard works under a reverse-proxy path
//! prefix.

use crate::http::admin::session;
use crate::http::state::AppState;
use crate::request_body::{self, BodyError};
use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;

/// The page shell.
const INDEX_HTML: &str = include_str!("dashboard/index.html");
/// The page's stylesheet.
const STYLE_CSS: &str = include_str!("dashboard/style.css");
/// Boot, login, polling, overview and actions.
const APP_JS: &str = include_str!("dashboard/app.js");
/// "Sign in with ChatGPT": adding an account by the OAuth login.
const SIGNIN_JS: &str = include_str!("dashboard/signin.js");
/// The virtualised accounts table.
const TABLE_JS: &str = include_str!("dashboard/table.js");
/// The usage-over-time chart.
const CHART_JS: &str = include_str!("dashboard/chart.js");
/// Sorting of the accounts table by any column.
const SORT_JS: &str = include_str!("dashboard/sort.js");
/// The details view of one account (full reasons, every bucket, dates).
const DETAILS_JS: &str = include_str!("dashboard/details.js");
/// The Nodes panel (cluster mode only).
const NODES_JS: &str = include_str!("dashboard/nodes.js");

/// Content-Security-Policy of the page: only its own scripts and styles, no inline script.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `/`, `/assets/*`, `/login` and `/logout`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route(
            "/assets/style.css",
            get(|| asset(STYLE_CSS, "text/css; charset=utf-8")),
        )
        .route(
            "/assets/app.js",
            get(|| asset(APP_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/assets/signin.js",
            get(|| asset(SIGNIN_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/assets/table.js",
            get(|| asset(TABLE_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/assets/chart.js",
            get(|| asset(CHART_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/assets/sort.js",
            get(|| asset(SORT_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/assets/details.js",
            get(|| asset(DETAILS_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/assets/nodes.js",
            get(|| asset(NODES_JS, "text/javascript; charset=utf-8")),
        )
        .route("/login", post(login))
        .route("/logout", post(logout))
}

/// `GET /`: the page shell (it shows the login form itself when the feed answers 401).
async fn index(OriginalUri(uri): OriginalUri) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        page_for(uri.path()),
    )
        .into_response()
}

/// The shell for a page served at `path`. The page's URLs are relative; served at a path
/// prefix without its trailing slash (`/rotor`), a `<base href="/rotor/">` keeps them under
/// the prefix.
fn page_for(path: &str) -> String {
    let base = if path.ends_with('/') {
        String::new()
    } else {
        let href: String = path
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "/-._~%".contains(*c))
            .collect();
        format!("<base href=\"{href}/\">")
    };
    INDEX_HTML.replace("<!--BASE-->", &base)
}

/// One embedded asset.
async fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// Body of `POST /login`.
#[derive(Deserialize)]
struct LoginBody {
    /// The admin key, as typed by the operator.
    key: String,
}

/// Most of a login body the daemon reads: `{"key": "…"}` fits many times over, and anyone may
/// send this request, so nothing close to `server.max_body_bytes` is ever held for it.
const LOGIN_BODY_MAX: usize = 4096;

/// `POST /login {"key": "..."}`: opens a session when the key is the admin key. The key is in
/// the body, so the body is read — but no more than [`LOGIN_BODY_MAX`], and only once the
/// client's address is within its budget of wrong keys ([`crate::http::admin::auth_attempt`]).
async fn login(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let config = state.config();
    let refuse = |body: Body, answer: Response| {
        request_body::discard(&headers, body, config.server.max_body_bytes);
        answer
    };
    let key = match login_key(&config) {
        Ok(key) => key,
        Err(no_key) => return refuse(body, no_key.into_response()),
    };
    let attempt =
        match crate::http::admin::auth_attempt(&state, &config, &headers, peer.map(|e| e.0)) {
            Ok(attempt) => attempt,
            Err(e) => return refuse(body, e.into_response()),
        };
    let body = match read_login(&headers, body).await {
        Ok(body) => body,
        Err((status, message)) => return error(status, &message),
    };
    if !session::keys_match(body.key.trim(), &key) {
        return error(StatusCode::UNAUTHORIZED, "wrong admin key"); // `attempt` spent
    }
    attempt.succeeded();
    opened(&config, &headers, &key)
}

/// Why a login has no admin key to match.
enum NoKey {
    /// `admin.enabled = false`: 404.
    Disabled,
    /// No key needed, every client is local: the dashboard is open.
    Open,
    /// No key configured, and clients may be remote: refused.
    Closed,
    /// The configured key could not be read (message without the key).
    Unreadable(String),
}

impl IntoResponse for NoKey {
    fn into_response(self) -> Response {
        match self {
            NoKey::Disabled => error(StatusCode::NOT_FOUND, "the admin API is disabled"),
            NoKey::Open => Json(json!({ "ok": true, "open": true })).into_response(),
            NoKey::Closed => error(
                StatusCode::UNAUTHORIZED,
                "no admin key is configured; the admin API is only open on loopback, without a \
                 reverse proxy in front",
            ),
            NoKey::Unreadable(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
        }
    }
}

/// The admin key a login must match.
fn login_key(config: &crate::config::Config) -> Result<String, NoKey> {
    if !config.admin.enabled {
        return Err(NoKey::Disabled);
    }
    match crate::http::admin::admin_key_of(config) {
        Ok(Some(key)) => Ok(key),
        Ok(None) if config.server.clients_are_local() => Err(NoKey::Open),
        Ok(None) => Err(NoKey::Closed),
        Err(e) => Err(NoKey::Unreadable(e)),
    }
}

/// The login body, at most [`LOGIN_BODY_MAX`] bytes of `{"key": "..."}`; else the status and
/// message to answer.
async fn read_login(headers: &HeaderMap, body: Body) -> Result<LoginBody, (StatusCode, String)> {
    let body = match request_body::read(headers, body, LOGIN_BODY_MAX).await {
        Ok(bytes) => serde_json::from_slice::<LoginBody>(&bytes).ok(),
        Err(e @ BodyError::TooLarge { .. }) => {
            return Err((StatusCode::PAYLOAD_TOO_LARGE, e.to_string()));
        }
        Err(_) => None,
    };
    let expected = "expected {\"key\": \"<admin key>\"}";
    body.ok_or_else(|| (StatusCode::BAD_REQUEST, expected.to_owned()))
}

/// The answer to a successful login: a new session in an `HttpOnly; SameSite=Strict` cookie.
fn opened(config: &crate::config::Config, headers: &HeaderMap, key: &str) -> Response {
    let ttl = config.admin.session_ttl;
    let id = session::open(session::fingerprint(key), ttl);
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        session::COOKIE,
        ttl.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    let mut resp = Json(json!({ "ok": true })).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// `POST /logout`: ends the session and clears the cookie.
async fn logout(headers: HeaderMap) -> Response {
    if let Some(id) = session::from_cookie_header(&headers) {
        session::close(&id);
    }
    let cookie = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        session::COOKIE
    );
    let mut resp = Json(json!({ "ok": true })).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// A JSON error in the admin API's shape.
fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "type": "login", "message": message } })),
    )
        .into_response()
}
