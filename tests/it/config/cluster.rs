//! `[cluster]` validation: what `config check` and start-up refuse in a node's config, each
//! problem naming its key, and the cluster secret never echoed.

use super::write_config;
use codex_rotor::config::Config;
use std::process::Command;

/// A 32-byte secret as base64 (`openssl rand -base64 32` gives this shape).
const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=";
/// A store key (32 bytes, base64).
const STORE_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// A node config that validates: postgres store, id, advertise, timings.
const GOOD: &str = "[store]\nbackend = \"postgres\"\nurl = \"host=/run/postgresql dbname=rotor\"\n\
    [cluster]\nenabled = true\nnode_id = \"node-a\"\nadvertise = \"http://10.0.0.5:8080\"\n";

/// The environment of a node: store key and cluster secret.
fn node_env(secret: &str) -> impl Fn(&str) -> Option<String> {
    let secret = secret.to_owned();
    move |name: &str| match name {
        "CODEX_ROTOR_STORE_KEY" => Some(STORE_KEY.to_owned()),
        "CODEX_ROTOR_CLUSTER_SECRET" => Some(secret.clone()),
        _ => None,
    }
}

/// The problems of `toml` under `env`, as `key: message` lines.
fn problems(toml: &str, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let cfg = Config::from_toml(toml).expect("parses");
    cfg.validate_in(env)
        .into_iter()
        .map(|p| format!("{}: {}", p.key, p.message))
        .collect()
}

/// The one problem of `toml`, which must name `key`.
fn only_problem(toml: &str, env: &dyn Fn(&str) -> Option<String>, key: &str) -> String {
    let found = problems(toml, env);
    assert_eq!(found.len(), 1, "{toml}: {found:#?}");
    assert!(found[0].starts_with(&format!("{key}: ")), "{found:#?}");
    found[0].clone()
}

#[test]
fn a_complete_node_config_validates_and_a_disabled_section_is_never_checked() {
    assert_eq!(problems(GOOD, &node_env(SECRET)), Vec::<String>::new());
    // Hex works as well as base64.
    let hex = "ab".repeat(32);
    assert_eq!(problems(GOOD, &node_env(&hex)), Vec::<String>::new());
    // A single node with the section filled but off: nothing is asked of it.
    let off = "[cluster]\nenabled = false\nmargin = \"9s\"\nadvertise = \"nonsense\"\n";
    assert_eq!(problems(off, &|_| None), Vec::<String>::new());
}

#[test]
fn cluster_mode_needs_the_postgres_store() {
    let files =
        "[cluster]\nenabled = true\nnode_id = \"a\"\nadvertise = \"http://10.0.0.5:8080\"\n";
    let p = only_problem(files, &node_env(SECRET), "cluster.enabled");
    assert!(p.contains("backend = \"postgres\""), "{p}");
}

#[test]
fn the_node_id_defaults_to_the_host_name_and_must_be_a_plain_name() {
    let cfg = Config::from_toml(&GOOD.replace("node_id = \"node-a\"\n", "")).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("host name")
        .trim()
        .to_owned();
    assert_eq!(cfg.cluster.resolve_node_id(), Ok(host));
    for bad in ["", "node a", "n/1", &"x".repeat(65)] {
        let toml = GOOD.replace("\"node-a\"", &format!("{bad:?}"));
        let p = only_problem(&toml, &node_env(SECRET), "cluster.node_id");
        assert!(p.contains("letters, digits"), "{p}");
    }
}

#[test]
fn advertise_must_be_a_reachable_base_url_and_defaults_to_a_reachable_listener() {
    // Unset, the node advertises its listener — which must then be one peers can reach.
    let none = GOOD.replace("advertise = \"http://10.0.0.5:8080\"\n", "");
    assert_eq!(problems(&none, &node_env(SECRET)), Vec::<String>::new());
    let cfg = Config::from_toml(&none).unwrap();
    assert_eq!(cfg.cluster.resolve_advertise(cfg.server.listen), Ok(None));
    let anywhere = format!(
        "[server]\nlisten = \"0.0.0.0:8080\"\n[[keys.keys]]\nname = \"k\"\nkey = \"client-key-0123456789\"\n[admin]\nkey_env = \"ADMIN\"\n{none}"
    );
    let env = |name: &str| match name {
        "ADMIN" => Some("admin-key-0123456789".to_owned()),
        _ => node_env(SECRET)(name),
    };
    let found = problems(&anywhere, &env);
    assert!(
        found
            .iter()
            .any(|p| p
                .starts_with("cluster.advertise: is required when server.listen is 0.0.0.0:8080")),
        "{found:#?}"
    );
    for (bad, why) in [
        ("10.0.0.5:8080", ""),
        ("ftp://10.0.0.5", "http:// or https://"),
        ("http://0.0.0.0:8080", "not 0.0.0.0"),
        ("http://[::]:8080", "not 0.0.0.0"),
        ("http://10.0.0.5:8080/codex", "without a path"),
        ("http://10.0.0.5:8080/", "without a path"),
        ("http://10.0.0.5:8080?x=1", "without a path"),
        ("http://me:pw@10.0.0.5:8080", "credentials"),
    ] {
        let toml = GOOD.replace("http://10.0.0.5:8080\"", &format!("{bad}\""));
        let p = only_problem(&toml, &node_env(SECRET), "cluster.advertise");
        assert!(p.contains(why), "{bad}: {p}");
    }
    for good in ["https://node-b.internal", "http://[fd00::5]:8080"] {
        let toml = GOOD.replace("http://10.0.0.5:8080", good);
        assert_eq!(problems(&toml, &node_env(SECRET)), Vec::<String>::new());
        let cfg = Config::from_toml(&toml).unwrap();
        assert_eq!(
            cfg.cluster
                .resolve_advertise(cfg.server.listen)
                .unwrap()
                .as_deref(),
            Some(good)
        );
    }
}

#[test]
fn the_secret_must_resolve_to_32_bytes_and_is_never_echoed() {
    let short = "c2hvcnQtc2VjcmV0LTEyMzQ1Njc4"; // 21 bytes once decoded
    let p = only_problem(GOOD, &node_env(short), "cluster.secret_env");
    assert!(p.contains("21 bytes, fewer than 32"), "{p}");
    assert!(!p.contains(short), "{p}");
    let not_encoded = "a passphrase with spaces that is long enough!";
    let p = only_problem(GOOD, &node_env(not_encoded), "cluster.secret_env");
    assert!(p.contains("neither base64 nor hex"), "{p}");
    assert!(!p.contains("passphrase"), "{p}");
    let unset =
        |name: &str| node_env(SECRET)(name).filter(|_| name != "CODEX_ROTOR_CLUSTER_SECRET");
    let p = only_problem(GOOD, &unset, "cluster.secret_env");
    assert!(p.contains("CODEX_ROTOR_CLUSTER_SECRET is not set"), "{p}");

    // A file wins over the variable and is blamed by its own key.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "dG9vLXNob3J0\n").unwrap();
    let toml = format!("{GOOD}secret_file = {:?}\n", file.path());
    let p = only_problem(&toml, &node_env(SECRET), "cluster.secret_file");
    assert!(p.contains("fewer than 32"), "{p}");
    std::fs::write(file.path(), format!("{SECRET}\n")).unwrap();
    assert_eq!(problems(&toml, &unset), Vec::<String>::new());
}

#[test]
fn lease_timings_leave_room_to_renew_and_to_claim() {
    let with = |extra: &str| format!("{GOOD}{extra}");
    let p = only_problem(
        &with("ttl = \"2s\"\nmargin = \"1s\"\n"),
        &node_env(SECRET),
        "cluster.margin",
    );
    assert!(p.contains("less than half of cluster.ttl (2s)"), "{p}");
    assert_eq!(
        problems(
            &with("ttl = \"2s\"\nmargin = \"500ms\"\nclaim_every = \"250ms\"\n"),
            &node_env(SECRET)
        ),
        Vec::<String>::new()
    );
    let p = only_problem(
        &with("claim_every = \"11s\"\n"),
        &node_env(SECRET),
        "cluster.claim_every",
    );
    assert!(p.contains("must not exceed cluster.ttl (10s)"), "{p}");
    let found = problems(
        &with("ttl = \"0s\"\nclaim_every = \"0s\"\npeer_head_timeout = \"0s\"\n"),
        &node_env(SECRET),
    );
    for key in [
        "cluster.ttl",
        "cluster.claim_every",
        "cluster.margin",
        "cluster.peer_head_timeout",
    ] {
        assert!(
            found.iter().any(|p| p.starts_with(key)),
            "{key}: {found:#?}"
        );
    }
}

#[test]
fn config_check_lists_every_cluster_problem_without_the_secret() {
    let file = write_config(
        "[store]\nbackend = \"files\"\n[cluster]\nenabled = true\nnode_id = \"a b\"\n\
         advertise = \"http://0.0.0.0:8080\"\nmargin = \"6s\"\nclaim_every = \"1m\"\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
        .args(["config", "check", "--config"])
        .arg(file.path())
        .env("CODEX_ROTOR_CLUSTER_SECRET", "dG9vLXNob3J0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for key in [
        "cluster.enabled",
        "cluster.node_id",
        "cluster.advertise",
        "cluster.secret_env",
        "cluster.margin",
        "cluster.claim_every",
    ] {
        assert!(
            stdout.contains(&format!("{key}: ")),
            "{key} missing in {stdout}"
        );
    }
    assert!(!stdout.contains("dG9vLXNob3J0"), "{stdout}");
}
