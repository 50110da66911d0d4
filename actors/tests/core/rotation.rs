//! Rotation (pure `choose` and the supervisor's indexed `View`): strategies, affinity, plan
//! routing, exclusions, and the exhausted-vs-unavailable classification behind docs/quota.md rule 6.

use rand::{Rng, SeedableRng, rngs::StdRng};
use rotor_actors::Strategy;
use rotor_actors::quota::Lock;
use rotor_actors::rotation::{Candidate, Cooling, NoChoice, Policy, View, choose};
use serde_json::json;

use crate::support::{H, S, T0, relative, settings};

fn cand(id: &str) -> Candidate {
    Candidate {
        id: id.into(),
        plan: Some("plus".into()),
        status: rotor_actors::Status::Active,
        serving: true,
        leases: 0,
        max_leases: 2,
        requests: 0,
        last_used: None,
        window_reset_at: None,
        locks: vec![],
        not_included: vec![],
        cooldown_until: None,
        refused_until: None,
        cooldown_soft: false,
    }
}

fn lock(bucket: &str, until: i64) -> Lock {
    Lock {
        bucket: bucket.parse().expect("a bucket id"),
        until: Some(until),
    }
}

fn pool() -> Vec<Candidate> {
    vec![
        Candidate {
            requests: 5,
            last_used: Some(T0 - 10 * S),
            window_reset_at: Some(T0 + 600 * S),
            ..cand("a")
        },
        Candidate {
            requests: 2,
            last_used: Some(T0 - 20 * S),
            window_reset_at: Some(T0 + 2 * H),
            ..cand("b")
        },
        Candidate {
            requests: 2,
            last_used: Some(T0 - 30 * S),
            leases: 1,
            ..cand("c")
        },
        Candidate {
            locks: vec![lock("primary", T0 + H)],
            ..cand("d-exhausted")
        },
        Candidate {
            cooldown_until: Some(T0 + 30 * S),
            ..cand("e-cooling")
        },
        Candidate {
            leases: 2,
            ..cand("f-full")
        },
        Candidate {
            serving: false,
            ..cand("g-disabled")
        },
        Candidate {
            plan: Some("free".into()),
            ..cand("h-free")
        },
        Candidate {
            locks: vec![lock("codex_bengalfox.primary", T0 + 2 * H)],
            ..cand("i-spark-out")
        },
    ]
}

#[test]
fn choices_by_strategy_policy_and_affinity() {
    let c = pool();
    let plus_only = Some(vec!["plus".to_string(), "pro".to_string()]);
    let cases = vec![
        ("least_used", Strategy::LeastUsed, None, Policy::default()),
        (
            "least_used, gpt-5.5 routed to plus/pro",
            Strategy::LeastUsed,
            None,
            Policy {
                plans: plus_only.clone(),
                ..Policy::default()
            },
        ),
        (
            "least_used, spark model",
            Strategy::LeastUsed,
            None,
            Policy {
                model_limit: Some("codex_bengalfox".into()),
                ..Policy::default()
            },
        ),
        (
            "least_used, b excluded",
            Strategy::LeastUsed,
            None,
            Policy {
                exclude: vec!["b".into()],
                ..Policy::default()
            },
        ),
        (
            "affinity to a",
            Strategy::LeastUsed,
            None,
            Policy {
                affinity: Some("a".into()),
                ..Policy::default()
            },
        ),
        (
            "affinity to exhausted d is ignored",
            Strategy::LeastUsed,
            None,
            Policy {
                affinity: Some("d-exhausted".into()),
                ..Policy::default()
            },
        ),
        ("sticky", Strategy::Sticky, None, Policy::default()),
        (
            "round_robin after b",
            Strategy::RoundRobin,
            Some("b"),
            Policy::default(),
        ),
        (
            "round_robin after the last id wraps",
            Strategy::RoundRobin,
            Some("z"),
            Policy::default(),
        ),
    ];
    let mut out = Vec::new();
    for (name, strategy, cursor, policy) in cases {
        let chosen = choose(&c, strategy, cursor, &policy, T0, 10);
        out.push(json!({ "case": name, "chosen": relative(&chosen) }));
    }
    assert_eq!(
        out[0]["chosen"]["Ok"],
        json!(["a", "b", "h-free", "i-spark-out", "c"]),
        "earliest window reset first, then fewer requests (in flight included), then LRU"
    );
    assert_eq!(
        out[2]["chosen"]["Ok"][3], "c",
        "spark-exhausted account skipped for spark models only"
    );
    assert_eq!(out[4]["chosen"]["Ok"][0], "a");
    assert_eq!(
        out[6]["chosen"]["Ok"][0], "a",
        "sticky: most recently used first"
    );
    assert_eq!(out[7]["chosen"]["Ok"][0], "c");
    settings().bind(|| insta::assert_yaml_snapshot!(out));
}

#[test]
fn an_all_exhausted_pool_is_exhausted_with_the_soonest_reset_but_a_busy_one_is_not() {
    let exhausted = vec![
        Candidate {
            locks: vec![lock("primary", T0 + 2 * H)],
            ..cand("a")
        },
        Candidate {
            locks: vec![lock("secondary", T0 + H)],
            ..cand("b")
        },
        Candidate {
            serving: false,
            ..cand("c")
        },
    ];
    let p = Policy::default();
    assert_eq!(
        choose(&exhausted, Strategy::LeastUsed, None, &p, T0, 3),
        Err(NoChoice::Exhausted {
            soonest_reset: Some(T0 + H)
        })
    );
    let busy = vec![
        Candidate {
            leases: 2,
            ..cand("a")
        },
        Candidate {
            locks: vec![lock("primary", T0 + H)],
            ..cand("b")
        },
    ];
    assert!(matches!(
        choose(&busy, Strategy::LeastUsed, None, &p, T0, 3),
        Err(NoChoice::Busy { .. })
    ));
    let empty: Vec<Candidate> = vec![];
    assert_eq!(
        choose(&empty, Strategy::LeastUsed, None, &p, T0, 3),
        Err(NoChoice::Unavailable {
            reason: "no accounts in the pool".into()
        })
    );
    let cooling = vec![Candidate {
        cooldown_until: Some(T0 + S),
        ..cand("a")
    }];
    assert!(
        choose(&cooling, Strategy::LeastUsed, None, &p, T0 + S, 3).is_ok(),
        "cooldown ends on time"
    );
}

/// An account the request already tried counts for what it is now. After a 5xx it could still
/// serve (only not this request), so the pool is not exhausted and the client gets the upstream
/// failure, not "usage limit reached" with a reset hours away. After a 429 it is locked, and
/// with every other account locked the pool is exhausted.
#[test]
fn an_account_the_request_already_tried_is_exhausted_only_if_it_is_locked() {
    let other = Candidate {
        locks: vec![lock("primary", T0 + 2 * H)],
        ..cand("b")
    };
    let tried = Policy {
        exclude: vec!["a".into()],
        ..Policy::default()
    };
    let failed_5xx = vec![cand("a"), other.clone()];
    match choose(&failed_5xx, Strategy::LeastUsed, None, &tried, T0, 3) {
        Err(NoChoice::Unavailable { reason }) => {
            assert!(
                reason.contains("1 excluded") && reason.contains("1 exhausted"),
                "{reason}"
            );
        }
        other => panic!("a 5xx on the tried account is not exhaustion: {other:?}"),
    }
    let got_429 = vec![
        Candidate {
            locks: vec![lock("primary", T0 + H)],
            ..cand("a")
        },
        other,
    ];
    assert_eq!(
        choose(&got_429, Strategy::LeastUsed, None, &tried, T0, 3),
        Err(NoChoice::Exhausted {
            soonest_reset: Some(T0 + H)
        }),
        "the 429 locked it: the soonest reset is the tried account's own"
    );
}

#[test]
fn round_robin_cycles_through_every_account() {
    let c: Vec<Candidate> = ["a", "b", "c"].iter().map(|id| cand(id)).collect();
    let mut view = View::new(Strategy::RoundRobin);
    c.iter().cloned().for_each(|x| view.upsert(x));
    let seq: Vec<String> = (0..7)
        .map(|_| {
            view.pick(&Policy::default(), T0, 1)
                .expect("pick")
                .remove(0)
        })
        .collect();
    assert_eq!(seq, ["a", "b", "c", "a", "b", "c", "a"]);
}

#[test]
fn an_update_changes_only_known_accounts_and_reorders_them() {
    let mut view = View::new(Strategy::LeastUsed);
    view.upsert(cand("a"));
    view.upsert(cand("b"));
    let unknown = view
        .update(cand("z"))
        .expect("an unknown account is handed back");
    assert_eq!(unknown.id, "z");
    assert!(view.get("z").is_none() && view.len() == 2, "not inserted");
    let busy = Candidate {
        requests: 5,
        ..cand("a")
    };
    assert!(view.update(busy).is_none(), "a is known");
    assert_eq!(view.get("a").map(|c| c.requests), Some(5));
    let order = view.pick(&Policy::default(), T0, 2).expect("pick");
    assert_eq!(order, ["b", "a"], "the busier account moved back");
}

#[test]
fn the_indexed_view_agrees_with_pure_choose_under_random_updates() {
    let mut rng = StdRng::seed_from_u64(7);
    for strategy in [Strategy::LeastUsed, Strategy::Sticky, Strategy::RoundRobin] {
        let mut view = View::new(Strategy::LeastUsed);
        view.set_strategy(strategy);
        let mut all: Vec<Candidate> = (0..40).map(|i| cand(&format!("{i:02}"))).collect();
        all.iter().cloned().for_each(|c| view.upsert(c));
        for round in 0..300 {
            let i = rng.random_range(0..all.len());
            let c = &mut all[i];
            c.leases = rng.random_range(0..3);
            c.requests = rng.random_range(0..5);
            c.last_used = Some(T0 + rng.random_range(0..5) * S);
            c.window_reset_at = rng
                .random_bool(0.6)
                .then(|| T0 + rng.random_range(0..4) * H);
            c.serving = rng.random_bool(0.9);
            c.locks = if rng.random_bool(0.2) {
                vec![lock("primary", T0 + H)]
            } else {
                vec![]
            };
            c.plan = Some(if rng.random_bool(0.3) { "free" } else { "plus" }.into());
            c.cooldown_until = rng
                .random_bool(0.3)
                .then(|| T0 + rng.random_range(-2..30) * S);
            c.cooldown_soft = c.cooldown_until.is_some() && rng.random_bool(0.5);
            view.upsert(c.clone());
            if strategy == Strategy::RoundRobin {
                continue; // the cursor is the view's own state; covered by the cycling test
            }
            let p = Policy {
                exclude: vec![format!("{:02}", rng.random_range(0..40))],
                plans: rng.random_bool(0.5).then(|| vec!["plus".to_string()]),
                affinity: rng
                    .random_bool(0.3)
                    .then(|| format!("{:02}", rng.random_range(0..40))),
                cooling: [Cooling::Avoid, Cooling::Soft, Cooling::Any][rng.random_range(0..3)],
                ..Policy::default()
            };
            let want = choose(&all, strategy, None, &p, T0, 3);
            assert_eq!(
                view.pick(&p, T0, 3),
                want,
                "round {round} strategy {strategy:?}"
            );
        }
    }
}

#[test]
fn least_used_spends_the_quota_that_resets_first_then_fewer_requests_then_lru_and_ties_rotate() {
    let p = Policy::default();
    let order = |c: &[Candidate]| choose(c, Strategy::LeastUsed, None, &p, T0, 10).expect("ok");
    // Quota left everywhere: the window that resets soonest is used first, however busy.
    let c = vec![
        Candidate {
            requests: 1,
            window_reset_at: Some(T0 + 3 * H),
            ..cand("late")
        },
        Candidate {
            requests: 50,
            window_reset_at: Some(T0 + H),
            ..cand("soon")
        },
        Candidate {
            requests: 0,
            ..cand("unknown")
        },
        Candidate {
            requests: 9,
            window_reset_at: Some(T0 + H),
            locks: vec![lock("primary", T0 + H)],
            ..cand("exhausted")
        },
    ];
    assert_eq!(order(&c), ["soon", "late", "unknown"]);
    // Same reset: fewer requests (in-flight leases count), then least recently used.
    let c = vec![
        Candidate {
            requests: 3,
            last_used: Some(T0 - 5 * S),
            ..cand("a")
        },
        Candidate {
            requests: 2,
            leases: 1,
            last_used: Some(T0 - 9 * S),
            ..cand("b")
        },
        Candidate {
            requests: 2,
            last_used: Some(T0 - S),
            ..cand("c")
        },
    ];
    assert_eq!(order(&c), ["c", "b", "a"]);
    // Ties rotate: serving one (a lease, then a counted request) sends the next elsewhere.
    let mut view = View::new(Strategy::LeastUsed);
    let mut c: Vec<Candidate> = ["x", "y", "z"]
        .iter()
        .map(|id| Candidate {
            window_reset_at: Some(T0 + H),
            ..cand(id)
        })
        .collect();
    c.iter().cloned().for_each(|x| view.upsert(x));
    let mut served = Vec::new();
    for i in 0..6 {
        let id = view.pick(&p, T0, 1).expect("pick").remove(0);
        let x = c.iter_mut().find(|x| x.id == id).expect("known");
        x.requests += 1;
        x.last_used = Some(T0 + i * S);
        view.upsert(x.clone());
        served.push(id);
    }
    assert_eq!(served, ["x", "y", "z", "x", "y", "z"]);
}
