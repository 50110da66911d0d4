//! The `codex-rotor` binary: parse the command line and hand over to the library. Thin on
//! purpose, so every command is reachable from tests through `codex_rotor::cli`.

use clap::Parser;

/// mimalloc instead of glibc malloc: the proxy allocates and frees small buffers on every
/// request from several threads, where glibc's arena locks and consolidation showed up as a fifth
/// of the daemon's CPU time (`bench proxy`), and its per-thread arenas held memory the daemon no
/// longer used.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = codex_rotor::cli::Cli::parse();
    codex_rotor::cli::main(cli)
}
