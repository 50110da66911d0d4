//! One owner per data directory. `codex-rotor serve` holds an exclusive `flock` on
//! `<data_dir>/.lock` while it serves, and the offline `accounts --data-dir` command while it
//! works: the daemon's account actors are the only writers of their files, and an offline
//! write to a served directory would be a file the daemon never sees (or overwrites). The
//! kernel drops the lock with the process, so a SIGKILLed daemon leaves no stale lock. The
//! file's text names the holder (pid, and the address a daemon listens on), so whoever is
//! refused can be told where to go instead.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file inside the data directory.
pub const LOCK_FILE: &str = ".lock";

/// Why the data directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("the data directory {} is in use by {holder}", dir.display())]
    Busy {
        /// The data directory.
        dir: PathBuf,
        /// Who holds it, as its lock file says ("codex-rotor serve (pid 42, listening on …)").
        holder: String,
        /// The address the holder listens on, if it is a daemon that said so.
        listen: Option<String>,
    },
    /// The lock file could not be created or locked.
    #[error("cannot lock the data directory {}: {source}", dir.display())]
    Io {
        /// The data directory.
        dir: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// An exclusive lock on a data directory, released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DataDirLock {
    /// The open, locked lock file.
    file: File,
}

impl DataDirLock {
    /// Locks `data_dir` (creating it if needed) for `role` ("serve", "accounts"), or says who
    /// holds it.
    pub fn acquire(data_dir: &Path, role: &str) -> Result<DataDirLock, LockError> {
        let io_err = |source| LockError::Io {
            dir: data_dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(io_err)?;
        let path = data_dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = text.lines().next().unwrap_or("").trim().to_owned();
                let listen = text
                    .lines()
                    .find_map(|l| l.strip_prefix("listen="))
                    .map(str::to_owned);
                return Err(LockError::Busy {
                    dir: data_dir.to_path_buf(),
                    holder: if holder.is_empty() {
                        "another codex-rotor process".into()
                    } else {
                        holder
                    },
                    listen,
                });
            }
            Err(e) => return Err(io_err(e.into())),
        }
        let lock = DataDirLock { file };
        let pid = std::process::id();
        lock.describe(&format!("codex-rotor {role} (pid {pid})"), None);
        Ok(lock)
    }

    /// Rewrites who holds the lock: a line for humans, and the address a daemon listens on
    /// (for the refused offline command's hint). Best effort: the lock itself is what counts.
    pub fn describe(&self, holder: &str, listen: Option<&str>) {
        let mut text = format!("{holder}\n");
        if let Some(addr) = listen {
            text.push_str(&format!("listen={addr}\n"));
        }
        let mut f = &self.file;
        let _ = f
            .set_len(0)
            .and_then(|()| f.seek(SeekFrom::Start(0)))
            .and_then(|_| f.write_all(text.as_bytes()))
            .and_then(|()| f.sync_data());
    }
}
