//! Client keys: constant-time lookup, disabled keys, requests-per-minute buckets (with paused
//! tokio time), concurrency permits released on drop, model globs, atomic reload that keeps
//! in-flight permits counted, and the daemon-wide limit. (The admin key is checked by
//! `http::admin::session::keys_match`, tested there.)

use super::{KeyRejection, KeyStore};
use crate::config::{ClientKeyConfig, KeysConfig, Secret};
use std::sync::Arc;
use std::time::Duration;

fn key(name: &str, secret: &str) -> ClientKeyConfig {
    ClientKeyConfig {
        name: name.into(),
        key: Some(Secret::from(secret)),
        ..Default::default()
    }
}

fn store(keys: Vec<ClientKeyConfig>) -> KeyStore {
    KeyStore::from_config(&KeysConfig { keys }).expect("key store")
}

#[test]
fn known_unknown_and_disabled_keys() {
    let mut off = key("off", "key-off-0000");
    off.enabled = false;
    let s = store(vec![
        key("alice", "key-alice-0000"),
        key("bob", "key-bob-0000"),
        off,
    ]);
    assert!(!s.is_open());
    assert_eq!(s.authenticate("key-bob-0000").unwrap().name(), "bob");
    assert_eq!(s.authenticate("key-alice-0000").unwrap().name(), "alice");
    assert_eq!(
        s.authenticate("key-bob-000").unwrap_err(),
        KeyRejection::Unknown
    );
    assert_eq!(
        s.authenticate("key-bob-00000").unwrap_err(),
        KeyRejection::Unknown
    );
    assert_eq!(s.authenticate("").unwrap_err(), KeyRejection::Unknown);
    assert_eq!(
        s.authenticate("key-off-0000").unwrap_err(),
        KeyRejection::Disabled
    );
    assert_eq!(s.names(), vec!["alice", "bob", "off"]);
}

#[test]
fn an_open_store_admits_anything() {
    let s = store(Vec::new());
    assert!(s.is_open());
    let p = s.authenticate("").unwrap();
    assert_eq!(p.name(), "open");
    assert!(s.model_allowed(&p, "anything"));
}

#[test]
fn keys_resolve_from_env_and_files() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "  key-from-file \n").unwrap();
    let cfg = KeysConfig {
        keys: vec![
            ClientKeyConfig {
                name: "env".into(),
                key_env: Some("ROTOR_K".into()),
                ..Default::default()
            },
            ClientKeyConfig {
                name: "file".into(),
                key_file: Some(file.path().into()),
                ..Default::default()
            },
        ],
    };
    let s = KeyStore::from_config_in(&cfg, &|n| {
        (n == "ROTOR_K").then(|| "key-from-env".to_owned())
    })
    .unwrap();
    assert_eq!(s.authenticate("key-from-env").unwrap().name(), "env");
    assert_eq!(s.authenticate("key-from-file").unwrap().name(), "file");
    let err = KeyStore::from_config_in(&cfg, &|_| None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("keys.keys[0].key") && err.contains("ROTOR_K is not set"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn requests_per_minute_bucket_refills_over_time() {
    let mut k = key("slow", "key-slow-0000");
    k.rpm = Some(2);
    let s = store(vec![k]);
    drop(s.authenticate("key-slow-0000").unwrap());
    drop(s.authenticate("key-slow-0000").unwrap());
    assert_eq!(
        s.authenticate("key-slow-0000").unwrap_err(),
        KeyRejection::RateLimited {
            retry_after_secs: 30
        }
    );
    tokio::time::advance(Duration::from_secs(20)).await;
    assert_eq!(
        s.authenticate("key-slow-0000").unwrap_err(),
        KeyRejection::RateLimited {
            retry_after_secs: 10
        }
    );
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(
        s.authenticate("key-slow-0000").is_ok(),
        "one token back after 30 s"
    );
    assert!(s.authenticate("key-slow-0000").is_err());
    tokio::time::advance(Duration::from_secs(600)).await;
    assert!(s.authenticate("key-slow-0000").is_ok());
    assert!(s.authenticate("key-slow-0000").is_ok());
    assert!(
        s.authenticate("key-slow-0000").is_err(),
        "the bucket holds at most rpm tokens"
    );
}

#[test]
fn concurrency_permits_release_on_drop() {
    let mut k = key("busy", "key-busy-0000");
    k.max_concurrent = Some(2);
    let s = store(vec![k, key("other", "key-other-0000")]);
    let a = s.authenticate("key-busy-0000").unwrap();
    let b = s.authenticate("key-busy-0000").unwrap();
    assert_eq!(s.in_flight("busy"), 2);
    assert_eq!(
        s.authenticate("key-busy-0000").unwrap_err(),
        KeyRejection::TooManyConcurrent
    );
    assert!(
        s.authenticate("key-other-0000").is_ok(),
        "limits are per key"
    );
    drop(a);
    assert_eq!(s.in_flight("busy"), 1);
    let c = s.authenticate("key-busy-0000").unwrap();
    drop((b, c));
    assert_eq!(s.in_flight("busy"), 0);
}

#[test]
fn a_rate_limited_request_does_not_keep_its_concurrency_slot() {
    let mut k = key("k", "key-k-00000000");
    k.rpm = Some(1);
    k.max_concurrent = Some(1);
    let s = store(vec![k]);
    drop(s.authenticate("key-k-00000000").unwrap());
    assert!(matches!(
        s.authenticate("key-k-00000000"),
        Err(KeyRejection::RateLimited { .. })
    ));
    assert_eq!(s.in_flight("k"), 0);
}

#[test]
fn concurrency_limit_holds_under_parallel_load() {
    let mut k = key("par", "key-par-0000");
    k.max_concurrent = Some(3);
    let s = Arc::new(store(vec![k]));
    let peak = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (s, peak) = (s.clone(), peak.clone());
            std::thread::spawn(move || {
                for _ in 0..2000 {
                    if let Ok(p) = s.authenticate("key-par-0000") {
                        peak.fetch_max(s.in_flight("par"), std::sync::atomic::Ordering::SeqCst);
                        drop(p);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let peak = peak.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=3).contains(&peak), "peak in flight {peak}");
    assert_eq!(s.in_flight("par"), 0);
}

#[test]
fn model_globs() {
    let mut k = key("m", "key-m-00000000");
    k.models = vec!["gpt-5.*".into(), "claude-sonnet-*".into()];
    let s = store(vec![k, key("all", "key-all-0000")]);
    let p = s.authenticate("key-m-00000000").unwrap();
    assert!(s.model_allowed(&p, "gpt-5.5"));
    assert!(s.model_allowed(&p, "claude-sonnet-4-5"));
    assert!(!s.model_allowed(&p, "claude-opus-4"));
    assert!(!s.model_allowed(&p, "gpt-4o"));
    let all = s.authenticate("key-all-0000").unwrap();
    assert!(
        s.model_allowed(&all, "claude-opus-4"),
        "default models = [\"*\"]"
    );
}

#[test]
fn reload_swaps_keys_and_keeps_in_flight_permits_counted() {
    let mut k = key("kept", "key-kept-0000");
    k.max_concurrent = Some(2);
    let s = store(vec![k.clone(), key("gone", "key-gone-0000")]);
    let held = s.authenticate("key-kept-0000").unwrap();
    let gone_permit = s.authenticate("key-gone-0000").unwrap();

    // New config: "kept" gets a new secret and a tighter limit, "gone" disappears, "new" arrives.
    let mut k2 = key("kept", "key-kept-rotated");
    k2.max_concurrent = Some(1);
    s.reload(&KeysConfig {
        keys: vec![k2, key("new", "key-new-0000")],
    })
    .unwrap();
    assert_eq!(
        s.authenticate("key-kept-0000").unwrap_err(),
        KeyRejection::Unknown,
        "old secret gone"
    );
    assert_eq!(
        s.authenticate("key-gone-0000").unwrap_err(),
        KeyRejection::Unknown
    );
    assert!(s.authenticate("key-new-0000").is_ok());
    assert_eq!(
        s.in_flight("kept"),
        1,
        "the permit from before the reload still counts"
    );
    assert_eq!(
        s.authenticate("key-kept-rotated").unwrap_err(),
        KeyRejection::TooManyConcurrent
    );
    drop(held);
    drop(gone_permit); // releasing a permit of a removed key is harmless
    assert_eq!(s.in_flight("kept"), 0);
    assert!(s.authenticate("key-kept-rotated").is_ok());

    // A reload that fails changes nothing.
    let broken = ClientKeyConfig {
        name: "broken".into(),
        key_env: Some("ROTOR_TEST_UNSET_VARIABLE".into()),
        ..Default::default()
    };
    assert!(s.reload(&KeysConfig { keys: vec![broken] }).is_err());
    assert!(s.authenticate("key-new-0000").is_ok());
}

#[test]
fn the_daemon_wide_limit_spans_all_keys_and_reloads() {
    let s = store(vec![key("a", "key-a-00000000"), key("b", "key-b-00000000")]);
    s.set_limits(&crate::config::LimitsConfig {
        max_concurrent_requests: 2,
    });
    let a = s.authenticate("key-a-00000000").unwrap();
    let b = s.authenticate("key-b-00000000").unwrap();
    assert_eq!(s.total_in_flight(), 2);
    assert_eq!(
        s.authenticate("key-a-00000000").unwrap_err(),
        KeyRejection::TooManyConcurrent
    );
    assert_eq!(
        s.authenticate("nope").unwrap_err(),
        KeyRejection::Unknown,
        "unknown keys are still unknown"
    );
    assert_eq!(s.total_in_flight(), 2, "a refusal holds no slot");
    drop(a);
    let a2 = s.authenticate("key-a-00000000").unwrap();
    s.set_limits(&crate::config::LimitsConfig {
        max_concurrent_requests: 3,
    });
    let c = s.authenticate("key-b-00000000").unwrap();
    drop((a2, b, c));
    assert_eq!(s.total_in_flight(), 0);
    assert_eq!(s.in_flight("a") + s.in_flight("b"), 0);
}

#[test]
fn the_daemon_wide_limit_applies_to_an_open_pool_and_survives_a_rate_refusal() {
    let open = store(Vec::new());
    open.set_limits(&crate::config::LimitsConfig {
        max_concurrent_requests: 1,
    });
    let p = open.authenticate("").unwrap();
    assert_eq!(
        open.authenticate("").unwrap_err(),
        KeyRejection::TooManyConcurrent
    );
    drop(p);
    assert!(open.authenticate("").is_ok());

    let mut k = key("r", "key-r-00000000");
    k.rpm = Some(1);
    let s = store(vec![k]);
    drop(s.authenticate("key-r-00000000").unwrap());
    assert!(matches!(
        s.authenticate("key-r-00000000"),
        Err(KeyRejection::RateLimited { .. })
    ));
    assert_eq!(
        s.total_in_flight(),
        0,
        "the refused request gave its global slot back"
    );
}
