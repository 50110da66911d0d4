//! An import into the database while nodes run (the admin API of a cluster node, and so
//! `codex-rotor accounts import/add` against one): the incoming accounts are merged with the
//! database's by the caller's `merge` — the one import rule, as the offline import — in one
//! transaction, whoever owns them. Nothing is taken over and no owner is fenced out:
//!
//! - a new account is stored unowned (generation 1): the node rendezvous hashing gives it to
//!   claims it on its next round;
//! - an account a live session owns keeps its owner and generation: its record is replaced in
//!   place and, when its tokens are new, the token version moves on
//!   ([`Rules::import_tokens`](rotor_actors::ownership::rules::Rules::import_tokens), in the
//!   same transaction). The owner's writes of the account then leave the row alone until it has
//!   reloaded the record (`PgStore::load`, the claim loop's reload of an account whose token
//!   version moved elsewhere), so nothing it had queued before can put the old tokens back;
//! - an account nobody live owns is written at `owner_gen + 1`, as the offline import does,
//!   fencing out a writer whose session lapsed.
//!
//! Imports are serialised by an advisory lock, so two nodes importing the same new account
//! at once store it once. The rows an import changes are locked `for update`, which waits for
//! the owner's write in flight; a deadlock with an owner's batch touching the same accounts in
//! another order is retried.

use rotor_actors::AccountRecord;
use rotor_actors::ownership::rules::Rules;
use std::collections::HashMap;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::{put_record, read_all, write_unowned};
use crate::store::StoreKey;
use crate::store::postgres::{DbError, LeaseDb, load_account, session_query, write_back};

/// The advisory lock key that serialises online imports (any constant no other user of the
/// database takes; "rotorimp" in ASCII).
const IMPORT_LOCK: i64 = 0x726f_746f_7269_6d70;

/// How often a transaction that lost a deadlock is tried again.
const ATTEMPTS: usize = 3;

/// Merges `incoming` — through `merge`, given every record the database holds, which updates
/// them in place and returns those that changed — into the database on `client`, writes the
/// changed ones (see the module docs) and returns `merge`'s report.
pub async fn import_online<R>(
    client: &mut Client,
    key: &StoreKey,
    mut merge: impl FnMut(&mut Vec<AccountRecord>) -> (R, Vec<AccountRecord>),
) -> Result<R, DbError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match once(client, key, &mut merge).await {
            Err(DbError::Postgres(e))
                if attempt < ATTEMPTS && e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED) =>
            {
                tracing::debug!("an online import lost a deadlock; trying again");
            }
            r => return r,
        }
    }
}

async fn once<R>(
    client: &mut Client,
    key: &StoreKey,
    merge: &mut impl FnMut(&mut Vec<AccountRecord>) -> (R, Vec<AccountRecord>),
) -> Result<R, DbError> {
    let tx = client.transaction().await?;
    tx.execute("select pg_advisory_xact_lock($1)", &[&IMPORT_LOCK])
        .await?;
    let mut records = read_all(&tx, key).await?;
    let held: HashMap<String, _> = records
        .iter()
        .map(|r| (r.id.clone(), r.tokens.clone()))
        .collect();
    let (report, mut changed) = merge(&mut records);
    // One order for the row locks of every import.
    changed.sort_by(|a, b| a.id.cmp(&b.id));
    let now = LeaseDb::now(&tx, None).await?;
    for rec in &changed {
        let id = rec.id.as_str();
        let mut rules = Rules::default();
        let owned_live = match load_account(&tx, id).await? {
            Some(row) => {
                if let Some(o) = &row.owner
                    && let Some(s) = session_query(&tx, &o.node, "").await?
                {
                    rules.sessions.insert(o.node.clone(), s);
                }
                let live = rules.owner_live(&row, now);
                rules.accounts.insert(id.to_owned(), row);
                live
            }
            None => false,
        };
        if owned_live {
            put_record(&tx, rec, key).await?;
        } else {
            write_unowned(&tx, rec, key).await?;
        }
        // Fresh tokens (a new account's included, as offline): a new token version, no
        // intent, no ambiguity — the owner sees the version move and reloads.
        if held.get(id) != Some(&rec.tokens) {
            let before = match load_account(&tx, id).await? {
                Some(row) => {
                    rules.accounts.insert(id.to_owned(), row);
                    rules.clone()
                }
                None => continue,
            };
            rules
                .import_tokens(id)
                .map_err(|r| DbError::Worker(format!("import_tokens {id}: {r:?}")))?;
            write_back(&tx, &before, &rules).await?;
        }
    }
    tx.commit().await?;
    Ok(report)
}
