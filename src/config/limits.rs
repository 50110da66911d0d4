//! `[limits]` and `[logging]`: daemon-wide guard rails (reloadable with SIGHUP) and how the
//! daemon talks about itself.

use crate::logging::LogFormat;
use serde::{Deserialize, Serialize};

/// Daemon-wide bounds, so no client can queue unbounded work (per-key limits live in `[keys]`).
/// Reloadable: the server hands it to `KeyStore::set_limits` at start and on SIGHUP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Client requests in flight at once across all keys (and on an open pool); beyond it
    /// requests are refused like a key over its own concurrency limit (429).
    pub max_concurrent_requests: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_concurrent_requests: 1024,
        }
    }
}

/// Log output. `--log-format` / `--log-level` and `RUST_LOG` override these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// `human` (for terminals) or `json` (one object per line, for log shippers).
    pub format: LogFormat,
    /// `tracing` env-filter directives, e.g. `info` or `info,codex_rotor::proxy=debug`.
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}
