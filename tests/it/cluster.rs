//! Several nodes on one PostgreSQL: the ownership rules on a real database, started by the
//! tests on a Unix socket (docs/cluster.md).

mod fence;
mod nodes;
mod operate;
mod pg_daemon;
mod pg_offline;
mod pg_rules;
mod pg_store;
mod throwaway;
