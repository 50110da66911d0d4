//! The one thread that writes account files, so that no `fsync` ever runs on a runtime worker
//! thread (with 1 000 accounts the coalesced flushes alone are hundreds of fsyncs a second,
//! and on a 2-core box each one stalled half the runtime).
//!
//! The same queue feeds the PostgreSQL store ([`Sink`]), where a batch is one transaction.
//!
//! Ordering: every write and removal of every account goes through one queue holding at most
//! one pending operation per account — the latest, since each record is a whole snapshot taken
//! by the account's own actor — so an older record can never land after a newer one.
//! Durability: a caller that needs its record on disk before it goes on (token rotation,
//! status changes, shutdown) waits for the acknowledgement of the batch that wrote it; a
//! coalesced quota/usage flush does not wait. A batch is written as: every temp file written
//! and fsynced, renamed into place, then one directory fsync for the whole batch (group commit).
//!
//! Shutdown: dropping the last handle drains the queue, retrying what the sink refused for
//! [`DRAIN_GRACE`]; what still has not landed then is named in the log (record keys only) and
//! the thread ends, so a store that does not answer cannot hold the process.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::hash::Hash;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rotor_actors::AccountRecord;

/// Pause before retrying coalesced writes the disk refused.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How long the final drain (the last handle dropped, on shutdown) goes on retrying what the
/// sink refused, from the drop: what a database back within it still takes. A batch begun in
/// it ends within the sink's own bound (the PostgreSQL sink's 2 s), so the thread ends at most
/// that much later. Not `server.shutdown_grace`, which is what open streams get to finish
/// (30 s by default); a store that does not answer for 2 s is down, and the shutdown should
/// not wait on it.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// The fencing generation an operation was made under: the one the process held for the
/// account when it queued it (`None`: it held none — always with the files, which need none,
/// and for an account new to the store). It travels with the operation through the queue, so
/// the sink can tell a write queued under a generation the process no longer holds (its
/// session was lost meanwhile) from one of the current holder.
pub(super) type Stamp = Option<i64>;

/// What is pending for one account.
pub(super) enum Op {
    /// Write this record, made under this generation.
    Write(Box<AccountRecord>, Stamp),
    /// Delete the account's record, asked under this generation.
    Remove(Stamp),
}

/// Where a batch lands: the account files, or the database (`postgres::records`). The queue,
/// its ordering and its acknowledgements are the writer's; the sink only writes.
pub(super) trait Sink: Send + 'static {
    /// What names one account's record (its file, its id).
    type Key: Eq + Hash + Clone + Send + std::fmt::Debug + 'static;
    /// Applies a batch (at most one operation per key) and returns one result per entry, in
    /// order; a result is `Ok` only once that operation is durable.
    fn apply(&mut self, batch: &[(Self::Key, Op)]) -> Vec<io::Result<()>>;
    /// Whether a coalesced write that failed with `e` is worth trying again (a full disk is,
    /// a write fenced out by a newer owner is not).
    fn retryable(&self, e: &io::Error) -> bool {
        let _ = e;
        true
    }
}

/// The queue shared by the handles and the thread.
struct Queue<K> {
    /// Latest pending operation per record.
    pending: HashMap<K, Op>,
    /// Callers waiting for a record's pending operation to be durable.
    waiters: HashMap<K, Vec<SyncSender<io::Result<()>>>>,
    /// When the last handle went (drain, then stop).
    closed: Option<Instant>,
}

struct Shared<K> {
    queue: Mutex<Queue<K>>,
    wake: Condvar,
}

impl<K> Shared<K> {
    fn lock(&self) -> MutexGuard<'_, Queue<K>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Handle to the writer thread; dropping the last one drains the queue and ends the thread.
pub(super) struct Writer<K> {
    shared: Arc<Shared<K>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<K: Eq + Hash + Clone + Send + std::fmt::Debug + 'static> Writer<K> {
    /// Starts the writer thread, named `name`, writing through `sink`.
    pub(super) fn start<S: Sink<Key = K>>(name: &str, sink: S) -> io::Result<Writer<K>> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                pending: HashMap::new(),
                waiters: HashMap::new(),
                closed: None,
            }),
            wake: Condvar::new(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(&s, sink))?;
        Ok(Writer {
            shared,
            thread: Some(thread),
        })
    }

    /// Queues an operation; with `wait`, returns once it (or a newer one for the same record)
    /// is durable.
    fn submit(&self, key: K, op: Op, wait: bool) -> io::Result<()> {
        let rx = {
            let mut q = self.shared.lock();
            let rx = wait.then(|| {
                let (tx, rx) = sync_channel(1);
                q.waiters.entry(key.clone()).or_default().push(tx);
                rx
            });
            q.pending.insert(key, op);
            rx
        };
        self.shared.wake.notify_one();
        let Some(rx) = rx else { return Ok(()) };
        let recv = || {
            rx.recv()
                .unwrap_or_else(|_| Err(io::Error::other("the account writer thread is gone")))
        };
        // Waiting blocks this thread; on a runtime worker, hand the worker's other tasks over
        // first so requests keep flowing while the disk syncs.
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(recv)
            }
            _ => recv(),
        }
    }

    /// Queues a write of `rec` under `key`, made under generation `stamp`.
    pub(super) fn write(
        &self,
        key: K,
        rec: &AccountRecord,
        stamp: Stamp,
        wait: bool,
    ) -> io::Result<()> {
        self.submit(key, Op::Write(Box::new(rec.clone()), stamp), wait)
    }

    /// Queues the deletion of `key`'s record, asked under generation `stamp`, and waits for it.
    pub(super) fn remove(&self, key: K, stamp: Stamp) -> io::Result<()> {
        self.submit(key, Op::Remove(stamp), true)
    }
}

impl<K> Drop for Writer<K> {
    fn drop(&mut self) {
        self.shared.lock().closed = Some(Instant::now());
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copies an error for a second recipient (`io::Error` is not `Clone`).
pub(super) fn copy(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

/// The writer loop: take everything pending, write it as one batch, acknowledge.
fn run<S: Sink>(shared: &Shared<S::Key>, mut sink: S) {
    loop {
        let (batch, mut waiters) = {
            let mut q = shared.lock();
            while q.pending.is_empty() && q.closed.is_none() {
                q = shared.wake.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            if q.pending.is_empty() {
                return;
            }
            let batch: Vec<(S::Key, Op)> = std::mem::take(&mut q.pending).into_iter().collect();
            let waiters: HashMap<_, _> = batch
                .iter()
                .filter_map(|(k, _)| q.waiters.remove_entry(k))
                .collect();
            (batch, waiters)
        };
        let results = sink.apply(&batch);
        let mut retry = Vec::new();
        for ((key, op), r) in batch.into_iter().zip(results) {
            let coalesced = matches!(op, Op::Write(..)) && !waiters.contains_key(&key);
            if let Err(e) = &r
                && coalesced
            {
                if sink.retryable(e) {
                    tracing::error!(record = ?key, error = %e, "could not write the account record; retrying");
                    retry.push((key.clone(), op));
                } else {
                    tracing::error!(record = ?key, error = %e, "could not write the account record; not retried");
                }
            }
            for tx in waiters.remove(&key).unwrap_or_default() {
                let _ = tx.send(r.as_ref().map(|_| ()).map_err(copy));
            }
        }
        if !retry.is_empty() {
            let mut q = shared.lock();
            for (key, op) in retry {
                q.pending.entry(key).or_insert(op);
            }
            let pause = match q.closed {
                None => RETRY_AFTER,
                Some(at) => {
                    let left = (at + DRAIN_GRACE).saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        let mut lost: Vec<_> = q.pending.keys().cloned().collect();
                        lost.sort_by_key(|k| format!("{k:?}"));
                        tracing::error!(records = ?lost, grace = ?DRAIN_GRACE, "shutdown: the store did not take these records within the grace; their last changes are lost");
                        return;
                    }
                    left.min(RETRY_AFTER)
                }
            };
            // The pause ends early when the last handle goes (the drain's grace starts then), and
            // when a caller waits for a write (it is told how its own batch went at once, not
            // after the pause; the retried writes go with it).
            let closed = q.closed;
            let _ = shared
                .wake
                .wait_timeout_while(q, pause, |q| q.closed == closed && q.waiters.is_empty())
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The account files of one directory: each record temp → fsync → rename, then one directory
/// fsync for the whole batch (group commit).
pub(super) struct Files {
    /// `<data_dir>/accounts`.
    pub(super) dir: PathBuf,
}

impl Sink for Files {
    type Key = PathBuf;

    fn apply(&mut self, batch: &[(PathBuf, Op)]) -> Vec<io::Result<()>> {
        let results: Vec<io::Result<()>> = batch
            .iter()
            .map(|(path, op)| match op {
                Op::Write(rec, _) => write_file(path, rec),
                Op::Remove(_) => match fs::remove_file(path) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    r => r,
                },
            })
            .collect();
        let dir_synced = File::open(&self.dir).and_then(|d| d.sync_all());
        results
            .into_iter()
            .map(|r| r.and_then(|()| dir_synced.as_ref().map(|_| ()).map_err(copy)))
            .collect()
    }
}

/// temp → fsync → rename (the directory is synced once per batch by the caller).
fn write_file(path: &Path, rec: &AccountRecord) -> io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(rec).map_err(io::Error::other)?;
    {
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_actors::Tokens;

    fn rec(requests: u64) -> AccountRecord {
        let mut r = AccountRecord::new("a", Tokens::default(), 0);
        r.usage.requests = requests;
        r
    }

    fn files(dir: &Path) -> Writer<PathBuf> {
        let sink = Files {
            dir: dir.to_path_buf(),
        };
        Writer::start("account-writer", sink).expect("writer")
    }

    fn on_disk(path: &Path) -> Option<u64> {
        let bytes = fs::read(path).ok()?;
        let r: AccountRecord = serde_json::from_slice(&bytes).expect("valid record");
        Some(r.usage.requests)
    }

    #[test]
    fn a_waited_save_is_on_disk_and_never_overtaken_by_an_older_coalesced_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.json");
        let w = files(dir.path());
        for n in 1..=50 {
            w.write(path.clone(), &rec(n), None, false).expect("queued");
        }
        w.write(path.clone(), &rec(51), None, true)
            .expect("durable");
        assert_eq!(on_disk(&path), Some(51));
        drop(w);
        assert_eq!(on_disk(&path), Some(51), "nothing older landed afterwards");
        assert!(!path.with_extension("json.tmp").exists());
    }

    /// A sink standing for a database behind a stalled network: each batch takes `stall` (the
    /// PostgreSQL sink's bound) and fails, until `answers`.
    #[derive(Clone, Default)]
    struct Stalled(Arc<Mutex<StalledState>>);

    #[derive(Default)]
    struct StalledState {
        answers: bool,
        stall: Duration,
        landed: HashMap<String, u64>,
    }

    impl Stalled {
        fn set(&self, f: impl FnOnce(&mut StalledState)) {
            f(&mut self.0.lock().unwrap());
        }
        fn landed(&self, key: &str) -> Option<u64> {
            self.0.lock().unwrap().landed.get(key).copied()
        }
    }

    impl Sink for Stalled {
        type Key = String;

        fn apply(&mut self, batch: &[(String, Op)]) -> Vec<io::Result<()>> {
            let (answers, stall) = {
                let s = self.0.lock().unwrap();
                (s.answers, s.stall)
            };
            std::thread::sleep(stall);
            let mut s = self.0.lock().unwrap();
            batch
                .iter()
                .map(|(key, op)| {
                    if !answers {
                        return Err(io::Error::other("the database did not answer in time"));
                    }
                    if let Op::Write(rec, _) = op {
                        s.landed.insert(key.clone(), rec.usage.requests);
                    }
                    Ok(())
                })
                .collect()
        }
    }

    #[test]
    fn a_store_that_does_not_answer_tells_a_waiting_caller_keeps_coalesced_writes_and_lets_the_drop_end()
     {
        let stall = Duration::from_millis(300);
        let sink = Stalled::default();
        sink.set(|s| s.stall = stall);
        let w = Writer::start("account-writer-test", sink.clone()).expect("writer");
        w.write("a".into(), &rec(1), None, false).expect("queued");
        let asked = Instant::now();
        let e = w.write("b".into(), &rec(1), None, true);
        assert!(e.is_err(), "a waited write that did not land is an error");
        assert!(
            asked.elapsed() < stall * 2 + RETRY_AFTER + Duration::from_millis(500),
            "told within a batch or two: {:?}",
            asked.elapsed()
        );
        // The database answers again: the coalesced write, still queued, lands.
        sink.set(|s| s.answers = true);
        let deadline = Instant::now() + Duration::from_secs(10);
        while sink.landed("a").is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(sink.landed("a"), Some(1), "the queued write landed");
        assert_eq!(
            sink.landed("b"),
            None,
            "the waited one was its caller's to retry"
        );
        // Stalled again: the drop drains for its grace, then gives up instead of hanging.
        sink.set(|s| s.answers = false);
        w.write("c".into(), &rec(3), None, false).expect("queued");
        let dropped = Instant::now();
        drop(w);
        let took = dropped.elapsed();
        assert!(
            took >= DRAIN_GRACE && took < DRAIN_GRACE + stall + Duration::from_millis(500),
            "the drain retried for its grace and no longer: {took:?}"
        );
        assert_eq!(sink.landed("c"), None);
    }

    #[test]
    fn a_write_waited_for_during_the_retry_pause_is_tried_at_once() {
        let stall = Duration::from_millis(200);
        let sink = Stalled::default();
        sink.set(|s| s.stall = stall);
        let w = Writer::start("account-writer-test", sink.clone()).expect("writer");
        // A coalesced write fails; the writer pauses before retrying it.
        w.write("a".into(), &rec(1), None, false).expect("queued");
        std::thread::sleep(stall + Duration::from_millis(200));
        sink.set(|s| s.answers = true);
        let asked = Instant::now();
        w.write("b".into(), &rec(2), None, true)
            .expect("landed in the next batch");
        assert!(
            asked.elapsed() < stall + Duration::from_millis(500),
            "not held for the pause ({RETRY_AFTER:?}): {:?}",
            asked.elapsed()
        );
        assert_eq!(sink.landed("a"), Some(1), "the retried write went with it");
    }

    #[test]
    fn a_store_back_within_the_drain_grace_still_takes_what_was_queued() {
        let sink = Stalled::default();
        sink.set(|s| s.stall = Duration::from_millis(100));
        let w = Writer::start("account-writer-test", sink.clone()).expect("writer");
        w.write("a".into(), &rec(5), None, false).expect("queued");
        let back = {
            let sink = sink.clone();
            std::thread::spawn(move || {
                std::thread::sleep(DRAIN_GRACE / 2);
                sink.set(|s| s.answers = true);
            })
        };
        drop(w);
        back.join().expect("joined");
        assert_eq!(sink.landed("a"), Some(5), "landed in the drain");
    }

    #[test]
    fn coalesced_saves_are_drained_when_the_store_goes_and_a_removal_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
        let w = files(dir.path());
        w.write(a.clone(), &rec(7), None, false).expect("queued");
        w.write(b.clone(), &rec(1), None, false).expect("queued");
        w.remove(b.clone(), None).expect("removed");
        drop(w);
        assert_eq!(on_disk(&a), Some(7), "drained on drop");
        assert!(!b.exists(), "the removal came last and won");
    }
}
