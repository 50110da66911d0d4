//! Adding to a running daemon, for the admin API's import and login routes: the import route
//! parses and validates the whole file first ([`super::parse_file`]), so a bad file changes
//! nothing; each record is then added by the one import rule (never an older refresh token
//! back, never re-activating a banned or disabled account):
//!
//! - on a single node the pool applies it itself (`PoolHandle::add`, the rule the offline path
//!   uses too);
//! - on a cluster node the record goes into the shared database once, merged by [`merge`]
//!   against every account stored there (`PgStore::import`): whichever node owns the account
//!   reloads it, and a new account is claimed by the node that should own it. A local actor
//!   is never started for it here, since this node may not own it.

use rotor_actors::{AccountRecord, AddOutcome, Merged, PoolError, PoolHandle, Status};

use super::merge::{MergeReport, merge};
use crate::store::postgres::records::PgStore;

/// Where an added account goes.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    /// A single node's pool.
    Pool(&'a PoolHandle),
    /// A cluster node: the shared database its nodes own the accounts of.
    Shared(&'a PgStore),
}

/// Why adding failed.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// The pool refused or did not answer.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The shared database did.
    #[error("the shared store: {0}")]
    Store(#[from] crate::store::postgres::DbError),
}

/// Adds one record by the import rule and notes the outcome in `report`.
pub async fn add_one(
    target: Target<'_>,
    rec: AccountRecord,
    report: &mut MergeReport,
) -> Result<AddOutcome, AddError> {
    let outcome = match target {
        Target::Pool(pool) => to_pool(pool, rec, report).await?,
        Target::Shared(store) => {
            let id = rec.id.clone();
            let one = store
                .import(|existing| merge(existing, vec![rec.clone()]))
                .await?;
            // A one-record merge files it under exactly one of these.
            let outcome = outcome_of(&one).unwrap_or(AddOutcome::Updated(id));
            report.added.extend(one.added);
            report.updated.extend(one.updated);
            report.kept_newer.extend(one.kept_newer);
            report.kept_inactive.extend(one.kept_inactive);
            outcome
        }
    };
    Ok(outcome)
}

/// What the report of a one-record merge says happened to it.
fn outcome_of(one: &MergeReport) -> Option<AddOutcome> {
    if let Some(id) = one.added.first() {
        return Some(AddOutcome::Added(id.clone()));
    }
    if let Some(id) = one.kept_newer.first() {
        return Some(AddOutcome::KeptNewer(id.clone()));
    }
    one.updated.first().cloned().map(AddOutcome::Updated)
}

async fn to_pool(
    pool: &PoolHandle,
    rec: AccountRecord,
    report: &mut MergeReport,
) -> Result<AddOutcome, PoolError> {
    let outcome = pool.add(rec).await?;
    match &outcome {
        AddOutcome::Added(id) => report.added.push(id.clone()),
        AddOutcome::Updated(id) | AddOutcome::KeptNewer(id) => {
            let status = match pool.account(id).await {
                Some(view) => view.status,
                None => Status::Active,
            };
            let merged = match outcome {
                AddOutcome::KeptNewer(_) => Merged::KeptNewer,
                _ => Merged::Unchanged,
            };
            report.note(id, status, merged);
        }
    }
    Ok(outcome)
}
