//! Exactly-once rotation survives a killed daemon. For each step of a refresh — after the intent
//! is durable, after the token endpoint answered, after the new tokens are durable — the real
//! `codex-rotor serve` binary is aborted at that step (`CODEX_ROTOR_CRASH_AT`, which aborts like
//! SIGKILL: no destructors, no flush), then started again. The account must end up working with
//! the newest refresh token the simulator issued on disk, or `expired` with "needs login" —
//! never silently broken. Which outcome each step must have is asserted too.

use super::harness::record_of;
use super::{rt_of, sim};
use codex_rotor::HttpRefresher;
use codex_rotor::sim::{AccountSpec, SimHandle};
use codex_rotor::store::FileStore;
use rotor_actors::{
    AccountRecord, Clock, RefreshReason, Status, SystemClock, TokenRefresher, fault,
};
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What the account must look like after the restart.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Working, with a live refresh token on disk.
    Working,
    /// Either working (as above) or expired with "needs login".
    WorkingOrNeedsLogin,
}

/// A daemon config pointing at the simulator, refreshing 2 s before expiry, without jitter.
fn write_config(dir: &Path, sim: &SimHandle) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        "data_dir = {data:?}\n[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nbase_url = {base:?}\ntoken_url = {token:?}\n\
         [refresh]\nmargin = \"2s\"\njitter = \"0s\"\n[pool]\ntick = \"100ms\"\n",
        data = dir.join("data").display().to_string(),
        base = sim.backend_url(),
        token = sim.token_url(),
    );
    std::fs::write(&path, text).expect("config written");
    path
}

/// Starts `codex-rotor serve`, optionally with a crash point armed.
fn spawn_daemon(config: &Path, crash_at: Option<&str>, log: &Path) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_codex-rotor"));
    cmd.arg("serve")
        .arg("--config")
        .arg(config)
        .env_remove(fault::ENV);
    if let Some(point) = crash_at {
        cmd.env(fault::ENV, point);
    }
    let log = std::fs::File::create(log).expect("log file");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("daemon starts")
}

/// Waits for the child to exit on its own (polling, so the in-process simulator keeps serving).
async fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// The one account record in the data dir.
fn on_disk(data: &Path) -> AccountRecord {
    let (_, mut recs, quarantined) = FileStore::open(data).expect("data dir");
    assert!(
        quarantined.is_empty(),
        "no account file may be corrupt: {quarantined:?}"
    );
    assert_eq!(recs.len(), 1, "the account is never lost");
    recs.remove(0)
}

/// The one account file as a running daemon has it, read without opening a store (opening
/// one removes a write's temp file, which would fail the running daemon's rename under it).
fn read_live(data: &Path) -> Option<AccountRecord> {
    let dir = data.join("accounts");
    let file = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))?;
    serde_json::from_slice(&std::fs::read(file).ok()?).ok()
}

/// Waits until `cond` holds for the record on disk (while a daemon may be writing it).
async fn wait_disk(
    data: &Path,
    limit: Duration,
    cond: impl Fn(&AccountRecord) -> bool,
) -> AccountRecord {
    let start = Instant::now();
    loop {
        let Some(rec) = read_live(data) else {
            assert!(start.elapsed() <= limit, "the account file is never lost");
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if cond(&rec) || start.elapsed() > limit {
            return rec;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One crash-and-restart round at `point`.
async fn crash_at(sim: &SimHandle, point: &str, expect: Expect) {
    let acct = sim.create_account(AccountSpec::default());
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mut rec = record_of(&acct);
    // Due for a proactive refresh half a second after start (margin 2 s).
    rec.tokens.expires_at = Some(SystemClock.now_ms() + 2_500);
    let (store, _, _) = FileStore::open(&data).expect("store");
    rotor_actors::Store::save(&store, &rec).expect("seeded");
    let config = write_config(tmp.path(), sim);

    let log1 = tmp.path().join("first.log");
    let mut first = spawn_daemon(&config, Some(point), &log1);
    let status = wait_exit(&mut first, Duration::from_secs(20)).await;
    let log = || std::fs::read_to_string(&log1).unwrap_or_default();
    let Some(status) = status else {
        drop(Reaped(first));
        panic!(
            "{point}: the daemon did not reach the fault point; log:\n{}",
            log()
        );
    };
    assert_eq!(
        status.signal(),
        Some(6),
        "{point}: aborted at the fault point, log:\n{}",
        log()
    );

    let completed = sim.counters(&acct.id).refreshes;
    let crashed = on_disk(&data);
    assert!(
        crashed.refresh_intent.is_some(),
        "{point}: the intent was durable before the crash"
    );
    match point {
        fault::REFRESH_AFTER_INTENT => assert_eq!(completed, 0, "the endpoint was not called yet"),
        _ => assert_eq!(completed, 1, "{point}: the simulator rotated the token"),
    }
    if point == fault::REFRESH_AFTER_PERSIST {
        assert_ne!(
            crashed.tokens.refresh_token.as_deref(),
            Some(rt_of(&acct.auth_json).as_str())
        );
    }

    let log2 = tmp.path().join("second.log");
    let second = Reaped(spawn_daemon(&config, None, &log2));
    let settled = wait_disk(&data, Duration::from_secs(15), |r| {
        r.refresh_intent.is_none() && matches!(r.status, Status::Active | Status::Expired)
    })
    .await;
    drop(second);
    let after = on_disk(&data);
    assert_eq!(settled.status, after.status);
    let log2_text = std::fs::read_to_string(&log2).unwrap_or_default();
    assert!(
        after.refresh_intent.is_none(),
        "{point}: the restart resolved the intent; log:\n{log2_text}"
    );

    eprintln!(
        "{point}: after restart the account is {:?} ({:?})",
        after.status, after.status_reason
    );
    match after.status {
        Status::Active => {
            // The refresh token on disk is the newest one issued: the simulator accepts it
            // (every older one is spent and would be refused as reused).
            let rt = after.tokens.refresh_token.clone().expect("refresh token");
            let r = HttpRefresher::new(reqwest::Client::new(), sim.token_url());
            let live = r.refresh(rt, RefreshReason::ProactiveExpiry).await;
            assert!(
                live.is_ok(),
                "{point}: working account with a dead refresh token on disk: {live:?}; \
                 log:\n{log2_text}"
            );
        }
        Status::Expired => {
            assert_eq!(
                expect,
                Expect::WorkingOrNeedsLogin,
                "{point}: must recover, log:\n{log2_text}"
            );
            let reason = after.status_reason.clone().unwrap_or_default();
            assert!(
                reason.contains("needs login"),
                "{point}: expired says why: {reason}"
            );
        }
        other => panic!("{point}: account left {other:?}; log:\n{log2_text}"),
    }
}

#[tokio::test]
async fn a_crash_at_each_step_of_a_rotation_never_loses_the_account() {
    let sim = sim().await;
    crash_at(&sim, fault::REFRESH_AFTER_INTENT, Expect::Working).await;
    crash_at(
        &sim,
        fault::REFRESH_AFTER_RESPONSE,
        Expect::WorkingOrNeedsLogin,
    )
    .await;
    crash_at(&sim, fault::REFRESH_AFTER_PERSIST, Expect::Working).await;
    sim.shutdown().await;
}

/// A daemon killed (SIGKILL) and reaped when dropped, even by a failed assertion.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
