//! Adding and importing accounts: every import format, bad files (the error names the line or
//! field and nothing is imported), duplicates, and the rule that an import never re-activates a
//! banned or disabled account — through `parse_file`, the offline merge, and the real
//! `codex-rotor accounts` binary ([`cli`]) on a data directory and against a running daemon.

mod bin;
mod cli;
mod listing;
mod lock;
mod reimport;

use codex_rotor::internals::{export, merge};
use rotor_actors::jwt::encode_unsigned;
use rotor_actors::{AccountRecord, Status};
use serde_json::{Value, json};

/// A fixed "now" (2026-11-26T00:00:00Z) in unix ms.
const NOW: i64 = 1_795_651_200_000;

/// An access JWT for (account, user) expiring `exp_in_s` seconds after [`NOW`].
fn access(account: &str, user: &str, exp_in_s: i64) -> String {
    encode_unsigned(&json!({
        "exp": NOW / 1000 + exp_in_s,
        "https://api.openai.com/auth": {"chatgpt_account_id": account, "chatgpt_user_id": user, "chatgpt_plan_type": "plus"},
    }))
}

/// An id JWT carrying email and plan.
fn id_token(email: &str, plan: &str) -> String {
    encode_unsigned(&json!({
        "email": email,
        "https://api.openai.com/auth": {"chatgpt_plan_type": plan},
    }))
}

/// A Codex CLI auth.json (docs/protocol.md §8).
fn auth_json(account: &str, user: &str, rt: &str) -> Value {
    json!({
        "auth_mode": "chatgpt", "OPENAI_API_KEY": null,
        "tokens": {"id_token": id_token("a@example.com", "pro"), "access_token": access(account, user, 3600),
                   "refresh_token": rt, "account_id": account},
        "last_refresh": "2026-11-25T23:00:00.123456789Z",
        "agent_identity": null, "personal_access_token": null, "bedrock_api_key": null, "bedrock_access_keys": null
    })
}

fn parse(text: &str) -> Result<Vec<AccountRecord>, codex_rotor::ImportError> {
    codex_rotor::parse_file(text.as_bytes(), NOW)
}

fn err(text: &str) -> String {
    match parse(text) {
        Ok(recs) => panic!("expected an error, got {} records", recs.len()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn auth_json_gives_identity_tokens_and_expiry() {
    let recs = parse(&auth_json("acct-1", "user-1", "rt_one").to_string()).expect("imports");
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(r.identity.chatgpt_account_id.as_deref(), Some("acct-1"));
    assert_eq!(r.identity.chatgpt_user_id.as_deref(), Some("user-1"));
    assert_eq!(
        r.identity.email.as_deref(),
        Some("a@example.com"),
        "email comes from the id token"
    );
    assert_eq!(
        r.identity.plan.as_deref(),
        Some("plus"),
        "the access token's plan wins"
    );
    assert_eq!(r.tokens.refresh_token.as_deref(), Some("rt_one"));
    assert_eq!(r.tokens.expires_at, Some(NOW + 3_600_000));
    assert_eq!(r.tokens.last_refresh, Some(NOW - 3_600_000 + 123));
    assert!(r.tokens.id_token.is_some());
    assert_eq!(r.status, Status::Active);
    assert_eq!(r.added_at, NOW);
    assert_eq!(r.id.len(), 16);
    assert!(r.id.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn token_lines_tell_refresh_tokens_from_access_tokens() {
    let file = format!(
        "# my accounts\n\nrt_first\n  oaistb_rt_second  \nBearer {}\n",
        access("acct-3", "user-3", 600)
    );
    let recs = parse(&file).expect("imports");
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0].tokens.refresh_token.as_deref(), Some("rt_first"));
    assert_eq!(
        recs[0].tokens.access_token, "",
        "a refresh-only account has no access token yet"
    );
    assert_eq!(
        recs[1].tokens.refresh_token.as_deref(),
        Some("oaistb_rt_second")
    );
    assert_eq!(recs[2].tokens.refresh_token, None);
    assert_eq!(
        recs[2].identity.chatgpt_account_id.as_deref(),
        Some("acct-3")
    );
    assert!(!recs[2].tokens.access_token.starts_with("Bearer"));
}

#[test]
fn json_lines_arrays_and_wrappers_are_all_read() {
    let lines = format!(
        "{}\n{}\n",
        json!({"access_token": access("a1", "u1", 60), "refresh_token": "rt_1", "name": "first"}),
        json!({"credentials": {"access_token": access("a2", "u2", 60), "refresh_token": "rt_2"}}),
    );
    let recs = parse(&lines).expect("json lines");
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].identity.label.as_deref(), Some("first"));
    assert_eq!(recs[1].tokens.refresh_token.as_deref(), Some("rt_2"));

    let array = json!(["rt_a", {"refreshToken": "rt_b", "label": "x".repeat(100)}]).to_string();
    let recs = parse(&array).expect("array");
    assert_eq!(recs.len(), 2);
    assert_eq!(
        recs[1].identity.label.as_deref().map(str::len),
        Some(64),
        "labels are capped"
    );

    let minimal = json!({"accounts": [{"refreshToken": "rt_c"}]}).to_string();
    assert_eq!(
        parse(&minimal).expect("minimal export")[0]
            .tokens
            .refresh_token
            .as_deref(),
        Some("rt_c")
    );
}

#[test]
fn bad_files_name_the_line_or_field() {
    let good = "rt_ok";
    assert!(err(&format!("{good}\n{good}2\nnot-a-token\n")).starts_with("line 3:"));
    assert!(
        err(&format!("{good}\n{{\"refresh_token\": 5}}\n"))
            .starts_with("line 2 field `refresh_token`:")
    );
    assert!(
        err("{\"accounts\": [\"rt_a\", {\"token\": 7, \"id\": \"x\"}]}").contains("accounts[1]")
    );
    assert!(err("{\"accounts\": [\n  \"rt_a\",\n  oops\n]}").starts_with("line 3 column"));
    let expired = json!([{"access_token": access("a", "u", -10)}]).to_string();
    let e = err(&expired);
    assert!(
        e.starts_with("[0] field `access_token`:") && e.contains("expired"),
        "{e}"
    );
    assert!(
        err(&json!({"auth_mode": "apikey", "OPENAI_API_KEY": "sk-x"}).to_string())
            .contains("auth_mode")
    );
    assert!(
        err(&json!([{"label": "no tokens"}]).to_string())
            .contains("no access token or refresh token")
    );
    assert!(err("").contains("empty"));
    assert!(err("[]").contains("no accounts"));
    // Errors never echo the secret they complain about.
    let secret = "rt_supersecret_but_in_a_bad_field";
    assert!(
        !err(&json!([{"refresh_token": secret, "id_token": "not-a-jwt"}]).to_string())
            .contains(secret)
    );
}

#[test]
fn duplicates_collapse_by_account_and_user() {
    let file = format!(
        "{}\n{}\n{}\n",
        json!({"access_token": access("team", "alice", 60), "refresh_token": "rt_old"}),
        json!({"access_token": access("team", "bob", 60), "refresh_token": "rt_bob"}),
        json!({"access_token": access("team", "alice", 90), "refresh_token": "rt_new"}),
    );
    let recs = parse(&file).expect("imports");
    assert_eq!(
        recs.len(),
        2,
        "team members share the account id but differ by user id"
    );
    assert_eq!(
        recs[0].tokens.refresh_token.as_deref(),
        Some("rt_new"),
        "the last occurrence wins"
    );

    // Merging again into those records updates in place: same ids, nothing added.
    let mut existing = recs.clone();
    let again = parse(
        &json!({"access_token": access("team", "bob", 120), "refresh_token": "rt_bob2"})
            .to_string(),
    )
    .expect("imports");
    let (report, changed) = merge::merge(&mut existing, again);
    assert!(report.added.is_empty());
    assert_eq!(report.updated, vec![recs[1].id.clone()]);
    assert_eq!(changed.len(), 1);
    assert_eq!(existing.len(), 2);
    assert_eq!(existing[1].tokens.refresh_token.as_deref(), Some("rt_bob2"));
}

#[test]
fn merge_never_reactivates_banned_or_disabled_but_cures_expired() {
    let file = format!(
        "{}\n{}\n{}\n",
        rt_obj("a", "rt_1"),
        rt_obj("b", "rt_2"),
        rt_obj("c", "rt_3")
    );
    let mut existing = parse(&file).expect("imports");
    existing[0].status = Status::Banned;
    existing[1].status = Status::Disabled;
    existing[2].status = Status::Expired;
    existing[2].status_reason = Some("needs login".into());
    let fresh = parse(&format!(
        "{}\n{}\n{}\n",
        rt_obj("a", "rt_1b"),
        rt_obj("b", "rt_2b"),
        rt_obj("c", "rt_3b")
    ))
    .expect("imports");
    let (report, _) = merge::merge(&mut existing, fresh);
    assert_eq!(report.updated.len(), 3);
    assert_eq!(existing[0].status, Status::Banned);
    assert_eq!(existing[1].status, Status::Disabled);
    assert_eq!(report.kept_inactive.len(), 2);
    assert_eq!(
        existing[2].status,
        Status::Active,
        "new tokens are the cure for an expired account"
    );
    assert_eq!(existing[2].status_reason, None);
    assert_eq!(existing[2].tokens.refresh_token.as_deref(), Some("rt_3b"));
}

/// A JSON-lines entry for account `acct` with a refresh token and a live access token.
fn rt_obj(acct: &str, rt: &str) -> Value {
    json!({"access_token": access(acct, "u", 600), "refresh_token": rt})
}

/// An ISO timestamp `offset_s` seconds from [`NOW`].
fn iso(offset_s: i64) -> String {
    let t =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis((NOW + offset_s * 1000) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

#[test]
fn predecessor_accounts_json_applies_rule_8() {
    let file = json!({"accounts": [
        {"id": "aaaaaaaaaaaaaaaa", "token": access("acct-a", "u", 3600), "refreshToken": "oaistb_rt_a",
         "status": "rate_limited", "addedAt": iso(-86_400),
         "usage": {"request_count": 7, "input_tokens": 1, "output_tokens": 2, "rate_limit_until": iso(1800)}},
        {"id": "bbbbbbbbbbbbbbbb", "token": access("acct-b", "u", 3600), "refreshToken": "rt_b",
         "status": "rate_limited", "usage": {"request_count": 1, "rate_limit_until": iso(-60)}},
        {"id": "cccccccccccccccc", "token": access("acct-c", "u", 3600), "refreshToken": "rt_c",
         "status": "banned", "email": "c@example.com"},
        {"id": "dddddddddddddddd", "token": access("acct-d", "u", -3600), "status": "active"}
    ]});
    let recs = parse(&file.to_string()).expect("imports");
    assert_eq!(recs.len(), 4);
    let (a, b, c, d) = (&recs[0], &recs[1], &recs[2], &recs[3]);
    assert_eq!(a.id, "aaaaaaaaaaaaaaaa", "the predecessor's id is kept");
    assert_eq!(
        a.status,
        Status::Active,
        "rate_limited is not a status any more"
    );
    let lock = a
        .quota
        .primary
        .as_ref()
        .expect("a future lock becomes the primary bucket");
    assert!(lock.limit_reached);
    assert_eq!(lock.reset_at, Some(NOW + 1_800_000));
    assert_eq!(a.usage.requests, 7);
    assert_eq!(
        a.identity.chatgpt_account_id.as_deref(),
        Some("acct-a"),
        "back-filled from the JWT"
    );
    assert_eq!(a.tokens.expires_at, Some(NOW + 3_600_000));
    assert_eq!(b.status, Status::Active);
    assert!(
        b.quota.primary.as_ref().is_none_or(|p| !p.limit_reached),
        "a past lock is dropped"
    );
    assert_eq!(c.status, Status::Banned, "a banned account stays banned");
    assert_eq!(c.identity.email.as_deref(), Some("c@example.com"));
    assert_eq!(
        d.status,
        Status::Expired,
        "expired token and no refresh token: needs a login"
    );
    assert_eq!(d.status_reason.as_deref(), Some("needs login"));
}

#[test]
fn a_full_export_reimports_to_the_same_accounts() {
    let file = format!("{}\nrt_only_one\n", rt_obj("x", "rt_x"));
    let recs = parse(&file).expect("imports");
    let exported = export::full(&recs).to_string();
    assert!(
        !exported.contains("rate_limit_until"),
        "the legacy lock field is never written"
    );
    let again = parse(&exported).expect("re-imports");
    assert_eq!(again.len(), 2);
    for (a, b) in recs.iter().zip(&again) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.identity, b.identity);
        assert_eq!(a.tokens.refresh_token, b.tokens.refresh_token);
        assert_eq!(a.tokens.access_token, b.tokens.access_token);
    }
}

#[test]
fn a_wrongly_typed_field_refuses_the_whole_file_naming_it_and_the_expected_type() {
    // A predecessor accounts.json whose second entry has a numeric refresh token.
    let file = json!({"accounts": [
        {"id": "aaaaaaaaaaaaaaaa", "token": access("acct-a", "u", 3600), "refreshToken": "rt_a", "status": "active"},
        {"id": "bbbbbbbbbbbbbbbb", "token": access("acct-b", "u", 3600), "refreshToken": 12345, "status": "active"}
    ]});
    let e = err(&file.to_string());
    assert!(e.starts_with("accounts[1] field `refreshToken`:"), "{e}");
    assert!(
        e.contains("expected a string") && e.contains("number"),
        "{e}"
    );
    // The same in JSON lines, and for the other typed fields of an entry.
    let lines = format!(
        "{}\n{}\n",
        json!({"id": "a1", "token": access("a", "u", 600), "refreshToken": "rt_1", "status": "active"}),
        json!({"id": "b1", "token": access("b", "u", 600), "email": ["b@example.com"], "status": "active"}),
    );
    let e = err(&lines);
    assert!(e.starts_with("line 2 field `email`:"), "{e}");
    assert!(
        e.contains("expected a string") && e.contains("array"),
        "{e}"
    );
    let usage =
        json!([{"id": "c1", "token": access("c", "u", 600), "usage": {"request_count": "7"}}]);
    let e = err(&usage.to_string());
    assert!(e.starts_with("[0] field `usage.request_count`:"), "{e}");
    assert!(e.contains("expected a number"), "{e}");
    let plain = json!([{"access_token": access("d", "u", 600), "last_refresh": 17}]);
    let e = err(&plain.to_string());
    assert!(e.starts_with("[0] field `last_refresh`:"), "{e}");
}
