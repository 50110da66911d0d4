//! Adding, importing, exporting and listing accounts. [`import::parse_file`] reads any supported
//! file into records, all or nothing; [`merge`] applies the duplicate rules to the records of a
//! data directory when no daemon runs; [`import_into_pool`] and [`export_from_pool`] do the same
//! against a running pool, for the admin API. The `accounts` CLI subcommand lives in [`cli`].

pub mod cli;
mod entry;
pub mod export;
pub mod import;
pub mod merge;
mod pool;

pub use entry::new_id;
pub use import::{ImportError, parse_file};
pub use pool::{
    AddRequest, PoolImportError, add_one, add_to_pool, export_from_pool, import_into_pool,
};

use rotor_actors::{AccountRecord, UnixMs};
use serde::Serialize;

/// One account as `accounts list` shows it: identity and lifecycle, never tokens.
#[derive(Debug, Clone, Serialize)]
pub struct ListedAccount {
    /// Daemon account id.
    pub id: String,
    /// Email from the token claims.
    pub email: Option<String>,
    /// Subscription plan.
    pub plan: Option<String>,
    /// Operator label.
    pub label: Option<String>,
    /// Lifecycle status (`active`, `expired`…).
    pub status: String,
    /// Why, when not active (e.g. "needs login").
    pub status_reason: Option<String>,
    /// Token state for humans: "expires in 42m", "expired", "refresh only", "no refresh token".
    pub token: String,
}

impl ListedAccount {
    /// The listing of one record at `now`.
    pub fn of(rec: &AccountRecord, now: UnixMs) -> Self {
        let has_rt = rec.tokens.refresh_token.is_some();
        let token = match (rec.tokens.access_token.is_empty(), rec.tokens.expires_at) {
            (true, _) if has_rt => "refresh only".to_owned(),
            (_, Some(exp)) if exp > now => format!("expires in {}", relative(exp - now)),
            (_, Some(_)) if has_rt => "expired (will refresh)".to_owned(),
            (_, Some(_)) => "expired".to_owned(),
            (_, None) if has_rt => "unknown expiry".to_owned(),
            (_, None) => "no refresh token".to_owned(),
        };
        ListedAccount {
            id: rec.id.clone(),
            email: rec.identity.email.clone(),
            plan: rec.identity.plan.clone(),
            label: rec.identity.label.clone(),
            status: rec.status.as_str().to_owned(),
            status_reason: rec.status_reason.clone(),
            token,
        }
    }
}

/// A duration in ms as a short human string ("42s", "5m", "3h", "2d").
fn relative(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        ..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// The account record of a completed PKCE login (validated like any import).
pub fn login_record(
    tokens: &crate::oauth::login::LoginTokens,
    now: UnixMs,
) -> Result<AccountRecord, ImportError> {
    let mut obj = serde_json::Map::new();
    obj.insert("access_token".into(), tokens.access_token.clone().into());
    if let Some(rt) = &tokens.refresh_token {
        obj.insert("refresh_token".into(), rt.clone().into());
    }
    if let Some(id) = &tokens.id_token {
        obj.insert("id_token".into(), id.clone().into());
    }
    entry::from_object(&obj, "login", now)
}
