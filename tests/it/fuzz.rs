//! Property-based fuzzing (proptest; no nightly here, so no cargo-fuzz) of every parser that
//! reads bytes a peer or an operator controls: the SSE observer, the quota headers, the
//! `/wham/usage` body, both request and both stream translators, the TOML config, the
//! per-account state files, the legacy `accounts.json` import and the accounts importer.
//!
//! Each target gets byte-level inputs (arbitrary bytes, mutated valid documents) and
//! structure-aware generators (documents built from the protocol's own vocabulary), and asserts
//! more than "no panic": chunking invariance, round trips, terminal frames, quarantine.
//!
//! Default case counts keep the suite fast; run them longer with
//! `PROPTEST_CASES=100000 cargo test --release --test it fuzz::`.

mod json;
mod quota;
mod sse;
mod state;
mod translate;

use proptest::test_runner::Config;

/// Cases per property: `PROPTEST_CASES` when set, else `default`.
pub fn cases(default: u32) -> Config {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases: n,
        failure_persistence: None,
        ..Config::default()
    }
}
