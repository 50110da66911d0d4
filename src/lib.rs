//! codex-rotor: a daemon that pools many ChatGPT (Codex) subscription accounts behind one
//! endpoint. The account actors and pure quota/rotation cores live in the `rotor-actors`
//! crate; this crate is everything that touches the outside world: config, the HTTP front end,
//! the upstream client, protocol translation, the admin API and dashboard, on-disk state, and
//! the built-in simulator of the Codex backend.

pub mod bench;
pub mod cli;
pub mod config;
pub mod loadgen;
pub mod sim;
pub mod translate;
