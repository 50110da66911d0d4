//! On-disk state (`src/store.rs`): one durable JSON file per account, corrupt files moved aside
//! while the rest loads, nothing overwritten by an empty pool, and a pool that survives a
//! restart through its files.

mod duplicates;
mod files;

use std::sync::Arc;

use codex_rotor::store::FileStore;
use rotor_actors::quota::Observation;
use rotor_actors::{
    AccountRecord, BoxFuture, Effects, NewTokens, PoolConfig, PoolHandle, ProbeError, QuotaProber,
    RefreshError, RefreshReason, Store, SystemClock, TokenRefresher, Tokens, UpstreamCreds,
};

fn rec(id: &str) -> AccountRecord {
    let tokens = Tokens {
        access_token: format!("at-{id}"),
        refresh_token: Some(format!("rt-{id}")),
        ..Tokens::default()
    };
    AccountRecord::new(id, tokens, 1_795_651_200_000)
}

#[test]
fn a_saved_account_is_one_private_file_and_loads_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, recs, bad) = FileStore::open(dir.path()).expect("open");
    assert!(recs.is_empty() && bad.is_empty());
    let mut r = rec("0123456789abcdef");
    store.save(&r).expect("save");
    r.usage.requests = 7;
    store.save(&r).expect("save again");
    let path = dir.path().join("accounts/0123456789abcdef.json");
    assert!(path.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "files hold tokens: owner only");
    }
    let names: Vec<String> = std::fs::read_dir(dir.path().join("accounts"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["0123456789abcdef.json"], "no temp file left behind");
    assert_eq!(
        store.load("0123456789abcdef").expect("load"),
        Some(r.clone())
    );
    assert_eq!(store.load("ffffffffffffffff").expect("load missing"), None);
    let (_, recs, _) = FileStore::open(dir.path()).expect("reopen");
    assert_eq!(recs, [r]);
}

#[test]
fn a_corrupt_file_is_quarantined_and_every_other_account_still_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let accounts = dir.path().join("accounts");
    std::fs::create_dir_all(&accounts).expect("mkdir");
    let (store, _, _) = FileStore::open(dir.path()).expect("open");
    store.save(&rec("aaaa")).expect("save");
    store.save(&rec("cccc")).expect("save");
    std::fs::write(accounts.join("bbbb.json"), b"{\"id\": \"bbbb\", \"tok").expect("write garbage");
    let mut wrong = serde_json::to_value(rec("dddd")).expect("json");
    wrong["id"] = "eeee".into();
    std::fs::write(accounts.join("dddd.json"), wrong.to_string()).expect("write mismatched");
    std::fs::write(accounts.join("cccc.json.tmp"), b"half a write").expect("write tmp");

    let (_, recs, bad) = FileStore::open(dir.path()).expect("open");
    let ids: Vec<&str> = recs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["aaaa", "cccc"]);
    assert_eq!(bad.len(), 2, "{bad:?}");
    for q in &bad {
        assert!(!q.path.exists(), "moved away from its name");
        let moved = q.moved_to.as_ref().expect("renamed");
        let name = moved
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(name.contains(".json.corrupt-"), "{name}");
    }
    let garbage = bad
        .iter()
        .find(|q| q.path.ends_with("bbbb.json"))
        .expect("bbbb quarantined");
    let kept = std::fs::read(garbage.moved_to.as_ref().expect("moved")).expect("read");
    assert_eq!(
        kept, b"{\"id\": \"bbbb\", \"tok",
        "the bytes are kept for the operator"
    );
    assert!(bad.iter().any(|q| q.reason.contains("does not match")));
    assert!(
        !accounts.join("cccc.json.tmp").exists(),
        "a leftover temp file is dropped"
    );
    let (_, again, bad_again) = FileStore::open(dir.path()).expect("reopen");
    assert_eq!(
        (again.len(), bad_again.len()),
        (2, 0),
        "quarantined files are not retried"
    );
}

/// Collects what a `tracing` subscriber writes, to check log lines.
#[derive(Clone, Default)]
struct LogBuf(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn quarantine_is_announced_in_a_warning_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("accounts")).expect("mkdir");
    std::fs::write(dir.path().join("accounts/broken.json"), b"[1,").expect("write");
    let buf = LogBuf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let (_, recs, bad) =
        tracing::subscriber::with_default(subscriber, || FileStore::open(dir.path()))
            .expect("open");
    assert!(recs.is_empty() && bad.len() == 1);
    let log = String::from_utf8(buf.0.lock().expect("log").clone()).expect("utf8");
    assert!(log.contains("WARN") && log.contains("broken.json"), "{log}");
    assert!(
        log.contains(".corrupt-"),
        "the new name is logged too: {log}"
    );
}

#[test]
fn ids_that_are_not_safe_file_names_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _, _) = FileStore::open(dir.path()).expect("open");
    for id in ["../escape", "", "a/b", "x.json"] {
        let err = store.save(&rec(id)).expect_err(id);
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    }
    store
        .remove("never-existed")
        .expect("removing a missing account is fine");
}

struct NoRefresh;
impl TokenRefresher for NoRefresh {
    fn refresh(
        &self,
        _: String,
        _: RefreshReason,
    ) -> BoxFuture<'static, Result<NewTokens, RefreshError>> {
        Box::pin(async { Err(RefreshError::Transient("offline".into())) })
    }
}
struct NoProbe;
impl QuotaProber for NoProbe {
    fn probe(&self, _: UpstreamCreds) -> BoxFuture<'static, Result<Observation, ProbeError>> {
        Box::pin(async { Err(ProbeError::Transient("offline".into())) })
    }
}

fn effects(store: FileStore) -> Effects {
    Effects {
        store: Arc::new(store),
        refresher: Arc::new(NoRefresh),
        prober: Arc::new(NoProbe),
        fence: Arc::new(rotor_actors::NoFence),
        clock: Arc::new(SystemClock),
    }
}

#[tokio::test]
async fn the_pool_persists_through_its_files_and_an_empty_pool_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("accounts")).expect("mkdir");
    std::fs::write(dir.path().join("accounts/zzzz.json"), b"not json").expect("write");

    let (store, recs, bad) = FileStore::open(dir.path()).expect("open");
    assert!(recs.is_empty() && bad.len() == 1);
    let pool = PoolHandle::start(PoolConfig::default(), effects(store), recs)
        .await
        .expect("start");
    pool.shutdown().await;
    let files: Vec<_> = std::fs::read_dir(dir.path().join("accounts"))
        .expect("ls")
        .collect();
    assert_eq!(
        files.len(),
        1,
        "an empty pool wrote nothing; only the quarantined file remains"
    );

    let (store, recs, _) = FileStore::open(dir.path()).expect("open");
    let pool = PoolHandle::start(PoolConfig::default(), effects(store), recs)
        .await
        .expect("start");
    pool.add(rec("abcdabcdabcdabcd")).await.expect("add");
    let lease = pool
        .pick(rotor_actors::PickRequest {
            model: "gpt-5.5".into(),
            ..Default::default()
        })
        .await
        .expect("lease");
    drop(lease);
    pool.set_enabled("abcdabcdabcdabcd", false)
        .await
        .expect("disable");
    pool.shutdown().await;

    let (_, recs, bad) = FileStore::open(dir.path()).expect("reopen");
    assert!(bad.is_empty());
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].status, rotor_actors::Status::Disabled);
    assert_eq!(recs[0].usage.requests, 1, "usage flushed on shutdown");
    assert_eq!(
        recs[0].tokens.refresh_token.as_deref(),
        Some("rt-abcdabcdabcdabcd")
    );
}
