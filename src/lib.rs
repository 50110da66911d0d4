//! codex-rotor: a daemon that pools many ChatGPT (Codex) subscription accounts behind one
//! endpoint. The account actors and pure quota/rotation cores live in the `rotor-actors`
//! crate; this crate is everything that touches the outside world: config, the HTTP front end,
//! the upstream client, protocol translation, the admin API and dashboard, on-disk state, and
//! the built-in simulator of the Codex backend. The lab (benchmarks, chaos) is the `rotor-lab`
//! crate in `tests/lab`.
//!
//! # Layout
//!
//! Lowest layer first, as docs/architecture.md "Layers" orders them (a module uses its own
//! layer or below; `tests/it/layers.rs` checks it):
//!
//! - Leaves: [`logging`], [`console`] (stdout that survives a closed pipe), [`request_body`],
//!   [`sse`] (the SSE observer), [`signals`], and [`sim`], the simulator of the Codex backend
//!   and token endpoint (`codex-rotor sim`, the demo, every test and benchmark).
//! - [`config`]: the typed configuration and the options every command reads.
//! - Boundaries: [`store`] (the data directory), [`upstream`] (the Codex backend client),
//!   [`oauth`] (JWT claims, token refresh, the login flow), [`keys`] (client keys), [`recent`].
//! - [`accounts`]: account files, imports and exports, offline and against a running pool.
//! - [`metrics`], then [`http::state`], the state every handler shares.
//! - Handlers: [`proxy`] (`/v1/responses`), [`translate`] (`/v1/chat/completions`,
//!   `/v1/messages`), [`http::admin`] (the admin API and login routes), [`dashboard`].
//! - [`http`]: routes, middleware and errors around the handlers; [`server`] binds and runs it.
//! - Commands: [`demo`], [`accounts::cli`], and [`cli`], which parses the command line.
//!
//! The public surface is what the binary, the lab and the tests use; `dashboard`,
//! `request_body`, `proxy` (reached over HTTP only, like the handlers around it) and the HTTP
//! front apart from its state are private.

pub mod accounts;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod console;
mod dashboard;
pub mod demo;
mod http;
pub mod keys;
pub mod logging;
pub mod metrics;
pub mod oauth;
mod proxy;
pub mod recent;
mod request_body;
pub mod server;
pub mod signals;
pub mod sim;
pub mod sse;
pub mod store;
pub mod translate;
pub mod upstream;

/// Of the HTTP front only the shared state is public (the tests and the lab build an
/// `AppState`); the routes, layers, errors and the admin API are reached over HTTP, never by path.
pub use http::state;
