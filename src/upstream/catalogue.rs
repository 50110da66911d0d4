//! The Codex model catalogue (`GET {base}/codex/models?client_version=…`), fetched with one
//! pool account and kept for [`TTL`] (docs/protocol.md §1, §13.3). Codex decodes it as
//! `{"models":[ModelInfo…]}` and caches it by its `x-models-etag`; the daemon hands the bytes on
//! exactly as upstream sent them, with that tag (or, when upstream sent none, a digest of the
//! bytes), so a client revalidating with `If-None-Match` costs nothing upstream.
//!
//! One fetch at a time: concurrent misses wait for the first instead of each spending a request
//! of an account. A catalogue that fails to fetch leaves the previous one in place (served
//! stale rather than not at all).

use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

/// How long a fetched catalogue is served before it is fetched again (Codex's own cache TTL).
pub const TTL: Duration = Duration::from_secs(300);

/// One fetched catalogue.
#[derive(Debug, Clone)]
pub struct Catalogue {
    /// The body exactly as upstream sent it (`{"models":[…]}`).
    pub body: Bytes,
    /// Its tag, quoted (`"…"`), as sent in `ETag` and `x-models-etag`.
    pub etag: String,
    /// When it was fetched.
    pub fetched: Instant,
}

/// Why a fetched answer is not a catalogue.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CatalogueError {
    /// Upstream answered a status other than 200.
    #[error("upstream answered the model catalogue with status {0}")]
    Status(u16),
    /// The body is not `{"models":[…]}`.
    #[error("upstream's model catalogue is not {{\"models\":[…]}}: {0}")]
    Shape(String),
}

impl Catalogue {
    /// Checks an upstream answer and builds the catalogue from it.
    pub fn from_answer(
        status: u16,
        upstream_tag: Option<&str>,
        body: Bytes,
        now: Instant,
    ) -> Result<Self, CatalogueError> {
        if status != 200 {
            return Err(CatalogueError::Status(status));
        }
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| CatalogueError::Shape(e.to_string()))?;
        if !v.get("models").is_some_and(serde_json::Value::is_array) {
            return Err(CatalogueError::Shape("no `models` array".into()));
        }
        let etag = match upstream_tag.map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) if t.starts_with('"') || t.starts_with("W/\"") => t.to_owned(),
            Some(t) => format!("\"{t}\""),
            None => {
                let d = Sha256::digest(&body);
                let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            }
        };
        Ok(Self {
            body,
            etag,
            fetched: now,
        })
    }

    /// Still within [`TTL`] at `now`.
    pub fn fresh(&self, now: Instant) -> bool {
        now.duration_since(self.fetched) < TTL
    }

    /// The model slugs it lists, in its order.
    pub fn slugs(&self) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        v["models"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["slug"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether an `If-None-Match` value names this catalogue (`*`, or a list containing its
    /// tag, weak or strong).
    pub fn matches(&self, if_none_match: &str) -> bool {
        let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
        let mine = bare(&self.etag);
        if_none_match
            .split(',')
            .any(|t| t.trim() == "*" || bare(t) == mine)
    }
}

/// The cached catalogue of one daemon; the lock is held across a fetch (single flight).
#[derive(Debug, Default)]
pub struct CatalogueCache {
    slot: tokio::sync::Mutex<Option<Catalogue>>,
}

impl CatalogueCache {
    /// Locks the slot; the caller fetches while holding it when the catalogue is not fresh.
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, Option<Catalogue>> {
        self.slot.lock().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"models":[{"slug":"gpt-5.5"},{"slug":"gpt-5.4"}]}"#;

    #[test]
    fn upstreams_tag_is_kept_and_a_missing_one_is_a_digest_of_the_bytes() {
        let now = Instant::now();
        let tagged = Catalogue::from_answer(200, Some("abc"), Bytes::from_static(BODY), now)
            .expect("catalogue");
        assert_eq!(tagged.etag, "\"abc\"");
        let untagged =
            Catalogue::from_answer(200, None, Bytes::from_static(BODY), now).expect("catalogue");
        let again =
            Catalogue::from_answer(200, None, Bytes::from_static(BODY), now).expect("catalogue");
        assert_eq!(untagged.etag, again.etag, "same bytes, same tag");
        assert_eq!(untagged.etag.len(), 18);
        assert_eq!(untagged.slugs(), ["gpt-5.5", "gpt-5.4"]);
        assert!(untagged.matches(&untagged.etag));
        assert!(untagged.matches(&format!("\"x\", W/{}", untagged.etag)));
        assert!(untagged.matches("*"));
        assert!(!untagged.matches("\"other\""));
    }

    #[test]
    fn only_a_200_with_a_models_array_is_a_catalogue() {
        let now = Instant::now();
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        assert_eq!(
            Catalogue::from_answer(403, None, Bytes::from_static(BODY), now).err(),
            Some(CatalogueError::Status(403))
        );
        assert!(matches!(
            Catalogue::from_answer(200, None, b("{\"data\":[]}"), now),
            Err(CatalogueError::Shape(_))
        ));
        assert!(matches!(
            Catalogue::from_answer(200, None, b("<html>"), now),
            Err(CatalogueError::Shape(_))
        ));
    }

    #[test]
    fn a_catalogue_is_fresh_for_the_ttl() {
        let then = Instant::now();
        let c = Catalogue::from_answer(200, None, Bytes::from_static(BODY), then).expect("ok");
        assert!(c.fresh(then + TTL - Duration::from_secs(1)));
        assert!(!c.fresh(then + TTL));
    }
}
