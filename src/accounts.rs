//! Adding, importing, exporting and listing accounts. [`import::parse_file`] reads any supported
//! file into records, all or nothing; [`merge`] applies the duplicate rules to the records of a
//! data directory when no daemon runs; [`add_one`] adds a record to a running daemon by the
//! same rule (its pool, or on a cluster node the shared database), for the admin API. The `accounts` CLI subcommand lives in [`cli`].

pub mod cli;
mod entry;
mod error;
pub mod export;
pub mod import;
pub mod list;
pub mod merge;
mod pool;

pub use entry::new_id;
pub use import::{ImportError, parse_file};
pub use list::ListedAccount;
pub use pool::{Target, add_one};

use rotor_actors::{AccountRecord, UnixMs};

/// The account record of a completed PKCE login (validated like any import).
pub fn login_record(
    tokens: &crate::oauth::LoginTokens,
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
