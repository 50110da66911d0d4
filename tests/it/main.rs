//! The one integration-test binary: every area of codex-rotor is tested here against real
//! servers bound on 127.0.0.1:0. One module per area.

mod accounts;
mod metrics;
mod sim;
mod store;
//! The one integration-test binary: one module per area, each binding real servers on
//! 127.0.0.1:0 or running the real `codex-rotor` binary.

mod config;
mod keys;
mod tokens;
mod proxy;
mod support;
mod translate;
