//! The one integration-test binary: every area of codex-rotor is tested here against real
//! servers bound on 127.0.0.1:0. One module per area.

mod accounts;
mod proxy;
mod sim;
mod store;
mod support;
