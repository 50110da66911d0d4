//! Crash fault points for the durability tests: a test sets `CODEX_ROTOR_CRASH_AT=<name>` and the
//! daemon aborts (like a SIGKILL: no destructors, no flush) exactly at that step of a token
//! rotation, so the test can check that the account survives a restart. A chaos run sets
//! `CODEX_ROTOR_PANIC_ACCOUNT=<account id>` and that account's actor panics once on its tick,
//! so the run can check that the supervisor restarts it from its durable record.
//!
//! Both only with the `fault-injection` cargo feature: a daemon built without it (a plain
//! `cargo build --release`) ignores the variables, so no environment can make it abort. The
//! tests and the lab turn the feature on (docs/lab.md "Crash and fault points").

use std::sync::atomic::{AtomicBool, Ordering};

/// Environment variable naming the fault point at which to abort.
pub const ENV: &str = "CODEX_ROTOR_CRASH_AT";

/// After the refresh intent is durable, before the token endpoint is called.
pub const REFRESH_AFTER_INTENT: &str = "refresh.after_intent";
/// After the token endpoint answered, before the new tokens are durable.
pub const REFRESH_AFTER_RESPONSE: &str = "refresh.after_response";
/// After the new tokens are durable, before the intent is cleared.
pub const REFRESH_AFTER_PERSIST: &str = "refresh.after_persist";
/// Midway through an offline import (`accounts --data-dir … import`): the batch is committed
/// and its first record is in place, the others are not yet (the next open completes it).
pub const IMPORT_MIDWAY: &str = "import.midway";

/// Aborts the process if `CODEX_ROTOR_CRASH_AT` equals `name`; otherwise does nothing. Without
/// the `fault-injection` feature it does nothing at all.
pub fn point(name: &str) {
    #[cfg(feature = "fault-injection")]
    if std::env::var(ENV).is_ok_and(|v| v == name) {
        tracing::error!(fault = name, "fault point reached: aborting on purpose");
        std::process::abort();
    }
    #[cfg(not(feature = "fault-injection"))]
    let _ = name;
}

/// Environment variable naming the account whose actor panics once, on its first tick.
pub const PANIC_ENV: &str = "CODEX_ROTOR_PANIC_ACCOUNT";

/// The message of the injected panic (so a log reader can tell it from a real bug).
pub const PANIC_MESSAGE: &str = "fault injection: account actor panic";

/// Whether the injected panic already happened in this process: it fires once, so the
/// supervisor's restart from the durable record then succeeds instead of crash-looping.
#[cfg(feature = "fault-injection")]
static PANICKED: AtomicBool = AtomicBool::new(false);

/// Panics (once per process) if `CODEX_ROTOR_PANIC_ACCOUNT` names `account_id`. The env is read
/// once: the tick path of 10 000 accounts must not query the environment every second. Without
/// the `fault-injection` feature it does nothing at all.
#[cfg(feature = "fault-injection")]
pub fn panic_point(account_id: &str) {
    static TARGET: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let target = TARGET.get_or_init(|| std::env::var(PANIC_ENV).ok());
    panic_point_with(target.as_deref(), account_id, &PANICKED);
}

/// [`panic_point`] of a build without the `fault-injection` feature: nothing.
#[cfg(not(feature = "fault-injection"))]
pub fn panic_point(account_id: &str) {
    let _ = account_id;
}

/// [`panic_point`] with the target and the once-flag given, so tests need not touch the
/// process-global environment or flag.
pub fn panic_point_with(target: Option<&str>, account_id: &str, fired: &AtomicBool) {
    if target == Some(account_id) && !fired.swap(true, Ordering::SeqCst) {
        tracing::error!(
            account = account_id,
            "fault point reached: panicking on purpose"
        );
        panic!("{PANIC_MESSAGE}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_once_for_the_named_account_and_never_for_another() {
        let fired = AtomicBool::new(false);
        let run = |target: Option<&str>, id: &str| {
            std::panic::catch_unwind(|| panic_point_with(target, id, &fired)).is_err()
        };
        assert!(!run(None, "acct-1"), "no env: no panic");
        assert!(!run(Some("acct-2"), "acct-1"), "another account: no panic");
        assert!(!fired.load(Ordering::SeqCst), "not spent by a miss");
        assert!(run(Some("acct-1"), "acct-1"), "the named account panics");
        assert!(!run(Some("acct-1"), "acct-1"), "but only once");
        assert!(!run(Some("acct-1"), "acct-1"), "still only once");
    }

    /// Child half of the test below: only acts when spawned by it.
    #[test]
    fn child_aborts_at_its_point() {
        if std::env::var("ROTOR_FAULT_CHILD").is_ok() {
            point(REFRESH_AFTER_RESPONSE);
            point(REFRESH_AFTER_INTENT);
            std::process::exit(0); // not reached when the env names the intent point
        }
    }

    #[test]
    fn aborts_exactly_at_the_named_point_and_nowhere_else() {
        let exe = std::env::current_exe().expect("test binary");
        let run = |at: &str| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "fault::tests::child_aborts_at_its_point",
                    "--test-threads=1",
                ])
                .env("ROTOR_FAULT_CHILD", "1")
                .env(ENV, at)
                .output()
                .expect("spawn child")
                .status
        };
        let crashed = run(REFRESH_AFTER_INTENT);
        assert!(
            !crashed.success() && crashed.code().is_none(),
            "killed by SIGABRT: {crashed:?}"
        );
        assert!(run("refresh.elsewhere").success(), "other names do nothing");
    }
}
