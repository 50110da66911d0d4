//! What `/proc` says about a child process: its CPU time, its voluntary context switches and
//! its memory, read in one place for every benchmark and chaos run.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// User and system CPU time of process `pid` so far.
pub fn cpu(pid: u32) -> Option<(Duration, Duration)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(") ")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let per_tick = 1.0 / clock_ticks() as f64;
    let field = |i: usize| -> Option<Duration> {
        let ticks: u64 = f.get(i)?.parse().ok()?;
        Some(Duration::from_secs_f64(ticks as f64 * per_tick))
    };
    Some((field(11)?, field(12)?))
}

/// Voluntary context switches of all the threads of `pid` so far (a thread that has exited
/// no longer counts; the daemon's and the pass-through's threads live as long as they do).
pub fn parks(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .filter_map(|status| field_of(&status, "voluntary_ctxt_switches:"))
        .sum()
}

/// A memory field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`, `RssAnon`, `RssFile`), in KiB.
///
/// `VmRSS` = `RssAnon` + `RssFile` + `RssShmem`. The file part is mostly the executable's own
/// pages: clean, shared with the page cache and given back under pressure, and it grows with
/// the binary's size, not with what the daemon holds. `RssAnon` is the memory the daemon
/// allocated.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    field_of(&status, &format!("{field}:"))
}

/// The first number after `label` on its line of a `/proc/…/status` text.
fn field_of(status: &str, label: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(label))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 if that fails), asked once.
fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let rss = status_kib(me, "VmRSS").expect("VmRSS");
        let anon = status_kib(me, "RssAnon").expect("RssAnon");
        let file = status_kib(me, "RssFile").expect("RssFile");
        assert!(rss > 0 && anon > 0 && file > 0);
        assert!(anon + file <= rss, "{anon} + {file} > {rss}");
        assert_eq!(status_kib(me, "NoSuchField"), None);
        // Burn a little CPU so the count is not zero.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        let (user, _) = cpu(me).expect("stat");
        assert!(user > Duration::ZERO);
    }

    #[test]
    fn a_status_field_is_the_number_after_its_label() {
        let s = "Name:\tx\nVmRSS:\t  1234 kB\nvoluntary_ctxt_switches:\t7\n";
        assert_eq!(field_of(s, "VmRSS:"), Some(1234));
        assert_eq!(field_of(s, "voluntary_ctxt_switches:"), Some(7));
        assert_eq!(field_of(s, "VmHWM:"), None);
    }
}
