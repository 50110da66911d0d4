//! What a chaos run found: the figures, the outcome of every request by protocol, and the list
//! of checks with their verdicts, printed as one summary table. A run passes iff every check
//! passes; the CLI exits non-zero and the test fails otherwise.

use super::load::{Kind, Outcome, Record};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// One asserted property and whether it held.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was asserted.
    pub name: String,
    /// Whether it held.
    pub ok: bool,
    /// The evidence (figures, first offenders).
    pub detail: String,
}

/// Everything a chaos run measured.
#[derive(Debug, Default)]
pub struct ChaosReport {
    /// Accounts in the pool.
    pub accounts: usize,
    /// Concurrent client workers.
    pub concurrency: usize,
    /// Length of the load.
    pub duration: Duration,
    /// Every finished client request.
    pub records: Vec<Record>,
    /// Simulator totals: (label, value).
    pub upstream: Vec<(String, u64)>,
    /// Faults and events injected: (label, count or note).
    pub injected: Vec<(String, String)>,
    /// Other figures: (label, value).
    pub figures: Vec<(String, String)>,
    /// The asserted properties.
    pub checks: Vec<Check>,
}

impl ChaosReport {
    /// Adds a check.
    pub fn check(&mut self, name: impl Into<String>, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.into(),
            ok,
            detail: detail.into(),
        });
    }

    /// True iff every check held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The checks that failed, one line each.
    pub fn failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect()
    }

    /// Counts of outcomes per kind.
    pub fn outcome_table(&self) -> BTreeMap<(Kind, String), u64> {
        let mut t = BTreeMap::new();
        for r in &self.records {
            let label = match &r.outcome {
                Outcome::Success => "success".to_string(),
                Outcome::ProtocolError(l) => format!("protocol error: {l}"),
                Outcome::CutByKill => "cut by a fault on its node (SIGKILL, SIGSTOP)".to_string(),
                Outcome::Violation(v) => {
                    format!("VIOLATION: {}", v.chars().take(200).collect::<String>())
                }
            };
            *t.entry((r.kind, label)).or_insert(0) += 1;
        }
        t
    }

    /// The summary table.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let secs = self.duration.as_secs_f64().max(0.001);
        let _ = writeln!(
            s,
            "rotor-lab chaos: {} accounts, {} concurrent clients, {:.0} s of load",
            self.accounts, self.concurrency, secs
        );
        let _ = writeln!(
            s,
            "\nclient requests: {} ({:.1}/s)",
            self.records.len(),
            self.records.len() as f64 / secs
        );
        let _ = writeln!(s, "  {:<16} {:>7}  outcome", "kind", "count");
        for ((kind, label), n) in self.outcome_table() {
            let _ = writeln!(s, "  {:<16} {:>7}  {label}", format!("{kind:?}"), n);
        }
        let _ = writeln!(s, "\ninjected:");
        for (k, v) in &self.injected {
            let _ = writeln!(s, "  {k:<44} {v}");
        }
        let _ = writeln!(s, "\nupstream (simulator totals):");
        for (k, v) in &self.upstream {
            let _ = writeln!(s, "  {k:<44} {v}");
        }
        let _ = writeln!(s, "\nfigures:");
        for (k, v) in &self.figures {
            let _ = writeln!(s, "  {k:<44} {v}");
        }
        let _ = writeln!(s, "\nchecks:");
        for c in &self.checks {
            let _ = writeln!(
                s,
                "  [{}] {:<52} {}",
                if c.ok { "PASS" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        let _ = writeln!(
            s,
            "\nverdict: {}",
            if self.passed() { "PASS" } else { "FAIL" }
        );
        s
    }
}
