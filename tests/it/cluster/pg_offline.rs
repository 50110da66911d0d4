//! `codex-rotor accounts import` / `add` with `backend = "postgres"` and no daemon running:
//! the real binary merges the file into the throwaway database in one transaction — records
//! sealed, each changed account's tokens marked imported (token version + 1) and its fencing
//! generation moved on, an account imported again kept once, new tokens clearing
//! `refresh_ambiguous` — and refuses, changing nothing,
//! while a node session in the database is live.

use super::pg_store::{KEY_B64, key};
use super::throwaway::ThrowawayPg;
use codex_rotor::sim::{AccountSpec, SimOptions, Simulator};
use codex_rotor::store::postgres::LeaseDb;
use codex_rotor::store::postgres::records::read_records;
use std::path::Path;
use std::process::{Command, Output};

/// A config naming the database, and a listen port nothing answers on (no daemon).
fn write_config(dir: &Path, url: &str) -> std::path::PathBuf {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let path = dir.join("config.toml");
    let text = format!(
        "data_dir = {data:?}\n[server]\nlisten = \"127.0.0.1:{port}\"\n\
         [store]\nbackend = \"postgres\"\nurl = {url:?}\n",
        data = dir.join("data").display().to_string(),
    );
    std::fs::write(&path, text).expect("config written");
    path
}

/// `codex-rotor --config CONFIG accounts ARGS…` with the store key in the environment.
fn accounts(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
        .arg("--config")
        .arg(config)
        .arg("accounts")
        .args(args)
        .env("CODEX_ROTOR_STORE_KEY", KEY_B64)
        .env_remove("CODEX_ROTOR_ADMIN_URL")
        .output()
        .expect("runs")
}

/// `token_version` and `owner_gen` of `account`.
async fn versions(url: &str, account: &str) -> (i64, i64) {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let row = c
        .query_one(
            "select token_version, owner_gen from rotor_account_owner where account = $1",
            &[&account],
        )
        .await
        .expect("owner row");
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_import_lands_in_the_database_unless_a_node_is_live() {
    let pg = ThrowawayPg::start();
    let url = pg.database("offline").await;
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path(), &url);
    let sim = Simulator::start(SimOptions::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .expect("sim");
    let files: Vec<_> = (0..2)
        .map(|i| {
            let acct = sim.create_account(AccountSpec::default());
            let path = dir.path().join(format!("auth-{i}.json"));
            std::fs::write(&path, acct.auth_json.to_string()).expect("auth.json");
            (acct, path)
        })
        .collect();
    let file = |i: usize| files[i].1.to_str().unwrap().to_owned();

    let out = accounts(&config, &["import", &file(0)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    let db = read_records(&url, &key()).await.expect("read");
    assert_eq!(db.len(), 1);
    let first = db[0].id.clone();
    assert_eq!(report["added"], serde_json::json!([first]), "{report}");
    assert_eq!(
        db[0].tokens.refresh_token.as_deref(),
        files[0].0.auth_json["tokens"]["refresh_token"].as_str(),
        "the refresh token is in the database (sealed)"
    );
    assert_eq!(
        versions(&url, &first).await,
        (1, 1),
        "tokens imported, generation 1"
    );

    // `add` of a second account merges with what the database holds.
    let out = accounts(&config, &["add", "--auth-json", &file(1)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read_records(&url, &key()).await.unwrap().len(), 2);
    // The same file again changes nothing: no new token version, no new generation.
    let out = accounts(&config, &["import", &file(0)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(report["added"], serde_json::json!([]), "{report}");
    assert_eq!(report["updated"], serde_json::json!([first]), "{report}");
    let (tokens, _) = versions(&url, &first).await;
    assert_eq!(tokens, 1, "the same tokens are no new tokens");
    // An account marked refresh_ambiguous (a takeover found an expired intent) is cleared by
    // an import of new tokens for it: the operator's re-login.
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c.execute(
        "update rotor_account_owner set refresh_ambiguous = true where account = $1",
        &[&first],
    )
    .await
    .unwrap();
    let mut relogin = files[0].0.auth_json.clone();
    relogin["tokens"]["refresh_token"] = serde_json::json!("rt_after_a_relogin_0123456789");
    relogin["last_refresh"] = serde_json::json!("2099-01-01T00:00:00Z");
    let path = dir.path().join("relogin.json");
    std::fs::write(&path, relogin.to_string()).unwrap();
    let out = accounts(&config, &["import", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(report["updated"], serde_json::json!([first]), "{report}");
    let ambiguous: bool = c
        .query_one(
            "select refresh_ambiguous from rotor_account_owner where account = $1",
            &[&first],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!ambiguous, "new tokens clear the ambiguity");
    assert_eq!(versions(&url, &first).await.0, 2, "a new token version");
    let db = read_records(&url, &key()).await.unwrap();
    let rec = db.iter().find(|r| r.id == first).unwrap();
    assert_eq!(
        rec.tokens.refresh_token.as_deref(),
        Some("rt_after_a_relogin_0123456789")
    );

    let listed = accounts(&config, &["list", "--json"]);
    assert!(listed.status.success());
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&first));

    // A node holding a live session owns the accounts: refused, nothing changed.
    let mut lease = LeaseDb::connect(&url).await.expect("lease db");
    lease
        .acquire("node-x", 60_000, None)
        .await
        .unwrap()
        .expect("session");
    let third = sim.create_account(AccountSpec::default());
    let path = dir.path().join("auth-3.json");
    std::fs::write(&path, third.auth_json.to_string()).unwrap();
    let out = accounts(&config, &["import", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("live node sessions in the database (node-x)")
            && stderr.contains("--admin-url")
            && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    assert!(!stderr.contains(KEY_B64), "{stderr}");
    assert_eq!(read_records(&url, &key()).await.unwrap().len(), 2);
    assert_eq!(versions(&url, &first).await.0, 2);
}
