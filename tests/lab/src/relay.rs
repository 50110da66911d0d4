//! A TCP relay the harness can cut: it listens on `127.0.0.1:0` and forwards each connection
//! to one target (one relay per daemon in front of PostgreSQL, so one node can be partitioned
//! from the database while the others are not). [`Relay::cut`] is a partition, not a reset:
//! nothing is closed, bytes simply stop moving in both directions and new connections are
//! accepted but not carried on, as when packets are dropped; the kernel buffers fill and the
//! peers' writes block. [`Relay::heal`] lets everything held back through, in order, as TCP's
//! retransmission would after a short partition. [`Relay::cut_after`] cuts the moment a chosen
//! message has gone through to the target: the statement lands, its answer is lost.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running relay; dropping it stops accepting (open connections end with their peers).
pub struct Relay {
    addr: SocketAddr,
    cut: Arc<watch::Sender<bool>>,
    armed: Armed,
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

/// The bytes that, once carried to the target, cut the relay ([`Relay::cut_after`]).
type Armed = Arc<Mutex<Option<Vec<u8>>>>;

impl Relay {
    /// Starts a relay to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Relay> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (cut, gate) = watch::channel(false);
        let cut = Arc::new(cut);
        let armed = Armed::default();
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        let trigger = (armed.clone(), cut.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                let gate = gate.clone();
                tokio::spawn(carry(client, target, gate, trigger.clone()));
            }
        });
        Ok(Relay {
            addr,
            cut,
            armed,
            accepted,
            task,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Partitions: no byte moves either way and no new connection reaches the target.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Cuts as soon as a chunk a client sends that contains `message` has been carried to the
    /// target (a statement that lands while its answer is held back).
    pub fn cut_after(&self, message: &[u8]) {
        *self.armed.lock().unwrap_or_else(|e| e.into_inner()) = Some(message.to_vec());
    }

    /// Ends the partition: what was held back goes through.
    pub fn heal(&self) {
        self.cut.send_replace(false);
    }

    /// Whether it is cut now.
    pub fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits while the relay is cut.
async fn open(gate: &mut watch::Receiver<bool>) -> bool {
    gate.wait_for(|cut| !cut).await.is_ok()
}

/// One connection: connect to the target once the gate is open, then copy both ways.
async fn carry(
    client: TcpStream,
    target: SocketAddr,
    mut gate: watch::Receiver<bool>,
    trigger: (Armed, Arc<watch::Sender<bool>>),
) {
    if !open(&mut gate).await {
        return;
    }
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = tokio::spawn(pump(cr, sw, gate.clone(), Some(trigger)));
    pump(sr, cw, gate, None).await;
    let _ = up.await;
}

/// True, and disarmed, if `chunk` holds the armed message.
fn disarm(armed: &Mutex<Option<Vec<u8>>>, chunk: &[u8]) -> bool {
    let mut armed = armed.lock().unwrap_or_else(|e| e.into_inner());
    let hit = armed
        .as_deref()
        .is_some_and(|m| chunk.windows(m.len()).any(|w| w == m));
    if hit {
        *armed = None;
    }
    hit
}

/// Copies one direction; a chunk read while the relay is cut is held until it heals. On the
/// way to the target (`trigger`), a chunk holding the armed message cuts once it went through.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut gate: watch::Receiver<bool>,
    trigger: Option<(Armed, Arc<watch::Sender<bool>>)>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if !open(&mut gate).await {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // The armed message cuts before it is carried, so no answer to it can slip through.
        if let Some((armed, cut)) = &trigger
            && disarm(armed, &buf[..n])
        {
            cut.send_replace(true);
            if to.write_all(&buf[..n]).await.is_err() {
                return;
            }
            continue;
        }
        if !open(&mut gate).await || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}
