//! Loopback instruments of the client tests: [`WireLog`], a TCP relay between the daemon and
//! the simulator that keeps every byte of every connection (so a test knows exactly what the
//! simulator answered and what the daemon sent it), and [`ProxyTrap`], a listener that every
//! proxy variable of a client points at and that records any attempt to reach the outside.

use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Bytes of one relayed connection.
#[derive(Default)]
struct Conn {
    /// Daemon → simulator (requests).
    up: Vec<u8>,
    /// Simulator → daemon (answers).
    down: Vec<u8>,
}

/// A recording TCP relay in front of the simulator.
#[derive(Clone)]
pub struct WireLog {
    /// Where the daemon connects instead of the simulator.
    pub addr: SocketAddr,
    conns: Arc<Mutex<Vec<Arc<Mutex<Conn>>>>>,
}

/// What a finished upstream response produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// An assistant message with this text.
    Message(String),
    /// A function call: tool name, call id and the arguments' JSON text.
    Call {
        name: String,
        call_id: String,
        arguments: String,
    },
}

impl WireLog {
    /// Simulator + daemon with `n` accounts, the daemon reaching the simulator through a
    /// fresh [`WireLog`], which records every byte it sends upstream.
    pub async fn behind(n: usize) -> (crate::support::TestEnv, WireLog) {
        let mut wire = None;
        let env = crate::support::start_env_with(
            codex_rotor::sim::SimOptions::default(),
            n,
            |cfg, sim| {
                let w = WireLog::start(sim.addr);
                cfg.upstream.base_url = format!("http://{}/backend-api", w.addr);
                wire = Some(w);
            },
        )
        .await;
        (env, wire.expect("tweak ran"))
    }

    /// Starts relaying to `target` (inside a tokio runtime).
    pub fn start(target: SocketAddr) -> WireLog {
        let std_listener =
            std::net::TcpListener::bind(crate::support::loopback()).expect("wire log binds");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("wire log addr");
        let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
        let log = WireLog {
            addr,
            conns: Arc::default(),
        };
        let conns = log.conns.clone();
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let Ok(up) = tokio::net::TcpStream::connect(target).await else {
                    continue;
                };
                let conn = Arc::new(Mutex::new(Conn::default()));
                conns.lock().expect("wire log lock").push(conn.clone());
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                tokio::spawn(pump(dr, uw, conn.clone(), true));
                tokio::spawn(pump(ur, dw, conn, false));
            }
        });
        log
    }

    /// Every byte the daemon sent the simulator, connection after connection, as text.
    pub fn requests_text(&self) -> String {
        self.conns
            .lock()
            .expect("wire log lock")
            .iter()
            .map(|c| String::from_utf8_lossy(&c.lock().expect("conn lock").up).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The `response` object of every `response.completed` event the simulator sent.
    pub fn completed(&self) -> Vec<Value> {
        let conns = self.conns.lock().expect("wire log lock");
        let mut out = Vec::new();
        for c in conns.iter() {
            let down = String::from_utf8_lossy(&c.lock().expect("conn lock").down).into_owned();
            for line in down.lines() {
                let Some(data) = line.trim_end_matches('\r').strip_prefix("data: ") else {
                    continue;
                };
                let Ok(ev) = serde_json::from_str::<Value>(data) else {
                    continue;
                };
                if ev["type"] == "response.completed" {
                    out.push(ev["response"].clone());
                }
            }
        }
        out
    }

    /// The output items of every completed response: its `response.output_item.done` items
    /// (the real backend, and so the simulator, sends `response.completed` with `output: []`),
    /// or the `output` it lists.
    fn completed_items(&self) -> Vec<Value> {
        let conns = self.conns.lock().expect("wire log lock");
        let mut out = Vec::new();
        for c in conns.iter() {
            let down = String::from_utf8_lossy(&c.lock().expect("conn lock").down).into_owned();
            let mut items = Vec::new();
            for line in down.lines() {
                let Some(data) = line.trim_end_matches('\r').strip_prefix("data: ") else {
                    continue;
                };
                let Ok(ev) = serde_json::from_str::<Value>(data) else {
                    continue;
                };
                match ev["type"].as_str() {
                    Some("response.output_item.done") => items.push(ev["item"].clone()),
                    Some("response.completed") => {
                        let listed = ev["response"]["output"].as_array().cloned();
                        let seen = std::mem::take(&mut items);
                        out.extend(listed.filter(|l| !l.is_empty()).unwrap_or(seen));
                    }
                    Some("response.created") => items.clear(),
                    _ => {}
                }
            }
        }
        out
    }

    /// Every output item of every completed response, as messages and function calls.
    pub fn outputs(&self) -> Vec<Output> {
        self.completed_items()
            .into_iter()
            .filter_map(|item| match item["type"].as_str() {
                Some("message") => Some(Output::Message(
                    item["content"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p["text"].as_str())
                        .collect(),
                )),
                Some("function_call") => Some(Output::Call {
                    name: item["name"].as_str().unwrap_or_default().to_owned(),
                    call_id: item["call_id"].as_str().unwrap_or_default().to_owned(),
                    arguments: item["arguments"].as_str().unwrap_or_default().to_owned(),
                }),
                _ => None,
            })
            .collect()
    }

    /// The texts of every assistant message the simulator completed.
    pub fn messages(&self) -> Vec<String> {
        self.outputs()
            .into_iter()
            .filter_map(|o| match o {
                Output::Message(t) => Some(t),
                Output::Call { .. } => None,
            })
            .collect()
    }
}

/// Copies one direction of a relayed connection, keeping the bytes.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, conn: Arc<Mutex<Conn>>, up: bool) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut c = conn.lock().expect("conn lock");
            let side = if up { &mut c.up } else { &mut c.down };
            side.extend_from_slice(&buf[..n]);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// A listener standing in for an HTTP proxy: records the first line of every connection.
pub struct ProxyTrap {
    /// `host:port` the proxy variables name.
    pub addr: SocketAddr,
    hits: Arc<Mutex<Vec<String>>>,
}

impl ProxyTrap {
    /// Starts listening on 127.0.0.1:0.
    pub async fn start() -> ProxyTrap {
        let listener = tokio::net::TcpListener::bind(crate::support::loopback())
            .await
            .expect("trap binds");
        let addr = listener.local_addr().expect("trap addr");
        let hits: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut s, peer)) = listener.accept().await {
                // Counted at once; what was asked is added when it arrives.
                seen.lock()
                    .expect("trap lock")
                    .push(format!("connection from {peer}"));
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 512];
                    let n =
                        tokio::time::timeout(std::time::Duration::from_secs(2), s.read(&mut buf))
                            .await
                            .ok()
                            .and_then(Result::ok)
                            .unwrap_or(0);
                    let first = String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .next()
                        .unwrap_or("<no request line>")
                        .to_owned();
                    seen.lock()
                        .expect("trap lock")
                        .push(format!("{peer} asked: {first}"));
                });
            }
        });
        ProxyTrap { addr, hits }
    }

    /// What reached the trap so far.
    pub fn hits(&self) -> Vec<String> {
        self.hits.lock().expect("trap lock").clone()
    }
}
