//! Small builders for the simulator's error answers, in the shapes upstream uses
//! (docs/protocol.md §6): JSON `{"error":{…}}` bodies, the Cloudflare challenge page, and the
//! `x-codex-*` quota headers every answer about a known account carries (§4).

use super::options::EXTRA_LIMIT_ID;
use super::quota::{Quota, Window};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A JSON answer with the given status.
pub(crate) fn json_status(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `{"error":{"message","type","param","code"}}` with the given status.
pub(crate) fn error(status: StatusCode, code: &str, kind: &str, message: &str) -> Response {
    json_status(
        status,
        json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
}

/// A 400 `invalid_request_error`.
pub(crate) fn bad_request(param: Option<&str>, message: &str) -> Response {
    json_status(
        StatusCode::BAD_REQUEST,
        json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": null}}),
    )
}

/// The Cloudflare challenge page: 403, HTML, `cf-mitigated: challenge`.
pub(crate) fn cloudflare() -> Response {
    let html = "<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...</title></head>\
                <body><noscript>Enable JavaScript and cookies to continue</noscript>\
                <div id=\"challenge-error-text\">Checking if the site connection is secure</div></body></html>";
    (
        StatusCode::FORBIDDEN,
        [
            (header::CONTENT_TYPE, "text/html; charset=UTF-8"),
            (HeaderName::from_static("cf-mitigated"), "challenge"),
            (HeaderName::from_static("cf-ray"), "8f00000000000000-SIM"),
            (header::SERVER, "cloudflare"),
        ],
        html,
    )
        .into_response()
}

/// Inserts a header whose value is known to be valid ASCII.
pub(crate) fn put(h: &mut HeaderMap, name: &'static str, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        h.insert(HeaderName::from_static(name), v);
    }
}

fn percent(w: &Window) -> String {
    let p = (w.used_percent() * 100.0).round() / 100.0;
    format!("{p}")
}

/// The `x-codex-*` quota headers of an account; the `x-codex-bengalfox-*` family too when
/// the model uses the extra limit and the account has one.
pub(crate) fn quota_headers(
    h: &mut HeaderMap,
    quota: &Quota,
    uses_extra: bool,
    credits: Option<&str>,
    now: i64,
) {
    let window = |h: &mut HeaderMap, names: [&'static str; 3], w: &Window| {
        put(h, names[0], percent(w));
        put(h, names[1], w.window_minutes());
        put(h, names[2], (w.reset_at_or_start(now) + 999) / 1000);
    };
    window(
        h,
        [
            "x-codex-primary-used-percent",
            "x-codex-primary-window-minutes",
            "x-codex-primary-reset-at",
        ],
        &quota.primary,
    );
    window(
        h,
        [
            "x-codex-secondary-used-percent",
            "x-codex-secondary-window-minutes",
            "x-codex-secondary-reset-at",
        ],
        &quota.secondary,
    );
    put(h, "x-codex-credits-has-credits", credits.is_some());
    put(h, "x-codex-credits-unlimited", false);
    put(h, "x-codex-credits-balance", credits.unwrap_or("0"));
    if uses_extra && let Some(e) = &quota.extra {
        window(
            h,
            [
                "x-codex-bengalfox-primary-used-percent",
                "x-codex-bengalfox-primary-window-minutes",
                "x-codex-bengalfox-primary-reset-at",
            ],
            e,
        );
        put(h, "x-codex-bengalfox-limit-name", "GPT-5.3-Codex-Spark");
    }
}

/// Whether a model is governed by the extra `codex_bengalfox` limit.
pub(crate) fn uses_extra_limit(model: &str) -> bool {
    let m = model.to_ascii_lowercase();
    m.contains("spark") || m.contains("bengalfox")
}

/// Id of the limit family named in `x-codex-active-limit`.
pub(crate) fn active_limit(extra: bool) -> &'static str {
    if extra { EXTRA_LIMIT_ID } else { "codex" }
}
