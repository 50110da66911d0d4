//! Adding an account by logging in: the OAuth authorization-code flow with PKCE (S256) and a
//! `state` nonce, against the configured auth server (`refresh.authorize_url`,
//! `upstream.token_url`, `refresh.client_id`). [`LoginSessions`] holds the pending logins
//! (verifier per state, 5-minute lifetime, each usable once so a replayed callback cannot
//! exchange a code twice); the dashboard starts a login, the operator signs in, and the callback
//! (or a pasted callback URL) completes it with [`LoginSessions::complete`]. The HTTP routes
//! for the dashboard are in the admin API (`http::admin::login`).

mod pkce;

pub use pkce::Pkce;

use pkce::random_b64;
use rotor_actors::UnixMs;
use std::collections::HashMap;
use std::sync::Mutex;

use super::refresh::{CLIENT_ID, DEFAULT_ORIGINATOR};
pub use super::tokens::LoginTokens;

/// The redirect URI registered for the Codex client id (the only one the real auth server
/// accepts); the code arrives there and is pasted back, or relayed by a local callback.
pub const DEFAULT_REDIRECT_URI: &str = "http://localhost:1455/auth/callback";
/// Scopes Codex asks for (its `login/src/server.rs`); `offline_access` is what yields a
/// refresh token.
const SCOPE: &str = "openid profile email offline_access api.connectors.read api.connectors.invoke";
/// How long a started login may wait for its callback.
const SESSION_TTL_MS: UnixMs = 5 * 60 * 1000;
/// Upper bound on pending logins, so a flood of starts cannot grow memory without limit.
const MAX_PENDING: usize = 256;

/// The authorize endpoint that belongs to a token endpoint (`…/oauth/token` → `…/oauth/authorize`).
pub fn authorize_endpoint(token_url: &str) -> String {
    match token_url.strip_suffix("/token") {
        Some(base) => format!("{base}/authorize"),
        None => format!("{}/oauth/authorize", token_url.trim_end_matches('/')),
    }
}

/// Where the login talks to: the auth server's endpoints and the client it logs in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginSettings {
    /// Endpoint the browser is sent to (`…/oauth/authorize`).
    pub authorize_url: String,
    /// Token endpoint for the code exchange (`…/oauth/token`).
    pub token_url: String,
    /// OAuth client id (Codex CLI's).
    pub client_id: String,
    /// Redirect URI sent in both legs (they must match).
    pub redirect_uri: String,
}

impl LoginSettings {
    /// Settings for the auth server of `token_url` (its sibling `/authorize`), Codex's client
    /// id and redirect URI.
    pub fn for_token_url(token_url: &str) -> Self {
        LoginSettings {
            authorize_url: authorize_endpoint(token_url),
            token_url: token_url.to_owned(),
            client_id: CLIENT_ID.to_owned(),
            redirect_uri: DEFAULT_REDIRECT_URI.to_owned(),
        }
    }

    /// Settings from the daemon's config. When the token endpoint was moved (e.g. to the
    /// simulator) but the authorize URL left at its default, the authorize endpoint follows the
    /// token endpoint, so one key points both at another auth server.
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        let defaults = crate::config::Config::default();
        let moved = cfg.upstream.token_url != defaults.upstream.token_url;
        let authorize_url = if moved && cfg.refresh.authorize_url == defaults.refresh.authorize_url
        {
            authorize_endpoint(&cfg.upstream.token_url)
        } else {
            cfg.refresh.authorize_url.clone()
        };
        LoginSettings {
            authorize_url,
            token_url: cfg.upstream.token_url.clone(),
            client_id: cfg.refresh.client_id.clone(),
            redirect_uri: DEFAULT_REDIRECT_URI.to_owned(),
        }
    }
}

/// The full authorize URL Codex opens in the browser (docs/predecessor.md §6), spaces as `%20`.
pub fn authorize_url(
    settings: &LoginSettings,
    pkce: &Pkce,
    state: &str,
) -> Result<String, LoginError> {
    let params = [
        ("response_type", "code"),
        ("client_id", settings.client_id.as_str()),
        ("redirect_uri", settings.redirect_uri.as_str()),
        ("scope", SCOPE),
        ("code_challenge", pkce.challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("id_token_add_organizations", "true"),
        ("codex_cli_simplified_flow", "true"),
        ("state", state),
        ("originator", "codex_cli_rs"),
    ];
    let url = reqwest::Url::parse_with_params(&settings.authorize_url, params)
        .map_err(|e| LoginError::Config(format!("bad authorize endpoint: {e}")))?;
    // `Url` encodes spaces in queries as `+`; the real server expects `%20`.
    Ok(url.as_str().replace('+', "%20"))
}

/// Why a login could not complete.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The `state` is unknown, already used or older than 5 minutes.
    #[error("unknown or expired login (state); start the login again")]
    UnknownState,
    /// The callback carried an OAuth error instead of a code.
    #[error("the auth server refused the login: {0}")]
    Denied(String),
    /// The callback URL or parameters are malformed.
    #[error("bad callback: {0}")]
    BadCallback(String),
    /// The token endpoint failed the code exchange.
    #[error("code exchange failed: {0}")]
    Exchange(String),
    /// A configured URL is unusable, or too many logins are pending.
    #[error("login configuration: {0}")]
    Config(String),
}

/// A login the dashboard started: where to send the operator and which state to expect back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StartedLogin {
    /// Open this in a browser.
    pub authorize_url: String,
    /// The nonce the callback must carry.
    pub state: String,
}

/// One pending login.
struct Pending {
    /// PKCE verifier for the exchange.
    verifier: String,
    /// When it was started (for the 5-minute lifetime).
    started_at: UnixMs,
}

/// Pending PKCE logins, keyed by state.
pub struct LoginSessions {
    /// Shared HTTP client.
    client: reqwest::Client,
    /// Auth server endpoints and client.
    settings: LoginSettings,
    /// state → pending login.
    pending: Mutex<HashMap<String, Pending>>,
}

impl LoginSessions {
    /// Login sessions against the auth server named by `settings`.
    pub fn new(client: reqwest::Client, settings: LoginSettings) -> Self {
        LoginSessions {
            client,
            settings,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Starts a login: fresh PKCE pair and state, remembered for 5 minutes.
    pub fn start(&self, now: UnixMs) -> Result<StartedLogin, LoginError> {
        let pkce = Pkce::generate();
        let state = random_b64(24);
        let url = authorize_url(&self.settings, &pkce, &state)?;
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, p| now - p.started_at < SESSION_TTL_MS);
        if pending.len() >= MAX_PENDING {
            return Err(LoginError::Config(
                "too many logins in progress; try again in a few minutes".into(),
            ));
        }
        pending.insert(
            state.clone(),
            Pending {
                verifier: pkce.verifier,
                started_at: now,
            },
        );
        Ok(StartedLogin {
            authorize_url: url,
            state,
        })
    }

    /// Completes a login from the full callback URL (or just its query string) the browser
    /// landed on.
    pub async fn complete_from_callback(
        &self,
        callback: &str,
        now: UnixMs,
    ) -> Result<LoginTokens, LoginError> {
        let query = callback.split_once('?').map_or(callback, |(_, q)| q);
        let (mut code, mut state, mut error) = (None, None, None);
        for (k, v) in url_pairs(query) {
            match k.as_str() {
                "code" => code = Some(v),
                "state" => state = Some(v),
                "error" | "error_description" => error = Some(v),
                _ => {}
            }
        }
        if let Some(e) = error {
            return Err(LoginError::Denied(e));
        }
        let (Some(code), Some(state)) = (code, state) else {
            return Err(LoginError::BadCallback(
                "expected `code` and `state` parameters".into(),
            ));
        };
        self.complete(&code, &state, now).await
    }

    /// Exchanges `code` for tokens if `state` names a live pending login (used at most once).
    pub async fn complete(
        &self,
        code: &str,
        state: &str,
        now: UnixMs,
    ) -> Result<LoginTokens, LoginError> {
        let pending = {
            let mut map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            map.remove(state)
                .filter(|p| now - p.started_at < SESSION_TTL_MS)
        };
        let Some(pending) = pending else {
            return Err(LoginError::UnknownState);
        };
        exchange_code(&self.client, &self.settings, code, &pending.verifier).await
    }
}

/// Exchanges an authorization code (form-encoded, as Codex does) for tokens.
pub async fn exchange_code(
    client: &reqwest::Client,
    settings: &LoginSettings,
    code: &str,
    verifier: &str,
) -> Result<LoginTokens, LoginError> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", settings.redirect_uri.as_str()),
        ("client_id", settings.client_id.as_str()),
        ("code_verifier", verifier),
    ];
    let resp = client
        .post(&settings.token_url)
        .header("originator", DEFAULT_ORIGINATOR)
        .form(&form)
        .send()
        .await
        .map_err(|e| {
            LoginError::Exchange(format!(
                "token endpoint unreachable ({})",
                if e.is_timeout() { "timeout" } else { "connect" }
            ))
        })?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|_| LoginError::Exchange("could not read the answer".into()))?;
    if !status.is_success() {
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let code = v
            .pointer("/error/code")
            .or_else(|| v.get("error"))
            .and_then(|c| c.as_str())
            .unwrap_or("no error code");
        return Err(LoginError::Exchange(format!(
            "HTTP {}: {code}",
            status.as_u16()
        )));
    }
    let tokens: LoginTokens = serde_json::from_slice(&bytes)
        .map_err(|_| LoginError::Exchange("the answer is not token JSON".into()))?;
    if !rotor_actors::jwt::is_jwt(&tokens.access_token) {
        return Err(LoginError::Exchange("the access token is not a JWT".into()));
    }
    Ok(tokens)
}

/// Decodes `a=b&c=d` (percent and `+` decoding).
fn url_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorize_url_carries_every_codex_parameter() {
        let p = Pkce {
            verifier: "v".into(),
            challenge: "ch".into(),
        };
        let settings = LoginSettings::for_token_url("http://127.0.0.1:9/oauth/token");
        let url = authorize_url(&settings, &p, "st").expect("url");
        assert!(url.starts_with(
            "http://127.0.0.1:9/oauth/authorize?response_type=code&client_id=app_EMoamEEZ73f0CkXaXp7hrann&"
        ));
        assert!(url.contains(
            "scope=openid%20profile%20email%20offline_access%20api.connectors.read%20api.connectors.invoke&"
        ));
        assert!(url.contains("code_challenge=ch&code_challenge_method=S256"));
        assert!(url.contains("redirect_uri=http%3A%2F%2Flocalhost%3A1455%2Fauth%2Fcallback"));
        assert!(url.contains("state=st") && url.contains("originator=codex_cli_rs"));
    }

    #[test]
    fn the_authorize_endpoint_follows_a_moved_token_endpoint() {
        let mut cfg = crate::config::Config::default();
        assert_eq!(
            LoginSettings::from_config(&cfg).authorize_url,
            "https://auth.openai.com/oauth/authorize"
        );
        cfg.upstream.token_url = "http://127.0.0.1:9/oauth/token".into();
        assert_eq!(
            LoginSettings::from_config(&cfg).authorize_url,
            "http://127.0.0.1:9/oauth/authorize"
        );
        cfg.refresh.authorize_url = "http://elsewhere/authorize".into();
        cfg.refresh.client_id = "app_other".into();
        let s = LoginSettings::from_config(&cfg);
        assert_eq!(
            (s.authorize_url.as_str(), s.client_id.as_str()),
            ("http://elsewhere/authorize", "app_other")
        );
    }

    #[tokio::test]
    async fn unknown_or_reused_state_is_refused_without_a_network_call() {
        let s = LoginSessions::new(
            reqwest::Client::new(),
            LoginSettings::for_token_url("http://127.0.0.1:9/oauth/token"),
        );
        let started = s.start(0).expect("start");
        assert!(matches!(
            s.complete("c", "other", 1).await,
            Err(LoginError::UnknownState)
        ));
        // Too late: the session has expired and is gone for good.
        assert!(matches!(
            s.complete("c", &started.state, SESSION_TTL_MS + 1).await,
            Err(LoginError::UnknownState)
        ));
        assert!(matches!(
            s.complete("c", &started.state, 2).await,
            Err(LoginError::UnknownState)
        ));
        let cb = format!(
            "http://localhost:1455/auth/callback?error=access_denied&state={}",
            started.state
        );
        assert!(matches!(
            s.complete_from_callback(&cb, 1).await,
            Err(LoginError::Denied(_))
        ));
    }
}
