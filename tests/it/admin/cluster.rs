//! `GET /admin/cluster` and the `owner` of each account: a single node says it is not
//! clustered and its answers are unchanged; a clustered node's answer is built from its
//! `ClusterView` alone (filled here by hand the way the lease loop fills it).

use super::rig::Rig;
use codex_rotor::cluster::report::report;
use codex_rotor::cluster::{ClusterView, Peer, Summary};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn a_single_node_is_not_clustered_and_its_answers_name_no_owner() {
    let rig = Rig::start().await;
    let (status, body) = rig.admin(Method::GET, "/admin/cluster", None).await;
    assert_eq!((status, body), (200, json!({ "enabled": false })));
    let plain = rig
        .http
        .get(rig.url("/admin/cluster"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 401, "behind the admin key like the rest");

    let (_, id) = rig.add_account(Default::default()).await;
    let list = rig.get("/admin/accounts").await;
    assert!(list["accounts"][0].get("owner").is_none(), "{list}");
    let one = rig.get(&format!("/admin/accounts/{id}")).await;
    assert!(one.get("owner").is_none(), "{one}");
    let explain = rig.get(&format!("/admin/accounts/{id}/explain")).await;
    assert!(explain.get("owner").is_none(), "{explain}");
    let live = rig.get("/admin/live").await;
    assert!(live.get("cluster").is_none(), "{live}");
    assert!(live["accounts"][0].get("owner").is_none(), "{live}");
}

#[test]
fn the_cluster_answer_shows_the_node_its_peers_and_every_owner() {
    let view = ClusterView::new(
        "node-a".into(),
        "http://10.0.0.5:8080".into(),
        10_000,
        1_000,
    );
    let unacquired = report(&view);
    assert_eq!(unacquired["node"]["standing"], "unacquired");
    assert_eq!(unacquired["node"]["epoch"], json!(null));
    assert_eq!(unacquired["node"]["deadline_left_ms"], json!(null));
    {
        let mut s = view.write();
        let ticket = s.lease.sending(view.now());
        s.lease.granted(ticket, 7, 10_000);
        s.peers = vec![Peer {
            id: "node-b".into(),
            epoch: 3,
            advertise: "http://10.0.0.6:8080".into(),
            summary: Summary {
                owned: 1,
                serving: 0,
                soonest_reset: Some(1_700_000_000_000),
            },
        }];
        for (account, node) in [
            ("acc-1", "node-a"),
            ("acc-2", "node-b"),
            ("acc-3", "node-a"),
        ] {
            s.owners.insert(account.into(), node.into());
        }
        s.local = Summary {
            owned: 2,
            serving: 2,
            soonest_reset: None,
        };
    }
    let a = report(&view);
    assert_eq!(a["enabled"], true);
    let node = &a["node"];
    assert_eq!(node["id"], "node-a");
    assert_eq!(node["advertise"], "http://10.0.0.5:8080");
    assert_eq!(
        (node["epoch"].clone(), node["standing"].clone()),
        (json!(7), json!("held"))
    );
    let left = node["deadline_left_ms"].as_i64().expect("ms left");
    // Granted 10 s at the send time, minus the 1 s margin.
    assert!((8_000..=9_000).contains(&left), "{left}");
    assert_eq!(node["owned"], 2);
    assert_eq!(
        node["summary"],
        json!({"owned": 2, "serving": 2, "soonest_reset": null})
    );
    assert_eq!(
        a["peers"],
        json!([{
            "id": "node-b", "epoch": 3, "advertise": "http://10.0.0.6:8080", "standing": "live",
            "owned": 1, "summary": {"owned": 1, "serving": 0, "soonest_reset": 1_700_000_000_000i64},
        }])
    );
    assert_eq!(
        a["owners"],
        json!({"acc-1": "node-a", "acc-2": "node-b", "acc-3": "node-a"})
    );

    // Past the local deadline the node says it has fenced itself, with nothing left.
    let short = ClusterView::new("node-c".into(), "http://10.0.0.7:8080".into(), 1_100, 1_000);
    {
        let mut s = short.write();
        let ticket = s.lease.sending(short.now());
        s.lease.granted(ticket, 1, 1_100);
    }
    assert_eq!(report(&short)["node"]["standing"], "held");
    std::thread::sleep(std::time::Duration::from_millis(150));
    let fenced = report(&short);
    assert_eq!(fenced["node"]["standing"], "fenced");
    assert_eq!(fenced["node"]["deadline_left_ms"], 0);
    // The session lost in the store: unacquired until the next epoch.
    short.write().lease.lost();
    assert_eq!(report(&short)["node"]["standing"], "unacquired");
}

/// A node view with a held session (epoch 4) and one live peer, `node-b`.
pub fn two_node_view() -> std::sync::Arc<ClusterView> {
    let view = ClusterView::new(
        "node-a".into(),
        "http://10.0.0.5:8080".into(),
        10_000,
        1_000,
    );
    {
        let mut s = view.write();
        let ticket = s.lease.sending(view.now());
        s.lease.granted(ticket, 4, 10_000);
        s.peers = vec![Peer {
            id: "node-b".into(),
            epoch: 9,
            advertise: "http://10.0.0.6:8080".into(),
            summary: Summary {
                owned: 1,
                serving: 1,
                soonest_reset: None,
            },
        }];
    }
    view
}

#[tokio::test]
async fn a_clustered_node_names_the_owner_of_every_account_it_answers_for() {
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
    let (_, nobodys) = rig.add_account(Default::default()).await;
    {
        let mut s = view.write();
        s.owners.insert(mine.clone(), "node-a".into());
        s.owners.insert(theirs.clone(), "node-b".into());
    }
    let c = rig.get("/admin/cluster").await;
    assert_eq!(
        (
            &c["node"]["id"],
            &c["node"]["standing"],
            &c["node"]["epoch"]
        ),
        (&json!("node-a"), &json!("held"), &json!(4))
    );
    assert_eq!(c["peers"][0]["id"], "node-b");
    assert_eq!(
        c["owners"],
        json!({ mine.clone(): "node-a", theirs.clone(): "node-b" })
    );

    let list = rig.get("/admin/accounts").await;
    let owner_of = |id: &str| {
        list["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .map(|a| a["owner"].clone())
            .unwrap_or_else(|| panic!("{id} listed: {list}"))
    };
    assert_eq!(owner_of(&mine), json!("node-a"));
    assert_eq!(owner_of(&theirs), json!("node-b"));
    assert_eq!(owner_of(&nobodys), json!(null), "no live owner");
    assert_eq!(
        rig.get(&format!("/admin/accounts/{theirs}")).await["owner"],
        "node-b"
    );
    let explain = rig.get(&format!("/admin/accounts/{mine}/explain")).await;
    assert_eq!(explain["owner"], "node-a");
    let live = rig.get("/admin/live").await;
    // The feed carries the same report (only the time left has moved on).
    let mut fed = live["cluster"].clone();
    let mut asked = c.clone();
    for r in [&mut fed, &mut asked] {
        r["node"]["deadline_left_ms"] = json!("…");
    }
    assert_eq!(fed, asked);
    assert!(
        live["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == theirs.as_str() && r["owner"] == "node-b"),
        "{live}"
    );
    // A peer that drops out of the listing leaves its accounts with no live owner.
    view.write().peers.clear();
    assert_eq!(
        rig.get(&format!("/admin/accounts/{theirs}")).await["owner"],
        json!(null)
    );
}

/// The 503 a client of an empty clustered node reads: not "import some" — the node owns no
/// account right now, and says why from its view (not listed yet, peers own them, none
/// claimed yet, none in the cluster).
#[tokio::test]
async fn a_clustered_node_that_owns_no_account_says_so_instead_of_asking_for_an_import() {
    let view = two_node_view();
    // The peer cannot take a spill either, so the answer is this node's own.
    view.write().peers[0].summary = Summary::default();
    let rig = Rig::start_node(
        tempfile::tempdir().unwrap(),
        Default::default(),
        |_| {},
        Some(view.clone()),
    )
    .await;
    let unavailable = async || {
        let (status, body) = rig.respond("gpt-5.4").await;
        assert_eq!(status, 503, "{body}");
        assert!(!body.contains("import some ("), "{body}");
        body
    };
    let body = unavailable().await;
    assert!(
        body.contains("has not listed the cluster's accounts"),
        "{body}"
    );

    {
        let mut s = view.write();
        s.listed = Some(3);
        s.owners.insert("acc-1".into(), "node-b".into());
        s.owners.insert("acc-2".into(), "node-b".into());
    }
    let body = unavailable().await;
    assert!(
        body.contains(
            "this node owns no account right now: 2 of the cluster's 3 accounts belong to 1 \
             live peer node and none of those could take the request (1 not claimed yet)"
        ),
        "{body}"
    );

    view.write().owners.clear();
    let body = unavailable().await;
    assert!(
        body.contains("none of the cluster's 3 accounts is claimed yet"),
        "{body}"
    );

    view.write().listed = Some(0);
    let body = unavailable().await;
    assert!(
        body.contains("the cluster has no accounts; import some through any node"),
        "{body}"
    );
}
