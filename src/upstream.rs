//! The upstream session: one shared `reqwest::Client` (connection pool, rustls) plus, per
//! request, the serving account's credentials and stable identity headers. Bytes never travel
//! through an actor mailbox: the proxy calls [`Upstream::responses`] with the lease's
//! credentials and streams the answer itself.
//!
//! Per-account identity is stable: every request of an account carries the same `originator`
//! and `user-agent` (from config) and its own `chatgpt-account-id`; conversation headers
//! (`session-id`, `x-codex-turn-state`, …) are forwarded from the client so upstream sees the
//! same turn structure Codex would send directly (docs/protocol.md §2), the client's ids in them
//! replaced by the serving account's pseudonyms ([`pseudonym`]).

pub mod catalogue;
pub mod classify;
pub mod cookies;
pub mod evidence;
pub mod names;
pub mod pseudonym;
pub mod shape;
pub mod usage;

use bytes::Bytes;
use http::HeaderMap;
use std::time::Duration;

/// Client request headers forwarded upstream (conversation structure, never credentials or
/// hop-by-hop headers); those of [`pseudonym::HEADERS`] with the client's ids replaced.
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
    // Sent by Codex for Responses-Lite models; upstream serves them only with it.
    "x-openai-internal-codex-responses-lite",
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
    /// `version` header of model requests and `client_version` of the catalogue.
    pub client_version: String,
}

impl UpstreamSettings {
    /// The session settings `config.upstream` asks for.
    pub fn from_config(u: &crate::config::UpstreamConfig) -> Self {
        Self {
            base_url: u.base_url.trim_end_matches('/').to_owned(),
            connect_timeout: u.connect_timeout,
            first_byte_timeout: u.first_byte_timeout,
            idle_timeout: u.idle_timeout,
            user_agent: u.user_agent.clone(),
            originator: u.originator.clone(),
            client_version: u.client_version.clone(),
        }
    }
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self::from_config(&crate::config::UpstreamConfig::default())
    }
}

/// What the proxy needs to talk to upstream for one account.
#[derive(Clone, Copy)]
pub struct Creds<'a> {
    /// Pool account id (whose Cloudflare cookie jar the request uses).
    pub account: &'a str,
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
    /// A body read whole was silent longer than `idle_timeout`.
    #[error("upstream body silent for {0:?}")]
    IdleTimeout(Duration),
    /// A body read whole was longer than its limit (bytes).
    #[error("upstream body larger than {0} bytes")]
    TooLarge(usize),
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
    /// Each account's Cloudflare cookies.
    jars: std::sync::Arc<cookies::CookieJars>,
    /// The Codex model catalogue last fetched.
    catalogue: std::sync::Arc<catalogue::CatalogueCache>,
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
    /// `version` from config (likewise); sent on model requests only, as Codex does.
    version: Option<http::HeaderValue>,
    /// `{base}/codex/models?client_version=…`.
    models_url: String,
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
            version: http::HeaderValue::from_str(&settings.client_version).ok(),
            models_url: format!(
                "{}/codex/models?client_version={}",
                settings.base_url, settings.client_version
            ),
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
            jars: std::sync::Arc::default(),
            catalogue: std::sync::Arc::default(),
        })
    }

    /// The shared HTTP client (also used by the OAuth refresher: one connection pool).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The Codex model catalogue cache.
    pub fn catalogue(&self) -> &catalogue::CatalogueCache {
        &self.catalogue
    }

    /// The accounts' Cloudflare cookie jars.
    pub fn cookie_jars(&self) -> &cookies::CookieJars {
        &self.jars
    }

    /// The settings in use.
    pub fn settings(&self) -> &UpstreamSettings {
        &self.settings
    }

    /// `POST {base}/codex/responses` for one account. Resolves when the response head arrived
    /// (bounded by `first_byte_timeout`); the body is streamed by the caller. The client ids
    /// in the forwarded headers become `ids`' stand-ins (the account's, the body's same ones).
    pub async fn responses(
        &self,
        creds: Creds<'_>,
        body: Bytes,
        client_headers: &HeaderMap,
        ids: &mut pseudonym::StandIns<'_>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let mut headers = self.model_identity(creds);
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
                headers.append(name.clone(), ids.header(name, v));
            }
        }
        let req = match &self.prebuilt.responses_url {
            Some(url) => self.client.post(url.clone()),
            None => self.client.post(responses_url(&self.settings.base_url)),
        };
        self.send(creds.account, req.headers(headers).body(body))
            .await
    }

    /// `GET {base}/codex/models` with one account's credentials.
    pub async fn models(&self, creds: Creds<'_>) -> Result<reqwest::Response, UpstreamError> {
        self.send(
            creds.account,
            self.client
                .get(&self.prebuilt.models_url)
                .headers(self.model_identity(creds)),
        )
        .await
    }

    /// `GET {base}/wham/usage` with one account's credentials.
    pub async fn usage(&self, creds: Creds<'_>) -> Result<reqwest::Response, UpstreamError> {
        let url = format!("{}/wham/usage", self.settings.base_url);
        self.send(
            creds.account,
            self.client
                .get(url)
                .headers(self.identity(creds))
                .header(http::header::ACCEPT, "*/*"),
        )
        .await
    }

    /// Reads a whole (small) answer body: at most `limit` bytes, no chunk further apart than
    /// `idle_timeout`.
    pub async fn read_all(
        &self,
        mut resp: reqwest::Response,
        limit: usize,
    ) -> Result<Bytes, UpstreamError> {
        let idle = self.settings.idle_timeout;
        let mut buf = Vec::new();
        loop {
            match tokio::time::timeout(idle, resp.chunk()).await {
                Err(_) => return Err(UpstreamError::IdleTimeout(idle)),
                Ok(Err(e)) => return Err(UpstreamError::Transport(e)),
                Ok(Ok(None)) => return Ok(Bytes::from(buf)),
                Ok(Ok(Some(chunk))) => {
                    if buf.len() + chunk.len() > limit {
                        return Err(UpstreamError::TooLarge(limit));
                    }
                    buf.extend_from_slice(&chunk);
                }
            }
        }
    }

    /// Sends with the account's cookie jar: its Cloudflare cookies go out, the ones the
    /// answer sets are kept.
    async fn send(
        &self,
        account: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, UpstreamError> {
        let req = match self.jars.header(account) {
            Some(cookie) => req.header(http::header::COOKIE, cookie),
            None => req,
        };
        let bound = self.settings.first_byte_timeout;
        match tokio::time::timeout(bound, req.send()).await {
            Ok(Ok(resp)) => {
                self.jars.absorb(account, resp.headers());
                Ok(resp)
            }
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

    /// [`Upstream::identity`] plus the `version` header Codex's built-in provider puts on its
    /// model requests (`/codex/responses`, `/codex/models`), not on the usage probe.
    fn model_identity(&self, creds: Creds<'_>) -> HeaderMap {
        let mut h = self.identity(creds);
        if let Some(v) = &self.prebuilt.version {
            h.insert(http::HeaderName::from_static("version"), v.clone());
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
            account: "a1",
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
                account: "a1",
                access_token: "tok",
                chatgpt_account_id: Some("acct-1")
            })
        );
    }

    /// Serves `app` on an ephemeral loopback port; returns its address.
    async fn serve_on_loopback(app: axum::Router) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// Model requests carry the presented Codex version and the Responses-Lite marker a client
    /// sent; the usage probe carries no `version` (Codex's backend client sends none).
    #[tokio::test]
    async fn model_requests_carry_the_version_and_forward_responses_lite() {
        use std::sync::{Arc, Mutex};
        let seen: Arc<Mutex<Vec<(String, HeaderMap)>>> = Arc::default();
        let seen2 = seen.clone();
        let app = axum::Router::new().fallback(move |uri: http::Uri, headers: HeaderMap| {
            let seen = seen2.clone();
            async move {
                seen.lock().expect("lock").push((uri.to_string(), headers));
                "{}"
            }
        });
        let addr = serve_on_loopback(app).await;
        let cfg = crate::config::UpstreamConfig {
            base_url: format!("http://{addr}/backend-api"),
            client_version: "9.8.7".into(),
            ..Default::default()
        };
        let up = Upstream::new(UpstreamSettings::from_config(&cfg)).expect("client");
        let creds = || Creds {
            account: "a1",
            access_token: "tok",
            chatgpt_account_id: Some("acct-1"),
        };
        let mut client = HeaderMap::new();
        client.insert(
            "x-openai-internal-codex-responses-lite",
            "true".parse().expect("value"),
        );
        client.insert("x-api-key", "client-secret".parse().expect("value"));
        let mut ids = pseudonym::StandIns::new("a1", &());
        up.responses(creds(), Bytes::from_static(b"{}"), &client, &mut ids)
            .await
            .expect("responses");
        up.models(creds()).await.expect("models");
        up.usage(creds()).await.expect("usage");
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(seen.len(), 3, "{seen:?}");
        let (uri, h) = &seen[0];
        assert_eq!(uri, "/backend-api/codex/responses");
        assert_eq!(h["version"], "9.8.7");
        assert_eq!(h["x-openai-internal-codex-responses-lite"], "true");
        assert!(h.get("x-api-key").is_none(), "client credentials stay here");
        let (uri, h) = &seen[1];
        assert_eq!(uri, "/backend-api/codex/models?client_version=9.8.7");
        assert_eq!(h["version"], "9.8.7");
        let (uri, h) = &seen[2];
        assert_eq!(uri, "/backend-api/wham/usage");
        assert!(h.get("version").is_none(), "{h:?}");
    }

    /// Cloudflare cookies an answer sets go back with that account's next request, never with
    /// another account's.
    #[tokio::test]
    async fn each_account_sends_back_its_own_cloudflare_cookies() {
        use std::sync::{Arc, Mutex};
        let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let seen2 = seen.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap| {
            let seen = seen2.clone();
            async move {
                let cookie = headers
                    .get("cookie")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let account = headers["chatgpt-account-id"]
                    .to_str()
                    .unwrap_or("")
                    .to_owned();
                seen.lock().expect("lock").push(cookie);
                (
                    [(
                        http::header::SET_COOKIE,
                        format!("__cf_bm=bm-{account}; path=/; HttpOnly"),
                    )],
                    "{}",
                )
            }
        });
        let addr = serve_on_loopback(app).await;
        let cfg = crate::config::UpstreamConfig {
            base_url: format!("http://{addr}/backend-api"),
            ..Default::default()
        };
        let up = Upstream::new(UpstreamSettings::from_config(&cfg)).expect("client");
        let creds = |account| Creds {
            account,
            access_token: "tok",
            chatgpt_account_id: Some(account),
        };
        let none = HeaderMap::new();
        for account in ["a", "b", "a", "b"] {
            let mut ids = pseudonym::StandIns::new(account, &());
            up.responses(creds(account), Bytes::from_static(b"{}"), &none, &mut ids)
                .await
                .expect("responses");
        }
        up.usage(creds("a")).await.expect("usage");
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(
            seen,
            vec![
                None,
                None,
                Some("__cf_bm=bm-a".to_owned()),
                Some("__cf_bm=bm-b".to_owned()),
                Some("__cf_bm=bm-a".to_owned()),
            ]
        );
        assert_eq!(up.cookie_jars().len(), 2);
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
