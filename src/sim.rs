//! Simulator of the ChatGPT Codex backend and the OAuth token endpoint (DESIGN.md "The
//! simulator", facts in PROTOCOL.md). Tests, the demo and the benchmarks run against it, and
//! operators use `codex-rotor sim` to rehearse a configuration without real accounts.
//!
//! In-process use: [`Simulator::start`] binds a listener and returns a [`SimHandle`] whose
//! methods script the simulated world (accounts, quotas, faults). The same operations exist
//! over HTTP under `/sim/…` (see [`control`]).

mod conn;
pub mod control;
mod fault;
mod jwt;
mod oauth;
pub mod options;
mod quota;
mod reply;
mod responses;
mod router;
mod server;
mod state;
mod stream;
mod turn;
mod usage;

pub use options::{
    AccountSpec, Counters, CreatedAccount, FaultKind, FaultSpec, FaultTarget, SimOptions,
};
pub use server::{SimHandle, Simulator};

use std::net::SocketAddr;

/// Arguments of `codex-rotor sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub listen: SocketAddr,
    /// Seed of every pseudo-random choice, so runs can be replayed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Divides window lengths and token lifetimes (60 = a 5 h window passes in 5 minutes).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
}

/// Runs the simulator until Ctrl-C.
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let opts = SimOptions { seed: args.seed, time_scale: args.time_scale, ..SimOptions::default() };
    let handle = Simulator::start(opts, args.listen).await?;
    println!("codex-rotor simulator listening on {}", handle.base_url());
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}
