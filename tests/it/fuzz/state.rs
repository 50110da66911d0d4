//! Fuzzing what codex-rotor reads from disk: the TOML config (`Config::from_toml` +
//! `validate`), the per-account state files (`store::FileStore::open` on garbage and on mutated
//! valid records: every bad file is quarantined, every good one loads, nothing panics), the
//! predecessor's `accounts.json` entries (`rotor_actors::legacy::import`) and the accounts
//! importer (`accounts::import::parse_file`, which sniffs auth.json, legacy and token lists).

use super::{cases, json};
use codex_rotor::config::Config;
use codex_rotor::parse_file;
use codex_rotor::store::FileStore;
use proptest::prelude::*;
use rotor_actors::{AccountRecord, Store, Tokens, UnixMs, legacy};
use serde_json::{Value, json};

const NOW: UnixMs = 1_767_225_600_000;

fn default_toml() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"))
        .expect("config/default.toml")
}

/// A config assembled from known sections and keys with random values.
fn config_text() -> impl Strategy<Value = String> {
    let section = prop::sample::select(
        &[
            "server",
            "keys",
            "admin",
            "pool",
            "upstream",
            "refresh",
            "models",
            "models.aliases",
            "limits",
            "logging",
            "pool.plan_routes",
        ][..],
    );
    let key = prop::sample::select(
        &[
            "listen",
            "path_prefix",
            "shutdown_grace",
            "strategy",
            "tick",
            "max_leases_per_account",
            "base_url",
            "token_url",
            "margin",
            "jitter",
            "default_model",
            "format",
            "level",
            "key",
            "key_env",
            "key_file",
            "enabled",
            "max_body_bytes",
            "connect_timeout",
            "max_accounts_per_request",
            "claude-*",
            "bogus",
        ][..],
    );
    let value = prop_oneof![
        Just("\"30s\"".to_string()),
        Just("\"0s\"".to_string()),
        Just("\"127.0.0.1:0\"".to_string()),
        Just("\"least_used\"".to_string()),
        Just("\"sticky\"".to_string()),
        Just("\"http://127.0.0.1:1\"".to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<bool>().prop_map(|v| v.to_string()),
        "\"[ -~]{0,12}\"".prop_map(|s| s.replace('\\', "")),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("[[keys.keys]]\nname = \"a\"\nkey = \"k\"".to_string()),
    ];
    prop::collection::vec((section, prop::collection::vec((key, value), 0..5)), 0..6).prop_map(
        |secs| {
            secs.into_iter()
                .map(|(s, kv)| {
                    let body: Vec<String> = kv
                        .into_iter()
                        .map(|(k, v)| format!("{k:?} = {v}"))
                        .collect();
                    format!("[{s}]\n{}\n", body.join("\n"))
                })
                .collect()
        },
    )
}

fn config_verdict(text: &str) {
    if let Ok(cfg) = Config::from_toml(text) {
        let no_env = |_: &str| None;
        let _ = cfg.validate_in(&no_env);
        let _ = cfg.pool_config();
    }
}

/// A valid account record file (id, bytes). Each id is its own upstream account (its own
/// refresh token): two files holding one account are duplicates, and one is quarantined.
fn valid_record(id: &str) -> Vec<u8> {
    let tokens = Tokens {
        access_token: "at".into(),
        refresh_token: Some(format!("rt-{id}")),
        ..Tokens::default()
    };
    serde_json::to_vec_pretty(&AccountRecord::new(id, tokens, NOW)).expect("serialises")
}

/// Writes `files` plus one known-good account into a fresh data dir and opens it.
fn open_with(files: &[(String, Vec<u8>)]) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("accounts");
    std::fs::create_dir_all(&dir).expect("accounts dir");
    std::fs::write(
        dir.join("00good00good00good.json"),
        valid_record("00good00good00good"),
    )
    .expect("good file");
    for (name, bytes) in files {
        std::fs::write(dir.join(format!("{name}.json")), bytes).expect("fuzz file");
    }
    let (store, recs, quarantined) =
        FileStore::open(tmp.path()).expect("a data dir with bad files still opens");
    prop_assert!(
        recs.iter().any(|r| r.id == "00good00good00good"),
        "the good account always loads"
    );
    for r in &recs {
        prop_assert!(
            store.path_of(&r.id).is_ok_and(|p| p.exists()),
            "loaded records are files named by their id"
        );
    }
    for q in &quarantined {
        prop_assert!(!q.path.exists(), "quarantined file moved aside: {:?}", q);
        prop_assert!(
            q.moved_to.as_ref().is_some_and(|m| m.exists()),
            "kept, not deleted: {:?}",
            q
        );
    }
    let json_files = std::fs::read_dir(&dir)
        .expect("list")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .count();
    prop_assert_eq!(recs.len(), json_files, "every remaining .json file loaded");
    // A second open finds exactly the good records again and nothing new to quarantine.
    let (_, again, q2) = FileStore::open(tmp.path()).expect("reopens");
    prop_assert_eq!(again.len(), recs.len());
    prop_assert!(q2.is_empty());
    // Saving a loaded record still works after the quarantine.
    store
        .save(&recs[0])
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    Ok(())
}

proptest! {
    #![proptest_config(cases(500))]

    #[test]
    fn config_parser_takes_any_text(text in ".{0,200}") {
        config_verdict(&text);
    }

    #[test]
    fn config_parser_takes_mutated_default_toml(bytes in json::mutate(default_toml().into_bytes())) {
        config_verdict(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn config_parser_takes_generated_sections(text in config_text()) {
        config_verdict(&text);
    }

    #[test]
    fn state_loader_quarantines_garbage(files in prop::collection::vec(("[a-z0-9]{1,16}", prop::collection::vec(any::<u8>(), 0..200)), 0..4)) {
        open_with(&files)?;
    }

    #[test]
    fn state_loader_quarantines_mutated_records(bytes in json::mutate(valid_record("abcdef0123456789"))) {
        open_with(&[("abcdef0123456789".to_string(), bytes)])?;
    }

    #[test]
    fn state_loader_quarantines_json_of_the_wrong_shape(v in json::value(), id in "[a-f0-9]{16}") {
        let mut good: Value = serde_json::from_slice(&valid_record(&id)).expect("json");
        let bad = serde_json::to_vec(&v).expect("json");
        if let (Some(o), Some(extra)) = (good.as_object_mut(), v.as_object()) {
            for (k, x) in extra { o.insert(k.clone(), x.clone()); }
        }
        open_with(&[(id.clone(), serde_json::to_vec(&good).expect("json")), ("zz".into(), bad)])?;
    }

    #[test]
    fn legacy_import_takes_any_entry(entry in json::value()) {
        if let Ok(rec) = legacy::import(&entry, NOW) {
            let _ = legacy::export(&rec);
        }
    }

    #[test]
    fn legacy_import_takes_legacy_shaped_entries(
        status in prop::sample::select(&["active", "rate_limited", "expired", "banned", "disabled", "quota_exhausted", "weird"][..]),
        until in prop_oneof![Just(json!("2027-01-01T00:00:00Z")), Just(json!("2020-01-01T00:00:00Z")), json::value()],
        quota in json::value(), usage in json::object(), rest in json::object(),
    ) {
        let mut entry = json!({"id": "acct_1", "token": "at", "refreshToken": "rt", "email": "a@b", "status": status,
            "cachedQuota": quota, "quotaFetchedAt": "2026-01-01T00:00:00Z", "usage": usage});
        if let (Some(o), Some(u)) = (entry.as_object_mut(), rest.as_object()) {
            for (k, v) in u { o.entry(k.clone()).or_insert(v.clone()); }
            if let Some(Value::Object(us)) = o.get_mut("usage") { us.insert("rate_limit_until".into(), until); }
        }
        if let Ok(rec) = legacy::import(&entry, NOW) {
            prop_assert_eq!(rec.id.as_str(), "acct_1");
            let out = legacy::export(&rec);
            prop_assert!(out.get("usage").and_then(|u| u.get("rate_limit_until")).is_none(), "the legacy field is never written again");
        }
    }

    #[test]
    fn accounts_importer_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_file(&bytes, NOW);
    }

    #[test]
    fn accounts_importer_takes_any_json(v in json::value()) {
        let _ = parse_file(&serde_json::to_vec(&v).expect("json"), NOW);
    }

    #[test]
    fn accounts_importer_takes_mutated_auth_json(bytes in json::mutate(br#"{"OPENAI_API_KEY":null,"tokens":{"id_token":"a.b.c","access_token":"x.y.z","refresh_token":"rt_1","account_id":"acc"},"last_refresh":"2026-01-01T00:00:00Z"}"#.to_vec())) {
        let _ = parse_file(&bytes, NOW);
    }
}
