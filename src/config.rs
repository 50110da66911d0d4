//! Typed configuration (placeholder; see issue 8).
