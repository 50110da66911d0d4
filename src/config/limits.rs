//! `[limits]` and `[logging]`: daemon-wide guard rails (reloadable with SIGHUP) and how the
//! daemon talks about itself.

use crate::logging::LogFormat;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Daemon-wide bounds, so no client can queue unbounded work (per-key limits live in `[keys]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Client requests in flight at once across all keys; beyond it requests get 503.
    pub max_concurrent_requests: usize,
    /// Longest a request waits for the pool to pick and lease an account.
    #[serde(with = "humantime_serde")]
    pub pick_timeout: Duration,
    /// Hard cap on one request including its whole stream.
    #[serde(with = "humantime_serde")]
    pub max_request_duration: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_concurrent_requests: 1024,
            pick_timeout: Duration::from_secs(5),
            max_request_duration: Duration::from_secs(3600),
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
