//! The dependency order of docs/architecture.md "Layers" holds in the code: every module of
//! `src/` and `actors/src/` uses only modules of its own layer or below, and no two modules use
//! each other, directly or around a loop (style.md practice 11). The order is written once, in
//! the doc's tables; this test parses them, so the doc and the test cannot drift apart.
//!
//! A module is a file (`foo.rs` and the files under `foo/` are `foo` and its children). Its
//! imports are the `use` trees and the inline `crate::`, `super::` and `self::` paths outside
//! comments and `#[cfg(test)]` modules. A parent and its own children form one unit, so their
//! uses of each other count neither as a loop nor against the order; the crate root is the
//! crate's surface, and a name it re-exports counts as the module it comes from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Imports against the order that are known and being fixed, as (file, imported path): empty,
/// and it stays so — an entry is a debt, to be paid in the change that makes it.
const KNOWN_UNTIL_FIXED: &[(&str, &str)] = &[];

/// A module path inside its crate (`["accounts", "entry"]`; the root is empty).
type Module = Vec<String>;

/// One crate the test reads: its source folder and the heading of its table in the doc.
struct Tree {
    dir: &'static str,
    heading: &'static str,
}

const TREES: [Tree; 2] = [
    Tree {
        dir: "actors/src",
        heading: "### `actors/`",
    },
    Tree {
        dir: "src",
        heading: "### `src/`",
    },
];

#[test]
fn no_module_imports_one_above_it_and_no_cycles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).expect("the doc");
    let mut problems = Vec::new();
    for tree in &TREES {
        let layers = layers(&doc, tree.heading);
        assert!(
            !layers.is_empty(),
            "no layer table under {:?} in docs/architecture.md",
            tree.heading
        );
        let files = modules(&root.join(tree.dir));
        let known: BTreeSet<Module> = files.keys().cloned().collect();
        let reexports = files
            .get(&Vec::new())
            .map(|text| root_reexports(text, &known))
            .unwrap_or_default();
        let mut edges = Vec::new();
        for (module, text) in &files {
            if module.first().is_some_and(|m| m == "main") {
                continue; // a binary: it uses the library by name, never `crate::`
            }
            for path in imports(text) {
                let Some(target) = resolve(module, &path, &known, &reexports) else {
                    continue;
                };
                let file = file_of(tree.dir, module);
                let import = path.join("::");
                if related(module, &target)
                    || KNOWN_UNTIL_FIXED.contains(&(file.as_str(), import.as_str()))
                {
                    continue;
                }
                edges.push(Edge {
                    file,
                    import,
                    from: module.clone(),
                    to: target,
                });
            }
        }
        for module in files.keys().filter(|m| !m.is_empty() && m[0] != "main") {
            if layer_of(&layers, module).is_none() {
                problems.push(format!(
                    "{}: module `{}` is in no layer of docs/architecture.md {:?}",
                    file_of(tree.dir, module),
                    module.join("::"),
                    tree.heading
                ));
            }
        }
        for e in &edges {
            if let (Some((from, from_name)), Some((to, to_name))) =
                (layer_of(&layers, &e.from), layer_of(&layers, &e.to))
                && to > from
            {
                problems.push(format!(
                    "{}: `{}` — `{from_name}` (layer {from}) imports `{to_name}` (layer {to})",
                    e.file, e.import
                ));
            }
        }
        for cycle in cycles(&edges) {
            let steps: Vec<String> = cycle
                .iter()
                .map(|e| format!("{}: `{}`", e.file, e.import))
                .collect();
            problems.push(format!("module cycle: {}", steps.join(" → ")));
        }
    }
    assert!(
        problems.is_empty(),
        "imports against docs/architecture.md \"Layers\":\n  {}",
        problems.join("\n  ")
    );
}

/// One import of one module.
#[derive(Debug, Clone)]
struct Edge {
    file: String,
    import: String,
    from: Module,
    to: Module,
}

/// The table under `heading`: each listed module (`oauth::jwt`) with its layer. Parenthesised
/// text in a cell is description (`quota` (`apply`, `headers`)), not modules.
fn layers(doc: &str, heading: &str) -> Vec<(Module, u32)> {
    let mut out = Vec::new();
    let mut lines = doc.lines().skip_while(|l| !l.starts_with(heading)).skip(1);
    for line in lines.by_ref() {
        if line.starts_with('|') {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let Some(layer) = cells.get(1).and_then(|c| c.parse::<u32>().ok()) else {
                continue; // header or separator
            };
            for name in backticked(&strip_parens(cells.get(2).copied().unwrap_or(""))) {
                out.push((name.split("::").map(String::from).collect(), layer));
            }
        } else if !out.is_empty() {
            break;
        }
    }
    out
}

fn strip_parens(cell: &str) -> String {
    let mut depth = 0usize;
    let mut out = String::new();
    for c in cell.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .enumerate()
        .filter(|(i, s)| i % 2 == 1 && !s.is_empty())
        .map(|(_, s)| s.to_string())
        .collect()
}

/// The layer of `module`: that of the longest listed module it is or lies inside.
fn layer_of(layers: &[(Module, u32)], module: &Module) -> Option<(u32, String)> {
    layers
        .iter()
        .filter(|(m, _)| module.starts_with(m))
        .max_by_key(|(m, _)| m.len())
        .map(|(m, l)| (*l, m.join("::")))
}

/// Every `.rs` file under `dir` as its module, with its text.
fn modules(dir: &Path) -> BTreeMap<Module, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("source folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(dir).expect("inside").with_extension("");
                let mut module: Module = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if module == ["lib"] {
                    module.clear();
                }
                out.insert(module, std::fs::read_to_string(&path).expect("source"));
            }
        }
    }
    out
}

fn file_of(dir: &str, module: &Module) -> String {
    if module.is_empty() {
        format!("{dir}/lib.rs")
    } else {
        format!("{dir}/{}.rs", module.join("/"))
    }
}

/// Whether one module is the other or lies inside it.
fn related(a: &Module, b: &Module) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// The code of a file without comments and without its `#[cfg(test)] mod …` blocks.
fn code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    let mut from = 0;
    while let Some(i) = out[from..].find("#[cfg(test)]") {
        let at = from + i;
        if out[at + "#[cfg(test)]".len()..]
            .trim_start()
            .starts_with("mod ")
        {
            out.truncate(at);
            break;
        }
        from = at + 1;
    }
    out
}

/// Every path a file imports: its `use` trees expanded (`a::{b, c::d}` → `a::b`, `a::c::d`)
/// and the inline `crate::`/`super::`/`self::` paths of its code.
fn imports(text: &str) -> Vec<Vec<String>> {
    let code = code(text);
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(i) = find_word(rest, "use ") {
        let after = &rest[i + 4..];
        let Some(end) = after.find(';') else { break };
        let tree: String = after[..end]
            .replace(" as ", "@")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        expand("", &tree, &mut out);
        rest = &after[end..];
    }
    for prefix in ["crate::", "super::", "self::"] {
        let mut rest = code.as_str();
        while let Some(i) = find_word(rest, prefix) {
            let path: String = rest[i..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            // `crate::pool::{…}` is a `use` tree, already expanded above.
            if !rest[i + path.len()..].starts_with('{') {
                out.push(split(&path));
            }
            rest = &rest[i + prefix.len()..];
        }
    }
    out.retain(|p| !p.is_empty());
    out.sort();
    out.dedup();
    out
}

/// Position of `word` in `text` where it starts a word (not `$crate::`, not `xsuper::`).
fn find_word(text: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find(word) {
        let at = from + i;
        let before = text[..at].chars().next_back();
        if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == ':') {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

fn split(path: &str) -> Vec<String> {
    path.split("::")
        .filter(|s| !s.is_empty() && *s != "*")
        .map(String::from)
        .collect()
}

/// Expands one `use` tree (whitespace removed, ` as ` written `@`) under `prefix` into full paths.
fn expand(prefix: &str, tree: &str, out: &mut Vec<Vec<String>>) {
    match tree.find('{') {
        None => {
            let tree = tree.split('@').next().unwrap_or(tree);
            let full = format!("{prefix}{tree}");
            out.push(split(full.trim_end_matches("::self")));
        }
        Some(open) => {
            let head = format!("{prefix}{}", &tree[..open]);
            let close = tree.rfind('}').filter(|&c| c > open).unwrap_or(tree.len());
            let inner = &tree[open + 1..close];
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&head, &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            if start < inner.len() {
                expand(&head, &inner[start..], out);
            }
        }
    }
}

/// The names the crate root re-exports (`pub use pool::{Strategy, …}`), with their module.
fn root_reexports(text: &str, known: &BTreeSet<Module>) -> BTreeMap<String, Module> {
    let root = Vec::new();
    let mut out = BTreeMap::new();
    for path in imports(text) {
        if let (Some(name), Some(target)) =
            (path.last(), resolve(&root, &path, known, &BTreeMap::new()))
            && !target.is_empty()
        {
            out.insert(name.clone(), target);
        }
    }
    out
}

/// The module a path of `module` names: `crate::`, `super::` and `self::` paths, and paths
/// that start with one of the module's children; `None` for other crates' paths.
fn resolve(
    module: &Module,
    path: &[String],
    known: &BTreeSet<Module>,
    reexports: &BTreeMap<String, Module>,
) -> Option<Module> {
    let mut base: Module;
    let mut rest = path;
    match path.first().map(String::as_str) {
        Some("crate") => {
            base = Vec::new();
            rest = &path[1..];
        }
        Some("self") => {
            base = module.clone();
            rest = &path[1..];
        }
        Some("super") => {
            base = module.clone();
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        Some(first) => {
            let mut child = module.clone();
            child.push(first.to_string());
            if !known.contains(&child) {
                return None;
            }
            base = module.clone();
        }
        None => return None,
    }
    let mut full = base;
    full.extend(rest.iter().cloned());
    let target = (0..=full.len())
        .rev()
        .map(|n| full[..n].to_vec())
        .find(|m| known.contains(m))?;
    if target.is_empty()
        && let Some(name) = full.first()
        && let Some(m) = reexports.get(name)
    {
        return Some(m.clone());
    }
    Some(target)
}

/// One loop of imports per group of modules that reach each other, as the edges around it.
fn cycles(edges: &[Edge]) -> Vec<Vec<Edge>> {
    let mut next: BTreeMap<&Module, Vec<&Edge>> = BTreeMap::new();
    for e in edges {
        next.entry(&e.from).or_default().push(e);
    }
    let mut seen_groups: BTreeSet<BTreeSet<Module>> = BTreeSet::new();
    let mut out = Vec::new();
    for start in next.keys() {
        // Breadth-first from `start`: the shortest way back to it, if any.
        let mut came: BTreeMap<&Module, &Edge> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([*start]);
        let mut back = None;
        while let Some(m) = queue.pop_front() {
            for e in next.get(m).into_iter().flatten() {
                if &e.to == *start {
                    back = Some(*e);
                    queue.clear();
                    break;
                }
                if !came.contains_key(&e.to) {
                    came.insert(&e.to, e);
                    queue.push_back(&e.to);
                }
            }
        }
        let Some(last) = back else { continue };
        let mut path = vec![last.clone()];
        let mut at = &last.from;
        while at != *start {
            let e = came[at];
            path.push(e.clone());
            at = &e.from;
        }
        path.reverse();
        let group: BTreeSet<Module> = path.iter().map(|e| e.from.clone()).collect();
        if seen_groups.insert(group) {
            out.push(path);
        }
    }
    out
}
