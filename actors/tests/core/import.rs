//! The one import rule (`record::import`), as a pure function: an import never puts back a
//! refresh token the account has spent, nor one older than the account's by issue time; it
//! cures an expired account, never a banned one; and the index finds an account by identity,
//! by its current refresh token or by a spent one.

use rotor_actors::{AccountIndex, Freshness, Merged, Status, freshness, merge_import};

use crate::fakes::record;
use crate::support::T0;

#[test]
fn an_import_never_puts_back_a_spent_or_older_refresh_token() {
    let mut acct = record("a", None);
    acct.tokens.last_refresh = Some(T0);
    let backup = acct.clone();
    acct.replace_refresh_token("rt-a+".into());
    acct.tokens.last_refresh = Some(T0 + 60_000);
    assert_eq!(freshness(&acct, &backup), Freshness::Older, "a spent token");
    let mut merged = acct.clone();
    assert_eq!(merge_import(&mut merged, backup.clone()), Merged::KeptNewer);
    assert_eq!(
        merged.tokens, acct.tokens,
        "the account's own tokens are kept"
    );

    let mut older = record("x", None);
    older.identity = acct.identity.clone();
    older.tokens.refresh_token = Some("rt-from-another-login".into());
    older.tokens.last_refresh = Some(T0 + 30_000);
    assert_eq!(freshness(&acct, &older), Freshness::Older, "issued earlier");
    older.tokens.last_refresh = Some(T0 + 90_000);
    assert_eq!(freshness(&acct, &older), Freshness::Newer, "issued later");
    let mut taken = acct.clone();
    taken.refresh_intent = Some(rotor_actors::RefreshIntent {
        started_at: T0,
        reason: rotor_actors::RefreshReason::ProactiveExpiry,
    });
    assert_eq!(merge_import(&mut taken, older.clone()), Merged::Replaced);
    assert_eq!(
        taken.tokens.refresh_token.as_deref(),
        Some("rt-from-another-login")
    );
    assert_eq!(
        taken.refresh_intent, None,
        "the import supersedes the rotation"
    );
    assert!(
        taken.has_spent("rt-a+"),
        "the replaced token joins the lineage"
    );
    assert_eq!(merge_import(&mut taken, acct.clone()), Merged::KeptNewer);

    let mut same = acct.clone();
    assert_eq!(merge_import(&mut same, acct.clone()), Merged::Unchanged);
}

#[test]
fn an_expired_account_is_cured_and_a_banned_one_stays_banned() {
    let mut dead = record("a", None);
    dead.tokens.last_refresh = Some(T0 + 60_000);
    dead.status = Status::Expired;
    dead.status_reason = Some("needs login".into());
    let mut login = record("n", None);
    login.tokens.refresh_token = Some("rt-new-login".into());
    assert_eq!(merge_import(&mut dead, login.clone()), Merged::Replaced);
    assert_eq!(
        (dead.status, dead.status_reason.as_deref()),
        (Status::Active, None)
    );

    let mut banned = record("b", None);
    banned.status = Status::Banned;
    assert_eq!(merge_import(&mut banned, login), Merged::Replaced);
    assert_eq!(banned.status, Status::Banned);
}

#[test]
fn the_index_finds_an_account_by_identity_current_or_spent_token() {
    let mut a = record("a", None);
    let mut index = AccountIndex::default();
    index.insert(&a);
    let mut rt_only = record("x", None);
    rt_only.identity = Default::default();
    assert_eq!(index.find(&rt_only), None, "rt-x is nobody's");
    rt_only.tokens.refresh_token = Some("rt-a".into());
    assert_eq!(index.find(&rt_only).map(String::as_str), Some("a"));
    a.replace_refresh_token("rt-a+".into());
    let mut fresh = AccountIndex::default();
    fresh.insert(&a);
    assert_eq!(
        fresh.find(&rt_only).map(String::as_str),
        Some("a"),
        "by a spent token"
    );
    let mut same_user = record("y", None);
    same_user.identity = a.identity.clone();
    assert_eq!(fresh.find(&same_user).map(String::as_str), Some("a"));
    fresh.remove("a");
    assert_eq!(fresh.find(&same_user), None);
}
