//! What the demo prints and writes so a newcomer can point Codex CLI, Claude Code and curl at
//! it by copy and paste (issue 15 item 16). The names are the README's (`model_provider =
//! "pool"`, `POOL_API_KEY`), so what works here works after the demo. Codex gets a home of its
//! own (`CODEX_HOME`, with a `config.toml` the demo writes), because the setup must never
//! overwrite the user's `~/.codex/config.toml`; its commands carry `--skip-git-repo-check`,
//! without which `codex exec` refuses to run outside a git repository. Each client gets a
//! prompt that makes the simulated model call a real tool of that client.

use super::Demo;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where the demo's Codex home goes, inside its data directory.
pub fn codex_home(data_dir: &Path) -> PathBuf {
    data_dir.join("codex-home")
}

/// The demo's Codex `config.toml`: the README's provider block pointed at `addr`, and Codex's
/// own outside traffic off, since the demo stays on this machine.
pub fn codex_config(addr: SocketAddr) -> String {
    format!(
        r#"# Written by `codex-rotor demo`: Codex CLI pointed at the demo's pool (the README's setup).
# Used through CODEX_HOME, so your own ~/.codex/config.toml is not touched.
model = "gpt-5.5"
model_provider = "pool"
# The demo stays on this machine: no update check, analytics, feedback or plugin sync.
check_for_update_on_startup = false
chatgpt_base_url = "http://{addr}/backend-api/"

[analytics]
enabled = false

[feedback]
enabled = false

[features]
plugins = false
remote_plugin = false

[model_providers.pool]
name = "Account pool"
base_url = "http://{addr}/v1"
wire_api = "responses"
env_key = "POOL_API_KEY"
"#
    )
}

/// Writes the demo's Codex home (`config.toml` only; Codex adds its sessions there).
pub fn write_codex_home(home: &Path, addr: SocketAddr) -> std::io::Result<()> {
    std::fs::create_dir_all(home)?;
    std::fs::write(home.join("config.toml"), codex_config(addr))
}

/// What the operator reads after `demo` started.
pub fn instructions(d: &Demo) -> String {
    let addr = d.daemon.addr;
    let key = &d.pool_key;
    let replaced = match d.replaced {
        0 => String::new(),
        n => format!(
            "             (replacing the {n} simulated accounts of an earlier demo: the simulator \
             starts empty each run)\n"
        ),
    };
    format!(
        r#"
codex-rotor demo is running
  daemon     http://{addr}   (in front of a simulated Codex backend at {sim})
  accounts   {n} simulated accounts, files in {dir}
{replaced}  pool key   {key}
  admin key  {admin}
  dashboard  http://{addr}/   (admin key)
  answers    come from the simulator and say so ("Simulated answer: …"); a prompt with
             "use the tool NAME with TEXT" makes it call the client's tool NAME

── curl ────────────────────────────────────────────────────────────────
curl -N http://{addr}/v1/responses \
  -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \
  -d '{{"model":"gpt-5.5","stream":true,"input":"Say hello"}}'
curl -s http://{addr}/admin/pool -H "Authorization: Bearer {admin}"

── Codex CLI (a Codex home of its own: your ~/.codex is not touched) ────
The demo wrote {home}/config.toml, the README's setup:
    model_provider = "pool"
    [model_providers.pool]
    name = "Account pool"
    base_url = "http://{addr}/v1"
    wire_api = "responses"
    env_key = "POOL_API_KEY"
(plus update checks and analytics off). In another terminal:
export CODEX_HOME={home}
export POOL_API_KEY={key}
codex exec --skip-git-repo-check "say hello"
codex exec --skip-git-repo-check "use the tool exec_command with pwd"
(--skip-git-repo-check: codex exec refuses to run outside a git repository without it)

── Claude Code ──────────────────────────────────────────────────────────
export ANTHROPIC_BASE_URL=http://{addr}
export ANTHROPIC_API_KEY={key}
export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1   # no telemetry or update checks
claude -p "say hello"
claude -p "use the tool Read on {home}/config.toml" --add-dir {home}
(--add-dir: Claude Code reads outside the current directory only where it is allowed to)

Press Ctrl-C to stop.
"#,
        sim = d.sim.base_url(),
        n = d.sim.accounts().len(),
        dir = d.data_dir.display(),
        admin = d.admin_key,
        home = d.codex_home.display(),
    )
}
