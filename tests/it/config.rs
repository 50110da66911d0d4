//! Config: loading (file, defaults, humantime durations), environment overrides, errors and
//! validation that name their key, `pool_config`, secrets never printed. Files in `config/`
//! are checked in `config/files.rs`, the binary's `config` subcommands in `config/cli.rs`.

mod cli;
mod cluster;
mod files;

use codex_rotor::config::{Config, ConfigError, ConfigProblem, Secret};
use std::path::{Path, PathBuf};

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

pub(super) fn write_config(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("temp config");
    std::fs::write(file.path(), text).expect("write config");
    file
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn missing_default_file_means_defaults_but_a_named_file_must_exist() {
    let named = Config::load_with_env(Some(Path::new("/nonexistent/codex-rotor.toml")), no_env());
    assert!(matches!(named, Err(ConfigError::Read { .. })), "{named:?}");
    let empty = write_config("");
    assert_eq!(
        Config::load_with_env(Some(empty.path()), no_env()).unwrap(),
        Config::default()
    );
}

#[test]
fn file_values_and_humantime_durations_are_read() {
    let f = write_config(
        "data_dir = \"/srv/rotor\"\n[server]\nshutdown_grace = \"2m 30s\"\npath_prefix = \"/codex\"\n\
         [pool]\nstrategy = \"round_robin\"\n[upstream]\nidle_timeout = \"90s\"\n",
    );
    let cfg = Config::load_with_env(Some(f.path()), no_env()).unwrap();
    assert_eq!(cfg.data_dir, PathBuf::from("/srv/rotor"));
    assert_eq!(cfg.server.shutdown_grace.as_secs(), 150);
    assert_eq!(cfg.server.path_prefix, "/codex");
    assert_eq!(cfg.pool.strategy, codex_rotor::config::Strategy::RoundRobin);
    assert_eq!(cfg.upstream.idle_timeout.as_secs(), 90);
    assert_eq!(
        cfg.upstream.connect_timeout,
        Config::default().upstream.connect_timeout
    );
}

#[test]
fn parse_errors_name_the_key() {
    let unknown = write_config("[server]\nlistn = \"0.0.0.0:1\"\n");
    let err = Config::load_with_env(Some(unknown.path()), no_env())
        .unwrap_err()
        .to_string();
    assert!(err.contains("listn"), "{err}");
    assert!(err.contains("server"), "{err}");

    let bad_duration = write_config("[server]\nshutdown_grace = \"soon\"\n");
    let err = Config::load_with_env(Some(bad_duration.path()), no_env()).unwrap_err();
    match err {
        ConfigError::Parse { key, .. } => assert_eq!(key, "server.shutdown_grace"),
        other => panic!("{other}"),
    }

    let bad_list = write_config("[[keys.keys]]\nname = \"a\"\nrpm = -1\n");
    let err = Config::load_with_env(Some(bad_list.path()), no_env()).unwrap_err();
    match err {
        ConfigError::Parse { key, .. } => assert_eq!(key, "keys.keys[0].rpm"),
        other => panic!("{other}"),
    }
}

#[test]
fn environment_overrides_win_over_the_file() {
    let f = write_config(
        "[server]\nlisten = \"127.0.0.1:1111\"\n[upstream]\nmax_retries_per_account = 2\n",
    );
    let cfg = Config::load_with_env(
        Some(f.path()),
        env(&[
            ("CODEX_ROTOR_SERVER__LISTEN", "127.0.0.1:2222"),
            ("CODEX_ROTOR_SERVER__TRUST_FORWARDED_HEADERS", "true"),
            ("CODEX_ROTOR_POOL__STRATEGY", "sticky"),
            ("CODEX_ROTOR_POOL__TICK", "250ms"),
            ("CODEX_ROTOR_DATA_DIR", "/var/lib/x"),
            ("CODEX_ROTOR_KEYS__KEYS__0__NAME", "env-key"),
            ("CODEX_ROTOR_KEYS__KEYS__0__KEY", "12345678901234567890"),
            ("CODEX_ROTOR_KEYS__KEYS__0__RPM", "30"),
            // Behind a trusted proxy the admin key is required (issue 15 item 3).
            ("CODEX_ROTOR_ADMIN__KEY", "admin-key-from-env-0123"),
            ("CODEX_ROTOR_MODELS__LIST", "[\"a\", \"b\"]"),
            ("CODEX_ROTOR_POOL_KEY", "not-an-override"),
        ]),
    )
    .unwrap();
    assert_eq!(cfg.server.listen.port(), 2222);
    assert!(cfg.server.trust_forwarded_headers);
    assert_eq!(cfg.pool.strategy, codex_rotor::config::Strategy::Sticky);
    assert_eq!(cfg.pool.tick.as_millis(), 250);
    assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/x"));
    assert_eq!(cfg.upstream.max_retries_per_account, 2, "file value kept");
    assert_eq!(cfg.keys.keys.len(), 1);
    assert_eq!(cfg.keys.keys[0].name, "env-key");
    assert_eq!(
        cfg.keys.keys[0].key,
        Some(Secret::from("12345678901234567890"))
    );
    assert_eq!(cfg.keys.keys[0].rpm, Some(30));
    assert_eq!(cfg.models.list, vec!["a", "b"]);
    // A key given through the environment is not a secret in a file.
    assert!(
        cfg.validate_in(&|_| None).is_empty(),
        "{:?}",
        cfg.validate_in(&|_| None)
    );
}

#[test]
fn a_misspelt_override_is_an_error_naming_the_variable() {
    let err = Config::load_with_env(None, env(&[("CODEX_ROTOR_SERVER__LISTN", "x")])).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConfigError::Env { .. }), "{text}");
    assert!(
        text.contains("CODEX_ROTOR_SERVER__LISTN") && text.contains("listn"),
        "{text}"
    );

    let err = Config::load_with_env(
        None,
        env(&[("CODEX_ROTOR_SERVER__SHUTDOWN_GRACE", "later")]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("server.shutdown_grace"), "{err}");
}

#[test]
fn validate_lists_every_problem_with_its_key() {
    let f = write_config(
        r#"
[server]
listen = "0.0.0.0:8080"
path_prefix = "codex/"
sse_heartbeat = "0s"

[[keys.keys]]
name = "a"
key_env = "K_A"

[[keys.keys]]
name = "a"
key_env = "K_B"
rpm = 0
max_concurrent = 0
models = []

[[keys.keys]]
name = "c"
key = "literal-secret-in-file"

[[keys.keys]]
name = "d"
key_env = "K_MISSING"

[admin]
key_env = "K_ADMIN"

[upstream]
base_url = "chatgpt.com/backend-api"
max_accounts_per_request = 0

[logging]
level = "info,=["
"#,
    );
    let cfg = Config::load_with_env(Some(f.path()), no_env()).unwrap();
    let lookup = |name: &str| match name {
        "K_A" | "K_ADMIN" => Some("same-key-for-both".to_owned()),
        "K_B" => Some("another-key".to_owned()),
        _ => None,
    };
    let problems = cfg.validate_in(&lookup);
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "keys.keys[2].key",
            "server.path_prefix",
            "server.sse_heartbeat",
            "keys.keys[1].name",
            "keys.keys[1].rpm",
            "keys.keys[1].max_concurrent",
            "keys.keys[1].models",
            "keys.keys[3].key_env",
            "admin.key_env",
            "upstream.base_url",
            "upstream.max_accounts_per_request",
            "logging.level",
        ],
        "{problems:#?}"
    );
    let text = ConfigProblem::list(&problems);
    assert!(text.contains("keys.keys[1].rpm: must be > 0"), "{text}");
    assert!(
        text.contains("admin.key_env: must differ from every client key (equals keys.keys[0])"),
        "{text}"
    );
    assert!(text.contains("K_MISSING is not set"), "{text}");
    assert!(
        !text.contains("same-key-for-both") && !text.contains("literal-secret-in-file"),
        "{text}"
    );
}

#[test]
fn an_open_pool_binds_only_loopback() {
    let mut cfg = Config::default();
    assert!(
        cfg.validate_bind().is_empty(),
        "loopback without keys is fine"
    );
    cfg.server.listen = "0.0.0.0:8080".parse().unwrap();
    let keys: Vec<String> = cfg.validate_bind().into_iter().map(|p| p.key).collect();
    assert_eq!(keys, vec!["server.listen", "admin.key_env"]);
    cfg.server.listen = "[::1]:8080".parse().unwrap();
    assert!(cfg.validate_bind().is_empty(), "IPv6 loopback is loopback");
    cfg.server.listen = "10.0.0.5:8080".parse().unwrap();
    cfg.keys.keys.push(codex_rotor::config::ClientKeyConfig {
        name: "k".into(),
        key: Some(Secret::from("client-key-123456")),
        ..Default::default()
    });
    cfg.admin.enabled = false;
    assert!(cfg.validate_bind().is_empty(), "{:?}", cfg.validate_bind());
    cfg.admin.enabled = true;
    cfg.admin.key = Some(Secret::from("admin-key-123456"));
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
}

#[test]
fn debug_and_show_never_print_secrets() {
    let mut cfg = Config::default();
    cfg.admin.key = Some(Secret::from("admin-secret-value"));
    cfg.keys.keys.push(codex_rotor::config::ClientKeyConfig {
        name: "k".into(),
        key: Some(Secret::from("client-secret-value")),
        ..Default::default()
    });
    let debug = format!("{cfg:?}");
    let shown = toml::to_string(&cfg).unwrap();
    for out in [debug, shown] {
        assert!(!out.contains("secret-value"), "{out}");
        assert!(out.contains("***"), "{out}");
    }
}

#[test]
fn pool_config_carries_pool_and_refresh_knobs() {
    let f = write_config(
        "[pool]\nstrategy = \"sticky\"\nmax_leases_per_account = 4\ntick = \"2s\"\n\
         default_429_backoff = \"90s\"\nrestart_budget = 7\n\
         [pool.plan_routes]\n\"gpt-5.5\" = [\"plus\", \"pro\"]\n\"gpt-5.5-pro\" = [\"pro\"]\n\
         [refresh]\nmargin = \"10m\"\njitter = \"30s\"\nmax_concurrent = 3\nmax_per_minute = 12\n",
    );
    let pc = Config::load_with_env(Some(f.path()), no_env())
        .unwrap()
        .pool_config();
    assert_eq!(pc.strategy, rotor_actors::Strategy::Sticky);
    assert_eq!(pc.max_leases_per_account, 4);
    assert_eq!(pc.tick.as_secs(), 2);
    assert_eq!(pc.default_429_backoff.as_secs(), 90);
    assert_eq!(pc.restart_budget, 7);
    assert_eq!(pc.refresh_margin.as_secs(), 600);
    assert_eq!(pc.refresh_jitter.as_secs(), 30);
    assert_eq!(pc.max_concurrent_refreshes, 3);
    assert_eq!(pc.max_refreshes_per_minute, 12);
    // The pool takes the first matching prefix: the longer one must come first.
    assert_eq!(
        pc.plan_routes,
        vec![
            ("gpt-5.5-pro".to_string(), vec!["pro".to_string()]),
            (
                "gpt-5.5".to_string(),
                vec!["plus".to_string(), "pro".to_string()]
            ),
        ]
    );
    let d = Config::default().pool_config();
    assert_eq!(d.strategy, rotor_actors::Strategy::LeastUsed);
    assert_eq!(d.max_leases_per_account, 3);
}
