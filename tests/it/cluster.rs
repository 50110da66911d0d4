//! Several nodes on one PostgreSQL: the ownership rules on a real database, started by the
//! tests on a Unix socket (docs/cluster.md).

mod affinity;
mod fence;
mod fence_stall;
mod forward;
mod import;
mod nodes;
mod operate;
mod pg_daemon;
mod pg_offline;
mod pg_rules;
mod pg_store;
mod ready;
mod redial;
// The throwaway server lives in the lab (the cluster chaos run needs it too); the integration
// tests cannot depend on the lab crate, so they compile the same file. Its TCP and stop/start
// parts are the lab's.
#[allow(dead_code)]
#[path = "../lab/src/pg.rs"]
mod throwaway;
// The lab's cuttable TCP relay: a database behind a silent network stall.
#[allow(dead_code)]
#[path = "../lab/src/relay.rs"]
mod relay;
