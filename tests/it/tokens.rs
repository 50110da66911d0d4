//! The token lifecycle, tested over real sockets against the simulator: the token-endpoint
//! client and login ([`endpoint`]), the account actors' refresh through a real pool and file
//! store ([`refresh`]), and durability of a rotation across a killed daemon ([`crash`]).

mod crash;
mod endpoint;
mod harness;
mod refresh;

use codex_rotor::sim::{SimHandle, SimOptions, Simulator};
use serde_json::Value;

/// A simulator on 127.0.0.1:0.
pub(crate) async fn sim() -> SimHandle {
    sim_with(SimOptions::default()).await
}

/// A simulator with options on 127.0.0.1:0.
pub(crate) async fn sim_with(opts: SimOptions) -> SimHandle {
    Simulator::start(opts, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sim starts")
}

/// The refresh token inside a simulator account's auth.json.
pub(crate) fn rt_of(auth_json: &Value) -> String {
    auth_json["tokens"]["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned()
}
