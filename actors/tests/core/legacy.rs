//! Legacy `accounts.json` import/export (docs/quota.md rule 8, docs/predecessor.md §2.2/§2.5): the five
//! migration cases as snapshots of the imported record (times relative to `T0`), plus the
//! guarantees that the retired lock is never written back.

use rotor_actors::{Status, legacy};
use serde_json::{Value, json};

use crate::support::{T0, relative, settings};

/// `T0` + `secs` as the ISO string the predecessor writes.
fn iso(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis((T0 + secs * 1000) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

fn entry(status: &str, until: Option<i64>, cached: Value, fetched: Option<i64>) -> Value {
    json!({
        "id": "0123456789abcdef", "token": "eyJ.secret.sig", "refreshToken": "oaistb_rt_secret",
        "email": "a@example.com", "accountId": "acct-1", "userId": "user-1", "label": null,
        "planType": "plus", "proxyApiKey": "codex-proxy-ignored", "status": status,
        "usage": {"request_count": 12, "input_tokens": 1000, "output_tokens": 200, "cached_tokens": 50,
                  "empty_response_count": 1, "last_used": iso(-60), "limit_window_seconds": 18000,
                  "rate_limit_until": until.map(iso)},
        "addedAt": iso(-86_400), "cachedQuota": cached, "quotaFetchedAt": fetched.map(iso),
    })
}

fn stale_quota() -> Value {
    json!({"plan_type": "plus",
      "rate_limit": {"allowed": true, "limit_reached": false, "used_percent": 40, "reset_at": (T0 / 1000) + 7200, "limit_window_seconds": 18000},
      "secondary_rate_limit": {"limit_reached": false, "used_percent": 20, "reset_at": (T0 / 1000) + 86_400, "limit_window_seconds": 604_800},
      "code_review_rate_limit": null,
      "rate_limits_by_limit_id": {"codex_bengalfox": {"limit_id": "codex_bengalfox", "limit_name": "Spark", "allowed": true,
          "limit_reached": false, "used_percent": 5, "reset_at": (T0 / 1000) + 3600, "limit_window_seconds": 3600}},
      "credits": {"has_credits": true, "unlimited": false, "overage_limit_reached": false, "balance": 4.5}})
}

#[test]
fn the_five_migration_cases() {
    let cases = [
        (
            "rate_limited, future lock, no cached quota: synthesised primary lock",
            entry("rate_limited", Some(3600), Value::Null, None),
        ),
        (
            "future lock, stale cached quota: primary locked until the lock ends",
            entry("active", Some(3600), stale_quota(), Some(-600)),
        ),
        (
            "past lock: dropped",
            entry("rate_limited", Some(-60), stale_quota(), Some(-600)),
        ),
        (
            "quota fetched after the lock end: the quota wins",
            entry("active", Some(60), stale_quota(), Some(120)),
        ),
        (
            "no legacy lock, banned stays banned",
            entry("banned", None, stale_quota(), Some(-600)),
        ),
    ];
    let mut out = Vec::new();
    for (name, e) in &cases {
        let rec = legacy::import(e, T0).expect(name);
        out.push(json!({"case": name, "record": relative(&rec)}));
    }
    let primary = |i: usize| out[i]["record"]["quota"]["primary"].clone();
    assert_eq!(
        (
            primary(0)["limit_reached"].as_bool(),
            primary(0)["reset_at"].as_str()
        ),
        (Some(true), Some("+1h"))
    );
    assert_eq!(primary(0)["window_secs"], 18000);
    assert_eq!(
        (
            primary(1)["limit_reached"].as_bool(),
            primary(1)["reset_at"].as_str()
        ),
        (Some(true), Some("+1h"))
    );
    assert_eq!(
        out[1]["record"]["quota"]["secondary"]["used_percent"], 20.0,
        "other buckets kept"
    );
    assert_eq!(
        primary(2)["limit_reached"].as_bool(),
        Some(false),
        "a past lock is dropped"
    );
    assert_eq!(
        primary(3)["limit_reached"].as_bool(),
        Some(false),
        "fresh quota trusted"
    );
    for o in &out[..4] {
        assert_eq!(o["record"]["status"], "active", "rate_limited is no status");
    }
    assert_eq!(out[4]["record"]["status"], "banned");
    settings().bind(|| {
        insta::assert_yaml_snapshot!(out, {
            "[].record.tokens.access_token" => "[token]",
            "[].record.tokens.refresh_token" => "[token]",
        })
    });
}

#[test]
fn export_never_writes_the_retired_lock_and_round_trips() {
    let rec = legacy::import(
        &entry("rate_limited", Some(3600), stale_quota(), Some(-600)),
        T0,
    )
    .expect("import");
    let out = legacy::export(&rec);
    let text = out.to_string();
    assert!(
        !text.contains("rate_limit_until") && !text.contains("rate_limited"),
        "{text}"
    );
    assert_eq!(out["refreshToken"], "oaistb_rt_secret");
    assert_eq!(
        out["cachedQuota"]["rate_limits_by_limit_id"]["codex_bengalfox"]["limit_name"],
        "Spark"
    );
    let back = legacy::import(&out, T0).expect("re-import");
    assert_eq!(back.tokens, rec.tokens);
    assert_eq!(back.identity, rec.identity);
    assert_eq!(back.status, Status::Active);
    assert_eq!(
        back.quota
            .primary
            .as_ref()
            .map(|b| (b.limit_reached, b.reset_at)),
        rec.quota
            .primary
            .as_ref()
            .map(|b| (b.limit_reached, b.reset_at))
    );
    assert_eq!(back.usage.requests, 12);
}

#[test]
fn malformed_entries_are_refused_with_a_reason() {
    assert!(legacy::import(&json!([]), T0).is_err());
    assert_eq!(
        legacy::import(&json!({"token": "x"}), T0).unwrap_err(),
        "entry has no id"
    );
    assert!(
        legacy::import(&json!({"id": "abc"}), T0)
            .unwrap_err()
            .contains("no token")
    );
    assert!(legacy::import(&json!({"id": "../x", "token": "t"}), T0).is_err());
    assert!(
        legacy::import(&json!({"id": "abc", "token": "t", "status": "weird"}), T0)
            .unwrap_err()
            .contains("unknown status")
    );
    let minimal = legacy::import(&json!({"id": "abc", "token": "t"}), T0).expect("minimal entry");
    assert_eq!((minimal.status, minimal.added_at), (Status::Active, T0));
}
