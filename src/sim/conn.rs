//! One accepted TCP connection, wrapped so a handler can break it on purpose: cut the raw
//! byte stream after a given number of further bytes (a chunked body truncated mid-chunk) or
//! reset it (RST). Handlers reach the switch through a [`ConnControl`] placed in the request
//! extensions; the socket itself stays owned by hyper through [`CutIo`].

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// No cut armed.
const UNARMED: i64 = -1;
/// Reset the connection at the next read or write.
const RESET: i64 = -2;

/// The switch a handler flips to break its own connection.
#[derive(Debug)]
pub(crate) struct ConnControl {
    /// `UNARMED`, `RESET`, or how many more bytes may be written before the cut.
    allowance: AtomicI64,
}

impl ConnControl {
    fn new() -> Arc<Self> {
        Arc::new(ConnControl {
            allowance: AtomicI64::new(UNARMED),
        })
    }

    /// Lets `bytes` more bytes through, then closes the connection.
    pub(crate) fn cut_after(&self, bytes: usize) {
        let n = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.allowance.store(n, Ordering::SeqCst);
    }

    /// Resets (RST) the connection at its next read or write.
    pub(crate) fn reset(&self) {
        self.allowance.store(RESET, Ordering::SeqCst);
    }
}

/// A TCP stream that obeys its [`ConnControl`].
pub(crate) struct CutIo {
    /// The socket; `None` once it was cut or reset.
    inner: Option<TcpStream>,
    /// Shared with the handlers of requests on this connection.
    control: Arc<ConnControl>,
}

impl CutIo {
    /// Wraps an accepted stream; the returned control goes into each request's extensions.
    pub(crate) fn new(stream: TcpStream) -> (Self, Arc<ConnControl>) {
        let control = ConnControl::new();
        (
            CutIo {
                inner: Some(stream),
                control: control.clone(),
            },
            control,
        )
    }

    /// Applies a pending reset: RST instead of FIN, by closing with a zero linger.
    fn apply_reset(&mut self) -> bool {
        if self.control.allowance.load(Ordering::SeqCst) != RESET {
            return false;
        }
        if let Some(stream) = self.inner.take() {
            let _ = socket2::SockRef::from(&stream).set_linger(Some(std::time::Duration::ZERO));
            drop(stream);
        }
        true
    }

    fn gone() -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionReset, "simulated connection break")
    }
}

impl AsyncRead for CutIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.apply_reset() {
            return Poll::Ready(Err(Self::gone()));
        }
        match this.inner.as_mut() {
            Some(s) => Pin::new(s).poll_read(cx, buf),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for CutIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.apply_reset() {
            return Poll::Ready(Err(Self::gone()));
        }
        let allowance = this.control.allowance.load(Ordering::SeqCst);
        let Some(stream) = this.inner.as_mut() else {
            return Poll::Ready(Err(Self::gone()));
        };
        if allowance == UNARMED {
            return Pin::new(stream).poll_write(cx, buf);
        }
        if allowance <= 0 {
            this.inner = None; // FIN in the middle of whatever was being framed
            return Poll::Ready(Err(Self::gone()));
        }
        let limit = buf
            .len()
            .min(usize::try_from(allowance).unwrap_or(usize::MAX));
        match Pin::new(stream).poll_write(cx, &buf[..limit]) {
            Poll::Ready(Ok(n)) => {
                this.control.allowance.fetch_sub(n as i64, Ordering::SeqCst);
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let armed = this.control.allowance.load(Ordering::SeqCst) != UNARMED;
        match this.inner.as_mut() {
            Some(s) if !armed => Pin::new(s).poll_write_vectored(cx, bufs),
            _ => {
                let first = bufs
                    .iter()
                    .find(|b| !b.is_empty())
                    .map_or(&[][..], |b| &b[..]);
                Pin::new(this).poll_write(cx, first)
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().inner.as_mut() {
            Some(s) => Pin::new(s).poll_flush(cx),
            None => Poll::Ready(Err(Self::gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().inner.as_mut() {
            Some(s) => Pin::new(s).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}
