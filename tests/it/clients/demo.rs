//! The setup `codex-rotor demo` prints, followed to the letter with the real Codex CLI and
//! Claude Code (issue 15 item 16): from a directory that is not a git repository, with a `HOME`
//! whose own `~/.codex/config.toml` must come out untouched, every `export` and every `codex` /
//! `claude` command line of the printout is run as printed. Each answers (the simulated model
//! says it is simulated), the suggested tool prompt runs a real tool, and the names are the
//! README's.

use super::{RUN_LIMIT, Sandbox, client_bin};
use crate::wiring::demo::DemoRun;
use std::path::Path;

/// The user's own Codex config, which the demo must not replace.
const OWN_CONFIG: &str = "# the user's own Codex config\nmodel = \"their-model\"\n";

/// The lines of the printout's section whose title contains `title` (up to the next `──`).
fn section<'a>(printed: &'a str, title: &str) -> Vec<&'a str> {
    printed
        .lines()
        .skip_while(|l| !(l.starts_with("──") && l.contains(title)))
        .skip(1)
        .take_while(|l| !l.starts_with("──"))
        .collect()
}

/// `export NAME=value` lines, as (name, value) without a trailing `# comment`.
fn exports(lines: &[&str]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split('#').next())
        .filter_map(|l| l.trim().split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

/// The words of a command line; double quotes group (no other shell syntax is used).
fn words(line: &str) -> Vec<String> {
    let line = line.split("  #").next().unwrap_or(line).trim();
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Runs every `prog …` line of `lines` in `sb` with the section's exports; returns the outputs.
async fn run_printed(sb: &Sandbox, lines: &[&str], prog: &str, bin: &Path) -> Vec<String> {
    let vars = exports(lines);
    let vars: Vec<(&str, String)> = vars.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let mut outputs = Vec::new();
    for line in lines.iter().filter(|l| l.starts_with(&format!("{prog} "))) {
        let w = words(line);
        let args: Vec<&str> = w[1..].iter().map(String::as_str).collect();
        let run = sb.run_within(RUN_LIMIT, bin, &args, &vars).await;
        assert!(run.status.success(), "`{line}` as printed failed: {run}");
        assert!(
            run.stdout.contains("Simulated answer: "),
            "`{line}`: the answer says it is simulated: {run}"
        );
        outputs.push(run.stdout);
    }
    assert!(!outputs.is_empty(), "no `{prog}` line printed: {lines:?}");
    sb.assert_stayed_local();
    outputs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demos_printed_setup_works_with_codex_and_claude_outside_a_git_repo() {
    let tmp = tempfile::tempdir().expect("tmp");
    let tmp_path = tmp.path().to_path_buf();
    let demo = tokio::task::spawn_blocking(move || DemoRun::start(&tmp_path, &["--accounts", "2"]))
        .await
        .expect("demo starts");
    let printed = demo.printed.clone();

    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    for name in ["model_provider = \"pool\"", "env_key = \"POOL_API_KEY\""] {
        assert!(printed.contains(name), "the demo says {name}: {printed}");
        assert!(readme.contains(name), "the README says {name}");
    }

    let sb = Sandbox::new().await;
    let own = sb.path("home").join(".codex");
    std::fs::create_dir(&own).expect("~/.codex");
    std::fs::write(own.join("config.toml"), OWN_CONFIG).expect("own config");
    assert!(
        !sb.path("work").join(".git").exists(),
        "the clients run outside a git repository"
    );

    let codex = section(&printed, "Codex CLI");
    let said = run_printed(&sb, &codex, "codex", &client_bin("CODEX_BIN", "codex")).await;
    let work = sb.path("work");
    assert!(
        said.iter()
            .any(|s| s.contains("the tool returned") && s.contains(work.to_str().unwrap_or("-"))),
        "the printed tool prompt ran a command through Codex (pwd printed the work dir): {said:?}"
    );
    assert_eq!(
        std::fs::read_to_string(own.join("config.toml")).expect("own config"),
        OWN_CONFIG,
        "the user's ~/.codex/config.toml is untouched"
    );

    let claude = section(&printed, "Claude Code");
    let said = run_printed(&sb, &claude, "claude", &client_bin("CLAUDE_BIN", "claude")).await;
    assert!(
        said.iter()
            .any(|s| s.contains("the tool returned") && s.contains("Written by `codex-rotor demo`")),
        "the printed tool prompt made Claude Code read the demo's Codex config: {said:?}"
    );
    demo.stop("TERM");
}
