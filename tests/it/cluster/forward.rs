//! Requests across nodes (docs/cluster.md "Requests across nodes"): two real daemons on
//! 127.0.0.1, each with its own account files, in front of one simulator. Who owns which
//! account is pinned in each node's view by the test, as the lease loop would list it: the
//! forwarding, the signed header, the spill and the pool-wide 429 are the daemon's own code,
//! over real sockets.

use crate::support::{POOL_KEY, loopback, responses_body, test_config};
use codex_rotor::cluster::forward::{self, ClusterSecret, Forwarded};
use codex_rotor::cluster::{ClusterView, Peer};
use codex_rotor::server::{Daemon, start_node};
use codex_rotor::sim::{AccountSpec, SimHandle, SimOptions, Simulator};
use codex_rotor::store::FileStore;
use rotor_actors::{AccountRecord, Store};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const SECRET: &str = crate::support::CLUSTER_SECRET;

/// One node: a daemon with its view and its own data directory.
struct Node {
    name: &'static str,
    daemon: Daemon,
    view: Arc<ClusterView>,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn start(sim: &SimHandle, name: &'static str, records: &[AccountRecord]) -> Node {
        Node::start_with(sim, name, records, |_| {}).await
    }

    async fn start_with(
        sim: &SimHandle,
        name: &'static str,
        records: &[AccountRecord],
        tweak: impl FnOnce(&mut codex_rotor::config::Config),
    ) -> Node {
        let dir = tempfile::tempdir().expect("dir");
        let (store, _, _) = FileStore::open(dir.path()).expect("store");
        for r in records {
            store.save(r).expect("saved");
        }
        let mut cfg = test_config(sim, dir.path());
        let secret = dir.path().join("cluster-secret");
        std::fs::write(&secret, SECRET).expect("secret written");
        cfg.cluster.secret_file = Some(secret);
        tweak(&mut cfg);
        let view = ClusterView::new(name.into(), String::new(), 10_000, 1_000);
        hold_session(&view);
        let daemon = start_node(
            cfg,
            Arc::new(store),
            records.to_vec(),
            Vec::new(),
            Some(view.clone()),
        )
        .await
        .expect("node starts");
        Node {
            name,
            daemon,
            view,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.daemon.addr, path)
    }

    /// This node as its peers list it, with what it publishes now.
    fn as_peer(&self) -> Peer {
        Peer {
            id: self.name.into(),
            epoch: 1,
            advertise: self.url(""),
            summary: self.view.read().local.clone(),
        }
    }

    /// Pins who owns what and which peers are live, as the lease loop would.
    fn pin(&self, owners: &[(&AccountRecord, &Node)], peers: &[&Node]) {
        let mut s = self.view.write();
        s.owners = owners
            .iter()
            .map(|(r, n)| (r.id.clone(), n.name.to_owned()))
            .collect();
        s.peers = peers.iter().map(|p| p.as_peer()).collect();
    }

    async fn post(&self, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = http()
            .post(self.url("/v1/responses"))
            .bearer_auth(POOL_KEY)
            .json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("node answers")
    }

    fn last(&self) -> codex_rotor::RequestRecord {
        self.daemon
            .state
            .recent()
            .list(1)
            .into_iter()
            .next()
            .expect("a record")
    }
}

/// Grants the node a session for the test's length, as the store would (only a node that
/// holds its session admits requests).
fn hold_session(view: &ClusterView) {
    let ticket = view.read().lease.sending(view.now());
    view.write().lease.granted(ticket, 1, 3_600_000);
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// Simulator accounts, each imported once (the same record, same id, on every node).
async fn accounts(n: usize) -> (SimHandle, Vec<(String, AccountRecord)>) {
    let sim = Simulator::start(SimOptions::default(), loopback())
        .await
        .expect("sim");
    let accounts = (0..n)
        .map(|_| {
            let created = sim.create_account(AccountSpec::default());
            let mut recs = codex_rotor::demo::import_auth_json(&created.auth_json).expect("import");
            (created.id, recs.remove(0))
        })
        .collect();
    (sim, accounts)
}

/// A Codex-like streamed turn of the conversation `key`.
fn turn(key: &str) -> Value {
    turn_of(key, true)
}

/// A turn of the conversation `key`, streamed or not.
fn turn_of(key: &str, stream: bool) -> Value {
    let mut b = responses_body(stream);
    b["prompt_cache_key"] = json!(key);
    b
}

/// Waits until `node` publishes a summary for which `ok` holds.
async fn published(node: &Node, ok: impl Fn(&codex_rotor::cluster::Summary) -> bool) {
    for _ in 0..100 {
        if ok(&node.view.read().local) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{} never published the summary awaited: {:?}",
        node.name,
        node.view.read().local
    );
}

#[tokio::test]
async fn a_conversation_whose_account_moved_is_forwarded_to_its_owner_and_streams_through() {
    let (sim, accts) = accounts(2).await;
    let ((x_sim, x), (z_sim, z)) = (accts[0].clone(), accts[1].clone());
    // `a` served the conversation on X; X then moved to `b` (which also owns Z).
    let a = Node::start(&sim, "a", std::slice::from_ref(&x)).await;
    let b = Node::start(&sim, "b", &[x.clone(), z.clone()]).await;
    a.pin(&[(&x, &a), (&z, &b)], &[&b]);
    let first = a.post(&turn("conv-1"), &[]).await;
    assert_eq!(first.status(), 200);
    let _ = first.text().await.expect("turn 1");
    assert_eq!(sim.counters(&x_sim).requests, 1);
    assert_eq!(a.last().forwarded_to, None, "served on its own account");

    a.pin(&[(&x, &b), (&z, &b)], &[&b]);
    b.pin(&[(&x, &b), (&z, &b)], &[&a]);
    let second = a.post(&turn("conv-1"), &[("session-id", "s-1")]).await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["content-type"], "text/event-stream");
    let text = second.text().await.expect("turn 2");
    assert!(text.contains("response.completed"), "{text}");
    assert_eq!(
        (sim.counters(&x_sim).requests, sim.counters(&z_sim).requests),
        (2, 0),
        "turn 2 served by the conversation's account on its new owner"
    );
    let (sent, got) = (a.last(), b.last());
    assert_eq!(sent.forwarded_to.as_deref(), Some("b"));
    assert_eq!(sent.status, 200);
    assert_eq!(got.forwarded_from.as_deref(), Some("a"));
    assert_eq!(
        got.client_key.as_deref(),
        Some("test"),
        "the key's name travels"
    );
    assert_eq!(got.account_id.as_deref(), Some(x.id.as_str()));
    assert_eq!(got.forwarded_to, None);
    for n in [a, b] {
        n.daemon.shutdown().await;
    }
}

#[tokio::test]
async fn a_peer_that_fails_before_answering_leaves_the_turn_to_a_local_account() {
    let (sim, accts) = accounts(1).await;
    let (x_sim, x) = accts[0].clone();
    let a = Node::start(&sim, "a", std::slice::from_ref(&x)).await;
    let gone = Node::start(&sim, "gone", &[]).await;
    a.pin(&[(&x, &a)], &[]);
    let _ = a.post(&turn("conv-2"), &[]).await.text().await;
    a.pin(&[(&x, &gone)], &[&gone]);
    gone.daemon.shutdown().await;
    let resp = a.post(&turn("conv-2"), &[]).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.text()
            .await
            .expect("body")
            .contains("response.completed")
    );
    assert_eq!(sim.counters(&x_sim).requests, 2, "served here on X");
    assert_eq!(a.last().forwarded_to, None);
    a.daemon.shutdown().await;
}

#[tokio::test]
async fn a_node_without_a_readable_cluster_secret_does_not_start() {
    let (sim, _) = accounts(0).await;
    let dir = tempfile::tempdir().expect("dir");
    let (store, _, _) = FileStore::open(dir.path()).expect("store");
    let mut cfg = test_config(&sim, dir.path());
    cfg.cluster.secret_env = "CODEX_ROTOR_TEST_UNSET_CLUSTER_SECRET".into();
    let view = ClusterView::new("a".into(), String::new(), 10_000, 1_000);
    let e = start_node(cfg, Arc::new(store), Vec::new(), Vec::new(), Some(view))
        .await
        .err()
        .expect("refused");
    let text = format!("{e:#}");
    assert!(
        text.contains("CODEX_ROTOR_TEST_UNSET_CLUSTER_SECRET"),
        "{text}"
    );
}

#[tokio::test]
async fn a_forged_or_misdirected_forwarded_header_is_refused_saying_why() {
    let (sim, accts) = accounts(1).await;
    let (x_sim, x) = accts[0].clone();
    let b = Node::start(&sim, "b", std::slice::from_ref(&x)).await;
    let body = serde_json::to_vec(&responses_body(false)).expect("json");
    let header = |secret: &str, hop: u8, ts_ms: i64| {
        // As a node reads it: base64 or hex decoded (`[cluster]` secret rules).
        let bytes = codex_rotor::config::secret::decode_binary(secret)
            .unwrap_or_else(|| secret.as_bytes().to_vec());
        let s = ClusterSecret::new(bytes).expect("secret");
        let f = Forwarded {
            node: "a".into(),
            ts_ms,
            hop,
            key: Some("test".into()),
            account: None,
        };
        forward::sign(&s, "POST", "/v1/responses", &f, &body)
    };
    let now = b.daemon.state.now_ms();
    let send = |value: String| {
        let (url, body) = (b.url("/v1/responses"), body.clone());
        async move {
            // No client key: the header is all the request has.
            http()
                .post(url)
                .header("content-type", "application/json")
                .header(forward::HEADER, value)
                .body(body)
                .send()
                .await
                .expect("answer")
        }
    };
    for (value, why) in [
        (
            header("another secret! 0123456789 0123456789", 1, now),
            "signature does not match",
        ),
        (header(SECRET, 2, now), "never forwarded again"),
        (header(SECRET, 1, now - 60_000), "replay"),
        ("v1 node=YQ".to_owned(), "malformed"),
    ] {
        let resp = send(value).await;
        assert_eq!(resp.status(), 403);
        let v: Value = resp.json().await.expect("json");
        let msg = v["error"]["message"].as_str().expect("message");
        assert!(msg.contains(why), "{why}: {msg}");
        assert!(!msg.contains(SECRET), "{msg}");
    }
    // A changed body under a valid header is refused too.
    let valid = header(SECRET, 1, now);
    let tampered = http()
        .post(b.url("/v1/responses"))
        .header(forward::HEADER, valid.clone())
        .body(r#"{"model":"gpt-5.5","input":"other"}"#)
        .send()
        .await
        .expect("answer");
    assert_eq!(tampered.status(), 403);
    assert_eq!(
        sim.counters(&x_sim).requests,
        0,
        "nothing refused reached upstream"
    );
    // The valid one is served without a client key, recorded under the key's name.
    let ok = send(valid).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(b.last().client_key.as_deref(), Some("test"));
    // A node that is not in a cluster accepts no such header at all.
    let single = crate::support::start_env(1).await;
    let resp = single
        .http
        .post(single.url("/v1/responses"))
        .header(forward::HEADER, header(SECRET, 1, now))
        .body(body.clone())
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 403);
    let v: Value = resp.json().await.expect("json");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not in a cluster")),
        "{v}"
    );
    single.shutdown().await;
    b.daemon.shutdown().await;
}

#[tokio::test]
async fn a_node_whose_accounts_are_exhausted_spills_to_the_peer_that_can_serve() {
    let (sim, accts) = accounts(2).await;
    let ((x_sim, x), (z_sim, z)) = (accts[0].clone(), accts[1].clone());
    let a = Node::start(&sim, "a", std::slice::from_ref(&x)).await;
    let b = Node::start(&sim, "b", std::slice::from_ref(&z)).await;
    published(&b, |s| s.serving == 1 && s.owned == 1).await;
    a.pin(&[(&x, &a), (&z, &b)], &[&b]);
    sim.set_usage(&x_sim, 100.0, 10.0);
    let resp = a.post(&responses_body(true), &[]).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.text()
            .await
            .expect("body")
            .contains("response.completed")
    );
    assert_eq!(sim.counters(&x_sim).served_429, 1, "tried here first");
    assert_eq!(sim.counters(&z_sim).requests, 1, "then served by the peer");
    assert_eq!(a.last().forwarded_to.as_deref(), Some("b"));
    for n in [a, b] {
        n.daemon.shutdown().await;
    }
}

#[tokio::test]
async fn with_every_node_exhausted_the_429_names_the_soonest_reset_of_the_cluster() {
    let (sim, accts) = accounts(2).await;
    let ((x_sim, x), (z_sim, z)) = (accts[0].clone(), accts[1].clone());
    let a = Node::start(&sim, "a", std::slice::from_ref(&x)).await;
    let b = Node::start(&sim, "b", std::slice::from_ref(&z)).await;
    sim.set_usage(&x_sim, 100.0, 10.0);
    sim.set_usage(&z_sim, 100.0, 10.0);
    b.pin(&[(&x, &a), (&z, &b)], &[]);
    assert_eq!(b.post(&responses_body(false), &[]).await.status(), 429);
    published(&b, |s| s.serving == 0 && s.soonest_reset.is_some()).await;
    let peer_reset = b.view.read().local.soonest_reset.expect("published");
    a.pin(&[(&x, &a), (&z, &b)], &[&b]);
    let resp = a.post(&responses_body(false), &[]).await;
    assert_eq!(resp.status(), 429);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["type"], "usage_limit_reached");
    let local = a
        .daemon
        .state
        .pool()
        .summary()
        .await
        .soonest_reset_at
        .expect("local reset");
    assert_eq!(
        v["error"]["resets_at"].as_i64(),
        Some(local.min(peer_reset).div_euclid(1000)),
        "{v}"
    );
    // A peer whose reset comes sooner than this node's sets the answer.
    let sooner = a.daemon.state.now_ms() + 90_000;
    a.view.write().peers[0].summary.soonest_reset = Some(sooner);
    let v: Value = a
        .post(&responses_body(false), &[])
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        v["error"]["resets_at"].as_i64(),
        Some(sooner.div_euclid(1000)),
        "{v}"
    );
    assert!(
        v["error"]["resets_in_seconds"]
            .as_u64()
            .is_some_and(|s| s <= 90),
        "{v}"
    );
    assert_eq!(
        sim.counters(&z_sim).requests,
        1,
        "no spill to an exhausted peer"
    );
    for n in [a, b] {
        n.daemon.shutdown().await;
    }
}

#[tokio::test]
async fn a_forwarded_request_is_never_forwarded_again_even_if_ownership_moved_meanwhile() {
    let (sim, accts) = accounts(1).await;
    let (x_sim, x) = accts[0].clone();
    let a = Node::start(&sim, "a", std::slice::from_ref(&x)).await;
    let b = Node::start(&sim, "b", std::slice::from_ref(&x)).await;
    a.pin(&[(&x, &a)], &[&b]);
    let _ = a.post(&turn("conv-3"), &[]).await.text().await;
    // The two views disagree: `a` says X moved to `b`, `b` says it is on `a`.
    a.pin(&[(&x, &b)], &[&b]);
    b.pin(&[(&x, &a)], &[&a]);
    let resp = a.post(&turn("conv-3"), &[]).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.text()
            .await
            .expect("body")
            .contains("response.completed")
    );
    let got = b.last();
    assert_eq!(got.forwarded_from.as_deref(), Some("a"));
    assert_eq!(got.forwarded_to, None, "served where it arrived");
    assert_eq!(got.account_id.as_deref(), Some(x.id.as_str()));
    assert_eq!(sim.counters(&x_sim).requests, 2);
    for n in [a, b] {
        n.daemon.shutdown().await;
    }
}

/// A TCP hop between two nodes the test can cut: every connection through it is dropped at
/// once, as when the peer's host dies mid-answer.
async fn cuttable(to: std::net::SocketAddr) -> (String, Arc<tokio::sync::Notify>) {
    let listener = tokio::net::TcpListener::bind(loopback())
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cut = Arc::new(tokio::sync::Notify::new());
    let c = cut.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let c = c.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = c.notified() => {}
                }
            });
        }
    });
    (format!("http://{addr}"), cut)
}

#[tokio::test]
async fn a_forwarded_stream_the_peer_stops_mid_answer_ends_with_a_failure_in_the_clients_protocol()
{
    let (sim, accts) = accounts(1).await;
    let (z_sim, z) = accts[0].clone();
    // `a` has no account: every request spills to `b`, reached through a hop the test cuts.
    let a = Node::start(&sim, "a", &[]).await;
    let b = Node::start(&sim, "b", std::slice::from_ref(&z)).await;
    published(&b, |s| s.serving == 1).await;
    let (hop, cut) = cuttable(b.daemon.addr).await;
    a.view.write().peers = vec![Peer {
        advertise: hop,
        ..b.as_peer()
    }];
    let messages = json!({"model": "claude-x", "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    for (path, body, ending) in [
        (
            "/v1/responses",
            responses_body(true),
            "event: response.failed",
        ),
        ("/v1/messages", messages, "event: error"),
    ] {
        // The peer's upstream pauses after two events: the cut lands mid-answer.
        sim.inject(
            codex_rotor::sim::FaultSpec::always(codex_rotor::sim::FaultKind::Stall {
                after_events: 2,
                millis: 5_000,
            })
            .for_account(&z_sim)
            .times(1),
        );
        let resp = http()
            .post(a.url(path))
            .bearer_auth(POOL_KEY)
            .json(&body)
            .send()
            .await
            .expect("answer head");
        assert_eq!(resp.status(), 200, "{path}");
        let reading = tokio::spawn(resp.text());
        tokio::time::sleep(Duration::from_millis(700)).await;
        cut.notify_waiters();
        let text = tokio::time::timeout(Duration::from_secs(10), reading)
            .await
            .expect("the stream ends soon after the cut")
            .expect("task")
            .unwrap_or_else(|e| panic!("{path}: the client saw a cut stream: {e}"));
        assert!(text.contains(ending), "{path}: {text}");
        assert!(
            text.contains("stopped answering mid-stream"),
            "{path}: {text}"
        );
        // Every event parses: the failure frames start at an event boundary.
        for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
            for line in block.lines().filter(|l| l.starts_with("data: ")) {
                let data = &line["data: ".len()..];
                if data != "[DONE]" {
                    serde_json::from_str::<Value>(data)
                        .unwrap_or_else(|e| panic!("{path}: {e}: {data:?} in {text}"));
                }
            }
        }
        assert_eq!(a.last().forwarded_to.as_deref(), Some("b"), "{path}");
    }
    for n in [a, b] {
        n.daemon.shutdown().await;
    }
}

/// A peer that accepts connections and never answers (a paused node still completes the TCP
/// handshake): the listener, kept open for the test's length.
async fn silent_peer() -> (String, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = l.accept().await {
            held.push(conn);
        }
    });
    (url, task)
}

#[tokio::test]
async fn a_peer_that_accepts_and_stays_silent_is_given_up_after_the_head_timeout() {
    let (sim, accts) = accounts(1).await;
    let (x_sim, x) = accts[0].clone();
    let dir = tempfile::tempdir().expect("dir");
    let (store, _, _) = FileStore::open(dir.path()).expect("store");
    store.save(&x).expect("saved");
    let mut cfg = test_config(&sim, dir.path());
    let secret = dir.path().join("cluster-secret");
    std::fs::write(&secret, SECRET).expect("secret written");
    cfg.cluster.secret_file = Some(secret);
    cfg.cluster.peer_head_timeout = Duration::from_millis(800);
    cfg.upstream.request_deadline = Duration::from_secs(60);
    let view = ClusterView::new("a".into(), String::new(), 10_000, 1_000);
    hold_session(&view);
    let a = start_node(
        cfg,
        Arc::new(store),
        vec![x.clone()],
        Vec::new(),
        Some(view.clone()),
    )
    .await
    .expect("node starts");
    let url = |p: &str| format!("http://{}{p}", a.addr);
    let post = async |body: &Value| {
        http()
            .post(url("/v1/responses"))
            .bearer_auth(POOL_KEY)
            .json(body)
            .send()
            .await
            .expect("answered")
    };
    view.write().owners = [(x.id.clone(), "a".to_owned())].into();
    let _ = post(&turn("conv-9")).await.text().await;
    // X moves to a peer that is paused: it accepts, and sends nothing.
    let (peer_url, _peer) = silent_peer().await;
    {
        let mut s = view.write();
        s.owners = [(x.id.clone(), "stalled".to_owned())].into();
        s.peers = vec![Peer {
            id: "stalled".into(),
            epoch: 1,
            advertise: peer_url,
            summary: Default::default(),
        }];
    }
    // A stream's head, and a `stream: false` answer's envelope, are both bounded by it.
    for (stream, served) in [(true, 2), (false, 3)] {
        let sent = std::time::Instant::now();
        let resp = tokio::time::timeout(Duration::from_secs(10), post(&turn_of("conv-9", stream)))
            .await
            .unwrap_or_else(|_| panic!("stream: {stream}: still waiting on the silent peer"));
        let took = sent.elapsed();
        assert_eq!(resp.status(), 200, "stream: {stream}");
        let text = resp.text().await.expect("body");
        if stream {
            assert!(text.contains("response.completed"), "{text}");
        } else {
            let v: Value = serde_json::from_str(&text).expect("a collected answer");
            assert_eq!(v["status"], "completed", "{v}");
        }
        assert!(
            took >= Duration::from_millis(800) && took < Duration::from_secs(5),
            "stream: {stream}: given up after the head timeout, not the request deadline: {took:?}"
        );
        assert_eq!(sim.counters(&x_sim).requests, served, "served here on X");
        let last = a.state.recent().list(1).into_iter().next().expect("record");
        assert_eq!(last.forwarded_to, None);
    }
    a.shutdown().await;
}

/// What a collected answer's body says once the ids and times that differ between two serves
/// are blanked.
fn without_ids(mut v: Value) -> Value {
    fn blank(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if k == "id" || k.ends_with("_at") {
                        *x = Value::Null;
                    } else {
                        blank(x);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(blank),
            _ => {}
        }
    }
    blank(&mut v);
    v
}

#[tokio::test]
async fn a_stream_false_forward_waits_on_a_peer_slower_than_the_head_timeout_and_answers_as_the_peer_does()
 {
    let (sim, accts) = accounts(1).await;
    let (x_sim, x) = accts[0].clone();
    let short = |cfg: &mut codex_rotor::config::Config| {
        cfg.cluster.peer_head_timeout = Duration::from_millis(600);
    };
    let a = Node::start_with(&sim, "a", std::slice::from_ref(&x), short).await;
    let b = Node::start_with(&sim, "b", std::slice::from_ref(&x), short).await;
    a.pin(&[(&x, &a)], &[&b]);
    let _ = a.post(&turn_of("conv-c", false), &[]).await.text().await;
    assert_eq!(sim.counters(&x_sim).requests, 1, "turn 1 on X, here");
    // X moves to `b`, whose upstream takes far longer than the head timeout to answer.
    a.pin(&[(&x, &b)], &[&b]);
    b.pin(&[(&x, &b)], &[&a]);
    sim.inject(
        codex_rotor::sim::FaultSpec::always(codex_rotor::sim::FaultKind::Silence { millis: 2_000 })
            .for_account(&x_sim)
            .times(1),
    );
    let sent = std::time::Instant::now();
    let forwarded = a.post(&turn_of("conv-c", false), &[]).await;
    assert!(
        sent.elapsed() >= Duration::from_secs(2),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(
        a.last().forwarded_to.as_deref(),
        Some("b"),
        "waited on the peer"
    );
    assert_eq!(b.last().forwarded_from.as_deref(), Some("a"));
    assert_eq!(sim.counters(&x_sim).requests, 2, "turn 2 on X, on b");
    // The client's answer is the one `b` gives when asked directly (the envelope is gone).
    let direct = b.post(&turn_of("conv-c", false), &[]).await;
    // The framing (a relayed body is chunked) and the per-answer ids differ.
    let head = |r: &reqwest::Response| {
        let mut h: Vec<(String, String)> = r
            .headers()
            .iter()
            .filter(|(n, _)| !["date", "content-length", "transfer-encoding"].contains(&n.as_str()))
            .map(|(n, v)| match n.as_str() {
                "x-codex-turn-state" | "x-request-id" => (n.to_string(), String::new()),
                _ => (n.to_string(), v.to_str().unwrap_or("").to_owned()),
            })
            .collect();
        h.sort();
        h
    };
    assert_eq!(forwarded.status(), direct.status());
    assert_eq!(head(&forwarded), head(&direct));
    assert_eq!(forwarded.headers()["content-type"], "application/json");
    let (f, d): (Value, Value) = (
        forwarded.json().await.expect("json"),
        direct.json().await.expect("json"),
    );
    assert_eq!(f["status"], "completed", "{f}");
    assert_eq!(without_ids(f), without_ids(d));
    for n in [a, b] {
        n.daemon.shutdown().await;
    }
}

/// A streamed request whose local failover outlasts the first heartbeat and ends with no
/// account: it spills to the peer — whose upstream stays silent `peer_silence_ms` before its
/// head — and the peer's events continue the stream already open. The body, and the longest
/// time the client heard nothing before its last byte.
async fn a_late_failure_spills(
    path: &str,
    body: Value,
    peer_silence_ms: u64,
) -> (String, Duration) {
    let (sim, accts) = accounts(2).await;
    let ((x_sim, x), (z_sim, z)) = (accts[0].clone(), accts[1].clone());
    let a = Node::start_with(&sim, "a", std::slice::from_ref(&x), |cfg| {
        cfg.server.sse_heartbeat = Duration::from_millis(300);
    })
    .await;
    let b = Node::start(&sim, "b", std::slice::from_ref(&z)).await;
    published(&b, |s| s.serving == 1 && s.owned == 1).await;
    a.pin(&[(&x, &a), (&z, &b)], &[&b]);
    // X is at its limit and says so only after three of a's heartbeats.
    sim.set_usage(&x_sim, 100.0, 10.0);
    sim.inject(
        codex_rotor::sim::FaultSpec::always(codex_rotor::sim::FaultKind::Silence { millis: 1_000 })
            .for_account(&x_sim)
            .times(1),
    );
    if peer_silence_ms > 0 {
        sim.inject(
            codex_rotor::sim::FaultSpec::always(codex_rotor::sim::FaultKind::Silence {
                millis: peer_silence_ms,
            })
            .for_account(&z_sim)
            .times(1),
        );
    }
    let mut resp = http()
        .post(a.url(path))
        .bearer_auth(POOL_KEY)
        .json(&body)
        .send()
        .await
        .expect("answer head");
    assert_eq!(resp.status(), 200, "{path}");
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let (mut bytes, mut quiet) = (Vec::new(), Duration::ZERO);
    let read = async {
        let mut last = std::time::Instant::now();
        while let Some(chunk) = resp.chunk().await.expect("a whole stream") {
            quiet = quiet.max(last.elapsed());
            last = std::time::Instant::now();
            bytes.extend_from_slice(&chunk);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the stream ends");
    let text = String::from_utf8(bytes).expect("text");
    assert_eq!(
        sim.counters(&x_sim).served_429,
        1,
        "{path}: tried here first"
    );
    assert_eq!(
        sim.counters(&z_sim).requests,
        1,
        "{path}: then served by the peer, once"
    );
    let (sent, got) = (a.last(), b.last());
    assert_eq!(sent.forwarded_to.as_deref(), Some("b"), "{path}");
    assert_eq!(sent.status, 200, "{path}");
    assert_eq!(got.forwarded_from.as_deref(), Some("a"), "{path}");
    // Every event parses.
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        for line in block.lines().filter(|l| l.starts_with("data: ")) {
            let data = &line["data: ".len()..];
            if data != "[DONE]" {
                serde_json::from_str::<Value>(data)
                    .unwrap_or_else(|e| panic!("{path}: {e}: {data:?} in {text}"));
            }
        }
    }
    for n in [a, b] {
        n.daemon.shutdown().await;
    }
    (text, quiet)
}

#[tokio::test]
async fn a_stream_whose_local_failover_outlasted_the_heartbeat_spills_into_the_open_stream() {
    let (text, _) = a_late_failure_spills("/v1/responses", responses_body(true), 0).await;
    let keepalive = text.find(": keepalive").expect("heartbeats first");
    let created = text
        .find("event: response.created")
        .expect("the peer's events");
    assert!(keepalive < created, "{text}");
    assert!(
        text[..created].matches(": keepalive").count() >= 2,
        "{text}"
    );
    assert_eq!(text.matches("event: response.created").count(), 1, "{text}");
    assert_eq!(
        text.matches("event: response.completed").count(),
        1,
        "{text}"
    );
    assert!(!text.contains("response.failed"), "{text}");
}

#[tokio::test]
async fn a_late_anthropic_stream_spilt_to_a_peer_has_one_message_start() {
    let body = json!({"model": "claude-x", "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let (text, _) = a_late_failure_spills("/v1/messages", body, 0).await;
    assert!(text.starts_with("event: message_start"), "{text}");
    let ping = text.find("event: ping").expect("heartbeats");
    let delta = text
        .find("event: content_block_start")
        .expect("the peer's events");
    assert!(ping < delta, "{text}");
    assert_eq!(text.matches("event: message_start").count(), 1, "{text}");
    assert_eq!(text.matches("event: message_stop").count(), 1, "{text}");
    assert!(!text.contains("event: error"), "{text}");
}

/// The peer takes longer than a heartbeat to answer the spilt stream's head (its upstream is
/// slow to start, well within `cluster.peer_head_timeout`): the keepalives go on meanwhile, so
/// no client or proxy idle timer tuned to the heartbeat fires.
#[tokio::test]
async fn a_late_spill_keeps_the_stream_alive_while_the_peer_is_slow_to_answer() {
    let (text, quiet) = a_late_failure_spills("/v1/responses", responses_body(true), 1_500).await;
    assert_eq!(
        text.matches("event: response.completed").count(),
        1,
        "{text}"
    );
    assert!(!text.contains("response.failed"), "{text}");
    // The heartbeat is 300 ms; the peer is silent for 1.5 s.
    assert!(
        quiet < Duration::from_millis(900),
        "the client heard nothing for {quiet:?}: {text}"
    );
}
