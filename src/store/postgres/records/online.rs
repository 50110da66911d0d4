//! An import into the database while nodes run (the admin API of a cluster node, and so
//! `codex-rotor accounts import/add` against one): the incoming accounts are merged with the
//! database's by the caller's `merge` — the one import rule, as the offline import — in one
//! transaction, whoever owns them. Nothing is taken over and no owner is fenced out:
//!
//! - a new account is stored unowned (generation 1): the node rendezvous hashing gives it to
//!   claims it on its next round;
//! - an account a live session owns keeps its owner and generation: its record is replaced in
//!   place, its record generation moves on and, when its tokens are new, so does the token
//!   version ([`Rules::import_tokens`](rotor_actors::ownership::rules::Rules::import_tokens),
//!   in the same transaction). The owner's writes of the account then leave the imported
//!   record in the row until it has reloaded it (`PgStore::load`, the claim loop's reload of an
//!   account whose token version or record generation moved), so nothing it had queued before
//!   can put the old tokens or the old label back;
//! - an account nobody live owns is written at `owner_gen + 1`, as the offline import does,
//!   fencing out a writer whose session lapsed.
//!
//! Imports are serialised by an advisory lock, so two nodes importing the same new account
//! at once store it once. The ownership decision is the one every lease operation takes
//! ([`decide_in`]): the owners' sessions, then the changed accounts' rows, locked in that one
//! order inside the import's transaction, so an import never deadlocks with a claim, a renewal
//! or a refresh; the record writer takes the owner rows of a batch in the same id order.

use rotor_actors::AccountRecord;
use tokio_postgres::Client;

use super::{HeldTokens, put_record, read_all, write_unowned};
use crate::store::StoreKey;
use crate::store::postgres::{DbError, decide_in};

/// The advisory lock key that serialises online imports (any constant no other user of the
/// database takes; "rotorimp" in ASCII).
const IMPORT_LOCK: i64 = 0x726f_746f_7269_6d70;

/// Merges `incoming` — through `merge`, given every record the database holds, which updates
/// them in place and returns those that changed — into the database on `client`, writes the
/// changed ones (see the module docs) and returns `merge`'s report.
pub async fn import_online<R>(
    client: &mut Client,
    key: &StoreKey,
    mut merge: impl FnMut(&mut Vec<AccountRecord>) -> (R, Vec<AccountRecord>),
) -> Result<R, DbError> {
    loop {
        if let Some(report) = once(client, key, &mut merge).await? {
            return Ok(report);
        }
        // An owner changed between the look and the lock: nothing was written.
        tracing::debug!("an online import met an owner change; trying again");
    }
}

/// One attempt, one transaction; `None`: an owner changed under it, nothing was committed.
async fn once<R>(
    client: &mut Client,
    key: &StoreKey,
    merge: &mut impl FnMut(&mut Vec<AccountRecord>) -> (R, Vec<AccountRecord>),
) -> Result<Option<R>, DbError> {
    let tx = client.transaction().await?;
    tx.execute("select pg_advisory_xact_lock($1)", &[&IMPORT_LOCK])
        .await?;
    let mut records = read_all(&tx, key).await?;
    let held = HeldTokens::of(&records);
    let (report, changed) = merge(&mut records);
    // A new account gets its ownership row first (unowned, generation 0), so the decision
    // below sees it; the advisory lock keeps any other import from inserting it meanwhile.
    for rec in &changed {
        tx.execute(
            "insert into rotor_account_owner (account) values ($1) on conflict do nothing",
            &[&rec.id],
        )
        .await?;
    }
    let ids: Vec<&str> = changed.iter().map(|r| r.id.as_str()).collect();
    let decided = decide_in(&tx, None, &[], &ids, |rules, now| {
        let mut owned_live = Vec::with_capacity(changed.len());
        for rec in &changed {
            let live = rules
                .accounts
                .get(&rec.id)
                .is_some_and(|row| rules.owner_live(row, now));
            owned_live.push(live);
            // Fresh tokens (a new account's included, as offline): a new token version, no
            // intent, no ambiguity — the owner sees the version move and reloads.
            if held.fresh(rec) {
                rules.import_tokens(&rec.id)?;
            }
        }
        Ok(owned_live)
    })
    .await?;
    let owned_live = match decided {
        None => return Ok(None),
        Some(Ok(live)) => live,
        Some(Err(r)) => return Err(DbError::Worker(format!("import_tokens: {r:?}"))),
    };
    for (rec, live) in changed.iter().zip(owned_live) {
        if live {
            put_record(&tx, rec, key).await?;
        } else {
            write_unowned(&tx, rec, key).await?;
        }
    }
    tx.commit().await?;
    Ok(Some(report))
}
