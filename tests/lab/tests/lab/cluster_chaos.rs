//! The short cluster chaos run inside the suite: three real nodes in cluster mode on a
//! throwaway PostgreSQL, the simulator with access tokens living 10 s, mixed load through the
//! front door; a SIGKILL + restart, a SIGSTOP longer than the TTL + SIGCONT, and a fourth node
//! joining, each followed by a convergence check. Same checks as `rotor-lab chaos cluster`
//! (the partition from the database is the lab run's).

use rotor_lab::chaos::cluster::{ClusterOptions, Step, chaos_cluster};
use std::path::PathBuf;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_survive_a_sigkill_a_sigstop_and_a_join_with_every_refresh_fenced() {
    let opts = ClusterOptions {
        bin: PathBuf::from(env!("CARGO_BIN_EXE_rotor-lab")),
        accounts: 9,
        concurrency: 9,
        steps: vec![Step::Kill, Step::Pause, Step::Join],
        calm: Duration::from_secs(4),
        ..ClusterOptions::default()
    };
    let report = chaos_cluster(&opts).await.expect("the run completes");
    println!("{}", report.render());
    assert!(
        report.records.len() > 100,
        "the load ran: {} requests",
        report.records.len()
    );
    assert!(
        report.passed(),
        "cluster chaos checks failed:\n{}",
        report.failures().join("\n")
    );
}

/// The fencing check is what makes "0 refreshes without a live lease" mean something, so it is
/// tested on a made-up history: a refresh by the live owner passes, one by the owner inside
/// its last lease passes, and a zombie's refresh after its lease lapsed, a refresh by a node
/// that does not own the account, one by a node never seen, and one before the history began
/// are all flagged; the harness's own exchanges (no caller) are not judged.
#[test]
fn a_refresh_outside_the_owners_live_lease_is_flagged() {
    use codex_rotor::sim::{RefreshEvent, RefreshOutcome};
    use rotor_lab::chaos::cluster::history::{OwnerRow, Sample, SessionRow};
    use rotor_lab::chaos::cluster::unfenced;
    let session = |node: &str, expires_at| SessionRow {
        node: node.into(),
        epoch: 1,
        expires_at,
    };
    let owner = |account: &str, node: &str, owner_gen| OwnerRow {
        account: account.into(),
        node: Some(node.into()),
        epoch: Some(1),
        owner_gen,
    };
    let samples = vec![
        Sample {
            at: 1000,
            sessions: vec![session("n1", 4000), session("n2", 4000)],
            owners: vec![owner("a", "n1", 1), owner("b", "n2", 1)],
            waiting: 0,
        },
        Sample {
            at: 1600,
            sessions: vec![session("n1", 4600), session("n2", 4000)],
            owners: vec![owner("a", "n1", 1), owner("b", "n2", 1)],
            waiting: 0,
        },
        Sample {
            at: 4100,
            sessions: vec![session("n1", 7000), session("n2", 4000)],
            owners: vec![owner("a", "n1", 1), owner("b", "n1", 2)],
            waiting: 0,
        },
    ];
    assert_eq!(samples[2].live_owner("b"), Some("n1"));
    assert_eq!(samples[1].live_owner("b"), Some("n2"));
    assert_eq!(
        samples[2].live_nodes().into_iter().collect::<Vec<_>>(),
        ["n1"]
    );
    let ev = |at, caller: Option<&str>, account: &str| RefreshEvent {
        at,
        account: Some(account.into()),
        caller: caller.map(str::to_owned),
        outcome: RefreshOutcome::Granted,
    };
    let log = vec![
        ev(1200, Some("n1"), "a"),
        ev(3500, Some("n2"), "b"),
        ev(4500, Some("n2"), "b"),
        ev(1300, Some("n1"), "b"),
        ev(1300, Some("n3"), "a"),
        ev(500, Some("n1"), "a"),
        ev(4500, None, "b"),
    ];
    let flagged = unfenced(&log, &samples, 3000, &Default::default());
    assert_eq!(flagged.len(), 4, "{flagged:#?}");
    assert!(
        flagged[0].starts_with("n2 refreshed b at 4500"),
        "the zombie"
    );
    assert!(flagged[1].contains("owner false"), "not the owner");
    assert!(flagged[2].starts_with("n3"));
    assert!(flagged[3].contains("at 500"));
}
