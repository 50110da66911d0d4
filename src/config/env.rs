//! Environment overrides: `CODEX_ROTOR_<SECTION>__<KEY>=value` sets `<section>.<key>`.
//!
//! The scheme, for operators (also in `config/default.toml`):
//! - strip `CODEX_ROTOR_`, split the rest on `__` (double underscore), lowercase each part:
//!   `CODEX_ROTOR_SERVER__LISTEN=0.0.0.0:8080` → `server.listen`,
//!   `CODEX_ROTOR_POOL__STRATEGY=round_robin` → `pool.strategy`,
//!   `CODEX_ROTOR_DATA_DIR=/var/lib/codex-rotor` → `data_dir`;
//! - a numeric part indexes a list: `CODEX_ROTOR_KEYS__KEYS__0__RPM=120` → `keys.keys[0].rpm`
//!   (index = length appends an entry);
//! - values are TOML literals when they parse as one (`true`, `5`, `["a","b"]`), else strings;
//!   names, keys and every field whose default is a string are always taken as strings;
//! - a variable without `__` is an override only when it names a top-level key (`data_dir`),
//!   so variables such as `CODEX_ROTOR_POOL_KEY` can hold secrets referenced by `key_env`;
//! - a variable with `__` must name a real key: a typo is an error, never silently ignored.

use toml::{Table, Value};

/// Prefix of every override variable.
pub const PREFIX: &str = "CODEX_ROTOR_";

/// One override, parsed from one environment variable.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The variable's name, for error messages.
    pub var: String,
    /// Lowercased path segments, e.g. `["server", "listen"]`.
    pub path: Vec<String>,
    /// The raw value (never logged: it may be a key).
    pub value: String,
}

impl Override {
    /// The dotted key this override sets, e.g. `keys.keys[0].rpm`.
    pub fn key(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            if seg.parse::<usize>().is_ok() {
                out.push_str(&format!("[{seg}]"));
            } else {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(seg);
            }
        }
        out
    }
}

/// Picks the overrides out of an environment. `top_level` lists the keys allowed without `__`.
/// Sorted by variable name so application order is deterministic.
pub fn collect(
    vars: impl IntoIterator<Item = (String, String)>,
    top_level: &[&str],
) -> Vec<Override> {
    let mut out: Vec<Override> = vars
        .into_iter()
        .filter_map(|(var, value)| {
            let rest = var.strip_prefix(PREFIX)?;
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            if path.len() == 1 && !top_level.contains(&path[0].as_str()) {
                return None;
            }
            Some(Override { var, path, value })
        })
        .collect();
    out.sort_by(|a, b| a.var.cmp(&b.var));
    out
}

/// Writes one override into the raw config table. `defaults` is `Config::default()` as a TOML
/// table, used to know whether a field is a string.
pub fn apply(table: &mut Table, ov: &Override, defaults: &Table) -> Result<(), String> {
    if ov.path.iter().any(|s| s.is_empty()) {
        return Err("empty path segment (use exactly two underscores between parts)".into());
    }
    let value = typed_value(ov, defaults);
    let mut node = table_entry(
        table,
        &ov.path[0],
        ov.path.len() > 1 && is_index(&ov.path[1]),
    );
    for (i, seg) in ov.path.iter().enumerate().skip(1) {
        let next_is_index = ov.path.get(i + 1).is_some_and(|s| is_index(s));
        node = step(node, seg, next_is_index)?;
    }
    *node = value;
    Ok(())
}

fn is_index(seg: &str) -> bool {
    seg.parse::<usize>().is_ok()
}

fn empty_container(index_next: bool) -> Value {
    if index_next {
        Value::Array(Vec::new())
    } else {
        Value::Table(Table::new())
    }
}

fn table_entry<'a>(table: &'a mut Table, key: &str, index_next: bool) -> &'a mut Value {
    table
        .entry(key.to_owned())
        .or_insert_with(|| empty_container(index_next))
}

fn step<'a>(node: &'a mut Value, seg: &str, index_next: bool) -> Result<&'a mut Value, String> {
    match node {
        Value::Table(t) => Ok(table_entry(t, seg, index_next)),
        Value::Array(items) => {
            let idx: usize = seg
                .parse()
                .map_err(|_| format!("`{seg}` is not a list index"))?;
            if idx == items.len() {
                items.push(empty_container(index_next));
            }
            let len = items.len();
            items
                .get_mut(idx)
                .ok_or_else(|| format!("index {idx} is past the end of a list of {len}"))
        }
        _ => Err(format!("cannot set `{seg}` inside a plain value")),
    }
}

/// Fields always read as strings whatever they look like.
const STRING_FIELDS: &[&str] = &["name", "key", "key_env", "key_file", "level"];

fn typed_value(ov: &Override, defaults: &Table) -> Value {
    let last = ov.path.last().map(String::as_str).unwrap_or("");
    if STRING_FIELDS.contains(&last) || default_is_string(&ov.path, defaults) {
        return Value::String(ov.value.clone());
    }
    match format!("v = {}", ov.value).parse::<Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| Value::String(ov.value.clone())),
        Err(_) => Value::String(ov.value.clone()),
    }
}

fn default_is_string(path: &[String], defaults: &Table) -> bool {
    let mut node = defaults.get(&path[0]);
    for seg in &path[1..] {
        node = match node {
            Some(Value::Table(t)) => t.get(seg),
            _ => None,
        };
    }
    matches!(node, Some(Value::String(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn collects_sections_and_top_level_only() {
        let ovs = collect(
            env(&[
                ("CODEX_ROTOR_SERVER__LISTEN", "0.0.0.0:1"),
                ("CODEX_ROTOR_POOL_KEY", "secret"),
                ("CODEX_ROTOR_DATA_DIR", "/d"),
                ("OTHER", "x"),
            ]),
            &["data_dir"],
        );
        let keys: Vec<String> = ovs.iter().map(Override::key).collect();
        assert_eq!(keys, vec!["data_dir", "server.listen"]);
    }

    #[test]
    fn applies_typed_values_and_list_indexes() {
        let mut defaults = Table::new();
        defaults.insert(
            "upstream".into(),
            Value::Table(Table::from_iter([(
                "user_agent".to_string(),
                Value::String("x".into()),
            )])),
        );
        let mut t = Table::new();
        let ovs = collect(
            env(&[
                ("CODEX_ROTOR_KEYS__KEYS__0__RPM", "120"),
                ("CODEX_ROTOR_KEYS__KEYS__0__KEY", "123"),
                ("CODEX_ROTOR_UPSTREAM__USER_AGENT", "1.5"),
            ]),
            &[],
        );
        for ov in &ovs {
            apply(&mut t, ov, &defaults).unwrap();
        }
        let text = toml::to_string(&t).unwrap();
        assert!(text.contains("rpm = 120"), "{text}");
        assert!(text.contains("key = \"123\""), "{text}");
        assert!(text.contains("user_agent = \"1.5\""), "{text}");
    }
}
