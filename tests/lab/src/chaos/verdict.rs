//! The verdicts of a chaos run, taken after the load stopped: leases back to 0, no overdue lock,
//! memory back to its baseline (on the still-running daemon); every account and a live refresh
//! token on disk (after a graceful stop); every request classified, every protocol served, the
//! faults actually hit (from the records and the simulator's counters).

use super::ChaosOptions;
use super::daemon::ChildDaemon;
use super::load::Outcome;
use super::report::ChaosReport;
use super::run::Timeline;
use super::{faults, locks};
use codex_rotor::sim::SimHandle;
use codex_rotor::store::FileStore;
use rotor_actors::{RefreshReason, TokenRefresher};
use std::path::Path;
use std::time::{Duration, Instant};

/// The pool's in-flight count and the sum of its accounts' leases once they return to 0, or
/// what they still were after 10 s (`u64::MAX`: the daemon did not answer).
pub(super) async fn idle_leases(daemon: &ChildDaemon) -> (u64, u64) {
    let start = Instant::now();
    let (mut in_flight, mut leases) = (u64::MAX, u64::MAX);
    while start.elapsed() < Duration::from_secs(10) {
        let pool = daemon.admin("/pool").await.ok();
        let accounts = daemon.admin("/accounts").await.ok();
        in_flight = pool
            .as_ref()
            .and_then(|p| p["in_flight"].as_u64())
            .unwrap_or(u64::MAX);
        leases = accounts.as_ref().map_or(u64::MAX, locks::leases);
        if in_flight == 0 && leases == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (in_flight, leases)
}

/// Checks taken on the running daemon after the load stopped: leases, locks, memory.
pub(super) async fn after_load(
    opts: &ChaosOptions,
    daemon: &mut ChildDaemon,
    report: &mut ChaosReport,
    tl: &Timeline,
) {
    let (in_flight, leases) = idle_leases(daemon).await;
    report.check(
        "in-flight leases return to 0",
        in_flight == 0 && leases == 0,
        format!("pool in_flight {in_flight}, sum of account leases {leases}"),
    );
    let mut late: Vec<String> = tl
        .overdue
        .iter()
        .map(|o| format!("{} {} +{} ms", o.id, o.what, o.late_ms))
        .collect();
    late.dedup();
    report.check(
        "no lock outlives its reset + probe interval",
        late.is_empty(),
        if late.is_empty() {
            format!("slack {} ms", opts.tick.as_millis() * 2 + 5_000)
        } else {
            format!(
                "{} overdue samples, first: {:?}",
                late.len(),
                &late[..late.len().min(3)]
            )
        },
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fin = daemon.rss_kib();
    match (tl.baseline_rss, fin) {
        (Some(b), Some(f)) => {
            let ratio = f as f64 / b.max(1) as f64;
            report.check(
                "RSS returns to its baseline (±20%)",
                (1.0 - opts.rss_tolerance..=1.0 + opts.rss_tolerance).contains(&ratio),
                format!(
                    "baseline {} KiB, after load {} KiB ({:+.1}%)",
                    b,
                    f,
                    (ratio - 1.0) * 100.0
                ),
            );
        }
        _ => report.check(
            "RSS returns to its baseline (±20%)",
            false,
            "RSS could not be read from /proc",
        ),
    }
    if let (Some((c0, n0)), Some(c1)) = (tl.baseline_cpu, daemon.cpu_ms()) {
        let n = report.records.len().saturating_sub(n0).max(1);
        report.figures.push((
            "daemon CPU per request (after baseline)".into(),
            format!(
                "{:.3} ms ({} ms / {} requests)",
                (c1 - c0) as f64 / n as f64,
                c1 - c0,
                n
            ),
        ));
    }
}

/// After a graceful stop: every account is on disk, none quarantined, each refresh token live.
pub(super) async fn on_disk(
    sim: &SimHandle,
    data: &Path,
    sim_ids: &[String],
    report: &mut ChaosReport,
) {
    let (recs, quarantined) = match FileStore::open(data) {
        Ok((_, r, q)) => (r, q),
        Err(e) => {
            return report.check(
                "no account lost after SIGKILL + restart",
                false,
                format!("data dir unreadable: {e}"),
            );
        }
    };
    records_hold(sim, &recs, quarantined.len(), sim_ids, report).await;
}

/// Every simulator account has its record (none quarantined) and each record's refresh token
/// is the newest the simulator issued (it is exchanged once more to prove it).
pub(super) async fn records_hold(
    sim: &SimHandle,
    recs: &[rotor_actors::AccountRecord],
    quarantined: usize,
    sim_ids: &[String],
    report: &mut ChaosReport,
) {
    let missing: Vec<&String> = sim_ids
        .iter()
        .filter(|id| {
            !recs
                .iter()
                .any(|r| r.identity.chatgpt_account_id.as_deref() == Some(id.as_str()))
        })
        .collect();
    report.check(
        "no account lost after SIGKILL + restart",
        missing.is_empty() && quarantined == 0 && recs.len() == sim_ids.len(),
        format!(
            "{} of {} stored, {} quarantined, missing {:?}",
            recs.len(),
            sim_ids.len(),
            quarantined,
            &missing[..missing.len().min(3)]
        ),
    );
    let refresher = codex_rotor::HttpRefresher::new(reqwest::Client::new(), sim.token_url());
    let mut dead = Vec::new();
    let mut ambiguous = Vec::new();
    for r in recs {
        let Some(rt) = r.tokens.refresh_token.clone() else {
            dead.push(format!("{}: no refresh token", r.id));
            continue;
        };
        // A fault between a refresh's begin and its durable finish leaves the account flagged
        // `refresh_ambiguous` (docs/cluster.md "Refresh under fencing"): by design it is never
        // refreshed again and expires with its access token, named, until fresh tokens are
        // imported. That is no lost token — the refresh below still proves the one on disk is
        // the newest — so it is counted on its own line, not here; any other expiry or ban is.
        let flagged = r.refresh_ambiguous && r.status == rotor_actors::Status::Expired;
        if flagged {
            ambiguous.push(r.id.clone());
        } else if matches!(
            r.status,
            rotor_actors::Status::Expired | rotor_actors::Status::Banned
        ) {
            dead.push(format!("{}: {:?} {:?}", r.id, r.status, r.status_reason));
        }
        if let Err(e) = refresher.refresh(rt, RefreshReason::ProactiveExpiry).await {
            dead.push(format!("{}: refresh token on disk refused: {e:?}", r.id));
        }
    }
    let statuses = recs.iter().fold(
        std::collections::BTreeMap::<&str, usize>::new(),
        |mut m, r| {
            *m.entry(r.status.as_str()).or_default() += 1;
            m
        },
    );
    report.figures.push((
        "account statuses on disk at the end".into(),
        format!("{statuses:?}"),
    ));
    report.figures.push((
        "flagged refresh_ambiguous (re-import needed)".into(),
        format!(
            "{} {:?}",
            ambiguous.len(),
            &ambiguous[..ambiguous.len().min(3)]
        ),
    ));
    report.check(
        "no refresh token lost (disk = newest the sim issued)",
        dead.is_empty() && !recs.is_empty(),
        if dead.is_empty() {
            format!("{} refresh tokens live", recs.len())
        } else {
            format!("{} bad: {:?}", dead.len(), &dead[..dead.len().min(3)])
        },
    );
}

/// Every request ended in success or a correct protocol error; every protocol was served.
pub(super) fn outcome_checks(report: &mut ChaosReport) {
    let violations: Vec<String> = report
        .records
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Violation(v) => Some(format!("{:?}: {v}", r.kind)),
            _ => None,
        })
        .collect();
    report.check(
        "every request: success or a correct protocol error",
        violations.is_empty() && !report.records.is_empty(),
        format!(
            "{} requests, {} violations {:?}",
            report.records.len(),
            violations.len(),
            &violations[..violations.len().min(3)]
        ),
    );
    let unserved: Vec<String> = super::load::KINDS
        .iter()
        .filter(|k| {
            !report
                .records
                .iter()
                .any(|r| r.kind == **k && r.outcome == Outcome::Success)
        })
        .map(|k| format!("{k:?}"))
        .collect();
    report.check(
        "every protocol was served during the storm",
        unserved.is_empty(),
        if unserved.is_empty() {
            "6 of 6 kinds".to_string()
        } else {
            format!("never succeeded: {unserved:?}")
        },
    );
}

/// Outcome checks and the figures of the summary.
pub(super) fn fill_figures(
    sim: &SimHandle,
    report: &mut ChaosReport,
    tl: &Timeline,
    opts: &ChaosOptions,
) {
    outcome_checks(report);
    let c = sim.total_counters();
    report.check(
        "the faults actually hit",
        c.faults > 0 && c.served_401 > 0 && c.refreshes > 0,
        format!(
            "{} faults, {} 401s, {} refreshes",
            c.faults, c.served_401, c.refreshes
        ),
    );
    report.upstream = vec![
        ("responses requests".into(), c.requests),
        ("429 served".into(), c.served_429),
        ("401 served".into(), c.served_401),
        ("403 served".into(), c.served_403),
        ("5xx served".into(), c.served_5xx),
        ("injected faults that hit".into(), c.faults),
        ("token refreshes".into(), c.refreshes),
        ("refresh-token reuse attempts".into(), c.refresh_reused),
        ("usage probes".into(), c.usage_probes),
    ];
    for (label, f) in faults::storm() {
        report.injected.push((
            label.to_string(),
            format!("p = {}", f.probability.unwrap_or(1.0)),
        ));
    }
    report.injected.push((
        "access tokens expired (→ 401 → refresh)".into(),
        format!("{} accounts (1 every 3 s)", tl.expired_rounds),
    ));
    report.injected.push((
        "SIGKILL + restart of the daemon".into(),
        match (opts.kill, tl.restart_ms) {
            (true, Some(ms)) => format!("once, at 45%, back healthy in {ms} ms"),
            _ => "not run (--no-kill)".into(),
        },
    ));
    let cut = report
        .records
        .iter()
        .filter(|r| r.outcome == Outcome::CutByKill)
        .count();
    report
        .figures
        .push(("client requests cut by the SIGKILL".into(), cut.to_string()));
}
