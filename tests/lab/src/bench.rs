//! `rotor-lab bench …`: reproducible benchmarks built on [`crate::loadgen`].
//!
//! `bench sim` answers "is the simulator ever the bottleneck?": it runs the simulator on a
//! `current_thread` runtime in its own OS thread (one core-equivalent), creates one account
//! with unlimited quota, and drives small streamed responses (`stream: true`, a few words)
//! from the load generator on the main runtime. The target is ≥ 20 000 responses/s.

pub mod instructions;
pub mod passthrough;
pub mod proxy;

use crate::loadgen::{self, LoadReport, LoadSpec, Stop};
use anyhow::Context;
use codex_rotor::sim::{AccountSpec, SimHandle, SimOptions, Simulator};
use std::time::Duration;

/// Arguments of `rotor-lab bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// What to benchmark.
    #[command(subcommand)]
    pub target: BenchTarget,
}

/// The benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum BenchTarget {
    /// Small streamed responses straight from the simulator (one core).
    Sim(SimBench),
    /// The same streamed load direct and through codex-rotor (c = 1, 16, 64; CPU, RSS).
    Proxy(proxy::ProxyBench),
    /// Instructions per streamed request under callgrind, this build vs a baseline binary.
    Instructions(instructions::InstructionsBench),
    /// The bare pass-through `bench proxy` measures as its floor (run by `bench proxy`).
    #[command(hide = true)]
    Passthrough(passthrough::Passthrough),
}

/// Knobs of `bench sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimBench {
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// How long to measure (after a 1 s warm-up).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Words per answer (more words = more SSE events).
    #[arg(long, default_value_t = 8)]
    pub words: usize,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs the chosen benchmark and prints its report.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.target {
        BenchTarget::Proxy(b) => {
            let report = proxy::run(&b).await?;
            codex_rotor::out!("{}", proxy::render(&report))?;
            Ok(())
        }
        BenchTarget::Instructions(b) => {
            codex_rotor::out!("{}", instructions::run(&b).await?)?;
            Ok(())
        }
        BenchTarget::Passthrough(p) => passthrough::serve(p).await,
        BenchTarget::Sim(b) => {
            let report = sim(&b).await?;
            if b.json {
                codex_rotor::outln!("{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                let title = "sim: small streamed responses, simulator on one core";
                codex_rotor::out!("{}", render(title, &report.load))?;
                codex_rotor::outln!(
                    "  simulator thread CPU {:.2}s => {:.0} responses per simulator CPU-second \
                     (target >= 20000)",
                    report.sim_cpu.as_secs_f64(),
                    report.per_core_rps
                )?;
            }
            Ok(())
        }
    }
}

/// A simulator running alone on one OS thread.
pub struct OneCoreSim {
    /// Controls it; shutting it down ends the thread.
    pub handle: SimHandle,
    /// Linux thread id of the simulator's thread, to read its CPU time.
    tid: Option<u32>,
}

impl OneCoreSim {
    /// CPU time (user + system) the simulator's thread used so far; `None` where
    /// `/proc/self/task/TID/stat` cannot be read (non-Linux).
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{}/stat", self.tid?)).ok()?;
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let rest = stat.get(stat.rfind(')')? + 2..)?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some(Duration::from_millis((utime + stime) * 10)) // USER_HZ is 100 on Linux
    }
}

/// The calling thread's Linux thread id.
fn current_tid() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// Starts a simulator on its own single-threaded runtime in its own thread; the handle
/// controls it from anywhere, and shutting it down ends the thread.
pub fn spawn_sim_on_one_core(opts: SimOptions) -> anyhow::Result<OneCoreSim> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("sim-one-core".into())
        .spawn(move || {
            let tid = current_tid();
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(anyhow::Error::from(e)));
                    return;
                }
            };
            rt.block_on(async move {
                match Simulator::start(opts, "127.0.0.1:0".parse().expect("literal address")).await
                {
                    Ok(handle) => {
                        let watch = handle.clone();
                        let _ = tx.send(Ok(OneCoreSim { handle, tid }));
                        watch.stopped().await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        })?;
    rx.recv().context("simulator thread died")?
}

/// What `bench sim` measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SimBenchReport {
    /// What the load generator saw.
    pub load: LoadReport,
    /// CPU time the simulator's thread used during the measured run.
    #[serde(with = "humantime_serde")]
    pub sim_cpu: Duration,
    /// Responses per CPU-second of the simulator: its capacity on one dedicated core, whatever
    /// else the machine was doing (the load generator shares the cores).
    pub per_core_rps: f64,
}

/// The `bench sim` measurement.
pub async fn sim(b: &SimBench) -> anyhow::Result<SimBenchReport> {
    let opts = SimOptions {
        answer_words: b.words,
        ..SimOptions::default()
    };
    let one = spawn_sim_on_one_core(opts)?;
    let sim = &one.handle;
    let acct = sim.create_account(AccountSpec {
        primary_quota_tokens: Some(u64::MAX / 4),
        secondary_quota_tokens: Some(u64::MAX / 4),
        access_token_ttl: Some(Duration::from_secs(365 * 24 * 3600)),
        ..AccountSpec::default()
    });
    let token = acct.auth_json["tokens"]["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // What the Codex CLI sends: already in the backend's shape (crate::upstream::shape).
    let body = serde_json::json!({"model": "gpt-5.5", "stream": true, "store": false,
        "instructions": "You are Codex.", "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "say hi"}]}]});
    let spec = |stop| LoadSpec {
        url: codex_rotor::responses_url(&sim.backend_url()),
        headers: vec![
            ("authorization".into(), format!("Bearer {token}")),
            ("content-type".into(), "application/json".into()),
            ("accept".into(), "text/event-stream".into()),
            ("chatgpt-account-id".into(), acct.id.clone()),
        ],
        body: body.to_string().into(),
        concurrency: b.concurrency,
        stop,
        expect_body_contains: Some("\"response.completed\"".into()),
        ..LoadSpec::default()
    };
    loadgen::run(spec(Stop::Duration(Duration::from_secs(1)))).await?;
    let cpu0 = one.cpu_time();
    let load = loadgen::run(spec(Stop::Duration(b.duration))).await?;
    let sim_cpu = match (cpu0, one.cpu_time()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => Duration::ZERO,
    };
    one.handle.clone().shutdown().await;
    let per_core_rps = if sim_cpu.is_zero() {
        0.0
    } else {
        load.requests as f64 / sim_cpu.as_secs_f64()
    };
    Ok(SimBenchReport {
        load,
        sim_cpu,
        per_core_rps,
    })
}

/// Human-readable report.
pub fn render(title: &str, r: &LoadReport) -> String {
    let ms = |d: Duration| format!("{:.2}ms", d.as_secs_f64() * 1000.0);
    format!(
        "{title}\n  requests {} in {:.1}s = {:.0} req/s (ok {}, errors {}, incomplete {})\n  \
         latency p50 {} p90 {} p99 {} max {}\n  ttfb    p50 {} p90 {} p99 {} max {}\n  statuses {:?}, {} body bytes\n",
        r.requests,
        r.elapsed.as_secs_f64(),
        r.rps,
        r.ok,
        r.errors,
        r.incomplete,
        ms(r.latency.p50),
        ms(r.latency.p90),
        ms(r.latency.p99),
        ms(r.latency.max),
        ms(r.ttfb.p50),
        ms(r.ttfb.p90),
        ms(r.ttfb.p99),
        ms(r.ttfb.max),
        r.statuses,
        r.bytes,
    )
}
