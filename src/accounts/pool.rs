//! Adding to a running pool, for the admin API's import route: the route parses and validates
//! the whole file first ([`super::parse_file`]), so a bad file changes nothing; the pool then
//! applies the one import rule itself (`PoolHandle::add`, the same rule as the offline path:
//! never an older refresh token back, never re-activating a banned or disabled account).

use rotor_actors::{AddOutcome, Merged, PoolError, PoolHandle, Status};

use super::merge::MergeReport;

/// Adds one record to the pool by its import rule and notes the outcome in `report`.
pub async fn add_one(
    pool: &PoolHandle,
    rec: rotor_actors::AccountRecord,
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
