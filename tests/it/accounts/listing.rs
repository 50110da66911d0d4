//! What `codex-rotor accounts` prints (issue 15 item 15): `add`/`import` answer in one format
//! offline and through a daemon; `list` shows the derived status badge (an active account with
//! an exhausted bucket is `rate_limited`), the label and the quota, and prints the same table
//! through `--admin-url`; a `list` with no daemon and no data directory creates nothing.

use super::bin::{Serve, config, free_port, offline, ok, records};
use rotor_actors::jwt::encode_unsigned;
use rotor_actors::quota::Bucket;
use rotor_actors::{Clock, SystemClock};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::process::Command;

/// A live access JWT (2.5 h left) for workspace `account`.
fn access(account: &str, email: &str) -> String {
    let exp = SystemClock.now_ms() / 1000 + 9_000;
    encode_unsigned(&json!({
        "exp": exp, "email": email,
        "https://api.openai.com/auth": {"chatgpt_account_id": account, "chatgpt_user_id": "u", "chatgpt_plan_type": "pro"},
    }))
}

/// The keys of a JSON object printed on stdout.
fn keys(stdout: &str) -> BTreeSet<String> {
    let v: Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {stdout}"))
        .keys()
        .cloned()
        .collect()
}

#[test]
fn list_shows_the_derived_badge_label_and_quota_and_the_same_table_through_the_daemon() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let file = tmp.path().join("two.jsonl");
    let lines = format!(
        "{}\n{}\n",
        json!({"access_token": access("acct-busy", "busy@example.com"), "refresh_token": "rt_busy", "label": "team-busy"}),
        json!({"access_token": access("acct-free", "free@example.com"), "refresh_token": "rt_free"}),
    );
    std::fs::write(&file, lines).expect("write");
    let offline_import = ok(&offline(
        &data,
        &["import", file.to_str().expect("utf8")],
        &[],
    ));

    // The busy account's weekly window is exhausted for another two hours (as after a 429).
    let mut busy = records(&data)
        .into_iter()
        .find(|r| r.identity.label.as_deref() == Some("team-busy"))
        .expect("busy account");
    busy.quota.secondary = Some(Bucket {
        used_percent: 100.0,
        window_secs: Some(604_800),
        reset_at: Some(SystemClock.now_ms() + 7_200_000),
        limit_reached: true,
        ..Bucket::default()
    });
    let (store, _, _) = codex_rotor::store::FileStore::open(&data).expect("store");
    rotor_actors::Store::save(&store, &busy).expect("saved");
    drop(store);

    let table = ok(&offline(&data, &["list"], &[]));
    let row = table
        .lines()
        .find(|l| l.contains(&busy.id))
        .unwrap_or_else(|| panic!("no row for the account:\n{table}"));
    assert!(
        row.contains("rate_limited"),
        "the badge is derived from the quota: {row}"
    );
    assert!(row.contains("team-busy"), "label column: {row}");
    assert!(row.contains("100%"), "quota column: {row}");
    let header = table.lines().next().expect("header");
    for col in ["LABEL", "STATUS", "QUOTA"] {
        assert!(header.contains(col), "{header}");
    }
    let free_row = table
        .lines()
        .find(|l| l.contains("free@example.com"))
        .expect("free row");
    assert!(free_row.contains("active"), "{free_row}");
    let listed_json = ok(&offline(&data, &["list", "--json"], &[]));

    let port = free_port();
    let daemon = Serve::start(&config(tmp.path(), &data, port, None, ""), port);
    let remote = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
            .arg("accounts")
            .arg("--admin-url")
            .arg(daemon.url())
            .args(args)
            .output()
            .expect("cli runs")
    };
    assert_eq!(
        ok(&remote(&["list"])),
        table,
        "the same table through the admin API"
    );
    assert_eq!(ok(&remote(&["list", "--json"])), listed_json);

    // add/import answer in the offline format through the daemon too.
    let auth = tmp.path().join("auth.json");
    let doc = json!({"tokens": {"access_token": access("acct-third", "third@example.com"), "refresh_token": "rt_third"}});
    std::fs::write(&auth, doc.to_string()).expect("write");
    let remote_add = ok(&remote(&[
        "add",
        "--auth-json",
        auth.to_str().expect("utf8"),
    ]));
    assert_eq!(
        keys(&remote_add),
        keys(&offline_import),
        "{remote_add}\n{offline_import}"
    );
    let added: Value = serde_json::from_str(&remote_add).expect("json");
    assert_eq!(added["added"].as_array().map(Vec::len), Some(1), "{added}");
    let remote_import = ok(&remote(&["import", file.to_str().expect("utf8")]));
    assert_eq!(
        keys(&remote_import),
        keys(&offline_import),
        "{remote_import}"
    );
    drop(daemon);
}

#[test]
fn list_with_no_daemon_and_no_data_dir_creates_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
        .current_dir(tmp.path())
        .args(["accounts", "list"])
        .env_remove("CODEX_ROTOR_CONFIG")
        .env_remove("CODEX_ROTOR_ADMIN_URL")
        .env_remove("CODEX_ROTOR_DATA_DIR")
        .env(
            "CODEX_ROTOR_SERVER__LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .output()
        .expect("runs");
    ok(&out);
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(
        left.is_empty(),
        "nothing created in the working directory: {left:?}"
    );
}
