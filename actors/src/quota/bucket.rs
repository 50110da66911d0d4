//! Names of the cached quota's buckets and the one rule for which of them govern a request
//! (docs/quota.md rule 1). A bucket id is written `primary`, `secondary`, `code_review` or
//! `<limit id>.primary|secondary` wherever it leaves the process (logs, admin JSON, snapshots).

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// One window of a named extra limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Span {
    /// The short window.
    Primary,
    /// The long window.
    Secondary,
}

impl Span {
    /// Both windows, in the order buckets are listed.
    pub const ALL: [Span; 2] = [Span::Primary, Span::Secondary];

    /// The window's name as the bucket id spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Span::Primary => "primary",
            Span::Secondary => "secondary",
        }
    }
}

/// Names one bucket of the cached quota. `L` is the extra limit's id: owned (`String`) where
/// the id outlives the quota (a [`Lock`](super::Lock), an effect), borrowed (`&str`) while the
/// quota is walked, so walking it allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BucketId<L = String> {
    /// The main short window (5 h on paid plans).
    Primary,
    /// The main long window (weekly).
    Secondary,
    /// The code-review window.
    CodeReview,
    /// One window of the named extra limit (e.g. `codex_bengalfox`, the Spark models).
    Extra(L, Span),
}

impl<L> BucketId<L> {
    /// The main buckets, in the order buckets are listed; extra limits follow by id.
    pub const MAIN: [BucketId<L>; 3] =
        [BucketId::Primary, BucketId::Secondary, BucketId::CodeReview];
}

impl<L: AsRef<str>> BucketId<L> {
    /// True iff this bucket governs a request (docs/quota.md rule 1): primary and secondary
    /// always, code review only for review requests, an extra limit only for the models it
    /// meters (`model_limit`, see [`limit_for_model`](super::limit_for_model)). The one
    /// place that answers it.
    pub fn governs(&self, model_limit: Option<&str>, review: bool) -> bool {
        match self {
            BucketId::Primary | BucketId::Secondary => true,
            BucketId::CodeReview => review,
            BucketId::Extra(id, _) => model_limit == Some(id.as_ref()),
        }
    }

    /// The same id borrowing its limit id.
    pub fn as_ref(&self) -> BucketId<&str> {
        match self {
            BucketId::Primary => BucketId::Primary,
            BucketId::Secondary => BucketId::Secondary,
            BucketId::CodeReview => BucketId::CodeReview,
            BucketId::Extra(id, s) => BucketId::Extra(id.as_ref(), *s),
        }
    }

    /// The same id owning its limit id.
    pub fn to_owned(&self) -> BucketId {
        match self {
            BucketId::Primary => BucketId::Primary,
            BucketId::Secondary => BucketId::Secondary,
            BucketId::CodeReview => BucketId::CodeReview,
            BucketId::Extra(id, s) => BucketId::Extra(id.as_ref().to_owned(), *s),
        }
    }
}

impl<L: AsRef<str>> fmt::Display for BucketId<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BucketId::Primary => f.write_str("primary"),
            BucketId::Secondary => f.write_str("secondary"),
            BucketId::CodeReview => f.write_str("code_review"),
            BucketId::Extra(id, s) => write!(f, "{}.{}", id.as_ref(), s.as_str()),
        }
    }
}

impl<L: AsRef<str>> Serialize for BucketId<L> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A string that names no bucket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a bucket id: {0:?}")]
pub struct UnknownBucket(pub String);

impl FromStr for BucketId {
    type Err = UnknownBucket;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Read back through `Display`, so the names are spelt in one place.
        if let Some(main) = BucketId::MAIN.into_iter().find(|id| id.to_string() == s) {
            return Ok(main);
        }
        let span = |w: &str| Span::ALL.into_iter().find(|s| s.as_str() == w);
        s.split_once('.')
            .and_then(|(id, w)| Some(BucketId::Extra(id.to_owned(), span(w)?)))
            .ok_or_else(|| UnknownBucket(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_id_reads_back_what_it_writes() {
        let ids = [
            BucketId::Primary,
            BucketId::Secondary,
            BucketId::CodeReview,
            BucketId::Extra("codex_bengalfox".to_owned(), Span::Primary),
            BucketId::Extra("codex_bengalfox".to_owned(), Span::Secondary),
        ];
        for id in ids {
            assert_eq!(id.to_string().parse::<BucketId>(), Ok(id.clone()));
            assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{id}\""));
        }
        assert!("weekly".parse::<BucketId>().is_err());
        assert!("x.tertiary".parse::<BucketId>().is_err());
    }
}
