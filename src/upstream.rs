//! The upstream session: one shared `reqwest::Client` (connection pool, rustls) plus, per
//! request, the serving account's credentials and stable identity headers. Bytes never travel
//! through an actor mailbox: the proxy calls [`Upstream::responses`] with the lease's
//! credentials and streams the answer itself.
//!
//! Per-account identity is stable: every request of an account carries the same `originator`
//! and `user-agent` (from config) and its own `chatgpt-account-id`; conversation headers
//! (`session-id`, `x-codex-turn-state`, …) are forwarded from the client so upstream sees the
//! same turn structure Codex would send directly (docs/protocol.md §2).

pub mod classify;
pub mod usage;

use bytes::Bytes;
use http::HeaderMap;
use std::time::Duration;

/// Client request headers forwarded upstream unchanged (conversation structure, never
/// credentials or hop-by-hop headers).
pub const FORWARDED_REQUEST_HEADERS: &[&str] = &[
    "session-id",
    "session_id",
    "thread-id",
    "x-client-request-id",
    "x-codex-window-id",
    "x-codex-turn-metadata",
    "x-codex-beta-features",
    "x-codex-turn-state",
    "x-codex-parent-thread-id",
    "x-openai-subagent",
    "x-codex-routing-hint",
    "openai-beta",
];

/// Settings of the upstream session (a copy of `config.upstream`, kept small on purpose).
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// `https://chatgpt.com/backend-api` or the simulator's backend URL.
    pub base_url: String,
    /// TCP+TLS connect bound.
    pub connect_timeout: Duration,
    /// Bound on waiting for the response head.
    pub first_byte_timeout: Duration,
    /// Bound on silence between two body chunks.
    pub idle_timeout: Duration,
    /// `user-agent` sent for every account.
    pub user_agent: String,
    /// `originator` sent for every account.
    pub originator: String,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            base_url: "https://chatgpt.com/backend-api".into(),
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(300),
            user_agent: "codex_cli_rs/0.169.0 (codex-rotor)".into(),
            originator: "codex_cli_rs".into(),
        }
    }
}

/// What the proxy needs to talk to upstream for one account.
#[derive(Clone)]
pub struct Creds<'a> {
    /// Bearer token.
    pub access_token: &'a str,
    /// `chatgpt-account-id` header value.
    pub chatgpt_account_id: Option<&'a str>,
}

/// A failure to get any answer from upstream (connect error, timeout); the whole cause chain
/// is kept so a premature close is diagnosable in the log.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No response head within `first_byte_timeout`.
    #[error("upstream sent no response head within {0:?}")]
    FirstByteTimeout(Duration),
    /// Transport-level failure.
    #[error("upstream transport error: {}", chain(.0))]
    Transport(#[source] reqwest::Error),
    /// The client could not be built (TLS backend).
    #[error("cannot build the upstream client: {}", chain(.0))]
    Build(#[source] reqwest::Error),
}

/// Renders an error with every `source()` joined by `: ` (what `{:#}` does for anyhow).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let s_text = s.to_string();
        if !out.ends_with(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        cur = s.source();
    }
    out
}

/// The shared upstream session.
#[derive(Clone)]
pub struct Upstream {
    client: reqwest::Client,
    settings: UpstreamSettings,
    /// What every request reuses instead of rebuilding it (URL parsing with IDNA, header
    /// validation): the `/codex/responses` URL and the constant identity headers.
    prebuilt: Prebuilt,
}

/// Parts of every upstream request built once, when the session is.
#[derive(Clone)]
struct Prebuilt {
    /// `{base}/codex/responses`, parsed (`None` if the base URL does not parse: each request
    /// then fails with reqwest's own error, as before).
    responses_url: Option<reqwest::Url>,
    /// `originator` from config (`None` if it is not a valid header value: not sent).
    originator: Option<http::HeaderValue>,
    /// `user-agent` from config (likewise).
    user_agent: Option<http::HeaderValue>,
    /// [`FORWARDED_REQUEST_HEADERS`] as header names.
    forwarded: Vec<http::HeaderName>,
}

/// `{base}/codex/responses`: where Responses requests go (the benchmarks aim at the same
/// place on the simulator).
pub fn responses_url(base: &str) -> String {
    format!("{base}/codex/responses")
}

impl Prebuilt {
    fn new(settings: &UpstreamSettings) -> Self {
        Self {
            responses_url: reqwest::Url::parse(&responses_url(&settings.base_url)).ok(),
            originator: http::HeaderValue::from_str(&settings.originator).ok(),
            user_agent: http::HeaderValue::from_str(&settings.user_agent).ok(),
            forwarded: FORWARDED_REQUEST_HEADERS
                .iter()
                .map(|n| http::HeaderName::from_static(n))
                .collect(),
        }
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("base_url", &self.settings.base_url)
            .finish()
    }
}

impl Upstream {
    /// Builds the client (connection pool shared by every account).
    pub fn new(settings: UpstreamSettings) -> Result<Self, UpstreamError> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .map_err(UpstreamError::Build)?;
        let prebuilt = Prebuilt::new(&settings);
        Ok(Self {
            client,
            settings,
            prebuilt,
        })
    }

    /// The shared HTTP client (also used by the OAuth refresher: one connection pool).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The settings in use.
    pub fn settings(&self) -> &UpstreamSettings {
        &self.settings
    }

    /// `POST {base}/codex/responses` for one account. Resolves when the response head arrived
    /// (bounded by `first_byte_timeout`); the body is streamed by the caller.
    pub async fn responses(
        &self,
        creds: Creds<'_>,
        body: Bytes,
        client_headers: &HeaderMap,
    ) -> Result<reqwest::Response, UpstreamError> {
        let mut headers = self.identity(creds);
        headers.reserve(4);
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        headers.insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("text/event-stream"),
        );
        for name in &self.prebuilt.forwarded {
            for v in client_headers.get_all(name) {
                headers.append(name.clone(), v.clone());
            }
        }
        let req = match &self.prebuilt.responses_url {
            Some(url) => self.client.post(url.clone()),
            None => self.client.post(responses_url(&self.settings.base_url)),
        };
        self.send(req.headers(headers).body(body)).await
    }

    /// `GET {base}/codex/models` with one account's credentials.
    pub async fn models(&self, creds: Creds<'_>) -> Result<reqwest::Response, UpstreamError> {
        let url = format!(
            "{}/codex/models?client_version=0.169.0",
            self.settings.base_url
        );
        self.send(self.client.get(url).headers(self.identity(creds)))
            .await
    }

    /// `GET {base}/wham/usage` with one account's credentials.
    pub async fn usage(&self, creds: Creds<'_>) -> Result<reqwest::Response, UpstreamError> {
        let url = format!("{}/wham/usage", self.settings.base_url);
        self.send(
            self.client
                .get(url)
                .headers(self.identity(creds))
                .header(http::header::ACCEPT, "*/*"),
        )
        .await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, UpstreamError> {
        let bound = self.settings.first_byte_timeout;
        match tokio::time::timeout(bound, req.send()).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(UpstreamError::Transport(e)),
            Err(_) => Err(UpstreamError::FirstByteTimeout(bound)),
        }
    }

    /// Credentials plus the stable per-account identity headers.
    pub fn identity(&self, creds: Creds<'_>) -> HeaderMap {
        let mut h = HeaderMap::with_capacity(8);
        let mut bearer = Vec::with_capacity(7 + creds.access_token.len());
        bearer.extend_from_slice(b"Bearer ");
        bearer.extend_from_slice(creds.access_token.as_bytes());
        if let Ok(mut v) = http::HeaderValue::from_maybe_shared(Bytes::from(bearer)) {
            v.set_sensitive(true);
            h.insert(http::header::AUTHORIZATION, v);
        }
        if let Some(id) = creds
            .chatgpt_account_id
            .and_then(|id| http::HeaderValue::from_str(id).ok())
        {
            h.insert(http::HeaderName::from_static("chatgpt-account-id"), id);
        }
        if let Some(v) = &self.prebuilt.originator {
            h.insert(http::HeaderName::from_static("originator"), v.clone());
        }
        if let Some(v) = &self.prebuilt.user_agent {
            h.insert(http::header::USER_AGENT, v.clone());
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_headers_carry_account_and_mark_token_sensitive() {
        let up = Upstream::new(UpstreamSettings::default()).expect("client");
        let h = up.identity(Creds {
            access_token: "tok",
            chatgpt_account_id: Some("acct-1"),
        });
        assert_eq!(h["authorization"], "Bearer tok");
        assert!(h["authorization"].is_sensitive());
        assert_eq!(h["chatgpt-account-id"], "acct-1");
        assert_eq!(h["originator"], "codex_cli_rs");
        // Stable: the same account gets the same identity every time.
        assert_eq!(
            h,
            up.identity(Creds {
                access_token: "tok",
                chatgpt_account_id: Some("acct-1")
            })
        );
    }

    #[test]
    fn chain_joins_sources() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other(
            "unexpected EOF during chunk size line",
        ));
        assert_eq!(chain(&e), "outer: unexpected EOF during chunk size line");
    }
}
