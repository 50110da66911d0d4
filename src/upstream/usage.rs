//! The usage prober the account actors are handed at spawn: `GET {base}/wham/usage` with the
//! account's credentials, parsed by `rotor_actors::quota::usage::parse`; a refusal is read as any
//! upstream answer is ([`super::evidence`]). Unlike the
//! predecessor (docs/predecessor.md §12.2 item 10), the HTTP status matters: 401 means the token is no
//! longer accepted, so a probe can start a refresh. A 403 is a failed probe and nothing more:
//! `/wham/usage` refuses accounts that still serve requests (LB `app/modules/usage/updater.py`),
//! so only an answer on the responses endpoint can bench or ban an account.

use super::classify::Verdict;
use super::evidence::Evidence;
use super::{Creds, Upstream, chain};
use futures::future::BoxFuture;
use rotor_actors::quota::Observation;
use rotor_actors::{ProbeError, QuotaProber, UpstreamCreds};
use std::time::{SystemTime, UNIX_EPOCH};

/// `QuotaProber` over the shared upstream session.
#[derive(Clone, Debug)]
pub struct UsageProber {
    upstream: Upstream,
}

impl UsageProber {
    /// A prober using `upstream`'s client and base URL.
    pub fn new(upstream: Upstream) -> Self {
        Self { upstream }
    }
}

impl QuotaProber for UsageProber {
    fn probe(&self, creds: UpstreamCreds) -> BoxFuture<'static, Result<Observation, ProbeError>> {
        let upstream = self.upstream.clone();
        Box::pin(async move { probe(&upstream, &creds).await })
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn probe(upstream: &Upstream, creds: &UpstreamCreds) -> Result<Observation, ProbeError> {
    let at = now_ms();
    let c = Creds {
        account: &creds.account_id,
        access_token: &creds.access_token,
        chatgpt_account_id: creds.chatgpt_account_id.as_deref(),
    };
    let resp = upstream
        .usage(c)
        .await
        .map_err(|e| ProbeError::Transient(chain(&e)))?;
    let status = resp.status().as_u16();
    let head = resp.headers().clone();
    let body = resp
        .bytes()
        .await
        .map_err(|e| ProbeError::Transient(chain(&e)))?;
    let evidence = Evidence::from_parts(status, &head, body, at);
    match (status, evidence.verdict) {
        (200..=299, _) => {
            let json: serde_json::Value = serde_json::from_slice(&evidence.body)
                .map_err(|e| ProbeError::Transient(format!("usage body is not JSON: {e}")))?;
            rotor_actors::quota::usage::parse(&json, at).map_err(ProbeError::Transient)
        }
        (401, _) => Err(ProbeError::Unauthorized),
        (403, Some(Verdict::Cloudflare)) => Err(ProbeError::Transient(
            "usage probe blocked by a Cloudflare challenge".into(),
        )),
        (403, verdict) => Err(ProbeError::Transient(format!(
            "usage probe refused (403: {}); not a ban",
            match verdict {
                Some(Verdict::Banned(r) | Verdict::Deactivated(r) | Verdict::Refused(_, r)) => r,
                _ => "no reason".into(),
            }
        ))),
        _ => Err(ProbeError::Transient(format!(
            "usage probe answered {status}"
        ))),
    }
}
