//! The `codex-rotor accounts` binary: all-or-nothing imports, add/list/export on a data
//! directory without a daemon, and the same commands routed through a running daemon's admin
//! API (whose account actors then own the files).

use super::auth_json;
use codex_rotor::store::FileStore;
use rotor_actors::AccountRecord;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// Runs `codex-rotor accounts --data-dir DIR <args>`.
fn cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
        .arg("accounts")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("CODEX_ROTOR_ADMIN_URL")
        .output()
        .expect("the binary runs")
}

fn stored(dir: &Path) -> Vec<AccountRecord> {
    FileStore::open(dir).expect("data dir opens").1
}

#[test]
fn cli_imports_all_or_nothing_and_lists_exports_without_leaking() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let bad = dir.join("bad.txt");
    std::fs::write(&bad, "rt_one\nrt_two\ngarbage here\n").expect("write");
    let out = cli(dir, &["import", bad.to_str().expect("utf8")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(stored(dir).is_empty(), "a bad file imports nothing");

    let auth = dir.join("auth.json");
    std::fs::write(&auth, auth_json("acct-9", "user-9", "rt_cli").to_string()).expect("write");
    let out = cli(dir, &["add", "--auth-json", auth.to_str().expect("utf8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(dir, &["add", "--refresh-token", "rt_second"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(dir, &["add", "--refresh-token", "not-a-refresh-token"]);
    assert!(!out.status.success());
    // Adding the same auth.json again updates, it does not duplicate.
    assert!(
        cli(dir, &["add", "--auth-json", auth.to_str().expect("utf8")])
            .status
            .success()
    );
    let recs = stored(dir);
    assert_eq!(recs.len(), 2);

    let list = cli(dir, &["list", "--json"]);
    let text = String::from_utf8_lossy(&list.stdout);
    let rows: Value = serde_json::from_str(&text).expect("list --json is JSON");
    assert_eq!(rows.as_array().map(Vec::len), Some(2));
    assert!(
        !text.contains("rt_cli") && !text.contains("rt_second"),
        "list never shows tokens"
    );

    let minimal = cli(dir, &["export", "--minimal"]);
    let doc: Value = serde_json::from_slice(&minimal.stdout).expect("export is JSON");
    let mut rts: Vec<&str> = doc["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .filter_map(|a| a["refreshToken"].as_str())
        .collect();
    rts.sort_unstable();
    assert_eq!(rts, vec!["rt_cli", "rt_second"]);
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn with_the_daemon_running_the_cli_goes_through_its_admin_api() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = tmp.path().join("config.toml");
    // Upstream points at a closed local port: nothing leaves 127.0.0.1.
    let text = format!(
        "data_dir = {:?}\n[server]\nlisten = \"127.0.0.1:{port}\"\n[upstream]\nbase_url = \"http://127.0.0.1:1/backend-api\"\ntoken_url = \"http://127.0.0.1:1/oauth/token\"\n",
        tmp.path().join("data").display().to_string()
    );
    std::fs::write(&config, text).expect("config");
    let _daemon = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("daemon"),
    );
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
            .arg("--config")
            .arg(&config)
            .arg("accounts")
            .args(args)
            .env_remove("CODEX_ROTOR_ADMIN_URL")
            .output()
            .expect("cli runs")
    };
    let up = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "the daemon listens");

    let auth = tmp.path().join("auth.json");
    std::fs::write(
        &auth,
        auth_json("acct-live", "user-live", "rt_live").to_string(),
    )
    .expect("write");
    let out = run(&["add", "--auth-json", auth.to_str().expect("utf8")]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("using its admin API"), "{stderr}");

    // The running pool knows the account (an offline write to its files would not show here).
    let list = run(&["list"]);
    let listed = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(listed.contains("a@example.com"), "{listed}");
    assert!(!listed.contains("rt_live"), "listing never shows tokens");
    let minimal = run(&["export", "--minimal"]);
    let doc: Value = serde_json::from_slice(&minimal.stdout).expect("export JSON");
    assert_eq!(doc["accounts"][0]["refreshToken"], "rt_live");
    assert_eq!(doc["accounts"].as_array().map(Vec::len), Some(1));
}

/// A child process killed (and reaped) when the test ends, even by a failed assertion.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
