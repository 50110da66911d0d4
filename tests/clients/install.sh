# Sourced by tests/run (not run on its own): installs the REAL Codex CLI and Claude Code, at the
# exact versions pinned in tests/clients/node/package.json + package-lock.json, into
# tests/clients/node/node_modules when they are missing or at another version, then exports
# CODEX_BIN and CLAUDE_BIN for tests/it/clients.rs. Needs Node.js + npm (installed with apt-get
# when running as root). Expects $root (the repository root) and say() from tests/run.

clients_dir="$root/tests/clients/node"
clients_mods="$clients_dir/node_modules"

# The version a package in node_modules has, or nothing.
clients_installed() { node -p "require('$clients_mods/$1/package.json').version" 2>/dev/null || true; }
# The version package.json pins.
clients_pinned() { node -p "require('$clients_dir/package.json').dependencies['$1']"; }

if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        say "installing nodejs and npm (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
    else
        say "missing: node/npm — install Node.js (e.g. sudo apt-get install nodejs npm) and rerun"
        exit 1
    fi
fi

if [ "$(clients_installed @openai/codex)" != "$(clients_pinned @openai/codex)" ] \
    || [ "$(clients_installed @anthropic-ai/claude-code)" != "$(clients_pinned @anthropic-ai/claude-code)" ] \
    || [ ! -x "$clients_mods/.bin/codex" ] || [ ! -x "$clients_mods/.bin/claude" ]; then
    say "installing the real Codex CLI and Claude Code (npm ci in tests/clients/node)"
    npm ci --prefix "$clients_dir" --no-audit --no-fund --loglevel=error
fi

# Claude Code's bin/claude.exe is a placeholder until its postinstall links the native binary;
# a npm that skipped install scripts leaves the placeholder, so run the postinstall ourselves.
if ! "$clients_mods/.bin/claude" --version >/dev/null 2>&1; then
    say "linking Claude Code's native binary (node install.cjs)"
    (cd "$clients_mods/@anthropic-ai/claude-code" && node install.cjs)
fi

export CODEX_BIN="$clients_mods/.bin/codex"
export CLAUDE_BIN="$clients_mods/.bin/claude"
