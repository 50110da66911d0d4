//! Loading a config document key by key, so that one `config check` names every value that does
//! not fit the schema (issue 15 item 12: a file with seven mistakes took seven runs, because
//! serde stops at the first error).
//!
//! How: the document is parsed into a TOML table (a syntax error is the only thing that stops
//! everything), then its leaves — plain values, arrays of plain values, empty tables — are added
//! one at a time to an initially empty table, which is deserialized into [`Config`] after each
//! addition. A leaf that makes it fail is one problem, named by its key, and is left out; the
//! next leaf is tried on top of what was accepted. Every struct of the schema has
//! `#[serde(default)]`, so a partial table is always a valid config: what comes out is the
//! config built from every value that fit, defaults for the rest. A config that loads takes one
//! pass; only a broken one pays the quadratic walk (configs are tens of keys).

use super::{Config, ConfigError, env};
use std::path::Path;
use toml::{Table, Value};

/// One step of a key path: a table key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    /// A key of a table.
    Key(String),
    /// An index into an array of tables.
    Index(usize),
}

/// A value that did not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rejected {
    /// Path of the leaf that was left out.
    pub leaf: Vec<Seg>,
    /// Path of the key the problem is about (the leaf, or the unknown key above it).
    pub at: Vec<Seg>,
    /// Dotted key the problem is about, as operators write it: `keys.keys[1].rpm`, or the
    /// unknown key itself (`srever`) when the schema has no such key.
    pub key: String,
    /// What the deserializer said.
    pub message: String,
}

/// `a.b[0].c`, the way [`ConfigProblem`](super::ConfigProblem) keys are written.
pub(super) fn dotted(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The config from every value of `table` that fits, and one [`Rejected`] per key that does
/// not (the first leaf to fail at a key speaks for it).
pub(super) fn lenient(table: &Table) -> (Config, Vec<Rejected>) {
    // The usual case, a config that loads, costs one pass.
    if let Ok(config) = deserialize(table.clone()) {
        return (config, Vec::new());
    }
    let mut accepted = Table::new();
    let mut rejected: Vec<Rejected> = Vec::new();
    let mut leaves = Vec::new();
    collect(table, &mut Vec::new(), &mut leaves);
    for (leaf, value) in leaves {
        let mut trial = accepted.clone();
        set(&mut trial, &leaf, value);
        match deserialize(trial.clone()) {
            Ok(_) => accepted = trial,
            Err(e) => {
                let (at, key) = key_of(&leaf, &e);
                if !rejected.iter().any(|r| r.key == key) {
                    let message = e.inner().message().trim_end().to_owned();
                    rejected.push(Rejected {
                        leaf,
                        at,
                        key,
                        message,
                    });
                }
            }
        }
    }
    // Every accepted leaf deserialized together just now; only a rule spanning several keys
    // could fail here, and then the defaults stand in.
    let config = deserialize(accepted).unwrap_or_default();
    (config, rejected)
}

fn deserialize(table: Table) -> Result<Config, serde_path_to_error::Error<toml::de::Error>> {
    serde_path_to_error::deserialize(Value::Table(table))
}

/// The key a failure is about, as a path and as text: the deserializer's own path when it
/// reaches the leaf (its text may go deeper, into a list), else the leaf cut at that path (an
/// unknown key with a table under it, `[srever]`, is named once, as `srever`).
fn key_of(leaf: &[Seg], e: &serde_path_to_error::Error<toml::de::Error>) -> (Vec<Seg>, String) {
    let depth = e.path().iter().count();
    if depth >= leaf.len() {
        (leaf.to_vec(), e.path().to_string())
    } else {
        let at = leaf[..depth.max(1)].to_vec();
        let key = dotted(&at);
        (at, key)
    }
}

/// Appends the leaves under `table` (at `path`) to `out`, in document order.
fn collect(table: &Table, path: &mut Vec<Seg>, out: &mut Vec<(Vec<Seg>, Value)>) {
    if table.is_empty() && !path.is_empty() {
        out.push((path.clone(), Value::Table(Table::new())));
    }
    for (k, v) in table {
        path.push(Seg::Key(k.clone()));
        leaf_or_deeper(v, path, out);
        path.pop();
    }
}

fn leaf_or_deeper(v: &Value, path: &mut Vec<Seg>, out: &mut Vec<(Vec<Seg>, Value)>) {
    match v {
        Value::Table(t) => collect(t, path, out),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_table) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                leaf_or_deeper(item, path, out);
                path.pop();
            }
        }
        other => out.push((path.clone(), other.clone())),
    }
}

/// Puts `value` at `path`, creating the tables and list entries (empty tables) on the way.
fn set(root: &mut Table, path: &[Seg], value: Value) {
    let Some((Seg::Key(first), rest)) = path.split_first() else {
        return;
    };
    let mut node = root
        .entry(first.clone())
        .or_insert_with(|| container_for(rest.first()));
    for (i, seg) in rest.iter().enumerate() {
        let next = rest.get(i + 1);
        node = match (node, seg) {
            (Value::Table(t), Seg::Key(k)) => {
                t.entry(k.clone()).or_insert_with(|| container_for(next))
            }
            (Value::Array(items), Seg::Index(idx)) => {
                while items.len() <= *idx {
                    items.push(Value::Table(Table::new()));
                }
                &mut items[*idx]
            }
            // Leaves come from a table of this very shape, so this cannot happen.
            _ => return,
        };
    }
    *node = value;
}

fn container_for(next: Option<&Seg>) -> Value {
    match next {
        Some(Seg::Index(_)) => Value::Array(Vec::new()),
        _ => Value::Table(Table::new()),
    }
}

/// The 1-based line of the value at `path` in `text`, when the document parses and has it.
pub(super) fn line_of(text: &str, path: &[Seg]) -> Option<usize> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut item = doc.as_item();
    let mut span = None;
    for seg in path {
        let next = match seg {
            Seg::Key(k) => item.get(k.as_str()),
            Seg::Index(i) => item.get(*i),
        };
        let Some(next) = next else { break };
        item = next;
        span = item.span().or(span);
    }
    span.map(|s| line_at(text, s.start))
}

/// The 1-based line holding byte `offset` of `text`.
pub(super) fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The document is not TOML at all: one error, at the line the parser stopped.
pub(super) fn syntax_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let at = e
        .span()
        .map(|s| format!(" (line {})", line_at(text, s.start)))
        .unwrap_or_default();
    ConfigError::Parse {
        path: path.to_path_buf(),
        key: ".".into(),
        message: format!("not valid TOML: {}{at}", e.message().trim_end()),
    }
}

/// The values of the file that do not fit the schema, each with the line it is on, in the
/// order of the file.
pub(super) fn file_errors(path: &Path, text: &str, rejected: Vec<Rejected>) -> Vec<ConfigError> {
    let mut located: Vec<(Option<usize>, Rejected)> = rejected
        .into_iter()
        .map(|r| (line_of(text, &r.at), r))
        .collect();
    located.sort_by_key(|(line, _)| line.unwrap_or(usize::MAX));
    located
        .into_iter()
        .map(|(line, r)| ConfigError::Parse {
            path: path.to_path_buf(),
            key: r.key,
            message: match line {
                Some(l) => format!("{} (line {l})", r.message),
                None => r.message,
            },
        })
        .collect()
}

/// The file's table with every override that applies written in; one error per override that
/// does not (it is left out, so it cannot also fail the schema check).
pub(super) fn apply_overrides(
    mut table: toml::Table,
    overrides: &[env::Override],
) -> (toml::Table, Vec<ConfigError>) {
    let defaults = toml::Table::try_from(Config::default()).unwrap_or_default();
    let mut errors = Vec::new();
    for ov in overrides {
        let mut trial = table.clone();
        match env::apply(&mut trial, ov, &defaults) {
            Ok(()) => table = trial,
            Err(message) => errors.push(ConfigError::Env {
                var: ov.var.clone(),
                message: format!("{}: {message}", ov.key()),
            }),
        }
    }
    (table, errors)
}

/// True if the override `ov` wrote the value at `leaf` (its path is a prefix of the leaf's).
pub(super) fn sets(ov: &env::Override, leaf: &[Seg]) -> bool {
    ov.path.len() <= leaf.len()
        && ov.path.iter().zip(leaf).all(|(p, seg)| match seg {
            Seg::Key(k) => k == p,
            Seg::Index(i) => p.parse::<usize>().ok() == Some(*i),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<String> {
        let table: Table = text.parse().unwrap();
        lenient(&table).1.into_iter().map(|r| r.key).collect()
    }

    #[test]
    fn every_bad_key_is_named_and_the_good_ones_are_kept() {
        let text = "data_dir = 5\n[server]\nlisten = \"nope\"\nshutdown_grace = \"2m\"\n\
                    [srever]\na = 1\nb = 2\n[[keys.keys]]\nname = \"a\"\n[[keys.keys]]\nname = \"b\"\nrpm = -1\n";
        assert_eq!(
            keys(text),
            ["data_dir", "keys.keys[1].rpm", "server.listen", "srever"]
        );
        let table: Table = text.parse().unwrap();
        let cfg = lenient(&table).0;
        assert_eq!(cfg.server.shutdown_grace.as_secs(), 120);
        assert_eq!(cfg.keys.keys.len(), 2);
        assert_eq!(cfg.keys.keys[0].name, "a");
    }

    #[test]
    fn a_list_value_is_named_down_to_its_index() {
        assert_eq!(keys("[models]\nlist = [\"a\", 1]\n"), ["models.list[1]"]);
    }

    #[test]
    fn lines_point_at_the_value() {
        let text =
            "[server]\n\nlisten = \"x\"\n[[keys.keys]]\nname = \"a\"\n[[keys.keys]]\nrpm = -1\n";
        let at = |p: &[Seg]| line_of(text, p);
        let k = |s: &str| Seg::Key(s.into());
        assert_eq!(at(&[k("server"), k("listen")]), Some(3));
        assert_eq!(
            at(&[k("keys"), k("keys"), Seg::Index(1), k("rpm")]),
            Some(7)
        );
    }
}
