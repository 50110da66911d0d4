//! Helpers shared by the tests: the snapshot settings (top-level `snapshots/`), and rendering of
//! traces with times relative to the scenario's start, so snapshots never hold wall-clock times.

use serde::Serialize;
use serde_json::Value;

/// Start of every scripted scenario (an arbitrary fixed instant, 2026-11-26T00:00:00Z).
pub const T0: i64 = 1_795_651_200_000;

/// Milliseconds in a second / minute / hour.
pub const S: i64 = 1_000;
pub const M: i64 = 60 * S;
pub const H: i64 = 60 * M;

/// Insta settings writing to the workspace's `snapshots/` folder.
pub fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"));
    s.set_prepend_module_to_snapshot(true);
    s
}

/// Keys whose integer values are unix-ms instants, rendered relative to [`T0`].
const TIME_KEYS: [&str; 15] = [
    "at",
    "last_hit",
    "reset_at",
    "resets_at",
    "observed_at",
    "recheck_at",
    "verify_since",
    "fetched_at",
    "until",
    "last_used",
    "cooldown_until",
    "expires_at",
    "started_at",
    "added_at",
    "soonest_reset",
];

/// "+1h 30m" style offset of `t` from [`T0`].
pub fn rel(t: i64) -> String {
    let d = t - T0;
    let sign = if d < 0 { "-" } else { "+" };
    let abs = std::time::Duration::from_millis(d.unsigned_abs());
    format!("{sign}{}", humantime::format_duration(abs))
}

/// Serializes `v` and renders every instant relative to [`T0`].
pub fn relative<T: Serialize>(v: &T) -> Value {
    let mut v = serde_json::to_value(v).unwrap_or(Value::Null);
    rewrite(&mut v);
    v
}

fn rewrite(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                if TIME_KEYS.contains(&k.as_str())
                    && let Some(t) = x.as_i64()
                {
                    *x = Value::String(rel(t));
                } else if k == "not_included"
                    && let Value::Object(until) = x
                {
                    // family id → until
                    for t in until.values_mut() {
                        if let Some(ms) = t.as_i64() {
                            *t = Value::String(rel(ms));
                        }
                    }
                } else {
                    rewrite(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(rewrite),
        _ => {}
    }
}

/// One step of a trace: what happened, the state after it, and the effects it produced.
#[derive(Debug, Serialize)]
pub struct Step {
    /// The message (with the time it was applied).
    pub message: Value,
    /// State after the message.
    pub state: Value,
    /// Effects produced.
    pub effects: Value,
}
