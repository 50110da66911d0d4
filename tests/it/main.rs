//! The one integration-test binary: every area of codex-rotor is tested here against real
//! servers bound on 127.0.0.1:0 or through the real `codex-rotor` binary. One module per area.

mod accounts;
mod admin;
mod clients;
mod cluster;
mod config;
mod dashboard;
mod fuzz;
mod layers;
mod metrics;
mod nginx;
mod proxy;
mod signals;
mod sim;
mod snapshots;
mod store;
mod support;
mod tokens;
mod translate;
mod wiring;
