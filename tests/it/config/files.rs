//! Every file in `config/` is checked: TOML through `Config` and `validate`, the nginx site
//! through `nginx -t`, the Caddyfile and the systemd unit structurally; `default.toml` is
//! exactly the defaults and lists every knob.

use codex_rotor::config::Config;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::no_env;

pub(super) fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
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
    // A store key file must hold a real key (32 bytes, base64).
    let store_key = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(
        store_key.path(),
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n",
    )
    .expect("write key");
    if cfg.store.key_file.is_some() {
        cfg.store.key_file = Some(store_key.path().to_path_buf());
    }
    // So must a cluster secret file (at least 32 bytes once decoded; the same shape serves).
    if cfg.cluster.secret_file.is_some() {
        cfg.cluster.secret_file = Some(store_key.path().to_path_buf());
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

/// The cluster examples are a node and its front door: the node config enables cluster mode on
/// the postgres store and validates (checked above), and the nginx site hashes on the
/// conversation, keeps every streaming setting of the single-node nginx.conf and lists the
/// node's listen address among its upstream servers.
#[test]
fn the_cluster_examples_are_a_node_and_its_front_door() {
    let dir = config_dir().join("examples");
    let node = Config::load_with_env(Some(&dir.join("cluster.toml")), no_env()).expect("loads");
    assert!(node.cluster.enabled);
    assert_eq!(node.store.backend, codex_rotor::config::Backend::Postgres);
    let advertise = node
        .cluster
        .resolve_advertise(node.server.listen)
        .expect("advertise");
    assert_eq!(advertise, Some(format!("http://{}", node.server.listen)));

    let site = std::fs::read_to_string(dir.join("nginx-cluster.conf")).expect("read");
    let single = std::fs::read_to_string(dir.join("nginx.conf")).expect("read");
    assert!(site.contains("hash $http_session_id consistent;"), "{site}");
    assert!(site.contains("underscores_in_headers on;"), "{site}");
    assert!(
        site.contains(&format!("server {} ", node.server.listen)),
        "the node of cluster.toml is an upstream server"
    );
    for line in single.lines().map(str::trim) {
        if line.starts_with("proxy_") && !line.starts_with("proxy_pass") || line.starts_with("gzip")
        {
            assert!(
                site.contains(line),
                "nginx-cluster.conf lacks {line:?} of nginx.conf"
            );
        }
    }
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
