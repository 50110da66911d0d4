//! Pool membership in one structure: the running account actors by id and by actor cell, the
//! board's references to them and the ticker's. The supervisor changes membership only through
//! [`Members::insert`] and [`Members::remove`], so the places that know an actor cannot
//! disagree about which actors run, whether an account was forgotten, failed or stopped.

use std::collections::HashMap;

use ractor::ActorId;

use super::board::SharedBoard;
use super::ticker::Ticker;
use crate::AccountId;
use crate::account::AccountRef;
use crate::rotation::Candidate;

/// Why an account's actor leaves the pool, which decides what the board keeps of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaving {
    /// The operator removed the account: nothing of it stays (view, affinities).
    Forgotten,
    /// The actor failed and is restarted after a backoff: the view keeps the account, not
    /// serving and without leases, so the pool summary still counts it.
    Failed,
    /// The actor stopped: the account leaves the view.
    Stopped,
}

/// The running account actors and every structure that refers to them.
pub struct Members {
    /// Running actor of every account.
    by_id: HashMap<AccountId, AccountRef>,
    /// Which account a supervision event's actor cell belongs to.
    by_cell: HashMap<ActorId, AccountId>,
    /// The board the handles pick from (its `refs` and `view`).
    board: SharedBoard,
    /// The pool-wide ticker.
    ticker: Ticker,
}

impl Members {
    /// No members yet, on `board`, ticked by `ticker`.
    pub fn new(board: SharedBoard, ticker: Ticker) -> Self {
        Members {
            by_id: HashMap::new(),
            by_cell: HashMap::new(),
            board,
            ticker,
        }
    }

    /// True iff the account has a running actor.
    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// The running actor of an account.
    pub fn get(&self, id: &str) -> Option<&AccountRef> {
        self.by_id.get(id)
    }

    /// Every running actor, by account id.
    pub fn sorted(&self) -> Vec<(AccountId, AccountRef)> {
        let mut refs: Vec<_> = self
            .by_id
            .iter()
            .map(|(id, r)| (id.clone(), r.clone()))
            .collect();
        refs.sort_by(|a, b| a.0.cmp(&b.0));
        refs
    }

    /// The member whose actor ran in `cell` leaves the pool ([`remove`](Self::remove));
    /// returns its account, `None` if the cell is no member's (any more).
    pub fn remove_cell(&mut self, cell: &ActorId, why: Leaving) -> Option<AccountId> {
        let id = self.by_cell.remove(cell)?;
        self.remove(&id, why);
        Some(id)
    }

    /// The account's actor now runs: the board can reach it and the ticker ticks it.
    pub fn insert(&mut self, id: AccountId, actor: AccountRef) {
        self.by_cell.insert(actor.get_id(), id.clone());
        self.ticker.add(&id, actor.clone());
        self.board.lock().refs.insert(id.clone(), actor.clone());
        self.by_id.insert(id, actor);
    }

    /// The account's actor leaves the pool for the reason given; returns it if it was a
    /// member. The ticker drops the actor by itself once it takes no more messages.
    pub fn remove(&mut self, id: &str, why: Leaving) -> Option<AccountRef> {
        let actor = self.by_id.remove(id);
        if let Some(a) = &actor {
            self.by_cell.remove(&a.get_id());
        }
        let mut b = self.board.lock();
        b.refs.remove(id);
        match why {
            Leaving::Forgotten => {
                b.view.remove(id);
                b.affinity.forget_account(id);
            }
            Leaving::Failed => {
                if let Some(c) = b.view.get(id).cloned() {
                    b.view.upsert(Candidate {
                        serving: false,
                        leases: 0,
                        ..c
                    });
                }
            }
            Leaving::Stopped => {
                b.view.remove(id);
            }
        }
        actor
    }
}
