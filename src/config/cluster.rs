//! `[cluster]`: several nodes sharing one pool through the PostgreSQL store (docs/cluster.md).
//! Off by default; a single node needs none of it.

use super::access::{EnvLookup, resolve_secret};
use super::secret::{Secret, decode_binary};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The environment variable the cluster secret (the HMAC key of forwarded requests) is read
/// from unless `secret_env`/`secret_file` say else.
pub const DEFAULT_SECRET_ENV: &str = "CODEX_ROTOR_CLUSTER_SECRET";

/// The shortest cluster secret accepted, in bytes after decoding: as strong as the store key.
pub const MIN_SECRET_BYTES: usize = 32;

/// The `[cluster]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Join the cluster (needs `[store] backend = "postgres"`).
    pub enabled: bool,
    /// This node's id: unique in the cluster and stable across restarts (default: the host
    /// name).
    pub node_id: Option<String>,
    /// The base URL other nodes reach this node's client listener at
    /// (`http://10.0.0.5:8080`); requests forwarded to this node arrive there.
    pub advertise: Option<String>,
    /// The session lease: a node that has not renewed for this long loses its accounts.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// How long before its lease would lapse a node stops acting as an owner (self-fencing).
    #[serde(with = "humantime_serde")]
    pub margin: Duration,
    /// How often a node looks for accounts to claim or hand over.
    #[serde(with = "humantime_serde")]
    pub claim_every: Duration,
    /// How long a streaming request forwarded to a peer waits for the head of the peer's
    /// answer; past it the peer counts as unavailable (a paused or wedged node still accepts
    /// connections) and the request is served here, spilt or refused as without it. Capped
    /// by `upstream.request_deadline`.
    #[serde(with = "humantime_serde")]
    pub peer_head_timeout: Duration,
    /// Environment variable holding the secret that signs forwarded requests (every node the
    /// same).
    pub secret_env: String,
    /// File holding that secret instead; wins over `secret_env`.
    pub secret_file: Option<PathBuf>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            node_id: None,
            advertise: None,
            ttl: Duration::from_secs(10),
            margin: Duration::from_secs(1),
            claim_every: Duration::from_secs(1),
            peer_head_timeout: Duration::from_secs(5),
            secret_env: DEFAULT_SECRET_ENV.to_owned(),
            secret_file: None,
        }
    }
}

impl ClusterConfig {
    /// This node's id: `node_id`, else the host name. An error names the key and says why;
    /// an id is 1–64 letters, digits, `.`, `-` or `_`, so it reads the same in a log line, a
    /// metric label and the admin API.
    pub fn resolve_node_id(&self) -> Result<String, (String, String)> {
        let fail = |m: String| Err(("cluster.node_id".to_owned(), m));
        let id = match &self.node_id {
            Some(id) => id.trim().to_owned(),
            None => match host_name() {
                Some(host) => host,
                None => return fail("is not set and the host name cannot be read".into()),
            },
        };
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        if id.is_empty() || id.len() > 64 || !id.chars().all(allowed) {
            let from = if self.node_id.is_some() {
                "".to_owned()
            } else {
                " (the host name; set node_id)".to_owned()
            };
            return fail(format!(
                "{id:?}{from} must be 1-64 letters, digits, '.', '-' or '_'"
            ));
        }
        Ok(id)
    }

    /// The `advertise` URL other nodes reach this node at: `http` or `https`, a host peers can
    /// connect to (not `0.0.0.0`), an optional port, no path, query or credentials. Returned
    /// without a trailing `/`, so a path can be appended. `Ok(None)` when unset: the node then
    /// advertises its bound listener, which needs `listen` to be an address peers can reach.
    pub fn resolve_advertise(
        &self,
        listen: std::net::SocketAddr,
    ) -> Result<Option<String>, (String, String)> {
        let fail = |m: &str| Err(("cluster.advertise".to_owned(), m.to_owned()));
        let Some(text) = self.advertise.as_deref().map(str::trim) else {
            if listen.ip().is_unspecified() {
                return fail(&format!(
                    "is required when server.listen is {listen}: the URL other nodes reach this \
                     node's listener at, like \"http://10.0.0.5:8080\""
                ));
            }
            return Ok(None);
        };
        let Ok(url) = reqwest::Url::parse(text) else {
            return fail("is not a URL (like \"http://10.0.0.5:8080\")");
        };
        if !matches!(url.scheme(), "http" | "https") {
            return fail("must be an http:// or https:// URL");
        }
        let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
            return fail("must name a host");
        };
        let ip = host.trim_start_matches('[').trim_end_matches(']');
        let unspecified = ip
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified());
        if unspecified {
            return fail("must be an address other nodes can connect to, not 0.0.0.0 or [::]");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return fail("must not carry credentials");
        }
        let bare = text.trim_end_matches('/');
        if url.path() != "/"
            || url.query().is_some()
            || url.fragment().is_some()
            || bare.len() < text.len()
        {
            return fail(
                "must be scheme, host and port only, without a path (server.path_prefix is added by the node itself)",
            );
        }
        Ok(Some(bare.to_owned()))
    }

    /// The secret that signs forwarded requests, decoded (base64 or hex, at least
    /// [`MIN_SECRET_BYTES`] bytes), from `secret_file` or else `$secret_env`. An error names
    /// the key to fix and never the secret.
    pub fn resolve_secret(&self, env: EnvLookup<'_>) -> Result<Secret<Vec<u8>>, (String, String)> {
        let (field, source, got) = match &self.secret_file {
            Some(path) => (
                "cluster.secret_file",
                path.display().to_string(),
                resolve_secret(&None, &None, &self.secret_file, env),
            ),
            None => (
                "cluster.secret_env",
                format!("${}", self.secret_env),
                resolve_secret(&None, &Some(self.secret_env.clone()), &None, env),
            ),
        };
        let text = match got {
            Ok(Some(text)) => text,
            Ok(None) => return Err((field.into(), format!("no cluster secret in {source}"))),
            Err(m) => {
                return Err((
                    field.into(),
                    format!("{m}: the secret every node signs forwarded requests with"),
                ));
            }
        };
        match decode_binary(text.expose()) {
            Some(bytes) if bytes.len() >= MIN_SECRET_BYTES => Ok(Secret::new(bytes)),
            Some(bytes) => Err((
                field.into(),
                format!(
                    "the cluster secret from {source} decodes to {} bytes, fewer than {MIN_SECRET_BYTES} \
                     (make one with `openssl rand -base64 32`)",
                    bytes.len()
                ),
            )),
            None => Err((
                field.into(),
                format!(
                    "the cluster secret from {source} is neither base64 nor hex \
                     (make one with `openssl rand -base64 32`)"
                ),
            )),
        }
    }
}

/// The host name (`uname -n`), the default node id.
#[cfg(unix)]
fn host_name() -> Option<String> {
    let uts = rustix::system::uname();
    let name = uts.nodename().to_str().ok()?.trim().to_owned();
    (!name.is_empty()).then_some(name)
}

/// The host name, from the environment where there is no `uname`.
#[cfg(not(unix))]
fn host_name() -> Option<String> {
    std::env::var("COMPUTERNAME").ok().filter(|n| !n.is_empty())
}
