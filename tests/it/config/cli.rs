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
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("CODEX_ROTOR_POOL__STRATEGY") && stderr.contains("pool.strategy"),
        "{stderr}"
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
