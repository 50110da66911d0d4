//! An offline import writes many account files; killed midway it must land all or nothing.
//! [`FileStore::save_all`] stages every record as `<id>.json.staged` (written and fsynced),
//! then commits by putting `import.journal` (the list of staged ids) in place, then renames the
//! staged files over their targets and removes the journal. [`recover`], run by every
//! `FileStore::open`, finishes a committed batch whose process died while renaming, and drops
//! the staged files of one that died before committing. Only for writers that hold the data
//! directory's lock with no account actor running (the offline `accounts` command).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use rotor_actors::AccountRecord;

use super::FileStore;

/// The commit record of a batch: one staged account id per line.
const JOURNAL: &str = "import.journal";
/// Suffix of a staged record.
const STAGED: &str = ".json.staged";

impl FileStore {
    /// Writes `recs` all or nothing (see the module doc). Offline only: the account actors of
    /// a running daemon write through [`Store`](rotor_actors::Store), one file at a time.
    pub fn save_all(&self, recs: &[AccountRecord]) -> io::Result<()> {
        if recs.is_empty() {
            return Ok(());
        }
        let dir = self.dir();
        let mut ids = String::new();
        for rec in recs {
            let target = self.path_of(&rec.id)?;
            let bytes = serde_json::to_vec_pretty(rec).map_err(io::Error::other)?;
            write_synced(&target.with_extension("json.staged"), &bytes)?;
            ids.push_str(&rec.id);
            ids.push('\n');
        }
        let tmp = dir.join(format!("{JOURNAL}.tmp"));
        write_synced(&tmp, ids.as_bytes())?;
        fs::rename(&tmp, dir.join(JOURNAL))?;
        sync_dir(dir)?;
        apply(dir, &ids)
    }
}

/// Finishes or drops a batch an earlier process left behind (see the module doc).
pub(super) fn recover(dir: &Path) -> io::Result<()> {
    match fs::read_to_string(dir.join(JOURNAL)) {
        Ok(ids) => {
            tracing::warn!(dir = %dir.display(), "an offline import was interrupted after it committed; completing it");
            apply(dir, &ids)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let _ = fs::remove_file(dir.join(format!("{JOURNAL}.tmp")));
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in rd.filter_map(Result::ok) {
        if entry.file_name().to_string_lossy().ends_with(STAGED) {
            tracing::warn!(file = %entry.path().display(), "dropping a record of an offline import that was interrupted before it committed");
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Renames every staged record of the committed batch `ids` into place, then ends the batch.
fn apply(dir: &Path, ids: &str) -> io::Result<()> {
    for (i, id) in ids.lines().filter(|l| !l.is_empty()).enumerate() {
        let staged = dir.join(format!("{id}{STAGED}"));
        match fs::rename(&staged, dir.join(format!("{id}.json"))) {
            Ok(()) => {}
            // Renamed before an interruption: already in place.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if i == 0 {
            rotor_actors::fault::point(rotor_actors::fault::IMPORT_MIDWAY);
        }
    }
    sync_dir(dir)?;
    fs::remove_file(dir.join(JOURNAL))?;
    sync_dir(dir)
}

/// Writes a private file and fsyncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Makes renames in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
