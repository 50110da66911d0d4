//! The one integration-test binary: one module per area, each binding real servers on
//! 127.0.0.1:0 or running the real `codex-rotor` binary.

mod accounts;
mod config;
mod keys;
mod proxy;
mod sim;
mod store;
mod support;
