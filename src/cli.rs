//! Command-line interface: one subcommand per job. Each subcommand's arguments and its `run`
//! function live in the module that owns the job; this file only wires them together.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Examples shown at the end of `--help`.
const EXAMPLES: &str = "\
Examples:
  codex-rotor demo --listen 127.0.0.1:8080        # simulator + 8 accounts + daemon, no real accounts
  codex-rotor sim --listen 127.0.0.1:9090         # the Codex backend simulator alone
";

/// Pools many ChatGPT (Codex) subscription accounts behind one endpoint.
#[derive(Debug, Parser)]
#[command(name = "codex-rotor", version, about, after_help = EXAMPLES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the simulator of the ChatGPT Codex backend and OAuth token endpoint.
    Sim(crate::sim::SimArgs),
    /// Run a benchmark (e.g. `bench sim`: streamed responses/s of the simulator on one core).
    Bench(crate::bench::BenchArgs),
}

/// Runs the chosen subcommand on a multi-threaded tokio runtime and maps the result to an
/// exit code (errors are printed with their whole cause chain).
pub fn main(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("codex-rotor: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Sim(args) => crate::sim::run(args).await,
            Command::Bench(args) => crate::bench::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("codex-rotor: {e:#}");
            ExitCode::FAILURE
        }
    }
}
