//! The token-endpoint client: [`HttpRefresher`] implements `rotor_actors::TokenRefresher` by
//! sending exactly the request Codex sends (docs/protocol.md §7 — JSON body, `originator` and
//! `user-agent`, no Authorization) to the configured `upstream.token_url`, and sorts every
//! failure into the actor's taxonomy: retry later (`Transient`), the refresh token is dead and
//! the account needs a login (`Permanent`), or the account itself is gone (`Deactivated`).
//! The actor owns scheduling, single-flight and persistence; this file only speaks HTTP.

use futures::future::BoxFuture;
use rotor_actors::{NewTokens, RefreshError, RefreshReason, TokenRefresher};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// The OAuth client id of the Codex CLI, which every ChatGPT refresh token was issued to.
pub const CLIENT_ID: &str = "app_EMoamEEZ73f0CkXaXp7hrann";
/// The `originator` header Codex sends (`codex_exec` for non-interactive use).
pub const DEFAULT_ORIGINATOR: &str = "codex_exec";
/// The `user-agent` Codex sends to the token endpoint, for the version the daemon presents.
pub fn default_user_agent() -> String {
    format!(
        "codex_exec/{} (Debian 12.0.0; x86_64) xterm",
        crate::config::upstream::CODEX_VERSION
    )
}
/// Error codes upstream uses for a refresh token that can never work again.
const PERMANENT_CODES: [&str; 4] = [
    "refresh_token_reused",
    "refresh_token_expired",
    "refresh_token_invalidated",
    "invalid_grant",
];

/// Refreshes tokens against an OAuth token endpoint over HTTP. Cheap to clone; shares the
/// daemon's `reqwest::Client` (connection pool, TLS config).
#[derive(Clone, Debug)]
pub struct HttpRefresher {
    /// The shared HTTP client.
    client: reqwest::Client,
    /// `upstream.token_url` (the simulator's `/oauth/token` in tests).
    token_url: String,
    /// `originator` header value.
    originator: String,
    /// `user-agent` header value.
    user_agent: String,
    /// Upper bound on one refresh call, so a hung endpoint cannot hold the single-flight slot.
    timeout: Duration,
    /// OAuth client id the refresh tokens were issued to (`refresh.client_id`).
    client_id: String,
}

impl HttpRefresher {
    /// A refresher posting to `token_url` with Codex's default headers and a 30 s timeout.
    pub fn new(client: reqwest::Client, token_url: impl Into<String>) -> Self {
        HttpRefresher {
            client,
            token_url: token_url.into(),
            originator: DEFAULT_ORIGINATOR.to_owned(),
            user_agent: default_user_agent(),
            timeout: Duration::from_secs(30),
            client_id: CLIENT_ID.to_owned(),
        }
    }

    /// Overrides the OAuth client id (config `refresh.client_id`); empty keeps Codex's.
    pub fn with_client_id(mut self, client_id: &str) -> Self {
        if !client_id.is_empty() {
            self.client_id = client_id.to_owned();
        }
        self
    }

    /// Overrides the `originator` and `user-agent` headers (config `upstream.originator`,
    /// `upstream.user_agent`), so refreshes look like the client the operator configured.
    pub fn with_identity(mut self, originator: &str, user_agent: &str) -> Self {
        if !originator.is_empty() {
            self.originator = originator.to_owned();
        }
        if !user_agent.is_empty() {
            self.user_agent = user_agent.to_owned();
        }
        self
    }

    /// Overrides the per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Performs one refresh call (the body of [`TokenRefresher::refresh`]).
    pub async fn refresh_once(
        &self,
        refresh_token: &str,
        reason: RefreshReason,
    ) -> Result<NewTokens, RefreshError> {
        let body = json!({
            "client_id": self.client_id,
            "grant_type": "refresh_token",
            "refresh_reason": reason_str(reason),
            "refresh_token": refresh_token,
        });
        let response = self
            .client
            .post(&self.token_url)
            .header("originator", &self.originator)
            .header("user-agent", &self.user_agent)
            .header("accept", "*/*")
            .json(&body)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| {
                RefreshError::Transient(format!("token endpoint unreachable: {}", without_url(&e)))
            })?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| {
            RefreshError::Transient(format!("token endpoint body: {}", without_url(&e)))
        })?;
        parse_response(status, &bytes)
    }
}

impl TokenRefresher for HttpRefresher {
    fn refresh(
        &self,
        refresh_token: String,
        reason: RefreshReason,
    ) -> BoxFuture<'static, Result<NewTokens, RefreshError>> {
        let this = self.clone();
        Box::pin(async move { this.refresh_once(&refresh_token, reason).await })
    }
}

/// The `refresh_reason` value Codex sends for each reason.
pub fn reason_str(reason: RefreshReason) -> &'static str {
    match reason {
        RefreshReason::ProactiveExpiry => "proactive_expiry",
        RefreshReason::UnauthorizedRecovery => "unauthorized_recovery",
    }
}

/// The success body: every field optional; each present one replaces the stored one.
#[derive(Deserialize)]
struct TokenBody {
    /// New access token.
    access_token: Option<String>,
    /// Rotated refresh token (the old one is now spent).
    refresh_token: Option<String>,
    /// New id token (must be a JWT).
    id_token: Option<String>,
}

/// Turns the token endpoint's answer into new tokens or a classified failure. Pure, so the
/// taxonomy is unit-tested without a server.
pub fn parse_response(status: u16, body: &[u8]) -> Result<NewTokens, RefreshError> {
    if (200..300).contains(&status) {
        let parsed: TokenBody = serde_json::from_slice(body).map_err(|_| {
            RefreshError::Transient(format!(
                "token endpoint answered {status} with a body that is not token JSON"
            ))
        })?;
        let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
        let id_token = non_empty(parsed.id_token);
        if let Some(id) = &id_token {
            if !super::jwt::is_jwt(id) {
                // Codex refuses such an answer; the refresh token may already be rotated, but
                // without trustworthy tokens the account cannot be used anyway.
                return Err(RefreshError::Transient(
                    "token endpoint returned an id_token that is not a JWT".into(),
                ));
            }
        }
        return Ok(NewTokens {
            access_token: non_empty(parsed.access_token),
            refresh_token: non_empty(parsed.refresh_token),
            id_token,
        });
    }
    classify_failure(status, body)
}

/// Sorts a non-2xx answer: deactivated or banned account → `Deactivated`; a dead refresh token (known
/// codes) or HTTP 401 → `Permanent`; everything else (5xx, 429, odd 4xx) → `Transient`.
fn classify_failure(status: u16, body: &[u8]) -> Result<NewTokens, RefreshError> {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let (code, message) = error_fields(&json);
    let lower = format!(
        "{} {}",
        code.as_deref().unwrap_or(""),
        message.as_deref().unwrap_or("")
    )
    .to_lowercase();
    let text = String::from_utf8_lossy(body).to_lowercase();
    let gone = |t: &str| t.contains("deactivated") || t.contains("banned");
    if gone(&lower) || (json.is_null() && gone(&text)) {
        return Err(RefreshError::Deactivated(
            message
                .or(code)
                .unwrap_or_else(|| "account has been deactivated".into()),
        ));
    }
    if let Some(code) = code.as_deref().filter(|c| PERMANENT_CODES.contains(c)) {
        return Err(RefreshError::Permanent {
            code: code.to_owned(),
            message: message.unwrap_or_else(|| code.to_owned()),
        });
    }
    if status == 401 {
        return Err(RefreshError::Permanent {
            code: code.unwrap_or_else(|| "http_401".into()),
            message: message.unwrap_or_else(|| "token endpoint answered 401".into()),
        });
    }
    let what = code.or(message).unwrap_or_else(|| "no error code".into());
    Err(RefreshError::Transient(format!(
        "token endpoint answered {status}: {what}"
    )))
}

/// Extracts `(code, message)` from the shapes OAuth servers use: `{"error":{"code","message"}}`,
/// `{"error":"code","error_description":"…"}`, or `{"code","message"}`.
fn error_fields(json: &Value) -> (Option<String>, Option<String>) {
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    match json.get("error") {
        Some(Value::Object(e)) => (
            s(e.get("code")).or_else(|| s(e.get("type"))),
            s(e.get("message")),
        ),
        Some(Value::String(code)) => (
            Some(code.clone()),
            s(json.get("error_description")).or_else(|| s(json.get("message"))),
        ),
        _ => (s(json.get("code")), s(json.get("message"))),
    }
}

/// A reqwest error's text without the URL (the URL is config, but keep logs short and never
/// risk query-string secrets).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect error"
    } else if e.is_body() || e.is_decode() {
        "body error"
    } else {
        "request error"
    };
    match std::error::Error::source(e) {
        Some(src) => format!("{kind}: {src}"),
        None => kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, body: &str) -> RefreshError {
        match parse_response(status, body.as_bytes()) {
            Err(e) => e,
            Ok(_) => panic!("expected an error for {status} {body}"),
        }
    }

    fn permanent_code(e: RefreshError) -> String {
        match e {
            RefreshError::Permanent { code, .. } => code,
            other => panic!("expected Permanent, got {other:?}"),
        }
    }

    #[test]
    fn dead_refresh_tokens_are_permanent_with_their_code() {
        for code in PERMANENT_CODES {
            let body = format!(r#"{{"error":{{"code":"{code}","message":"m"}}}}"#);
            assert_eq!(permanent_code(err(400, &body)), code);
        }
        assert_eq!(
            permanent_code(err(
                400,
                r#"{"error":"invalid_grant","error_description":"x"}"#
            )),
            "invalid_grant"
        );
        assert_eq!(permanent_code(err(401, "")), "http_401");
        assert_eq!(
            permanent_code(err(401, r#"{"error":{"code":"token_revoked"}}"#)),
            "token_revoked"
        );
    }

    #[test]
    fn deactivated_accounts_and_transient_failures_are_told_apart() {
        assert!(matches!(
            err(
                403,
                r#"{"error":{"code":"account_deactivated","message":"This account has been deactivated"}}"#
            ),
            RefreshError::Deactivated(_)
        ));
        assert!(matches!(err(500, "oops"), RefreshError::Transient(_)));
        assert!(matches!(
            err(503, r#"{"error":{"code":"server_is_overloaded"}}"#),
            RefreshError::Transient(_)
        ));
        assert!(matches!(err(429, "{}"), RefreshError::Transient(_)));
        assert!(matches!(err(200, "<html>"), RefreshError::Transient(_)));
    }

    #[test]
    fn success_keeps_present_tokens_and_rejects_non_jwt_id_tokens() {
        let ok =
            parse_response(200, br#"{"access_token":"a","refresh_token":"rt_2"}"#).expect("ok");
        assert_eq!(ok.access_token.as_deref(), Some("a"));
        assert_eq!(ok.refresh_token.as_deref(), Some("rt_2"));
        assert_eq!(ok.id_token, None);
        assert!(matches!(
            err(200, r#"{"id_token":"nope"}"#),
            RefreshError::Transient(_)
        ));
    }
}
