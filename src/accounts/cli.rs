//! `codex-rotor accounts …`: add, import, export and list accounts. With no daemon running the
//! command works on the data directory directly through `store::FileStore` (each changed account
//! written durably on its own); when the daemon the config describes answers at its address (or
//! with `--admin-url`) it sends the same operation to the daemon's admin API, because then the
//! account actors own the files and nobody else may write them. Tokens are read from files or
//! stdin (`-`) so they need not sit in the shell history.

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use rotor_actors::{AccountRecord, UnixMs};
use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::{export, merge};
use crate::config::GlobalArgs;

/// Arguments of `codex-rotor accounts`. `Debug` redacts the admin key.
#[derive(Args)]
pub struct AccountsArgs {
    /// Work on this data directory directly (offline: the daemon must not be running on it).
    /// Without it, a daemon running at the config's `server.listen` is used through its admin
    /// API, else the config's `data_dir`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Admin API of a running daemon (e.g. `http://127.0.0.1:8080`); use it whenever the daemon
    /// is running, so its account actors stay the only writers of their files.
    #[arg(long, env = "CODEX_ROTOR_ADMIN_URL")]
    pub admin_url: Option<String>,
    /// Admin key for `--admin-url`.
    #[arg(long, env = "CODEX_ROTOR_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub action: AccountsAction,
}

/// The `accounts` actions.
#[derive(Debug, Subcommand)]
pub enum AccountsAction {
    /// Add one account from a Codex CLI auth.json, a refresh token or an access token.
    Add(AddArgs),
    /// Import every account of a file (predecessor accounts.json, auth.json, JSON lines, or one
    /// token per line); all or nothing.
    Import {
        /// The file (`-` = stdin).
        file: PathBuf,
    },
    /// Print all accounts as JSON with their tokens (keep the output secret).
    Export {
        /// Only refresh tokens and labels.
        #[arg(long)]
        minimal: bool,
    },
    /// List accounts (never tokens).
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Why an account can or cannot serve now — each hold (refusal or Cloudflare cooldown,
    /// exhausted quota window, model family not in the plan, status …) and until when. Asks
    /// a running daemon: cooldowns live in its account actors.
    Explain {
        /// The account id (as `accounts list` shows it).
        id: String,
        /// The admin API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Where the new account's credentials come from (exactly one). `Debug` redacts the tokens.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct AddArgs {
    /// A Codex CLI auth.json (`~/.codex/auth.json`).
    #[arg(long, value_name = "PATH")]
    pub auth_json: Option<PathBuf>,
    /// A refresh token (`rt_…`); `-` reads it from stdin.
    #[arg(long, value_name = "T")]
    pub refresh_token: Option<String>,
    /// An access token (JWT); `-` reads it from stdin. Without a refresh token the account
    /// stops working when it expires.
    #[arg(long, value_name = "T")]
    pub access_token: Option<String>,
}

impl std::fmt::Debug for AccountsArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountsArgs")
            .field("data_dir", &self.data_dir)
            .field("admin_url", &self.admin_url)
            .field("admin_key", &self.admin_key.as_ref().map(|_| "<redacted>"))
            .field("action", &self.action)
            .finish()
    }
}

impl std::fmt::Debug for AddArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddArgs")
            .field("auth_json", &self.auth_json)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Runs `codex-rotor accounts`: through `--admin-url` if given; else through the admin API
/// of the daemon the config describes, if it is running (its actors own the files then); else
/// on the data directory (`--data-dir`, or the config's `data_dir`).
pub async fn run(global: &GlobalArgs, args: AccountsArgs) -> anyhow::Result<()> {
    let now = now_ms();
    if let Some(url) = &args.admin_url {
        return remote(&args, url, args.admin_key.clone()).await;
    }
    if let Some(dir) = &args.data_dir {
        return local(&args, dir, now);
    }
    let cfg = global.load_config()?;
    if let Some(base) = running_daemon(&cfg).await {
        crate::errln!("codex-rotor is running at {base}: using its admin API");
        let key = match &args.admin_key {
            Some(k) => Some(k.clone()),
            None => cfg
                .admin
                .resolve(&crate::config::access::process_env)
                .map_err(|e| anyhow::anyhow!("admin key: {e}"))?
                .map(|s| s.expose().clone()),
        };
        return remote(&args, &base, key).await;
    }
    if cfg.store.backend == crate::config::Backend::Postgres {
        return database(&args, &cfg, now).await;
    }
    local(&args, &cfg.data_dir, now)
}

/// `list` / `export` straight from the database of `[store]`; `import` / `add` merge into it in
/// one transaction while no node runs (`import_offline` refuses, changing nothing, while a
/// node session is live; a single daemon answering at the config's address was already used
/// through its admin API by [`run`]).
async fn database(
    args: &AccountsArgs,
    cfg: &crate::config::Config,
    now: UnixMs,
) -> anyhow::Result<()> {
    if let AccountsAction::Explain { .. } = args.action {
        return Err(explain_needs_a_daemon());
    }
    let incoming = match import_bytes(&args.action)? {
        Some(bytes) => Some(super::import::parse_file(&bytes, now)?),
        None => None,
    };
    let (url, key) = crate::store::postgres_of(&cfg.store, &crate::config::access::process_env)?;
    let Some(incoming) = incoming else {
        let records = crate::store::postgres::records::read_records(url.expose(), &key).await?;
        return print_records(&args.action, &records, now);
    };
    let report = crate::store::postgres::records::import_offline(url.expose(), &key, |existing| {
        merge::merge(existing, incoming)
    })
    .await
    .context("could not import into the database")?;
    print_report(&report)
}

/// The admin base URL of the daemon `cfg` describes, if one answers `/healthz` there.
async fn running_daemon(cfg: &crate::config::Config) -> Option<String> {
    let mut addr = cfg.server.listen;
    if addr.port() == 0 {
        return None;
    }
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let base = format!(
        "http://{addr}{}",
        cfg.server.path_prefix.trim_end_matches('/')
    );
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .ok()?;
    let resp = client.get(format!("{base}/healthz")).send().await.ok()?;
    resp.status().is_success().then_some(base)
}

/// The bytes to import for an action that imports (`add`, `import`).
fn import_bytes(action: &AccountsAction) -> anyhow::Result<Option<Vec<u8>>> {
    Ok(match action {
        AccountsAction::Import { file } => Some(read_path(file)?),
        AccountsAction::Add(add) => Some(add_bytes(add)?),
        _ => None,
    })
}

/// `add` reuses the import parser: an auth.json is a file, a token is a one-line file.
fn add_bytes(add: &AddArgs) -> anyhow::Result<Vec<u8>> {
    if let Some(p) = &add.auth_json {
        return read_path(p);
    }
    let token = add
        .refresh_token
        .as_ref()
        .or(add.access_token.as_ref())
        .context("nothing to add")?;
    let token = if token == "-" {
        String::from_utf8(read_path(Path::new("-"))?)?
    } else {
        token.clone()
    };
    let token = token.trim();
    if add.refresh_token.is_some() && rotor_actors::jwt::is_jwt(token) {
        bail!("--refresh-token: this is a JWT access token; use --access-token");
    }
    if add.refresh_token.is_some() && !(token.starts_with("rt_") || token.starts_with("oaistb_rt_"))
    {
        bail!("--refresh-token: expected a refresh token starting with rt_ or oaistb_rt_");
    }
    Ok(format!("{token}\n").into_bytes())
}

/// `accounts explain` without a daemon: cooldowns live only in the account actors.
fn explain_needs_a_daemon() -> anyhow::Error {
    anyhow::anyhow!(
        "`accounts explain` asks a running daemon (cooldowns live in its account actors): start `codex-rotor serve`, or pass --admin-url"
    )
}

/// Works on the data directory (no daemon running), holding its lock: a daemon serving it
/// would never see what is written here, so then this refuses and points to `--admin-url`.
fn local(args: &AccountsArgs, dir: &Path, now: UnixMs) -> anyhow::Result<()> {
    if let AccountsAction::Explain { .. } = args.action {
        return Err(explain_needs_a_daemon());
    }
    let incoming = match import_bytes(&args.action)? {
        Some(bytes) => Some(super::import::parse_file(&bytes, now)?),
        None => None,
    };
    if incoming.is_none() && !dir.exists() {
        // Reading creates nothing: no directory, no accounts yet.
        crate::errln!("no data directory at {} (no accounts yet)", dir.display());
        return print_records(&args.action, &[], now);
    }
    let _lock = crate::store::DataDirLock::acquire(dir, "accounts").map_err(busy)?;
    let (store, mut records, quarantined) = crate::store::FileStore::open(dir)
        .with_context(|| format!("cannot open the data directory {}", dir.display()))?;
    for q in &quarantined {
        crate::errln!("warning: quarantined unreadable account file: {q:?}");
    }
    for s in store.skipped() {
        crate::errln!(
            "warning: {} not read ({}); left in place",
            s.path.display(),
            s.reason
        );
    }
    let Some(incoming) = incoming else {
        return print_records(&args.action, &records, now);
    };
    let (report, changed) = merge::merge(&mut records, incoming);
    store
        .save_all(&changed)
        .context("could not write the imported accounts (nothing was imported)")?;
    print_report(&report)
}

/// The error of a data directory some process already holds, with where to go instead.
fn busy(e: crate::store::LockError) -> anyhow::Error {
    match &e {
        crate::store::LockError::Busy {
            listen: Some(addr), ..
        } => anyhow::anyhow!(
            "{e}; nothing was changed. While the daemon runs, its account actors own the files: use its admin API, e.g. `codex-rotor accounts --admin-url http://{addr} …`"
        ),
        crate::store::LockError::Busy { .. } => anyhow::anyhow!(
            "{e}; nothing was changed. If a daemon serves this directory, use its admin API (`--admin-url`)"
        ),
        crate::store::LockError::Io { .. } => anyhow::Error::new(e),
    }
}

/// `export` / `list` of loaded records.
fn print_records(
    action: &AccountsAction,
    records: &[AccountRecord],
    now: UnixMs,
) -> anyhow::Result<()> {
    match action {
        AccountsAction::Export { minimal } => print_export(records, *minimal),
        AccountsAction::List { json } => print_list(records, *json, now),
        AccountsAction::Add(_) | AccountsAction::Import { .. } | AccountsAction::Explain { .. } => {
            Ok(())
        }
    }
}

/// Prints an import report: the one format of `add` and `import`, offline and via a daemon.
fn print_report(report: &merge::MergeReport) -> anyhow::Result<()> {
    crate::outln!("{}", serde_json::to_string_pretty(report)?)?;
    Ok(())
}

/// Sends the operation to a running daemon's admin API and prints the answer in the same
/// format as the offline command.
async fn remote(args: &AccountsArgs, base: &str, key: Option<String>) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let base = base.trim_end_matches('/');
    let auth = |rb: reqwest::RequestBuilder| match &key {
        Some(k) => rb.bearer_auth(k),
        None => rb,
    };
    let req = match (&args.action, import_bytes(&args.action)?) {
        (_, Some(bytes)) => client
            .post(format!("{base}/admin/accounts/import"))
            .body(bytes),
        (AccountsAction::Export { .. }, None) => {
            client.get(format!("{base}/admin/accounts/export"))
        }
        (AccountsAction::Explain { id, .. }, None) => {
            client.get(format!("{base}/admin/accounts/{id}/explain"))
        }
        (_, None) => client.get(format!("{base}/admin/accounts")),
    };
    let resp = auth(req).send().await.context("admin API unreachable")?;
    let status = resp.status();
    let text = resp.text().await.context("admin API answer")?;
    if !status.is_success() {
        bail!("admin API answered {status}: {text}");
    }
    let doc: serde_json::Value =
        serde_json::from_str(&text).context("the admin API answer is not JSON")?;
    match &args.action {
        AccountsAction::Export { minimal: true } => {
            // The admin export is the full form; keep only refresh tokens and labels here.
            crate::outln!(
                "{}",
                serde_json::to_string_pretty(&export::minimal_of_full(&doc))?
            )?;
        }
        AccountsAction::Export { minimal: false } => crate::outln!("{text}")?,
        AccountsAction::List { json } => {
            let rows = super::ListedAccount::of_admin_list(&doc, now_ms())
                .map_err(|e| anyhow::anyhow!(e))?;
            super::list::print(&rows, *json)?;
        }
        AccountsAction::Explain { json: true, .. } => crate::outln!("{text}")?,
        AccountsAction::Explain { id, json: false } => {
            crate::outln!("{}", explanation_text(id, &doc, now_ms()))?;
        }
        AccountsAction::Add(_) | AccountsAction::Import { .. } => {
            let report: merge::MergeReport =
                serde_json::from_value(doc.clone()).context("unexpected admin import answer")?;
            print_report(&report)?;
            let failed: Vec<String> = doc["results"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(|r| r["error"].as_str().map(str::to_owned))
                .collect();
            if !failed.is_empty() {
                bail!(
                    "{} account(s) not imported: {}",
                    failed.len(),
                    failed.join("; ")
                );
            }
        }
    }
    Ok(())
}

/// The text of an admin explain answer: whether the account serves, then one line per hold
/// with its kind, the reason and until when (absolute and relative).
fn explanation_text(id: &str, doc: &serde_json::Value, now: UnixMs) -> String {
    let when = |ms: i64| {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0).unsigned_abs());
        let left = std::time::Duration::from_secs(((ms - now) / 1000).max(0).unsigned_abs());
        format!(
            "until {} (in {})",
            humantime::format_rfc3339_seconds(at),
            humantime::format_duration(left)
        )
    };
    let mut out = if doc["available"].as_bool() == Some(true) {
        format!("{id}: available now")
    } else {
        format!("{id}: not available")
    };
    for h in doc["holds"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let until = h["until"].as_i64().map(when).unwrap_or_default();
        out.push_str(&format!(
            "\n  {}: {} {until}",
            h["kind"].as_str().unwrap_or("hold"),
            h["reason"].as_str().unwrap_or_default()
        ));
    }
    out.trim_end().to_owned()
}

/// Prints an export.
fn print_export(records: &[AccountRecord], minimal: bool) -> anyhow::Result<()> {
    let doc = if minimal {
        export::minimal(records)
    } else {
        export::full(records)
    };
    crate::outln!("{}", serde_json::to_string_pretty(&doc)?)?;
    Ok(())
}

/// Prints the accounts (never tokens).
fn print_list(records: &[AccountRecord], json: bool, now: UnixMs) -> anyhow::Result<()> {
    super::list::print(&super::ListedAccount::of_records(records, now), json)
}

/// Reads a file, or stdin for `-`.
fn read_path(p: &Path) -> anyhow::Result<Vec<u8>> {
    if p == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading stdin")?;
        return Ok(buf);
    }
    std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
}

/// Wall-clock now in unix ms (the CLI's edge of the injected clock).
fn now_ms() -> UnixMs {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    UnixMs::try_from(d.as_millis()).unwrap_or(UnixMs::MAX)
}
