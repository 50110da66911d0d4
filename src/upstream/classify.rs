//! Classification of a non-success upstream answer into one row of docs/failures.md "Failure
//! classes". Pure: status, headers and (a bounded prefix of) the body in, a [`Verdict`] out. The
//! proxy turns the verdict into an account effect (`rejected`, `failed`) and a request effect
//! (retry elsewhere, retry here, or answer the client) — always before the first byte reached
//! the client. Mid-stream failures (`response.failed`, `error` events) are read by
//! [`stream_fault`]: the only codes that teach the account anything are quota codes.

use rotor_actors::account::PenaltyCause;
use rotor_actors::quota::{self, RejectionKind};
use serde_json::Value;

/// What a non-2xx upstream answer means.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// 429: the account hit a usage or rate limit; lock it (docs/quota.md rule 2) and try another account.
    RateLimited(Limit429),
    /// 401: the access token is no longer accepted; the actor refreshes it (single-flight).
    Unauthorized,
    /// 403 JSON (or 401) saying the account is banned (`banned`, `suspended`).
    Banned(String),
    /// 403 JSON (or 401) saying the account or workspace is deactivated
    /// (`account_deactivated`, "deactivated").
    Deactivated(String),
    /// 403 HTML / `cf-mitigated`: a Cloudflare challenge — a short cooldown, not a ban.
    Cloudflare,
    /// Upstream refused the account without saying it is gone: a 403 with no deactivation or
    /// ban signal, a 402, a 404 with an empty body. An escalating refusal cooldown and another
    /// account; never a ban (docs/failures.md).
    Refused(PenaltyCause, String),
    /// 5xx, `server_is_overloaded`: transient; bounded retry, then another account.
    Transient(String),
    /// 400/404/422 and other 4xx: the request's own fault; returned as is, nobody penalised.
    ClientFault,
}

/// What a 429 said about when the account may be used again (docs/protocol.md §6).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Limit429 {
    /// `error.type` (`usage_limit_reached`, `rate_limit_exceeded`, `usage_not_included` …).
    pub error_type: Option<String>,
    /// `error.resets_at`, unix seconds.
    pub resets_at_secs: Option<i64>,
    /// `error.resets_in_seconds`.
    pub resets_in_secs: Option<u64>,
    /// `Retry-After` header (seconds form).
    pub retry_after_secs: Option<u64>,
    /// `x-codex-active-limit`: which limit family the 429 is about (`codex`, `codex_bengalfox`).
    pub active_limit: Option<String>,
}

/// What a refusal's body says, read in the classifier's one parse of it: what is passed on to
/// a client whose protocol cannot carry the body itself, and the code the proxy acts on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Said {
    /// `error.code`, when it is a string (`invalid_encrypted_content` …).
    pub code: Option<String>,
    /// `error.message`, else `detail`, else the body's first [`MAX_MESSAGE`] bytes as text.
    pub message: String,
}

/// Most of a body that is not JSON quoted as [`Said::message`].
pub const MAX_MESSAGE: usize = 2000;

impl Said {
    fn of(json: Option<&Value>, body: &[u8]) -> Self {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let error = json.and_then(|v| v.get("error"));
        Self {
            code: text(error.and_then(|e| e.get("code"))),
            message: text(error.and_then(|e| e.get("message")))
                .or_else(|| text(json.and_then(|v| v.get("detail"))))
                .unwrap_or_else(|| {
                    String::from_utf8_lossy(&body[..body.len().min(MAX_MESSAGE)]).into_owned()
                }),
        }
    }
}

/// Classifies a non-2xx answer, and says what its body says, from one parse of the body.
/// `header` looks a response header up by lower-case name.
pub fn classify<'a>(
    status: u16,
    header: impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
) -> (Verdict, Said) {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let verdict = verdict(status, header, json.as_ref(), body);
    (verdict, Said::of(json.as_ref(), body))
}

fn verdict<'a>(
    status: u16,
    header: impl Fn(&str) -> Option<&'a str>,
    json: Option<&Value>,
    body: &[u8],
) -> Verdict {
    match status {
        429 => Verdict::RateLimited(limit_429(&header, json)),
        401 => account_state(json, body).unwrap_or(Verdict::Unauthorized),
        403 if is_cloudflare(&header, body) => Verdict::Cloudflare,
        403 => account_state(json, body)
            .unwrap_or_else(|| Verdict::Refused(PenaltyCause::Forbidden, reason(json, body))),
        402 => Verdict::Refused(PenaltyCause::PaymentRequired, reason(json, body)),
        404 if body.iter().all(u8::is_ascii_whitespace) => {
            Verdict::Refused(PenaltyCause::StealthDeny, "404 with an empty body".into())
        }
        500..=599 => Verdict::Transient(format!("upstream {status}: {}", reason(json, body))),
        _ => Verdict::ClientFault,
    }
}

fn limit_429<'a>(header: &impl Fn(&str) -> Option<&'a str>, json: Option<&Value>) -> Limit429 {
    let err = json.and_then(|j| j.get("error"));
    let field = |k: &str| err.and_then(|e| e.get(k));
    Limit429 {
        error_type: field("type")
            .or_else(|| field("code"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        resets_at_secs: field("resets_at").and_then(as_i64),
        resets_in_secs: field("resets_in_seconds")
            .and_then(as_i64)
            .and_then(|v| u64::try_from(v).ok()),
        retry_after_secs: header("retry-after")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|s| s.max(0.0).ceil() as u64),
        active_limit: header(quota::headers::ACTIVE_LIMIT)
            .map(|v| v.trim().replace('-', "_"))
            .filter(|v| !v.is_empty()),
    }
}

/// Numbers arrive as integers or floats depending on the server.
fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

/// A 401/403 whose JSON says *what* happened to the account: an explicit signal in
/// `error.code`, `error.type`, `error.message` or `detail` (`account_deactivated`,
/// "deactivated", "banned", "suspended"). Nothing less is a ban.
fn account_state(json: Option<&Value>, body: &[u8]) -> Option<Verdict> {
    let json = json?;
    let err = json.get("error").unwrap_or(json);
    let signals: String = [
        err.get("code"),
        err.get("type"),
        err.get("message"),
        json.get("detail"),
    ]
    .into_iter()
    .flatten()
    .filter_map(Value::as_str)
    .collect::<Vec<_>>()
    .join(" ")
    .to_ascii_lowercase();
    let text = reason(Some(json), body);
    if signals.contains("deactivated") {
        Some(Verdict::Deactivated(text))
    } else if signals.contains("banned") || signals.contains("suspended") {
        Some(Verdict::Banned(text))
    } else {
        None
    }
}

/// What a mid-stream failure code (`response.failed`'s `error.code`, an `error` event's
/// `code`) says about the account: a quota code is a 429 that came after the head — the
/// account's quota learns it (docs/quota.md rule 2), though the client already has bytes and
/// is not failed over. Every other code — the request's own (`context_length_exceeded`,
/// `cyber_policy`, `invalid_prompt`, `invalid_request_error`) or upstream's trouble — says
/// nothing about the account.
pub fn stream_fault(code: &str) -> Option<RejectionKind> {
    match code {
        "rate_limit_exceeded" => Some(RejectionKind::RateLimitExceeded),
        "usage_limit_reached" | "insufficient_quota" => Some(RejectionKind::UsageLimitReached),
        _ => None,
    }
}

/// Cloudflare challenge or block page (docs/predecessor.md §5.2 row 6).
pub fn is_cloudflare<'a>(header: &impl Fn(&str) -> Option<&'a str>, body: &[u8]) -> bool {
    if header("cf-mitigated").is_some() {
        return true;
    }
    let head = &body[..body.len().min(4096)];
    let lower = String::from_utf8_lossy(head).to_ascii_lowercase();
    let trimmed = lower.trim_start();
    trimmed.starts_with("<!doctype")
        || trimmed.starts_with("<html")
        || [
            "cf-chl-bypass",
            "_cf_chl",
            "cf_chl",
            "just a moment",
            "attention required",
        ]
        .iter()
        .any(|m| lower.contains(m))
}

/// A short human reason from an error body: `error.message`, `error.code`, `detail`, or text.
pub fn reason(json: Option<&Value>, body: &[u8]) -> String {
    let pick = |v: &Value| {
        let e = v.get("error").unwrap_or(v);
        e.get("message")
            .or_else(|| e.get("code"))
            .or_else(|| e.get("type"))
            .or_else(|| v.get("detail"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| v.get("error").and_then(Value::as_str).map(str::to_owned))
    };
    json.and_then(pick).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)])
            .trim()
            .to_owned();
        if text.is_empty() {
            "no body".to_owned()
        } else {
            text
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(status: u16, headers: &[(&'static str, &'static str)], body: &str) -> Verdict {
        let h = |name: &str| headers.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        classify(status, h, body.as_bytes()).0
    }

    #[test]
    fn usage_limit_429_reads_body_headers_and_limit() {
        let v = run(
            429,
            &[
                ("retry-after", "30"),
                ("x-codex-active-limit", "codex-bengalfox"),
            ],
            r#"{"error":{"type":"usage_limit_reached","plan_type":"plus","resets_at":1795673493,"resets_in_seconds":3600}}"#,
        );
        assert_eq!(
            v,
            Verdict::RateLimited(Limit429 {
                error_type: Some("usage_limit_reached".into()),
                resets_at_secs: Some(1_795_673_493),
                resets_in_secs: Some(3600),
                retry_after_secs: Some(30),
                active_limit: Some("codex_bengalfox".into()),
            })
        );
    }

    #[test]
    fn only_quota_codes_mid_stream_teach_the_account() {
        for (code, kind) in [
            (
                "rate_limit_exceeded",
                Some(RejectionKind::RateLimitExceeded),
            ),
            (
                "usage_limit_reached",
                Some(RejectionKind::UsageLimitReached),
            ),
            ("insufficient_quota", Some(RejectionKind::UsageLimitReached)),
            ("context_length_exceeded", None),
            ("cyber_policy", None),
            ("invalid_prompt", None),
            ("invalid_request_error", None),
            ("server_error", None),
        ] {
            assert_eq!(stream_fault(code), kind, "{code}");
        }
    }

    #[test]
    fn bare_429_is_still_a_rate_limit() {
        assert_eq!(
            run(429, &[], "slow down"),
            Verdict::RateLimited(Limit429::default())
        );
    }

    #[test]
    fn statuses_map_to_failure_rows() {
        assert_eq!(
            run(401, &[], r#"{"error":{"message":"token expired"}}"#),
            Verdict::Unauthorized
        );
        assert_eq!(
            run(
                403,
                &[],
                r#"{"error":{"message":"Your account has been deactivated"}}"#
            ),
            Verdict::Deactivated("Your account has been deactivated".into())
        );
        assert_eq!(
            run(403, &[], r#"{"error":{"code":"account_banned"}}"#),
            Verdict::Banned("account_banned".into())
        );
        assert_eq!(
            run(
                403,
                &[],
                r#"{"error":{"code":"account_deactivated","message":"Access denied"}}"#
            ),
            Verdict::Deactivated("Access denied".into()),
            "the code alone is the signal"
        );
        assert_eq!(
            run(403, &[], r#"{"detail":"Your account has been flagged"}"#),
            Verdict::Refused(
                PenaltyCause::Forbidden,
                "Your account has been flagged".into()
            ),
            "no deactivation signal: not a ban"
        );
        assert_eq!(
            run(403, &[], "Forbidden"),
            Verdict::Refused(PenaltyCause::Forbidden, "Forbidden".into())
        );
        assert_eq!(
            run(402, &[], r#"{"detail":"Payment required"}"#),
            Verdict::Refused(PenaltyCause::PaymentRequired, "Payment required".into())
        );
        assert_eq!(
            run(404, &[], ""),
            Verdict::Refused(PenaltyCause::StealthDeny, "404 with an empty body".into())
        );
        assert_eq!(
            run(403, &[], "<!DOCTYPE html><title>Just a moment...</title>"),
            Verdict::Cloudflare
        );
        assert_eq!(
            run(403, &[("cf-mitigated", "challenge")], "{}"),
            Verdict::Cloudflare
        );
        assert_eq!(
            run(400, &[], r#"{"error":{"message":"bad"}}"#),
            Verdict::ClientFault
        );
        assert_eq!(
            run(404, &[], r#"{"detail":"Not Found"}"#),
            Verdict::ClientFault
        );
        assert_eq!(run(422, &[], "{}"), Verdict::ClientFault);
        assert_eq!(
            run(
                503,
                &[],
                r#"{"error":{"code":"server_is_overloaded","message":"overloaded"}}"#
            ),
            Verdict::Transient("upstream 503: overloaded".into())
        );
        assert_eq!(
            run(500, &[], ""),
            Verdict::Transient("upstream 500: no body".into())
        );
    }
}
