//! On-disk state: one JSON file per account under `<data_dir>/accounts/<id>.json`, written by
//! that account's actor through the [`Store`] trait. Each write is temp → fsync → rename → fsync
//! directory, so a crash leaves either the old or the new file, never half of one. At start a
//! corrupt or unreadable file is renamed aside (`<name>.corrupt-<unix>`) and named in a warning;
//! every other account still loads, and nothing is ever overwritten with an empty pool.

mod writer;

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
    writer: Arc<Writer>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore").field("dir", &self.dir).finish()
    }
}

impl FileStore {
    /// Opens (creating if needed) `<data_dir>/accounts` and loads every account in it. Corrupt
    /// files are quarantined and reported; the rest load.
    pub fn open(data_dir: &Path) -> io::Result<(FileStore, Vec<AccountRecord>, Vec<Quarantined>)> {
        let dir = data_dir.join(ACCOUNTS_DIR);
        fs::create_dir_all(&dir)?;
        let writer = Arc::new(Writer::start(dir.clone())?);
        let store = FileStore { dir, writer };
        let (mut records, mut quarantined) = (Vec::new(), Vec::new());
        let mut entries: Vec<PathBuf> = fs::read_dir(&store.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for path in entries {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".json.tmp") {
                // Leftover of a write interrupted before its rename: the real file is intact.
                let _ = fs::remove_file(&path);
                continue;
            }
            let Some(stem) = name.strip_suffix(".json") else {
                continue;
            };
            match read_record(&path, stem) {
                Ok(rec) => records.push(rec),
                Err(reason) => quarantined.push(quarantine(&path, reason)),
            }
        }
        records.sort_by(|a, b| (a.added_at, &a.id).cmp(&(b.added_at, &b.id)));
        Ok((store, records, quarantined))
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
        self.writer.write(self.path_of(&rec.id)?, rec, true)
    }

    fn save_coalesced(&self, rec: &AccountRecord) -> io::Result<()> {
        self.writer.write(self.path_of(&rec.id)?, rec, false)
    }

    fn remove(&self, id: &str) -> io::Result<()> {
        self.writer.remove(self.path_of(id)?)
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

fn read_record(path: &Path, stem: &str) -> Result<AccountRecord, String> {
    let bytes = fs::read(path).map_err(|e| format!("unreadable: {e}"))?;
    let rec: AccountRecord =
        serde_json::from_slice(&bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    if rec.id != stem {
        return Err(format!(
            "record id {:?} does not match its file name",
            rec.id
        ));
    }
    Ok(rec)
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
