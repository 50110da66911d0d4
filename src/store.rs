//! On-disk state: one JSON file per account under `<data_dir>/accounts/<id>.json`, written by
//! that account's actor through the [`Store`] trait. Each write is temp → fsync → rename → fsync
//! directory, so a crash leaves either the old or the new file, never half of one. At start a
//! corrupt file is renamed aside (`<name>.corrupt-<unix>`) and named in a warning; an entry that
//! cannot be read (not a regular file, wrong owner or mode) is named and left in place, so it
//! loads again once fixed; of two files for one upstream account the newer is kept and the
//! other quarantined. Every other account still loads, and nothing is ever overwritten with an
//! empty pool. A data directory has one owner at a time ([`DataDirLock`]); an offline batch of
//! writes lands all or nothing ([`FileStore::save_all`]).

mod backend;
mod batch;
mod lease;
mod lock;
pub mod migrate;
pub mod postgres;
mod scan;
mod seal;
mod writer;

pub use backend::{OpenError, Opened, open, postgres_of};
pub use lease::{LeaseStore, Verdict};
pub use lock::{DataDirLock, LOCK_FILE, LockError};
pub use scan::{MAX_RECORD_BYTES, Skipped};
pub use seal::{SealError, StoreKey};

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rotor_actors::{AccountRecord, Store};
use writer::Writer;

/// Sub-directory of the data directory that holds the account files.
pub const ACCOUNTS_DIR: &str = "accounts";

/// A file that could not be loaded and was moved aside.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Quarantined {
    /// Where the file was.
    pub path: PathBuf,
    /// Where it is now (`None` if even the rename failed).
    pub moved_to: Option<PathBuf>,
    /// Why it could not be loaded.
    pub reason: String,
}

/// Per-account JSON files in one directory.
#[derive(Clone)]
pub struct FileStore {
    /// `<data_dir>/accounts`.
    dir: PathBuf,
    /// The thread that does every write and removal (off the runtime's worker threads, in
    /// order per account); see [`writer`].
    writer: Arc<Writer<PathBuf>>,
    /// Entries of the directory that were not read at open and left in place.
    skipped: Arc<Vec<Skipped>>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore").field("dir", &self.dir).finish()
    }
}

impl FileStore {
    /// Opens (creating if needed) `<data_dir>/accounts` and loads every account in it. Corrupt
    /// files and older duplicates of an account are quarantined and reported; unreadable
    /// entries are named in a warning, left in place and listed by [`skipped`](Self::skipped);
    /// the rest load.
    pub fn open(data_dir: &Path) -> io::Result<(FileStore, Vec<AccountRecord>, Vec<Quarantined>)> {
        let dir = data_dir.join(ACCOUNTS_DIR);
        fs::create_dir_all(&dir)?;
        batch::recover(&dir)?;
        let found = scan::scan(&dir)?;
        for leftover in &found.leftovers {
            // An interrupted write's temp file: the real file is intact.
            let _ = fs::remove_file(leftover);
        }
        let mut quarantined: Vec<Quarantined> = (found.corrupt.into_iter())
            .map(|(path, reason)| quarantine(&path, reason))
            .collect();
        for s in &found.skipped {
            tracing::warn!(file = %s.path.display(), reason = %s.reason, "account file not read; left in place, it loads once it is a readable regular file");
        }
        let (kept, duplicates) = scan::dedup(found.records);
        for d in duplicates {
            tracing::warn!(file = %d.path.display(), kept = %d.kept.display(), "two account files hold the same upstream account: keeping the one with the newer tokens, quarantining the other");
            let reason = format!(
                "duplicate of {}: the same upstream account, with older tokens",
                d.kept.display()
            );
            quarantined.push(quarantine(&d.path, reason));
        }
        let sink = writer::Files { dir: dir.clone() };
        let writer = Arc::new(Writer::start("account-writer", sink)?);
        let store = FileStore {
            dir,
            writer,
            skipped: Arc::new(found.skipped),
        };
        Ok((
            store,
            kept.into_iter().map(|(_, r)| r).collect(),
            quarantined,
        ))
    }

    /// Entries of `accounts/` that were not read at open (not regular files, or unreadable
    /// for this process) and were left where they are.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// The directory holding the account files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of one account's file (the id must be a safe file name).
    pub fn path_of(&self, id: &str) -> io::Result<PathBuf> {
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid account id {id:?}"),
            ));
        }
        Ok(self.dir.join(format!("{id}.json")))
    }
}

impl Store for FileStore {
    fn save(&self, rec: &AccountRecord) -> io::Result<()> {
        self.writer.write(self.path_of(&rec.id)?, rec, None, true)
    }

    fn save_coalesced(&self, rec: &AccountRecord) -> io::Result<()> {
        self.writer.write(self.path_of(&rec.id)?, rec, None, false)
    }

    fn remove(&self, id: &str) -> io::Result<()> {
        self.writer.remove(self.path_of(id)?, None)
    }

    fn load(&self, id: &str) -> io::Result<Option<AccountRecord>> {
        let path = self.path_of(id)?;
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Renames a bad file to `<name>.corrupt-<unix>` and logs it; never deletes anything.
fn quarantine(path: &Path, reason: String) -> Quarantined {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("account");
    let mut target = path.with_file_name(format!("{name}.corrupt-{unix}"));
    let mut n = 1;
    while target.exists() {
        target = path.with_file_name(format!("{name}.corrupt-{unix}-{n}"));
        n += 1;
    }
    let moved_to = fs::rename(path, &target).ok().map(|()| target);
    tracing::warn!(
        file = %path.display(),
        moved_to = ?moved_to.as_ref().map(|p| p.display().to_string()),
        %reason,
        "account file could not be loaded; quarantined it, the other accounts still load"
    );
    Quarantined {
        path: path.to_path_buf(),
        moved_to,
        reason,
    }
}
