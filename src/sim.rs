//! Simulator of the ChatGPT Codex backend (placeholder; see issue 3).

/// Arguments of `codex-rotor sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {}

/// Runs the simulator until interrupted.
pub async fn run(_args: SimArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
