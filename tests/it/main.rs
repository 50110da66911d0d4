//! The one integration-test binary: every area of codex-rotor is tested here against real
//! servers bound on 127.0.0.1:0 or through the real `codex-rotor` binary. One module per area.
//! The one integration-test binary: one module per area, each binding real servers on
//! 127.0.0.1:0 or running the real `codex-rotor` binary.

mod accounts;
mod admin;
mod clients;
mod config;
mod dashboard;
mod keys;
mod metrics;
mod proxy;
mod signals;
mod sim;
mod store;
mod support;
mod tokens;
mod translate;
