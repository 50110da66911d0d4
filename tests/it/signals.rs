//! Signals through the real binary: `codex-rotor serve` as a child process reloads its keys and
//! models on SIGHUP without restarting, and on SIGTERM drains and exits 0. Its whole log is then
//! searched for the keys it served with: they must never appear. A full run (accounts added,
//! requests streamed, tokens refreshed and rotated) logged at debug level in JSON contains no
//! token, old or rotated.
//!
//! Needs `serve`, `accounts add` and `tests/it/support.rs` (proxy, tokens branches): register
//! it with `mod signals;` in `main.rs` when ops is merged with them. Verified passing on a local
//! merge of proxy (225430c) + ops.

mod pipes;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY_A: &str = "sk-rotor-signal-test-key-aaaaaaaa";
const KEY_B: &str = "sk-rotor-signal-test-key-bbbbbbbb";

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn write_config(
    path: &std::path::Path,
    port: u16,
    data: &std::path::Path,
    key_env: &str,
    model: &str,
) {
    let text = format!(
        "data_dir = \"{}\"\n[server]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"5s\"\n\
         [upstream]\nbase_url = \"http://127.0.0.1:9/backend-api\"\ntoken_url = \"http://127.0.0.1:9/oauth/token\"\n\
         [[keys.keys]]\nname = \"client\"\nkey_env = \"{key_env}\"\n[models]\nlist = [\"{model}\"]\n",
        data.display()
    );
    std::fs::write(path, text).expect("write config");
}

fn kill(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args(["-s", sig, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -s {sig}");
}

/// `GET /v1/models` with a key: (status, body), or None while the daemon is not up.
async fn models(port: u16, key: &str) -> Option<(u16, String)> {
    let resp = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/v1/models"))
        .bearer_auth(key)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().await.unwrap_or_default()))
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn sighup_reloads_keys_and_sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("config.toml");
    let log = dir.path().join("stderr.log");
    let port = free_port();
    write_config(
        &cfg,
        port,
        &dir.path().join("data"),
        "ROTOR_SIG_KEY_A",
        "model-before",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
        .args(["serve", "--log-level", "debug", "--config"])
        .arg(&cfg)
        .env("ROTOR_SIG_KEY_A", KEY_A)
        .env("ROTOR_SIG_KEY_B", KEY_B)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn codex-rotor serve");

    eventually("the daemon answers key A", async || {
        matches!(models(port, KEY_A).await, Some((200, body)) if body.contains("model-before"))
    })
    .await;
    assert_eq!(models(port, KEY_B).await.map(|r| r.0), Some(401));

    // Swap the key and the model list, then SIGHUP: same process, new keys.
    write_config(
        &cfg,
        port,
        &dir.path().join("data"),
        "ROTOR_SIG_KEY_B",
        "model-after",
    );
    kill(&child, "HUP");
    eventually("key B is accepted after SIGHUP", async || {
        matches!(models(port, KEY_B).await, Some((200, body)) if body.contains("model-after"))
    })
    .await;
    assert_eq!(
        models(port, KEY_A).await.map(|r| r.0),
        Some(401),
        "the old key is gone"
    );
    assert!(
        child.try_wait().expect("wait").is_none(),
        "SIGHUP must not stop the daemon"
    );

    kill(&child, "TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "codex-rotor did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut text = String::new();
    std::fs::File::open(&log)
        .expect("log")
        .read_to_string(&mut text)
        .expect("read log");
    assert!(status.success(), "exit status {status:?}; log:\n{text}");
    assert!(
        models(port, KEY_B).await.is_none(),
        "the port is closed after exit"
    );
    assert!(!text.is_empty(), "the daemon logged something");
    for key in [KEY_A, KEY_B] {
        assert!(!text.contains(key), "a client key reached the log:\n{text}");
    }
}

/// The systemd unit's start command is a real command line of this binary (`serve` exists).
#[test]
fn systemd_unit_exec_start_parses() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/examples/codex-rotor.service"
    ))
    .expect("read unit");
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let args: Vec<&str> = line.split_whitespace().collect();
    let cli = <codex_rotor::cli::Cli as clap::Parser>::try_parse_from(&args)
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    assert!(
        matches!(cli.command, codex_rotor::cli::Command::Serve(_)),
        "{line}"
    );
    assert_eq!(cli.global.log_format, Some(codex_rotor::LogFormat::Json));
}

/// Every string value of the JSON files under `dir` whose key names a token.
fn tokens_in(dir: &std::path::Path, out: &mut Vec<String>) {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match v {
                        serde_json::Value::String(s) if k.ends_with("_token") && s.len() >= 8 => {
                            out.push(s.clone())
                        }
                        other => walk(other, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    for entry in std::fs::read_dir(dir).expect("read data dir").flatten() {
        if entry.path().is_dir() {
            tokens_in(&entry.path(), out);
            continue;
        }
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(
            &std::fs::read(entry.path()).unwrap_or_default(),
        ) {
            walk(&v, out);
        }
    }
}

/// A full run — accounts added from auth.json, requests streamed and collected, an expired
/// access token refreshed (new tokens rotate in), SIGTERM — logged at debug level in JSON:
/// no access, refresh or id token (old or rotated) and no client key appears in the log.
#[tokio::test]
async fn a_full_run_never_logs_a_token_or_key() {
    use codex_rotor::sim::{AccountSpec, SimOptions, Simulator};
    let sim = Simulator::start(SimOptions::default(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let cfg = dir.path().join("config.toml");
    let port = free_port();
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {data:?}\n[server]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"5s\"\n\
             [upstream]\nbase_url = {:?}\ntoken_url = {:?}\n[[keys.keys]]\nname = \"client\"\nkey_env = \"ROTOR_FULL_KEY\"\n",
            sim.backend_url(),
            sim.token_url()
        ),
    )
    .expect("write config");
    let mut secrets = vec![KEY_A.to_owned()];
    let mut sim_ids = Vec::new();
    for i in 0..2 {
        let acct = sim.create_account(AccountSpec::default());
        let auth = dir.path().join(format!("auth{i}.json"));
        std::fs::write(&auth, acct.auth_json.to_string()).expect("write auth.json");
        tokens_in(dir.path(), &mut secrets);
        let out = Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
            .args(["accounts", "add", "--auth-json"])
            .arg(&auth)
            .arg("--config")
            .arg(&cfg)
            .output()
            .expect("accounts add");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        sim_ids.push(acct.id);
    }
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
        .args([
            "serve",
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "--config",
        ])
        .arg(&cfg)
        .env("ROTOR_FULL_KEY", KEY_A)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn serve");
    eventually("the daemon is up", async || {
        matches!(models(port, KEY_A).await, Some((200, _)))
    })
    .await;
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/v1/responses");
    for round in 0..3 {
        if round == 1 {
            // Both accounts answer 401 next: each refreshes (rotating its tokens) and the
            // request is answered once a refreshed account is back.
            sim_ids.iter().for_each(|id| sim.expire_access_token(id));
        }
        for stream in [true, false] {
            eventually("a 200 through the pool", async || {
                let resp = http
                    .post(&url)
                    .bearer_auth(KEY_A)
                    .json(&crate::support::responses_body(stream))
                    .send()
                    .await
                    .expect("request");
                let ok = resp.status() == 200;
                let _ = resp.text().await;
                ok
            })
            .await;
        }
    }
    kill(&child, "TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokens_in(&data, &mut secrets); // the tokens rotated in during the run
    let mut text = String::new();
    std::fs::File::open(&log)
        .expect("log")
        .read_to_string(&mut text)
        .expect("read log");
    assert!(
        text.lines().count() > 5,
        "a debug run logs something:\n{text}"
    );
    secrets.sort();
    secrets.dedup();
    // 2 accounts × 3 first tokens + the client key, plus tokens rotated in by the refreshes.
    assert!(secrets.len() >= 9, "tokens collected: {}", secrets.len());
    for s in &secrets {
        assert!(
            !text.contains(s.as_str()),
            "a secret ({} chars) reached the log",
            s.len()
        );
    }
    sim.shutdown().await;
}
