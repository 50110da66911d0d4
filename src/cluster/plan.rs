//! What a node does with one listing of the store (docs/cluster.md "How a node runs"): a pure
//! function of the live nodes, the accounts' ownership, this node's session and the actors
//! it runs, so every decision of the loop can be tested without a database. The store's
//! rules still decide each step: a claim or release planned here is a compare-and-set there.

use std::collections::BTreeSet;

use rotor_actors::ownership::placement::owner_of;

use crate::store::postgres::Listing;

/// The steps of one round, in the order the loop takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Actors running here for accounts this session does not own: stop them (the
    /// record stays in the store).
    pub leave: Vec<String>,
    /// Owned accounts a newly joined live node should own: stop the actor, then release at
    /// this generation (a planned move).
    pub release: Vec<(String, u64)>,
    /// Accounts this node should own that no live session owns: claim at this generation.
    pub claim: Vec<(String, u64)>,
    /// Accounts this session owns without a running actor (a load failed, or a release was
    /// refused): hold this generation and start the actor.
    pub adopt: Vec<(String, u64)>,
}

/// The plan of node `me` in session `epoch`, given `listing` and the accounts whose actors
/// run here. Placement is rendezvous hashing over the live node ids of the listing.
pub fn plan(listing: &Listing, me: &str, epoch: u64, running: &BTreeSet<String>) -> Plan {
    let live: Vec<&str> = listing.nodes.iter().map(|n| n.node.as_str()).collect();
    let mut p = Plan::default();
    for a in &listing.accounts {
        let target = owner_of(&a.account, &live);
        let mine = a
            .owner
            .as_ref()
            .is_some_and(|o| o.node == me && o.epoch == epoch);
        match (&a.owner, mine) {
            (Some(_), true) if target.is_some_and(|t| t != me) && !a.refreshing => {
                p.release.push((a.account.clone(), a.owner_gen));
            }
            (Some(_), true) if !running.contains(&a.account) => {
                p.adopt.push((a.account.clone(), a.owner_gen));
            }
            (None, _) if target == Some(me) => p.claim.push((a.account.clone(), a.owner_gen)),
            _ => {}
        }
    }
    let owned: BTreeSet<&str> = listing
        .accounts
        .iter()
        .filter(|a| {
            a.owner
                .as_ref()
                .is_some_and(|o| o.node == me && o.epoch == epoch)
        })
        .map(|a| a.account.as_str())
        .collect();
    p.leave = running
        .iter()
        .filter(|id| !owned.contains(id.as_str()))
        .cloned()
        .collect();
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::{LiveNode, Ownership};
    use rotor_actors::ownership::rules::Owner;

    fn node(id: &str, epoch: u64) -> LiveNode {
        LiveNode {
            node: id.into(),
            epoch,
            advertise: None,
            summary: None,
            left: 1000,
        }
    }

    fn account(id: &str, owner: Option<(&str, u64)>, gen_: u64) -> Ownership {
        Ownership {
            account: id.into(),
            owner: owner.map(|(n, e)| Owner {
                node: n.into(),
                epoch: e,
            }),
            owner_gen: gen_,
            token_version: 0,
            record_gen: 0,
            refresh_ambiguous: false,
            refreshing: false,
        }
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("acct{i:02}")).collect()
    }

    #[test]
    fn alone_a_node_claims_every_unowned_account_at_the_generation_it_read() {
        let listing = Listing {
            nodes: vec![node("a", 3)],
            accounts: ids(5).iter().map(|i| account(i, None, 7)).collect(),
        };
        let p = plan(&listing, "a", 3, &BTreeSet::new());
        assert_eq!(p.claim.len(), 5);
        assert!(p.claim.iter().all(|(_, g)| *g == 7));
        assert!(p.release.is_empty() && p.leave.is_empty() && p.adopt.is_empty());
    }

    #[test]
    fn two_nodes_claim_disjoint_shares_that_cover_every_account() {
        let accounts: Vec<_> = ids(40).iter().map(|i| account(i, None, 0)).collect();
        let listing = Listing {
            nodes: vec![node("a", 1), node("b", 1)],
            accounts,
        };
        let a = plan(&listing, "a", 1, &BTreeSet::new());
        let b = plan(&listing, "b", 1, &BTreeSet::new());
        let sa: BTreeSet<_> = a.claim.iter().map(|c| c.0.clone()).collect();
        let sb: BTreeSet<_> = b.claim.iter().map(|c| c.0.clone()).collect();
        assert!(sa.is_disjoint(&sb));
        assert_eq!(sa.len() + sb.len(), 40);
        assert!(
            sa.len() >= 10 && sb.len() >= 10,
            "{} / {}",
            sa.len(),
            sb.len()
        );
    }

    #[test]
    fn a_joining_node_gets_its_share_by_release_and_nothing_else_moves() {
        let all = ids(40);
        let listing = Listing {
            nodes: vec![node("a", 1), node("b", 1)],
            accounts: all.iter().map(|i| account(i, Some(("a", 1)), 2)).collect(),
        };
        let running: BTreeSet<String> = all.iter().cloned().collect();
        let p = plan(&listing, "a", 1, &running);
        let live = ["a", "b"];
        for id in &all {
            let released = p.release.iter().any(|(r, g)| r == id && *g == 2);
            assert_eq!(released, owner_of(id, &live) == Some("b"), "{id}");
        }
        assert!(!p.release.is_empty());
        assert!(p.claim.is_empty() && p.leave.is_empty() && p.adopt.is_empty());
        // The joiner claims nothing until the owner lets go.
        let q = plan(&listing, "b", 1, &BTreeSet::new());
        assert!(q.claim.is_empty());
    }

    #[test]
    fn a_refresh_in_flight_holds_the_release_back() {
        let mut a = account("x", Some(("a", 1)), 2);
        a.refreshing = true;
        let listing = Listing {
            nodes: vec![node("a", 1), node("b", 1)],
            accounts: vec![a],
        };
        let target = owner_of("x", &["a", "b"]);
        let p = plan(&listing, "a", 1, &["x".to_owned()].into());
        assert!(p.release.is_empty(), "target {target:?}");
    }

    #[test]
    fn actors_of_accounts_owned_elsewhere_or_in_an_old_session_leave() {
        let listing = Listing {
            nodes: vec![node("a", 2), node("b", 1)],
            accounts: vec![
                account("x", Some(("a", 1)), 4),
                account("y", Some(("b", 1)), 4),
                account("z", Some(("a", 2)), 5),
            ],
        };
        let running: BTreeSet<String> = ["x", "y", "z"].iter().map(|s| s.to_string()).collect();
        let p = plan(&listing, "a", 2, &running);
        assert_eq!(p.leave, vec!["x".to_owned(), "y".to_owned()]);
    }

    #[test]
    fn an_owned_account_without_an_actor_is_adopted_at_its_generation() {
        let z = "z";
        let live = ["a"];
        assert_eq!(owner_of(z, &live), Some("a"));
        let listing = Listing {
            nodes: vec![node("a", 2)],
            accounts: vec![account(z, Some(("a", 2)), 5)],
        };
        let p = plan(&listing, "a", 2, &BTreeSet::new());
        assert_eq!(p.adopt, vec![("z".to_owned(), 5)]);
    }
}
