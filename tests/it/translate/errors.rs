//! Error bodies and mid-stream error frames in each protocol's own shape (docs/predecessor.md §5.6).

use super::readable;
use codex_rotor::translate::error::kind;
use codex_rotor::translate::{Protocol, TranslateError};
use serde_json::json;

#[test]
fn bad_body_renders_per_protocol() {
    let e = TranslateError::invalid("messages[0].role", "unknown role 'wizard'");
    let (status, body) = e.render(Protocol::Chat);
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": {"message": "unknown role 'wizard'", "type": "invalid_request_error",
        "param": "messages[0].role", "code": "invalid_request"}})
    );
    let (status, body) = e.render(Protocol::Messages);
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"type": "error", "error": {"type": "invalid_request_error",
        "message": "messages[0].role: unknown role 'wizard'"}})
    );
}

#[test]
fn no_account_is_503_for_openai_and_529_for_anthropic() {
    let msg = "No available accounts. All accounts are expired or rate-limited.";
    let e = TranslateError::new(503, kind::OVERLOADED, msg);
    let (status, body) = e.render(Protocol::Chat);
    assert_eq!(status, 503);
    assert_eq!(
        body,
        json!({"error": {"message": msg, "type": "server_error", "param": null,
        "code": "no_available_accounts"}})
    );
    let (status, body) = e.render(Protocol::Messages);
    assert_eq!(status, 529);
    assert_eq!(
        body,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": msg}})
    );
}

#[test]
fn rate_limit_and_timeout_shapes() {
    let e = TranslateError::upstream_failed(Some("rate_limit_exceeded"), "slow down");
    assert_eq!(
        e.render(Protocol::Chat),
        (
            429,
            json!({"error": {"message": "slow down",
        "type": "rate_limit_error", "param": null, "code": "rate_limit_exceeded"}})
        )
    );
    assert_eq!(
        e.render(Protocol::Messages),
        (
            429,
            json!({"type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"}})
        )
    );
    let (status, body) = TranslateError::premature_close().render(Protocol::Messages);
    assert_eq!(
        (status, &body["error"]["type"]),
        (504, &json!("timeout_error"))
    );
}

#[test]
fn stream_error_frames() {
    let e = TranslateError::premature_close();
    let chat = readable(&e.stream_frames(Protocol::Chat));
    assert_eq!(chat.len(), 2);
    assert_eq!(chat[0]["data"]["error"]["code"], "codex_api_error");
    assert_eq!(chat[1]["data"], "[DONE]");
    let msgs = readable(&e.stream_frames(Protocol::Messages));
    assert_eq!(
        msgs,
        vec![json!({"event": "error", "data": {"type": "error",
        "error": {"type": "timeout_error", "message": "upstream stream closed before the response completed"}}})]
    );
}
