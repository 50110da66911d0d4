//! `rotor-lab chaos`: reliability evidence in one command. Runs the simulator in-process and
//! the real daemon (`rotor-lab serve`, this binary) as a child process with N accounts under sustained
//! concurrent load in all three client protocols, streamed and not, while the simulator injects
//! 429s, 401s (expired access tokens → refresh), 5xx, premature closes, Cloudflare challenges
//! and resets, and the daemon is SIGKILLed and restarted on the same data dir mid-load. Then it
//! asserts that every request ended well (success or a correct protocol error), that no account
//! and no refresh token was lost, that no lock outlived its reset plus the probe interval, that
//! in-flight leases returned to 0 and resident memory to its baseline, and prints a summary.
//!
//! `--quota-efficiency` runs the quota scenario instead (see [`quota`]), `--scaling` the scaling
//! table (see [`scaling`]), `--cloudflare` the challenge scenario (see [`cloudflare`]). One account's actor is also made to panic once (see
//! `actor_panic`) and must be restarted by the supervisor and keep serving.

mod actor_panic;
pub mod cloudflare;
pub mod cluster;
mod daemon;
pub mod faults;
mod inproc;
pub mod load;
mod locks;
pub mod quota;
pub mod report;
mod run;
pub mod scaling;
mod verdict;

pub use report::ChaosReport;
pub use run::{ChaosOptions, chaos};

use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `rotor-lab chaos`.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ChaosArgs {
    /// A scenario of its own (`cluster`: several nodes on PostgreSQL under faults).
    #[command(subcommand)]
    pub scenario: Option<Scenario>,
    /// Minutes of load (fractions allowed: 0.5 = 30 s).
    #[arg(long, default_value_t = 3.0)]
    pub minutes: f64,
    /// Accounts in the pool.
    #[arg(long, default_value_t = 50)]
    pub accounts: usize,
    /// Concurrent client requests.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Skip the SIGKILL + restart (e.g. to measure memory of one process only).
    #[arg(long)]
    pub no_kill: bool,
    /// Run the quota-efficiency scenario instead: K accounts with known quotas, load until the
    /// pool is exhausted, report the share of the quota served and the upstream 429s hit.
    #[arg(long)]
    pub quota_efficiency: bool,
    /// Quota scenario: tokens per account per primary window.
    #[arg(long, default_value_t = 20_000)]
    pub quota_tokens: u64,
    /// Run the Cloudflare scenario instead: the simulator challenges `--challenge-rate` of the
    /// upstream requests at random under steady load; report client failures and how many
    /// accounts the challenge cooldowns benched.
    #[arg(long)]
    pub cloudflare: bool,
    /// Cloudflare scenario: share of upstream requests answered with the challenge page.
    #[arg(long, default_value_t = 0.01)]
    pub challenge_rate: f64,
    /// Run the scaling table instead: pool sizes × concurrency (use a release build).
    #[arg(long)]
    pub scaling: bool,
    /// Scaling: pool sizes.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000,10000")]
    pub scaling_accounts: Vec<usize>,
    /// Scaling: concurrent streams per cell.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    pub scaling_concurrency: Vec<usize>,
    /// Scaling: seconds of load per cell.
    #[arg(long, default_value_t = 5.0)]
    pub cell_seconds: f64,
    /// The daemon binary; default: this executable.
    #[arg(long, value_name = "PATH")]
    pub daemon_bin: Option<PathBuf>,
}

/// The scenarios of `rotor-lab chaos` that take arguments of their own.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Scenario {
    /// Several nodes on one PostgreSQL under SIGKILL, SIGSTOP, a partition from the database
    /// and a join: no refresh token used twice, none refreshed without a live lease, every
    /// account owned by exactly one live node, takeover within TTL + 2 s.
    Cluster(cluster::ClusterArgs),
}

/// Runs `rotor-lab chaos`; an error (exit code 1) when a check fails.
pub async fn run(args: ChaosArgs) -> anyhow::Result<()> {
    if let Some(Scenario::Cluster(c)) = args.scenario {
        return cluster::run(c).await;
    }
    if args.quota_efficiency {
        let opts = quota::QuotaOptions {
            accounts: args.accounts,
            quota_tokens: args.quota_tokens,
            concurrency: args.concurrency,
        };
        let r = quota::quota_efficiency(&opts).await?;
        codex_rotor::outln!("{}", r.render())?;
        anyhow::ensure!(r.meets_targets(), "quota efficiency below target");
        return Ok(());
    }
    if args.cloudflare {
        let opts = cloudflare::CloudflareOptions {
            accounts: args.accounts,
            challenge_rate: args.challenge_rate.clamp(0.0, 1.0),
            concurrency: args.concurrency,
            duration: Duration::from_secs_f64((args.minutes * 60.0).max(1.0)),
        };
        let r = cloudflare::cloudflare(&opts).await?;
        println!("{}", r.render());
        return Ok(());
    }
    let bin = match args.daemon_bin {
        Some(b) => b,
        None => std::env::current_exe()?,
    };
    if args.scaling {
        let opts = scaling::ScalingOptions {
            bin,
            accounts: args.scaling_accounts,
            concurrency: args.scaling_concurrency,
            cell: Duration::from_secs_f64(args.cell_seconds.max(0.5)),
            hold: 256,
        };
        let rows = scaling::scaling(&opts).await?;
        codex_rotor::outln!("{}", scaling::render(&rows))?;
        return Ok(());
    }
    let opts = ChaosOptions {
        bin,
        duration: Duration::from_secs_f64((args.minutes * 60.0).max(10.0)),
        accounts: args.accounts,
        concurrency: args.concurrency,
        kill: !args.no_kill,
        ..ChaosOptions::default()
    };
    let report = chaos(&opts).await?;
    codex_rotor::outln!("{}", report.render())?;
    anyhow::ensure!(
        report.passed(),
        "chaos checks failed:\n  {}",
        report.failures().join("\n  ")
    );
    Ok(())
}
