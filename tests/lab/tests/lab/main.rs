//! The lab's own test binary: each lab command, small, against real servers on 127.0.0.1:0 and
//! the real `rotor-lab` binary. One module per command.

mod bench;
mod chaos;
mod cloudflare;
mod cluster_chaos;
mod quota_efficiency;
mod relay;
mod sim_load;

use codex_rotor::sim::{SimHandle, SimOptions, Simulator};
use serde_json::{Value, json};

/// Starts a simulator on an ephemeral port.
pub async fn start(opts: SimOptions) -> SimHandle {
    Simulator::start(opts, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sim starts")
}

/// The access token inside an `auth.json`.
pub fn access_token(auth: &Value) -> String {
    auth["tokens"]["access_token"]
        .as_str()
        .expect("access token")
        .to_string()
}

/// A Codex-like request body (valid for the strict simulator) asking `text`.
pub fn body(text: &str, stream: bool) -> Value {
    json!({"model": "gpt-5.5", "stream": stream, "store": false, "instructions": "You are Codex.", "input": [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}]})
}
