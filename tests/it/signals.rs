//! Signals through the real binary: `codex-rotor serve` as a child process reloads its keys and
//! models on SIGHUP without restarting, and on SIGTERM drains and exits 0. Its whole log is then
//! searched for the keys it served with: they must never appear.
//!
//! Needs the `serve` subcommand (proxy branch): register it with `mod signals;` in `main.rs`
//! when ops and proxy are merged. Verified passing on a merge of proxy + ops.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY_A: &str = "sk-rotor-signal-test-key-aaaaaaaa";
const KEY_B: &str = "sk-rotor-signal-test-key-bbbbbbbb";

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn write_config(path: &std::path::Path, port: u16, data: &std::path::Path, key_env: &str, model: &str) {
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
    write_config(&cfg, port, &dir.path().join("data"), "ROTOR_SIG_KEY_A", "model-before");
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
    write_config(&cfg, port, &dir.path().join("data"), "ROTOR_SIG_KEY_B", "model-after");
    kill(&child, "HUP");
    eventually("key B is accepted after SIGHUP", async || {
        matches!(models(port, KEY_B).await, Some((200, body)) if body.contains("model-after"))
    })
    .await;
    assert_eq!(models(port, KEY_A).await.map(|r| r.0), Some(401), "the old key is gone");
    assert!(child.try_wait().expect("wait").is_none(), "SIGHUP must not stop the daemon");

    kill(&child, "TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "codex-rotor did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut text = String::new();
    std::fs::File::open(&log).expect("log").read_to_string(&mut text).expect("read log");
    assert!(status.success(), "exit status {status:?}; log:\n{text}");
    assert!(models(port, KEY_B).await.is_none(), "the port is closed after exit");
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
    assert!(matches!(cli.command, codex_rotor::cli::Command::Serve(_)), "{line}");
    assert_eq!(cli.global.log_format, Some(codex_rotor::logging::LogFormat::Json));
}
