//! The `config` subcommands, `--version` and `--help` through the real binary.

use super::write_config;
use codex_rotor::config::Config;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
}

#[test]
fn config_check_through_the_binary() {
    let good = write_config("[server]\nlisten = \"127.0.0.1:9\"\n");
    let out = bin()
        .args(["config", "check", "--config"])
        .arg(good.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");

    let bad = write_config(
        "[server]\nlisten = \"0.0.0.0:9\"\n[[keys.keys]]\nname = \"x\"\nkey_env = \"ROTOR_TEST_KEY\"\nrpm = 0\n",
    );
    let out = bin()
        .arg("--config")
        .arg(bad.path())
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("keys.keys[0].rpm: must be > 0"), "{stdout}");
    assert!(
        stdout.contains("keys.keys[0].key_env: environment variable ROTOR_TEST_KEY is not set"),
        "{stdout}"
    );
    assert!(
        stdout.contains("admin.key_env: an admin key is required"),
        "{stdout}"
    );

    // The same file with its secrets in the environment and the rpm fixed by an override.
    let out = bin()
        .arg("--config")
        .arg(bad.path())
        .args(["config", "check"])
        .env("ROTOR_TEST_KEY", "client-key-from-env")
        .env("CODEX_ROTOR_KEYS__KEYS__0__RPM", "10")
        .env("CODEX_ROTOR_ADMIN__KEY", "admin-key-from-env")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let out = bin()
        .args(["config", "check"])
        .env("CODEX_ROTOR_POOL__STRATEGY", "fastest")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // Every problem is listed on stdout, load errors and validation alike.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("CODEX_ROTOR_POOL__STRATEGY") && stdout.contains("pool.strategy"),
        "{stdout}"
    );
}

#[test]
fn config_show_prints_effective_config_without_secrets() {
    let out = bin()
        .args(["config", "show"])
        .current_dir(std::env::temp_dir())
        .env("CODEX_ROTOR_ADMIN__KEY", "admin-key-from-env")
        .env("CODEX_ROTOR_POOL__MAX_LEASES_PER_ACCOUNT", "7")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("max_leases_per_account = 7"), "{stdout}");
    assert!(
        stdout.contains("key = \"***\"") && !stdout.contains("admin-key-from-env"),
        "{stdout}"
    );
    let reparsed =
        Config::from_toml(&stdout.replace("key = \"***\"", "")).expect("show output reparses");
    assert_eq!(reparsed.pool.max_leases_per_account, 7);
}

#[test]
fn version_and_help_with_examples() {
    let out = bin().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("codex-rotor {}", env!("CARGO_PKG_VERSION"))
    );
    let out = bin().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Examples:") && help.contains("config check"),
        "{help}"
    );
    assert!(
        help.contains("--log-format") && help.contains("--config"),
        "{help}"
    );
    let out = bin().args(["config", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("CODEX_ROTOR_<SECTION>__<KEY>"), "{help}");
}

/// Issue 15 item 12: seven mistakes of different kinds in one file, and two bad environment
/// overrides, are all named in one `config check` run, each with its key (and, for the file,
/// its line), instead of one per run.
#[test]
fn config_check_names_every_problem_of_the_file_and_the_environment_in_one_run() {
    let broken = write_config(
        r#"data_dir = 7
[server]
listen = "not-an-address"
shutdown_grace = "soon"

[srever]
listen = "127.0.0.1:1"

[pool]
strategy = "fastest"

[[keys.keys]]
name = "a"
rpm = -1

[[keys.keys]]
name = "b"
rmp = 5

[upstream]
max_retries_per_account = "two"
"#,
    );
    let out = bin()
        .args(["config", "check", "--config"])
        .arg(broken.path())
        .env("CODEX_ROTOR_POOL__TICK", "later")
        .env("CODEX_ROTOR_SERVER__LISTN", "127.0.0.1:2")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let expected = [
        ("data_dir", "line 1"),
        ("server.listen", "line 3"),
        ("server.shutdown_grace", "line 4"),
        ("srever", "line 6"),
        ("pool.strategy", "line 10"),
        ("keys.keys[0].rpm", "line 14"),
        ("keys.keys[1].rmp", "line 18"),
        ("upstream.max_retries_per_account", "line 21"),
    ];
    let all = format!("{stdout}{stderr}");
    for (key, line) in expected {
        assert!(
            all.lines()
                .any(|l| l.contains(&format!(": {key}: ")) && l.contains(line)),
            "{key} ({line}) is named: {all}"
        );
    }
    for (var, key) in [
        ("CODEX_ROTOR_POOL__TICK", "pool.tick"),
        ("CODEX_ROTOR_SERVER__LISTN", "server.listn"),
    ] {
        assert!(
            all.lines().any(|l| l.contains(var) && l.contains(key)),
            "{var} ({key}) is named: {all}"
        );
    }
    assert!(
        !all.contains("127.0.0.1:2"),
        "an override's value is not echoed (it may be a secret): {all}"
    );
}

/// Behind a reverse proxy (`trust_forwarded_headers`), a loopback listener says nothing about
/// who the clients are: the admin key is required exactly as off loopback (issue 15 item 3).
/// `config check` says so, and `serve` refuses to start instead of handing the admin API (and
/// `/admin/accounts/export`, the refresh tokens) to whoever the proxy forwards.
#[test]
fn behind_a_trusted_proxy_the_admin_key_is_required() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let data = tempfile::tempdir().expect("data dir");
    let proxied = write_config(&format!(
        "data_dir = {:?}\n[server]\nlisten = \"127.0.0.1:{port}\"\ntrust_forwarded_headers = true\n\
         [[keys.keys]]\nname = \"x\"\nkey_env = \"ROTOR_PROXIED_KEY\"\n\
         [upstream]\nbase_url = \"http://127.0.0.1:1/backend-api\"\ntoken_url = \"http://127.0.0.1:1/oauth/token\"\n",
        data.path().display().to_string()
    ));
    let check = |extra: &[(&str, &str)]| {
        bin()
            .arg("--config")
            .arg(proxied.path())
            .args(["config", "check"])
            .env("ROTOR_PROXIED_KEY", "client-key-from-env")
            .envs(extra.iter().copied())
            .output()
            .unwrap()
    };
    let out = check(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("admin.key_env: an admin key is required")
            && stdout.contains("server.trust_forwarded_headers"),
        "{stdout}"
    );
    assert!(
        check(&[("CODEX_ROTOR_ADMIN__KEY", "admin-key-from-env")])
            .status
            .success()
    );
    assert!(
        check(&[("CODEX_ROTOR_ADMIN__ENABLED", "false")])
            .status
            .success()
    );

    // `serve` refuses: it exits at once, naming the keys (a daemon still running after the
    // guard has started, which is the bug).
    let mut child = bin()
        .arg("--config")
        .arg(proxied.path())
        .arg("serve")
        .env("ROTOR_PROXIED_KEY", "client-key-from-env")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let listening = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            panic!(
                "serve started behind a trusted proxy without an admin key (listening: {listening})"
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("admin.key_env") && stderr.contains("server.trust_forwarded_headers"),
        "{stderr}"
    );
}
