//! Serving a `stream: false` client: read the whole upstream stream (bounded by the idle
//! timeout between chunks) up to its terminal event — not to the end of the connection, which the
//! backend may hold open after it — then answer with the final response object. A stream that ends
//! without a terminal event fails fast with 504 — it is never retried on other accounts, which
//! would only burn their quota on the same too-long request. An event the answer is built from
//! that is too long to read ([`crate::sse::MAX_LINE`]) is a 502 [`EVENT_TOO_LARGE`], never an
//! answer that silently lacks it.

use crate::http::errors::ApiError;
use crate::proxy::observe::{Observer, Terminal};
use crate::proxy::outcome::Outcome;
use crate::proxy::reasoning::Learner;
use crate::proxy::stream::{ByteStream, EVENT_TOO_LARGE, event_too_large};
use crate::upstream::chain;
use futures::StreamExt;
use rotor_actors::{Lease, UpstreamFailure};
use std::time::Duration;

/// Collects the upstream stream into the final response object; `learn` learns the reasoning
/// it carries.
pub async fn collect(
    mut upstream: ByteStream,
    lease: &mut Lease,
    idle: Duration,
    out: &mut Outcome,
    learn: Option<Learner>,
) -> Result<serde_json::Value, ApiError> {
    let mut obs = Observer::new(true).learning(learn);
    loop {
        match tokio::time::timeout(idle, upstream.next()).await {
            Ok(Some(Ok(chunk))) => {
                obs.push(&chunk);
                if obs.terminal.is_some() {
                    // The answer is whole; upstream may keep the connection open after it.
                    break;
                }
            }
            Ok(Some(Err(e))) => {
                if obs.terminal.is_some() {
                    break;
                }
                let reason = chain(&e);
                tracing::warn!(account = %lease.account_id, error = %reason, "upstream stream broke before the terminal event");
                lease.failed(UpstreamFailure::PrematureClose {
                    reason: reason.clone(),
                });
                return Err(ApiError::PrematureClose(format!(
                    "upstream stream broke before completion: {reason}"
                )));
            }
            Ok(None) => break,
            Err(_) => {
                let reason = format!("upstream sent nothing for {idle:?}");
                lease.failed(UpstreamFailure::PrematureClose {
                    reason: reason.clone(),
                });
                return Err(ApiError::PrematureClose(reason));
            }
        }
    }
    obs.finish();
    if let Some(u) = obs.usage {
        lease.usage(u);
        out.usage(u);
    }
    if let Some(kind) = obs.quota_fault() {
        lease.quota_failed(kind);
    }
    if obs.incomplete {
        // Upstream answered; the daemon cannot carry the answer whole. No account is blamed.
        tracing::warn!(account = %lease.account_id, "upstream event too large to collect");
        return Err(ApiError::Upstream {
            status: 502,
            code: EVENT_TOO_LARGE,
            message: event_too_large(),
        });
    }
    match obs.terminal.clone() {
        Some(Terminal::Completed | Terminal::Incomplete) => Ok(obs.final_response()),
        Some(Terminal::Failed { code, message }) => Err(failed(code, message)),
        None => {
            let reason = "upstream closed the stream without a terminal event".to_owned();
            tracing::warn!(account = %lease.account_id, "{reason}");
            lease.failed(UpstreamFailure::PrematureClose {
                reason: reason.clone(),
            });
            Err(ApiError::PrematureClose(reason))
        }
    }
}

/// A `response.failed` for a non-streaming client, with a status its SDK understands.
fn failed(code: Option<String>, message: Option<String>) -> ApiError {
    let message = message.unwrap_or_else(|| "upstream failed the response".into());
    let c = code.as_deref().unwrap_or("");
    let status = if c.contains("context_length") || c.contains("invalid") {
        400
    } else if c.contains("rate_limit") || c.contains("quota") || c.contains("usage") {
        429
    } else if c.contains("overloaded") || c.contains("slow_down") {
        503
    } else {
        502
    };
    ApiError::Upstream {
        status,
        code: "response_failed",
        message: format!(
            "{}: {message}",
            if c.is_empty() { "response.failed" } else { c }
        ),
    }
}
