//! codex-rotor: a daemon that pools many ChatGPT (Codex) subscription accounts behind one
//! endpoint. The account actors and pure quota/rotation cores live in the `rotor-actors`
//! crate; this crate is everything that touches the outside world: config, the HTTP front end,
//! the upstream client, protocol translation, the admin API and dashboard, on-disk state, and
//! the built-in simulator of the Codex backend.

pub mod accounts;
pub mod admin;
pub mod cli;
pub mod config;
pub mod console;
pub mod dashboard;
pub mod demo;
pub mod errors;
pub mod keys;
pub mod logging;
pub mod metrics;
pub mod middleware;
pub mod oauth;
pub mod proxy;
pub mod recent;
pub mod request_body;
pub mod router;
pub mod server;
pub mod signals;
pub mod sim;
pub mod sse;
pub mod state;
pub mod store;
pub mod translate;
pub mod upstream;
