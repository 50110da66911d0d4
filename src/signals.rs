//! Process signals as channels the server can await: SIGTERM/SIGINT → shutdown (a `watch` that
//! flips to `true` once and stays there), SIGHUP → reload (a `broadcast` tick per signal). The
//! server selects on these; nothing here stops or reloads anything itself. A second
//! SIGTERM/SIGINT while draining is only logged: the drain keeps its bound.

use tokio::sync::{broadcast, watch};

/// Why the daemon is stopping / what asked for a reload; cloned to every listener.
#[derive(Debug, Clone)]
pub struct Signals {
    shutdown: watch::Sender<bool>,
    reload: broadcast::Sender<()>,
}

impl Default for Signals {
    fn default() -> Self {
        Self::new()
    }
}

impl Signals {
    /// Channels with no OS handlers: for in-process servers (tests, the demo) that trigger
    /// shutdown and reload themselves.
    pub fn new() -> Signals {
        Signals {
            shutdown: watch::channel(false).0,
            reload: broadcast::channel(16).0,
        }
    }

    /// Channels fed by SIGTERM, SIGINT and SIGHUP. Must run inside a tokio runtime. Installing
    /// the handlers replaces the default actions (terminate) for the whole process.
    pub fn install() -> std::io::Result<Signals> {
        let signals = Signals::new();
        os::spawn(signals.clone())?;
        Ok(signals)
    }

    /// A receiver that sees `true` once shutdown was requested.
    pub fn shutdown_rx(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// A receiver that gets one `()` per reload request (subscribe before awaiting).
    pub fn reload_rx(&self) -> broadcast::Receiver<()> {
        self.reload.subscribe()
    }

    /// Whether shutdown was requested.
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Completes when shutdown is requested (at once if it already was).
    pub async fn shutdown_requested(&self) {
        let mut rx = self.shutdown_rx();
        // An error means every sender is gone, which cannot happen while `self` lives.
        let _ = rx.wait_for(|v| *v).await;
    }

    /// Requests shutdown (what SIGTERM does); a second call changes nothing.
    pub fn trigger_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Requests a reload (what SIGHUP does).
    pub fn trigger_reload(&self) {
        // No receiver = nobody to reload; not an error.
        let _ = self.reload.send(());
    }
}

#[cfg(unix)]
mod os {
    use super::Signals;
    use tokio::signal::unix::{SignalKind, signal};

    pub(super) fn spawn(signals: Signals) -> std::io::Result<()> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(()) = term.recv() => stop(&signals, "SIGTERM"),
                    Some(()) = int.recv() => stop(&signals, "SIGINT"),
                    Some(()) = hup.recv() => {
                        tracing::info!(signal = "SIGHUP", "reload requested");
                        signals.trigger_reload();
                    }
                    else => break,
                }
            }
        });
        Ok(())
    }

    fn stop(signals: &Signals, name: &str) {
        if signals.is_shutting_down() {
            tracing::warn!(signal = name, "second shutdown signal: still draining");
        } else {
            tracing::info!(signal = name, "shutdown requested: draining");
        }
        signals.trigger_shutdown();
    }
}

#[cfg(not(unix))]
mod os {
    use super::Signals;

    pub(super) fn spawn(signals: Signals) -> std::io::Result<()> {
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                signals.trigger_shutdown();
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn triggers_reach_every_listener() {
        let s = Signals::new();
        let mut reload = s.reload_rx();
        let mut shutdown = s.shutdown_rx();
        assert!(!s.is_shutting_down());
        s.trigger_reload();
        tokio::time::timeout(WAIT, reload.recv())
            .await
            .unwrap()
            .unwrap();
        s.trigger_shutdown();
        tokio::time::timeout(WAIT, shutdown.wait_for(|v| *v))
            .await
            .unwrap()
            .unwrap();
        // Late listeners see the shutdown at once.
        tokio::time::timeout(WAIT, s.shutdown_requested())
            .await
            .unwrap();
    }

    /// Real signals to this test process: SIGHUP → reload, SIGTERM → shutdown, and the process
    /// survives both (the handlers replaced the default "terminate").
    #[cfg(unix)]
    #[tokio::test]
    async fn os_signals_become_reload_and_shutdown() {
        let s = Signals::install().unwrap();
        let mut reload = s.reload_rx();
        let pid = std::process::id().to_string();
        let kill = |sig: &str| {
            let status = std::process::Command::new("kill")
                .args(["-s", sig, &pid])
                .status();
            assert!(status.unwrap().success(), "kill -s {sig}");
        };
        kill("HUP");
        tokio::time::timeout(WAIT, reload.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(!s.is_shutting_down(), "SIGHUP does not stop");
        kill("TERM");
        tokio::time::timeout(WAIT, s.shutdown_requested())
            .await
            .unwrap();
        assert!(s.is_shutting_down());
    }
}
