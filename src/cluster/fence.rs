//! The refresh fence on PostgreSQL (docs/cluster.md "Refresh under fencing"): the account
//! actors' [`RefreshFence`] over the ownership rows. Before the token endpoint is called, the
//! node must hold its session with a local deadline beyond the whole refresh window
//! ([`ClusterView::may_refresh`]) — only then is `begin_refresh` even sent — and the database
//! commits the intent only if the session outlives the intent's deadline on the database's
//! clock. The rotation is stored by `finish_refresh`, a compare-and-set on the owner generation
//! this node holds the account at ([`PgStore::held_at`]), the intent and the token version the
//! intent was begun with; a refresh that stored nothing is abandoned, marking the account
//! `refresh_ambiguous` if its call may have reached upstream. Fresh tokens imported into an
//! account give it a new token version and clear its ambiguity (`import_tokens`).
//!
//! The fence has its own connection ([`LeaseDb`] on a [`Redialer`]), so a refresh never
//! waits behind the lease loop's statements, nor the loop behind a refresh; once the database
//! closed it (a restart, a cut), the next operation connects again. A finish whose answer was
//! lost with the connection is simply sent again: the store recognises the rotation it already
//! stored (`Rules::finish_refresh`), so the owner keeps the account. A begin whose answer was
//! lost is sent again too, with the nonce it carried: the store hands back the intent that
//! begin committed (`Rules::begin_refresh`) instead of refusing it as a refresh in flight,
//! which would have held the account's refreshes until a takeover (and left the account
//! ambiguous after it). So is the next begin after a lost abandon of a call that used no
//! token: its intent is as unused.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rotor_actors::ownership::Ms;
use rotor_actors::ownership::rules::{Intent, Refusal};
use rotor_actors::{BoxFuture, FenceRefusal, FenceTicket, RefreshFence};
use tokio::sync::Mutex;

use super::ClusterView;
use crate::config::cluster::ClusterConfig;
use crate::store::postgres::records::PgStore;
use crate::store::postgres::redial::unanswered;
use crate::store::postgres::{DbError, LeaseDb, Redialer};

/// How long each part of a fenced refresh may take; the window is their sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The token endpoint call (the actor gives up on it after this).
    pub call: Duration,
    /// Storing the new tokens and finishing the intent.
    pub persist: Duration,
    /// Clock-rate error between the node and the database.
    pub margin: Duration,
}

impl Window {
    /// The window a cluster of `cfg`'s TTL allows: the call may take 2/5 of the TTL and the
    /// writes 1/10, plus the margin — so a node renewing every TTL/5 can always begin one
    /// (TTL 10 s: a 4 s call, a 6 s window).
    pub fn of(cfg: &ClusterConfig) -> Self {
        Window {
            call: cfg.ttl * 2 / 5,
            persist: cfg.ttl / 10,
            margin: cfg.margin,
        }
    }

    /// The bound on one fence operation as a whole (waiting for the fence's connection,
    /// opening it again, the transaction): the writes' share. A finish must land within it
    /// anyway, and a begin that took longer would leave its call less than its share before
    /// the intent's deadline.
    pub fn op_timeout(&self) -> Duration {
        self.persist
    }

    /// The whole window, in ms.
    pub fn total_ms(&self) -> Ms {
        (self.call + self.persist + self.margin).as_millis() as Ms
    }
}

/// The fence of one node. The token version each account's tokens here stand at is the
/// store's ([`PgStore::token_version`]): set when the record is loaded, moved on by this
/// fence's finishes and imports.
pub struct PgFence {
    /// The fence's own connection, opened again once the database closed it.
    db: Arc<Mutex<Redialer<LeaseDb>>>,
    view: Arc<ClusterView>,
    store: Arc<PgStore>,
    window: Window,
    /// The nonce of each account's intent that may stand with nothing called under it: a
    /// begin that went unanswered (it may have committed), or an abandon of a call that used no
    /// token that went unanswered (it may not have landed). The next begin of that account
    /// sends the nonce again and takes the intent over.
    unused: Arc<Unused>,
}

/// The nonces of `PgFence::unused`, by account.
#[derive(Default)]
struct Unused(std::sync::Mutex<HashMap<String, u64>>);

impl Unused {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The nonce for `account`'s next begin: the one noted, else a fresh one (never 0, which
    /// stands for "no nonce").
    fn nonce_for(&self, account: &str) -> u64 {
        let noted = self.map().get(account).copied();
        noted.unwrap_or_else(|| rand::random::<u64>().max(1))
    }

    /// Notes (`Some`) or forgets (`None`) the nonce of `account`'s intent that may stand unused.
    fn note(&self, account: &str, nonce: Option<u64>) {
        match nonce {
            Some(n) => self.map().insert(account.to_owned(), n),
            None => self.map().remove(account),
        };
    }
}

/// Runs `op` on the fence's connection — waiting for it, opening it again if the database
/// closed it, and the op's transaction — all within `bound` ([`Window::op_timeout`]). Past it
/// the connection is dropped (behind a stalled network it would answer nothing more; the next
/// op opens a new one) and the op fails as a database that did not answer: nothing is known to
/// have changed, so a begin counts as not begun and a finish is sent again.
async fn within<T>(
    db: &Mutex<Redialer<LeaseDb>>,
    bound: Duration,
    op: impl AsyncFnOnce(&mut LeaseDb) -> Result<T, DbError>,
) -> Result<T, DbError> {
    let deadline = tokio::time::Instant::now() + bound;
    let Ok(mut link) = tokio::time::timeout_at(deadline, db.lock()).await else {
        return Err(unanswered());
    };
    link.within(deadline, op).await
}

impl PgFence {
    /// A fence on a connection of its own to `url` (its opening and lock waits bounded by
    /// `bound`), for the node of `view`, writing at the generations `store` holds; it opens
    /// the connection now, and again, within `bound`, whenever the database closed it.
    pub async fn connect(
        url: &str,
        bound: Duration,
        view: Arc<ClusterView>,
        store: Arc<PgStore>,
        window: Window,
    ) -> Result<Self, DbError> {
        let mut db = Redialer::new(url, bound, "the refresh fence");
        db.ready().await?;
        Ok(PgFence {
            db: Arc::new(Mutex::new(db)),
            view,
            store,
            window,
            unused: Arc::default(),
        })
    }

    /// True if the token version the store lists for `account` moved past the one this
    /// node's copy stands at: fresh tokens were imported through another node (or through
    /// this one's admin API, which writes to the database too), and the owner reloads the
    /// record (`PoolHandle::reload`, which reads the version with it) — until it has, this
    /// stays true. An account whose version this node never learnt only notes it.
    pub fn moved_elsewhere(&self, account: &str, listed: u64) -> bool {
        match self.store.token_version(account) {
            Some(v) => listed > v,
            None => {
                self.store.note_version(account, listed);
                false
            }
        }
    }
}

/// A database failure: nothing is known to have changed; try again later.
fn later(e: DbError) -> FenceRefusal {
    FenceRefusal::Later(e.to_string())
}

fn intent_of(t: &FenceTicket) -> Intent {
    Intent {
        intent_gen: t.intent_gen,
        deadline: t.deadline,
        token_version: t.token_version,
        nonce: t.nonce,
    }
}

impl RefreshFence for PgFence {
    fn call_timeout(&self) -> Option<Duration> {
        Some(self.window.call)
    }

    fn begin(&self, account: &str) -> BoxFuture<'static, Result<FenceTicket, FenceRefusal>> {
        let (db, view, window) = (self.db.clone(), self.view.clone(), self.window);
        let (store, unused) = (self.store.clone(), self.unused.clone());
        let (account, held) = (account.to_owned(), self.store.held_at(account));
        let nonce = self.unused.nonce_for(&account);
        Box::pin(async move {
            let Some(epoch) = view.epoch() else {
                return Err(FenceRefusal::Later("the node holds no session".into()));
            };
            let Some(owner_gen) = held else {
                return Err(FenceRefusal::Lost(
                    "this node does not hold the account".into(),
                ));
            };
            if !view.may_refresh(window.total_ms()) {
                return Err(FenceRefusal::Later(
                    "the node's lease does not outlive the refresh window".into(),
                ));
            }
            let node = view.node_id().to_owned();
            let bound = window.op_timeout();
            let verdict = within(&db, bound, async |d| {
                let window = window.total_ms();
                d.begin_refresh(&account, &node, epoch, owner_gen, nonce, window, None)
                    .await
            })
            .await;
            // Unanswered: the intent may stand, committed, and nothing was called under it;
            // the next begin sends this nonce again and takes it over. Answered: the next
            // begin is a new one.
            unused.note(&account, verdict.is_err().then_some(nonce));
            let verdict = verdict.map_err(later)?;
            match verdict {
                Ok(i)
                    if store
                        .token_version(&account)
                        .is_some_and(|v| v != i.token_version) =>
                {
                    // The store's tokens are not the ones this node holds (imported elsewhere,
                    // not reloaded yet): refreshing these would put old tokens back. Nothing
                    // was called; the claim loop reloads the account first.
                    let abandoned = within(&db, bound, async |d| {
                        d.abandon_refresh(&account, &node, epoch, owner_gen, &i, false)
                            .await
                    })
                    .await;
                    unused.note(&account, abandoned.is_err().then_some(i.nonce));
                    Err(FenceRefusal::Later(
                        "fresh tokens were imported through another node; the account \
                         reloads them first"
                            .into(),
                    ))
                }
                Ok(i) => {
                    store.note_version(&account, i.token_version);
                    Ok(FenceTicket {
                        intent_gen: i.intent_gen,
                        deadline: i.deadline,
                        token_version: i.token_version,
                        nonce: i.nonce,
                        owner_gen,
                        epoch,
                    })
                }
                Err(Refusal::Ambiguous) => Err(FenceRefusal::Ambiguous),
                Err(r @ (Refusal::NotOwner | Refusal::UnknownAccount)) => {
                    Err(FenceRefusal::Lost(r.to_string()))
                }
                Err(r) => Err(FenceRefusal::Later(r.to_string())),
            }
        })
    }

    fn finish(
        &self,
        account: &str,
        ticket: FenceTicket,
    ) -> BoxFuture<'static, Result<(), FenceRefusal>> {
        let (db, node, account) = (
            self.db.clone(),
            self.view.node_id().to_owned(),
            account.to_owned(),
        );
        let (store, bound) = (self.store.clone(), self.window.op_timeout());
        Box::pin(async move {
            let verdict = within(&db, bound, async |d| {
                let intent = intent_of(&ticket);
                d.finish_refresh(&account, &node, ticket.epoch, ticket.owner_gen, &intent)
                    .await
            })
            .await
            .map_err(later)?;
            // Any refusal: the account moved on without this rotation (another owner, an
            // import): this node's tokens must not be used.
            let version = verdict.map_err(|r| FenceRefusal::Lost(r.to_string()))?;
            store.note_version(&account, version);
            Ok(())
        })
    }

    fn abandon(
        &self,
        account: &str,
        ticket: FenceTicket,
        reached_upstream: bool,
    ) -> BoxFuture<'static, Result<(), FenceRefusal>> {
        let (db, node, account) = (
            self.db.clone(),
            self.view.node_id().to_owned(),
            account.to_owned(),
        );
        let (bound, unused) = (self.window.op_timeout(), self.unused.clone());
        Box::pin(async move {
            let verdict = within(&db, bound, async |d| {
                let intent = intent_of(&ticket);
                d.abandon_refresh(
                    &account,
                    &node,
                    ticket.epoch,
                    ticket.owner_gen,
                    &intent,
                    reached_upstream,
                )
                .await
            })
            .await;
            // A call that used no token, its abandon unanswered: the intent may stand, and it
            // is as unused as a lost begin's (one that reached upstream stands until a
            // takeover marks the account ambiguous, as it must).
            if verdict.is_err() && !reached_upstream {
                unused.note(&account, Some(ticket.nonce));
            }
            let verdict = verdict.map_err(later)?;
            if let Err(r) = &verdict {
                tracing::info!(%account, refusal = %r, "the abandoned refresh's intent was already gone");
            }
            verdict.map_err(|r| FenceRefusal::Lost(r.to_string()))
        })
    }

    fn imported(&self, account: &str) -> BoxFuture<'static, Result<(), FenceRefusal>> {
        let (db, account, store) = (self.db.clone(), account.to_owned(), self.store.clone());
        let bound = self.window.op_timeout();
        Box::pin(async move {
            let verdict = within(&db, bound, async |d| d.import_tokens(&account).await)
                .await
                .map_err(later)?;
            let version = verdict.map_err(|r| FenceRefusal::Lost(r.to_string()))?;
            store.note_version(&account, version);
            Ok(())
        })
    }
}
