//! Importing into the records of a data directory when no daemon runs. Which account an
//! incoming record is a copy of, and what of it to take, is the one import rule of the pool
//! (`rotor_actors::AccountIndex` and `rotor_actors::merge_import`, which the running pool's
//! account actors apply too): an incoming copy of a known account updates it in place,
//! keeping its id, quota and usage; it never puts back a refresh token the account has rotated
//! since (it lands in `kept_newer`); a banned or disabled account is never re-activated, an
//! expired one is, because fresh tokens are exactly its cure.

use rotor_actors::{AccountIndex, AccountRecord, Merged, Status, merge_import};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What an import did, for the CLI and the admin API (the same shape on both). Ids only,
/// never tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeReport {
    /// Accounts that were not in the pool.
    pub added: Vec<String>,
    /// Existing accounts that took the import (its tokens when they were newer, its identity).
    pub updated: Vec<String>,
    /// Existing accounts that kept their own tokens: newer than the import's, which would
    /// have been refused upstream as reused at the next refresh.
    #[serde(default)]
    pub kept_newer: Vec<String>,
    /// Existing accounts updated but left banned/disabled (id and status), so the operator
    /// knows the import did not bring them back.
    pub kept_inactive: Vec<(String, Status)>,
}

impl MergeReport {
    /// Notes what happened to existing account `rec` (`merged`).
    pub fn note(&mut self, rec_id: &str, status: Status, merged: Merged) {
        match merged {
            Merged::KeptNewer => self.kept_newer.push(rec_id.to_owned()),
            Merged::Replaced | Merged::Unchanged => {
                if matches!(status, Status::Banned | Status::Disabled) {
                    self.kept_inactive.push((rec_id.to_owned(), status));
                }
                self.updated.push(rec_id.to_owned());
            }
        }
    }
}

/// Merges `incoming` into `existing` and returns the report plus the records to save (new or
/// changed). `existing` is updated in place.
pub fn merge(
    existing: &mut Vec<AccountRecord>,
    incoming: Vec<AccountRecord>,
) -> (MergeReport, Vec<AccountRecord>) {
    let mut index = AccountIndex::default();
    let mut at: HashMap<String, usize> = HashMap::new();
    for (i, rec) in existing.iter().enumerate() {
        index.insert(rec);
        at.insert(rec.id.clone(), i);
    }
    let mut report = MergeReport::default();
    let mut changed: Vec<AccountRecord> = Vec::new();
    for mut rec in incoming {
        match index.find(&rec).and_then(|id| at.get(id)).copied() {
            Some(i) => {
                let old = &mut existing[i];
                let before = old.clone();
                let merged = merge_import(old, rec);
                report.note(&old.id, old.status, merged);
                index.insert(old);
                if *old != before {
                    changed.retain(|c| c.id != old.id);
                    changed.push(old.clone());
                }
            }
            None => {
                while at.contains_key(&rec.id) {
                    rec.id = super::new_id();
                }
                report.added.push(rec.id.clone());
                index.insert(&rec);
                at.insert(rec.id.clone(), existing.len());
                changed.push(rec.clone());
                existing.push(rec);
            }
        }
    }
    (report, changed)
}
