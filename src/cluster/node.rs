//! The node (docs/cluster.md "How a node runs"): two loops on the [`ClusterView`], each with
//! its own database connection, so a slow round of claims can never delay a renewal.
//!
//! - The **lease loop** acquires the node's session (waiting out a still-live one of the same
//!   id after a fast restart), renews it every TTL/5 with its send time taken first
//!   ([`SessionLease::sending`](rotor_actors::ownership::session::SessionLease::sending)),
//!   publishes the node's address and summary with each grant, and on a refused renewal
//!   drops the session (`lost`) and acquires a new epoch. A node cut off from the database
//!   keeps trying with backoff; past its local deadline it stands Fenced.
//! - The **claim loop**, every `claim_every` while Held, lists the live nodes and the
//!   accounts' owners into the view and carries out the [`plan`](super::plan): actors of
//!   accounts this session does not own leave the pool, accounts a joined node should own are
//!   released after their actor stopped, unowned accounts this node should own are claimed,
//!   held at the won generation ([`PgStore::hold`]), loaded and adopted by the pool. When the
//!   session changes (lost, re-acquired) every actor leaves first.
//!
//! [`Node::leave`] is the planned shutdown: admit nothing more, release every owned account,
//! end the session, so peers claim at once instead of waiting out the TTL.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rotor_actors::PoolHandle;
use rotor_actors::Store as _;
use rotor_actors::ownership::Ms;
use rotor_actors::ownership::rules::Refusal;
use rotor_actors::ownership::session::Standing;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::counters::{self, CLAIMS, OWNED, RELEASES, RENEWALS};
use super::plan::{Plan, plan};
use super::view::{ClusterView, Peer, Summary};
use crate::config::ClusterConfig;
use crate::store::postgres::records::PgStore;
use crate::store::postgres::{DbError, LeaseDb, Listing, Ownership, Redialer};

/// The node's timings, from `[cluster]`.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The session lease asked of the store, ms.
    pub ttl: Ms,
    /// How long before the lease would lapse the node stops acting as an owner, ms.
    pub margin: Ms,
    /// Period of the claim loop.
    pub claim_every: Duration,
}

impl Timing {
    /// The timings `[cluster]` configures.
    pub fn of(cfg: &ClusterConfig) -> Timing {
        let ms = |d: Duration| Ms::try_from(d.as_millis()).unwrap_or(Ms::MAX);
        Timing {
            ttl: ms(cfg.ttl),
            margin: ms(cfg.margin),
            claim_every: cfg.claim_every,
        }
    }

    /// A fifth of the TTL: the renewal period, the bound on one statement and on how long a
    /// leaving actor's leases get to come back.
    pub fn fifth(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.ttl / 5).unwrap_or(0).max(50))
    }
}

/// This node's id: `cluster.node_id`, else the host name (`ClusterConfig::resolve_node_id`,
/// which config validation has already accepted before a node starts).
pub fn node_id_of(cfg: &ClusterConfig) -> String {
    cfg.resolve_node_id()
        .unwrap_or_else(|_| "codex-rotor".to_owned())
}

/// The address peers reach this node at: `cluster.advertise`, else the bound listener
/// (`ClusterConfig::resolve_advertise`, validated at start).
pub fn advertise_of(cfg: &ClusterConfig, bound: std::net::SocketAddr) -> String {
    cfg.resolve_advertise(bound)
        .ok()
        .flatten()
        .unwrap_or_else(|| format!("http://{bound}"))
}

/// What the node's loops work on.
#[derive(Clone)]
pub struct NodeParts {
    /// The view the loops keep current.
    pub view: Arc<ClusterView>,
    /// The database's connection string (a secret: never logged).
    pub url: String,
    /// The pool that runs the owned accounts' actors.
    pub pool: PoolHandle,
    /// The account records, fenced by the generations this node holds.
    pub store: Arc<PgStore>,
    /// Timings.
    pub timing: Timing,
    /// The refresh fence the node's actors refresh under: it also tells the claim loop when
    /// another node imported fresh tokens into an account this node runs.
    pub fence: Option<Arc<super::PgFence>>,
}

/// A running node: its two loops.
pub struct Node {
    view: Arc<ClusterView>,
    timing: Timing,
    stop_claims: watch::Sender<bool>,
    stop_lease: watch::Sender<bool>,
    claims: JoinHandle<()>,
    lease: JoinHandle<()>,
}

impl Node {
    /// Starts both loops; the node is Unacquired until the first acquire is granted.
    pub fn start(parts: NodeParts) -> Node {
        counters::set_standing(Standing::Unacquired);
        let (stop_lease, lease_rx) = watch::channel(false);
        let (stop_claims, claims_rx) = watch::channel(false);
        let lease = tokio::spawn(lease_loop(parts.clone(), lease_rx));
        let (view, timing) = (parts.view.clone(), parts.timing);
        let claims = tokio::spawn(claim_loop(parts, claims_rx));
        Node {
            view,
            timing,
            stop_claims,
            stop_lease,
            claims,
            lease,
        }
    }

    /// The view both loops write.
    pub fn view(&self) -> &Arc<ClusterView> {
        &self.view
    }

    /// The planned shutdown: admit nothing more, release every owned account (each after its
    /// actor stopped), then end the session — within one TTL as a whole, the longest it is
    /// worth waiting for: past it the session lapses and the peers claim the accounts anyway.
    /// The claim loop gets all but the last fifth of it, ending the session that fifth (its
    /// statement's bound); a loop still running at its share's end (a database that does not
    /// answer) is abandoned and the shutdown goes on.
    pub async fn leave(self) {
        let t = self.timing;
        let ttl = Duration::from_millis(u64::try_from(t.ttl).unwrap_or(0));
        let end = tokio::time::Instant::now() + ttl;
        self.view.set_leaving();
        let _ = self.stop_claims.send(true);
        finish_by(end - t.fifth(), self.claims, "the claim loop's releases").await;
        let _ = self.stop_lease.send(true);
        finish_by(end, self.lease, "ending the session").await;
    }
}

/// Waits for `task` until `deadline`; past it the task is aborted and a warning says what
/// was not done (the accounts' leases lapse with the session instead).
async fn finish_by(deadline: tokio::time::Instant, mut task: JoinHandle<()>, what: &str) {
    if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
        task.abort();
        tracing::warn!(
            what,
            "cluster: the database did not answer in time on leaving; the peers take the \
             accounts over once the session lapses"
        );
    }
}

/// A database call bounded in time: past `bound` it counts as a failure of the backend.
async fn within<T>(
    bound: Duration,
    f: impl Future<Output = Result<T, DbError>>,
) -> Result<T, DbError> {
    tokio::time::timeout(bound, f)
        .await
        .unwrap_or_else(|_| Err(crate::store::postgres::redial::unanswered()))
}

/// Waits `d`, or until asked to stop.
async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.changed() => {}
    }
}

/// Backoff between attempts to reach the database: doubling from 50 ms up to a fifth of
/// the TTL, so a node that gets the database back renews well before its deadline.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Self {
        Backoff {
            next: Duration::from_millis(50),
            max,
        }
    }
    fn step(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
    fn reset(&mut self) {
        self.next = Duration::from_millis(50);
    }
}

async fn lease_loop(parts: NodeParts, mut stop: watch::Receiver<bool>) {
    let (view, t) = (&parts.view, parts.timing);
    // Its lock waits and idle transactions are bounded like its calls, so a node paused
    // inside a transaction cannot stall the others' renewals past their deadlines.
    let mut db: Redialer<LeaseDb> = Redialer::new(&parts.url, t.fifth(), "the lease loop");
    let mut backoff = Backoff::new(t.fifth());
    let mut down = false;
    loop {
        if *stop.borrow() {
            end_session(view, db.current_mut(), t).await;
            return;
        }
        let d = match db.ready().await {
            Ok(d) => d,
            Err(e) => {
                if !down {
                    tracing::warn!(error = %e, "cluster: cannot reach the database; retrying");
                    down = true;
                }
                RENEWALS.failed.fetch_add(1, Ordering::Relaxed);
                counters::set_standing(view.standing());
                pause(backoff.step(), &mut stop).await;
                continue;
            }
        };
        let wait = match lease_step(view, d, t).await {
            Ok(wait) => {
                if down {
                    tracing::info!("cluster: the database answers again");
                    down = false;
                }
                backoff.reset();
                wait
            }
            Err(e) => {
                if !down {
                    tracing::warn!(error = %e, "cluster: renewing the session failed; retrying");
                    down = true;
                }
                RENEWALS.failed.fetch_add(1, Ordering::Relaxed);
                db.forget();
                backoff.step()
            }
        };
        counters::set_standing(view.standing());
        pause(wait, &mut stop).await;
    }
}

/// One acquire or renewal if one is due; returns how long to wait before the next look.
async fn lease_step(view: &ClusterView, db: &mut LeaseDb, t: Timing) -> Result<Duration, DbError> {
    let now = view.now();
    let (epoch, due, ticket) = {
        let s = view.read();
        (s.lease.epoch(), s.lease.renew_due(), s.lease.sending(now))
    };
    let node = view.node_id();
    let until_due = |view: &ClusterView| {
        let due = view.read().lease.renew_due();
        Duration::from_millis(u64::try_from(due - view.now()).unwrap_or(0))
    };
    match epoch {
        None => match within(t.fifth(), db.acquire(node, t.ttl, None)).await? {
            Ok(epoch) => {
                {
                    let mut s = view.write();
                    s.lease.granted(ticket, epoch, t.ttl);
                    s.acquired_at = Some(now);
                }
                RENEWALS.granted.fetch_add(1, Ordering::Relaxed);
                tracing::info!(node, epoch, "cluster: session acquired");
                publish(view, db, epoch, t).await?;
                Ok(until_due(view))
            }
            Err(Refusal::SessionLive(_)) => {
                RENEWALS.refused.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    node,
                    "cluster: this node id still has a live session (a restart within the TTL, \
                     or another process with the same node_id); waiting for it to lapse"
                );
                Ok(t.claim_every)
            }
            Err(r) => {
                RENEWALS.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(node, refusal = %r, "cluster: acquire refused");
                Ok(t.claim_every)
            }
        },
        Some(epoch) if now >= due || view.standing() != Standing::Held => {
            match within(t.fifth(), db.renew(node, epoch, t.ttl, None)).await? {
                Ok(left) => {
                    view.write().lease.granted(ticket, epoch, left);
                    RENEWALS.granted.fetch_add(1, Ordering::Relaxed);
                    publish(view, db, epoch, t).await?;
                    Ok(until_due(view))
                }
                Err(r) => {
                    view.write().lease.lost();
                    RENEWALS.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(node, epoch, refusal = %r, "cluster: the session was lost; its accounts are dropped and a new session acquired");
                    Ok(Duration::ZERO)
                }
            }
        }
        Some(_) => Ok(until_due(view)),
    }
}

/// Publishes the address and summary with a grant.
async fn publish(view: &ClusterView, db: &LeaseDb, epoch: u64, t: Timing) -> Result<(), DbError> {
    let summary = serde_json::to_value(view.read().local.clone()).unwrap_or_default();
    within(
        t.fifth(),
        db.publish(view.node_id(), epoch, view.advertise(), &summary),
    )
    .await
}

/// Ends the session (planned shutdown), if the database is there to hear it.
async fn end_session(view: &ClusterView, db: Option<&mut LeaseDb>, t: Timing) {
    let Some(epoch) = view.epoch() else { return };
    let Some(db) = db else { return };
    match within(t.fifth(), db.end_session(view.node_id(), epoch)).await {
        Ok(Ok(())) => tracing::info!(node = view.node_id(), epoch, "cluster: session ended"),
        Ok(Err(r)) => tracing::warn!(refusal = %r, "cluster: ending the session was refused"),
        Err(e) => tracing::warn!(error = %e, "cluster: ending the session failed"),
    }
    view.write().lease.lost();
    counters::set_standing(Standing::Unacquired);
}

async fn claim_loop(parts: NodeParts, mut stop: watch::Receiver<bool>) {
    let (view, t) = (&parts.view, parts.timing);
    let mut db: Redialer<LeaseDb> = Redialer::new(&parts.url, t.fifth(), "the claim loop");
    let mut seen: Option<u64> = None;
    loop {
        let stopping = *stop.borrow();
        let epoch = view.epoch();
        if epoch != seen {
            if seen.is_some() {
                // Lost (or replaced) session: nothing it owned is ours any more.
                leave_all(&parts).await;
                view.write().owners.clear();
            }
            seen = epoch;
        }
        let d = db.ready().await.ok();
        if stopping {
            if let (Some(d), Some(e)) = (d, epoch) {
                release_all(&parts, d, e).await;
            }
            leave_all(&parts).await;
            return;
        }
        if let (Some(d), Some(e), Standing::Held) = (d, epoch, view.standing()) {
            match round(&parts, d, e).await {
                // Readiness waits for the first completed pass of a session.
                Ok(()) => view.write().claimed_in = Some(e),
                Err(e) => {
                    tracing::debug!(error = %e, "cluster: a claim round failed");
                    db.forget();
                }
            }
        }
        OWNED.store(parts.store.held().len() as u64, Ordering::Relaxed);
        pause(t.claim_every, &mut stop).await;
    }
}

/// Writes a listing into the view: the other live nodes, and who owns what.
fn show(view: &ClusterView, listing: &Listing) {
    let me = view.node_id();
    let peers = listing
        .nodes
        .iter()
        .filter(|n| n.node != me)
        .map(|n| Peer {
            id: n.node.clone(),
            epoch: n.epoch,
            advertise: n.advertise.clone().unwrap_or_default(),
            summary: n
                .summary
                .clone()
                .and_then(|s| serde_json::from_value::<Summary>(s).ok())
                .unwrap_or_default(),
        })
        .collect();
    let owners = listing
        .accounts
        .iter()
        .filter_map(|a| Some((a.account.clone(), a.owner.as_ref()?.node.clone())))
        .collect();
    let mut s = view.write();
    s.peers = peers;
    s.owners = owners;
    s.listed = Some(listing.accounts.len());
}

/// One round of the claim loop in session `epoch`.
async fn round(p: &NodeParts, db: &mut LeaseDb, epoch: u64) -> Result<(), DbError> {
    let (view, t) = (&p.view, p.timing);
    let listing = within(t.fifth() * 2, db.listing()).await?;
    show(view, &listing);
    let running: BTreeSet<String> = p
        .pool
        .members()
        .await
        .unwrap_or_default()
        .into_iter()
        .collect();
    let Plan {
        leave,
        release,
        claim,
        adopt,
    } = plan(&listing, view.node_id(), epoch, &running);
    let ids: Vec<String> = leave
        .iter()
        .chain(release.iter().map(|r| &r.0))
        .cloned()
        .collect();
    leave_each(p, &ids).await;
    let me = view.node_id();
    for (id, owner_gen) in release {
        match within(t.fifth(), db.release(&id, me, epoch, owner_gen)).await? {
            Ok(()) => {
                RELEASES.fetch_add(1, Ordering::Relaxed);
                view.write().owners.remove(&id);
                tracing::info!(account = %id, "cluster: released to the node that should own it");
            }
            // Next round adopts it again if it is still ours.
            Err(r) => tracing::debug!(account = %id, refusal = %r, "cluster: release refused"),
        }
    }
    for (id, seen_gen) in claim {
        if view.standing() != Standing::Held {
            break;
        }
        match within(t.fifth(), db.claim(&id, me, epoch, seen_gen, None)).await {
            Ok(Ok(c)) => {
                CLAIMS.granted.fetch_add(1, Ordering::Relaxed);
                view.write().owners.insert(id.clone(), me.to_owned());
                if c.ambiguous {
                    tracing::warn!(account = %id, "cluster: claimed an account whose last refresh may have used its refresh token: it is not refreshed until fresh tokens are imported");
                }
                run_actor(p, &id, c.owner_gen, c.ambiguous).await;
            }
            Ok(Err(r)) => {
                CLAIMS.refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(account = %id, refusal = %r, "cluster: claim refused");
            }
            Err(e) => {
                CLAIMS.failed.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        }
    }
    let ambiguous = |id: &str| {
        listing
            .accounts
            .iter()
            .any(|a| a.account == id && a.refresh_ambiguous)
    };
    for (id, owner_gen) in adopt {
        run_actor(p, &id, owner_gen, ambiguous(&id)).await;
    }
    reload_imported(p, &listing, &running).await;
    Ok(())
}

/// Accounts this node runs whose token version or record generation moved without this
/// node's copy (an import through any node: fresh tokens, or only a label or identity): their
/// actors reload the record (docs/cluster.md "Imports", "Tokens imported on another node").
async fn reload_imported(p: &NodeParts, listing: &Listing, running: &BTreeSet<String>) {
    let Some(fence) = &p.fence else { return };
    for a in &listing.accounts {
        let moved = |a: &Ownership| {
            fence.moved_elsewhere(&a.account, a.token_version)
                || p.store.record_moved(&a.account, a.record_gen)
        };
        if running.contains(&a.account) && moved(a) {
            match p.pool.reload(&a.account).await {
                Ok(merged) => {
                    tracing::info!(account = %a.account, ?merged, "cluster: an import through a node (tokens, label or identity) was picked up")
                }
                Err(e) => {
                    tracing::warn!(account = %a.account, error = %e, "cluster: could not reload the account")
                }
            }
        }
    }
}

/// Holds `owner_gen` for `id`, loads its record and has the pool run its actor; `ambiguous`:
/// the store says the account is `refresh_ambiguous`, and so does the adopted record.
async fn run_actor(p: &NodeParts, id: &str, owner_gen: u64, ambiguous: bool) {
    p.store.hold(id, owner_gen);
    match p.store.load(id) {
        Ok(Some(mut rec)) => {
            rec.refresh_ambiguous |= ambiguous;
            if let Err(e) = p.pool.adopt(rec).await {
                tracing::error!(account = %id, error = %e, "cluster: could not start the claimed account");
            }
        }
        Ok(None) => tracing::warn!(account = %id, "cluster: the claimed account has no record"),
        Err(e) => {
            tracing::warn!(account = %id, error = %e, "cluster: could not load the claimed account; retrying next round")
        }
    }
}

/// Stops the actors of `ids` together (each drains its leases within a fifth of the TTL)
/// and gives up their generations.
async fn leave_each(p: &NodeParts, ids: &[String]) {
    let drain = p.timing.fifth();
    futures::future::join_all(ids.iter().map(|id| async move {
        let _ = p.pool.leave(id, drain).await;
    }))
    .await;
    for id in ids {
        p.store.unhold(id);
    }
}

/// Every running actor leaves (a lost session, shutdown).
async fn leave_all(p: &NodeParts) {
    let ids = p.pool.members().await.unwrap_or_default();
    leave_each(p, &ids).await;
    for id in p.store.held() {
        p.store.unhold(&id);
    }
    OWNED.store(0, Ordering::Relaxed);
}

/// Releases every account this session owns (planned shutdown), each after its actor
/// stopped.
async fn release_all(p: &NodeParts, db: &mut LeaseDb, epoch: u64) {
    let t = p.timing;
    let Ok(listing) = within(t.fifth() * 2, db.listing()).await else {
        return;
    };
    let me = p.view.node_id();
    let mine: Vec<(String, u64)> = listing
        .accounts
        .iter()
        .filter(|a| {
            !a.refreshing
                && a.owner
                    .as_ref()
                    .is_some_and(|o| o.node == me && o.epoch == epoch)
        })
        .map(|a| (a.account.clone(), a.owner_gen))
        .collect();
    let ids: Vec<String> = mine.iter().map(|m| m.0.clone()).collect();
    leave_each(p, &ids).await;
    // One bound for every release: one per account would be as many fifths of the TTL
    // behind a database that stopped answering.
    let mut released = 0;
    let all = async {
        for (id, owner_gen) in mine {
            if let Ok(Ok(())) = db.release(&id, me, epoch, owner_gen).await {
                released += 1;
                RELEASES.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    };
    let outcome = within(t.fifth(), all).await;
    if let Err(e) = outcome {
        tracing::warn!(released, error = %e, "cluster: releasing the accounts did not finish; the rest lapse with the session");
        return;
    }
    tracing::info!(released, "cluster: accounts released for the other nodes");
}
