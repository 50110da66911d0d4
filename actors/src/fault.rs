//! Crash fault points for the durability tests: a test sets `CODEX_ROTOR_CRASH_AT=<name>` and the
//! daemon aborts (like a SIGKILL: no destructors, no flush) exactly at that step of a token
//! rotation, so the test can check that the account survives a restart.

/// Environment variable naming the fault point at which to abort.
pub const ENV: &str = "CODEX_ROTOR_CRASH_AT";

/// After the refresh intent is durable, before the token endpoint is called.
pub const REFRESH_AFTER_INTENT: &str = "refresh.after_intent";
/// After the token endpoint answered, before the new tokens are durable.
pub const REFRESH_AFTER_RESPONSE: &str = "refresh.after_response";
/// After the new tokens are durable, before the intent is cleared.
pub const REFRESH_AFTER_PERSIST: &str = "refresh.after_persist";

/// Aborts the process if `CODEX_ROTOR_CRASH_AT` equals `name`; otherwise does nothing.
pub fn point(name: &str) {
    if std::env::var(ENV).is_ok_and(|v| v == name) {
        tracing::error!(fault = name, "fault point reached: aborting on purpose");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
