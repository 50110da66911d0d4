//! `[upstream]`: the ChatGPT Codex backend and the OAuth token endpoint, and how patiently and
//! how often a request is tried against them.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Where requests go and the budgets of one client request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// Base of every backend URL: `{base_url}/codex/responses`, `{base_url}/wham/usage`,
    /// `{base_url}/codex/models`. Point it at `codex-rotor sim` to rehearse.
    pub base_url: String,
    /// OAuth token endpoint used to refresh access tokens.
    pub token_url: String,
    /// TCP + TLS connect timeout.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest wait for the response headers (upstream may think before answering).
    #[serde(with = "humantime_serde")]
    pub first_byte_timeout: Duration,
    /// Bound on everything before the first byte of one client request — picking accounts,
    /// every attempt and its `first_byte_timeout`, retries, failover — so a hung upstream
    /// cannot hold a client for `first_byte_timeout` × tries × accounts. Past it the client
    /// gets 504 (or, once heartbeats went out, a terminal error event).
    #[serde(with = "humantime_serde")]
    pub request_deadline: Duration,
    /// Longest silence between two chunks of a stream before it is treated as dead.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Retries on the same account for transient failures (5xx, overloaded, connect error)
    /// before moving on to another account.
    pub max_retries_per_account: u32,
    /// Accounts one client request may try (failover budget) before it fails.
    pub max_accounts_per_request: u32,
    /// `User-Agent` sent upstream (docs/protocol.md §2: what Codex CLI sends).
    pub user_agent: String,
    /// `originator` header sent upstream.
    pub originator: String,
    /// The Codex CLI version the daemon presents: the `version` header of model requests and
    /// the `client_version` of the model catalogue (docs/protocol.md §2). New models answer
    /// 400 "requires a newer version of Codex" to an old one, so keep it current.
    pub client_version: String,
}

/// The Codex CLI version the defaults present; the client tests pin the same release
/// (`tests/clients/node/package.json`), so what they prove is what the daemon claims to be.
pub const CODEX_VERSION: &str = "0.169.0";

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            base_url: "https://chatgpt.com/backend-api".into(),
            token_url: "https://auth.openai.com/oauth/token".into(),
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(120),
            request_deadline: Duration::from_secs(180),
            idle_timeout: Duration::from_secs(300),
            max_retries_per_account: 1,
            max_accounts_per_request: 3,
            user_agent: format!("codex_cli_rs/{CODEX_VERSION} (Debian 12.0.0; x86_64) xterm"),
            originator: "codex_cli_rs".into(),
            client_version: CODEX_VERSION.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CODEX_VERSION;

    /// The identity the daemon presents is the release the client tests run: bumping one
    /// without the other fails here.
    #[test]
    fn the_presented_codex_version_is_the_one_the_client_tests_pin() {
        let pins: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/clients/node/package.json"))
                .expect("package.json");
        assert_eq!(pins["dependencies"]["@openai/codex"], CODEX_VERSION);
        let defaults = super::UpstreamConfig::default();
        assert!(defaults.user_agent.contains(&format!("/{CODEX_VERSION} ")));
        assert_eq!(defaults.client_version, CODEX_VERSION);
    }
}
