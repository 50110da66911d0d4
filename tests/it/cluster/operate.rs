//! Operating two real nodes (`codex-rotor serve` with `[cluster] enabled` on one throwaway
//! PostgreSQL): each node's `GET /admin/cluster` names itself with a held lease, the other as
//! its live peer at the address it advertises, and the same owner for every account as the
//! database; the account answers and a's dashboard (its Nodes panel, the owner on each row,
//! in real headless Chromium) carry that owner; a node that is killed drops out of the
//! survivor's report once its lease lapses, and its accounts show the survivor as owner.

use super::nodes::{Cluster, Node};
use super::pg_daemon::ADMIN_KEY;
use crate::dashboard::cdp::Browser;
use crate::dashboard::{login_at, screenshot_path};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// `GET path` on node `n` with the admin key, or `None` while it does not answer.
async fn admin(c: &Cluster, n: &Node, path: &str) -> Option<Value> {
    let r = c
        .http
        .get(format!("http://127.0.0.1:{}{path}", n.port))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .ok()?;
    r.status().is_success().then_some(())?;
    r.json().await.ok()
}

/// True when node `n` reports itself held, exactly `peers` (name and port) as live peers, and
/// `owners` as the owner of every account.
async fn reports(
    c: &Cluster,
    n: &Node,
    peers: &[&Node],
    owners: &BTreeMap<String, String>,
) -> bool {
    let Some(r) = admin(c, n, "/admin/cluster").await else {
        return false;
    };
    let listed: Vec<(String, String)> = r["peers"]
        .as_array()
        .map(|p| {
            p.iter()
                .map(|p| {
                    (
                        p["id"].as_str().unwrap_or("").to_owned(),
                        p["advertise"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let expected: Vec<(String, String)> = peers
        .iter()
        .map(|p| (p.name.to_owned(), format!("http://127.0.0.1:{}", p.port)))
        .collect();
    r["enabled"] == true
        && r["node"]["id"] == n.name
        && r["node"]["standing"] == "held"
        && r["node"]["advertise"] == format!("http://127.0.0.1:{}", n.port)
        && r["node"]["epoch"].as_u64().is_some()
        && listed == expected
        && r["owners"] == json!(owners)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_node_reports_itself_its_peer_and_the_owner_of_every_account() {
    let c = Cluster::start(6).await;
    let (a, b) = c.pair().await;
    let owners = c.owners().await;
    assert_eq!(owners.len(), c.accounts.len());
    c.within(
        "both report the cluster as the database has it",
        Duration::from_secs(10),
        &[&a, &b],
        async || reports(&c, &a, &[&b], &owners).await && reports(&c, &b, &[&a], &owners).await,
    )
    .await;
    // The accounts a node runs name it as their owner.
    for n in [&a, &b] {
        let list = admin(&c, n, "/admin/accounts").await.expect("accounts");
        let listed = list["accounts"].as_array().expect("accounts");
        assert!(!listed.is_empty(), "{} runs accounts", n.name);
        for acct in listed {
            assert_eq!(acct["owner"], n.name, "{acct}");
        }
        let id = listed[0]["id"].as_str().unwrap();
        let one = admin(&c, n, &format!("/admin/accounts/{id}"))
            .await
            .unwrap();
        assert_eq!(one["owner"], n.name);
    }
    let live = admin(&c, &a, "/admin/live").await.expect("feed");
    assert_eq!(live["cluster"]["node"]["id"], "a");

    // a's dashboard: the Nodes panel lists a (this node, held) then b (live); rows name owners.
    let mut browser = Browser::launch(1400, 1000).await.expect("chromium starts");
    login_at(
        &mut browser,
        &format!("http://127.0.0.1:{}/", a.port),
        ADMIN_KEY,
    )
    .await;
    let panel = browser
        .wait_for(
            "(() => { const r = Array.from(document.querySelectorAll('#nodes-list tr')); \
             return !document.getElementById('nodes').hidden && r.length === 2 && \
             r.map(t => t.dataset.node + ':' + t.querySelector('[data-standing]').dataset.standing).join(' ') })()",
            Duration::from_secs(10),
        )
        .await
        .expect("the Nodes panel shows both nodes");
    assert_eq!(panel, "a:held b:live");
    let subs = browser
        .eval(
            "Array.from(document.querySelectorAll('#accounts .acct-sub')).map(e => e.textContent)",
        )
        .await
        .expect("rows");
    let subs = subs.as_array().expect("rows");
    assert!(!subs.is_empty());
    for sub in subs {
        assert!(sub.as_str().unwrap_or("").starts_with("on a · "), "{sub}");
    }
    let shot = screenshot_path("dashboard-two-nodes");
    browser.screenshot(&shot).await.expect("screenshot");
    println!("two-node dashboard: {}", shot.display());

    // SIGKILL b: once its lease lapses and a claims, a reports itself alone, owning all.
    let mut b = b;
    drop(b.daemon.take());
    c.within(
        "a owns every account",
        Duration::from_secs(15),
        &[&a],
        async || c.split_between(&[&a]).await,
    )
    .await;
    let all_a: BTreeMap<String, String> = c
        .accounts
        .iter()
        .map(|id| (id.clone(), "a".to_owned()))
        .collect();
    c.within(
        "a reports itself alone with every account",
        Duration::from_secs(10),
        &[&a],
        async || reports(&c, &a, &[], &all_a).await,
    )
    .await;
}
