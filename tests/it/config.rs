//! Config: every file in `config/` parses (TOML through `Config`, nginx through `nginx -t`, the
//! Caddyfile and the systemd unit structurally); `default.toml` is exactly the defaults and
//! lists every knob; environment overrides; validation names every problem's key; the
//! `config check` subcommand through the real binary.

use codex_rotor::config::{Config, ConfigError, ConfigProblem, Secret};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read config dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

/// An env lookup that knows every `CODEX_ROTOR_*` variable the examples name.
fn example_env(name: &str) -> Option<String> {
    name.starts_with("CODEX_ROTOR_")
        .then(|| format!("value-of-{name}"))
}

#[test]
fn every_file_in_config_is_checked() {
    let files = files_under(&config_dir());
    assert!(
        files.len() >= 8,
        "expected default.toml and the examples, got {files:?}"
    );
    for file in &files {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        match file.extension().and_then(|e| e.to_str()) {
            Some("toml") => check_toml(file),
            Some("conf") => check_nginx(file),
            Some("service") => check_unit(file),
            _ if name == "Caddyfile" => check_caddyfile(file),
            _ => panic!(
                "{}: no check for this kind of file; add one",
                file.display()
            ),
        }
    }
}

fn check_toml(file: &Path) {
    let mut cfg = Config::load_with_env(Some(file), no_env())
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    // Key files named by examples do not exist here: point them at a real file.
    let tmp = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(tmp.path(), "key-from-file\n").expect("write key file");
    for k in &mut cfg.keys.keys {
        if k.key_file.is_some() {
            k.key_file = Some(tmp.path().to_path_buf());
        }
    }
    let problems = cfg.validate_in(&example_env);
    assert!(problems.is_empty(), "{}: {problems:?}", file.display());
}

fn check_nginx(file: &Path) {
    let text = std::fs::read_to_string(file).expect("read nginx.conf");
    for needle in [
        "proxy_buffering off;",
        "proxy_http_version 1.1;",
        "proxy_read_timeout 3600s;",
        "X-Forwarded-For",
        "X-Forwarded-Proto",
    ] {
        assert!(text.contains(needle), "nginx.conf lacks {needle}");
    }
    // The real parser: wrap the site file in a minimal main config and run `nginx -t`.
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("nginx is not installed: run tests/run (it installs Debian's nginx)");
    let dir = tempfile::tempdir().expect("tempdir");
    let main = dir.path().join("nginx.conf");
    let wrapper = format!(
        "error_log {d}/error.log;\npid {d}/nginx.pid;\nevents {{}}\nhttp {{\n\
         client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};\n\
         uwsgi_temp_path {d}; scgi_temp_path {d}; access_log off;\ninclude {f};\n}}\n",
        d = dir.path().display(),
        f = file.display()
    );
    std::fs::write(&main, wrapper).expect("write wrapper");
    let out = Command::new(nginx)
        .arg("-t")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&main)
        .output()
        .expect("run nginx -t");
    assert!(
        out.status.success(),
        "nginx -t rejected {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn balanced_braces(text: &str) -> bool {
    let mut depth: i64 = 0;
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for c in line.chars() {
            depth += match c {
                '{' => 1,
                '}' => -1,
                _ => 0,
            };
            if depth < 0 {
                return false;
            }
        }
    }
    depth == 0
}

fn check_caddyfile(file: &Path) {
    let text = std::fs::read_to_string(file).expect("read Caddyfile");
    assert!(balanced_braces(&text), "Caddyfile braces do not balance");
    let live: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    assert!(
        live.iter().any(|l| l.trim() == "flush_interval -1"),
        "Caddyfile must flush SSE at once"
    );
    assert!(
        live.iter()
            .any(|l| l.trim().starts_with("reverse_proxy 127.0.0.1:8080"))
    );
}

/// `Key=Value` lines of a systemd unit, by section.
fn unit_entries(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_owned();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not key=value: {line}"));
        out.push((section.clone(), k.to_owned(), v.to_owned()));
    }
    out
}

fn check_unit(file: &Path) {
    let text = std::fs::read_to_string(file).expect("read unit");
    let entries = unit_entries(&text);
    let get = |sec: &str, key: &str| {
        entries
            .iter()
            .find(|(s, k, _)| s == sec && k == key)
            .map(|(_, _, v)| v.clone())
            .unwrap_or_else(|| panic!("{}: [{sec}] {key} missing", file.display()))
    };
    let sections: BTreeSet<&str> = entries.iter().map(|(s, _, _)| s.as_str()).collect();
    assert_eq!(sections, BTreeSet::from(["Install", "Service", "Unit"]));
    assert_eq!(get("Service", "KillSignal"), "SIGTERM");
    assert_eq!(get("Service", "NoNewPrivileges"), "yes");
    assert_eq!(get("Service", "ProtectSystem"), "strict");
    let stop =
        humantime::parse_duration(&get("Service", "TimeoutStopSec")).expect("TimeoutStopSec");
    let grace = Config::default().server.shutdown_grace;
    assert!(
        stop > grace,
        "TimeoutStopSec {stop:?} must exceed shutdown_grace {grace:?}"
    );
    // The pre-start check is a real command line of this binary.
    let pre = get("Service", "ExecStartPre");
    let args: Vec<&str> = pre.split_whitespace().collect();
    <codex_rotor::cli::Cli as clap::Parser>::try_parse_from(&args)
        .unwrap_or_else(|e| panic!("{pre}: {e}"));
}

#[test]
fn default_toml_is_the_defaults_and_lists_every_knob() {
    let path = config_dir().join("default.toml");
    let loaded = Config::load_with_env(Some(&path), no_env()).expect("default.toml loads");
    assert_eq!(loaded, Config::default());
    let text = std::fs::read_to_string(&path).expect("read default.toml");
    let raw: toml::Table = text.parse().expect("default.toml is TOML");
    let defaults = toml::Table::try_from(Config::default()).expect("defaults serialize");
    assert_eq!(
        leaf_keys(&raw, ""),
        leaf_keys(&defaults, ""),
        "default.toml must list every knob"
    );
}

fn leaf_keys(table: &toml::Table, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (k, v) in table {
        let key = format!("{prefix}{k}");
        match v {
            toml::Value::Table(t) if !t.is_empty() => {
                out.extend(leaf_keys(t, &format!("{key}.")));
            }
            _ => {
                out.insert(key);
            }
        }
    }
    out
}

fn write_config(text: &str) -> tempfile::NamedTempFile {
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
