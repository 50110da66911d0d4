//! The Nodes panel and the owner of each account in real headless Chromium: shown on a
//! clustered node (its view filled by hand the way the lease loop fills it), with this node
//! first, each node's lease state, accounts owned and serving, and advertised address; the
//! owner on every row and in the details view; and nothing of it on a single node.

use super::cdp::Browser;
use super::{login, screenshot_path};
use crate::admin::cluster::two_node_view;
use crate::admin::rig::Rig;
use serde_json::Value;
use std::time::Duration;

/// Reads the Nodes panel: each row's node, badge, owned, serving and advertise.
const READ_NODES: &str = r#"Array.from(document.querySelectorAll('#nodes-list tr')).map(r => ({
  node: r.dataset.node, self: r.classList.contains('self'),
  standing: r.querySelector('[data-standing]').dataset.standing,
  badge: r.querySelector('[data-standing]').className,
  lease: r.children[1].textContent,
  owned: r.querySelector('[data-owned]').textContent,
  serving: r.querySelector('[data-serving]').textContent,
  advertise: r.querySelector('code').textContent }))"#;

/// The sub-line (owner · id · plan) of the row of `id`.
fn sub_of(id: &str) -> String {
    format!("document.querySelector('#accounts [data-id=\"{id}\"] .acct-sub').textContent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clustered_node_shows_its_nodes_and_who_owns_each_account() {
    let view = two_node_view();
    let rig = Rig::start_node(
        tempfile::tempdir().unwrap(),
        Default::default(),
        |_| {},
        Some(view.clone()),
    )
    .await;
    let (_, mine) = rig.add_account(Default::default()).await;
    let (_, theirs) = rig.add_account(Default::default()).await;
    let (_, orphan) = rig.add_account(Default::default()).await;
    {
        let mut s = view.write();
        s.owners.insert(mine.clone(), "node-a".into());
        s.owners.insert(theirs.clone(), "node-b".into());
    }
    // The node publishes its own summary every second: wait for its pool's three accounts.
    for _ in 0..100 {
        if view.read().local.serving == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut b = Browser::launch(1400, 1000).await.expect("chromium starts");
    login(&mut b, &rig).await;
    b.wait_for(
        "!document.getElementById('nodes').hidden && document.querySelectorAll('#nodes-list tr').length === 2",
        Duration::from_secs(10),
    )
    .await
    .expect("the Nodes panel shows both nodes");
    let nodes = b.eval(READ_NODES).await.expect("nodes");
    let shot = screenshot_path("dashboard-nodes");
    b.screenshot(&shot).await.expect("screenshot");
    println!("nodes screenshot: {}", shot.display());
    let (a, peer) = (&nodes[0], &nodes[1]);
    assert_eq!(
        (&a["node"], &a["self"]),
        (&Value::from("node-a"), &Value::from(true)),
        "{nodes:#}"
    );
    assert_eq!(a["standing"], "held");
    assert!(a["badge"].as_str().unwrap().contains("active"), "{a}");
    assert!(a["lease"].as_str().unwrap().contains("epoch 4"), "{a}");
    assert!(a["lease"].as_str().unwrap().contains("left"), "{a}");
    // Serving is what the node publishes from its own pool (the rig's pool runs all three
    // accounts, whatever the hand-filled owners say); owned is read from the owners.
    let published = view.read().local.serving;
    assert_eq!(
        published, 3,
        "the node publishes its pool's serving accounts"
    );
    assert_eq!(
        (&a["owned"], &a["serving"]),
        (&Value::from("1"), &Value::from(published.to_string()))
    );
    assert_eq!(a["advertise"], "http://10.0.0.5:8080");
    assert_eq!(
        (&peer["node"], &peer["self"]),
        (&Value::from("node-b"), &Value::from(false))
    );
    assert_eq!(peer["standing"], "live");
    assert!(
        peer["lease"].as_str().unwrap().contains("epoch 9"),
        "{peer}"
    );
    assert_eq!(
        (&peer["owned"], &peer["serving"]),
        (&Value::from("1"), &Value::from("1"))
    );
    assert_eq!(peer["advertise"], "http://10.0.0.6:8080");
    let sub = b
        .eval("document.getElementById('nodes-sub').textContent")
        .await
        .unwrap();
    assert_eq!(sub, "2 nodes · 2 accounts owned");

    for (id, owner) in [
        (&mine, "on node-a"),
        (&theirs, "on node-b"),
        (&orphan, "on no live node"),
    ] {
        let text = b.eval(&sub_of(id)).await.expect("row");
        assert!(
            text.as_str().unwrap_or("").starts_with(owner),
            "{id}: {text}"
        );
    }
    b.eval(&format!(
        "document.querySelector('[data-id=\"{theirs}\"] [data-action=details]').click(); true"
    ))
    .await
    .expect("open details");
    let details = b
        .wait_for(
            "(() => { const d = document.getElementById('details-dialog'); return d.open && d.textContent })()",
            Duration::from_secs(5),
        )
        .await
        .expect("details view");
    assert!(
        details.as_str().unwrap_or("").contains("Owner nodenode-b"),
        "{details}"
    );
    b.eval("document.getElementById('details-dialog').close(); true")
        .await
        .unwrap();

    // The node fences itself: the panel follows on the next poll.
    view.write().lease.lost();
    b.wait_for(
        "document.querySelector('#nodes-list tr.self [data-standing]').dataset.standing === 'unacquired'",
        Duration::from_secs(10),
    )
    .await
    .expect("the lease state follows the view");

    // A single node: no panel, no owner on the rows.
    let single = Rig::start().await;
    let (_, id) = single.add_account(Default::default()).await;
    // Sessions live in the process and cookies ignore the port: the same session opens it.
    b.goto(&single.url("/")).await.expect("dashboard loads");
    b.wait_for(
        &format!("!!document.querySelector('#accounts [data-id=\"{id}\"]')"),
        Duration::from_secs(10),
    )
    .await
    .expect("the single node's account row");
    assert_eq!(
        b.eval("document.getElementById('nodes').hidden")
            .await
            .unwrap(),
        true
    );
    let text = b.eval(&sub_of(&id)).await.unwrap();
    assert!(!text.as_str().unwrap_or("").starts_with("on "), "{text}");
}
