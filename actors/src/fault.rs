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
