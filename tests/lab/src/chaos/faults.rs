//! The storm: which upstream faults the chaos run injects through the simulator's fault API,
//! and the periodic access-token expiries that force 401 → refresh → rotation under load.
//! Probabilities are small and seeded, so every account sees a mix over a run and most
//! requests still succeed (a pool in a storm that never serves proves nothing).

use codex_rotor::sim::{FaultKind, FaultSpec, SimHandle};

/// The fault set of a storm phase, each with its probability per upstream request.
pub fn storm() -> Vec<(&'static str, FaultSpec)> {
    let p = |kind, prob| FaultSpec::always(kind).with_probability(prob);
    vec![
        (
            "429 rate limit (Retry-After 2 s)",
            p(
                FaultKind::RateLimit {
                    retry_after_secs: Some(2),
                },
                0.02,
            ),
        ),
        ("500", p(FaultKind::ServerError, 0.02)),
        ("503 overloaded", p(FaultKind::Overloaded, 0.02)),
        (
            "premature close mid-chunk",
            p(
                FaultKind::PrematureClose {
                    after_events: 2,
                    mid_chunk: true,
                },
                0.02,
            ),
        ),
        (
            "premature close, clean end",
            p(
                FaultKind::PrematureClose {
                    after_events: 1,
                    mid_chunk: false,
                },
                0.01,
            ),
        ),
        ("Cloudflare challenge", p(FaultKind::Cloudflare, 0.003)),
        ("connection reset", p(FaultKind::Reset, 0.01)),
    ]
}

/// Starts a storm phase.
pub fn start_storm(sim: &SimHandle) {
    for (_, f) in storm() {
        sim.inject(f);
    }
}

/// Expires the access tokens of `k` accounts chosen by `round` (rotating through the pool), so
/// their next request answers 401 and the daemon must refresh (single-use refresh tokens).
pub fn expire_some(sim: &SimHandle, sim_ids: &[String], round: usize, k: usize) -> usize {
    if sim_ids.is_empty() {
        return 0;
    }
    for i in 0..k {
        let id = &sim_ids[(round * k + i) % sim_ids.len()];
        sim.expire_access_token(id);
    }
    k
}
