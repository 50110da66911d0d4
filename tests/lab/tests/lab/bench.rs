//! `rotor-lab bench proxy` end to end, small: the real binary starts the simulator, the
//! daemon and the bare pass-through as child processes, drives the same load through each and
//! prints its tables. Figures are not asserted (speed is measured by running the benchmark, not
//! in tests); that every path served every request in every round is.

use std::process::Command;

#[test]
fn bench_proxy_measures_direct_bare_and_proxied_and_every_request_succeeds() {
    let out = Command::new(env!("CARGO_BIN_EXE_rotor-lab"))
        .args([
            "bench",
            "proxy",
            "--accounts",
            "5",
            "--duration",
            "300ms",
            "--concurrency",
            "2",
            "--repeat",
            "2",
        ])
        .output()
        .expect("bench runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed:\n{text}\n{err}");
    assert!(text.contains("median of 2 rounds"), "{text}");
    // The throughput table's row for c=2: direct, bare and proxied req/s, then three ratios,
    // each the median round's with its range over the two rounds.
    let row = text
        .lines()
        .find(|l| l.starts_with("| 2 ") && l.ends_with("%) |"))
        .unwrap_or_else(|| panic!("no throughput row:\n{text}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    for (i, what) in [(2, "direct"), (3, "bare"), (4, "proxied")] {
        let rps: f64 = cells[i].parse().unwrap_or(0.0);
        assert!(rps > 0.0, "{what} served nothing:\n{text}");
    }
    for cell in &cells[5..8] {
        // "M% (L–H%)" with L ≤ M ≤ H.
        let nums: Vec<f64> = cell
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().expect("a number"))
            .collect();
        assert_eq!(nums.len(), 3, "ratio cell {cell:?}:\n{text}");
        assert!(
            nums[1] <= nums[0] && nums[0] <= nums[2],
            "ratio cell {cell:?}:\n{text}"
        );
    }
    assert!(
        !text.contains("errors,"),
        "a request failed or was cut short:\n{text}"
    );
    assert!(
        text.contains(
            "| c  | bare user | bare kernel | proxy user | proxy kernel | bare parks | proxy parks |"
        ),
        "the CPU is split into user space and kernel, with the threads' parks:\n{text}"
    );
    // Both processes' threads park and are woken while they serve, so a count of zero
    // means the parks were not read.
    let split = text
        .lines()
        .filter(|l| l.starts_with("| 2 ") && l.contains("ms"))
        .nth(1)
        .unwrap_or_else(|| panic!("no CPU split row:\n{text}"));
    let split: Vec<&str> = split.split('|').map(str::trim).collect();
    for (cell, what) in [(split[6], "bare"), (split[7], "daemon")] {
        let parks: f64 = cell.parse().unwrap_or(0.0);
        assert!(parks > 0.0, "{what} parks per request {cell:?}:\n{text}");
    }
    assert!(
        text.contains("bare pass-through peak RSS"),
        "the floor's memory is reported:\n{text}"
    );
}
