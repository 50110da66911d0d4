//! What a Responses body must look like when it reaches `POST {upstream}/codex/responses`: the
//! backend refuses anything else (docs/protocol.md §13, the corpus in `tests/fixtures/upstream/`).
//! [`for_upstream`] is the one place that rule lives:
//!
//! - `store: false` and `stream: true` (the backend keeps nothing and only streams);
//! - `input` a list: a string becomes one user message;
//! - `system` messages in `input` become `developer` messages;
//! - [`UNSUPPORTED`] parameters are dropped (the backend answers `400 Unsupported parameter`);
//! - `instructions` is written in when the client gave none;
//! - `service_tier` is sent only as `priority` or `flex` ([`service_tier`]); a body without an
//!   `include` list asks for `reasoning.encrypted_content` (with `store: false`, reasoning
//!   without it cannot be sent back on the next turn), a client's own list is kept (the Codex
//!   CLI sends `[]` for a model without reasoning);
//! - the model named by the caller (the default model) is written in when the client named none;
//! - tool names and call ids over 64 characters get short stand-ins ([`super::names`]), and the
//!   [`ToolNames`] that map the answer back go with the body.
//!
//! A body that already has that shape — what the Codex CLI sends — goes through as the same
//! bytes: one borrowed, skipping pass over the JSON decides it ([`Look`], with
//! [`names::LongList`] for long tool names), and only a body that needs a change is parsed into
//! a tree and written again. The same pass notes where the encrypted reasoning the body replays
//! is ([`Blobs`]), so that sending it to an account reads the body no second time
//! (docs/protocol.md §15).

use super::names::{self, ToolNames};
use bytes::Bytes;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Request parameters the Codex backend refuses with `400 Unsupported parameter: NAME`; they are
/// dropped before the body goes upstream (README "What reaches upstream").
pub const UNSUPPORTED: &[&str] = &[
    "max_output_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "truncation",
    "user",
    "metadata",
    "safety_identifier",
    "context_management",
    "prompt_cache_retention",
    "context_window",
    "max_context_window",
    "truncation_policy",
];

/// What `include` names when the client sent no list: with `store: false` the backend keeps
/// nothing, so a reasoning item can only be sent back on the next turn with its encrypted
/// content.
pub const ENCRYPTED_REASONING: &str = "reasoning.encrypted_content";

/// The service tier sent upstream for the tier a client named: `priority` (which `fast`, as
/// the Codex CLI and the `-fast` model suffix say it, means) and `flex` (the `-flex` suffix,
/// which the predecessor sent to the real backend) are kept; `auto`, `default` and any other
/// tier are dropped, which asks for the default tier rather than risk a refusal
/// (docs/fidelity.md §1).
pub fn service_tier(tier: &str) -> Option<&'static str> {
    match tier {
        "fast" | "priority" => Some("priority"),
        "flex" => Some("flex"),
        _ => None,
    }
}

/// Instructions sent when the client gave none (the backend may require the field).
pub const DEFAULT_INSTRUCTIONS: &str = "You are a helpful assistant.";

/// Why a body could not be shaped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShapeError {
    /// Not JSON at all.
    #[error("request body is not valid JSON: {0}")]
    Json(String),
    /// JSON, but not an object.
    #[error("request body must be a JSON object")]
    NotObject,
}

/// Reads what shaping (and the proxy: model, stream, cache key) needs from a body, in one pass.
pub fn look(body: &[u8]) -> Result<Look<'_>, ShapeError> {
    serde_json::from_slice(body).map_err(|e| ShapeError::Json(e.to_string()))
}

/// The body to send upstream: `body` itself when it is already in the backend's shape, else a
/// rewritten copy, with the originals of any names it shortened. `look` is [`look`] of `body`;
/// `model` is written in when given (the client named none).
pub fn for_upstream(
    body: &Bytes,
    look: &Look<'_>,
    model: Option<&str>,
) -> Result<(Bytes, ToolNames), ShapeError> {
    let long_names = look.long_names();
    if model.is_none() && look.valid() && !long_names && !look.input.system() {
        return Ok((body.clone(), ToolNames::default()));
    }
    let mut v: Value = serde_json::from_slice(body).map_err(|e| ShapeError::Json(e.to_string()))?;
    let obj = v.as_object_mut().ok_or(ShapeError::NotObject)?;
    rewrite(obj, model);
    let names = if long_names {
        names::shorten(&mut v)
    } else {
        ToolNames::default()
    };
    let bytes = serde_json::to_vec(&v).map_err(|e| ShapeError::Json(e.to_string()))?;
    Ok((Bytes::from(bytes), names))
}

/// Applies every rule to a parsed body.
fn rewrite(obj: &mut Map<String, Value>, model: Option<&str>) {
    obj.insert("store".into(), Value::Bool(false));
    obj.insert("stream".into(), Value::Bool(true));
    for name in UNSUPPORTED {
        obj.remove(*name);
    }
    if let Some(m) = model {
        obj.insert("model".into(), m.into());
    }
    if !matches!(obj.get("instructions"), Some(Value::String(_))) {
        obj.insert("instructions".into(), DEFAULT_INSTRUCTIONS.into());
    }
    match obj
        .get("service_tier")
        .and_then(Value::as_str)
        .and_then(service_tier)
    {
        Some(tier) => obj.insert("service_tier".into(), tier.into()),
        None => obj.remove("service_tier"),
    };
    if !matches!(obj.get("include"), Some(Value::Array(_))) {
        obj.insert("include".into(), serde_json::json!([ENCRYPTED_REASONING]));
    }
    match obj.get_mut("input") {
        Some(Value::String(text)) => {
            let text = std::mem::take(text);
            obj.insert(
                "input".into(),
                serde_json::json!([{"type": "message", "role": "user",
                    "content": [{"type": "input_text", "text": text}]}]),
            );
        }
        Some(Value::Array(items)) => {
            for item in items {
                if item.get("role").and_then(Value::as_str) == Some("system") {
                    item["role"] = "developer".into();
                }
            }
        }
        _ => {}
    }
}

/// The parts of a body that decide whether it needs shaping, and the few the proxy reads, in
/// one pass that skips the rest.
#[derive(Deserialize)]
pub struct Look<'a> {
    /// `model`.
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    /// `stream` (the client's choice; upstream always gets `true`).
    #[serde(default)]
    pub stream: Option<bool>,
    /// `prompt_cache_key`; borrowed from the body unless it had escapes (its range there is
    /// where [`super::pseudonym`] writes).
    #[serde(borrow, default, deserialize_with = "borrowed_text")]
    pub prompt_cache_key: Option<Cow<'a, str>>,
    /// `client_metadata` as its bytes in the body (its ids get per-account pseudonyms,
    /// [`super::pseudonym`]).
    #[serde(borrow, default)]
    pub client_metadata: Option<&'a serde_json::value::RawValue>,
    #[serde(default)]
    store: Option<Value>,
    #[serde(borrow, default)]
    instructions: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    service_tier: Option<Text<'a>>,
    #[serde(default)]
    include: IsList,
    #[serde(borrow, default)]
    input: InputLook<'a>,
    #[serde(default)]
    tools: names::LongList,
    #[serde(default)]
    max_output_tokens: Present,
    #[serde(default)]
    max_completion_tokens: Present,
    #[serde(default)]
    temperature: Present,
    #[serde(default)]
    top_p: Present,
    #[serde(default)]
    truncation: Present,
    #[serde(default)]
    user: Present,
    #[serde(default)]
    metadata: Present,
    #[serde(default)]
    safety_identifier: Present,
    #[serde(default)]
    context_management: Present,
    #[serde(default)]
    prompt_cache_retention: Present,
    #[serde(default)]
    context_window: Present,
    #[serde(default)]
    max_context_window: Present,
    #[serde(default)]
    truncation_policy: Present,
}

impl Look<'_> {
    /// Whether a tool name or an input item's name or call id is over the limit.
    fn long_names(&self) -> bool {
        self.tools.0 || matches!(self.input, InputLook::List { long: true, .. })
    }

    /// Whether the body is already in the backend's shape.
    fn valid(&self) -> bool {
        let unsupported = [
            &self.max_output_tokens,
            &self.max_completion_tokens,
            &self.temperature,
            &self.top_p,
            &self.truncation,
            &self.user,
            &self.metadata,
            &self.safety_identifier,
            &self.context_management,
            &self.prompt_cache_retention,
            &self.context_window,
            &self.max_context_window,
            &self.truncation_policy,
        ];
        let tier_kept = match &self.service_tier {
            None => true,
            Some(Text(Some(t))) => service_tier(t) == Some(&**t),
            Some(Text(None)) => false,
        };
        let include_asks = self.include.0;
        self.store == Some(Value::Bool(false))
            && self.stream == Some(true)
            && tier_kept
            && include_asks
            && self.instructions.is_some()
            && matches!(self.input, InputLook::List { .. })
            && unsupported.iter().all(|p| !p.0)
    }
}

/// An optional string, borrowed from the input when it has no escapes: serde borrows a plain
/// `Cow<str>` field but always copies one inside an `Option`.
fn borrowed_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct Text;
    impl<'de> Visitor<'de> for Text {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v)))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(Text)
        }
    }
    d.deserialize_option(Text)
}

/// A field that was there, whatever its value (even `null`).
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Present(true))
    }
}

impl<'a> Look<'a> {
    /// Where the encrypted reasoning `body` (the bytes this look read) replays is.
    pub fn blobs(&self, body: &[u8]) -> Blobs {
        let InputLook::List { blobs, .. } = &self.input else {
            return Blobs::None;
        };
        if blobs.is_empty() {
            return Blobs::None;
        }
        let mut at = Vec::with_capacity(blobs.len());
        for blob in blobs {
            let Cow::Borrowed(text) = blob else {
                return Blobs::Unread; // escaped: not a run of the body's bytes
            };
            // Borrowed from `body`: its offset there is the distance between the two.
            let start = (text.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
            if start
                .checked_add(text.len())
                .is_none_or(|end| end > body.len())
            {
                return Blobs::Unread;
            }
            at.push(start..start + text.len());
        }
        Blobs::At(at)
    }
}

/// The `encrypted_content` of the reasoning items a body's `input` replays, as [`look`]'s one
/// pass found them: what [`crate::proxy::reasoning::for_account`] needs to send the body to an
/// account without reading it again.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum Blobs {
    /// No reasoning item carries a blob: the body goes to every account as it is.
    #[default]
    None,
    /// Where each blob's text is in the body (the inside of its JSON string, which has no
    /// escapes).
    At(Vec<std::ops::Range<usize>>),
    /// Some blob could not be placed (escaped, or the body was rewritten after the look):
    /// the body is read again to decide.
    Unread,
}

impl Blobs {
    /// What is known of the blobs of a body made from the one looked at: the same bytes keep
    /// their places, a rewritten body has them somewhere else (if it had any).
    pub fn of_rewritten(self, same_bytes: bool) -> Self {
        match self {
            Self::At(_) if !same_bytes => Self::Unread,
            other => other,
        }
    }
}

/// The `visit_*` methods for `null`, booleans and numbers, each answering `$none`.
macro_rules! scalars {
    ($none:expr) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($none)
        }
    };
}

/// What `input` is, as far as shaping cares.
#[derive(Debug, Default, PartialEq, Eq)]
enum InputLook<'a> {
    /// Absent, or of a type the backend will refuse on its own.
    #[default]
    Other,
    /// A string.
    Text,
    /// A list, read item by item ([`InputItem`]).
    List {
        /// Whether an item's `name` or `call_id` is over the limit and needs a stand-in.
        long: bool,
        /// Whether an item has `role: "system"` (which becomes `developer`).
        system: bool,
        /// The blob of every reasoning item that carries one, in order.
        blobs: Vec<Cow<'a, str>>,
    },
}

impl InputLook<'_> {
    /// Whether an `input` item has `role: "system"`.
    fn system(&self) -> bool {
        matches!(self, InputLook::List { system: true, .. })
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for InputLook<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = InputLook<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list of input items")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(InputLook::Text)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let (mut long, mut system, mut blobs) = (false, false, Vec::new());
                while let Some(InputEntry(item)) = seq.next_element::<InputEntry<'a>>()? {
                    let Some(item) = item else { continue };
                    let too_long = |t: &Text<'_>| t.0.as_deref().is_some_and(names::too_long);
                    long |= too_long(&item.name) || too_long(&item.call_id);
                    system |= item.role.0.as_deref() == Some("system");
                    if item.kind.0.as_deref() == Some("reasoning")
                        && let Some(blob) = item.encrypted_content.0.filter(|b| !b.is_empty())
                    {
                        blobs.push(blob);
                    }
                }
                Ok(InputLook::List {
                    long,
                    system,
                    blobs,
                })
            }
            scalars!(InputLook::Other);
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(InputLook::Other)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// The fields of an `input` item the look reads: the limited `name` and `call_id`
/// ([`names::too_long`]), `role`, and a reasoning item's `type` and `encrypted_content`.
#[derive(Deserialize)]
struct InputItem<'a> {
    #[serde(borrow, default)]
    name: Text<'a>,
    #[serde(borrow, default)]
    call_id: Text<'a>,
    #[serde(borrow, default)]
    role: Text<'a>,
    #[serde(borrow, default, rename = "type")]
    kind: Text<'a>,
    #[serde(borrow, default)]
    encrypted_content: Text<'a>,
}

/// An `input` entry: an item when it is an object, `None` for anything else.
struct InputEntry<'a>(Option<InputItem<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for InputEntry<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = InputEntry<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an input item")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let item = InputItem::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(InputEntry(Some(item)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(InputEntry(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(InputEntry(None))
            }
            scalars!(InputEntry(None));
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Whether a value is a list (its items skipped): `include`, which the body keeps as the
/// client sent it when it is one.
#[derive(Default)]
struct IsList(bool);

impl<'de> Deserialize<'de> for IsList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IsList;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(IsList(true))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(IsList(false))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(IsList(false))
            }
            scalars!(IsList(false));
        }
        d.deserialize_any(V)
    }
}

/// A string value, borrowed from the body when it has no escapes; `None` for any other value,
/// so an odd field never makes the look fail (upstream judges the body then).
#[derive(Default)]
struct Text<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any value")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Borrowed(s))))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(s.to_owned()))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            scalars!(Text(None));
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shape(body: &Bytes, model: Option<&str>) -> Result<Bytes, ShapeError> {
        for_upstream(body, &look(body)?, model).map(|(b, _)| b)
    }

    fn shaped(body: Value) -> Value {
        let out = shape(&Bytes::from(body.to_string()), None).expect("shaped");
        serde_json::from_slice(&out).expect("json")
    }

    #[test]
    fn a_codex_body_passes_as_the_same_bytes() {
        let body = Bytes::from_static(
            br#"{"model":"gpt-5.5","instructions":"You are Codex.","input":[{"type":"message","role":"developer","content":[{"type":"input_text","text":"x"}]},{"type":"message","role":"user","content":"hi"}],"tools":[],"store":false,"stream":true,"include":["reasoning.encrypted_content"],"prompt_cache_key":"k"}"#,
        );
        let out = shape(&body, None).expect("shaped");
        assert_eq!(out.as_ptr(), body.as_ptr(), "not copied");
        assert_eq!(out, body);
    }

    #[test]
    fn an_sdk_body_gets_the_backends_shape() {
        let v = shaped(
            json!({"model": "gpt-5.5", "input": "hi", "max_output_tokens": 100,
            "temperature": null, "metadata": {"a": "b"}, "top_p": 1, "user": "u", "store": true}),
        );
        assert_eq!(
            v,
            json!({"model": "gpt-5.5", "store": false, "stream": true,
                "instructions": DEFAULT_INSTRUCTIONS, "include": [ENCRYPTED_REASONING],
                "input": [{"type": "message", "role": "user",
                    "content": [{"type": "input_text", "text": "hi"}]}]})
        );
    }

    #[test]
    fn only_priority_and_flex_tiers_are_sent_and_include_asks_for_encrypted_reasoning() {
        let base = json!({"model": "m", "stream": true, "store": false, "instructions": "i",
            "input": [], "include": [ENCRYPTED_REASONING]});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            b
        };
        let priority = Bytes::from(with("service_tier", json!("priority")).to_string());
        let out = shape(&priority, None).expect("shaped");
        assert_eq!(out.as_ptr(), priority.as_ptr(), "a valid tier passes as is");
        assert_eq!(
            shaped(with("service_tier", json!("fast")))["service_tier"],
            "priority"
        );
        assert_eq!(
            shaped(with("service_tier", json!("flex")))["service_tier"],
            "flex"
        );
        for tier in [json!("scale"), json!("auto"), json!("default"), json!(7)] {
            let v = shaped(with("service_tier", tier.clone()));
            assert!(v.get("service_tier").is_none(), "{tier} dropped: {v}");
        }
        let own = Bytes::from(with("include", json!([])).to_string());
        let out = shape(&own, None).expect("shaped");
        assert_eq!(out.as_ptr(), own.as_ptr(), "a client's own list is kept");
        let mut none = base.clone();
        none.as_object_mut().expect("object").remove("include");
        assert_eq!(shaped(none)["include"], json!([ENCRYPTED_REASONING]));
    }

    #[test]
    fn system_messages_become_developer_messages_and_the_rest_is_kept() {
        let v = shaped(
            json!({"model": "m", "stream": true, "store": false, "instructions": "i",
            "input": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
            "reasoning": {"effort": "low"}}),
        );
        assert_eq!(v["input"][0]["role"], "developer");
        assert_eq!(v["input"][1]["role"], "user");
        assert_eq!(v["reasoning"]["effort"], "low");
        assert_eq!(v["instructions"], "i");
    }

    /// The one pass notes a `system` item of a body otherwise in shape, and odd values of
    /// the fields it reads make no body unreadable.
    #[test]
    fn a_system_item_is_seen_in_the_one_pass_and_odd_items_are_no_error() {
        let codex = |input: Value| {
            json!({"model": "m", "stream": true, "store": false, "instructions": "i",
                "include": [], "input": input})
        };
        let v = shaped(codex(
            json!([{"type": "message", "role": "system", "content": "x"}]),
        ));
        assert_eq!(v["input"][0]["role"], "developer");
        let odd = codex(
            json!([{"role": 1, "type": ["x"], "name": {}, "call_id": null,
            "encrypted_content": 5}, "text", 3, [1], null]),
        );
        let body = Bytes::from(odd.to_string());
        let out = shape(&body, None).expect("shaped");
        assert_eq!(out.as_ptr(), body.as_ptr(), "in shape: the same bytes");
    }

    /// Where the replayed reasoning's blobs are: each one's text in the body, none for a body
    /// without a blob, and unknown when one is escaped or the body was rewritten.
    #[test]
    fn the_one_pass_places_every_reasoning_blob() {
        let blobs = |body: &[u8]| look(body).expect("look").blobs(body);
        let body = br#"{"input":[{"type":"reasoning","encrypted_content":"gAAA-1"},{"type":"message","encrypted_content":"no"},{"type":"reasoning","encrypted_content":""},{"type":"reasoning","encrypted_content":"gAAA-2"}]}"#;
        let Blobs::At(at) = blobs(body) else {
            panic!("placed")
        };
        let texts: Vec<&[u8]> = at.iter().map(|r| &body[r.clone()]).collect();
        assert_eq!(texts, [&b"gAAA-1"[..], b"gAAA-2"]);
        assert_eq!(
            Blobs::At(at.clone()).of_rewritten(true),
            Blobs::At(at.clone())
        );
        assert_eq!(Blobs::At(at).of_rewritten(false), Blobs::Unread);
        assert_eq!(
            blobs(br#"{"input":[{"type":"message","role":"user"}]}"#),
            Blobs::None
        );
        assert_eq!(blobs(br#"{"input":"text"}"#), Blobs::None);
        assert_eq!(
            blobs(br#"{"input":[{"type":"reasoning","encrypted_content":"gA\/A"}]}"#),
            Blobs::Unread
        );
        assert_eq!(Blobs::None.of_rewritten(false), Blobs::None);
    }

    #[test]
    fn every_unsupported_parameter_is_dropped() {
        let mut body = json!({"model": "m", "input": [], "instructions": "i"});
        for p in UNSUPPORTED {
            body[*p] = json!(1);
        }
        let v = shaped(body);
        for p in UNSUPPORTED {
            assert!(v.get(*p).is_none(), "{p} dropped");
        }
    }

    #[test]
    fn the_default_model_is_written_in_and_bad_bodies_are_errors() {
        let body =
            Bytes::from_static(br#"{"input":[],"instructions":"i","store":false,"stream":true}"#);
        let v: Value =
            serde_json::from_slice(&shape(&body, Some("dflt")).expect("ok")).expect("json");
        assert_eq!(v["model"], "dflt");
        assert!(matches!(
            shape(&Bytes::from_static(b"{"), None),
            Err(ShapeError::Json(_))
        ));
        assert!(shape(&Bytes::from_static(b"[]"), None).is_err());
    }

    #[test]
    fn a_codex_body_with_a_long_tool_name_is_rewritten_with_its_originals() {
        let long = format!("mcp__server__{}", "t".repeat(60));
        let body = Bytes::from(
            json!({"model": "m", "instructions": "i", "store": false, "stream": true,
                "input": [], "tools": [{"type": "function", "name": long}]})
            .to_string(),
        );
        let (out, names) = for_upstream(&body, &look(&body).expect("look"), None).expect("ok");
        let v: Value = serde_json::from_slice(&out).expect("json");
        let short = v["tools"][0]["name"].as_str().expect("name");
        assert!(
            short.len() <= names::MAX_LEN && short.starts_with("mcp__ttt"),
            "{short}"
        );
        assert_eq!(names.original(short), Some(long.as_str()));
    }
}
