//! The options every command understands (`--config`, `--log-format`, `--log-level`): where the
//! configuration comes from and how to log. Here, beside the config they load, so the commands
//! that read them (`serve`, `accounts`) need not import the command line that parses them.

use super::{Config, ConfigError};
use crate::logging::LogFormat;
use clap::Args;
use std::path::PathBuf;

/// Options shared by all subcommands (accepted before or after the subcommand name).
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Config file (TOML). Default: ./config/default.toml if present, else built-in defaults.
    #[arg(long, global = true, env = "CODEX_ROTOR_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Log line format; overrides `logging.format`.
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `debug` or `info,codex_rotor::proxy=trace`; overrides `RUST_LOG` and
    /// `logging.level`.
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
}

impl GlobalArgs {
    /// Loads the config named by `--config` (with environment overrides), unvalidated.
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        Config::load(self.config.as_deref())
    }
}
