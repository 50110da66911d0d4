//! `[store]`: where account records live. `files` (the default) is one JSON file per account
//! under `data_dir`; `postgres` is one PostgreSQL database (docs/cluster.md), named by `url` or
//! by an environment variable `url_env` (a URL with a password is a secret), with the tokens
//! sealed by a key from `$CODEX_ROTOR_STORE_KEY` (or `key_env`) or `key_file`.

use super::access::{EnvLookup, resolve_secret};
use super::secret::Secret;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The environment variable the store key is read from unless `key_env`/`key_file` say else.
pub const DEFAULT_KEY_ENV: &str = "CODEX_ROTOR_STORE_KEY";

/// Which store holds the accounts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// `<data_dir>/accounts/<id>.json`, one writer (this daemon) at a time.
    #[default]
    Files,
    /// A PostgreSQL database: records, tokens (sealed), ownership and fencing.
    Postgres,
}

impl Backend {
    /// The name used in the config and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Files => "files",
            Backend::Postgres => "postgres",
        }
    }
}

/// The `[store]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `files` or `postgres`.
    pub backend: Backend,
    /// libpq connection string or URL of the database (with `backend = "postgres"`). Prints
    /// as `***`: it may hold a password — prefer `url_env` then.
    pub url: Option<Secret>,
    /// Environment variable holding the connection string instead of `url`.
    pub url_env: Option<String>,
    /// Environment variable holding the key that seals tokens in the database.
    pub key_env: String,
    /// File holding that key instead (e.g. a systemd credential); wins over `key_env`.
    pub key_file: Option<PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: Backend::Files,
            url: None,
            url_env: None,
            key_env: DEFAULT_KEY_ENV.to_owned(),
            key_file: None,
        }
    }
}

impl StoreConfig {
    /// The connection string (`url` or `$url_env`); an error names the key to fix.
    pub fn resolve_url(&self, env: EnvLookup<'_>) -> Result<Secret, (String, String)> {
        let fail = |key: &str, m: &str| Err((key.to_owned(), m.to_owned()));
        match (&self.url, &self.url_env) {
            (Some(_), Some(_)) => fail("store.url", "set only one of url, url_env"),
            (None, None) => fail("store.url", "backend = \"postgres\" needs url or url_env"),
            (Some(url), None) if url.expose().trim().is_empty() => fail("store.url", "is empty"),
            (Some(url), None) => Ok(url.clone()),
            (None, Some(_)) => match resolve_secret(&None, &self.url_env, &None, env) {
                Ok(Some(url)) => Ok(url),
                Ok(None) => fail("store.url_env", "names no variable"),
                Err(m) => fail("store.url_env", &m),
            },
        }
    }

    /// The store key's text and where it came from (for messages); an error names the key.
    pub fn resolve_key(&self, env: EnvLookup<'_>) -> Result<(Secret, String), (String, String)> {
        let (field, source, got) = match &self.key_file {
            Some(path) => (
                "store.key_file",
                path.display().to_string(),
                resolve_secret(&None, &None, &self.key_file, env),
            ),
            None => (
                "store.key_env",
                format!("${}", self.key_env),
                resolve_secret(&None, &Some(self.key_env.clone()), &None, env),
            ),
        };
        match got {
            Ok(Some(key)) => Ok((key, source)),
            Ok(None) => Err((field.into(), format!("no store key in {source}"))),
            Err(m) => Err((
                field.into(),
                format!("{m}: the key that seals tokens in the database"),
            )),
        }
    }
}

/// Decodes a store key written as base64 (standard or URL-safe, padded or not) or as 64 hex
/// characters; the error names `source` (where the key came from), never the key.
pub fn decode_key(text: &str, source: &str) -> Result<Secret<[u8; 32]>, String> {
    let key: Option<[u8; 32]> = super::secret::decode_binary(text).and_then(|b| b.try_into().ok());
    key.map(Secret::new).ok_or_else(|| {
        format!(
            "the store key from {source} is not 32 bytes as base64 or 64 hex characters \
             (make one with `openssl rand -base64 32`)"
        )
    })
}
