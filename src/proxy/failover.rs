//! Choosing the account that serves a request, and moving on when upstream refuses it.
//!
//! Every decision here is made *before the first byte reaches the client* (docs/style.md practice
//! 9): an upstream answer is either a 2xx stream handed to the caller with its lease, or its
//! evidence ([`crate::upstream::evidence`]) classifies it into one row of docs/failures.md — the
//! account effect is cast on the lease (`rejected`, `failed`) and the request either tries the
//! same account again (transient, bounded by `upstream.max_retries_per_account`), another
//! account (bounded by `upstream.max_accounts_per_request`), or answers the client as is (the
//! request's own fault). The whole of it is bounded by `upstream.request_deadline`: a hung
//! upstream costs a client that long at most, not `first_byte_timeout` × tries × accounts.

use crate::config::UpstreamConfig;
use crate::http::errors::ApiError;
use crate::http::state::AppState;
use crate::proxy::outcome::Outcome;
use crate::proxy::reasoning;
use crate::proxy::request::ResponsesRequest;
use crate::upstream::classify::{Said, Verdict};
use crate::upstream::evidence::{self, Evidence};
use crate::upstream::{Creds, chain, pseudonym};
use http::HeaderMap;
use rotor_actors::quota::{QuotaConfig, RejectionKind};
use rotor_actors::{Lease, PickError, PickRequest, UpstreamFailure};
use std::time::Duration;

/// A 2xx upstream answer and the lease of the account serving it.
pub struct Served {
    /// Released when the answer is over (or the client went away).
    pub lease: Lease,
    /// The upstream response, head received, body not yet read.
    pub response: reqwest::Response,
    /// The client's `prompt_cache_key` for the stand-in upstream got and echoes, if it got one.
    pub echo: Option<pseudonym::Echo>,
}

/// What one account's attempt ended in.
enum AccountOutcome {
    /// Upstream is streaming an answer to the key of [`Served::echo`].
    Served(reqwest::Response, Option<pseudonym::Echo>),
    /// This account cannot serve the request; try another. The error is what the client gets
    /// if no other account can.
    Next(ApiError),
    /// Answer the client with this, no further attempts.
    Final(ApiError),
}

/// Picks accounts and sends the request until one streams an answer, within
/// `upstream.request_deadline` (504 [`ApiError::Timeout`] past it; the attempt then in flight
/// is cancelled and blamed on no account — it had not yet overrun its own bound).
pub async fn send(
    state: &AppState,
    req: &ResponsesRequest,
    headers: &HeaderMap,
    out: &mut Outcome,
) -> Result<Served, ApiError> {
    let cfg = state.config();
    let deadline = cfg.upstream.request_deadline;
    match tokio::time::timeout(
        deadline,
        try_accounts(state, &cfg.upstream, req, headers, out),
    )
    .await
    {
        Ok(answer) => answer,
        Err(_) => {
            let tried = out.rec.failovers + 1;
            tracing::warn!(
                ?deadline,
                tried,
                retries = out.rec.retries,
                "no upstream answer within the request deadline"
            );
            Err(ApiError::Timeout(format!(
                "no upstream answer within {} (upstream.request_deadline); {tried} account(s) tried",
                humantime::format_duration(deadline)
            )))
        }
    }
}

/// [`send`] without its deadline.
async fn try_accounts(
    state: &AppState,
    cfg: &UpstreamConfig,
    req: &ResponsesRequest,
    headers: &HeaderMap,
    out: &mut Outcome,
) -> Result<Served, ApiError> {
    let max_accounts = cfg.max_accounts_per_request.max(1);
    let max_retries = cfg.max_retries_per_account;
    let mut exclude: Vec<String> = Vec::new();
    // The last failure that was not an account's own exhaustion, and the last 429. When the
    // pool is not exhausted, the former says more than one account's 429, whose reset may be
    // hours away (a client would wait that long).
    let (mut last_other, mut last_429): (Option<ApiError>, Option<ApiError>) = (None, None);
    for n in 0..max_accounts {
        let pick = PickRequest {
            model: req.model.clone(),
            affinity: req.affinity.clone(),
            exclude: exclude.clone(),
            review: req.review,
        };
        let lease = match state.pool().pick(pick).await {
            Ok(lease) => lease,
            Err(e) => return Err(pick_error(state, e, last_other.or(last_429)).await),
        };
        if n > 0 {
            out.rec.failovers += 1;
        }
        out.rec.account_id = Some(lease.account_id.clone());
        crate::http::middleware::record_account(&lease.account_id);
        match attempt(state, &lease, req, headers, max_retries, out).await {
            AccountOutcome::Served(response, echo) => {
                return Ok(Served {
                    lease,
                    response,
                    echo,
                });
            }
            AccountOutcome::Final(e) => return Err(e),
            AccountOutcome::Next(e) => {
                exclude.push(lease.account_id.clone());
                if matches!(e, ApiError::Exhausted { .. }) {
                    last_429 = Some(e);
                } else {
                    last_other = Some(e);
                }
            }
        }
    }
    Err(last_other.or(last_429).unwrap_or(ApiError::Internal))
}

/// Maps a failed pick to the client's answer. Exhaustion always wins (docs/quota.md rule 6: 429,
/// never 401); otherwise the last upstream failure says more than "no other account", and
/// without one the pool summary says why nothing can serve.
async fn pick_error(state: &AppState, e: PickError, last: Option<ApiError>) -> ApiError {
    match e {
        PickError::Exhausted { soonest_reset } => {
            ApiError::exhausted(soonest_reset, state.now_ms())
        }
        PickError::Unavailable { reason } => match last {
            Some(e) => e,
            None => ApiError::Unavailable(why_unavailable(state, reason).await),
        },
        PickError::Timeout => last
            .unwrap_or_else(|| ApiError::Timeout("the account pool did not answer in time".into())),
    }
}

/// "3 accounts, none usable: 2 disabled, 1 expired (…pool's own reason)"; with none, why
/// (on a cluster node: it owns none right now, [`ClusterView::owns_none`](crate::cluster::ClusterView::owns_none)).
async fn why_unavailable(state: &AppState, reason: String) -> String {
    let s = state.pool().summary().await;
    let parts: Vec<String> = [
        (s.disabled, "disabled"),
        (s.expired, "expired"),
        (s.banned, "banned"),
        (s.refreshing, "refreshing"),
        (s.cooling_down, "cooling down after a Cloudflare challenge"),
        (s.rate_limited, "rate limited"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if s.total == 0 {
        // A cluster node's pool holds only the accounts it owns now.
        return match state.cluster() {
            Some(view) => view.owns_none(),
            None => "the pool has no accounts; import some (codex-rotor accounts import)".into(),
        };
    }
    unusable(s.total, &parts, &reason)
}

/// The words of [`why_unavailable`] for a pool of `total` accounts, `parts` of them out for a
/// lasting reason ("2 disabled").
fn unusable(total: usize, parts: &[String], reason: &str) -> String {
    let noun = if total == 1 { "account" } else { "accounts" };
    if parts.is_empty() {
        // None is out for a lasting reason (an account between a lease's end and its next
        // push, or at its lease cap): the pool's own reason is the whole answer.
        return format!("{total} {noun}, none usable now: {reason}");
    }
    format!(
        "{total} {noun}, none usable: {} ({reason})",
        parts.join(", ")
    )
}

/// Sends to one account, retrying transient failures a bounded number of times, without the
/// reasoning other accounts encrypted; an `invalid_encrypted_content` refusal is retried once
/// more without any encrypted reasoning ([`reasoning::backstop`]).
async fn attempt(
    state: &AppState,
    lease: &Lease,
    req: &ResponsesRequest,
    headers: &HeaderMap,
    max_retries: u32,
    out: &mut Outcome,
) -> AccountOutcome {
    let creds = Creds {
        account: &lease.account_id,
        access_token: &lease.creds.access_token,
        chatgpt_account_id: lease.creds.chatgpt_account_id.as_deref(),
    };
    // Client ids are replaced in place (same length), so the reasoning places still hold.
    // One computation of each id's stand-in, shared by the body and every try's headers.
    let mut ids = pseudonym::StandIns::new(&lease.account_id, state.pseudonyms());
    let own = ids.body(&req.upstream_body, &req.ids);
    let mut body = reasoning::for_account(state.minted(), &own, &req.reasoning, &lease.account_id);
    let without_turn;
    let headers = if foreign_turn_state(req, &lease.account_id) {
        without_turn = without_turn_state(headers);
        &without_turn
    } else {
        headers
    };
    let mut backstop_left = true;
    let mut tries = 0;
    loop {
        let last_try = tries >= max_retries;
        let reason = match state
            .upstream()
            .responses(creds, body.clone(), headers, &mut ids)
            .await
        {
            Ok(resp) if resp.status().is_success() => {
                observe(lease, Evidence::of_head(&resp, lease.started_at));
                let echo = pseudonym::Echo::of(&req.upstream_body, &own, &req.ids);
                return AccountOutcome::Served(resp, echo);
            }
            Ok(resp) => match refused(state, lease, resp, &req.model, out).await {
                Ok(AccountOutcome::Final(e)) if backstop_left => {
                    let Some(retry) = reasoning::backstop(&e, &body) else {
                        return AccountOutcome::Final(e);
                    };
                    tracing::info!(account = %lease.account_id, "upstream refused the request's encrypted reasoning; retrying once without it");
                    (body, backstop_left) = (retry, false);
                    out.rec.retries += 1;
                    continue;
                }
                Ok(done) => return done,
                Err(reason) => reason,
            },
            Err(e) => {
                let reason = chain(&e);
                tracing::warn!(account = %lease.account_id, error = %reason, "upstream transport error");
                (502, "upstream_unreachable", reason)
            }
        };
        if last_try {
            lease.failed(UpstreamFailure::Transient {
                reason: reason.2.clone(),
            });
            return AccountOutcome::Next(ApiError::Upstream {
                status: reason.0,
                code: reason.1,
                message: reason.2,
            });
        }
        tries += 1;
        out.rec.retries += 1;
        tokio::time::sleep(Duration::from_millis(200u64 << (tries - 1).min(4))).await;
    }
}

/// Whether the request carries a turn-state token `account`'s upstream did not mint: another
/// account's (the turn failed over), or one the daemon no longer remembers. Upstream gets the
/// request without it, as the first request of a turn, and answers with the serving account's
/// own token, which the client echoes from then on.
fn foreign_turn_state(req: &ResponsesRequest, account: &str) -> bool {
    req.turn_state.is_some() && req.turn_account.as_deref() != Some(account)
}

/// A copy of the client's headers without `x-codex-turn-state` (only for a request whose token
/// belongs to another account, [`foreign_turn_state`]).
fn without_turn_state(headers: &HeaderMap) -> HeaderMap {
    let mut h = headers.clone();
    h.remove("x-codex-turn-state");
    h
}

/// Handles a non-2xx answer. `Err` carries a transient failure `(status, code, reason)` for the
/// caller's retry loop; `Ok` is final for this account.
async fn refused(
    state: &AppState,
    lease: &Lease,
    resp: reqwest::Response,
    model: &str,
    out: &mut Outcome,
) -> Result<AccountOutcome, (u16, &'static str, String)> {
    let model_limit = rotor_actors::quota::limit_for_model(model);
    let bound = state.upstream().settings().first_byte_timeout;
    let evidence = Evidence::read(resp, lease.started_at, bound).await;
    let status = evidence.status;
    let id = &lease.account_id;
    tracing::info!(account = %id, status, verdict = ?evidence.verdict, "upstream refused the request");
    let next = |status: u16, code: &'static str, message: String| {
        Ok(AccountOutcome::Next(ApiError::Upstream {
            status,
            code,
            message,
        }))
    };
    let Some(verdict) = evidence.verdict.clone() else {
        // `attempt` hands only non-2xx answers here.
        return Err((502, "codex_api_error", format!("upstream {status}")));
    };
    match verdict {
        Verdict::RateLimited(l) => {
            out.rec.upstream_429s += 1;
            let r = evidence::rejection(&l, evidence.quota.as_ref(), model_limit, evidence.at);
            if r.kind == RejectionKind::UsageNotIncluded {
                // The plan lacks this model: other accounts may have it; if none does, the
                // client reads upstream's own answer.
                lease.rejected(r);
                return Ok(AccountOutcome::Next(ApiError::Passthrough {
                    status,
                    content_type: evidence.content_type.clone(),
                    body: evidence.body.clone(),
                    message: evidence.message(),
                    code: evidence.said.code.clone(),
                }));
            }
            let cfg = QuotaConfig::with_backoff(state.config().pool.default_429_backoff);
            let soonest = r.reset_hint(lease.started_at, &cfg);
            lease.rejected(r);
            Ok(AccountOutcome::Next(ApiError::exhausted(
                Some(soonest),
                state.now_ms(),
            )))
        }
        Verdict::Unauthorized => {
            lease.failed(UpstreamFailure::Unauthorized);
            next(
                503,
                "no_available_accounts",
                "upstream rejected the account's token; it is being refreshed".into(),
            )
        }
        Verdict::Banned(reason) => {
            lease.failed(UpstreamFailure::Banned {
                reason: reason.clone(),
            });
            next(
                503,
                "no_available_accounts",
                format!("upstream refused the account: {reason}"),
            )
        }
        Verdict::Deactivated(reason) => {
            lease.failed(UpstreamFailure::Deactivated {
                reason: reason.clone(),
            });
            next(
                503,
                "no_available_accounts",
                format!("upstream refused the account: {reason}"),
            )
        }
        Verdict::Refused(cause, reason) => {
            lease.failed(UpstreamFailure::Refused {
                cause,
                reason: reason.clone(),
            });
            next(
                503,
                "no_available_accounts",
                format!("upstream refused the account ({status}): {reason}"),
            )
        }
        Verdict::Cloudflare => {
            lease.failed(UpstreamFailure::Cloudflare);
            next(
                502,
                "cloudflare_challenge",
                "upstream blocked the request (Cloudflare challenge)".into(),
            )
        }
        Verdict::ClientFault => {
            let (content_type, body) = (evidence.content_type.clone(), evidence.body.clone());
            let Said { code, message } = evidence.said.clone();
            observe(lease, evidence);
            Ok(AccountOutcome::Final(ApiError::Passthrough {
                status,
                content_type,
                body,
                message,
                code,
            }))
        }
        Verdict::Transient(reason) => Err((
            if status >= 500 { status } else { 502 },
            "codex_api_error",
            reason,
        )),
    }
}

/// Casts the quota an answer reports to the account (docs/quota.md rule 3).
fn observe(lease: &Lease, evidence: Evidence) {
    if let Some(obs) = evidence.quota {
        lease.observe_headers(obs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unusable_pool_is_worded_without_empty_lists() {
        let r = "no account can serve: 1 not active";
        assert_eq!(
            unusable(1, &[], r),
            "1 account, none usable now: no account can serve: 1 not active"
        );
        assert_eq!(
            unusable(3, &["2 disabled".into(), "1 expired".into()], r),
            "3 accounts, none usable: 2 disabled, 1 expired (no account can serve: 1 not active)"
        );
    }
}
