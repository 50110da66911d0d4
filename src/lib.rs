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
//! - [`accounts`]: account files, imports and exports, offline and into a running pool;
//!   [`cluster`]: several nodes on one PostgreSQL store.
//! - [`metrics`], then [`http::state`], the state every handler shares.
//! - Handlers: [`proxy`] (`/v1/responses`), [`translate`] (`/v1/chat/completions`,
//!   `/v1/messages`), [`http::admin`] (the admin API and login routes), [`dashboard`].
//! - [`http`]: routes, middleware and errors around the handlers; [`server`] binds and runs it.
//! - Commands: [`demo`], [`accounts::cli`], and [`cli`], which parses the command line.
//!
//! # Public surface
//!
//! Most modules are private: the crate shows what its users need and nothing else. Those users
//! are the binary (`src/main.rs`, [`cli`] only), the lab (`tests/lab`: it starts daemons and
//! simulators in-process and drives the commands) and the integration tests (`tests/it`, which
//! reach the daemon over HTTP wherever they can).
//!
//! - Public modules, each a surface of its own: [`cli`] (the commands), [`config`],
//!   [`server`] (start a daemon in-process), [`demo`], [`sim`], [`store`] (the data directory
//!   and PostgreSQL), [`cluster`], [`translate`] (the pure protocol translators) and [`sse`]
//!   (the SSE parser, which the lab's load generator reads streams with).
//! - At the root, the few items of private modules a user names: [`AppState`] (a started
//!   daemon's state), [`Metrics`], [`RequestRecord`], [`HttpRefresher`], the account-file
//!   readers [`parse_file`] and [`login_record`], the log [`subscriber`] and
//!   [`responses_url`].
//! - [`internals`], hidden: the few internals the integration tests and the lab's own tests
//!   check directly, where HTTP cannot show them. Nothing else uses it.

pub mod cli;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod server;
pub mod sim;
pub mod sse;
pub mod store;
pub mod translate;

mod accounts;
mod console;
mod dashboard;
mod http;
mod keys;
mod logging;
mod metrics;
mod oauth;
mod proxy;
mod recent;
mod request_body;
mod signals;
mod upstream;

pub use accounts::{ImportError, login_record, parse_file};
pub use http::state::AppState;
pub use logging::{LogFormat, subscriber};
pub use metrics::Metrics;
pub use oauth::HttpRefresher;
pub use recent::RequestRecord;
pub use upstream::responses_url;

/// What the console macros ([`out!`], [`outln!`], [`errln!`]) expand to in the crates that use
/// them; not to be called by name.
#[doc(hidden)]
pub use console::{write_err, write_out};

/// Internals that the integration tests (`tests/it`) and the lab's own tests check directly
/// because no HTTP answer shows them: the offline merge and export rules beside the binary that
/// applies them, the PKCE login flow without a browser, the long-tool-name stand-ins, and the
/// request shaping the bench body must pass through unchanged. Not part of the surface: nothing
/// but tests may use it.
#[doc(hidden)]
pub mod internals {
    pub use crate::accounts::{export, merge};
    pub use crate::oauth::login;
    pub use crate::upstream::{names, shape};
}
