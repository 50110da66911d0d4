//! Tests of the `rotor-actors` crate: the pure cores (quota, rotation, legacy import) through
//! YAML trace snapshots, and the actors (account, pool) on a paused tokio clock with in-memory
//! effects. One test binary; snapshots live in the workspace's top-level `snapshots/`.

mod cooldown;
mod evidence;
mod fakes;
mod fence;
mod headroom;
mod identity;
mod import;
mod legacy;
mod ownership;
mod penalty;
mod pool;
mod quota;
mod refresh;
mod rejection;
mod rotation;
mod supervision;
mod support;
mod traces;
