//! `Secret<T>`: a value that must never reach a log line, a `Debug` dump, an admin response or
//! a serialized config. Its `Debug`, `Display` and `Serialize` all print `***`; the only way to
//! the value is the explicit, greppable [`Secret::expose`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// What every redacted value prints as.
pub const REDACTED: &str = "***";

/// A secret (client key, admin key, token). Compare it with [`Secret::ct_eq`], never `==` on the
/// exposed value, so comparisons take the same time whatever the input.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T = String>(T);

impl<T> Secret<T> {
    /// Wraps a value; from here on it prints as `***`.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The secret itself. Every call site is a place where the secret leaves its wrapper: keep
    /// them few and never pass the result to a formatter.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: AsRef<[u8]>> Secret<T> {
    /// Constant-time equality with a presented value (same time for every input of a given
    /// length; lengths are not secret).
    pub fn ct_eq(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_ref().ct_eq(presented).into()
    }

    /// True when the secret is the empty string (never a usable key).
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_empty()
    }
}

impl From<&str> for Secret<String> {
    fn from(s: &str) -> Self {
        Secret(s.to_owned())
    }
}

impl From<String> for Secret<String> {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Serializes as `"***"`: a config or state dump can be shown to anyone.
impl<T> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Secret)
    }
}

/// The bytes of a binary secret written as text: hex (an even number of hex digits) or base64
/// (standard or URL-safe, padded or not). `None` when it is neither. Shared by the store key
/// and the cluster secret, so both accept the same spellings (`openssl rand -base64 32`).
pub fn decode_binary(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let text = text.trim();
    if !text.is_empty() && text.len() % 2 == 0 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return (0..text.len() / 2)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
            .collect();
    }
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    engines.iter().find_map(|e| e.decode(text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rendering_is_redacted() {
        let s = Secret::from("sk-very-secret");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{:#?}", Some(&s)), "Some(\n    ***,\n)");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert_eq!(s.expose(), "sk-very-secret");
    }

    #[test]
    fn ct_eq_compares_whole_value() {
        let s = Secret::from("abc");
        assert!(s.ct_eq(b"abc"));
        assert!(!s.ct_eq(b"abd"));
        assert!(!s.ct_eq(b"ab"));
        assert!(!s.ct_eq(b"abcd"));
    }
}
