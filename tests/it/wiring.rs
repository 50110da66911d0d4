//! How the daemon's parts are tied together in `server::start` and `router::build`: the real
//! refresher (client id, refresh metrics), daemon-wide limits at start and on reload, the
//! dashboard login routes, the reverse-proxy origin and the per-request log span; and how
//! `demo` handles its data directory (`demo.rs`, through the real binary). Each test runs the
//! real daemon against the simulator over 127.0.0.1.

mod daemon;
pub(crate) mod demo;
pub(crate) mod logs;
mod rotation;
mod signin;
