//! Reading what the proxy needs from a client's Responses request without re-encoding it:
//! model, whether the client streams, and the affinity key that keeps a conversation on its
//! account. The body goes upstream in the backend's shape ([`shape::for_upstream`]): byte for
//! byte when it already has it (what the Codex CLI sends), else rewritten, with
//! `models.default_model` written in when the client named no model. A compressed body was
//! decoded at the edge ([`crate::request_body::decode`]).

use crate::config::ModelsConfig;
use crate::http::errors::ApiError;
use crate::upstream::names::ToolNames;
use crate::upstream::pseudonym::Spans;
use crate::upstream::shape::{self, Blobs};
use bytes::Bytes;
use http::{HeaderMap, HeaderName};

// Header names built at compile time: looking one up by `&str` parses it on every request.
const TURN_STATE: HeaderName = HeaderName::from_static("x-codex-turn-state");
const SESSION_ID: HeaderName = HeaderName::from_static("session-id");
const SESSION_ID_UNDERSCORE: HeaderName = HeaderName::from_static("session_id");

/// A validated client request, ready to be sent upstream.
#[derive(Debug, Clone)]
pub struct ResponsesRequest {
    /// Requested model (upstream may serve another and say so in `openai-model`).
    pub model: String,
    /// Whether the client wants SSE (`stream: true`) or one JSON object.
    pub client_stream: bool,
    /// Key that keeps a conversation on one account: `prompt_cache_key`, else `session-id`
    /// (a known `x-codex-turn-state` overrides it, see [`crate::proxy::turns`]).
    pub affinity: Option<String>,
    /// `x-codex-turn-state` echoed by the client, if any.
    pub turn_state: Option<String>,
    /// The account whose answer carried [`Self::turn_state`], when the daemon remembers it
    /// ([`crate::http::state::turns`]); the token goes to no other account.
    pub turn_account: Option<String>,
    /// Whether this is a code-review sub-agent request (`x-openai-subagent: review`).
    pub review: bool,
    /// The body sent upstream ([`shape::for_upstream`]: the client's bytes when already in the
    /// backend's shape, the default model written in when the client named none).
    pub upstream_body: Bytes,
    /// The originals of the tool names and call ids shortened in `upstream_body`, to map the
    /// answer back ([`crate::upstream::names`]); empty for nearly every request.
    pub names: ToolNames,
    /// Where the encrypted reasoning `upstream_body` replays is, as the one look at the body
    /// found it ([`crate::proxy::reasoning::for_account`] reads no more of the body).
    pub reasoning: Blobs,
    /// Where `upstream_body` carries client ids, replaced per serving account
    /// ([`crate::upstream::pseudonym`]).
    pub ids: Spans,
}

/// Parses and validates; a malformed body is a clear 400, never a panic. A request naming no
/// model gets `default_model`.
pub fn parse(
    headers: &HeaderMap,
    body: Bytes,
    default_model: &str,
) -> Result<ResponsesRequest, ApiError> {
    // One pass reads what the proxy needs and what decides the upstream body's shape.
    let head = shape::look(&body).map_err(|e| bad(&e.to_string(), None))?;
    let named = ModelsConfig::named(head.model.as_deref()).is_some();
    let model = match &head.model {
        Some(m) if named => m.to_string(),
        _ => default_model.to_owned(),
    };
    let client_stream = head.stream.unwrap_or(false);
    let header = |n: &HeaderName| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let turn_state = header(&TURN_STATE);
    let affinity = head
        .prompt_cache_key
        .as_deref()
        .filter(|k| !k.is_empty())
        .map(|k| format!("cache:{k}"))
        .or_else(|| {
            header(&SESSION_ID)
                .or_else(|| header(&SESSION_ID_UNDERSCORE))
                .map(|s| format!("session:{s}"))
        });
    let review = headers
        .get("x-openai-subagent")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"review"));
    let (upstream_body, names) =
        shape::for_upstream(&body, &head, (!named).then_some(model.as_str()))
            .map_err(|e| bad(&e.to_string(), None))?;
    let same = upstream_body.as_ptr() == body.as_ptr() && upstream_body.len() == body.len();
    let reasoning = head.blobs(&body).of_rewritten(same);
    // The client's own bytes: the ranges the look found; a rewritten body is read again.
    let ids = if same {
        Spans::of(&body, &head)
    } else {
        Spans::find(&upstream_body)
    };
    Ok(ResponsesRequest {
        model,
        client_stream,
        affinity,
        turn_state,
        turn_account: None,
        review,
        upstream_body,
        names,
        reasoning,
        ids,
    })
}

fn bad(message: &str, param: Option<&str>) -> ApiError {
    ApiError::BadRequest {
        message: message.to_owned(),
        param: param.map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdrs(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_request_naming_no_model_gets_the_default_written_in() {
        for body in [
            &br#"{"input":[],"stream":true}"#[..],
            br#"{"model":"","input":[]}"#,
            br#"{"model":null,"input":[],"stream":true}"#,
        ] {
            let r = parse(&hdrs(&[]), Bytes::copy_from_slice(body), "dflt").expect("valid");
            assert_eq!(r.model, "dflt");
            let v: serde_json::Value = serde_json::from_slice(&r.upstream_body).expect("json");
            assert_eq!(
                (v["model"].as_str(), &v["stream"]),
                (Some("dflt"), &true.into())
            );
        }
    }

    #[test]
    fn streaming_body_passes_unchanged() {
        let body = Bytes::from_static(
            br#"{"model":"gpt-5.5","stream":true,"store":false,"instructions":"i","input":[],"include":[],"prompt_cache_key":"t1"}"#,
        );
        let r = parse(&hdrs(&[]), body.clone(), "dflt").expect("valid");
        assert_eq!(r.model, "gpt-5.5");
        assert!(r.client_stream);
        assert_eq!(r.upstream_body, body);
        assert_eq!(r.affinity.as_deref(), Some("cache:t1"));
    }

    #[test]
    fn non_streaming_body_is_rewritten_to_stream() {
        let r = parse(
            &hdrs(&[]),
            Bytes::from_static(br#"{"model":"m","input":"hi"}"#),
            "dflt",
        )
        .expect("valid");
        assert!(!r.client_stream);
        let v: serde_json::Value = serde_json::from_slice(&r.upstream_body).expect("json");
        assert_eq!(v["stream"], true);
        assert_eq!(v["store"], false);
        // The backend takes list inputs only: the client's string is its one user message.
        assert_eq!(v["input"][0]["role"], "user");
        assert_eq!(v["input"][0]["content"][0]["text"], "hi");
    }

    #[test]
    fn affinity_prefers_cache_key_then_session_and_keeps_turn_state() {
        let body = Bytes::from_static(br#"{"model":"m","stream":true,"prompt_cache_key":"k"}"#);
        let both = hdrs(&[("x-codex-turn-state", "ts"), ("session-id", "s")]);
        let r = parse(&both, body.clone(), "dflt").expect("ok");
        assert_eq!(r.affinity.as_deref(), Some("cache:k"));
        assert_eq!(r.turn_state.as_deref(), Some("ts"));
        let sess = hdrs(&[("session-id", "s")]);
        let no_key = Bytes::from_static(br#"{"model":"m","stream":true}"#);
        assert_eq!(
            parse(&sess, no_key, "dflt")
                .expect("ok")
                .affinity
                .as_deref(),
            Some("session:s")
        );
        assert_eq!(
            parse(&sess, body, "dflt").expect("ok").affinity.as_deref(),
            Some("cache:k")
        );
    }

    #[test]
    fn bad_bodies_are_400() {
        for body in [&b"{"[..], b"[]", br#"{"model":5}"#] {
            match parse(&hdrs(&[]), Bytes::copy_from_slice(body), "dflt") {
                Err(ApiError::BadRequest { .. }) => {}
                other => panic!("expected 400, got {other:?}"),
            }
        }
        let review = hdrs(&[("x-openai-subagent", "review")]);
        assert!(
            parse(&review, Bytes::from_static(br#"{"model":"m"}"#), "dflt")
                .expect("ok")
                .review
        );
    }
}
