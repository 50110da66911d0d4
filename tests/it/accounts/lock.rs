//! One owner per data directory (issue 15 item 10): a serving daemon holds an exclusive lock on
//! its data dir, so the offline `accounts --data-dir` command (whose writes the daemon would
//! never see) and a second `serve` refuse it with a message naming the daemon; the lock goes
//! with the process, even on SIGKILL. An offline import killed midway lands all or nothing.

use super::bin::{Serve, config, free_port, offline, ok, records};
use std::path::Path;

/// Account files in `data/accounts`, by name.
fn files(data: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data.join("accounts"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_serving_daemon_locks_its_data_dir_against_the_offline_cli_and_a_second_serve() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let port = free_port();
    let daemon = Serve::start(&config(tmp.path(), &data, port, None, ""), port);
    let pid = daemon.child.id();
    // Once serving, the lock file names the daemon and its address.
    let named = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::read_to_string(data.join(".lock")).is_ok_and(|t| t.contains("listen="))
    });
    assert!(named, "the lock names the daemon: {}", daemon.log_text());

    let out = offline(&data, &["add", "--refresh-token", "rt_offline_write"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "the offline write was refused: {stderr}"
    );
    assert!(
        stderr.contains("--admin-url"),
        "suggests the admin API: {stderr}"
    );
    assert!(
        stderr.contains(&format!("pid {pid}")),
        "names the daemon: {stderr}"
    );
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")),
        "and where it listens: {stderr}"
    );
    assert!(
        files(&data).iter().all(|f| !f.ends_with(".json")),
        "nothing written behind the daemon's back: {:?}",
        files(&data)
    );

    let port2 = free_port();
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_codex-rotor"))
        .arg("serve")
        .arg("--config")
        .arg(config(tmp.path(), &data, port2, None, ""))
        .output()
        .expect("second serve runs");
    let stderr = String::from_utf8_lossy(&second.stderr).into_owned();
    assert!(
        !second.status.success(),
        "a second serve refuses the dir: {stderr}"
    );
    assert!(stderr.contains(&format!("pid {pid}")), "{stderr}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port2)).is_err(),
        "the second serve never listened"
    );

    // SIGKILL: the kernel drops the lock with the process; the dir is free again.
    daemon.kill();
    ok(&offline(
        &data,
        &["add", "--refresh-token", "rt_after_the_daemon"],
        &[],
    ));
    assert_eq!(records(&data).len(), 1);
}

#[test]
fn an_offline_import_killed_midway_lands_all_or_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let file = tmp.path().join("three.txt");
    std::fs::write(
        &file,
        "rt_first_of_three\nrt_second_of_three\nrt_third_of_three\n",
    )
    .expect("write");
    let out = offline(
        &data,
        &["import", file.to_str().expect("utf8")],
        &[(rotor_actors::fault::ENV, rotor_actors::fault::IMPORT_MIDWAY)],
    );
    assert!(
        !out.status.success() && out.status.code().is_none(),
        "aborted at the fault point: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let loaded = records(&data);
    assert_eq!(
        loaded.len(),
        3,
        "the interrupted import is completed, never left at one of three: {:?}",
        files(&data)
    );
    let mut rts: Vec<_> = loaded
        .iter()
        .filter_map(|r| r.tokens.refresh_token.clone())
        .collect();
    rts.sort();
    assert_eq!(
        rts,
        [
            "rt_first_of_three",
            "rt_second_of_three",
            "rt_third_of_three"
        ]
    );
    assert!(
        files(&data).iter().all(|f| f.ends_with(".json")),
        "no staging file is left: {:?}",
        files(&data)
    );
    // Importing the file again now changes nothing.
    let again = ok(&offline(
        &data,
        &["import", file.to_str().expect("utf8")],
        &[],
    ));
    assert_eq!(records(&data).len(), 3, "{again}");
}
