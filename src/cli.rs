//! Command-line interface: one subcommand per job. Each subcommand's arguments and its `run`
//! function live in the module that owns the job; this file only wires them together.
//!
//! Adding a subcommand is two lines: a variant in [`Command`] (with a `///` that becomes its
//! help) and an arm in [`dispatch`]. Global options (`--config`, `--log-format`, `--log-level`)
//! are in [`GlobalArgs`]; pass `&global` to commands that read the config.

use crate::config::Config;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub use crate::config::GlobalArgs;

/// Examples shown at the end of `--help`.
const EXAMPLES: &str = "\
Examples:
  codex-rotor demo --listen 127.0.0.1:8080        # simulator + 8 accounts + daemon, no real accounts
  codex-rotor sim --listen 127.0.0.1:9090         # the Codex backend simulator alone
  codex-rotor config check --config /etc/codex-rotor/config.toml
  CODEX_ROTOR_SERVER__LISTEN=0.0.0.0:8080 codex-rotor config show
";

/// Examples shown at the end of `config --help`.
const CONFIG_EXAMPLES: &str = "\
Examples:
  codex-rotor config check                                 # ./config/default.toml, or defaults
  codex-rotor config check --config /etc/codex-rotor/config.toml
  CODEX_ROTOR_POOL__STRATEGY=sticky codex-rotor config show   # effective config, secrets as ***

Environment overrides: CODEX_ROTOR_<SECTION>__<KEY>=value (double underscore between parts,
list entries by index: CODEX_ROTOR_KEYS__KEYS__0__RPM=120). See config/default.toml.
";

/// Pools many ChatGPT (Codex) subscription accounts behind one endpoint.
#[derive(Debug, Parser)]
#[command(name = "codex-rotor", version, about, after_help = EXAMPLES)]
pub struct Cli {
    /// Options every subcommand understands.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the simulator of the ChatGPT Codex backend and OAuth token endpoint.
    Sim(crate::sim::SimArgs),
    /// Add, import, export or list accounts (on the data dir, or via a running daemon's admin API).
    Accounts(crate::accounts::cli::AccountsArgs),
    /// Serve the pool: the Responses proxy, admin API and dashboard.
    Serve(crate::server::ServeArgs),
    /// Try the pool with no real account: simulator + N simulated accounts + daemon.
    Demo(crate::demo::DemoArgs),
    /// Move the accounts between storage backends (`store migrate --from files --to postgres`).
    Store(crate::store::migrate::StoreArgs),
    /// Inspect the configuration.
    #[command(subcommand, after_help = CONFIG_EXAMPLES)]
    Config(ConfigCommand),
}

/// `codex-rotor config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate the config; print every problem (exit 1) or "ok".
    Check,
    /// Print the effective config (file + environment) as TOML, secrets as ***.
    Show,
}

/// Runs one subcommand. Add an arm here with each new [`Command`] variant. Public for the lab's
/// binary (tests/lab), which runs every daemon command as well as its own.
pub async fn dispatch(global: GlobalArgs, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Sim(args) => crate::sim::run(args).await,
        Command::Accounts(args) => crate::accounts::cli::run(&global, args).await,
        Command::Config(cmd) => config_command(&global, cmd),
        Command::Serve(args) => crate::server::run(&global, args).await,
        Command::Demo(args) => crate::demo::run(args).await,
        Command::Store(args) => store_command(&global, args).await,
    }
}

/// `store migrate`: prints what moved as JSON.
async fn store_command(
    global: &GlobalArgs,
    args: crate::store::migrate::StoreArgs,
) -> anyhow::Result<()> {
    let cfg = global.load_config()?;
    match args.action {
        crate::store::migrate::StoreAction::Migrate { from, to } => {
            let report = crate::store::migrate::migrate(&cfg, from, to).await?;
            crate::outln!("{}", serde_json::to_string_pretty(&report)?)?;
            Ok(())
        }
    }
}

/// `config check` / `config show`.
fn config_command(global: &GlobalArgs, cmd: ConfigCommand) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Check => config_check(global),
        ConfigCommand::Show => {
            let cfg = global.load_config()?;
            crate::out!("{}", toml::to_string(&cfg)?)?;
            Ok(())
        }
    }
}

/// `config check`: every value of the file and the environment that does not load, then every
/// problem `validate` finds in the config made of the values that did, one per line on stdout.
fn config_check(global: &GlobalArgs) -> anyhow::Result<()> {
    let (cfg, load_errors) = Config::load_lenient(global.config.as_deref(), std::env::vars())?;
    let problems = cfg.validate();
    if load_errors.is_empty() && problems.is_empty() {
        crate::outln!("ok")?;
        return Ok(());
    }
    for e in &load_errors {
        crate::outln!("{e}")?;
    }
    for p in &problems {
        crate::outln!("{p}")?;
    }
    anyhow::bail!(
        "{} problem(s) in the configuration",
        load_errors.len() + problems.len()
    )
}

/// Starts logging from the flags, else `RUST_LOG`, else the config's `[logging]`.
fn init_logging(global: &GlobalArgs) {
    let from_config = global.load_config().map(|c| c.logging).unwrap_or_default();
    let format = global.log_format.unwrap_or(from_config.format);
    let filter = global
        .log_level
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok().filter(|s| !s.is_empty()))
        .unwrap_or(from_config.level);
    if let Err(e) = crate::logging::init(format, &filter) {
        crate::errln!("codex-rotor: {e}; logging at info");
        let _ = crate::logging::init(format, "info");
    }
}

/// Runs the chosen subcommand on a multi-threaded tokio runtime and maps the result to an
/// exit code (errors are printed with their whole cause chain). A command that stopped because
/// its stdout's reader left (`… | head -1`) exits 0 quietly. Queued log lines are written
/// before the exit, for a bounded time.
pub fn main(cli: Cli) -> ExitCode {
    let command = cli.command;
    run_with(cli.global, |global| dispatch(global, command))
}

/// [`main`] for any command: starts logging from `global`, runs `command(global)` on the
/// runtime, maps the result to an exit code and flushes the log queue. The lab's binary
/// (tests/lab) runs its own commands through it.
pub fn run_with<F, Fut>(global: GlobalArgs, command: F) -> ExitCode
where
    F: FnOnce(GlobalArgs) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let code = run_main(global, command);
    crate::logging::queue::flush(LOG_FLUSH);
    code
}

/// How long the exit waits for queued log lines to reach a slow stderr.
const LOG_FLUSH: std::time::Duration = std::time::Duration::from_secs(2);

fn run_main<F, Fut>(global: GlobalArgs, command: F) -> ExitCode
where
    F: FnOnce(GlobalArgs) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    init_logging(&global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::errln!("codex-rotor: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(command(global));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if crate::console::is_closed_stdout(&e) => ExitCode::SUCCESS,
        Err(e) => {
            crate::errln!("codex-rotor: {e:#}");
            ExitCode::FAILURE
        }
    }
}
