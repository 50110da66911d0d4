//! The injected account-actor panic: the first daemon process is started with
//! `CODEX_ROTOR_PANIC_ACCOUNT=<one account id>`, so that account's actor panics once on its first
//! tick. The run watches the supervisor restart it (`restarts` in `GET /admin/pool`, the figure
//! behind `codex_rotor_actor_restarts_total`) and checks that the account is still there and
//! serves afterwards. Only the first process gets the env: the second one (after the SIGKILL)
//! would panic it again and the count would mix both processes.

use super::daemon::ChildDaemon;
use super::report::ChaosReport;
use serde_json::Value;

/// What the run saw of the injected panic, sampled while the panicked process lives.
#[derive(Debug, Default)]
pub(super) struct PanicWatch {
    /// The account whose actor panics (its pool id).
    pub(super) id: Option<String>,
    /// Supervisor restarts reported by the process that panicked (last sample).
    pub(super) restarts: Option<u64>,
    /// The account's served requests when the restart was first seen.
    pub(super) requests_at_restart: Option<u64>,
    /// Its served requests at the last sample of that process.
    pub(super) requests_later: Option<u64>,
    /// `GET /admin/accounts/{id}/explain` at that sample, from the restarted actor itself.
    pub(super) explain_later: Option<Value>,
    /// Whether the restarted actor said it was available at any sample after the restart.
    /// One sample alone can fall on a moment the storm holds the account off (a 429's lock,
    /// a refusal's cooldown, a refresh), which says nothing about the restart.
    pub(super) available_seen: bool,
}

impl PanicWatch {
    /// One sample on the process that was started with the panic env.
    pub(super) async fn sample(&mut self, daemon: &ChildDaemon) {
        let Some(id) = self.id.clone() else { return };
        let Some(restarts) = daemon
            .admin("/pool")
            .await
            .ok()
            .and_then(|p| p["restarts"].as_u64())
        else {
            return;
        };
        self.restarts = Some(restarts);
        if restarts == 0 {
            return;
        }
        let Some(requests) = daemon
            .admin(&format!("/accounts/{id}"))
            .await
            .ok()
            .and_then(|a| a["usage"]["requests"].as_u64())
        else {
            return;
        };
        self.requests_at_restart.get_or_insert(requests);
        self.requests_later = Some(requests);
        self.explain_later = daemon.admin(&format!("/accounts/{id}/explain")).await.ok();
        self.available_seen |= self
            .explain_later
            .as_ref()
            .is_some_and(|e| e["available"].as_bool() == Some(true));
    }
}

/// Checks the panic's aftermath: the panicked process restarted the actor at least once and
/// the restarted actor reports itself available; the daemon alive at the end still has the
/// account with a usable status (that it is on disk with a live token is checked by `on_disk`).
pub(super) async fn verdict(w: &PanicWatch, daemon: &ChildDaemon, report: &mut ChaosReport) {
    let Some(id) = &w.id else {
        return report.check(
            "an account-actor panic is survived",
            false,
            "no account to panic",
        );
    };
    let now: Option<Value> = daemon.admin(&format!("/accounts/{id}")).await.ok();
    let status = now
        .as_ref()
        .and_then(|a| a["status"].as_str().map(str::to_owned));
    let usable = status
        .as_deref()
        .is_some_and(|s| !matches!(s, "expired" | "banned" | "disabled"));
    let quota_seen = now
        .as_ref()
        .is_some_and(|a| !a["quota"]["primary"].is_null());
    let restarts = w.restarts.unwrap_or(0);
    let served_after = match (w.requests_at_restart, w.requests_later) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => 0,
    };
    // "Serves" is judged by the restarted actor itself: it answers and, at some sample after
    // the restart, finds no reason not to serve. Requests served are reported, not required:
    // least-used rotation may leave an account whose quota is still unknown idle while the
    // others have room.
    let available = w.available_seen;
    let last_why = w
        .explain_later
        .as_ref()
        .filter(|e| e["available"].as_bool() != Some(true))
        .map(|e| format!(" (unavailable at the last sample: {})", e["reasons"]))
        .unwrap_or_default();
    report.check(
        "an account-actor panic is restarted; the account keeps serving",
        restarts >= 1 && available && usable,
        format!(
            "{id}: {restarts} supervisor restart(s); after it: available {available}{last_why}, \
             {served_after} requests served; at the end: status {status:?}, quota primary \
             bucket {}",
            if quota_seen { "known" } else { "unknown" },
        ),
    );
    report.injected.push((
        "account-actor panic".into(),
        format!("once, on the first tick of {id} (first process), {restarts} restart(s)"),
    ));
}
