//! The lab of codex-rotor: everything that exists to test, measure and stress the daemon, and
//! nothing the daemon runs (docs/lab.md). The `rotor-lab` binary runs these and, besides, every
//! `codex-rotor` command, so a benchmark or a chaos run starts the daemon as `rotor-lab serve`:
//! one binary, built with the fault points (`rotor_actors::fault`) the chaos run needs.
//!
//! # Layout
//!
//! - [`loadgen`]: the HTTP/1.1 load generator every benchmark drives.
//! - [`bench`]: `bench sim` (the simulator alone), `bench proxy` (direct, bare pass-through and
//!   through the daemon) and `bench passthrough`, the bare pass-through itself.
//! - [`chaos`]: the storm with SIGKILL/restart, and the quota-efficiency, Cloudflare and scaling
//!   scenarios; `chaos cluster`, several nodes on PostgreSQL under faults.
//! - [`pg`]: a throwaway PostgreSQL (also compiled into `tests/it`).
//! - [`procfs`]: a child's CPU time, context switches and memory, from `/proc`.
//! - [`relay`]: a TCP relay the harness can cut, to partition one node from the database.

pub mod bench;
pub mod chaos;
pub mod loadgen;
pub mod pg;
pub mod procfs;
pub mod relay;
