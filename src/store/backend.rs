//! Opening the store `[store]` names (docs/cluster.md "Storage backends"): the account files
//! of `data_dir` under its lock, or the PostgreSQL database with its key. The daemon and the
//! commands get one [`Opened`] either way and talk to it through [`Store`].

use std::path::PathBuf;
use std::sync::Arc;

use rotor_actors::{AccountRecord, Store};

use super::postgres::DbError;
use super::postgres::records::PgStore;
use super::{DataDirLock, FileStore, LockError, Quarantined, StoreKey};
use crate::config::access::{EnvLookup, process_env};
use crate::config::{Backend, Config, Secret, StoreConfig};

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// `[store]` is incomplete (the key is the config key to fix).
    #[error("{key}: {message}")]
    Config {
        /// The dotted config key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// Another process holds the data directory.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The data directory could not be read.
    #[error("opening the data directory {dir}: {source}")]
    Files {
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The database refused or failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A store, open, with what it held.
pub struct Opened {
    /// Where the account actors write.
    pub store: Arc<dyn Store>,
    /// The accounts it held.
    pub records: Vec<AccountRecord>,
    /// Account files moved aside at open (files only).
    pub quarantined: Vec<Quarantined>,
    /// The data directory's lock, held while serving (files only: the database fences
    /// concurrent writers itself).
    pub lock: Option<DataDirLock>,
    /// The PostgreSQL store, for its counters (postgres only).
    pub postgres: Option<Arc<PgStore>>,
    /// The database's connection string (postgres only): a cluster node's lease loops open
    /// their own connections with it.
    pub postgres_url: Option<Secret>,
}

/// The connection string and the key of a `postgres` store.
pub fn postgres_of(cfg: &StoreConfig, env: EnvLookup<'_>) -> Result<(Secret, StoreKey), OpenError> {
    let config = |(key, message)| OpenError::Config { key, message };
    let url = cfg.resolve_url(env).map_err(config)?;
    let (text, source) = cfg.resolve_key(env).map_err(config)?;
    let key = StoreKey::parse(text.expose(), &source).map_err(|e| OpenError::Config {
        key: if cfg.key_file.is_some() {
            "store.key_file"
        } else {
            "store.key_env"
        }
        .into(),
        message: e.to_string(),
    })?;
    Ok((url, key))
}

/// Opens the store of `cfg` for a writer (`purpose` is named in the lock file).
pub async fn open(cfg: &Config, purpose: &str) -> Result<Opened, OpenError> {
    match cfg.store.backend {
        Backend::Files if cfg.cluster.enabled => Err(OpenError::Config {
            key: "cluster.enabled".into(),
            message: "cluster mode needs the shared store: set [store] backend = \"postgres\""
                .into(),
        }),
        Backend::Files => {
            let lock = DataDirLock::acquire(&cfg.data_dir, purpose)?;
            let (store, records, quarantined) =
                FileStore::open(&cfg.data_dir).map_err(|source| OpenError::Files {
                    dir: cfg.data_dir.clone(),
                    source,
                })?;
            Ok(Opened {
                store: Arc::new(store),
                records,
                quarantined,
                lock: Some(lock),
                postgres: None,
                postgres_url: None,
            })
        }
        Backend::Postgres => {
            let (url, key) = postgres_of(&cfg.store, &process_env)?;
            // A cluster node takes no account at open: it claims its share by the lease
            // rules (docs/cluster.md "How a node runs"); a single node takes them all.
            let (store, records) = if cfg.cluster.enabled {
                (
                    PgStore::open_for_cluster(url.expose(), key).await?,
                    Vec::new(),
                )
            } else {
                PgStore::open(url.expose(), key).await?
            };
            let store = Arc::new(store);
            Ok(Opened {
                store: store.clone(),
                records,
                quarantined: Vec::new(),
                lock: None,
                postgres: Some(store),
                postgres_url: Some(url),
            })
        }
    }
}
