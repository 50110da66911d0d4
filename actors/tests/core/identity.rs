//! Identity after refresh: an account imported from a refresh token alone learns who it is
//! (workspace id, user id, email, plan) from its first refreshed tokens, durably and with the
//! tokens; an account that turns out to duplicate another is kept and reported in the log.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rotor_actors::{AccountRecord, AddOutcome, Identity, PoolHandle, Tokens};
use serde_json::json;

use crate::fakes::{Fx, record};
use crate::pool::{cfg, settle};
use crate::support::T0;

/// Log lines written while the guard lives (current-thread runtime: every actor logs here).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let me = self.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || me.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_default(sub)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// What a refresh-only import looks like: no access token (expired now), no identity.
fn refresh_only(id: &str) -> AccountRecord {
    let tokens = Tokens {
        refresh_token: Some(format!("rt-{id}")),
        expires_at: Some(T0),
        ..Tokens::default()
    };
    AccountRecord::new(id, tokens, T0)
}

fn access_claims(acct: &str, user_key: &str, user: &str, plan: &str) -> serde_json::Value {
    json!({ "https://api.openai.com/auth": {
        "chatgpt_account_id": acct, user_key: user, "chatgpt_plan_type": plan } })
}

#[tokio::test(start_paused = true)]
async fn a_refresh_fills_the_missing_identity_durably_and_a_duplicate_is_reported() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let fx = Fx::new();
    let mut a = record("a", None);
    a.identity.chatgpt_user_id = Some("u-a".into());
    let mut c = refresh_only("c");
    c.identity.email = Some("c-own@example.com".into());
    c.identity.plan = Some("plus".into());
    {
        let mut claims = fx.refresher.claims.lock().unwrap();
        // b: user id only under the older `user_id` claim; email only in the id token
        claims.insert(
            "rt-b".into(),
            (
                access_claims("acct-b", "user_id", "u-b", "pro"),
                json!({ "email": "b@example.com" }),
            ),
        );
        // c: turns out to be account a; its own email is kept, its plan follows the claim
        claims.insert(
            "rt-c".into(),
            (
                json!({ "https://api.openai.com/profile": { "email": "a@example.com" },
                        "https://api.openai.com/auth": {
                            "chatgpt_account_id": "acct-a", "chatgpt_user_id": "u-a",
                            "chatgpt_plan_type": "team" } }),
                json!({}),
            ),
        );
    }
    let pool = PoolHandle::start(cfg(), fx.effects(), vec![a, refresh_only("b"), c])
        .await
        .expect("pool");
    settle(Duration::from_secs(3)).await;

    let b = fx.store.get("b").expect("b on disk");
    assert_eq!(
        b.identity,
        Identity {
            email: Some("b@example.com".into()),
            plan: Some("pro".into()),
            chatgpt_account_id: Some("acct-b".into()),
            chatgpt_user_id: Some("u-b".into()),
            label: None,
        },
        "every missing field filled from the access and id token claims"
    );
    assert_eq!(b.tokens.refresh_token.as_deref(), Some("rt-b+"));
    let first_with_tokens = fx
        .store
        .saves
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.id == "b" && r.tokens.refresh_token.as_deref() == Some("rt-b+"))
        .map(|r| r.identity.chatgpt_account_id.clone());
    assert_eq!(
        first_with_tokens,
        Some(Some("acct-b".into())),
        "the identity is in the same durable write as the new tokens"
    );
    let lease = pool
        .pick(crate::pool::req())
        .await
        .expect("b and c serve after their refresh");
    drop(lease);

    let c = fx.store.get("c").expect("c on disk");
    assert_eq!(
        c.identity.email.as_deref(),
        Some("c-own@example.com"),
        "a known field is kept"
    );
    assert_eq!(
        c.identity.plan.as_deref(),
        Some("team"),
        "the plan follows the claim"
    );
    assert_eq!(c.identity.chatgpt_account_id.as_deref(), Some("acct-a"));
    let log = logs.text();
    let dup = log
        .lines()
        .find(|l| l.contains("duplicates another"))
        .unwrap_or_else(|| panic!("no duplicate warning in:\n{log}"));
    assert!(
        dup.contains("WARN") && dup.contains("account=c") && dup.contains("duplicate_of=a"),
        "{dup}"
    );
    assert!(!log.contains("rt-b"), "no token in the log");
    assert_eq!(
        pool.summary().await.total,
        3,
        "the duplicate is kept, not deleted"
    );

    let mut again = record("b2", None);
    again.identity.chatgpt_account_id = Some("acct-b".into());
    again.identity.chatgpt_user_id = Some("u-b".into());
    assert_eq!(
        pool.add(again).await,
        Ok(AddOutcome::KeptNewer("b".into())),
        "a later import of the account finds it by its learned identity (and, saying nothing of \
         when its tokens were issued, does not replace the ones the pool has just rotated)"
    );
    pool.shutdown().await;
}
