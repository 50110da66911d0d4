//! `codex-rotor demo` through the real binary (issue 15 item 11): the temporary data directory
//! it makes when given none (it holds tokens) is gone after SIGTERM and after SIGINT, and a
//! second demo on the same `--data-dir` does not pile its simulated accounts onto the first
//! one's: the simulator starts empty each run, so the demo replaces the accounts it created
//! before, and the new ones serve.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const POOL_KEY: &str = "demo-test-pool-key-0123456789";

/// A running `codex-rotor demo`, killed if the test fails before it exits (the client tests
/// follow its printed setup too).
pub(crate) struct DemoRun {
    child: Child,
    /// Everything it printed up to "Press Ctrl-C to stop.".
    pub(crate) printed: String,
}

impl Drop for DemoRun {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl DemoRun {
    /// Starts the demo with `extra` arguments and `TMPDIR=tmp`; returns once it printed its
    /// instructions.
    pub(crate) fn start(tmp: &Path, extra: &[&str]) -> DemoRun {
        let mut child = Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
            .args(["demo", "--listen", "127.0.0.1:0", "--pool-key", POOL_KEY])
            .args(extra)
            .env("TMPDIR", tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn codex-rotor demo");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut printed = String::new();
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref().map_while(Result::ok) {
                printed.push_str(&line);
                printed.push('\n');
                if line.contains("Press Ctrl-C to stop.") {
                    let _ = tx.send(printed.clone());
                }
            }
        });
        let printed = rx.recv_timeout(Duration::from_secs(60));
        let run = DemoRun {
            child,
            printed: printed.unwrap_or_default(),
        };
        assert!(!run.printed.is_empty(), "the demo printed its instructions");
        run
    }

    /// The value printed after `label` on its line (`daemon     http://…`).
    fn field(&self, label: &str) -> String {
        self.printed
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {label:?} line in:\n{}", self.printed))
            .to_owned()
    }

    /// Sends `sig` and waits (bounded) for a clean exit.
    pub(crate) fn stop(mut self, sig: &str) {
        let status = Command::new("kill")
            .args(["-s", sig, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {sig}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "demo did not exit after {sig}");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "demo exit after {sig}: {status:?}");
    }
}

/// `codex-rotor-demo-*` entries left in `tmp`.
fn leftovers(tmp: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(tmp)
        .expect("read tmp")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("codex-rotor-demo"))
        })
        .collect()
}

#[test]
fn the_demos_temporary_data_dir_is_removed_on_sigterm_and_sigint() {
    for sig in ["TERM", "INT"] {
        let tmp = tempfile::tempdir().expect("tmp");
        let demo = DemoRun::start(tmp.path(), &["--accounts", "2"]);
        let files = demo
            .printed
            .lines()
            .find_map(|l| l.split("files in ").nth(1))
            .map(|p| PathBuf::from(p.trim()))
            .unwrap_or_else(|| panic!("no data dir printed:\n{}", demo.printed));
        assert!(files.starts_with(tmp.path()), "{}", demo.printed);
        assert!(files.is_dir(), "the data dir exists while the demo runs");
        demo.stop(sig);
        assert!(
            !files.exists(),
            "{} is left after SIG{sig}",
            files.display()
        );
        assert_eq!(leftovers(tmp.path()), Vec::<PathBuf>::new(), "SIG{sig}");
    }
}

/// Account files in a data dir (`accounts/<id>.json`).
fn account_files(data: &Path) -> usize {
    std::fs::read_dir(data.join("accounts"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0)
}

/// `POST /v1/responses` through the demo's daemon: the status.
fn one_request(base: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{base}/v1/responses"))
            .bearer_auth(POOL_KEY)
            .json(&crate::support::responses_body(false))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    })
}

#[test]
fn a_second_demo_on_the_same_data_dir_replaces_its_accounts_instead_of_adding_them() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let data_arg = data.to_str().expect("utf-8 path");
    for run in 1..=2 {
        let demo = DemoRun::start(tmp.path(), &["--data-dir", data_arg]);
        let base = demo.field("daemon");
        assert_eq!(one_request(&base), 200, "run {run} serves");
        assert_eq!(account_files(&data), 8, "run {run}: {}", demo.printed);
        demo.stop("TERM");
        assert_eq!(account_files(&data), 8, "after run {run}");
    }
    assert!(data.is_dir(), "a data dir the operator named is kept");
}

#[test]
fn the_demo_refuses_a_data_dir_holding_accounts_it_did_not_create() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let data_arg = data.to_str().expect("utf-8 path");
    let bin = env!("CARGO_BIN_EXE_codex-rotor");
    let add = Command::new(bin)
        .args(["accounts", "--data-dir", data_arg, "add", "--refresh-token"])
        .arg("rt_a-real-account-0123456789")
        .output()
        .expect("accounts add");
    assert!(add.status.success(), "{add:?}");
    let before: Vec<_> = std::fs::read_dir(data.join("accounts"))
        .expect("accounts dir")
        .flatten()
        .map(|e| std::fs::read(e.path()).expect("account file"))
        .collect();
    let out = Command::new(bin)
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir", data_arg])
        .env("TMPDIR", tmp.path())
        .output()
        .expect("demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("1 account(s) the demo did not create") && stderr.contains("--data-dir"),
        "{stderr}"
    );
    let after: Vec<_> = std::fs::read_dir(data.join("accounts"))
        .expect("accounts dir")
        .flatten()
        .map(|e| std::fs::read(e.path()).expect("account file"))
        .collect();
    assert_eq!(before, after, "the real account is left exactly as it was");
}

/// A demo holds its data directory's lock as `serve` does: a second demo on the same directory
/// while the first runs is refused (it would replace the first one's accounts under its
/// feet), and the offline `accounts` CLI is pointed at the running demo's admin API.
#[test]
fn a_running_demo_locks_its_data_dir_against_a_second_demo_and_the_offline_cli() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let data_arg = data.to_str().expect("utf-8 path");
    let bin = env!("CARGO_BIN_EXE_codex-rotor");
    let first = DemoRun::start(tmp.path(), &["--data-dir", data_arg]);
    let mut second = Command::new(bin)
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir", data_arg])
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("second demo");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = second.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            panic!("a second demo started on a data dir a running demo holds");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("codex-rotor demo (pid"), "{stderr}");
    let list = Command::new(bin)
        .args(["accounts", "--data-dir", data_arg, "list"])
        .output()
        .expect("accounts list");
    let stderr = String::from_utf8_lossy(&list.stderr);
    assert!(!list.status.success(), "{stderr}");
    assert!(stderr.contains("--admin-url http://127.0.0.1:"), "{stderr}");
    assert_eq!(
        one_request(&first.field("daemon")),
        200,
        "the first demo still serves"
    );
    assert_eq!(account_files(&data), 8);
    first.stop("TERM");
}
