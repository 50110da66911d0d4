//! The `codex-rotor` binary: parse the command line and hand over to the library. Thin on
//! purpose, so every command is reachable from tests through `codex_rotor::cli`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = codex_rotor::cli::Cli::parse();
    codex_rotor::cli::main(cli)
}
