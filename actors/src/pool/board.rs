//! The availability board: the view of every account's pushed availability, the account actors'
//! references and the conversation affinities, shared by the supervisor, the accounts and every
//! `PoolHandle`. A pick reads it under a short lock and goes straight to the chosen actor's
//! `Reserve`, so the hot path is one mailbox round trip, not two, and the accounts' pushes do
//! not queue in the supervisor's mailbox ahead of picks. The supervisor still owns membership
//! (spawn, restart, remove); the board is a hint and the actor's `Reserve` has the last word.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::affinity::Affinity;
use super::{AffinityShare, PickRequest};
use crate::account::AccountRef;
use crate::rotation::{Candidate, Cooling, NoChoice, Policy, View};
use crate::{AccountId, UnixMs, quota};

/// How many candidates a pick returns to try in order.
pub const PICK_CANDIDATES: usize = 4;

/// What the board holds.
pub struct Board {
    /// Last pushed availability of every account (seeded at spawn), ordered by strategy.
    pub view: View,
    /// Running account actors; a candidate without one (restarting) is skipped.
    pub refs: HashMap<AccountId, AccountRef>,
    /// Conversation key → account that served it last.
    pub affinity: Affinity,
    /// Who else is told of each affinity a granted lease records (a cluster node's shared
    /// table); `None` on a single node.
    pub share: Option<Arc<dyn AffinityShare>>,
}

/// The board shared by supervisor, accounts and handles. Every critical section is short
/// (O(log n) view work, no awaiting, no I/O).
#[derive(Clone)]
pub struct SharedBoard(Arc<Mutex<Board>>);

impl SharedBoard {
    /// An empty board whose view is ordered by `view`'s strategy.
    pub fn new(view: View) -> Self {
        SharedBoard(Arc::new(Mutex::new(Board {
            view,
            refs: HashMap::new(),
            affinity: Affinity::default(),
            share: None,
        })))
    }

    /// Locks the board. A panic while holding it cannot leave it half-updated in a way that
    /// matters (it is a hint), so a poisoned lock is used as is.
    pub fn lock(&self) -> MutexGuard<'_, Board> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An account pushed its availability; ignored unless the account is on the board (seeded
    /// at spawn, gone after removal), so a late push cannot resurrect a removed account.
    pub fn push(&self, c: Candidate) {
        let _ = self.lock().view.update(c);
    }
}

/// The accounts to try for a request, best first, with their actors, and whether they were
/// chosen through their Cloudflare cooldowns (for their `Reserve`): only when the pool has
/// nothing better ([`View::pick_or_cooling`]).
pub fn candidates(
    board: &SharedBoard,
    routes: &[(String, Vec<String>)],
    req: &PickRequest,
    now: UnixMs,
) -> Result<(Cooling, Vec<(AccountId, AccountRef)>), NoChoice> {
    let plans = routes
        .iter()
        .find(|(prefix, _)| starts_with_ignore_case(&req.model, prefix))
        .map(|(_, plans)| plans.clone());
    let mut policy = Policy {
        model_limit: quota::limit_for_model(&req.model).map(str::to_string),
        review: req.review,
        plans,
        exclude: req.exclude.clone(),
        affinity: None,
        cooling: Cooling::Avoid,
    };
    let mut b = board.lock();
    policy.affinity = req.affinity.as_deref().and_then(|k| b.affinity.get(k, now));
    let ids = b.view.pick_or_cooling(&mut policy, now, PICK_CANDIDATES)?;
    let actors = ids
        .into_iter()
        .filter_map(|id| b.refs.get(&id).cloned().map(|r| (id, r)))
        .collect();
    Ok((policy.cooling, actors))
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_route_prefixes_match_case_insensitively() {
        assert!(starts_with_ignore_case("GPT-5.5-pro", "gpt-5.5"));
        assert!(!starts_with_ignore_case("gpt", "gpt-5.5"));
        assert!(!starts_with_ignore_case("o3", "gpt"));
    }
}
