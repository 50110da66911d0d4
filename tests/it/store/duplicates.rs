//! Two files for one upstream account (issue 15 item 5), e.g. a restored backup under another
//! name: start-up keeps the one with the newest tokens, quarantines the other and names both in
//! a warning, instead of loading both until one is refused upstream as reused.

use super::{LogBuf, rec};
use codex_rotor::store::FileStore;
use rotor_actors::Store;

#[test]
fn two_files_for_one_account_load_once_keeping_the_newest_and_say_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _, _) = FileStore::open(dir.path()).expect("open");
    // zzzz rotated an hour after bbbb, a restored copy of the same ChatGPT account and user.
    let mut restored = rec("bbbb");
    restored.identity.chatgpt_account_id = Some("acct-1".into());
    restored.identity.chatgpt_user_id = Some("user-1".into());
    restored.tokens.last_refresh = Some(restored.added_at);
    let mut live = restored.clone();
    live.id = "zzzz".into();
    live.tokens.refresh_token = Some("rt-rotated".into());
    live.tokens.last_refresh = Some(restored.added_at + 3_600_000);
    store.save(&restored).expect("save");
    store.save(&live).expect("save");
    // Two copies of a refresh-only account that never refreshed: the same refresh token.
    let only_rt = rec("cccc");
    let mut copy = only_rt.clone();
    copy.id = "dddd".into();
    store.save(&only_rt).expect("save");
    store.save(&copy).expect("save");
    store.save(&rec("eeee")).expect("save");
    drop(store);

    let buf = LogBuf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let (_, recs, bad) =
        tracing::subscriber::with_default(subscriber, || FileStore::open(dir.path()))
            .expect("open");
    let log = String::from_utf8(buf.0.lock().expect("log").clone()).expect("utf8");
    let ids: Vec<&str> = recs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(recs.len(), 3, "{ids:?}");
    assert!(ids.contains(&"zzzz") && ids.contains(&"eeee"), "{ids:?}");
    assert!(
        ids.contains(&"cccc") != ids.contains(&"dddd"),
        "one copy of cccc: {ids:?}"
    );
    assert_eq!(bad.len(), 2, "{bad:?}");
    let b = bad
        .iter()
        .find(|q| q.path.ends_with("bbbb.json"))
        .expect("the older copy is quarantined");
    assert!(!b.path.exists() && b.moved_to.as_ref().is_some_and(|p| p.exists()));
    assert!(b.reason.contains("zzzz.json"), "{}", b.reason);
    let line = log
        .lines()
        .find(|l| l.contains("bbbb.json"))
        .unwrap_or_else(|| panic!("no log line: {log}"));
    assert!(
        line.contains("WARN") && line.contains("zzzz.json"),
        "{line}"
    );

    let (_, again, bad_again) = FileStore::open(dir.path()).expect("reopen");
    assert_eq!((again.len(), bad_again.len()), (3, 0));
}
