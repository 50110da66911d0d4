//! `[models]`: which model names clients may send and what the pool sends upstream for them.

use super::pattern;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Model naming: aliases (Claude Code asks for `claude-*`), the default and the advertised list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Requested model (exact name or glob with `*`/`?`) → Codex model sent upstream. Exact
    /// names win over globs; among globs the most specific wins.
    pub aliases: BTreeMap<String, String>,
    /// Model used when a request names none.
    pub default_model: String,
    /// Models advertised by `GET /v1/models`.
    pub list: Vec<String>,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            aliases: BTreeMap::from([("claude-*".to_owned(), "gpt-5.5".to_owned())]),
            default_model: "gpt-5.5".into(),
            list: vec!["gpt-5.5".into(), "gpt-5.4".into()],
        }
    }
}

impl ModelsConfig {
    /// The model a request names, or `None` when it names none — `model` absent, `null` or
    /// blank — and `default_model` applies. The one rule for all three protocols (Responses,
    /// Chat Completions, Messages).
    pub fn named(requested: Option<&str>) -> Option<&str> {
        requested.filter(|m| !m.trim().is_empty())
    }

    /// The upstream model for a requested one: `default_model` when empty, the alias target
    /// when an alias matches, otherwise the name unchanged.
    pub fn resolve(&self, requested: &str) -> String {
        let Some(requested) = Self::named(Some(requested.trim())) else {
            return self.default_model.clone();
        };
        if let Some(target) = self.aliases.get(requested) {
            return target.clone();
        }
        self.aliases
            .iter()
            .filter(|(pat, _)| pattern::matches(pat, requested))
            .max_by_key(|(pat, _)| pattern::specificity(pat))
            .map(|(_, target)| target.clone())
            .unwrap_or_else(|| requested.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_prefers_exact_then_specific_glob() {
        let mut m = ModelsConfig::default();
        m.aliases
            .insert("claude-opus-*".into(), "gpt-5.5-pro".into());
        m.aliases.insert("claude-opus-4".into(), "gpt-5.4".into());
        assert_eq!(m.resolve(""), "gpt-5.5");
        assert_eq!(m.resolve("claude-opus-4"), "gpt-5.4");
        assert_eq!(m.resolve("claude-opus-4-1"), "gpt-5.5-pro");
        assert_eq!(m.resolve("claude-sonnet-4"), "gpt-5.5");
        assert_eq!(m.resolve("gpt-5.4"), "gpt-5.4");
    }
}
