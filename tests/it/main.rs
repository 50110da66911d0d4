//! The one integration-test binary: every area of codex-rotor is tested here against real
//! servers bound on 127.0.0.1:0 or through the real `codex-rotor` binary. One module per area.

mod accounts;
mod admin;
mod bench;
mod chaos;
mod clients;
mod cloudflare;
mod cluster;
mod config;
mod dashboard;
mod fuzz;
mod keys;
mod metrics;
mod nginx;
mod proxy;
mod quota_efficiency;
mod signals;
mod sim;
mod store;
mod support;
mod tokens;
mod translate;
mod wiring;
