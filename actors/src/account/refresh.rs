//! Token refresh: when to refresh (expiry − margin ± jitter), the pool-wide gate that bounds
//! refreshes in flight and per minute, and the task that talks to the token endpoint. The
//! exactly-once rotation protocol lives in the actor: the intent is durable before the endpoint
//! is called, the new tokens are durable before any lease sees them, the intent is cleared after.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use ractor::rpc::CallResult;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{AccountMsg, AccountRef, Report, Running};
use crate::{
    AccountId, FenceRefusal, FenceTicket, NewTokens, RefreshError, RefreshFence, RefreshIntent,
    RefreshReason, Status, Store, TokenRefresher, Tokens, UnixMs, fault, jwt,
};

/// Access tokens whose expiry cannot be read are refreshed this long after the last refresh.
pub const FALLBACK_INTERVAL_MS: i64 = 8 * 24 * 3_600_000;
/// Status reason of an account whose refresh token is dead: only a new login helps.
pub const NEEDS_LOGIN: &str = "needs login";
/// Why an account is `refresh_ambiguous`, as operators read it (status, explain, admin,
/// dashboard).
pub const AMBIGUOUS: &str = "a refresh may have used this refresh token without its result \
     being stored: re-login or import fresh tokens";
/// How long a refresh task waits for its actor to write the intent.
const BEGIN_TIMEOUT: Duration = Duration::from_secs(10);

/// When the proactive refresh of `tokens` is due. `jitter` is the already-drawn offset.
pub fn due_at(tokens: &Tokens, added_at: UnixMs, margin_ms: i64, jitter: i64) -> UnixMs {
    match tokens.expires_at {
        Some(exp) => exp - margin_ms + jitter,
        None => tokens.last_refresh.unwrap_or(added_at) + FALLBACK_INTERVAL_MS - margin_ms + jitter,
    }
}

/// Retry delay after the `n`th consecutive transient refresh failure (30 s doubling to 10 min).
pub fn retry_delay(n: u32) -> Duration {
    Duration::from_secs((30u64 << n.min(5)).min(600))
}

/// Retry delay after the `n`th consecutive begin the fence refused as "later" (a refresh in
/// flight, a session too short for the window, the store unreachable): nothing was sent, so
/// the retry need not wait the failure backoff — 1 s doubling to 8 s.
pub fn begin_retry_delay(n: u8) -> Duration {
    Duration::from_secs(1 << n.saturating_sub(1).min(3))
}

/// Pool-wide limits on refreshes: at most `concurrent` in flight and `per_minute` started in
/// any minute. Shared by every account actor of a pool.
#[derive(Debug)]
pub struct RefreshGate {
    /// Slots for refreshes in flight.
    slots: Arc<Semaphore>,
    /// Start times within the last minute.
    starts: Mutex<VecDeque<tokio::time::Instant>>,
    /// Refreshes allowed to start per minute.
    per_minute: usize,
}

impl RefreshGate {
    /// A gate with the given limits (each at least 1).
    pub fn new(concurrent: usize, per_minute: u32) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(concurrent.max(1))),
            starts: Mutex::new(VecDeque::new()),
            per_minute: (per_minute as usize).max(1),
        }
    }

    /// Waits for a slot and for room in the per-minute budget; the permit frees the slot.
    pub async fn acquire(&self) -> Option<GatePermit> {
        let slot = self.slots.clone().acquire_owned().await.ok()?;
        loop {
            let wait = {
                let now = tokio::time::Instant::now();
                let mut starts = self.starts.lock().unwrap_or_else(|e| e.into_inner());
                while starts
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
                {
                    starts.pop_front();
                }
                if starts.len() < self.per_minute {
                    starts.push_back(now);
                    return Some(GatePermit {
                        _slot: slot,
                        started: now,
                    });
                }
                starts
                    .front()
                    .map(|t| Duration::from_secs(60).saturating_sub(now.duration_since(*t)))
            };
            tokio::time::sleep(wait.unwrap_or(Duration::from_secs(1))).await;
        }
    }
}

impl RefreshGate {
    /// Gives back the per-minute budget `p` took: its refresh never started (the fence
    /// refused the begin, nothing was sent), so it must not hold back the refreshes that do.
    pub fn refund(&self, p: GatePermit) {
        let mut starts = self.starts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = starts.iter().rposition(|t| *t == p.started) {
            starts.remove(i);
        }
    }
}

/// A refresh's place in the [`RefreshGate`]: its slot (freed on drop) and the start it counts
/// in the per-minute budget.
#[derive(Debug)]
pub struct GatePermit {
    _slot: OwnedSemaphorePermit,
    started: tokio::time::Instant,
}

/// The refresh task: gate → the fence commits the intent in the store → ask the actor to
/// write its intent (and hand over the refresh token) → call the endpoint (within the fence's
/// timeout) → send the result back. Runs outside the actor. A refused begin calls nothing.
pub fn spawn(
    me: AccountRef,
    id: AccountId,
    gate: Arc<RefreshGate>,
    refresher: Arc<dyn TokenRefresher>,
    fence: Arc<dyn RefreshFence>,
    reason: RefreshReason,
) {
    tokio::spawn(async move {
        let permit = gate.acquire().await;
        let ticket = match fence.begin(&id).await {
            Ok(t) => t,
            Err(refusal) => {
                if let Some(p) = permit {
                    gate.refund(p);
                }
                let _ = me.cast(AccountMsg::FenceRefused(refusal));
                return;
            }
        };
        let begun = me
            .call(
                |reply| AccountMsg::BeginRefresh {
                    ticket: ticket.clone(),
                    reply,
                },
                Some(BEGIN_TIMEOUT),
            )
            .await;
        let rt = match begun {
            Ok(CallResult::Success(Some(rt))) => rt,
            Ok(CallResult::Success(None)) => {
                let _ = fence.abandon(&id, ticket, false).await;
                return;
            }
            _ => {
                let _ = fence.abandon(&id, ticket, false).await;
                let err =
                    RefreshError::Transient("account did not start the refresh in time".into());
                let _ = me.cast(AccountMsg::TokensRefreshed(Err(err)));
                return;
            }
        };
        let call = refresher.refresh(rt, reason);
        let result = match fence.call_timeout() {
            None => call.await,
            Some(bound) => tokio::time::timeout(bound, call).await.unwrap_or_else(|_| {
                Err(RefreshError::Unanswered(format!(
                    "no answer within {} ms",
                    bound.as_millis()
                )))
            }),
        };
        let _ = me.cast(AccountMsg::TokensRefreshed(result));
    });
}

/// Starts a refresh unless one is in flight (single-flight per account).
pub(super) fn start_refresh(me: &AccountRef, s: &mut Running, reason: RefreshReason) {
    if s.st.refreshing.is_some() || matches!(s.st.rec.status, Status::Banned | Status::Expired) {
        return;
    }
    if s.st.rec.refresh_ambiguous {
        if reason == RefreshReason::UnauthorizedRecovery {
            // The access token is dead and the refresh token may be spent: only a re-login.
            s.st.rec.last_error = Some("access token rejected".into());
            s.st.set_status(Status::Expired, Some(AMBIGUOUS.into()));
            s.st.persist(s.fx.store.as_ref());
        }
        return;
    }
    if s.st
        .rec
        .tokens
        .refresh_token
        .as_deref()
        .is_none_or(str::is_empty)
    {
        if reason == RefreshReason::UnauthorizedRecovery {
            s.st.rec.last_error = Some("access token rejected and no refresh token".into());
            s.st.set_status(Status::Expired, Some(NEEDS_LOGIN.into()));
            s.st.persist(s.fx.store.as_ref());
        }
        return;
    }
    s.st.refreshing = Some(reason);
    if reason == RefreshReason::UnauthorizedRecovery && s.st.rec.status == Status::Active {
        s.st.set_status(Status::Refreshing, Some("access token rejected".into()));
        s.st.dirty = true;
        s.st.dirty_quota = true;
    }
    spawn(
        me.clone(),
        s.st.rec.id.clone(),
        s.gate.clone(),
        s.fx.refresher.clone(),
        s.fx.fence.clone(),
        reason,
    );
}

/// The fence refused to begin: nothing was sent. Later → retry soon ([`begin_retry_delay`]); ambiguous in the
/// store → the account is `refresh_ambiguous` here too; lost → the actor drops the account.
pub(super) fn fence_refused(me: &AccountRef, s: &mut Running, refusal: FenceRefusal) {
    if s.st.refreshing.take().is_none() {
        return;
    }
    match refusal {
        FenceRefusal::Later(why) => {
            s.st.begin_refusals = s.st.begin_refusals.saturating_add(1);
            let delay = begin_retry_delay(s.st.begin_refusals);
            tracing::info!(account = %s.st.rec.id, %why, retry_in_ms = delay.as_millis() as u64, "refresh not begun; will retry");
            arm(me, s, delay);
        }
        FenceRefusal::Ambiguous => mark_ambiguous(s),
        FenceRefusal::Lost(why) => {
            tracing::warn!(account = %s.st.rec.id, %why, "refresh refused: another node owns the account now");
            s.st.lost = true;
        }
    }
}

/// The account's refresh token may have been spent without its result being stored: serve on
/// the access token until it expires, never refresh, say why (docs/cluster.md).
fn mark_ambiguous(s: &mut Running) {
    tracing::error!(account = %s.st.rec.id, "{AMBIGUOUS}");
    s.st.rec.refresh_ambiguous = true;
    s.st.rec.refresh_intent = None;
    s.st.rec.last_error = Some(AMBIGUOUS.into());
    s.st.refresh_due_at = None;
    s.st.persist(s.fx.store.as_ref());
}

/// Step 1 of the rotation: the intent is on disk before the refresh token leaves the actor.
pub(super) fn begin_refresh(
    me: &AccountRef,
    s: &mut Running,
    ticket: FenceTicket,
    now: UnixMs,
) -> Option<String> {
    let reason = s.st.refreshing?;
    s.st.begin_refusals = 0;
    if std::mem::take(&mut s.st.refresh_superseded) {
        // An import replaced the tokens since this refresh was started: it is not wanted.
        s.st.refreshing = None;
        schedule_refresh(me, s);
        return None;
    }
    let Some(rt) = s.st.rec.tokens.refresh_token.clone() else {
        s.st.refreshing = None;
        return None;
    };
    s.st.rec.refresh_intent = Some(RefreshIntent {
        started_at: now,
        reason,
    });
    if !s.st.persist(s.fx.store.as_ref()) {
        s.st.rec.refresh_intent = None;
        s.st.refreshing = None;
        retry_later(me, s);
        return None;
    }
    fault::point(fault::REFRESH_AFTER_INTENT);
    s.st.refresh_token_out = true;
    s.st.fence_ticket = Some(ticket);
    Some(rt)
}

/// Steps 2–3: new tokens durable before any lease sees them, then the intent is cleared.
pub(super) fn tokens_refreshed(
    me: &AccountRef,
    s: &mut Running,
    r: Result<NewTokens, RefreshError>,
    now: UnixMs,
) {
    if s.st.refreshing.take().is_none() {
        return;
    }
    s.st.refresh_token_out = false;
    if r.is_err() || s.st.refresh_superseded {
        let reached = matches!(r, Err(RefreshError::Unanswered(_)));
        abandon(s, reached);
    }
    if std::mem::take(&mut s.st.refresh_superseded) {
        tracing::info!(account = %s.st.rec.id, ok = r.is_ok(), "a refresh of tokens replaced by an import came back; ignored");
        schedule_refresh(me, s);
        return;
    }
    let store = s.fx.store.clone();
    match r {
        Ok(new) => {
            fault::point(fault::REFRESH_AFTER_RESPONSE);
            let t = &mut s.st.rec.tokens;
            if let Some(at) = new.access_token.filter(|a| !a.is_empty()) {
                t.expires_at = jwt::expires_at(&at);
                t.access_token = at;
            }
            if new.id_token.is_some() {
                t.id_token = new.id_token;
            }
            t.last_refresh = Some(now);
            if let Some(rt) = new.refresh_token.filter(|a| !a.is_empty()) {
                report_rotation(s, &rt);
                s.st.rec.replace_refresh_token(rt);
            }
            learn_identity(s);
            if s.st.rec.status == Status::Refreshing {
                s.st.set_status(Status::Active, None);
            }
            s.st.refresh_failures = 0;
            s.st.tokens_durable = false;
            finish_rotation(me, s, store.as_ref());
            tracing::info!(account = %s.st.rec.id, "tokens refreshed");
            schedule_refresh(me, s);
        }
        Err(RefreshError::Transient(m)) => {
            tracing::warn!(account = %s.st.rec.id, error = %m, "token refresh failed; will retry");
            s.st.rec.refresh_intent = None;
            s.st.rec.last_error = Some(format!("refresh: {m}"));
            s.st.persist(store.as_ref());
            s.st.refresh_failures += 1;
            retry_later(me, s);
        }
        Err(RefreshError::Permanent { code, message }) => {
            tracing::warn!(account = %s.st.rec.id, %code, "refresh token rejected: account needs login");
            s.st.rec.refresh_intent = None;
            s.st.rec.last_error = Some(format!("refresh token rejected ({code}): {message}"));
            s.st.set_status(Status::Expired, Some(NEEDS_LOGIN.into()));
            s.st.persist(store.as_ref());
        }
        Err(RefreshError::Deactivated(m)) => {
            s.st.rec.refresh_intent = None;
            s.st.set_status(Status::Banned, Some(format!("deactivated: {m}")));
            s.st.persist(store.as_ref());
        }
        Err(RefreshError::Unanswered(m)) => {
            tracing::warn!(account = %s.st.rec.id, error = %m, "the token endpoint did not answer in the fenced window");
            mark_ambiguous(s);
        }
    }
}

/// Tells the fence the refresh in flight stored nothing (in the background: its answer changes
/// nothing here).
fn abandon(s: &mut Running, reached_upstream: bool) {
    let Some(ticket) = s.st.fence_ticket.take() else {
        return;
    };
    let mut fut = s.fx.fence.abandon(&s.st.rec.id, ticket, reached_upstream);
    if (&mut fut).now_or_never().is_none() {
        tokio::spawn(fut);
    }
}

/// Tells the supervisor the account now holds refresh token `rt` (by fingerprint only).
pub(super) fn report_rotation(s: &Running, rt: &str) {
    let (id, token) = (s.st.rec.id.clone(), crate::record::import::fingerprint(rt));
    (s.notify)(Report::Rotated { id, token });
}

/// Fills the identity fields the account lacks from the refreshed tokens' claims (an account
/// imported from a refresh token alone knows nothing else about itself); they become durable
/// with the tokens. A newly known dedup key is reported to the supervisor, which warns when
/// another account has the same one.
fn learn_identity(s: &mut Running) {
    let t = &s.st.rec.tokens;
    let claims = jwt::identity_of(&t.access_token, t.id_token.as_deref());
    let who = &mut s.st.rec.identity;
    let key_before = who.dedup_key();
    if !who.learn(claims) {
        return;
    }
    tracing::info!(account = %s.st.rec.id, email = ?who.email, plan = ?who.plan, "identity completed from the refreshed tokens");
    if let Some(key) = who.dedup_key().filter(|k| Some(k) != key_before.as_ref()) {
        let id = s.st.rec.id.clone();
        (s.notify)(Report::Identified { id, key });
    }
}

/// Persists freshly received tokens, then has the fence store the rotation under its intent;
/// only then may leases see them, and only then is the intent cleared. Retried on every tick
/// while the disk (or the fence's store) refuses.
pub(super) fn finish_rotation(me: &AccountRef, s: &mut Running, store: &dyn Store) {
    if s.st.fence_finishing || !s.st.persist(store) {
        return;
    }
    let Some(ticket) = s.st.fence_ticket.clone() else {
        rotation_stored(s, store);
        return;
    };
    let mut fut = s.fx.fence.finish(&s.st.rec.id, ticket);
    match (&mut fut).now_or_never() {
        Some(r) => fence_finished(s, r),
        None => {
            s.st.fence_finishing = true;
            let me = me.clone();
            tokio::spawn(async move {
                let _ = me.cast(AccountMsg::FenceFinished(fut.await));
            });
        }
    }
}

/// The fence answered the finish of a rotation whose tokens are on disk.
pub(super) fn fence_finished(s: &mut Running, r: Result<(), FenceRefusal>) {
    s.st.fence_finishing = false;
    match r {
        Ok(()) => {
            s.st.fence_ticket = None;
            let store = s.fx.store.clone();
            rotation_stored(s, store.as_ref());
        }
        Err(FenceRefusal::Later(why)) => {
            tracing::warn!(account = %s.st.rec.id, %why, "the rotation is not stored in the cluster yet; retrying");
        }
        Err(refusal) => {
            tracing::warn!(account = %s.st.rec.id, %refusal, "the rotation was refused: another node owns the account now; dropping it");
            s.st.fence_ticket = None;
            s.st.lost = true;
        }
    }
}

/// The rotation is durable (and, with a fence, stored under its intent): leases may see the
/// new tokens, the intent is cleared.
fn rotation_stored(s: &mut Running, store: &dyn Store) {
    s.st.tokens_durable = true;
    fault::point(fault::REFRESH_AFTER_PERSIST);
    s.st.rec.refresh_intent = None;
    s.st.persist(store);
}

/// Schedules the proactive refresh (expiry − margin ± jitter), unless proactive refresh is
/// switched off for the pool.
pub(super) fn schedule_refresh(me: &AccountRef, s: &mut Running) {
    if !s.st.cfg.refresh_enabled {
        s.st.refresh_due_at = None;
        return;
    }
    let now = s.fx.clock.now_ms();
    let j = s.st.cfg.refresh_jitter_ms;
    let jitter = if j > 0 { rand::random_range(-j..=j) } else { 0 };
    let due = due_at(
        &s.st.rec.tokens,
        s.st.rec.added_at,
        s.st.cfg.refresh_margin_ms,
        jitter,
    );
    arm(
        me,
        s,
        Duration::from_millis(u64::try_from(due - now).unwrap_or(0)),
    );
}

fn retry_later(me: &AccountRef, s: &mut Running) {
    let d = retry_delay(s.st.refresh_failures.saturating_sub(1));
    arm(me, s, d);
}

/// Sets when the next refresh is due; the tick starts it. No timer task per account: a tick
/// already runs, and at 10 000 accounts a sleeping task each would cost memory for nothing.
fn arm(_me: &AccountRef, s: &mut Running, delay: Duration) {
    let eligible = s.st.rec.tokens.refresh_token.is_some()
        && !matches!(s.st.rec.status, Status::Banned | Status::Expired);
    let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
    s.st.refresh_due_at = eligible.then(|| s.fx.clock.now_ms().saturating_add(delay_ms));
}

/// Starts the refresh whose time has come (called from the tick).
pub(super) fn refresh_if_due(me: &AccountRef, s: &mut Running, now: UnixMs) {
    if s.st.refresh_due_at.is_some_and(|t| t <= now) && s.st.refreshing.is_none() {
        s.st.refresh_due_at = None;
        let reason = if s.st.rec.status == Status::Refreshing {
            RefreshReason::UnauthorizedRecovery
        } else {
            RefreshReason::ProactiveExpiry
        };
        start_refresh(me, s, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_before_expiry_or_eight_days_after_last_refresh() {
        let t = Tokens {
            expires_at: Some(1_000_000),
            ..Tokens::default()
        };
        assert_eq!(due_at(&t, 0, 300_000, -5_000), 695_000);
        let t = Tokens {
            last_refresh: Some(10),
            ..Tokens::default()
        };
        assert_eq!(due_at(&t, 0, 0, 0), 10 + FALLBACK_INTERVAL_MS);
        assert_eq!(retry_delay(0), Duration::from_secs(30));
        assert_eq!(retry_delay(9), Duration::from_secs(600));
    }

    #[test]
    fn a_refused_begin_retries_within_seconds_rising_to_eight() {
        let delays: Vec<u64> = (1..=6).map(|n| begin_retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 8, 8]);
        assert_eq!(begin_retry_delay(u8::MAX), Duration::from_secs(8));
        assert!(begin_retry_delay(u8::MAX) < retry_delay(0));
    }

    #[tokio::test(start_paused = true)]
    async fn the_gate_bounds_refreshes_per_minute() {
        let gate = RefreshGate::new(10, 2);
        let t0 = tokio::time::Instant::now();
        for _ in 0..3 {
            drop(gate.acquire().await);
        }
        assert!(
            t0.elapsed() >= Duration::from_secs(60),
            "the third start waits for the minute to pass"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_refunded_start_leaves_the_minute_s_budget_to_the_next() {
        let gate = RefreshGate::new(10, 1);
        let t0 = tokio::time::Instant::now();
        let p = gate.acquire().await.expect("a slot");
        gate.refund(p);
        drop(gate.acquire().await);
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "the refund freed the budget"
        );
        drop(gate.acquire().await);
        assert!(
            t0.elapsed() >= Duration::from_secs(60),
            "a start that was not refunded still counts"
        );
    }
}
