//! The narrow seam of ownership (docs/cluster.md "Ownership", "Refresh under fencing"): the
//! operations a node needs from the shared store, each one compare-and-set on the store's own
//! clock, answering either the store's refusal (a [`Refusal`], which changes nothing) or an
//! error of the backend (the store could not be asked). PostgreSQL implements it
//! ([`LeaseDb`](super::postgres::LeaseDb)); an etcd or Kubernetes Lease backend would
//! implement the same operations with the same verdicts, checked against the in-memory
//! reference [`rotor_actors::ownership::rules::Rules`].

use std::future::Future;

use rotor_actors::ownership::Ms;
use rotor_actors::ownership::rules::{Claimed, Intent, Refusal};

/// A verdict of the store, or the backend's failure to give one.
pub type Verdict<T, E> = Result<Result<T, Refusal>, E>;

/// Node sessions, account ownership and fenced refreshes on a shared store.
pub trait LeaseStore: Send {
    /// The backend's error (connection lost, statement failed).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Starts a session for `node` (epoch + 1), unless a live one exists: the new epoch.
    fn acquire(
        &mut self,
        node: &str,
        ttl: Ms,
    ) -> impl Future<Output = Verdict<u64, Self::Error>> + Send;

    /// Extends the session at `epoch` by `ttl`: the store time left.
    fn renew(
        &mut self,
        node: &str,
        epoch: u64,
        ttl: Ms,
    ) -> impl Future<Output = Verdict<Ms, Self::Error>> + Send;

    /// Takes `account` if unowned or its owner's session lapsed, at the `seen_gen` read.
    fn claim(
        &mut self,
        account: &str,
        node: &str,
        epoch: u64,
        seen_gen: u64,
    ) -> impl Future<Output = Verdict<Claimed, Self::Error>> + Send;

    /// Gives `account` up (a planned move), at `owner_gen`.
    fn release(
        &mut self,
        account: &str,
        node: &str,
        epoch: u64,
        owner_gen: u64,
    ) -> impl Future<Output = Verdict<(), Self::Error>> + Send;

    /// Commits a refresh intent lasting `window` before the token endpoint is called; a
    /// begin sent again after its answer was lost carries the same `nonce` and gets the
    /// intent it committed.
    fn begin_refresh(
        &mut self,
        account: &str,
        node: &str,
        epoch: u64,
        owner_gen: u64,
        nonce: u64,
        window: Ms,
    ) -> impl Future<Output = Verdict<Intent, Self::Error>> + Send;

    /// Stores a rotation under the intent: the new token version.
    fn finish_refresh(
        &mut self,
        account: &str,
        node: &str,
        epoch: u64,
        owner_gen: u64,
        intent: &Intent,
    ) -> impl Future<Output = Verdict<u64, Self::Error>> + Send;
}
