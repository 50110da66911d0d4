//! Reading `<data_dir>/accounts` without changing it: every `<id>.json` entry becomes a
//! record, a corrupt file (to be quarantined by the caller), or a skipped entry — one that is
//! not a regular file (a FIFO, a directory, a device) or that this process cannot read (wrong
//! owner or mode, a symlink to a volume not mounted yet). A skipped entry is only named: moving
//! it would lose the account once its owner fixes it, and reading a FIFO would block start-up
//! forever. Only regular files are opened (metadata first, then `O_NONBLOCK`, then `fstat` of
//! the open file), and at most [`MAX_RECORD_BYTES`] are read.
//!
//! Two files that hold one upstream account (a backup restored under another name) are found
//! here too, by the pool's one import rule: the one with the newer tokens is kept.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use rotor_actors::{AccountIndex, AccountRecord, Freshness, freshness};

/// Largest account file read: a record is a few kilobytes; anything bigger is not one.
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

/// An entry of `accounts/` that was neither loaded nor moved, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// The entry (left where it is).
    pub path: PathBuf,
    /// Why it was not read: "not a regular file (a FIFO)", "cannot read: Permission denied"….
    pub reason: String,
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Loaded records, each with its file, sorted by (added_at, id).
    pub records: Vec<(PathBuf, AccountRecord)>,
    /// Files that are not valid records, with the reason (to quarantine).
    pub corrupt: Vec<(PathBuf, String)>,
    /// Entries left alone.
    pub skipped: Vec<Skipped>,
    /// Leftover temp files of interrupted writes (the real file is intact).
    pub leftovers: Vec<PathBuf>,
}

/// One entry, read.
enum Entry {
    /// A valid record.
    Record(Box<AccountRecord>),
    /// Not a valid record: quarantine.
    Corrupt(String),
    /// Not read: leave it and name it.
    Skip(String),
}

/// Reads every `*.json` entry of `dir` (an absent `dir` has none).
pub fn scan(dir: &Path) -> io::Result<Scan> {
    let mut out = Scan::default();
    let mut entries: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    entries.sort();
    for path in entries {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(".json.tmp") {
            out.leftovers.push(path);
            continue;
        }
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        match read_entry(&path, stem) {
            Entry::Record(rec) => out.records.push((path, *rec)),
            Entry::Corrupt(reason) => out.corrupt.push((path, reason)),
            Entry::Skip(reason) => out.skipped.push(Skipped { path, reason }),
        }
    }
    out.records
        .sort_by(|(_, a), (_, b)| (a.added_at, &a.id).cmp(&(b.added_at, &b.id)));
    Ok(out)
}

/// Reads one entry: regular files only, never blocking, at most [`MAX_RECORD_BYTES`].
fn read_entry(path: &Path, stem: &str) -> Entry {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return Entry::Skip(format!("cannot read: {e}")),
    };
    if !meta.is_file() {
        return Entry::Skip(format!("not a regular file ({})", kind_of(&meta)));
    }
    let mut file = match open_nonblocking(path) {
        Ok(f) => f,
        Err(e) => return Entry::Skip(format!("cannot read: {e}")),
    };
    match file.metadata() {
        Ok(m) if m.is_file() => {}
        Ok(m) => return Entry::Skip(format!("not a regular file ({})", kind_of(&m))),
        Err(e) => return Entry::Skip(format!("cannot read: {e}")),
    }
    let mut bytes = Vec::new();
    if let Err(e) = (&mut file)
        .take(MAX_RECORD_BYTES + 1)
        .read_to_end(&mut bytes)
    {
        return Entry::Skip(format!("cannot read: {e}"));
    }
    if bytes.len() as u64 > MAX_RECORD_BYTES {
        return Entry::Corrupt(format!("larger than {MAX_RECORD_BYTES} bytes"));
    }
    let rec: AccountRecord = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => return Entry::Corrupt(format!("invalid JSON: {e}")),
    };
    if rec.id != stem {
        return Entry::Corrupt(format!(
            "record id {:?} does not match its file name",
            rec.id
        ));
    }
    Entry::Record(Box::new(rec))
}

/// Opens for reading without blocking (a FIFO swapped in after the metadata check must not
/// hang start-up).
fn open_nonblocking(path: &Path) -> io::Result<File> {
    let mut opts = fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut opts,
        rustix::fs::OFlags::NONBLOCK.bits() as i32,
    );
    opts.open(path)
}

/// "a directory", "a FIFO"… for messages.
fn kind_of(meta: &fs::Metadata) -> &'static str {
    let t = meta.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

/// A record dropped because another file holds the same account with newer tokens.
pub struct Duplicate {
    /// The dropped copy's file.
    pub path: PathBuf,
    /// The file kept instead.
    pub kept: PathBuf,
}

/// Keeps one record per upstream account — the one with the newer tokens by the pool's
/// import rule ([`freshness`]); at a tie, the one used last — and returns the dropped copies.
pub fn dedup(
    records: Vec<(PathBuf, AccountRecord)>,
) -> (Vec<(PathBuf, AccountRecord)>, Vec<Duplicate>) {
    let mut index = AccountIndex::default();
    // Id → position of the record that holds the account (dropped ids point to the survivor).
    let mut at: HashMap<String, usize> = HashMap::new();
    let mut kept: Vec<(PathBuf, AccountRecord)> = Vec::with_capacity(records.len());
    let mut dropped = Vec::new();
    for (path, rec) in records {
        let Some(i) = index.find(&rec).and_then(|id| at.get(id)).copied() else {
            index.insert(&rec);
            at.insert(rec.id.clone(), kept.len());
            kept.push((path, rec));
            continue;
        };
        let other = &kept[i].1;
        let newer = match freshness(other, &rec) {
            Freshness::Newer => true,
            Freshness::Older => false,
            Freshness::Same => rec.usage.last_used > other.usage.last_used,
        };
        at.insert(rec.id.clone(), i);
        if newer {
            index.insert(&rec);
            let (old_path, _) = std::mem::replace(&mut kept[i], (path.clone(), rec));
            dropped.push(Duplicate {
                path: old_path,
                kept: path,
            });
        } else {
            dropped.push(Duplicate {
                path,
                kept: kept[i].0.clone(),
            });
        }
    }
    (kept, dropped)
}
