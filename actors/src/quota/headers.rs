//! Parses the quota headers of an upstream answer (docs/protocol.md §4): the main `x-codex-primary-*`
//! / `x-codex-secondary-*` windows, the credits headers, and every other `x-<limit>-primary-*`
//! family as a named extra limit (`x-codex-bengalfox-…` → `codex_bengalfox`). A code-review
//! family (`codex_code_review`, `codex_review`, `code_review`) fills the code-review bucket.
//!
//! It runs on every upstream answer, so it is cheap: headers that do not start with `x-` are
//! skipped at once, names are lowercased only when they are not already (HTTP/2 and hyper give
//! lowercase names), suffixes are matched against a static table, and a family's key is built
//! only the first time the family is seen.

use std::borrow::Cow;

use super::{
    Credits, ExtraObservation, Observation, Window,
    apply::{normalize_limit, normalize_limit_into},
};
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
    /// `-reset-after-seconds`: the reset relative to the answer (used when `-reset-at` is
    /// absent), as Codex's `parse_all_rate_limits` reads it.
    reset_after_s: Option<i64>,
}

impl Partial {
    /// A window exists only when its used-percent header is present and valid; `at` is the
    /// evidence time a relative reset counts from.
    fn finish(self, at: UnixMs) -> Option<Window> {
        let after = self
            .reset_after_s
            .map(|s| at.saturating_add(s.max(0).saturating_mul(1000)));
        Some(Window {
            used_percent: self.used?,
            window_secs: self.minutes.map(|m| m.saturating_mul(60)),
            reset_at: self.reset_s.map(|s| s.saturating_mul(1000)).or(after),
            limit_reached: None,
        })
    }
}

/// The families seen so far with their ids (a handful: a `Vec` beats a map here).
type Families = Vec<(String, Family)>;

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
    let mut families = Families::new();
    let mut key = String::new();
    let (mut has_credits, mut unlimited, mut balance) = (None, None, None);
    for (name, value) in headers {
        if !name.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("x-")) {
            continue;
        }
        let name: Cow<'_, str> = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(name.to_ascii_lowercase())
        } else {
            Cow::Borrowed(name)
        };
        let value = value.trim();
        match &*name {
            "x-codex-credits-has-credits" => has_credits = parse_bool(value),
            "x-codex-credits-unlimited" => unlimited = parse_bool(value),
            "x-codex-credits-balance" => balance = Some(value.to_string()),
            _ => collect_window_header(&name, value, &mut families, &mut key),
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
    // In id order, so that of two review families the same one wins as always.
    families.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (id, fam) in families {
        let (primary, secondary) = (fam.primary.finish(at), fam.secondary.finish(at));
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

/// The headers of one window, as `(suffix, window, field)`: window 0 is primary, 1 secondary;
/// field 0 is used-percent, 1 window-minutes, 2 reset-at, 3 reset-after-seconds.
const WINDOW_SUFFIXES: [(&str, u8, u8); 8] = [
    ("-primary-used-percent", 0, 0),
    ("-primary-window-minutes", 0, 1),
    ("-primary-reset-at", 0, 2),
    ("-primary-reset-after-seconds", 0, 3),
    ("-secondary-used-percent", 1, 0),
    ("-secondary-window-minutes", 1, 1),
    ("-secondary-reset-at", 1, 2),
    ("-secondary-reset-after-seconds", 1, 3),
];

/// `name` is lowercase and starts with `x-`; `key` is scratch space for the family id.
fn collect_window_header(name: &str, value: &str, families: &mut Families, key: &mut String) {
    let Some(rest) = name.strip_prefix("x-") else {
        return;
    };
    if let Some(fam) = rest.strip_suffix("-limit-name") {
        family(families, key, fam).name = Some(value.to_string());
        return;
    }
    let Some((fam, window, field)) = WINDOW_SUFFIXES
        .iter()
        .find_map(|&(suffix, w, f)| Some((rest.strip_suffix(suffix)?, w, f)))
    else {
        return;
    };
    if fam.is_empty() {
        return;
    }
    let entry = family(families, key, fam);
    let p = if window == 0 {
        &mut entry.primary
    } else {
        &mut entry.secondary
    };
    match field {
        0 => p.used = value.parse::<f64>().ok().filter(|v| v.is_finite()),
        1 => p.minutes = value.parse().ok(),
        2 => p.reset_s = value.parse().ok(),
        _ => p.reset_after_s = value.parse::<f64>().ok().map(|v| v.ceil() as i64),
    }
}

/// The family `fam` names (normalised as [`normalize_limit`] does), created on first sight.
fn family<'m>(families: &'m mut Families, key: &mut String, fam: &str) -> &'m mut Family {
    normalize_limit_into(fam, key);
    let i = match families.iter().position(|(k, _)| k == key) {
        Some(i) => i,
        None => {
            families.push((key.clone(), Family::default()));
            families.len() - 1
        }
    };
    &mut families[i].1
}

fn parse_bool(v: &str) -> Option<bool> {
    if v.eq_ignore_ascii_case("true") || v == "1" {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") || v == "0" {
        Some(false)
    } else {
        None
    }
}
