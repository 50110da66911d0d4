//! Every file in `snapshots/` belongs to a test (style.md practice 8). Snapshots are named in one
//! scheme, `<test binary>__<module>__<name>.snap`, as insta writes them with the module
//! prepended: `it__translate__chat__stream_text.snap` is `assert_yaml_snapshot!("stream_text", …)`
//! in `tests/it/translate/chat.rs`; `core__quota__a_later_429_extends_the_lock.snap` is the
//! unnamed snapshot of `fn a_later_429_extends_the_lock` in `actors/tests/core/quota.rs`. A file
//! no test names, or a `.snap.new` left by a run, fails here, so CI never carries either.

use std::path::Path;

/// Where each test binary's modules live, relative to the workspace root.
const BINARIES: [(&str, &str); 2] = [("it", "tests/it"), ("core", "actors/tests/core")];

#[test]
fn every_snapshot_is_referenced_and_none_is_pending() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(root.join("snapshots"))
        .expect("snapshots/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in &names {
        match referenced(root, name) {
            Ok(()) => {}
            Err(why) => problems.push(format!("snapshots/{name}: {why}")),
        }
    }
    assert!(
        problems.is_empty(),
        "snapshots no test references:\n  {}",
        problems.join("\n  ")
    );
}

/// Whether the test that the file's name points at exists and names the snapshot.
fn referenced(root: &Path, file: &str) -> Result<(), String> {
    if file.ends_with(".snap.new") || file.ends_with(".pending-snap") {
        return Err("a pending snapshot: review it (`cargo insta review`), never commit it".into());
    }
    let stem = file
        .strip_suffix(".snap")
        .ok_or("not a snapshot (`.snap`)")?;
    let parts: Vec<&str> = stem.split("__").collect();
    let [binary, modules @ .., name] = parts.as_slice() else {
        return Err("not named `<test binary>__<module>__<name>.snap`".into());
    };
    let dir = BINARIES
        .iter()
        .find(|(b, _)| b == binary)
        .map(|(_, d)| *d)
        .ok_or_else(|| format!("no test binary `{binary}`"))?;
    if modules.is_empty() {
        return Err("not named `<test binary>__<module>__<name>.snap`".into());
    }
    let source = root.join(dir).join(modules.join("/")).with_extension("rs");
    let text = std::fs::read_to_string(&source)
        .map_err(|_| format!("no test module {}", source.display()))?;
    // insta numbers a test's second unnamed snapshot `name-2`.
    let name = match name.rsplit_once('-') {
        Some((base, n)) if n.chars().all(|c| c.is_ascii_digit()) => base,
        _ => name,
    };
    let named = text.contains(&format!("_snapshot!(\"{name}\""));
    let unnamed = text.contains(&format!("fn {name}("));
    if named || unnamed {
        Ok(())
    } else {
        Err(format!(
            "{} has neither `fn {name}` nor a snapshot named \"{name}\"",
            source.display()
        ))
    }
}
