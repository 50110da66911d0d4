//! Typed configuration of the daemon (docs/style.md practice 7). One `Config` with a struct per
//! TOML section, every struct `#[serde(deny_unknown_fields, default)]` so an omitted key takes
//! its default and a misspelt key is an error. `config/default.toml` lists every knob; a test
//! checks it equals `Config::default()`.
//!
//! Loading order: defaults ← the TOML file ← `CODEX_ROTOR_<SECTION>__<KEY>` environment
//! overrides (scheme in [`env`]). Loading goes key by key ([`load`]), so a file with several
//! values of the wrong type or unknown keys, and several bad overrides, fail with all of them at
//! once. Then [`Config::validate`] returns *every* problem, each naming its key, so
//! `codex-rotor config check` can list them all in one run. Secrets are never in the
//! structs' output: they are [`Secret`]s, named by `key_env` / `key_file`.

pub mod access;
mod args;
pub mod cluster;
pub mod env;
pub mod limits;
mod load;
pub mod models;
pub mod pattern;
pub mod pool;
pub mod reload;
pub mod secret;
pub mod server;
pub mod store;
mod validate;

pub use access::{AdminConfig, ClientKeyConfig, KeysConfig};
pub use args::GlobalArgs;
pub use cluster::ClusterConfig;
pub use limits::{LimitsConfig, LoggingConfig};
pub use models::ModelsConfig;
pub use pool::{PoolSection, RefreshConfig, Strategy};
pub use reload::ReloadPlan;
pub use secret::Secret;
pub use server::ServerConfig;
pub use store::{Backend, StoreConfig};
pub use upstream::UpstreamConfig;

pub mod upstream;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// Where `Config::load(None)` looks; a missing file there means "all defaults".
pub const DEFAULT_PATH: &str = "config/default.toml";

/// The whole daemon configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory holding one state file per account (and nothing else of value).
    pub data_dir: PathBuf,
    /// `[server]`: listener, reverse-proxy manners, shutdown.
    pub server: ServerConfig,
    /// `[keys]`: client keys and their limits.
    pub keys: KeysConfig,
    /// `[admin]`: admin API and dashboard.
    pub admin: AdminConfig,
    /// `[pool]`: rotation and account actor rhythm.
    pub pool: PoolSection,
    /// `[upstream]`: backend URLs, timeouts, failover budget.
    pub upstream: UpstreamConfig,
    /// `[refresh]`: token refresh pacing.
    pub refresh: RefreshConfig,
    /// `[models]`: aliases, default and advertised models.
    pub models: ModelsConfig,
    /// `[limits]`: daemon-wide guard rails.
    pub limits: LimitsConfig,
    /// `[logging]`: log format and filter.
    pub logging: LoggingConfig,
    /// `[store]`: account files, or a PostgreSQL database.
    pub store: StoreConfig,
    /// `[cluster]`: several nodes on one PostgreSQL store.
    pub cluster: ClusterConfig,
    /// Keys that held a literal secret in the config file (reported by `validate`: secrets
    /// belong in the environment or a file). Not part of the TOML.
    #[serde(skip)]
    pub literal_secrets_in_file: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            server: ServerConfig::default(),
            keys: KeysConfig::default(),
            admin: AdminConfig::default(),
            pool: PoolSection::default(),
            upstream: UpstreamConfig::default(),
            refresh: RefreshConfig::default(),
            models: ModelsConfig::default(),
            limits: LimitsConfig::default(),
            logging: LoggingConfig::default(),
            store: StoreConfig::default(),
            cluster: ClusterConfig::default(),
            literal_secrets_in_file: Vec::new(),
        }
    }
}

/// Why a configuration could not be loaded at all (as opposed to [`ConfigProblem`]s found by
/// `validate` in a config that parsed).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named on the command line could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error that stopped the read.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema.
    #[error("{path}: {key}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Dotted key where parsing failed (`.` when the whole file is at fault).
        key: String,
        /// What the parser said (with line and column).
        message: String,
    },
    /// An environment override could not be applied or made the config invalid.
    #[error("environment override {var}: {message}")]
    Env {
        /// The variable(s) involved.
        var: String,
        /// What went wrong.
        message: String,
    },
    /// The config parsed but is not usable.
    #[error("invalid configuration:\n{}", ConfigProblem::list(.0))]
    Invalid(Vec<ConfigProblem>),
    /// Several values of the file or the environment could not be loaded, each a
    /// [`ConfigError::Parse`] or [`ConfigError::Env`] (one alone is returned as itself).
    #[error("{} problems in the configuration:\n{}", .0.len(), ConfigError::list(.0))]
    Many(Vec<ConfigError>),
}

impl ConfigError {
    /// One error per line, indented, for [`ConfigError::Many`].
    fn list(errors: &[ConfigError]) -> String {
        errors.iter().map(|e| format!("  {e}\n")).collect()
    }

    /// `Ok` for no error, the error itself for one, [`ConfigError::Many`] for more.
    fn from_all(mut errors: Vec<ConfigError>) -> Result<(), ConfigError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(ConfigError::Many(errors)),
        }
    }
}

/// One thing wrong with a config, naming its key (`keys.keys[1].rpm: must be > 0`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigProblem {
    /// Dotted key, with list indexes: `keys.keys[1].rpm`.
    pub key: String,
    /// What is wrong and, where useful, what to do.
    pub message: String,
}

impl ConfigProblem {
    /// A problem at `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigProblem {
            key: key.into(),
            message: message.into(),
        }
    }

    /// One problem per line, for error messages and `config check`.
    pub fn list(problems: &[ConfigProblem]) -> String {
        problems.iter().map(|p| format!("  {p}\n")).collect()
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl Config {
    /// Reads `path` (or [`DEFAULT_PATH`] when `None`, where a missing file means defaults) and
    /// applies `CODEX_ROTOR_*` overrides from the process environment. Does not validate.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// [`Config::load`] with an explicit environment (tests must not mutate the process env).
    /// Fails with every value that could not be loaded (see [`Config::load_lenient`]).
    pub fn load_with_env(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let (cfg, errors) = Self::load_lenient(path, vars)?;
        ConfigError::from_all(errors)?;
        Ok(cfg)
    }

    /// Loads what can be loaded and names the rest: the config built from every value of the
    /// file and the environment that fits the schema (defaults stand in for the others), and
    /// one [`ConfigError::Parse`] / [`ConfigError::Env`] per value that does not. Only an
    /// unreadable file is an `Err`. `config check` prints these and then validates the config.
    pub fn load_lenient(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Config, Vec<ConfigError>), ConfigError> {
        let (path, text) = read_source(path)?;
        let mut errors = Vec::new();
        let file: toml::Table = text.parse().unwrap_or_else(|e: toml::de::Error| {
            errors.push(load::syntax_error(&path, &text, &e));
            toml::Table::new()
        });
        let (mut cfg, rejected) = load::lenient(&file);
        let literal = validate::literal_secrets(&cfg);
        let overrides = env::collect(vars, &["data_dir"]);
        let mut in_file = rejected;
        if !overrides.is_empty() {
            let (merged, env_errors) = load::apply_overrides(file, &overrides);
            errors.extend(env_errors);
            let (merged_cfg, rejected) = load::lenient(&merged);
            cfg = merged_cfg;
            in_file = Vec::new();
            for r in rejected {
                match overrides.iter().find(|o| load::sets(o, &r.leaf)) {
                    Some(ov) => errors.push(ConfigError::Env {
                        var: ov.var.clone(),
                        message: format!("{}: {}", r.key, r.message),
                    }),
                    None => in_file.push(r),
                }
            }
        }
        errors.splice(0..0, load::file_errors(&path, &text, in_file));
        cfg.literal_secrets_in_file = literal;
        Ok((cfg, errors))
    }

    /// Parses a TOML document (no file, no environment): for tests and embedded configs.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let path = Path::new("<inline>");
        let file: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| load::syntax_error(path, text, &e))?;
        let (mut cfg, rejected) = load::lenient(&file);
        ConfigError::from_all(load::file_errors(path, text, rejected))?;
        cfg.literal_secrets_in_file = validate::literal_secrets(&cfg);
        Ok(cfg)
    }

    /// Every problem in this config, each naming its key; empty = usable. Reads the secrets it
    /// names (to check they exist and that no client key equals the admin key) from the
    /// process environment and files. Includes [`Config::validate_bind`].
    pub fn validate(&self) -> Vec<ConfigProblem> {
        self.validate_in(&access::process_env)
    }

    /// [`Config::validate`] with an injected environment lookup.
    pub fn validate_in(&self, env: access::EnvLookup<'_>) -> Vec<ConfigProblem> {
        validate::all(self, env)
    }

    /// The startup check on the listen address: with no client key configured the daemon only
    /// binds loopback (an open pool on the network would give the accounts away), and the
    /// admin API needs an admin key off loopback or behind a reverse proxy
    /// (`ServerConfig::clients_are_local`).
    pub fn validate_bind(&self) -> Vec<ConfigProblem> {
        validate::bind(self, &access::process_env)
    }

    /// The pool's knobs: `[pool]` plus the pacing of `[refresh]`.
    pub fn pool_config(&self) -> rotor_actors::PoolConfig {
        let (p, r) = (&self.pool, &self.refresh);
        rotor_actors::PoolConfig {
            strategy: p.strategy,
            max_leases_per_account: p.max_leases_per_account,
            tick: p.tick,
            default_429_backoff: p.default_429_backoff,
            refresh_margin: r.margin,
            refresh_jitter: r.jitter,
            refresh_enabled: r.enabled,
            max_concurrent_refreshes: r.max_concurrent,
            max_refreshes_per_minute: r.max_per_minute,
            restart_budget: p.restart_budget,
            plan_routes: longest_prefix_first(&p.plan_routes),
        }
    }

    /// `Config::load` followed by `validate`, failing with every problem.
    pub fn load_valid(path: Option<&Path>) -> Result<Config, ConfigError> {
        let cfg = Self::load(path)?;
        let problems = cfg.validate();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

/// The pool takes the first matching prefix, so the most specific must come first
/// (`gpt-5.5-pro` before `gpt-5.5`).
fn longest_prefix_first(
    routes: &std::collections::BTreeMap<String, Vec<String>>,
) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> =
        routes.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    out.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
    out
}

fn read_source(path: Option<&Path>) -> Result<(PathBuf, String), ConfigError> {
    match path {
        Some(p) => std::fs::read_to_string(p)
            .map(|t| (p.to_path_buf(), t))
            .map_err(|source| ConfigError::Read {
                path: p.to_path_buf(),
                source,
            }),
        None => {
            let p = PathBuf::from(DEFAULT_PATH);
            match std::fs::read_to_string(&p) {
                Ok(t) => Ok((p, t)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((p, String::new())),
                Err(source) => Err(ConfigError::Read { path: p, source }),
            }
        }
    }
}
