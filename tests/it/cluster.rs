//! Several nodes on one PostgreSQL: the ownership rules on a real database, started by the
//! tests on a Unix socket (docs/cluster.md).

mod pg_rules;
mod throwaway;
