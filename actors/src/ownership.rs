//! Who owns which account when several nodes share one pool (docs/cluster.md): the rules of
//! node sessions, account ownership and fenced refreshes, as pure state machines under a
//! caller-supplied clock, so they can be tested exhaustively without a database.
//!
//! - [`rules`] is what the shared store decides: each operation is one compare-and-set on the
//!   store's own clock. A database backend runs the same decisions as SQL statements; this
//!   in-memory version is the reference they are tested against.
//! - [`session`] is what one node believes about its own session lease: a local deadline taken
//!   on its monotonic clock *before* each renewal is sent, so the node stops refreshing and
//!   admitting before the store could let anyone else take its accounts (self-fencing).
//! - [`placement`] says which live node should own an account (rendezvous hashing).
//!
//! The invariant everything here serves: no refresh token is ever used twice.

pub mod placement;
pub mod rules;
pub mod session;

/// A node's identity in the cluster (from config; stable across restarts).
pub type NodeId = String;

/// Milliseconds on some clock: the store's clock in [`rules`], the node's monotonic clock in
/// [`session`]. The two are never compared with each other.
pub type Ms = i64;
