//! Closed pipes through the real binary (issue 15 item 6): a daemon whose log pipe lost its
//! reader (`serve 2>&1 | head -1`, a journald restart) keeps answering and still stops on
//! SIGTERM, and the CLI commands whose stdout lost its reader (`accounts list | head -1`) exit
//! quietly instead of panicking. Each pipe's read end is closed before the child starts, so the
//! child's very first write already meets EPIPE: no race with how fast it prints.

use super::{eventually, free_port, kill, models, write_config};
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "sk-rotor-pipes-test-key-cccccccc";

/// A pipe for a child's stdout or stderr: the write end (blocking, as a shell's pipe is) and
/// the read end. Needs a tokio runtime.
fn pipe() -> (Stdio, tokio::net::unix::pipe::Receiver) {
    let (writer, reader) = tokio::net::unix::pipe::pipe().expect("pipe");
    let fd = writer.into_blocking_fd().expect("blocking write end");
    (Stdio::from(fd), reader)
}

/// A pipe whose read end is already closed: writing to the returned end fails with EPIPE.
fn reader_gone() -> Stdio {
    pipe().0
}

/// Kills the child if the test fails before it exited (no daemon outlives its test).
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Waits (bounded) for the child to exit on its own.
async fn exit_of(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "{what} did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn serve_with_a_closed_log_pipe_keeps_answering_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("config.toml");
    let port = free_port();
    write_config(&cfg, port, &dir.path().join("data"), "ROTOR_PIPE_KEY", "m");
    // Debug level: every request writes log lines into the dead pipe.
    let child = Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
        .args(["serve", "--log-level", "debug", "--config"])
        .arg(&cfg)
        .env("ROTOR_PIPE_KEY", KEY)
        .stdout(Stdio::null())
        .stderr(reader_gone())
        .spawn()
        .expect("spawn codex-rotor serve");
    let mut child = Reap(child);
    eventually("the daemon answers", async || {
        matches!(models(port, KEY).await, Some((200, _)))
    })
    .await;
    for i in 0..20 {
        assert_eq!(
            models(port, KEY).await.map(|r| r.0),
            Some(200),
            "request {i} after the log pipe closed"
        );
    }
    kill(&child.0, "TERM");
    let status = exit_of(&mut child.0, "codex-rotor serve after SIGTERM").await;
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
}

#[tokio::test]
async fn serve_with_a_log_pipe_nobody_reads_keeps_answering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("config.toml");
    let port = free_port();
    write_config(&cfg, port, &dir.path().join("data"), "ROTOR_PIPE_KEY", "m");
    // The reader stays open and never reads: once the pipe's buffer (64 KiB) is full, every
    // write to it blocks.
    let (writer, _reader) = pipe();
    let child = Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
        .args(["serve", "--log-level", "trace", "--config"])
        .arg(&cfg)
        .env("ROTOR_PIPE_KEY", KEY)
        .stdout(Stdio::null())
        .stderr(writer)
        .spawn()
        .expect("spawn codex-rotor serve");
    let mut child = Reap(child);
    eventually("the daemon answers", async || {
        matches!(models(port, KEY).await, Some((200, _)))
    })
    .await;
    // Far more log than the pipe holds.
    for i in 0..400 {
        assert_eq!(
            models(port, KEY).await.map(|r| r.0),
            Some(200),
            "request {i} with the log pipe full"
        );
    }
    kill(&child.0, "TERM");
    let status = exit_of(&mut child.0, "codex-rotor serve after SIGTERM").await;
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
}

/// Runs `codex-rotor args…` with stdout a pipe nobody reads; returns its status and stderr.
async fn into_closed_stdout(args: &[&str], data: &std::path::Path) -> (ExitStatus, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
        .args(args)
        .env("CODEX_ROTOR_DATA_DIR", data)
        .current_dir(data)
        .stdin(Stdio::null())
        .stdout(reader_gone())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn codex-rotor");
    let mut child = Reap(child);
    let mut stderr = child.0.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let status = exit_of(&mut child.0, &format!("codex-rotor {args:?}")).await;
    (status, reader.join().expect("stderr reader"))
}

#[tokio::test]
async fn cli_commands_into_a_closed_stdout_exit_quietly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let data_arg = data.to_str().expect("utf-8 path");
    let cfg = data.join("config.toml");
    std::fs::write(&cfg, "[server]\nlisten = \"127.0.0.1:9\"\n").expect("write config");
    let cfg = cfg.to_str().expect("utf-8 path");
    for args in [
        vec!["accounts", "--data-dir", data_arg, "list"],
        vec!["accounts", "--data-dir", data_arg, "export"],
        vec!["config", "show", "--config", cfg],
        vec!["config", "check", "--config", cfg],
        vec![
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--accounts",
            "1",
            "--data-dir",
            data_arg,
        ],
    ] {
        let (status, stderr) = into_closed_stdout(&args, data).await;
        assert!(
            !stderr.contains("panicked"),
            "{args:?} panicked on a closed stdout: {stderr}"
        );
        assert_ne!(status.code(), Some(101), "{args:?}: {stderr}");
        assert!(
            status.success(),
            "{args:?} exits quietly (status 0) when its reader is gone: {status:?} {stderr}"
        );
    }
}
