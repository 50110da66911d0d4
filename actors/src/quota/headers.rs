//! Parses the quota headers of an upstream answer (PROTOCOL.md §4): the main `x-codex-primary-*`
//! / `x-codex-secondary-*` windows, the credits headers, and every other `x-<limit>-primary-*`
//! family as a named extra limit (`x-codex-bengalfox-…` → `codex_bengalfox`). A code-review
//! family (`codex_code_review`, `codex_review`, `code_review`) fills the code-review bucket.

use std::collections::BTreeMap;

use super::{Credits, ExtraObservation, Observation, Window, apply::normalize_limit};
use crate::UnixMs;

/// Header naming the limit family a 429 applies to.
pub const ACTIVE_LIMIT: &str = "x-codex-active-limit";

/// The family of the main windows.
const MAIN_FAMILY: &str = "codex";
/// Families that mean the code-review limit.
const REVIEW_FAMILIES: [&str; 3] = ["codex_code_review", "codex_review", "code_review"];

/// One window being assembled from its three headers.
#[derive(Default)]
struct Partial {
    used: Option<f64>,
    minutes: Option<u64>,
    reset_s: Option<i64>,
}

impl Partial {
    /// A window exists only when its used-percent header is present and valid.
    fn finish(self) -> Option<Window> {
        Some(Window {
            used_percent: self.used?,
            window_secs: self.minutes.map(|m| m.saturating_mul(60)),
            reset_at: self.reset_s.map(|s| s.saturating_mul(1000)),
            limit_reached: None,
        })
    }
}

#[derive(Default)]
struct Family {
    primary: Partial,
    secondary: Partial,
    name: Option<String>,
}

/// Parses every quota header; `None` if there is no quota header at all. `at` is the start
/// time of the request the answer belongs to.
pub fn parse<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    at: UnixMs,
) -> Option<Observation> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let (mut has_credits, mut unlimited, mut balance) = (None, None, None);
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        let value = value.trim();
        match name.as_str() {
            "x-codex-credits-has-credits" => has_credits = parse_bool(value),
            "x-codex-credits-unlimited" => unlimited = parse_bool(value),
            "x-codex-credits-balance" => balance = Some(value.to_string()),
            _ => collect_window_header(&name, value, &mut families),
        }
    }
    let credits = match (has_credits, unlimited) {
        (Some(has_credits), Some(unlimited)) => Some(Credits {
            has_credits,
            unlimited,
            balance,
        }),
        _ => None,
    };
    let mut obs = Observation {
        at,
        credits,
        ..Observation::default()
    };
    let mut any_window = false;
    for (id, fam) in families {
        let (primary, secondary) = (fam.primary.finish(), fam.secondary.finish());
        any_window |= primary.is_some() || secondary.is_some();
        if id == MAIN_FAMILY {
            obs.primary = primary;
            obs.secondary = secondary;
        } else if REVIEW_FAMILIES.contains(&id.as_str()) {
            obs.code_review = primary;
        } else if primary.is_some() || secondary.is_some() {
            obs.extra.insert(
                id,
                ExtraObservation {
                    name: fam.name,
                    primary,
                    secondary,
                },
            );
        }
    }
    (any_window || obs.credits.is_some()).then_some(obs)
}

/// The limit a 429 names via `x-codex-active-limit`, normalised (`-` → `_`).
pub fn active_limit<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<String> {
    headers
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(ACTIVE_LIMIT))
        .map(|(_, v)| normalize_limit(v))
        .filter(|v| !v.is_empty())
}

fn collect_window_header(name: &str, value: &str, families: &mut BTreeMap<String, Family>) {
    let Some(rest) = name.strip_prefix("x-") else {
        return;
    };
    if let Some(fam) = rest.strip_suffix("-limit-name") {
        families.entry(normalize_limit(fam)).or_default().name = Some(value.to_string());
        return;
    }
    for (window, field) in [("primary", 0), ("secondary", 1)] {
        for (suffix, kind) in [
            ("-used-percent", 0),
            ("-window-minutes", 1),
            ("-reset-at", 2),
        ] {
            let full = format!("-{window}{suffix}");
            let Some(fam) = rest.strip_suffix(full.as_str()) else {
                continue;
            };
            if fam.is_empty() {
                return;
            }
            let entry = families.entry(normalize_limit(fam)).or_default();
            let p = if field == 0 {
                &mut entry.primary
            } else {
                &mut entry.secondary
            };
            match kind {
                0 => p.used = value.parse::<f64>().ok().filter(|v| v.is_finite()),
                1 => p.minutes = value.parse().ok(),
                _ => p.reset_s = value.parse().ok(),
            }
            return;
        }
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}
