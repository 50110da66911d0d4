//! Simulator of the ChatGPT Codex backend and the OAuth token endpoint (docs/architecture.md "The
//! simulator", facts in docs/protocol.md). Tests, the demo and the benchmarks run against it, and
//! operators use `codex-rotor sim` to rehearse a configuration without real accounts.
//!
//! In-process use: [`Simulator::start`] binds a listener and returns a [`SimHandle`] whose
//! methods script the simulated world (accounts, quotas, faults). The same operations exist
//! over HTTP under `/sim/…` (see [`control`]).

mod conn;
pub mod control;
mod corpus;
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
mod strict;
mod turn;
mod usage;

pub use options::{
    AccountSpec, Counters, CreatedAccount, FaultKind, FaultSpec, FaultTarget, RefreshEvent,
    RefreshOutcome, SimOptions,
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
    /// Tokens per primary (5 h) window of each account.
    #[arg(long)]
    pub primary_quota_tokens: Option<u64>,
    /// Tokens per secondary (weekly) window of each account.
    #[arg(long)]
    pub secondary_quota_tokens: Option<u64>,
    /// Create this many accounts at start.
    #[arg(long, default_value_t = 0)]
    pub accounts: usize,
    /// Write the `auth.json` of each created account into this directory as `<id>.json`.
    #[arg(long)]
    pub auth_dir: Option<std::path::PathBuf>,
}

/// Runs the simulator until Ctrl-C, after printing how to use it.
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
        anyhow::bail!(
            "--time-scale must be a positive number, got {}",
            args.time_scale
        );
    }
    let defaults = SimOptions::default();
    let opts = SimOptions {
        seed: args.seed,
        time_scale: args.time_scale,
        primary_quota_tokens: args
            .primary_quota_tokens
            .unwrap_or(defaults.primary_quota_tokens),
        secondary_quota_tokens: args
            .secondary_quota_tokens
            .unwrap_or(defaults.secondary_quota_tokens),
        ..defaults
    };
    let handle = Simulator::start(opts, args.listen).await?;
    if let Some(dir) = &args.auth_dir {
        std::fs::create_dir_all(dir)?;
    }
    let mut created = Vec::new();
    for _ in 0..args.accounts {
        let acct = handle.create_account(AccountSpec::default());
        if let Some(dir) = &args.auth_dir {
            let path = dir.join(format!("{}.json", acct.id));
            write_secret(&path, &serde_json::to_vec_pretty(&acct.auth_json)?)?;
        }
        created.push(acct.id);
    }
    crate::out!(
        "{}",
        usage_text(&handle, args.time_scale, &created, args.auth_dir.as_deref())
    )?;
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}

/// Writes a file only its owner can read (it holds tokens), like Codex's own `auth.json`.
fn write_secret(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(bytes)
}

/// What `codex-rotor sim` prints at start: every URL and how to script the simulator.
fn usage_text(
    h: &SimHandle,
    scale: f64,
    created: &[String],
    dir: Option<&std::path::Path>,
) -> String {
    let (base, backend) = (h.base_url(), h.backend_url());
    let mut s = format!(
        "codex-rotor simulator listening on {base} (time scale {scale})\n\
         \n  responses  POST {backend}/codex/responses\
         \n  usage      GET  {backend}/wham/usage\
         \n  models     GET  {backend}/codex/models\
         \n  tokens     POST {token}   (refresh_token / authorization_code + PKCE)\
         \n  login      GET  {base}/oauth/authorize?code_challenge=…&code_challenge_method=S256&redirect_uri=…\
         \n  control    {base}/sim   (overview)\
         \n\nPoint the daemon at it:  upstream.base_url = \"{backend}\"  upstream.token_url = \"{token}\"\
         \nCreate an account (answer holds its Codex CLI auth.json):\
         \n  curl -s -X POST {base}/sim/accounts -H 'content-type: application/json' -d '{{\"plan\":\"plus\"}}'\
         \nFill its 5 h window:   curl -s -X POST {base}/sim/accounts/ID/usage -d '{{\"primary_used_percent\":100}}'\
         \nInject a fault:        curl -s -X POST {base}/sim/faults -d '{{\"kind\":\"rate_limit\",\"retry_after_secs\":2,\"count\":1}}'\
         \n  kinds: rate_limit, server_error, overloaded, cloudflare, premature_close{{after_events,mid_chunk}},\
         \n         silence{{millis}}, stall{{after_events,millis}}, reset, huge_event{{bytes}}, huge_header{{name,bytes}},\
         \n         linger{{millis}}, response_failed{{code,after_events}}, error_event{{after_events}},\
         \n         payment_required, forbidden, not_found_empty, usage_limit_headers_only,\
         \n         usage_limit_weekly{{resets_in_seconds}}, other_family_limit{{resets_in_seconds}},\
         \n         usage_not_included, rate_limit_null (target usage);\
         \n         options: account, target, probability, count\
         \nClear faults:          curl -s -X DELETE {base}/sim/faults\
         \nCounters:              curl -s {base}/sim/counters\n",
        token = h.token_url(),
    );
    if !created.is_empty() {
        s.push_str(&format!(
            "\nCreated {} account(s): {}\n",
            created.len(),
            created.join(", ")
        ));
        if let Some(d) = dir {
            s.push_str(&format!("Their auth.json files are in {}\n", d.display()));
        }
    }
    s.push_str("\nCtrl-C stops it.\n");
    s
}
