//! The cluster ownership rules (`rotor_actors::ownership`) under a fake clock, with random
//! interleavings of three nodes that renew late, pause past their TTL, resume as zombies,
//! claim each other's accounts, refresh, release and import (docs/cluster.md). After every
//! step: no refresh token version is used twice, a node that believes it holds its session
//! really does in the store, and a zombie's late writes are refused.

use proptest::prelude::*;
use rotor_actors::ownership::placement::owner_of;
use rotor_actors::ownership::rules::{Intent, Refusal, Rules};
use rotor_actors::ownership::session::{SessionLease, Standing};
use rotor_actors::ownership::{Ms, NodeId};
use std::collections::{BTreeMap, BTreeSet};

const TTL: Ms = 10_000;
const MARGIN: Ms = 1_000;
/// HTTP timeout + persistence + margin of one refresh.
const WINDOW: Ms = 3_000;
const ACCOUNTS: [&str; 3] = ["a0", "a1", "a2"];

/// One node as the test drives it.
#[derive(Debug)]
struct Node {
    id: NodeId,
    /// Its monotonic clock runs at the store's rate from another origin.
    offset: Ms,
    lease: SessionLease,
    paused: bool,
    /// Accounts it believes it owns, with the owner generation it claimed them at.
    owned: BTreeMap<String, u64>,
    /// A refresh it began: the intent, and whether the token endpoint was called yet.
    refreshing: Option<(String, Intent, bool)>,
    /// The last rotation it stored: account, intent, owner generation (sent again when its
    /// answer is lost).
    finished: Option<(String, Intent, u64)>,
    /// The nonce of each account's last begin whose answer it never got; its next begin of
    /// that account is the same begin sent again.
    unanswered: BTreeMap<String, u64>,
}

#[derive(Debug, Clone)]
enum Op {
    /// The node does its next natural step (acquire or renew when due, else carry its refresh
    /// on, else claim or refresh `account`), with these delays and outcome.
    Act {
        node: usize,
        to_store: Ms,
        back: Ms,
        account: usize,
        timed_out: bool,
    },
    Tick(Ms),
    Renew {
        node: usize,
        to_store: Ms,
        back: Ms,
    },
    Claim {
        node: usize,
        account: usize,
    },
    BeginRefresh {
        node: usize,
        account: usize,
    },
    /// A begin whose answer is lost: it committed in the store, or never arrived.
    BeginLost {
        node: usize,
        account: usize,
        committed: bool,
    },
    CallUpstream {
        node: usize,
    },
    Finish {
        node: usize,
        timed_out: bool,
    },
    /// The answer to the node's last accepted finish was lost: it sends the finish again.
    FinishAgain {
        node: usize,
    },
    /// The node gives its refresh up and tells the store, which never hears it (an abandon
    /// lost with the connection): the intent stands. If the call was made it may have consumed
    /// the token; if not, the node's next begin takes the intent over by its nonce.
    AbandonLost {
        node: usize,
    },
    Release {
        node: usize,
        account: usize,
    },
    Pause {
        node: usize,
    },
    Resume {
        node: usize,
    },
    Import {
        account: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let n = 0usize..3;
    let a = 0usize..ACCOUNTS.len();
    prop_oneof![
        12 => (n.clone(), 0 as Ms..1_500, 0 as Ms..1_500, a.clone(), proptest::bool::weighted(0.2))
            .prop_map(|(node, to_store, back, account, timed_out)| Op::Act {
                node,
                to_store,
                back,
                account,
                timed_out,
            }),
        3 => (1 as Ms..4_000).prop_map(Op::Tick),
        1 => (n.clone(), 0 as Ms..2_000, 0 as Ms..2_000).prop_map(|(node, to_store, back)| Op::Renew {
            node,
            to_store,
            back
        }),
        1 => (n.clone(), a.clone()).prop_map(|(node, account)| Op::Claim { node, account }),
        1 => (n.clone(), a.clone()).prop_map(|(node, account)| Op::BeginRefresh { node, account }),
        1 => (n.clone(), a.clone(), any::<bool>())
            .prop_map(|(node, account, committed)| Op::BeginLost { node, account, committed }),
        1 => n.clone().prop_map(|node| Op::AbandonLost { node }),
        1 => n.clone().prop_map(|node| Op::CallUpstream { node }),
        1 => (n.clone(), any::<bool>()).prop_map(|(node, timed_out)| Op::Finish { node, timed_out }),
        1 => n.clone().prop_map(|node| Op::FinishAgain { node }),
        1 => (n.clone(), a.clone()).prop_map(|(node, account)| Op::Release { node, account }),
        1 => n.clone().prop_map(|node| Op::Pause { node }),
        1 => n.prop_map(|node| Op::Resume { node }),
        1 => a.prop_map(|account| Op::Import { account }),
    ]
}

/// The world: the store, the clock, the nodes and what the token endpoint saw.
struct World {
    store: Rules,
    now: Ms,
    nodes: Vec<Node>,
    /// Calls of the token endpoint per (account, token version).
    uses: BTreeMap<(String, u64), u32>,
    /// Claims that succeeded, per account, in order: (node, owner_gen).
    claims: BTreeMap<String, Vec<(NodeId, u64)>>,
    /// The last nonce drawn (every begin draws a new one unless it is sent again).
    nonces: u64,
}

impl World {
    fn new() -> Self {
        let mut store = Rules::default();
        for a in ACCOUNTS {
            store.insert_account(a);
        }
        let nodes = (0..3)
            .map(|i| Node {
                id: format!("node-{i}"),
                offset: 1_000_000 * (i as Ms + 1),
                lease: SessionLease::new(TTL, MARGIN),
                paused: false,
                owned: BTreeMap::new(),
                refreshing: None,
                finished: None,
                unanswered: BTreeMap::new(),
            })
            .collect();
        Self {
            store,
            now: 0,
            nodes,
            uses: BTreeMap::new(),
            claims: BTreeMap::new(),
            nonces: 0,
        }
    }

    fn local(&self, n: usize) -> Ms {
        self.now + self.nodes[n].offset
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Act {
                node,
                to_store,
                back,
                account,
                timed_out,
            } => {
                let local = self.local(node);
                let n = &self.nodes[node];
                if n.lease.standing(local) == Standing::Unacquired || local >= n.lease.renew_due() {
                    return self.step(&Op::Renew {
                        node,
                        to_store,
                        back,
                    });
                }
                if let Some((_, _, called)) = &n.refreshing {
                    return self.step(&if *called {
                        Op::Finish { node, timed_out }
                    } else {
                        Op::CallUpstream { node }
                    });
                }
                if n.owned.contains_key(ACCOUNTS[account]) {
                    self.step(&Op::BeginRefresh { node, account })
                } else {
                    self.step(&Op::Claim { node, account })
                }
            }
            Op::Tick(dt) => self.now += dt,
            Op::Renew {
                node,
                to_store,
                back,
            } => {
                if self.nodes[node].paused {
                    return;
                }
                let ticket = self.nodes[node].lease.sending(self.local(node));
                self.now += to_store;
                let id = self.nodes[node].id.clone();
                let answer = match self.nodes[node].lease.epoch() {
                    Some(epoch) => self
                        .store
                        .renew(&id, epoch, TTL, self.now)
                        .map(|left| (epoch, left)),
                    None => self.store.acquire(&id, TTL, self.now).map(|e| (e, TTL)),
                };
                self.now += back;
                match answer {
                    Ok((epoch, left)) => self.nodes[node].lease.granted(ticket, epoch, left),
                    Err(Refusal::SessionLost) => {
                        let n = &mut self.nodes[node];
                        n.lease.lost();
                        n.owned.clear();
                    }
                    Err(_) => {}
                }
            }
            Op::Claim { node, account } => {
                let local = self.local(node);
                let n = &self.nodes[node];
                let Some(epoch) = n.lease.epoch() else { return };
                if n.paused || n.lease.standing(local) != Standing::Held {
                    return;
                }
                let acct = ACCOUNTS[account];
                let seen = self.store.accounts[acct].owner_gen;
                let id = n.id.clone();
                if let Ok(c) = self.store.claim(acct, &id, epoch, seen, self.now) {
                    self.claims
                        .entry(acct.to_owned())
                        .or_default()
                        .push((id, c.owner_gen));
                    self.nodes[node].owned.insert(acct.to_owned(), c.owner_gen);
                }
            }
            Op::BeginRefresh { node, account } => self.begin(node, account, None),
            Op::BeginLost {
                node,
                account,
                committed,
            } => self.begin(node, account, Some(committed)),
            Op::CallUpstream { node } => {
                // A paused node sends nothing; once resumed it sends even past its deadline —
                // the check before the call may have happened just before the pause.
                let n = &mut self.nodes[node];
                if n.paused {
                    return;
                }
                if let Some((acct, intent, called)) = &mut n.refreshing
                    && !*called
                {
                    *called = true;
                    *self
                        .uses
                        .entry((acct.clone(), intent.token_version))
                        .or_default() += 1;
                }
            }
            Op::Finish { node, timed_out } => {
                let n = &self.nodes[node];
                if n.paused {
                    return;
                }
                let Some((acct, intent, called)) = n.refreshing.clone() else {
                    return;
                };
                let id = n.id.clone();
                let epoch = n.lease.epoch().unwrap_or(0);
                let og = n.owned.get(&acct).copied().unwrap_or(0);
                let began_at_gen = og;
                let r = if called && !timed_out {
                    self.store
                        .finish_refresh(&acct, &id, epoch, og, &intent)
                        .map(|_| ())
                } else {
                    self.store
                        .abandon_refresh(&acct, &id, epoch, og, &intent, called)
                };
                if r.is_ok() {
                    // Accepted only if nobody claimed the account after this node did.
                    let last = self.claims[&acct].last().cloned();
                    assert_eq!(
                        last,
                        Some((id.clone(), began_at_gen)),
                        "a write of {id} on {acct} accepted after a takeover"
                    );
                    if called && !timed_out {
                        self.nodes[node].finished = Some((acct.clone(), intent.clone(), og));
                    }
                }
                self.nodes[node].refreshing = None;
            }
            Op::FinishAgain { node } => {
                let n = &self.nodes[node];
                let Some((acct, intent, og)) = n.finished.clone() else {
                    return;
                };
                if n.paused {
                    return;
                }
                let (id, epoch) = (n.id.clone(), n.lease.epoch().unwrap_or(0));
                let before = self.store.clone();
                if self
                    .store
                    .finish_refresh(&acct, &id, epoch, og, &intent)
                    .is_ok()
                {
                    assert_eq!(
                        self.store.accounts, before.accounts,
                        "a finish sent again changed the store"
                    );
                    let last = self.claims[&acct].last().cloned();
                    assert_eq!(
                        last,
                        Some((id, og)),
                        "a resent finish accepted after a takeover"
                    );
                }
            }
            Op::Release { node, account } => {
                let n = &self.nodes[node];
                let acct = ACCOUNTS[account];
                let (Some(epoch), Some(&og)) = (n.lease.epoch(), n.owned.get(acct)) else {
                    return;
                };
                if n.paused || n.refreshing.as_ref().is_some_and(|(a, _, _)| a == acct) {
                    return;
                }
                let id = n.id.clone();
                if self.store.release(acct, &id, epoch, og).is_ok() {
                    self.nodes[node].owned.remove(acct);
                }
            }
            Op::AbandonLost { node } => {
                let n = &mut self.nodes[node];
                if n.paused {
                    return;
                }
                // A call that used no token: the intent, if it stands, is unused, and the next
                // begin takes it over (as after a lost begin).
                if let Some((acct, intent, false)) = n.refreshing.take() {
                    n.unanswered.insert(acct, intent.nonce);
                }
            }
            Op::Pause { node } => self.nodes[node].paused = true,
            Op::Resume { node } => self.nodes[node].paused = false,
            Op::Import { account } => {
                let _ = self.store.import_tokens(ACCOUNTS[account]);
            }
        }
    }

    /// A begin of `account` by `node`; `lost`: its answer never comes back (`Some(true)`: it
    /// committed in the store first).
    fn begin(&mut self, node: usize, account: usize, lost: Option<bool>) {
        let local = self.local(node);
        let n = &self.nodes[node];
        let acct = ACCOUNTS[account];
        let (Some(epoch), Some(&og)) = (n.lease.epoch(), n.owned.get(acct)) else {
            return;
        };
        if n.paused || n.refreshing.is_some() || !n.lease.may_refresh(local, WINDOW) {
            return;
        }
        let id = n.id.clone();
        // The node's own check must imply the store's: its session outlives the window.
        let expiry = self.store.sessions[&id].expires_at;
        assert!(
            expiry > self.now + WINDOW,
            "{id} thinks it may refresh but its session lapses at {expiry} (now {})",
            self.now
        );
        let nonce = match n.unanswered.get(acct) {
            Some(&again) => again,
            None => {
                self.nonces += 1;
                self.nonces
            }
        };
        let (deadline, now) = (self.now + WINDOW, self.now);
        let verdict = match lost {
            Some(false) => None,
            _ => Some(
                self.store
                    .begin_refresh(acct, &id, epoch, og, nonce, deadline, now),
            ),
        };
        let n = &mut self.nodes[node];
        if lost.is_some() {
            n.unanswered.insert(acct.to_owned(), nonce);
            return;
        }
        n.unanswered.remove(acct);
        if let Some(Ok(intent)) = verdict {
            n.refreshing = Some((acct.to_owned(), intent, false));
        }
    }

    fn check(&self) {
        for ((acct, version), n) in &self.uses {
            assert!(
                *n <= 1,
                "refresh token v{version} of {acct} sent to the token endpoint {n} times"
            );
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if n.lease.standing(self.local(i)) == Standing::Held {
                let epoch = n.lease.epoch().expect("held means acquired");
                assert!(
                    self.store.session_live(&n.id, epoch, self.now),
                    "{} believes it holds epoch {epoch} but the store let it lapse",
                    n.id
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn interleavings_never_reuse_a_refresh_token_nor_trust_a_lapsed_session(
        ops in proptest::collection::vec(op(), 1..200)
    ) {
        let mut w = World::new();
        for op in &ops {
            w.step(op);
            w.check();
        }
    }

    /// Any number of nodes claiming one expired account at the generation they all read:
    /// exactly one wins, whatever the order.
    #[test]
    fn concurrent_claimers_at_one_generation_never_both_win(
        order in Just((0..5usize).collect::<Vec<_>>()).prop_shuffle()
    ) {
        let mut store = Rules::default();
        store.insert_account("a");
        let epochs: Vec<u64> = (0..5)
            .map(|i| store.acquire(&format!("n{i}"), TTL, 0).expect("acquire"))
            .collect();
        let seen = store.accounts["a"].owner_gen;
        let wins: Vec<usize> = order
            .iter()
            .filter(|&&i| store.claim("a", &format!("n{i}"), epochs[i], seen, 1).is_ok())
            .copied()
            .collect();
        prop_assert_eq!(wins.len(), 1);
        prop_assert_eq!(wins[0], order[0]);
    }
}

/// The zombie, step by step: a node pauses past its TTL with a refresh begun; another node
/// takes the account, finds the expired intent and marks the account ambiguous (it must not
/// reuse the refresh token the zombie may still send); the zombie's late finish is refused.
#[test]
fn a_zombies_late_finish_is_refused_and_the_new_owner_never_reuses_its_token() {
    let mut s = Rules::default();
    s.insert_account("a");
    let e1 = s.acquire("n1", TTL, 0).expect("n1");
    let e2 = s.acquire("n2", TTL, 0).expect("n2");
    let g1 = s.claim("a", "n1", e1, 0, 0).expect("n1 claims").owner_gen;
    let intent = s
        .begin_refresh("a", "n1", e1, g1, 11, WINDOW, 0)
        .expect("begin");
    // n1 pauses; n2 keeps renewing; n1's session lapses at TTL.
    for t in (2_000..=12_000).step_by(2_000) {
        s.renew("n2", e2, TTL, t).expect("n2 renews");
    }
    assert_eq!(
        s.claim("a", "n2", e2, g1, 9_000),
        Err(Refusal::OwnedElsewhere),
        "no takeover before the owner's session lapses"
    );
    let c = s.claim("a", "n2", e2, g1, 12_000).expect("n2 takes over");
    assert!(
        c.ambiguous,
        "an expired intent with an unchanged token version"
    );
    assert_eq!(
        s.begin_refresh("a", "n2", e2, c.owner_gen, 12, 15_000, 12_000),
        Err(Refusal::Ambiguous),
        "the new owner refreshes nothing with the old refresh token"
    );
    // The zombie wakes and stores what its late call returned: refused.
    assert_eq!(
        s.finish_refresh("a", "n1", e1, g1, &intent),
        Err(Refusal::NotOwner)
    );
    assert_eq!(s.renew("n1", e1, TTL, 12_500), Err(Refusal::SessionLost));
    // A re-login (import) clears it; the owner may refresh again.
    s.import_tokens("a").expect("import");
    s.begin_refresh("a", "n2", e2, c.owner_gen, 13, 15_000, 12_000)
        .expect("refresh after the import");
}

/// A finish whose answer was lost (the connection cut after the commit) is sent again: the
/// row still shows exactly that rotation, so it is accepted, changing nothing. It is refused
/// as before when the row moved on: an import since, an import during the refresh (the row
/// then looks the same but for the finished intent), or a takeover.
#[test]
fn a_finish_sent_again_after_its_answer_was_lost_is_accepted_only_for_the_rotation_it_stored() {
    let mut s = Rules::default();
    s.insert_account("a");
    let e1 = s.acquire("n1", TTL, 0).expect("n1");
    let g1 = s.claim("a", "n1", e1, 0, 0).expect("claim").owner_gen;
    let i1 = s
        .begin_refresh("a", "n1", e1, g1, 14, WINDOW, 0)
        .expect("begin");
    let v = s.finish_refresh("a", "n1", e1, g1, &i1).expect("finish");
    let stored = s.accounts["a"].clone();
    assert_eq!(
        s.finish_refresh("a", "n1", e1, g1, &i1),
        Ok(v),
        "sent again"
    );
    assert_eq!(s.accounts["a"], stored, "changing nothing");
    s.import_tokens("a").expect("import");
    assert_eq!(
        s.finish_refresh("a", "n1", e1, g1, &i1),
        Err(Refusal::StaleIntent),
        "the tokens were replaced since"
    );

    // An import while the call is in flight: the finish never landed, and is refused.
    let i2 = s
        .begin_refresh("a", "n1", e1, g1, 15, WINDOW, 0)
        .expect("begin");
    s.import_tokens("a").expect("import");
    assert_eq!(
        s.finish_refresh("a", "n1", e1, g1, &i2),
        Err(Refusal::StaleIntent)
    );

    // A stored rotation, then a takeover: the resent finish is not the owner's.
    let i3 = s
        .begin_refresh("a", "n1", e1, g1, 16, WINDOW, 0)
        .expect("begin");
    s.finish_refresh("a", "n1", e1, g1, &i3).expect("finish");
    let e2 = s.acquire("n2", 3 * TTL, 0).expect("n2");
    s.claim("a", "n2", e2, g1, TTL + 1).expect("takeover");
    assert_eq!(
        s.finish_refresh("a", "n1", e1, g1, &i3),
        Err(Refusal::NotOwner)
    );
}

/// A begin whose answer was lost (the connection cut after its commit) is sent again with the
/// nonce it carried: the store hands back the intent it committed — same generation and token
/// version, the new deadline — since nothing was called under it. A begin with any other
/// nonce, or with none (0, an intent from before nonces), is refused while the intent stands:
/// that intent's call may have reached the token endpoint.
#[test]
fn a_begin_sent_again_after_its_answer_was_lost_takes_over_only_its_own_intent() {
    let mut s = Rules::default();
    s.insert_account("a");
    let e1 = s.acquire("n1", TTL, 0).expect("n1");
    let g = s.claim("a", "n1", e1, 0, 0).expect("claim").owner_gen;
    let lost = s
        .begin_refresh("a", "n1", e1, g, 21, WINDOW, 0)
        .expect("committed, answer lost");
    assert_eq!(
        s.begin_refresh("a", "n1", e1, g, 22, WINDOW + 500, 500),
        Err(Refusal::RefreshInFlight),
        "another begin"
    );
    assert_eq!(
        s.begin_refresh("a", "n1", e1, g, 0, WINDOW + 500, 500),
        Err(Refusal::RefreshInFlight),
        "a begin without a nonce"
    );
    let again = s
        .begin_refresh("a", "n1", e1, g, 21, WINDOW + 500, 500)
        .expect("the same begin sent again");
    assert_eq!(
        again,
        Intent {
            deadline: WINDOW + 500,
            ..lost.clone()
        }
    );
    assert_eq!(
        s.accounts["a"].last_intent_gen, lost.intent_gen,
        "no new intent"
    );
    assert_eq!(
        s.finish_refresh("a", "n1", e1, g, &lost),
        Err(Refusal::StaleIntent),
        "the lost answer's intent is superseded by the one handed back"
    );
    let v = s.finish_refresh("a", "n1", e1, g, &again).expect("finish");
    assert_eq!(v, lost.token_version + 1);
    let fresh = s
        .begin_refresh("a", "n1", e1, g, 21, WINDOW + 1_000, 1_000)
        .expect("no intent stands: a new one");
    assert_eq!(fresh.intent_gen, lost.intent_gen + 1);
    assert_eq!(fresh.token_version, v);

    // An intent stored before nonces existed (nonce 0) is never taken over.
    let row = s.accounts.get_mut("a").expect("row");
    row.intent = Some(Intent { nonce: 0, ..fresh });
    assert_eq!(
        s.begin_refresh("a", "n1", e1, g, 0, WINDOW + 1_500, 1_500),
        Err(Refusal::RefreshInFlight)
    );
}

#[test]
fn a_session_is_never_stolen_and_a_restart_gets_a_new_epoch() {
    let mut s = Rules::default();
    let e1 = s.acquire("n1", TTL, 0).expect("first");
    assert_eq!(
        s.acquire("n1", TTL, 5_000),
        Err(Refusal::SessionLive("n1".into()))
    );
    let e2 = s.acquire("n1", TTL, 10_000).expect("after the lapse");
    assert_eq!(e2, e1 + 1);
    assert_eq!(s.renew("n1", e1, TTL, 10_001), Err(Refusal::SessionLost));
}

#[test]
fn a_planned_release_waits_for_the_refresh_and_needs_no_ttl_wait() {
    let mut s = Rules::default();
    s.insert_account("a");
    let e1 = s.acquire("n1", TTL, 0).expect("n1");
    let e2 = s.acquire("n2", TTL, 0).expect("n2");
    let g = s.claim("a", "n1", e1, 0, 0).expect("claim").owner_gen;
    let i = s
        .begin_refresh("a", "n1", e1, g, 17, WINDOW, 0)
        .expect("begin");
    assert_eq!(s.release("a", "n1", e1, g), Err(Refusal::RefreshInFlight));
    s.finish_refresh("a", "n1", e1, g, &i).expect("finish");
    s.release("a", "n1", e1, g).expect("release");
    let c = s
        .claim("a", "n2", e2, g + 1, 1)
        .expect("claimed at once, long before n1's TTL");
    assert!(!c.ambiguous);
}

#[test]
fn a_refresh_that_would_outlive_the_session_is_refused() {
    let mut s = Rules::default();
    s.insert_account("a");
    let e = s.acquire("n1", TTL, 0).expect("n1");
    let g = s.claim("a", "n1", e, 0, 0).expect("claim").owner_gen;
    assert_eq!(
        s.begin_refresh("a", "n1", e, g, 18, TTL + 1, 0),
        Err(Refusal::SessionTooShort)
    );
}

#[test]
fn the_local_deadline_comes_before_the_stores_expiry_and_fences_the_node() {
    let mut lease = SessionLease::new(TTL, MARGIN);
    assert_eq!(lease.standing(0), Standing::Unacquired);
    // Sent at local 100; the store granted at its own time, 700 ms later.
    let t = lease.sending(100);
    lease.granted(t, 1, TTL);
    assert_eq!(lease.standing(100), Standing::Held);
    assert!(lease.may_refresh(100, WINDOW));
    assert!(!lease.may_refresh(100 + TTL - MARGIN - WINDOW, WINDOW));
    assert_eq!(lease.renew_due(), 100 + TTL / 5);
    assert_eq!(lease.standing(100 + TTL - MARGIN), Standing::Fenced);
    // A late answer to an older request never stretches the deadline.
    let old = lease.sending(50);
    lease.granted(old, 1, TTL);
    assert_eq!(lease.standing(100 + TTL - MARGIN - 1), Standing::Held);
    assert_eq!(lease.standing(100 + TTL - MARGIN), Standing::Fenced);
    lease.lost();
    assert_eq!(lease.standing(200), Standing::Unacquired);
}

#[test]
fn rendezvous_moves_only_what_the_joining_node_wins() {
    let accounts: Vec<String> = (0..1_000).map(|i| format!("acct-{i}")).collect();
    let three: Vec<String> = (0..3).map(|i| format!("node-{i}")).collect();
    let four: Vec<String> = (0..4).map(|i| format!("node-{i}")).collect();
    let mut moved = 0;
    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &accounts {
        let before = owner_of(a, &three).expect("owner");
        let after = owner_of(a, &four).expect("owner");
        assert_eq!(owner_of(a, &three), Some(before), "deterministic");
        if before != after {
            assert_eq!(
                after, "node-3",
                "an account only moves to the node that joined"
            );
            moved += 1;
        }
        *per.entry(after).or_default() += 1;
    }
    // ≈ 1/4 of the accounts move; each node gets ≈ 250.
    assert!((150..350).contains(&moved), "moved {moved}");
    assert!(per.values().all(|n| (150..350).contains(n)), "{per:?}");
    let none: [&str; 0] = [];
    assert_eq!(owner_of("a", &none), None);
    let nodes: BTreeSet<&str> = per.keys().copied().collect();
    assert_eq!(nodes.len(), 4);
}
