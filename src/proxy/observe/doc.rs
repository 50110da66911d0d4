//! The few fields the observer reads from `response.created` and the terminal events, parsed
//! straight out of the event's bytes without building a `serde_json::Value` tree: strings are
//! borrowed when unescaped and every other field is skipped unparsed. Reading is as lenient as
//! the `Value` lookups it replaces — a field of an unexpected type reads as absent (a count as
//! 0), it never makes the whole event unreadable.

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// `{"response": {...}}` of a Responses stream event.
#[derive(Deserialize, Default)]
pub struct EventDoc<'a> {
    /// The event's `response` object (absent or not an object: empty).
    #[serde(borrow, default)]
    pub response: Obj<ResponseDoc<'a>>,
}

/// The parts of `response` the proxy needs.
#[derive(Deserialize, Default)]
pub struct ResponseDoc<'a> {
    /// `response.id`.
    #[serde(borrow, default)]
    pub id: Scalar<'a>,
    /// `response.usage`: `Some` whenever the key is present (even `null`, which reads as
    /// zeros, as the `Value` lookup did).
    #[serde(default, deserialize_with = "present")]
    pub usage: Option<Obj<UsageDoc<'a>>>,
    /// `response.error`.
    #[serde(borrow, default)]
    pub error: Obj<ErrorDoc<'a>>,
    /// `response.output`, unparsed (where the back-fill splices the items).
    #[serde(borrow, default)]
    pub output: Option<&'a serde_json::value::RawValue>,
}

/// `response.usage`.
#[derive(Deserialize, Default)]
pub struct UsageDoc<'a> {
    /// `input_tokens`.
    #[serde(borrow, default)]
    pub input_tokens: Scalar<'a>,
    /// `input_tokens_details`.
    #[serde(borrow, default)]
    pub input_tokens_details: Obj<CachedDoc<'a>>,
    /// `output_tokens`.
    #[serde(borrow, default)]
    pub output_tokens: Scalar<'a>,
    /// `output_tokens_details`.
    #[serde(borrow, default)]
    pub output_tokens_details: Obj<ReasoningDoc<'a>>,
}

/// `usage.input_tokens_details`.
#[derive(Deserialize, Default)]
pub struct CachedDoc<'a> {
    /// `cached_tokens`.
    #[serde(borrow, default)]
    pub cached_tokens: Scalar<'a>,
}

/// `usage.output_tokens_details`.
#[derive(Deserialize, Default)]
pub struct ReasoningDoc<'a> {
    /// `reasoning_tokens`.
    #[serde(borrow, default)]
    pub reasoning_tokens: Scalar<'a>,
}

/// `response.error`.
#[derive(Deserialize, Default)]
pub struct ErrorDoc<'a> {
    /// `code`.
    #[serde(borrow, default)]
    pub code: Scalar<'a>,
    /// `message`.
    #[serde(borrow, default)]
    pub message: Scalar<'a>,
}

/// Parses an event's data; a document that is not JSON reads as empty.
pub fn event(data: &[u8]) -> EventDoc<'_> {
    serde_json::from_slice(data).unwrap_or_default()
}

fn present<'de, D, T>(d: D) -> Result<Option<Obj<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Obj::deserialize(d).map(Some)
}

/// A JSON value of any shape, kept only when it is a string or an unsigned integer.
#[derive(Default, Debug, PartialEq)]
pub enum Scalar<'a> {
    /// A string (borrowed when it had no escapes).
    Str(Cow<'a, str>),
    /// A non-negative integer.
    U64(u64),
    /// Anything else, or absent.
    #[default]
    Other,
}

impl Scalar<'_> {
    /// The string, if it is one (what `Value::as_str` gave).
    pub fn text(self) -> Option<String> {
        match self {
            Scalar::Str(s) => Some(s.into_owned()),
            _ => None,
        }
    }

    /// The count, 0 unless it is a non-negative integer (what `Value::as_u64` gave).
    pub fn count(&self) -> u64 {
        match self {
            Scalar::U64(n) => *n,
            _ => 0,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar::U64(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(u64::try_from(v).map_or(Scalar::Other, Scalar::U64))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// A JSON value read as `T` when it is an object, as empty (`None`) otherwise.
pub struct Obj<T>(pub Option<T>);

impl<T> Default for Obj<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<T: Default> Obj<T> {
    /// The object, or an empty one.
    pub fn get(self) -> T {
        self.0.unwrap_or_default()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(a)).map(|t| Obj(Some(t)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Obj(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Obj(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Obj(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Obj(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Obj(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Obj(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Obj(None))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_the_value_lookups_it_replaces() {
        let doc = br#"{"type":"response.completed","response":{"id":"r\u0031","output":[{"a":[1,2]}],"usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":4.5},"output_tokens":-1,"output_tokens_details":"x"},"error":{"code":7,"message":"m"}}}"#;
        let r = event(doc).response.get();
        assert_eq!(r.id.text().as_deref(), Some("r1"));
        let u = r.usage.expect("present").get();
        assert_eq!(u.input_tokens.count(), 10);
        assert_eq!(u.input_tokens_details.get().cached_tokens.count(), 0);
        assert_eq!(u.output_tokens.count(), 0);
        assert_eq!(u.output_tokens_details.get().reasoning_tokens.count(), 0);
        let e = r.error.get();
        assert_eq!(e.code.text(), None);
        assert_eq!(e.message.text().as_deref(), Some("m"));
    }

    #[test]
    fn null_usage_is_present_and_odd_shapes_are_empty() {
        let r = event(br#"{"response":{"usage":null,"id":5,"error":[1]}}"#)
            .response
            .get();
        assert!(r.usage.is_some());
        assert_eq!(r.id, Scalar::U64(5), "a number id is no response id");
        assert!(r.error.0.is_none());
        assert!(event(br#"{"response":"x"}"#).response.0.is_none());
        assert!(event(b"not json").response.0.is_none());
        assert!(event(br#"{"response":{}}"#).response.get().usage.is_none());
    }
}
