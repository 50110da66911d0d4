//! `codex-rotor store migrate --from files --to postgres` (and back): moves every account of
//! one store into the other, which must hold none yet, then reads the target back and checks
//! that every record — tokens included — arrived unchanged. The source is left as it was, so
//! a failed or regretted move loses nothing; run it with the daemon stopped.

use rotor_actors::AccountRecord;
use serde::Serialize;

use super::postgres::records::{read_records, write_new};
use super::{DataDirLock, FileStore, OpenError, postgres_of};
use crate::config::access::process_env;
use crate::config::{Backend, Config};

/// `codex-rotor store …`
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: StoreAction,
}

/// The `store` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum StoreAction {
    /// Copy every account from one backend into the other (empty) one, and verify the copy.
    /// Uses `data_dir` and `[store]` (url/url_env and the key) of the config whatever its
    /// `backend` says; afterwards set `backend` to the target.
    Migrate {
        /// The store to read.
        #[arg(long, value_enum)]
        from: Backend,
        /// The store to fill.
        #[arg(long, value_enum)]
        to: Backend,
    },
}

/// Why a migration did not happen (nothing was changed unless it says so).
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// Same backend on both sides.
    #[error("--from and --to are both {0}: nothing to move")]
    Same(&'static str),
    /// One side could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The target already holds accounts.
    #[error(
        "the data directory already holds {0} accounts: migrate fills only an empty store \
         (nothing was changed)"
    )]
    NotEmpty(usize),
    /// The copy read back differs: the target is not to be used.
    #[error(
        "the copy does not read back equal ({0}); the source is unchanged, do not switch \
         the backend"
    )]
    Mismatch(String),
}

/// What a migration did.
#[derive(Debug, Serialize)]
pub struct MigrateReport {
    /// The backend read.
    pub from: &'static str,
    /// The backend filled.
    pub to: &'static str,
    /// Accounts moved (all of them, verified).
    pub accounts: usize,
}

/// Runs one migration with `cfg`'s data directory and `[store]` settings.
pub async fn migrate(
    cfg: &Config,
    from: Backend,
    to: Backend,
) -> Result<MigrateReport, MigrateError> {
    if from == to {
        return Err(MigrateError::Same(from.as_str()));
    }
    let (url, key) = postgres_of(&cfg.store, &process_env)?;
    let dir = &cfg.data_dir;
    let files_err = |source| OpenError::Files {
        dir: dir.clone(),
        source,
    };
    let _lock = DataDirLock::acquire(dir, "store migrate").map_err(OpenError::from)?;
    let (files, held, _) = FileStore::open(dir).map_err(files_err)?;
    let moved = match to {
        Backend::Postgres => {
            write_new(url.expose(), &key, &held)
                .await
                .map_err(OpenError::from)?;
            let back = read_records(url.expose(), &key)
                .await
                .map_err(OpenError::from)?;
            same(&held, back)?
        }
        Backend::Files => {
            if !held.is_empty() {
                return Err(MigrateError::NotEmpty(held.len()));
            }
            let source = read_records(url.expose(), &key)
                .await
                .map_err(OpenError::from)?;
            files.save_all(&source).map_err(files_err)?;
            drop(files);
            let (_, back, _) = FileStore::open(dir).map_err(files_err)?;
            same(&source, back)?
        }
    };
    Ok(MigrateReport {
        from: from.as_str(),
        to: to.as_str(),
        accounts: moved,
    })
}

/// Checks that `back` holds exactly the records of `sent` (in any order).
fn same(sent: &[AccountRecord], mut back: Vec<AccountRecord>) -> Result<usize, MigrateError> {
    let mut sent = sent.to_vec();
    sent.sort_by(|a, b| a.id.cmp(&b.id));
    back.sort_by(|a, b| a.id.cmp(&b.id));
    if sent.len() != back.len() {
        return Err(MigrateError::Mismatch(format!(
            "{} sent, {} read back",
            sent.len(),
            back.len()
        )));
    }
    if let Some((a, _)) = sent.iter().zip(&back).find(|(a, b)| a != b) {
        return Err(MigrateError::Mismatch(format!("account {} differs", a.id)));
    }
    Ok(sent.len())
}
