//! A small Chrome DevTools Protocol client for the browser test: launches the real headless
//! Chromium (the `CHROMIUM` env var or `/usr/bin/chromium`) on a throw-away profile, connects to
//! its page target over a minimal RFC 6455 websocket written here (text frames, client-side
//! masking, fragmented replies), and offers `eval`, `wait_for` and `screenshot`.

use base64::Engine as _;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// A running Chromium with one page under our control. The process is killed on drop.
pub struct Browser {
    /// The browser process (`kill_on_drop`).
    _child: Child,
    /// Websocket to the page target.
    ws: BufReader<TcpStream>,
    /// Id of the next CDP command.
    next_id: u64,
    /// The profile directory, removed on drop.
    _profile: tempfile::TempDir,
}

/// Path of the Chromium binary to drive.
pub fn chromium_path() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

impl Browser {
    /// Starts Chromium on `about:blank` with a window of `width`×`height` and attaches to it.
    pub async fn launch(width: u32, height: u32) -> anyhow::Result<Browser> {
        let profile = tempfile::tempdir()?;
        let mut child = Command::new(chromium_path())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", chromium_path()))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
        let mut lines = BufReader::new(stderr).lines();
        let port = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
                    let port: u16 = rest.split('/').next().unwrap_or("").parse()?;
                    return Ok::<u16, anyhow::Error>(port);
                }
            }
            anyhow::bail!("chromium exited before announcing its DevTools port")
        })
        .await??;
        // Keep draining stderr so Chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let targets: Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
            .await?
            .json()
            .await?;
        let ws_url = targets
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .ok_or_else(|| anyhow::anyhow!("no page target in {targets}"))?
            .to_owned();
        let path = ws_url
            .split_once(&format!("127.0.0.1:{port}"))
            .map(|(_, p)| p.to_owned())
            .ok_or_else(|| anyhow::anyhow!("odd websocket url {ws_url}"))?;
        let ws = handshake(port, &path).await?;
        let mut b = Browser {
            _child: child,
            ws,
            next_id: 1,
            _profile: profile,
        };
        b.call("Page.enable", json!({})).await?;
        b.call("Runtime.enable", json!({})).await?;
        Ok(b)
    }

    /// Sends one CDP command and returns its `result` (events in between are skipped).
    pub async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({ "id": id, "method": method, "params": params }).to_string();
        send_text(self.ws.get_mut(), msg.as_bytes()).await?;
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(60), recv_text(&mut self.ws))
                .await
                .map_err(|_| anyhow::anyhow!("no answer to {method} within 60 s"))??;
            let v: Value = serde_json::from_slice(&frame)?;
            if v["id"] == id {
                if let Some(err) = v.get("error") {
                    anyhow::bail!("{method} failed: {err}");
                }
                return Ok(v["result"].clone());
            }
        }
    }

    /// Navigates and waits for the load event.
    pub async fn goto(&mut self, url: &str) -> anyhow::Result<()> {
        self.call("Page.navigate", json!({ "url": url })).await?;
        self.wait_for(
            "document.readyState === 'complete'",
            Duration::from_secs(20),
        )
        .await
        .map(drop)
    }

    /// Evaluates a JS expression in the page (awaiting promises) and returns its value.
    pub async fn eval(&mut self, expr: &str) -> anyhow::Result<Value> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
            )
            .await?;
        if let Some(ex) = r.get("exceptionDetails") {
            anyhow::bail!("JS exception in {expr:?}: {ex}");
        }
        Ok(r["result"]["value"].clone())
    }

    /// Evaluates `expr` every 100 ms until it is truthy; returns that value.
    pub async fn wait_for(&mut self, expr: &str, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let v = self.eval(expr).await?;
            let truthy =
                !matches!(v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return Ok(v);
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("timed out waiting for {expr}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the whole page to `path`.
    pub async fn screenshot(&mut self, path: &std::path::Path) -> anyhow::Result<()> {
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true }),
            )
            .await?;
        let data = r["data"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no screenshot data"))?;
        let png = base64::engine::general_purpose::STANDARD.decode(data)?;
        std::fs::write(path, png)?;
        Ok(())
    }
}

/// Opens the websocket: HTTP/1.1 upgrade, expects `101`.
async fn handshake(port: u16, path: &str) -> anyhow::Result<BufReader<TcpStream>> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await?;
    let mut r = BufReader::new(tcp);
    let mut status = String::new();
    r.read_line(&mut status).await?;
    anyhow::ensure!(
        status.contains(" 101 "),
        "websocket upgrade refused: {status}"
    );
    loop {
        let mut line = String::new();
        r.read_line(&mut line).await?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    Ok(r)
}

/// Sends one masked text frame (clients must mask).
async fn send_text(tcp: &mut TcpStream, payload: &[u8]) -> anyhow::Result<()> {
    let mut frame = vec![0x81u8];
    let len = payload.len();
    if len < 126 {
        frame.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        frame.push(0x80 | 127);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let mask: [u8; 4] = rand::random();
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    tcp.write_all(&frame).await?;
    Ok(())
}

/// Reads one whole message (joining continuation frames); answers pings, fails on close.
async fn recv_text(r: &mut BufReader<TcpStream>) -> anyhow::Result<Vec<u8>> {
    let mut message = Vec::new();
    loop {
        let mut head = [0u8; 2];
        r.read_exact(&mut head).await?;
        let fin = head[0] & 0x80 != 0;
        let opcode = head[0] & 0x0f;
        let mut len = u64::from(head[1] & 0x7f);
        if len == 126 {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).await?;
            len = u64::from(u16::from_be_bytes(b));
        } else if len == 127 {
            let mut b = [0u8; 8];
            r.read_exact(&mut b).await?;
            len = u64::from_be_bytes(b);
        }
        let mask = if head[1] & 0x80 != 0 {
            let mut m = [0u8; 4];
            r.read_exact(&mut m).await?;
            Some(m)
        } else {
            None
        };
        let mut payload = vec![0u8; usize::try_from(len)?];
        r.read_exact(&mut payload).await?;
        if let Some(m) = mask {
            payload
                .iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b ^= m[i % 4]);
        }
        match opcode {
            0x8 => anyhow::bail!("browser closed the DevTools connection"),
            0x9 => {
                let mut pong = vec![0x8a, 0x80 | payload.len() as u8, 0, 0, 0, 0];
                pong.extend_from_slice(&payload);
                r.get_mut().write_all(&pong).await?;
            }
            0xa => {}
            _ => {
                message.extend_from_slice(&payload);
                if fin {
                    return Ok(message);
                }
            }
        }
    }
}
