//! Closing client connections nobody uses (`server.keep_alive_timeout`). Without it, 2 000 idle
//! keep-alive connections stayed open for as long as their clients liked.
//!
//! A connection on which nothing was read or written for the timeout is asked to shut down
//! gracefully: hyper closes an idle HTTP/1 connection at once, lets a request still in flight
//! finish first (so a long silent wait for upstream is never cut, the connection just is not
//! reused), and sends HTTP/2 a GOAWAY. Activity is counted by the connection's own I/O — one
//! relaxed atomic add per read or write, nothing per request — and one timer per connection
//! compares the count every half timeout, so an idle connection is closed between one and one
//! and a half timeouts after its last byte.
//!
//! A half-sent request head (slowloris) keeps hyper from closing even when asked; hyper's own
//! `header_read_timeout` (`server.header_read_timeout`) bounds that case.

use hyper::rt::{Read, ReadBufCursor, Write};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// How much a connection's I/O did so far (a count of completed reads and writes).
#[derive(Debug, Default)]
pub struct Activity(AtomicU64);

impl Activity {
    fn bump(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A connection's I/O that counts what moves on it into an [`Activity`].
pub struct Counted<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Counted<T> {
    /// Wraps `inner`, counting into `activity`.
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

/// Counts a completed operation and passes its result on.
fn counted<R>(activity: &Activity, poll: Poll<R>) -> Poll<R> {
    if poll.is_ready() {
        activity.bump();
    }
    poll
}

impl<T: Read + Unpin> Read for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        counted(&this.activity, Pin::new(&mut this.inner).poll_read(cx, buf))
    }
}

impl<T: Write + Unpin> Write for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        counted(
            &this.activity,
            Pin::new(&mut this.inner).poll_write(cx, buf),
        )
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        counted(
            &this.activity,
            Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
        )
    }
}

/// Resolves once `activity` stood still for at least `timeout` (at most one and a half).
pub async fn idle_for(activity: &Activity, timeout: Duration) {
    let tick = timeout / 2;
    let mut last = activity.count();
    let mut still_ticks = 0;
    while still_ticks < 2 {
        tokio::time::sleep(tick).await;
        let now = activity.count();
        if now == last {
            still_ticks += 1;
        } else {
            (last, still_ticks) = (now, 0);
        }
    }
}
