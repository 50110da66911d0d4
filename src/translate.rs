//! Protocol translation (placeholder; see issue 5).
