//! The shared affinity table on PostgreSQL (`rotor_affinity`, schema version 5;
//! docs/cluster.md "Requests across nodes"): conversation key → the account that served it
//! last, with the time on the database clock (unix ms). The key arrives already hashed
//! ([`KeyHash`], HMAC under the cluster secret): a client's conversation key is never stored.
//! The table is `UNLOGGED`: a database crash empties it, which costs affinity misses only.
//!
//! One connection, shared by the node's writer (batched upserts, the sweep) and its request
//! path (lookups, prepared once per connection), on a [`Redialer`](super::Redialer).

use tokio_postgres::{Client, Statement};

use super::DbError;

/// A conversation key as stored: 32 bytes of keyed hash.
pub type KeyHash = [u8; 32];

use super::CLOCK_MS;

/// Bound on one statement of this connection (a stuck upsert must not hold the writer).
const STATEMENT_TIMEOUT_MS: u32 = 5_000;

/// The connection to `rotor_affinity`.
pub struct AffinityDb {
    client: Client,
    lookup: Statement,
}

/// How a [`Redialer`](super::Redialer) opens it: the statement bound, the lookup prepared
/// once per connection.
impl super::redial::Dialed for AffinityDb {
    async fn dialed(client: Client) -> Result<Self, DbError> {
        client
            .batch_execute(&format!("set statement_timeout = {STATEMENT_TIMEOUT_MS}"))
            .await?;
        let lookup = client
            .prepare(&format!(
                "select account from rotor_affinity where key_hash = $1 and updated_at > {CLOCK_MS} - $2"
            ))
            .await?;
        Ok(Self { client, lookup })
    }

    fn is_closed(&self) -> bool {
        AffinityDb::is_closed(self)
    }
}

impl AffinityDb {
    /// Connects once (`url`: a libpq connection string or URL; a secret, never logged) and
    /// prepares the lookup; a node's writer holds it on a [`Redialer`](super::Redialer).
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        <Self as super::redial::Dialed>::dialed(super::open(url).await?).await
    }

    /// Whether the connection has ended (the database restarted or went away).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The account `key` went to, unless its row is `ttl_ms` old or older (or absent).
    pub async fn lookup(&self, key: &KeyHash, ttl_ms: i64) -> Result<Option<String>, DbError> {
        let row = self
            .client
            .query_opt(&self.lookup, &[&key.as_slice(), &ttl_ms])
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Writes `rows` (each key at most once) in one multi-row upsert, stamped with the
    /// database's clock; returns how many rows it wrote.
    pub async fn upsert(&self, rows: &[(KeyHash, String)]) -> Result<u64, DbError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let keys: Vec<&[u8]> = rows.iter().map(|(k, _)| k.as_slice()).collect();
        let accounts: Vec<&str> = rows.iter().map(|(_, a)| a.as_str()).collect();
        let n = self
            .client
            .execute(
                &format!(
                    "insert into rotor_affinity (key_hash, account, updated_at)
                     select k, a, {CLOCK_MS} from unnest($1::bytea[], $2::text[]) as t(k, a)
                     on conflict (key_hash) do update
                     set account = excluded.account, updated_at = excluded.updated_at"
                ),
                &[&keys, &accounts],
            )
            .await?;
        Ok(n)
    }

    /// Deletes at most `limit` rows `ttl_ms` old or older; returns how many it deleted.
    pub async fn sweep(&self, ttl_ms: i64, limit: i64) -> Result<u64, DbError> {
        let n = self
            .client
            .execute(
                &format!(
                    "delete from rotor_affinity where key_hash in (
                         select key_hash from rotor_affinity
                         where updated_at <= {CLOCK_MS} - $1 limit $2)"
                ),
                &[&ttl_ms, &limit],
            )
            .await?;
        Ok(n)
    }
}
