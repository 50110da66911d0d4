//! The one integration-test binary: one module per area, each binding real servers on
//! 127.0.0.1:0 or running the real `codex-rotor` binary.

mod accounts;
mod admin;
mod chaos;
mod config;
mod dashboard;
mod fuzz;
mod keys;
mod metrics;
mod proxy;
mod quota_efficiency;
mod signals;
mod sim;
mod store;
mod support;
mod tokens;
mod translate;
