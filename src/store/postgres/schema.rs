//! The database's schema and its migrations: a version table (`rotor_schema`, one row), and
//! one migration per version, applied in one transaction at start. A database written by a
//! newer codex-rotor is refused and left as it is.

use tokio_postgres::Client;

use super::DbError;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = 7;

/// Each migration brings the schema from its index to index + 1.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    // 1: the ownership rules (docs/cluster.md "Ownership").
    r#"
create table rotor_node_session (
    node text primary key,
    epoch bigint not null,
    expires_at bigint not null
);
create table rotor_account_owner (
    account text primary key,
    owner_node text,
    owner_epoch bigint,
    owner_gen bigint not null default 0,
    token_version bigint not null default 0,
    intent_gen bigint,
    intent_deadline bigint,
    intent_token_version bigint,
    last_intent_gen bigint not null default 0,
    refresh_ambiguous boolean not null default false
);
"#,
    // 2: the account records (docs/cluster.md "What is stored where"): the record without
    // its tokens as JSON, the tokens sealed; and a probe sealed with the store key, so a
    // wrong key is found at start, not at the first account.
    r#"
create table rotor_account (
    id text primary key,
    record jsonb not null,
    tokens bytea not null,
    added_at bigint not null,
    updated_at timestamptz not null default clock_timestamp()
);
create table rotor_store_key (
    id integer primary key check (id = 1),
    probe bytea not null
);
"#,
    // 3: cluster mode (docs/cluster.md "How a node runs"): what a node publishes with each
    // acquire and renewal — the address peers forward to, and its summary for spilling.
    r#"
alter table rotor_node_session add column advertise text, add column summary jsonb;
"#,
    // 4: the intent of the last stored rotation, so a finish sent again after its answer was
    // lost is recognised (docs/cluster.md "Refresh in the actors", step 3).
    r#"
alter table rotor_account_owner add column finished_intent_gen bigint not null default 0;
"#,
    // 5: the shared affinity table (docs/cluster.md "Requests across nodes"): conversation
    // key (HMAC-SHA256 under the cluster secret, never the key itself) -> the account that
    // served it last, on the database clock. Unlogged: a crash empties it, which costs only
    // affinity misses.
    r#"
create unlogged table rotor_affinity (
    key_hash bytea primary key,
    account text not null,
    updated_at bigint not null
);
create index rotor_affinity_updated_at on rotor_affinity (updated_at);
"#,
    // 6: the record generation (docs/cluster.md "Imports"): +1 whenever an account's record
    // is written from outside its owner's copy (an import), so the owner reloads a label or
    // identity change as it reloads fresh tokens, and its own writes never put the old back.
    r#"
alter table rotor_account_owner add column record_gen bigint not null default 0;
"#,
    // 7: the nonce of the refresh intent (docs/cluster.md "Refresh in the actors"), so a
    // begin whose answer was lost is recognised when its node sends it again. An intent from
    // before has none (null): it stands until finished, abandoned or claimed, as before.
    r#"
alter table rotor_account_owner add column intent_nonce bigint;
"#,
];

/// Brings the schema to [`SCHEMA_VERSION`]; refuses a newer one. Returns the version the
/// database had before.
pub async fn migrate(client: &mut Client) -> Result<i32, DbError> {
    let tx = client.transaction().await?;
    tx.batch_execute(
        "create table if not exists rotor_schema (version integer not null);
         lock table rotor_schema in exclusive mode;",
    )
    .await?;
    let found: i32 = match tx
        .query_opt("select version from rotor_schema", &[])
        .await?
    {
        Some(row) => row.get(0),
        None => {
            tx.execute("insert into rotor_schema (version) values (0)", &[])
                .await?;
            0
        }
    };
    if found > SCHEMA_VERSION {
        return Err(DbError::NewerSchema { found });
    }
    for m in MIGRATIONS.iter().skip(usize::try_from(found).unwrap_or(0)) {
        tx.batch_execute(m).await?;
    }
    tx.execute("update rotor_schema set version = $1", &[&SCHEMA_VERSION])
        .await?;
    tx.commit().await?;
    Ok(found)
}
