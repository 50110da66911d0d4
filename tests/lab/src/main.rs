//! The `rotor-lab` binary: the lab's commands (`bench`, `chaos`) and every `codex-rotor`
//! command, which the lab's runs start as their daemon (`rotor-lab serve`).

use clap::{Parser, Subcommand};
use codex_rotor::cli::GlobalArgs;

/// The same allocator as the `codex-rotor` binary (its src/main.rs says why), so the daemon a
/// benchmark measures is the one users run.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The lab of codex-rotor: benchmarks and reliability runs against the built-in simulator.
#[derive(Debug, Parser)]
#[command(name = "rotor-lab", version, about)]
struct Cli {
    /// Options every subcommand understands (those of `codex-rotor`).
    #[command(flatten)]
    global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The lab's commands, then the daemon's.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run a benchmark (`bench sim`: the simulator alone; `bench proxy`: direct vs through the daemon).
    Bench(rotor_lab::bench::BenchArgs),
    /// Reliability evidence: load + injected faults + SIGKILL/restart, or quota efficiency.
    Chaos(rotor_lab::chaos::ChaosArgs),
    /// Every `codex-rotor` command (`serve`, `sim`, `accounts`, ...).
    #[command(flatten)]
    Daemon(codex_rotor::cli::Command),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    codex_rotor::cli::run_with(cli.global, |global| async move {
        match cli.command {
            Command::Bench(args) => rotor_lab::bench::run(args).await,
            Command::Chaos(args) => rotor_lab::chaos::run(args).await,
            Command::Daemon(command) => codex_rotor::cli::dispatch(global, command).await,
        }
    })
}
