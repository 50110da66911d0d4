//! Model names: aliases (`claude-*` → a configured Codex model) and suffixes
//! (`gpt-5.5-high-fast` → model `gpt-5.5`, effort `high`, service tier `priority`).
//!
//! Aliases are glob patterns (`*` any run of characters, `?` one character) mapped to a target
//! model. The most specific matching pattern wins: an exact (wildcard-free) key first, then the
//! pattern with the most literal characters, ties broken by `BTreeMap` order. A target may itself
//! carry suffixes (`"claude-opus-*" = "gpt-5.5-high"`). Suffixes are parsed after aliasing, as
//! in the predecessor: one trailing tier `-fast|-flex`, then one effort
//! `-none|-minimal|-low|-medium|-high|-xhigh`.

use std::collections::BTreeMap;

/// What translation needs from the models config: the alias table and the default model.
/// Implemented by the config's models section and by `ModelMap` (tests, defaults).
pub trait ModelAliases {
    /// Glob pattern → Codex model (possibly with suffixes).
    fn aliases(&self) -> &BTreeMap<String, String>;
    /// The Codex model for a `claude-*` name no alias matches.
    fn default_model(&self) -> &str;
}

/// A plain alias table: the stand-alone `ModelAliases` for tests and built-in defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelMap {
    /// Glob pattern → Codex model.
    pub aliases: BTreeMap<String, String>,
    /// The fallback for unmatched `claude-*` names.
    pub default_model: String,
}

impl ModelMap {
    /// A table with the given default and aliases.
    pub fn new<'a>(
        default_model: &str,
        aliases: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        Self {
            aliases: aliases
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            default_model: default_model.to_owned(),
        }
    }
}

impl ModelAliases for ModelMap {
    fn aliases(&self) -> &BTreeMap<String, String> {
        &self.aliases
    }
    fn default_model(&self) -> &str {
        &self.default_model
    }
}

impl ModelAliases for crate::config::ModelsConfig {
    fn aliases(&self) -> &BTreeMap<String, String> {
        &self.aliases
    }
    fn default_model(&self) -> &str {
        &self.default_model
    }
}

/// A client model name resolved for upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The Codex model to send upstream and to pick an account for.
    pub model: String,
    /// Reasoning effort named by a suffix, if any.
    pub effort: Option<String>,
    /// Service tier named by a suffix (`-fast` → `priority`, `-flex` → `flex`).
    pub service_tier: Option<&'static str>,
}

/// Efforts a suffix may name, longest first where one is a suffix of another (`xhigh`/`high`).
const EFFORTS: [&str; 6] = ["xhigh", "minimal", "medium", "none", "high", "low"];

/// Resolves `name`: alias first (for any name), then the default for unmatched `claude-*`
/// names when `claude_default` is set, then suffix parsing.
pub fn resolve(name: &str, models: &dyn ModelAliases, claude_default: bool) -> Resolved {
    let aliased = match alias(name, models.aliases()) {
        Some(target) => target.to_owned(),
        None if claude_default && name.starts_with("claude") => models.default_model().to_owned(),
        None => name.to_owned(),
    };
    split_suffixes(&aliased)
}

/// Strips one tier suffix, then one effort suffix, never leaving an empty model.
pub fn split_suffixes(name: &str) -> Resolved {
    let mut model = name;
    let mut service_tier = None;
    for (suffix, tier) in [("-fast", "priority"), ("-flex", "flex")] {
        if let Some(base) = model.strip_suffix(suffix).filter(|b| !b.is_empty()) {
            model = base;
            service_tier = Some(tier);
            break;
        }
    }
    let mut effort = None;
    for e in EFFORTS {
        let base = model
            .strip_suffix(e)
            .and_then(|b| b.strip_suffix('-'))
            .filter(|b| !b.is_empty());
        if let Some(base) = base {
            model = base;
            effort = Some(e.to_owned());
            break;
        }
    }
    Resolved {
        model: model.to_owned(),
        effort,
        service_tier,
    }
}

/// The target of the most specific alias pattern matching `name`, if any.
pub fn alias<'a>(name: &str, aliases: &'a BTreeMap<String, String>) -> Option<&'a str> {
    if let Some(exact) = aliases.get(name) {
        return Some(exact);
    }
    aliases
        .iter()
        .filter(|(pattern, _)| crate::config::pattern::matches(pattern, name))
        .max_by_key(|(pattern, _)| {
            (
                crate::config::pattern::specificity(pattern),
                std::cmp::Reverse(pattern.as_str()),
            )
        })
        .map(|(_, target)| target.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_strip_tier_then_effort() {
        let r = split_suffixes("gpt-5.4-high-fast");
        assert_eq!(r.model, "gpt-5.4");
        assert_eq!(r.effort.as_deref(), Some("high"));
        assert_eq!(r.service_tier, Some("priority"));
        let r = split_suffixes("gpt-5.5-xhigh");
        assert_eq!(
            (r.model.as_str(), r.effort.as_deref()),
            ("gpt-5.5", Some("xhigh"))
        );
        let r = split_suffixes("o4-mini");
        assert_eq!(
            (r.model.as_str(), r.effort, r.service_tier),
            ("o4-mini", None, None)
        );
        let r = split_suffixes("-high");
        assert_eq!(r.model, "-high", "never strips to an empty model");
    }

    #[test]
    fn most_specific_alias_wins() {
        let m = ModelMap::new(
            "gpt-5.5",
            [
                ("claude-*", "gpt-5.4"),
                ("claude-haiku-*", "gpt-5.4-mini-low"),
            ],
        );
        assert_eq!(
            alias("claude-haiku-4-5", &m.aliases),
            Some("gpt-5.4-mini-low")
        );
        assert_eq!(alias("claude-opus-4-8", &m.aliases), Some("gpt-5.4"));
        assert_eq!(alias("gpt-5.5", &m.aliases), None);
        let r = resolve("claude-haiku-4-5", &m, true);
        assert_eq!(
            (r.model.as_str(), r.effort.as_deref()),
            ("gpt-5.4-mini", Some("low"))
        );
    }

    #[test]
    fn unmatched_claude_names_fall_back_to_default() {
        let m = ModelMap::new("gpt-5.5", []);
        assert_eq!(resolve("claude-mock", &m, true).model, "gpt-5.5");
        assert_eq!(resolve("claude-mock", &m, false).model, "claude-mock");
        assert_eq!(resolve("gpt-5.4-low", &m, true).model, "gpt-5.4");
    }

    #[test]
    fn glob_handles_stars_and_marks() {
        assert!(crate::config::pattern::matches("a*b*c", "aXXbYc"));
        assert!(crate::config::pattern::matches("a?c", "abc"));
        assert!(!crate::config::pattern::matches("a?c", "ac"));
        assert!(crate::config::pattern::matches("*", ""));
        assert!(!crate::config::pattern::matches("abc", "abcd"));
    }
}
