//! `rotor-lab bench instructions`: what one streamed `/v1/responses` request costs the daemon in
//! CPU instructions, counted by callgrind, for this build and optionally a baseline binary.
//!
//! `bench proxy` measures CPU time, which on a shared machine moves by a third with whatever
//! else runs. An instruction count does not: callgrind executes the daemon on a synthetic CPU
//! and counts every instruction it retires (`Ir`), the same figure however busy the machine is
//! (within a fraction of a percent run to run). A change of a few microseconds per request,
//! invisible in `bench proxy`'s noise, is a few tens of thousands of instructions here.
//!
//! Each daemon runs as a child process under `valgrind --tool=callgrind` on its own data
//! directory of simulator accounts (the simulator runs in this process). After a warm-up,
//! `callgrind_control --zero` resets the counters, the load generator sends `--requests`
//! streamed requests one at a time, and `callgrind_control --dump` writes the profile of
//! exactly that span. A second span with no request measures what the daemon does meanwhile
//! (account ticks), which is subtracted for the run's duration. The profiles are kept for
//! `callgrind_annotate`, which shows which functions grew.

use super::proxy::{
    CODEX_THREAD, Child, codex_body, codex_body_with_ids, daemon_config, headers, make_accounts,
};
use crate::bench::spawn_sim_on_one_core;
use crate::loadgen::{self, LoadSpec, Stop};
use anyhow::Context;
use codex_rotor::sim::{SimHandle, SimOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Knobs of `bench instructions`.
#[derive(Debug, Clone, clap::Args)]
pub struct InstructionsBench {
    /// A daemon binary to compare with, e.g. the `codex-rotor` of an earlier commit (it is
    /// started as `BINARY --config FILE --log-level warn serve`).
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// The daemon binary to measure; by default this one (`rotor-lab serve`).
    #[arg(long)]
    pub current: Option<PathBuf>,
    /// Requests counted (sent one at a time).
    #[arg(long, default_value_t = 200)]
    pub requests: u64,
    /// Requests sent before counting starts (connections, caches, lazy statics).
    #[arg(long, default_value_t = 20)]
    pub warmup: u64,
    /// Accounts in each daemon's pool.
    #[arg(long, default_value_t = 10)]
    pub accounts: usize,
    /// Words per answer (more words = more SSE events per response).
    #[arg(long, default_value_t = 8)]
    pub words: usize,
    /// Send the thread's ids as the Codex CLI does (`session_id` header, `prompt_cache_key`
    /// in the body), which the daemon replaces per account (docs/protocol.md §2).
    #[arg(long)]
    pub codex_ids: bool,
    /// Have the simulator list the items in `response.completed` (the real backend routinely
    /// sends `"output": []`, which the daemon fills in): a diagnostic that leaves the
    /// back-fill out of the count, for comparing against a daemon that never fills it.
    #[arg(long)]
    pub completed_output: bool,
    /// Where the callgrind profiles are written (default: a fresh directory under the
    /// system's temporary directory, printed with the report).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

/// One daemon's count.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Count {
    /// `current` or `baseline`.
    pub label: &'static str,
    /// The binary measured.
    pub binary: PathBuf,
    /// Instructions in the span of the counted requests.
    pub span_ir: u64,
    /// How long that span took (under callgrind, so tens of times the native time).
    pub span: Duration,
    /// Instructions per second with no request in flight.
    pub idle_ir_per_sec: f64,
    /// `(span_ir − idle_ir_per_sec × span) ÷ requests`.
    pub per_request: f64,
    /// The profile of the counted span, for `callgrind_annotate`.
    pub profile: PathBuf,
}

/// Runs the count for the current binary and, if given, the baseline; prints the report.
pub async fn run(b: &InstructionsBench) -> anyhow::Result<String> {
    for tool in ["valgrind", "callgrind_control"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        anyhow::ensure!(
            found,
            "`{tool}` is not installed (apt-get install valgrind)"
        );
    }
    let out_dir = match &b.out_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("rotor-instructions-{}", std::process::id())),
    };
    std::fs::create_dir_all(&out_dir)?;
    let one_core = spawn_sim_on_one_core(SimOptions {
        answer_words: b.words,
        completed_output: b.completed_output,
        ..SimOptions::default()
    })?;
    let sim = one_core.handle.clone();
    let current = match &b.current {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("locating this binary")?,
    };
    let mut counts = vec![count(&sim, b, &out_dir, "current", current).await?];
    if let Some(base) = &b.baseline {
        counts.push(count(&sim, b, &out_dir, "baseline", base.clone()).await?);
    }
    sim.shutdown().await;
    drop(one_core);
    Ok(render(b, &counts))
}

/// Counts one daemon: start under callgrind, warm up, count the requests, count idleness.
async fn count(
    sim: &SimHandle,
    b: &InstructionsBench,
    out_dir: &Path,
    label: &'static str,
    binary: PathBuf,
) -> anyhow::Result<Count> {
    let dir = out_dir.join(format!("{label}-data"));
    let _ = std::fs::remove_dir_all(&dir);
    make_accounts(sim, &dir, b.accounts, None).await?;
    let key = "bench-pool-key-0123456789abcdef";
    let (config, addr) = daemon_config(sim, &dir, key, None)?;
    let profile = out_dir.join(format!("{label}.callgrind"));
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", profile.display()))
        .arg(&binary)
        .arg("--config")
        .arg(&config)
        .args(["--log-level", "warn", "serve"]);
    let log = std::fs::File::create(out_dir.join(format!("{label}.log")))?;
    let child = cmd
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting valgrind")?;
    let mut child = Child { child, addr }
        .healthy_within(label, Duration::from_secs(180))
        .await?;
    let pid = child.child.id();
    let spec = |n| LoadSpec {
        url: format!("http://{addr}/v1/responses"),
        headers: {
            let mut h = headers(key, None);
            if b.codex_ids {
                h.push(("session_id".into(), CODEX_THREAD.into()));
            }
            h
        },
        body: if b.codex_ids {
            codex_body_with_ids()
        } else {
            codex_body()
        }
        .into(),
        concurrency: 1,
        stop: Stop::Requests(n),
        expect_body_contains: Some("\"response.completed\"".into()),
        ..LoadSpec::default()
    };
    loadgen::run(spec(b.warmup)).await?;
    control(pid, "--zero")?;
    let started = Instant::now();
    let load = loadgen::run(spec(b.requests)).await?;
    let span = started.elapsed();
    control(pid, "--dump")?;
    anyhow::ensure!(
        load.ok == b.requests && load.incomplete == 0,
        "{label}: {} of {} requests succeeded ({} incomplete, statuses {:?})",
        load.ok,
        b.requests,
        load.incomplete,
        load.statuses
    );
    let span_ir = summary(&dump_path(&profile, 1)).await?;
    let idle = Duration::from_secs(3);
    control(pid, "--zero")?;
    let idle_started = Instant::now();
    tokio::time::sleep(idle).await;
    control(pid, "--dump")?;
    let idle_elapsed = idle_started.elapsed();
    let idle_ir = summary(&dump_path(&profile, 2)).await?;
    child.stop();
    let _ = std::fs::remove_dir_all(&dir);
    let idle_ir_per_sec = idle_ir as f64 / idle_elapsed.as_secs_f64();
    let busy = span_ir as f64 - idle_ir_per_sec * span.as_secs_f64();
    Ok(Count {
        label,
        binary,
        span_ir,
        span,
        idle_ir_per_sec,
        per_request: busy.max(0.0) / b.requests as f64,
        profile: dump_path(&profile, 1),
    })
}

/// `callgrind_control <what> <pid>` (`--zero`, `--dump`).
fn control(pid: u32, what: &str) -> anyhow::Result<()> {
    let status = Command::new("callgrind_control")
        .arg(what)
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running callgrind_control")?;
    anyhow::ensure!(status.success(), "callgrind_control {what} {pid} failed");
    Ok(())
}

/// The file of the `n`th dump of a run writing to `profile`.
fn dump_path(profile: &Path, n: u32) -> PathBuf {
    let mut s = profile.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The `summary:` (total `Ir`) of a callgrind profile, once callgrind has written it.
async fn summary(path: &Path) -> anyhow::Result<u64> {
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Some(ir) = parse_summary(&text)
        {
            return Ok(ir);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("no summary line in {}", path.display())
}

/// The first figure of a profile's `summary:` line (its first event is `Ir`).
fn parse_summary(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The report: instructions per request of each daemon and their ratio.
fn render(b: &InstructionsBench, counts: &[Count]) -> String {
    let mut s = format!(
        "instructions per streamed /v1/responses request (callgrind; {} requests one at a \
         time after {} warm-up; {} accounts; {} words per answer)\n",
        b.requests, b.warmup, b.accounts, b.words
    );
    for c in counts {
        s.push_str(&format!(
            "  {:<8} {:>12.0} Ir/request  (span {} Ir in {:.1}s, idle {:.0} Ir/s subtracted)  {}\n",
            c.label,
            c.per_request,
            c.span_ir,
            c.span.as_secs_f64(),
            c.idle_ir_per_sec,
            c.binary.display()
        ));
    }
    if let [current, baseline] = counts
        && baseline.per_request > 0.0
    {
        s.push_str(&format!(
            "  current ÷ baseline {:.3} ({:+.0} Ir/request)\n",
            current.per_request / baseline.per_request,
            current.per_request - baseline.per_request
        ));
    }
    s.push_str("  profiles (callgrind_annotate FILE):\n");
    for c in counts {
        s.push_str(&format!("    {}\n", c.profile.display()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_line_gives_the_instruction_count() {
        let text = "version: 1\ncreator: callgrind-3.22.0\nevents: Ir\nsummary: 123456\n\nfn=x\n1 2\ntotals: 123456\n";
        assert_eq!(parse_summary(text), Some(123_456));
        assert_eq!(parse_summary("events: Ir\n"), None);
        assert_eq!(
            dump_path(Path::new("/tmp/current.callgrind"), 2),
            PathBuf::from("/tmp/current.callgrind.2")
        );
    }
}
