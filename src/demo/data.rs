//! The demo's data directory (issue 15 item 11). Without `--data-dir` the demo makes a private
//! temporary one — it holds tokens — and removes it when the demo ends, whether by Ctrl-C,
//! SIGTERM or an error. With `--data-dir` the directory is the operator's and stays, and a second
//! demo on it must not pile new simulated accounts onto the old ones: the simulator starts empty
//! every run, so the accounts an earlier demo created have dead tokens. The demo marks its
//! accounts ([`DEMO_LABEL`]) and replaces them. It refuses a directory holding any other
//! account: pointed at the simulator, a real account's refresh token would be rejected and the
//! account marked expired.

use crate::store::FileStore;
use anyhow::{Context, bail};
use rotor_actors::{AccountRecord, Store};
use std::path::{Path, PathBuf};

/// The label of every account the demo creates: how a later demo recognises its own, and what
/// the dashboard and `accounts list` show about them.
pub const DEMO_LABEL: &str = "simulated (codex-rotor demo)";

/// A directory the demo made for itself, removed with everything in it when dropped.
#[derive(Debug)]
pub struct OwnedDir(PathBuf);

impl OwnedDir {
    /// Makes `codex-rotor-demo-<random>` under the system's temporary directory, readable by
    /// its owner only.
    pub fn create(random: &str) -> anyhow::Result<OwnedDir> {
        let path = std::env::temp_dir().join(format!("codex-rotor-demo-{random}"));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(OwnedDir(path))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for OwnedDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// True for an account a demo created.
pub fn is_demo_account(rec: &AccountRecord) -> bool {
    rec.identity.label.as_deref() == Some(DEMO_LABEL)
}

/// Removes the accounts an earlier demo left in `dir` and returns how many; fails, removing
/// nothing, if the directory holds an account the demo did not create.
pub fn forget_earlier(
    store: &FileStore,
    records: Vec<AccountRecord>,
    dir: &Path,
) -> anyhow::Result<usize> {
    let (demo, other): (Vec<AccountRecord>, Vec<AccountRecord>) =
        records.into_iter().partition(is_demo_account);
    if !other.is_empty() {
        bail!(
            "{} holds {} account(s) the demo did not create; the demo points every account of its \
             data directory at its simulator, which would reject their tokens and mark them \
             expired. Run the demo with another --data-dir, or without one (a temporary directory)",
            dir.display(),
            other.len()
        );
    }
    for rec in &demo {
        store
            .remove(&rec.id)
            .with_context(|| format!("removing the earlier demo account {}", rec.id))?;
    }
    Ok(demo.len())
}
