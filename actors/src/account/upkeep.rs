//! The account actor's upkeep: the periodic tick (quota resets, probes of unverified quota,
//! coalesced flushes, retrying a token write the disk refused), usage probes as spawned tasks,
//! availability pushes, and operator changes (merge an import, enable/disable).

use std::time::Duration;

use futures::FutureExt;

use super::refresh::{
    finish_rotation, refresh_if_due, report_rotation, schedule_refresh, start_refresh,
};
use super::{AccountMsg, AccountRef, Action, Report, Running};
use crate::quota::Event;
use crate::{AccountRecord, Merged, ProbeError, RefreshReason, Status, UnixMs, quota};

/// Upper bound on one usage probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Performs the actions a state change asked for.
pub(super) fn act(me: &AccountRef, s: &mut Running, actions: Vec<Action>, now: UnixMs) {
    for a in actions {
        match a {
            Action::Probe => start_probe(me, s, now),
            Action::Refresh(reason) => start_refresh(me, s, reason),
        }
    }
}

/// The periodic upkeep of one tick: forget a quiet cooldown, feed the quota its tick, start
/// what is due (probe, refresh) and flush coalesced changes.
pub(super) fn tick(me: &AccountRef, s: &mut Running, now: UnixMs) {
    crate::fault::panic_point(&s.st.rec.id);
    s.st.cooldown.forget_if_quiet(now);
    let actions = s.st.quota(Event::Tick, now);
    act(me, s, actions, now);
    let retry_due =
        s.st.last_probe_at
            .is_none_or(|t| now - t >= s.st.cfg.probe_retry_ms);
    if s.st.rec.quota.verify_since.is_some() && retry_due {
        start_probe(me, s, now);
    }
    if !s.st.tokens_durable {
        let store = s.fx.store.clone();
        finish_rotation(me, s, store.as_ref());
    }
    refresh_if_due(me, s, now);
    s.st.flush(s.fx.store.as_ref(), now);
}

/// Starts a usage probe as a task (single-flight); the answer comes back as `Probed`.
pub(super) fn start_probe(me: &AccountRef, s: &mut Running, now: UnixMs) {
    if s.st.probing || s.st.rec.status != Status::Active || !s.st.tokens_durable {
        return;
    }
    s.st.probing = true;
    s.st.last_probe_at = Some(now);
    let (prober, creds, me) = (s.fx.prober.clone(), s.st.creds(), me.clone());
    tokio::spawn(async move {
        let r = match tokio::time::timeout(PROBE_TIMEOUT, prober.probe(creds)).await {
            Ok(r) => r,
            Err(_) => Err(ProbeError::Transient("usage probe timed out".into())),
        };
        let _ = me.cast(AccountMsg::Probed(r));
    });
}

/// A usage probe answered.
pub(super) fn probed(
    me: &AccountRef,
    s: &mut Running,
    r: Result<quota::Observation, ProbeError>,
    now: UnixMs,
) {
    s.st.probing = false;
    match r {
        Ok(obs) => {
            let actions = s.st.quota(Event::Probed(obs), now);
            act(me, s, actions, now);
        }
        Err(ProbeError::Unauthorized) => start_refresh(me, s, RefreshReason::UnauthorizedRecovery),
        Err(ProbeError::Banned(reason)) => {
            if s.st.set_status(Status::Banned, Some(reason)) {
                s.st.persist(s.fx.store.as_ref());
            }
        }
        Err(ProbeError::Transient(m)) => {
            tracing::debug!(account = %s.st.rec.id, error = %m, "usage probe failed")
        }
    }
}

/// Pushes availability to the supervisor if it changed.
pub(super) fn push(s: &mut Running, now: UnixMs) {
    let mut last = s.st.last_pushed.take();
    let changed = s.st.candidate_if_changed(&mut last, now);
    s.st.last_pushed = last;
    if let Some(c) = changed {
        (s.notify)(Report::Availability(c));
    }
}

/// Merges an imported record of the same account by the one import rule
/// ([`merge_import`](crate::merge_import)): never an older or spent token back; `expired`
/// becomes `active` with new tokens, `banned` and `disabled` never do. New tokens supersede a
/// rotation in flight (its intent is cleared, its answer will be dropped) and are durable
/// before the reply.
pub(super) fn merge(
    me: &AccountRef,
    s: &mut Running,
    rec: AccountRecord,
    from: Imported,
) -> Merged {
    let before = s.st.rec.clone();
    let merged = crate::merge_import(&mut s.st.rec, rec);
    if merged == Merged::Replaced {
        // A refresh that already took the old refresh token comes back about it, not ours; one
        // not yet begun is dropped when it asks for the token (the fresh tokens need no refresh
        // now, and a fence's intent begun for the old ones would refuse its finish).
        s.st.refresh_superseded |= s.st.refreshing.is_some();
        s.st.refresh_failures = 0;
        if let Some(rt) = s.st.rec.tokens.refresh_token.clone()
            && before.tokens.refresh_token.as_ref() != Some(&rt)
        {
            report_rotation(s, &rt);
        }
    }
    if s.st.rec.status != before.status {
        tracing::info!(account = %s.st.rec.id, from = before.status.as_str(), to = s.st.rec.status.as_str(), "status change by import");
    }
    if s.st.rec != before && s.st.persist(s.fx.store.as_ref()) {
        s.st.tokens_durable = true;
        if merged == Merged::Replaced && from == Imported::Here {
            // The store learns of the fresh tokens (a new token version, no ambiguity); its
            // answer changes nothing here.
            let mut fut = s.fx.fence.imported(&s.st.rec.id);
            if (&mut fut).now_or_never().is_none() {
                tokio::spawn(fut);
            }
        }
    }
    if merged == Merged::Replaced {
        schedule_refresh(me, s);
    }
    merged
}

/// Where an import merged into an account was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Imported {
    /// Into this actor: the fence tells the shared store.
    Here,
    /// On another node, which told the store; this actor reloads it.
    Elsewhere,
}

/// Merges the account's record as the store holds it now (tokens imported on another node).
pub(super) fn reload(me: &AccountRef, s: &mut Running) -> Option<Merged> {
    match s.fx.store.load(&s.st.rec.id) {
        Ok(Some(rec)) => {
            let m = merge(me, s, rec, Imported::Elsewhere);
            tracing::info!(account = %s.st.rec.id, merged = ?m, "reloaded from the store");
            Some(m)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(account = %s.st.rec.id, error = %e, "could not reload the account");
            None
        }
    }
}

/// Operator enable/disable. Enabling only lifts `disabled`.
pub(super) fn set_enabled(s: &mut Running, on: bool) {
    let changed = match (on, s.st.rec.status) {
        (true, Status::Disabled) => s.st.set_status(Status::Active, None),
        (false, st) if st != Status::Disabled => {
            s.st.set_status(Status::Disabled, Some("disabled by operator".into()))
        }
        _ => false,
    };
    if changed {
        s.st.persist(s.fx.store.as_ref());
    }
}
