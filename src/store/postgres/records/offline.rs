//! An offline import into the database (`codex-rotor accounts import` with `backend =
//! "postgres"` and no daemon running): the incoming accounts are merged with the database's
//! in one transaction that holds the account tables and the node sessions, so no node can
//! start, renew or write while it runs; it is refused if any node session is still live (a
//! node that owns accounts would never see the write). Each changed account gets
//! `owner_gen + 1`, fencing out any writer that still believes it holds it, and one whose
//! tokens are new then goes through [`LeaseDb::import_tokens`] (token version + 1, a refresh intent and
//! `refresh_ambiguous` cleared), the one place that rule lives.

use super::{HeldTokens, prepare, read_all, runtime, write_unowned};
use crate::store::StoreKey;
use crate::store::postgres::{DbError, LeaseDb, NOW};
use rotor_actors::AccountRecord;

/// Merges `incoming` into the database's accounts with `merge` (given every record it holds,
/// it updates them in place and returns those that changed), writes the changed ones and
/// marks their tokens as imported. Refuses, changing nothing, while a node session is live.
pub async fn import_offline<R>(
    url: &str,
    key: &StoreKey,
    merge: impl FnOnce(&mut Vec<AccountRecord>) -> (R, Vec<AccountRecord>),
) -> Result<R, DbError> {
    let rt = runtime()?;
    let mut conn = prepare(&rt, url, key).await?;
    let tx = conn.ready().await?.transaction().await?;
    // Sessions first (the order every lease operation locks in), then the accounts: a node
    // acquiring or renewing waits for this transaction and then sees what it wrote.
    tx.batch_execute(
        "lock table rotor_node_session in exclusive mode;
         lock table rotor_account_owner in exclusive mode;
         lock table rotor_account in exclusive mode;",
    )
    .await?;
    let live: Vec<String> = tx
        .query(
            &format!("select node from rotor_node_session where expires_at > {NOW} order by node"),
            &[&None::<i64>],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !live.is_empty() {
        return Err(DbError::NodesLive { nodes: live });
    }
    let mut records = read_all(&tx, key).await?;
    let held = HeldTokens::of(&records);
    let (report, changed) = merge(&mut records);
    let fresh: Vec<&str> = changed
        .iter()
        .filter(|r| held.fresh(r))
        .map(|r| r.id.as_str())
        .collect();
    for rec in &changed {
        write_unowned(&tx, rec, key).await?;
    }
    tx.commit().await?;
    // The tokens are durable; now the rule that fresh tokens clear an intent and ambiguity.
    // A failure here leaves the records imported and at worst an account still marked
    // ambiguous: importing it again clears it.
    if !fresh.is_empty() {
        let mut db = LeaseDb::connect(url).await?;
        for id in fresh {
            db.import_tokens(id)
                .await?
                .map_err(|r| DbError::Worker(format!("import_tokens {id}: {r:?}")))?;
        }
    }
    Ok(report)
}
