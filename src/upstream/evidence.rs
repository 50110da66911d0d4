//! The evidence in one upstream answer, read once, here: its status, the quota its headers
//! report (docs/protocol.md §4, parsed by `rotor_actors::quota::headers`), and for a non-2xx
//! answer what it means ([`classify`], one row of docs/failures.md) with its 429 reset hints
//! (docs/protocol.md §6) and the body a client may be answered with. The proxy and the usage
//! probe act on an [`Evidence`] — they hand the pool its quota observation, its 429 rejection
//! or its failure class — and read nothing of the answer themselves.

use super::classify::{Limit429, Said, Verdict, classify};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use rotor_actors::UnixMs;
use rotor_actors::quota::{self, Observation, Rejection429, RejectionKind};
use std::time::Duration;

/// Most of an error body read for classification; the rest is not needed.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What one upstream answer says.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// When the request it answers started: the evidence time of everything it says.
    pub at: UnixMs,
    /// The HTTP status.
    pub status: u16,
    /// The quota the headers report (docs/quota.md rule 3), if they carry any.
    pub quota: Option<Observation>,
    /// What a non-2xx answer means; `None` for a 2xx, whose body is the client's stream.
    pub verdict: Option<Verdict>,
    /// What a non-2xx answer's body says, read with the verdict (empty for a 2xx).
    pub said: Said,
    /// A non-2xx answer's `content-type`, for passing its body on.
    pub content_type: Option<HeaderValue>,
    /// At most [`MAX_ERROR_BODY`] bytes of a non-2xx answer's body (empty for a 2xx).
    pub body: Bytes,
}

impl Evidence {
    /// A 2xx answer's evidence, from its head; the body stays unread for the client.
    pub fn of_head(resp: &reqwest::Response, at: UnixMs) -> Self {
        Self {
            at,
            status: resp.status().as_u16(),
            quota: quota_of(resp.headers(), at),
            verdict: None,
            said: Said::default(),
            content_type: None,
            body: Bytes::new(),
        }
    }

    /// Any answer's evidence, the body of a non-2xx one read (at most [`MAX_ERROR_BODY`]
    /// bytes, within `bound`).
    pub async fn read(resp: reqwest::Response, at: UnixMs, bound: Duration) -> Self {
        if resp.status().is_success() {
            return Self::of_head(&resp, at);
        }
        let status = resp.status().as_u16();
        let head = resp.headers().clone();
        let body = read_bounded(resp, bound).await;
        Self::from_parts(status, &head, body, at)
    }

    /// The evidence in an answer already read: status, headers and (a bounded prefix of) the
    /// body.
    pub fn from_parts(status: u16, head: &HeaderMap, body: Bytes, at: UnixMs) -> Self {
        let refused = !(200..300).contains(&status);
        let (verdict, said) = if refused {
            let (v, said) = classify(status, |n| head.get(n).and_then(|v| v.to_str().ok()), &body);
            (Some(v), said)
        } else {
            (None, Said::default())
        };
        Self {
            at,
            status,
            quota: quota_of(head, at),
            verdict,
            said,
            content_type: head.get(http::header::CONTENT_TYPE).cloned(),
            body,
        }
    }

    /// What a refusal's body says, for a client whose protocol cannot carry the body itself
    /// (an Anthropic client): `error.message`, else `detail`, else the body's first
    /// [`super::classify::MAX_MESSAGE`] bytes as text ([`Said`], read with the verdict).
    pub fn message(&self) -> String {
        self.said.message.clone()
    }
}

/// The quota headers of an answer, stamped with the request's start time.
fn quota_of(headers: &HeaderMap, at: UnixMs) -> Option<Observation> {
    // Only `x-` headers can carry quota (the parser skips the rest): validate no other value.
    let pairs = headers
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-"))
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
    quota::headers::parse(pairs, at)
}

/// The pool's 429 evidence from what the classifier read of a 429 answering a request that
/// started at `at` for a model metered by `model_limit`, with the quota its own headers report
/// (`observed`). When the body names no reset, the reset is the headers' own: the latest reset
/// among the exhausted windows of the family `x-codex-active-limit` names (Codex reads a
/// headers-only 429 so, `codex-api/src/api_bridge.rs`).
pub fn rejection(
    l: &Limit429,
    observed: Option<&Observation>,
    model_limit: Option<&str>,
    at: UnixMs,
) -> Rejection429 {
    let kind = match l.error_type.as_deref() {
        Some("usage_limit_reached") => RejectionKind::UsageLimitReached,
        Some("rate_limit_exceeded") => RejectionKind::RateLimitExceeded,
        Some("usage_not_included") => RejectionKind::UsageNotIncluded,
        _ => RejectionKind::Other,
    };
    let from_body = l.resets_at_secs.map(|s| s.saturating_mul(1000));
    let from_headers = || {
        let family = l.active_limit.as_deref().unwrap_or(quota::MAIN_LIMIT);
        let usage_limit = kind == RejectionKind::UsageLimitReached;
        observed
            .filter(|_| usage_limit)
            .and_then(|o| exhausted_reset(o, family))
    };
    Rejection429 {
        at,
        limit: l.active_limit.clone(),
        resets_at: from_body.or_else(|| l.resets_in_secs.is_none().then(from_headers).flatten()),
        resets_in_secs: l.resets_in_secs,
        retry_after_secs: l.retry_after_secs,
        kind,
        model_limit: model_limit.map(str::to_owned),
        observed: observed.cloned(),
    }
}

/// When a usage-limit 429's family frees the account, by its headers: the latest reset among
/// the family's exhausted windows (used 100 % or more); when the headers show none exhausted,
/// the short window's reset — the earliest the limit can have lifted, which the quota then
/// verifies (docs/quota.md rule 4).
fn exhausted_reset(o: &Observation, family: &str) -> Option<UnixMs> {
    let windows = if family == quota::MAIN_LIMIT {
        [o.primary.as_ref(), o.secondary.as_ref()]
    } else {
        let x = o.extra.get(family)?;
        [x.primary.as_ref(), x.secondary.as_ref()]
    };
    windows
        .into_iter()
        .flatten()
        .filter(|w| w.limit_reached.unwrap_or(w.used_percent >= 100.0))
        .filter_map(|w| w.reset_at)
        .max()
        .or_else(|| windows[0].and_then(|w| w.reset_at))
}

/// Reads at most [`MAX_ERROR_BODY`] bytes of an error answer, bounded in time.
async fn read_bounded(mut resp: reqwest::Response, bound: Duration) -> Bytes {
    let mut buf = Vec::new();
    let read = async {
        while let Ok(Some(chunk)) = resp.chunk().await {
            buf.extend_from_slice(&chunk);
            if buf.len() >= MAX_ERROR_BODY {
                buf.truncate(MAX_ERROR_BODY);
                break;
            }
        }
    };
    let _ = tokio::time::timeout(bound, read).await;
    Bytes::from(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 429's evidence as the pool takes it, as the proxy builds it from a rate-limited
    /// verdict ([`rejection`]).
    fn rejection_of(ev: &Evidence, model_limit: Option<&str>) -> Option<Rejection429> {
        match &ev.verdict {
            Some(Verdict::RateLimited(l)) => {
                Some(rejection(l, ev.quota.as_ref(), model_limit, ev.at))
            }
            _ => None,
        }
    }

    fn head(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_2xx_reports_its_quota_and_no_refusal() {
        let h = head(&[
            ("x-codex-primary-used-percent", "42"),
            ("content-type", "text/event-stream"),
        ]);
        let ev = Evidence::from_parts(200, &h, Bytes::new(), 7);
        assert_eq!(ev.verdict, None);
        assert_eq!(rejection_of(&ev, None), None);
        let q = ev.quota.expect("quota headers");
        assert_eq!((q.at, q.primary.map(|w| w.used_percent)), (7, Some(42.0)));
    }

    #[test]
    fn a_429_becomes_the_pools_rejection() {
        let h = head(&[
            ("retry-after", "30"),
            ("x-codex-active-limit", "codex-bengalfox"),
        ]);
        let body = r#"{"error":{"type":"usage_limit_reached","resets_at":1795673493,"resets_in_seconds":3600}}"#;
        let ev = Evidence::from_parts(429, &h, Bytes::from_static(body.as_bytes()), 5);
        assert_eq!(
            rejection_of(&ev, Some("codex_bengalfox")),
            Some(Rejection429 {
                at: 5,
                limit: Some("codex_bengalfox".into()),
                resets_at: Some(1_795_673_493_000),
                resets_in_secs: Some(3600),
                retry_after_secs: Some(30),
                kind: RejectionKind::UsageLimitReached,
                model_limit: Some("codex_bengalfox".into()),
                observed: None,
            })
        );
    }

    #[test]
    fn a_headers_only_429_resets_when_its_familys_exhausted_window_does() {
        let h = head(&[
            ("x-codex-active-limit", "codex_other"),
            ("x-codex-primary-used-percent", "12"),
            ("x-codex-primary-reset-at", "100"),
            ("x-codex-other-primary-used-percent", "40"),
            ("x-codex-other-primary-reset-at", "200"),
            ("x-codex-other-secondary-used-percent", "100"),
            ("x-codex-other-secondary-reset-at", "900000"),
        ]);
        let body = r#"{"error":{"type":"usage_limit_reached","plan_type":"pro"}}"#;
        let ev = Evidence::from_parts(429, &h, Bytes::from_static(body.as_bytes()), 5);
        let r = rejection_of(&ev, None).expect("a 429");
        assert_eq!(
            r.resets_at,
            Some(900_000_000),
            "the named family's exhausted window"
        );
        assert!(
            r.observed
                .is_some_and(|o| o.extra.contains_key("codex_other"))
        );
        let body = r#"{"error":{"type":"usage_not_included","plan_type":"free"}}"#;
        let ev = Evidence::from_parts(
            429,
            &HeaderMap::new(),
            Bytes::from_static(body.as_bytes()),
            5,
        );
        let r = rejection_of(&ev, Some("codex_bengalfox")).expect("a 429");
        assert_eq!(
            (r.kind, r.model_limit.as_deref(), r.resets_at),
            (
                RejectionKind::UsageNotIncluded,
                Some("codex_bengalfox"),
                None
            )
        );
    }

    #[test]
    fn a_refusal_keeps_its_body_and_content_type() {
        let h = head(&[("content-type", "application/json")]);
        let ev = Evidence::from_parts(400, &h, Bytes::from_static(b"{}"), 0);
        assert_eq!(ev.verdict, Some(Verdict::ClientFault));
        assert_eq!(
            ev.content_type,
            Some(HeaderValue::from_static("application/json"))
        );
        assert_eq!(ev.body, Bytes::from_static(b"{}"));
    }

    #[test]
    fn a_refusal_says_its_message_detail_or_text() {
        let ev = |body: &'static str| {
            Evidence::from_parts(
                400,
                &HeaderMap::new(),
                Bytes::from_static(body.as_bytes()),
                0,
            )
        };
        let said = ev(r#"{"error":{"message":"Unsupported parameter: temperature"}}"#);
        assert_eq!(said.message(), "Unsupported parameter: temperature");
        assert_eq!(ev(r#"{"detail":"Not Found"}"#).message(), "Not Found");
        assert_eq!(ev("plain words").message(), "plain words");
        let long = Evidence::from_parts(400, &HeaderMap::new(), Bytes::from(vec![b'x'; 5000]), 0);
        assert_eq!(long.message().len(), crate::upstream::classify::MAX_MESSAGE);
    }
}
