//! The one thread that writes account files, so that no `fsync` ever runs on a runtime worker
//! thread (with 1 000 accounts the coalesced flushes alone are hundreds of fsyncs a second,
//! and on a 2-core box each one stalled half the runtime).
//!
//! Ordering: every write and removal of every account goes through one queue holding at most
//! one pending operation per account — the latest, since each record is a whole snapshot taken
//! by the account's own actor — so an older record can never land after a newer one.
//! Durability: a caller that needs its record on disk before it goes on (token rotation,
//! status changes, shutdown) waits for the acknowledgement of the batch that wrote it; a
//! coalesced quota/usage flush does not wait. A batch is written as: every temp file written
//! and fsynced, renamed into place, then one directory fsync for the whole batch (group commit).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rotor_actors::AccountRecord;

/// Pause before retrying coalesced writes the disk refused.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What is pending for one account.
pub(super) enum Op {
    /// Write this record.
    Write(Box<AccountRecord>),
    /// Delete the account's file.
    Remove,
}

/// The queue shared by the handles and the thread.
#[derive(Default)]
struct Queue {
    /// Latest pending operation per file path.
    pending: HashMap<PathBuf, Op>,
    /// Callers waiting for a path's pending operation to be durable.
    waiters: HashMap<PathBuf, Vec<SyncSender<io::Result<()>>>>,
    /// The last handle is gone: drain and stop.
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Handle to the writer thread; dropping the last one drains the queue and ends the thread.
pub(super) struct Writer {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread for files in `dir`.
    pub(super) fn start(dir: PathBuf) -> io::Result<Writer> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("account-writer".into())
            .spawn(move || run(&s, &dir))?;
        Ok(Writer {
            shared,
            thread: Some(thread),
        })
    }

    /// Queues an operation; with `wait`, returns once it (or a newer one for the same file) is
    /// durable.
    fn submit(&self, path: PathBuf, op: Op, wait: bool) -> io::Result<()> {
        let rx = {
            let mut q = self.shared.lock();
            let rx = wait.then(|| {
                let (tx, rx) = sync_channel(1);
                q.waiters.entry(path.clone()).or_default().push(tx);
                rx
            });
            q.pending.insert(path, op);
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

    /// Queues a write of `rec` to `path`.
    pub(super) fn write(&self, path: PathBuf, rec: &AccountRecord, wait: bool) -> io::Result<()> {
        self.submit(path, Op::Write(Box::new(rec.clone())), wait)
    }

    /// Queues the deletion of `path` and waits for it.
    pub(super) fn remove(&self, path: PathBuf) -> io::Result<()> {
        self.submit(path, Op::Remove, true)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The writer loop: take everything pending, write it as one batch, acknowledge.
fn run(shared: &Shared, dir: &std::path::Path) {
    loop {
        let (batch, mut waiters) = {
            let mut q = shared.lock();
            while q.pending.is_empty() && !q.closed {
                q = shared.wake.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            if q.pending.is_empty() && q.closed {
                return;
            }
            let batch = std::mem::take(&mut q.pending);
            let waiters: HashMap<_, _> = batch
                .keys()
                .filter_map(|p| q.waiters.remove_entry(p))
                .collect();
            (batch, waiters)
        };
        let mut failed = Vec::new();
        let mut results: Vec<(PathBuf, io::Result<()>)> = Vec::with_capacity(batch.len());
        for (path, op) in batch {
            let r = match &op {
                Op::Write(rec) => write_file(&path, rec),
                Op::Remove => match fs::remove_file(&path) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    r => r,
                },
            };
            if let Err(e) = &r
                && matches!(op, Op::Write(_))
                && !waiters.contains_key(&path)
            {
                tracing::error!(file = %path.display(), error = %e, "could not write the account file; retrying");
                failed.push((path.clone(), op));
            }
            results.push((path, r));
        }
        let dir_synced = File::open(dir).and_then(|d| d.sync_all());
        for (path, r) in results {
            let r = r.and_then(|()| match &dir_synced {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            });
            for tx in waiters.remove(&path).unwrap_or_default() {
                let _ = tx.send(match &r {
                    Ok(()) => Ok(()),
                    Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                });
            }
        }
        if !failed.is_empty() {
            let mut q = shared.lock();
            for (path, op) in failed {
                q.pending.entry(path).or_insert(op);
            }
            let closed = q.closed;
            drop(q);
            if !closed {
                std::thread::sleep(RETRY_AFTER);
            } else {
                return;
            }
        }
    }
}

/// temp → fsync → rename (the directory is synced once per batch by the caller).
fn write_file(path: &std::path::Path, rec: &AccountRecord) -> io::Result<()> {
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

    fn on_disk(path: &std::path::Path) -> Option<u64> {
        let bytes = fs::read(path).ok()?;
        let r: AccountRecord = serde_json::from_slice(&bytes).expect("valid record");
        Some(r.usage.requests)
    }

    #[test]
    fn a_waited_save_is_on_disk_and_never_overtaken_by_an_older_coalesced_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.json");
        let w = Writer::start(dir.path().to_path_buf()).expect("writer");
        for n in 1..=50 {
            w.write(path.clone(), &rec(n), false).expect("queued");
        }
        w.write(path.clone(), &rec(51), true).expect("durable");
        assert_eq!(on_disk(&path), Some(51));
        drop(w);
        assert_eq!(on_disk(&path), Some(51), "nothing older landed afterwards");
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn coalesced_saves_are_drained_when_the_store_goes_and_a_removal_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
        let w = Writer::start(dir.path().to_path_buf()).expect("writer");
        w.write(a.clone(), &rec(7), false).expect("queued");
        w.write(b.clone(), &rec(1), false).expect("queued");
        w.remove(b.clone()).expect("removed");
        drop(w);
        assert_eq!(on_disk(&a), Some(7), "drained on drop");
        assert!(!b.exists(), "the removal came last and won");
    }
}
