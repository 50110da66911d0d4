//! Importing through a node that does not own the account (docs/cluster.md "Imports"): two
//! real nodes; fresh tokens for an account b owns are imported through a's admin API while b
//! serves it. The database holds one record of it, with the new tokens; b — not a — runs it
//! and reloads them (its copy holds their access token, and its requests keep succeeding with no refresh
//! token presented twice); neither node had a write fenced out. A brand-new account imported
//! through a is stored once, unowned, and claimed by whichever node hashing gives it to. A
//! label imported through a reaches b and stays; and either node exports every account.

use super::nodes::{Cluster, Node};
use super::pg_daemon::{ADMIN_KEY, served};
use super::pg_store::key;
use codex_rotor::sim::AccountSpec;
use codex_rotor::store::postgres::records::read_records;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// `GET /admin/accounts/export` at node `n`: its entries.
async fn export(c: &Cluster, n: &Node) -> Vec<Value> {
    let v = c
        .admin_get(n, "/admin/accounts/export")
        .await
        .expect("export answered");
    v["accounts"].as_array().expect("accounts").clone()
}

/// When the access token of node `n`'s copy of `id` expires (its `/admin/accounts`), if it
/// runs the account: which tokens the copy holds.
async fn held_expiry(c: &Cluster, n: &Node, id: &str) -> Option<i64> {
    shown(c, n, id).await?["token_expires_at"].as_i64()
}

/// `codex_rotor_store_fenced_writes_total` at node `n`.
async fn fenced_writes(c: &Cluster, n: &Node) -> f64 {
    let name = "codex_rotor_store_fenced_writes_total";
    c.sample(n, name, &[])
        .await
        .unwrap_or_else(|| panic!("{name} at {}", n.port))
}

/// `POST /admin/accounts/import` at node `n`.
async fn import(c: &Cluster, n: &Node, body: &Value) -> Value {
    let r = c
        .http
        .post(format!("http://127.0.0.1:{}/admin/accounts/import", n.port))
        .bearer_auth(ADMIN_KEY)
        .body(body.to_string())
        .send()
        .await
        .expect("import answered");
    assert_eq!(r.status(), 200, "import accepted");
    r.json().await.expect("report")
}

/// An account `node` owns in `owners`, and its record as the database stores it.
async fn owned_by(
    c: &Cluster,
    owners: &std::collections::BTreeMap<String, String>,
    node: &str,
) -> (String, rotor_actors::AccountRecord) {
    let id = owners
        .iter()
        .find(|(_, o)| o.as_str() == node)
        .map(|(id, _)| id.clone())
        .unwrap_or_else(|| panic!("{node} owns an account"));
    let stored = read_records(&c.url, &key()).await.expect("records");
    let rec = stored.into_iter().find(|r| r.id == id).expect("stored");
    (id, rec)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_through_a_node_that_does_not_own_the_account_reaches_its_owner_once() {
    let c = Cluster::start(6).await;
    let (a, b) = c.pair().await;
    let owners = c.owners().await;
    let (id, rec) = owned_by(&c, &owners, "b").await;

    // Fresh tokens for it, as a re-login elsewhere would bring: its stored refresh token is
    // rotated at the token endpoint, so the one b holds is spent from now on.
    let old_rt = rec.tokens.refresh_token.clone().expect("refresh token");
    // Issued a second later than the stored ones (token times are whole seconds), so the
    // import rule sees them as newer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh: Value = c
        .http
        .post(c.sim.token_url())
        .json(&json!({"grant_type": "refresh_token", "refresh_token": old_rt}))
        .send()
        .await
        .expect("token endpoint")
        .json()
        .await
        .expect("tokens");
    let new_rt = fresh["refresh_token"].as_str().expect("new refresh token");
    assert_ne!(new_rt, old_rt);

    // b serves all along (three clients at once), so its actors write their records while
    // the import lands.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load: Vec<_> = (0..3)
        .map(|_| {
            let (http, port) = (c.http.clone(), b.port);
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = if served(&http, port).await {
                        &ok
                    } else {
                        &failed
                    };
                    n.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let report = import(
        &c,
        &a,
        &json!({
            "access_token": fresh["access_token"],
            "refresh_token": new_rt,
            "id_token": fresh["id_token"],
        }),
    )
    .await;
    assert_eq!(report["updated"], json!([id]), "{report}");
    assert_eq!(report["added"], json!([]), "{report}");
    let stored = read_records(&c.url, &key()).await.expect("records");
    let imported = stored.iter().find(|r| r.id == id).expect("stored");
    assert_eq!(imported.tokens.refresh_token.as_deref(), Some(new_rt));
    let new_expiry = imported.tokens.expires_at.expect("an expiry");
    assert_ne!(
        rec.tokens.expires_at,
        Some(new_expiry),
        "told apart by expiry"
    );

    c.within(
        "b runs the account with the imported tokens",
        Duration::from_secs(10),
        &[&a, &b],
        async || held_expiry(&c, &b, &id).await == Some(new_expiry),
    )
    .await;
    // Some more of b's writes, then the record as stored.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.expect("load");
    }
    let stored = read_records(&c.url, &key()).await.expect("records");
    assert_eq!(stored.len(), 6, "one record per account, none added");
    let rec = stored.iter().find(|r| r.id == id).expect("still stored");
    assert_eq!(rec.tokens.refresh_token.as_deref(), Some(new_rt));
    assert_eq!(c.owners().await, owners, "nobody took anything over");
    let on_a = c.running(&a).await.expect("a's accounts");
    assert!(!on_a.contains(&id), "a runs no actor for b's account");
    for n in [&a, &b] {
        assert_eq!(
            fenced_writes(&c, n).await,
            0.0,
            "{}: no write fenced out",
            n.name
        );
        let log = std::fs::read_to_string(&n.log).unwrap_or_default();
        assert!(!log.contains("fenced out"), "{}:\n{log}", n.name);
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(
        ok > 0 && failed == 0,
        "b served throughout: {ok} ok, {failed} failed"
    );
    for acct in c.sim.accounts() {
        assert_eq!(
            c.sim.counters(&acct).refresh_reused,
            0,
            "no refresh token used twice"
        );
    }

    // A new account through a: stored once, claimed by the node hashing gives it to.
    let created = c.sim.create_account(AccountSpec::default());
    let report = import(&c, &a, &created.auth_json).await;
    let new_id = report["added"][0].as_str().expect("added").to_owned();
    c.within(
        "one node runs the new account",
        Duration::from_secs(10),
        &[&a, &b],
        async || {
            let owner = c.owners().await.get(&new_id).cloned();
            let (ra, rb) = (c.running(&a).await, c.running(&b).await);
            let (Some(ra), Some(rb)) = (ra, rb) else {
                return false;
            };
            match owner.as_deref() {
                Some("a") => ra.contains(&new_id) && !rb.contains(&new_id),
                Some("b") => rb.contains(&new_id) && !ra.contains(&new_id),
                _ => false,
            }
        },
    )
    .await;
    let stored = read_records(&c.url, &key()).await.expect("records");
    assert_eq!(stored.len(), 7);
    for n in [&a, &b] {
        assert_eq!(
            fenced_writes(&c, n).await,
            0.0,
            "{}: no write fenced out",
            n.name
        );
    }
}

/// Account `id` as node `n`'s `/admin/accounts` shows it, if it runs it.
async fn shown(c: &Cluster, n: &Node, id: &str) -> Option<Value> {
    let v = c.admin_get(n, "/admin/accounts").await?;
    v["accounts"]
        .as_array()?
        .iter()
        .find(|a| a["id"] == id)
        .cloned()
}

/// A label-only import (its tokens are the stored ones, so the token version stays) of an
/// account b owns, through a: b shows the new label within seconds, and keeps it after it
/// served requests on the account and wrote its record again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_imported_through_a_node_that_does_not_own_the_account_reaches_its_owner_and_stays()
{
    let c = Cluster::start(6).await;
    let (a, b) = c.pair().await;
    let owners = c.owners().await;
    let (id, rec) = owned_by(&c, &owners, "b").await;
    let label = "relabelled through a";
    assert_ne!(rec.identity.label.as_deref(), Some(label));
    let mut entry = rotor_actors::legacy::export(&rec);
    entry["label"] = json!(label);
    let versions = |rules: &rotor_actors::ownership::rules::Rules| {
        rules
            .accounts
            .get(&id)
            .map(|r| (r.owner_gen, r.token_version))
    };
    let db = codex_rotor::store::postgres::LeaseDb::connect(&c.url)
        .await
        .expect("connect");
    let before = versions(&db.snapshot().await.expect("rows"));

    let report = import(&c, &a, &json!({ "accounts": [entry] })).await;
    assert_eq!(report["updated"], json!([id]), "{report}");
    assert_eq!(
        versions(&db.snapshot().await.expect("rows")),
        before,
        "a label is no import of tokens: owner generation and token version stay"
    );
    c.within(
        "b shows the label imported through a",
        Duration::from_secs(5),
        &[&a, &b],
        async || {
            shown(&c, &b, &id)
                .await
                .is_some_and(|v| v["label"] == label)
        },
    )
    .await;

    // b serves requests on the account (and so writes its record: usage, quota).
    let requests = |rec: &rotor_actors::AccountRecord| rec.usage.requests;
    let served_before = requests(&rec);
    let mut on_it = 0;
    for _ in 0..60 {
        assert!(served(&c.http, b.port).await, "b serves");
        if c.last_request(&b).await["account_id"] == id.as_str() {
            on_it += 1;
            if on_it == 3 {
                break;
            }
        }
    }
    assert_eq!(on_it, 3, "b served requests on the account");
    c.within(
        "b's writes of the account land, with the new label",
        Duration::from_secs(10),
        &[&a, &b],
        async || {
            let stored = read_records(&c.url, &key()).await.expect("records");
            let rec = stored.iter().find(|r| r.id == id).expect("stored");
            requests(rec) > served_before && rec.identity.label.as_deref() == Some(label)
        },
    )
    .await;
    let stored = read_records(&c.url, &key()).await.expect("records");
    let rec = stored.iter().find(|r| r.id == id).expect("stored");
    assert_eq!(rec.identity.label.as_deref(), Some(label), "stored");
    let v = shown(&c, &b, &id).await.expect("b runs the account");
    assert_eq!(v["label"], label, "b still shows it: {v}");
    assert_eq!(c.owners().await, owners, "nobody took anything over");
    for n in [&a, &b] {
        assert_eq!(
            fenced_writes(&c, n).await,
            0.0,
            "{}: no write fenced out",
            n.name
        );
    }
}

/// The `(accountId, userId, refreshToken)` of each entry of an export, sorted.
fn entries(accounts: &[Value]) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = accounts
        .iter()
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
            (s("accountId"), s("userId"), s("refreshToken"))
        })
        .collect();
    out.sort();
    out
}

/// The export of a cluster node lists every account of the cluster, whichever node owns it,
/// each once with its tokens — what the database holds; imported into a fresh single-node
/// data directory (`codex-rotor accounts import --data-dir`) it gives the same accounts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_of_a_cluster_node_lists_every_account_once_and_imports_into_a_single_node() {
    let c = Cluster::start(6).await;
    let (a, b) = c.pair().await;
    let stored = read_records(&c.url, &key()).await.expect("records");
    let want = entries(
        &stored
            .iter()
            .map(rotor_actors::legacy::export)
            .collect::<Vec<_>>(),
    );
    assert_eq!(want.len(), 6);
    assert!(want.iter().all(|(_, _, rt)| !rt.is_empty()), "with tokens");
    let on_a = export(&c, &a).await;
    let on_b = export(&c, &b).await;
    let running = c.running(&a).await.expect("a's accounts");
    assert!(running.len() < 6, "a owns only some: {running:?}");
    assert_eq!(entries(&on_a), want, "a exports every account, each once");
    assert_eq!(entries(&on_b), want, "so does b");
    let ids: std::collections::BTreeSet<&str> =
        on_a.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids, c.accounts.iter().map(String::as_str).collect());

    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("accounts.json");
    std::fs::write(&file, json!({ "accounts": on_a }).to_string()).expect("file");
    let data = tmp.path().join("data");
    let bin = env!("CARGO_BIN_EXE_codex-rotor");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .current_dir(tmp.path())
            .args(["accounts", "--data-dir"])
            .arg(&data)
            .args(args)
            .output()
            .expect("codex-rotor accounts");
        assert!(out.status.success(), "{args:?}: {out:?}");
        out.stdout
    };
    run(&["import", file.to_str().expect("utf-8")]);
    let back: Value = serde_json::from_slice(&run(&["export"])).expect("an export");
    let back = back["accounts"].as_array().expect("accounts");
    assert_eq!(
        entries(back),
        want,
        "the single node holds the same accounts"
    );
}
