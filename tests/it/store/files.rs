//! What start-up does with entries of `accounts/` it cannot read (issue 15 item 7): a FIFO or
//! a directory under an account's name, a symlink to a volume not mounted yet, a file of the
//! wrong owner or mode. None is waited on, none is moved: each is named in a warning and left
//! in place, so the account is back as soon as the operator fixes the file.

use super::{LogBuf, rec};
use codex_rotor::store::FileStore;
use rotor_actors::Store;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Opens the store with a log capture; the records' ids, the quarantine list, the log.
fn open_logged(dir: &Path) -> (Vec<String>, Vec<codex_rotor::store::Quarantined>, String) {
    let buf = LogBuf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let (_, recs, bad) =
        tracing::subscriber::with_default(subscriber, || FileStore::open(dir)).expect("open");
    let log = String::from_utf8(buf.0.lock().expect("log").clone()).expect("utf8");
    (recs.into_iter().map(|r| r.id).collect(), bad, log)
}

#[test]
fn a_fifo_named_like_an_account_file_is_skipped_and_named_never_waited_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _, _) = FileStore::open(dir.path()).expect("open");
    store.save(&rec("aaaa")).expect("save");
    drop(store);
    let fifo = dir.path().join("accounts/bbbb.json");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());

    let (tx, rx) = std::sync::mpsc::channel();
    let d = dir.path().to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(open_logged(&d));
    });
    let Ok((ids, bad, log)) = rx.recv_timeout(Duration::from_secs(10)) else {
        // Give the blocked reader its EOF so the thread ends, then fail.
        let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
        panic!("start-up blocked on a FIFO in accounts/");
    };
    assert_eq!(ids, ["aaaa"]);
    assert!(bad.is_empty(), "a FIFO is not moved aside: {bad:?}");
    let meta = std::fs::symlink_metadata(&fifo).expect("still there");
    assert!(meta.file_type().is_fifo(), "left as it was");
    assert!(log.contains("WARN") && log.contains("bbbb.json"), "{log}");
}

#[test]
fn entries_that_cannot_be_read_stay_in_place_and_load_once_readable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let accounts = dir.path().join("accounts");
    let (store, _, _) = FileStore::open(dir.path()).expect("open");
    store.save(&rec("aaaa")).expect("save");
    drop(store);
    // A symlink to a volume that is not mounted yet, and a directory under an account's name.
    let volume = dir.path().join("volume");
    std::os::unix::fs::symlink(volume.join("cccc.json"), accounts.join("cccc.json"))
        .expect("symlink");
    std::fs::create_dir(accounts.join("dddd.json")).expect("mkdir");

    let (ids, bad, log) = open_logged(dir.path());
    assert_eq!(ids, ["aaaa"]);
    assert!(bad.is_empty(), "nothing is moved aside: {bad:?}");
    assert!(std::fs::symlink_metadata(accounts.join("cccc.json")).is_ok());
    assert!(accounts.join("dddd.json").is_dir());
    assert!(
        log.contains("cccc.json") && log.contains("dddd.json"),
        "{log}"
    );

    // The volume is mounted: the account is back.
    std::fs::create_dir(&volume).expect("mkdir");
    let bytes = serde_json::to_vec(&rec("cccc")).expect("json");
    std::fs::write(volume.join("cccc.json"), bytes).expect("write");
    let (ids, bad, _) = open_logged(dir.path());
    assert_eq!(ids, ["aaaa", "cccc"]);
    assert!(bad.is_empty());
}

/// True when this process runs as root (who reads any file whatever its mode).
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[test]
fn a_file_the_daemon_user_cannot_read_is_named_and_left_for_its_owner_to_fix() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let accounts = data.join("accounts");
    let (store, _, _) = FileStore::open(&data).expect("open");
    store.save(&rec("aaaa")).expect("save");
    store.save(&rec("eeee")).expect("save");
    drop(store);
    let locked = accounts.join("eeee.json");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    // As root, mode 000 does not stop us: run the CLI as `nobody` instead, who may use the
    // directory and the readable file but not the locked one (owned by root, mode 000).
    let mut cmd = if is_root() {
        for d in [tmp.path(), data.as_path(), accounts.as_path()] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        }
        let readable = accounts.join("aaaa.json");
        std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_codex-rotor"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
    };
    let out = cmd
        .args(["accounts", "--data-dir"])
        .arg(&data)
        .args(["add", "--refresh-token", "rt_added_meanwhile"])
        .env_remove("CODEX_ROTOR_ADMIN_URL")
        .output()
        .expect("cli runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("eeee.json"),
        "the unreadable file is named: {stderr}"
    );
    assert!(locked.exists(), "and left where it is");

    // Its owner fixes the mode: the account loads again.
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (ids, bad, _) = open_logged(&data);
    assert!(
        ids.contains(&"aaaa".to_owned()) && ids.contains(&"eeee".to_owned()),
        "{ids:?}"
    );
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(bad.is_empty());
}
