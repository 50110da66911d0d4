//! The log writer: log lines go into a bounded in-memory queue and one thread of their own
//! writes them out, so a log write can never stop a request or the signal handler.
//!
//! Why (issue 15 item 6): with its stderr pipe closed (`serve 2>&1 | head -1`, a journald
//! restart) the daemon stopped answering and ignored SIGTERM. tracing's fmt layer reported the
//! failed write with `eprintln!`, which panics on a closed stderr, so every task that logged —
//! each connection, the signal task — died mid-flight. And a stderr whose reader is merely slow
//! blocks `write(2)` on a tokio worker. Here the caller only copies its bytes into the queue
//! (never blocks, never fails); the writer thread redacts each line ([`super::redact`]) and writes
//! it. A line is dropped — and counted in [`dropped`] — when the queue is full or the write
//! fails (EPIPE, EAGAIN, anything); when writing works again the thread first says how many were
//! lost. [`flush`] lets the process write what is queued before it exits, for a bounded time.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;

/// Lines held while the writer is behind; past this, new lines are dropped. A few seconds of
/// debug logging under load, a few MiB at most.
const MAX_QUEUED: usize = 8192;

/// Lines dropped since the process started (queue full or write failed).
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Log lines dropped so far because the log output was not writable or kept up too slowly.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// The lines waiting for the writer thread.
#[derive(Default)]
struct Lines {
    /// Formatted lines, not yet redacted, oldest first.
    queued: VecDeque<Vec<u8>>,
    /// The writer thread holds a line it has not finished writing ([`flush`] waits for it).
    writing: bool,
}

/// The queue shared by every logging thread and the writer thread.
#[derive(Default)]
pub(super) struct Queue {
    lines: Mutex<Lines>,
    /// Signalled when a line is queued.
    queued: Condvar,
    /// Signalled when the writer thread finished a line and the queue is empty.
    idle: Condvar,
}

impl Queue {
    /// Locks the lines; nothing panics while holding the lock, but a poisoned lock still
    /// holds valid lines.
    fn lock(&self) -> MutexGuard<'_, Lines> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues one line, or counts it dropped when the queue is full. Never blocks on I/O.
    fn push(&self, line: &[u8]) {
        let mut lines = self.lock();
        if lines.queued.len() >= MAX_QUEUED {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        lines.queued.push_back(line.to_vec());
        drop(lines);
        self.queued.notify_one();
    }

    /// The writer thread's loop: take a line, redact it, write it to `out`; forever.
    fn run(&self, mut out: impl Write) {
        let mut reported = 0;
        loop {
            let line = {
                let mut lines = self.lock();
                lines.writing = false;
                while lines.queued.is_empty() {
                    self.idle.notify_all();
                    lines = self.queued.wait(lines).unwrap_or_else(|e| e.into_inner());
                }
                lines.writing = true;
                lines.queued.pop_front().unwrap_or_default()
            };
            let text = super::redact(&String::from_utf8_lossy(&line));
            if out.write_all(text.as_bytes()).is_err() {
                DROPPED.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let lost = dropped();
            if lost > reported {
                let note = format!(
                    "codex-rotor: {} log line(s) dropped: the log output was not writable or too slow\n",
                    lost - reported
                );
                if out.write_all(note.as_bytes()).is_ok() {
                    reported = lost;
                }
            }
        }
    }

    /// Waits until every queued line was written (or dropped), at most `limit`.
    fn flush(&self, limit: Duration) {
        let lines = self.lock();
        let _ = self
            .idle
            .wait_timeout_while(lines, limit, |l| !l.queued.is_empty() || l.writing);
    }
}

/// The process's one log queue, once [`start`] ran.
static STDERR: std::sync::OnceLock<Arc<Queue>> = std::sync::OnceLock::new();

/// Starts the writer thread on stderr (once per process) and returns the `MakeWriter` feeding
/// it.
pub(super) fn start() -> std::io::Result<QueueWriter> {
    if let Some(q) = STDERR.get() {
        return Ok(QueueWriter(q.clone()));
    }
    let queue = spawn(std::io::stderr())?;
    Ok(QueueWriter(STDERR.get_or_init(|| queue).clone()))
}

/// A queue whose writer thread writes to `out`.
pub(super) fn spawn(out: impl Write + Send + 'static) -> std::io::Result<Arc<Queue>> {
    let queue = Arc::new(Queue::default());
    let writer = queue.clone();
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || writer.run(out))?;
    Ok(queue)
}

/// Writes what the stderr queue holds before the process exits, waiting at most `limit` (a
/// stderr nobody reads must not hold the exit up).
pub fn flush(limit: Duration) {
    if let Some(q) = STDERR.get() {
        q.flush(limit);
    }
}

/// The `MakeWriter` of the queue: each event's bytes become one queued line.
#[derive(Clone)]
pub(super) struct QueueWriter(pub(super) Arc<Queue>);

impl<'a> MakeWriter<'a> for QueueWriter {
    type Writer = &'a Queue;
    fn make_writer(&'a self) -> &'a Queue {
        &self.0
    }
}

impl Write for &Queue {
    /// The fmt layer writes each event with one `write_all`: one call, one whole line.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.push(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log output that fails every write the way a closed pipe does.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    /// Whether the gate is open, and what went through it.
    type GateState = Mutex<(bool, Vec<u8>)>;

    /// A log output that blocks until the test lets it go, then keeps what it was given.
    #[derive(Clone)]
    struct Gate(Arc<(GateState, Condvar)>);

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (m, cv) = &*self.0;
            let mut g = cv
                .wait_while(m.lock().unwrap(), |(open, _)| !*open)
                .unwrap();
            g.1.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_output_drops_and_counts_lines_and_the_caller_never_sees_an_error() {
        let q = spawn(ClosedPipe).unwrap();
        let before = dropped();
        for _ in 0..5 {
            assert_eq!((&*q).write(b"line\n").unwrap(), 5);
        }
        q.flush(Duration::from_secs(5));
        assert!(dropped() >= before + 5, "{} -> {}", before, dropped());
    }

    #[test]
    fn a_stuck_output_never_blocks_the_caller_and_redacts_and_reports_once_it_moves() {
        let gate = Gate(Arc::default());
        let q = spawn(gate.clone()).unwrap();
        // The writer is stuck on the first line; the rest fill the queue, then overflow.
        for _ in 0..MAX_QUEUED + 10 {
            (&*q).write_all(b"Bearer sk-secret-value\n").unwrap();
        }
        assert!(dropped() >= 9, "overflow counted: {}", dropped());
        {
            let (m, cv) = &*gate.0;
            m.lock().unwrap().0 = true;
            cv.notify_all();
        }
        q.flush(Duration::from_secs(30));
        let text = String::from_utf8(gate.0.0.lock().unwrap().1.clone()).unwrap();
        assert!(!text.contains("sk-secret-value"), "redacted");
        assert!(text.contains("log line(s) dropped"), "the loss is reported");
        assert!(text.lines().filter(|l| *l == "Bearer ***").count() >= MAX_QUEUED);
    }
}
