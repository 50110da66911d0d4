//! The account records on PostgreSQL behind the one [`Store`] trait: a row per account in
//! `rotor_account`, the record as JSON without its tokens, the tokens sealed
//! ([`StoreKey`]) and bound to the account id. Writes go through the same queue as the files
//! ([`Writer`]): a batch is one transaction, a token rotation waits for its commit, a
//! coalesced quota/usage flush does not.
//!
//! Every write carries the fencing generation this process holds for the account
//! (`rotor_account_owner.owner_gen`): the statement only lands while the row still has that
//! generation, so once another process took the account over (a newer `serve` on the same
//! database, later a cluster claim) the old one's writes are refused, counted
//! ([`PgStore::fenced_out`]) and never retried. A single node takes every account at open
//! (`owner_gen + 1`); cluster mode takes them by claim instead ([`PgStore::open_for_cluster`], [`PgStore::hold`]).
//!
//! The connections run on a small runtime of their own, so the writer thread and an actor
//! reloading its record can block on a statement whatever runtime (if any) they are on.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rotor_actors::{AccountRecord, Store};
use serde_json::Value;
use tokio_postgres::{Client, GenericClient};

use super::{DbError, Redialer, schema};

mod offline;
mod online;
use crate::store::StoreKey;
use crate::store::writer::{Op, Sink, Stamp, Writer, copy};
pub use offline::import_offline;
pub use online::import_online;

/// What the key probe holds, sealed: opening it proves the key is the database's.
const PROBE: &[u8] = b"codex-rotor store key probe";
/// The associated data of the probe (account ids are hex, so it cannot collide with one).
const PROBE_AAD: &str = "rotor_store_key";

/// How long the server lets a transaction of this store sit idle, or a statement wait for a
/// lock, before ending it (a healthy batch sends its statements back to back); and how long
/// opening a connection may take.
const IDLE_IN_TRANSACTION: std::time::Duration = std::time::Duration::from_secs(2);

/// How long one use of a store connection may take as a whole: a batch of the writer (the
/// connection opened if need be, its transaction, its commit) or the read of one record (the
/// wait for the reading connection included). A healthy batch takes milliseconds; behind a
/// stalled network (the TCP connection open, no byte moving, no reset) it would never end, and
/// with it every caller waiting for durability (a token rotation's save, each account's flush
/// on shutdown) and the shutdown itself. Past it the connection is dropped
/// ([`Redialer::within`]) and the batch fails as retryable: coalesced writes stay queued, a
/// waiting caller is told. 2 s: far above a healthy batch even on a busy server, short enough
/// for a waiting caller, and as long as the server lets a transaction of this store sit idle
/// ([`IDLE_IN_TRANSACTION`]). A batch given up on never lands after a later one: the rows it
/// wrote stay locked until the server commits or ends it, and the later batch's writes of
/// them wait for that.
const ANSWER_BOUND: std::time::Duration = std::time::Duration::from_secs(2);

/// The bound on an import or an export through the reading connection, for everything (the
/// wait for the connection, opening it, the whole transaction): many records at once, so
/// longer than one record's [`ANSWER_BOUND`], and still an end — with an error — to an admin
/// request behind a database that stopped answering.
const BULK_BOUND: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `op` on the reading connection within `bound` as a whole (past it the connection is
/// dropped, [`Redialer::within`]).
async fn on_reader<R>(
    reader: &tokio::sync::Mutex<Conn>,
    bound: std::time::Duration,
    op: impl AsyncFnOnce(&mut Client) -> Result<R, DbError>,
) -> Result<R, DbError> {
    let deadline = tokio::time::Instant::now() + bound;
    let Ok(mut conn) = tokio::time::timeout_at(deadline, reader.lock()).await else {
        return Err(super::redial::unanswered());
    };
    conn.link.within(deadline, op).await
}

/// The owner row of an account — its token version and record generation ([`put_of`]) —
/// while this process holds it at generation `$2`, locked against a concurrent change of
/// owner, tokens or record until the batch commits (a locking read sees the row as the last
/// commit left it, even when it had to wait for that commit).
const HELD: &str = "select token_version, record_gen from rotor_account_owner
     where account = $1::text and owner_gen = $2::bigint for share";

/// Upsert of one record, only while this process holds the account at generation `$2`
/// (`for share` waits for a concurrent owner change and re-checks against its outcome).
const WRITE: &str = "insert into rotor_account (id, record, tokens, added_at)
     select $1::text, $3::text::jsonb, $4::bytea, $5::bigint
     where exists (select 1 from rotor_account_owner
                   where account = $1::text and owner_gen = $2::bigint for share)
     on conflict (id) do update set record = excluded.record, tokens = excluded.tokens,
         updated_at = clock_timestamp()";

/// The runtime the connections run on; shut down without waiting when the last user goes.
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A connection whose task runs on the store's runtime, opened again once the database
/// closed it (a restart, an outage), so one outage does not leave the store without a
/// connection for the rest of its life.
struct Conn {
    link: Redialer<Client>,
    /// Keeps the connection task's runtime alive as long as the client is used.
    rt: Arc<Runtime>,
}

impl Conn {
    /// The open client, connected again first if the database closed it.
    async fn ready(&mut self) -> Result<&mut Client, DbError> {
        self.link.ready().await
    }
}

impl Runtime {
    /// The runtime's handle, while it runs.
    fn handle(&self) -> Result<tokio::runtime::Handle, DbError> {
        let rt = self
            .0
            .as_ref()
            .ok_or_else(|| DbError::Worker("stopped".into()))?;
        Ok(rt.handle().clone())
    }
}

/// Opens a connection on `rt` (awaitable from any runtime). A writer paused inside a batch
/// (SIGSTOP, a VM freeze) must not keep the owner rows it read `for share` locked: the server
/// ends such a transaction after [`IDLE_IN_TRANSACTION`] ([`super::bound_waits`]), so claims
/// on the other nodes go on.
async fn connect(rt: &Arc<Runtime>, url: &str) -> Result<Conn, DbError> {
    let mut link = Redialer::new(url, IDLE_IN_TRANSACTION, "the account store").on(rt.handle()?);
    link.ready().await?;
    Ok(Conn {
        link,
        rt: rt.clone(),
    })
}

fn runtime() -> Result<Arc<Runtime>, DbError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("rotor-postgres")
        .enable_all()
        .build()
        .map_err(|e| DbError::Worker(e.to_string()))?;
    Ok(Arc::new(Runtime(Some(rt))))
}

/// Runs a database future to completion from synchronous code (the connection task runs on
/// its own runtime, so this never waits on the caller's).
fn block<F: std::future::Future>(f: F) -> F::Output {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| futures::executor::block_on(f))
        }
        _ => futures::executor::block_on(f),
    }
}

/// A write refused because another process holds the account at a newer generation.
#[derive(Debug, thiserror::Error)]
#[error("account {id}: fenced out (another process owns it now); the write was refused")]
pub struct FencedOut {
    /// The account.
    pub id: String,
}

/// The kind of a [`FencedOut`] error, which survives the writer's copy of it (no other write
/// error of this store has it: the database's are `Other`).
const FENCED_KIND: io::ErrorKind = io::ErrorKind::PermissionDenied;

/// Writes refused by the fence in this process, over every store it opened (`/metrics`).
static FENCED_OUT_TOTAL: AtomicU64 = AtomicU64::new(0);

/// Writes of this process refused because another process owned the account by then (always
/// 0 with the files): `codex_rotor_store_fenced_writes_total`.
pub fn fenced_out_total() -> u64 {
    FENCED_OUT_TOTAL.load(Ordering::Relaxed)
}

/// The fencing generations this process holds, by account id.
type Generations = Arc<Mutex<HashMap<String, i64>>>;

fn lock(g: &Generations) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
    g.lock().unwrap_or_else(|e| e.into_inner())
}

/// The account records in one database.
pub struct PgStore {
    /// The queue every write goes through (in order per account); dropped first, so it drains
    /// while the connections still run.
    writer: Writer<String>,
    /// A connection for reads ([`Store::load`]).
    reader: Arc<tokio::sync::Mutex<Conn>>,
    /// The store key (to open what `load` reads).
    key: StoreKey,
    /// Generations held, shared with the writer's sink.
    gens: Generations,
    /// The token version each account's copy in this process stands at (cluster mode: set
    /// when the record is loaded and when this node's fence stores a rotation or an import),
    /// shared with the writer's sink, which writes a row only while the store still has it.
    versions: Generations,
    /// The record generation each account's copy in this process was loaded at (cluster
    /// mode), shared with the writer's sink likewise: an import moves the store's on, and the
    /// copy writes nothing until it has reloaded.
    record_gens: Generations,
    /// Writes refused by the fence since open.
    fenced: Arc<AtomicU64>,
    /// The runtime the connections run on: a read runs there whatever runtime (if any) its
    /// caller is on, its time bound with it.
    rt: tokio::runtime::Handle,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

/// Connects, migrates the schema and checks the key against the database's probe (sealing
/// one into a database that has none).
async fn prepare(rt: &Arc<Runtime>, url: &str, key: &StoreKey) -> Result<Conn, DbError> {
    let mut conn = connect(rt, url).await?;
    let c = conn.ready().await?;
    schema::migrate(c).await?;
    match c
        .query_opt("select probe from rotor_store_key where id = 1", &[])
        .await?
    {
        Some(row) => {
            let probe: Vec<u8> = row.get(0);
            let what = "the database's key probe (rotor_store_key)";
            if key.open(&probe, PROBE_AAD, what)? != PROBE {
                return Err(crate::store::SealError::WrongKey { what: what.into() }.into());
            }
        }
        None => {
            c.execute(
                "insert into rotor_store_key (id, probe) values (1, $1) on conflict do nothing",
                &[&key.seal(PROBE, PROBE_AAD)],
            )
            .await?;
        }
    }
    Ok(conn)
}

impl PgStore {
    /// Opens the store for a serving node: migrates, checks the key, takes every account over
    /// (`owner_gen + 1`, fencing out any older process still writing) and loads them.
    pub async fn open(url: &str, key: StoreKey) -> Result<(PgStore, Vec<AccountRecord>), DbError> {
        Self::open_as(url, key, true).await
    }

    /// Opens the store for a cluster node: migrates and checks the key like [`PgStore::open`],
    /// but takes no account and loads none. The node claims accounts through the lease
    /// rules and announces each won generation with [`PgStore::hold`] before its actor runs.
    pub async fn open_for_cluster(url: &str, key: StoreKey) -> Result<PgStore, DbError> {
        Ok(Self::open_as(url, key, false).await?.0)
    }

    async fn open_as(
        url: &str,
        key: StoreKey,
        take_all: bool,
    ) -> Result<(PgStore, Vec<AccountRecord>), DbError> {
        let rt = runtime()?;
        let mut reader = prepare(&rt, url, &key).await?;
        let c = reader.ready().await?;
        c.execute(
            "insert into rotor_account_owner (account) select id from rotor_account
             on conflict do nothing",
            &[],
        )
        .await?;
        let (gens, records) = if take_all {
            let rows = c
                .query(
                    "update rotor_account_owner o set owner_gen = o.owner_gen + 1
                     from rotor_account a where a.id = o.account
                     returning o.account, o.owner_gen",
                    &[],
                )
                .await?;
            let gens: HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            (gens, read_all(c, &key).await?)
        } else {
            (HashMap::new(), Vec::new())
        };
        let gens = Arc::new(Mutex::new(gens));
        let versions = Generations::default();
        let record_gens = Generations::default();
        let fenced = Arc::new(AtomicU64::new(0));
        let sink = Records {
            conn: connect(&rt, url).await?,
            fencing: Fencing {
                key: key.clone(),
                gens: gens.clone(),
                versions: versions.clone(),
                record_gens: record_gens.clone(),
                fenced: fenced.clone(),
            },
        };
        let writer =
            Writer::start("account-writer-pg", sink).map_err(|e| DbError::Worker(e.to_string()))?;
        let store = PgStore {
            writer,
            reader: Arc::new(tokio::sync::Mutex::new(reader)),
            key,
            gens,
            versions,
            record_gens,
            fenced,
            rt: rt.handle()?,
        };
        Ok((store, records))
    }

    /// Writes refused since open because another process owns the account now.
    pub fn fenced_out(&self) -> u64 {
        self.fenced.load(Ordering::Relaxed)
    }

    /// The generation this process holds `id` at, if it holds it (the refresh fence writes at
    /// the same one).
    pub fn held_at(&self, id: &str) -> Option<u64> {
        lock(&self.gens)
            .get(id)
            .and_then(|g| u64::try_from(*g).ok())
    }

    /// Records that this process now holds `id` at `owner_gen` (a cluster claim).
    pub fn hold(&self, id: &str, owner_gen: u64) {
        lock(&self.gens).insert(id.to_owned(), i64::try_from(owner_gen).unwrap_or(i64::MAX));
    }

    /// This process no longer holds `id` (released, or its session was lost): its writes of
    /// the account are refused from now on, as the store would refuse them anyway.
    pub fn unhold(&self, id: &str) {
        lock(&self.gens).remove(id);
        lock(&self.versions).remove(id);
        lock(&self.record_gens).remove(id);
    }

    /// True if the record generation the store lists for `id` is past the one this process's
    /// copy was loaded at: the record was imported (a label, identity or tokens) since, and
    /// the copy reloads it ([`Store::load`] reads the generation with the record) — until it
    /// has, this stays true and the copy's writes leave the row alone. An account whose copy
    /// this process never loaded only notes it.
    pub fn record_moved(&self, id: &str, listed: u64) -> bool {
        let listed = i64::try_from(listed).unwrap_or(i64::MAX);
        let mut at = lock(&self.record_gens);
        match at.get(id) {
            Some(g) => listed > *g,
            None => {
                at.insert(id.to_owned(), listed);
                false
            }
        }
    }

    /// The token version this process's copy of `id` stands at, if known (it loaded the
    /// record, or stored a rotation or an import of it through the fence).
    pub fn token_version(&self, id: &str) -> Option<u64> {
        lock(&self.versions)
            .get(id)
            .and_then(|v| u64::try_from(*v).ok())
    }

    /// This process's copy of `id` now stands at token version `version` (its fence stored a
    /// rotation or an import of fresh tokens).
    pub fn note_version(&self, id: &str, version: u64) {
        lock(&self.versions).insert(id.to_owned(), i64::try_from(version).unwrap_or(i64::MAX));
    }

    /// Imports `incoming` into the database while nodes run ([`import_online`]) on this
    /// store's reading connection.
    pub async fn import<R>(
        &self,
        merge: impl FnMut(&mut Vec<AccountRecord>) -> (R, Vec<AccountRecord>),
    ) -> Result<R, super::DbError> {
        let key = &self.key;
        on_reader(&self.reader, BULK_BOUND, async |c| {
            import_online(c, key, merge).await
        })
        .await
    }

    /// Every record in the database, whichever node owns it, read on this store's reading
    /// connection and opened with its key (a cluster node's export).
    pub async fn records(&self) -> Result<Vec<AccountRecord>, DbError> {
        let key = &self.key;
        on_reader(&self.reader, BULK_BOUND, async |c| read_all(c, key).await).await
    }

    /// The generation this process holds `id` at now: what a write queued now is stamped with.
    fn stamp(&self, id: &str) -> Stamp {
        lock(&self.gens).get(id).copied()
    }

    /// The accounts this process holds a generation of.
    pub fn held(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.gens).keys().cloned().collect();
        ids.sort();
        ids
    }
}

impl Store for PgStore {
    fn save(&self, rec: &AccountRecord) -> io::Result<()> {
        self.writer
            .write(rec.id.clone(), rec, self.stamp(&rec.id), true)
    }

    fn save_coalesced(&self, rec: &AccountRecord) -> io::Result<()> {
        self.writer
            .write(rec.id.clone(), rec, self.stamp(&rec.id), false)
    }

    fn remove(&self, id: &str) -> io::Result<()> {
        self.writer.remove(id.to_owned(), self.stamp(id))
    }

    fn is_fenced_out(&self, err: &io::Error) -> bool {
        // The writer hands a waiter a copy of the sink's error, which keeps only its kind.
        err.kind() == FENCED_KIND || err.get_ref().is_some_and(|e| e.is::<FencedOut>())
    }

    /// Reads the record within [`ANSWER_BOUND`], on the store's runtime.
    fn load(&self, id: &str) -> io::Result<Option<AccountRecord>> {
        let (reader, account) = (self.reader.clone(), id.to_owned());
        let read = async move {
            // The record and the token version it stands at, read at one instant: from now
            // on this process writes the row only while the store still has that version.
            let read = async |client: &mut Client| {
                let row = client
                    .query_opt(
                        "select a.id, a.record::text, a.tokens, o.token_version, o.record_gen
                         from rotor_account a
                         left join rotor_account_owner o on o.account = a.id where a.id = $1",
                        &[&account],
                    )
                    .await?;
                Ok(row)
            };
            on_reader(&reader, ANSWER_BOUND, read).await
        };
        let row = block(self.rt.spawn(read))
            .map_err(io::Error::other)?
            .map_err(io::Error::other)?;
        let Some(row) = row else { return Ok(None) };
        let rec = record_of(&row, &self.key).map_err(io::Error::other)?;
        if let Some(v) = row.get::<_, Option<i64>>(3) {
            lock(&self.versions).insert(id.to_owned(), v);
        }
        if let Some(g) = row.get::<_, Option<i64>>(4) {
            lock(&self.record_gens).insert(id.to_owned(), g);
        }
        Ok(Some(rec))
    }
}

/// Every record in the database, without taking any account over (`store migrate`).
pub async fn read_records(url: &str, key: &StoreKey) -> Result<Vec<AccountRecord>, DbError> {
    let rt = runtime()?;
    let mut conn = prepare(&rt, url, key).await?;
    read_all(conn.ready().await?, key).await
}

/// Writes `records` into a database that holds no account yet, in one transaction
/// (`store migrate`): each account at generation 1, unowned.
pub async fn write_new(
    url: &str,
    key: &StoreKey,
    records: &[AccountRecord],
) -> Result<(), DbError> {
    let rt = runtime()?;
    let mut conn = prepare(&rt, url, key).await?;
    let tx = conn.ready().await?.transaction().await?;
    tx.batch_execute("lock table rotor_account in exclusive mode")
        .await?;
    let held: i64 = tx
        .query_one("select count(*) from rotor_account", &[])
        .await?
        .get(0);
    if held > 0 {
        return Err(DbError::NotEmpty { accounts: held });
    }
    for rec in records {
        write_unowned(&tx, rec, key).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Writes `rec` outside any node's ownership (a migration into an empty database, an offline
/// import while no node is live), inside the caller's transaction: the account's owner
/// generation moves on (1 for a new account), so a writer still holding an older one is
/// fenced out, and the record with its sealed tokens is stored or replaced.
async fn write_unowned(
    tx: &impl GenericClient,
    rec: &AccountRecord,
    key: &StoreKey,
) -> Result<(), DbError> {
    tx.execute(
        "insert into rotor_account_owner (account, owner_gen) values ($1, 1)
         on conflict (account) do update set owner_gen = rotor_account_owner.owner_gen + 1",
        &[&rec.id],
    )
    .await?;
    put_record(tx, rec, key).await
}

/// Stores or replaces `rec` with its sealed tokens from outside its owner's copy (an import,
/// a migration), inside the caller's transaction: the owner's generation stays, the record
/// generation moves on, so an owner reloads the record and its copy's writes leave the row
/// alone until it has.
async fn put_record(
    tx: &impl GenericClient,
    rec: &AccountRecord,
    key: &StoreKey,
) -> Result<(), DbError> {
    let (json, sealed) = columns_of(rec, key).map_err(|e| DbError::Worker(e.to_string()))?;
    tx.execute(
        "insert into rotor_account (id, record, tokens, added_at)
         values ($1, $2::text::jsonb, $3, $4)
         on conflict (id) do update set record = excluded.record, tokens = excluded.tokens,
             updated_at = clock_timestamp()",
        &[&rec.id, &json, &sealed, &rec.added_at],
    )
    .await?;
    tx.execute(
        "update rotor_account_owner set record_gen = record_gen + 1 where account = $1",
        &[&rec.id],
    )
    .await?;
    Ok(())
}

/// The tokens each stored account held before an import merged into them: what tells an
/// import of fresh tokens from one that changed only a label or identity fields (the online
/// and the offline import alike).
struct HeldTokens(HashMap<String, rotor_actors::Tokens>);

impl HeldTokens {
    /// What `records` hold now, before the merge.
    fn of(records: &[AccountRecord]) -> Self {
        HeldTokens(
            records
                .iter()
                .map(|r| (r.id.clone(), r.tokens.clone()))
                .collect(),
        )
    }

    /// True if `rec`, as the merge left it, carries tokens its account did not hold (a new
    /// account's included).
    fn fresh(&self, rec: &AccountRecord) -> bool {
        self.0.get(&rec.id) != Some(&rec.tokens)
    }
}

/// Every record of the database, oldest first; a row that does not open is named and left.
async fn read_all(c: &impl GenericClient, key: &StoreKey) -> Result<Vec<AccountRecord>, DbError> {
    let rows = c
        .query(
            "select id, record::text, tokens from rotor_account order by added_at, id",
            &[],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        match record_of(row, key) {
            Ok(rec) => out.push(rec),
            Err(e @ DbError::Corrupt { .. }) => {
                tracing::warn!(error = %e, "an account row could not be read; left in place, the others load");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// A row back into a record: the JSON with its tokens opened.
fn record_of(row: &tokio_postgres::Row, key: &StoreKey) -> Result<AccountRecord, DbError> {
    let id: String = row.get(0);
    let corrupt = |reason: String| DbError::Corrupt {
        id: id.clone(),
        reason,
    };
    let text: String = row.get(1);
    let sealed: Vec<u8> = row.get(2);
    let mut json: Value =
        serde_json::from_str(&text).map_err(|e| corrupt(format!("record: {e}")))?;
    let tokens = key
        .open(&sealed, &id, &format!("the tokens of account {id}"))
        .map_err(|e| corrupt(e.to_string()))?;
    let tokens: Value =
        serde_json::from_slice(&tokens).map_err(|e| corrupt(format!("tokens: {e}")))?;
    if let Value::Object(map) = &mut json {
        map.insert("tokens".into(), tokens);
    }
    let rec: AccountRecord =
        serde_json::from_value(json).map_err(|e| corrupt(format!("record: {e}")))?;
    if rec.id != id {
        return Err(corrupt(format!("holds the record of {:?}", rec.id)));
    }
    Ok(rec)
}

/// A record as its row's columns: the JSON without the tokens, and the tokens sealed.
fn columns_of(rec: &AccountRecord, key: &StoreKey) -> io::Result<(String, Vec<u8>)> {
    let mut json = serde_json::to_value(rec).map_err(io::Error::other)?;
    let tokens = match &mut json {
        Value::Object(map) => map.remove("tokens").unwrap_or(Value::Null),
        _ => Value::Null,
    };
    let tokens = serde_json::to_vec(&tokens).map_err(io::Error::other)?;
    Ok((json.to_string(), key.seal(&tokens, &rec.id)))
}

/// Where a queued operation may land, from the generation it was made under (`stamped`) and
/// the one this process holds the account at as the batch is written (`held`) — the one rule
/// for a write that outlived its session (docs/cluster.md "Fencing").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Landing {
    /// Still held at the generation it was made under: written at it (the database checks
    /// that generation once more).
    At(i64),
    /// Made while no generation was held, and none is now: an account new to the store,
    /// inserted at generation 1 unless another process has it.
    New,
    /// Made under a generation this process no longer holds (its session was lost, the
    /// account released or claimed again since) — or while it held none, and it holds one
    /// now: dropped, counted and logged, never written under the current generation.
    Stale,
}

fn landing(stamped: Stamp, held: Option<i64>) -> Landing {
    match (stamped, held) {
        (Some(s), Some(h)) if s == h => Landing::At(h),
        (None, None) => Landing::New,
        _ => Landing::Stale,
    }
}

/// What a write of an account's copy stores in a row that still has the copy's owner
/// generation, from where the copy stands — the token version and the record generation it
/// was loaded at (`None`: not tracked, as on a single node) — and where the row stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Put {
    /// Nothing moved the row since the copy was loaded: the whole record.
    Whole,
    /// Tokens imported since (through any node): the row keeps them until the copy has
    /// reloaded them ([`Store::load`], whose merge then writes the whole record again), so
    /// nothing queued before can put the old tokens back.
    Nothing,
    /// Only the record was imported since (a label, identity fields): the row keeps the
    /// import's record until the copy has reloaded it, but takes the copy's tokens — still
    /// the store's token version, so at least as new as the row's, and a rotation this
    /// copy stores must be durable before its fence finishes it.
    Tokens,
}

fn put_of(version: Option<i64>, record_gen: Option<i64>, row: (i64, i64)) -> Put {
    if version.is_some_and(|v| v != row.0) {
        Put::Nothing
    } else if record_gen.is_some_and(|g| g != row.1) {
        Put::Tokens
    } else {
        Put::Whole
    }
}

/// The writer's sink: each batch one transaction of fenced writes, within [`ANSWER_BOUND`].
struct Records {
    conn: Conn,
    fencing: Fencing,
}

/// What the sink's transactions check and count, shared with the [`PgStore`].
struct Fencing {
    key: StoreKey,
    gens: Generations,
    versions: Generations,
    record_gens: Generations,
    fenced: Arc<AtomicU64>,
}

impl Fencing {
    /// The generation `op` on `id` is written at ([`landing`]); a new account (an import) is
    /// inserted at generation 1, unless another process has it already. `None`: fenced out.
    async fn generation(
        tx: &tokio_postgres::Transaction<'_>,
        gens: &HashMap<String, i64>,
        new: &mut Vec<(String, i64)>,
        id: &str,
        op: &Op,
    ) -> Result<Option<i64>, tokio_postgres::Error> {
        let (Op::Write(_, stamped) | Op::Remove(stamped)) = op;
        let held = gens.get(id).copied();
        match landing(*stamped, held) {
            Landing::At(g) => return Ok(Some(g)),
            Landing::Stale => {
                tracing::warn!(account = %id, queued_at = ?stamped, held = ?held, "a write queued under a generation this process no longer holds was dropped");
                return Ok(None);
            }
            Landing::New => {}
        }
        let n = tx
            .execute(
                "insert into rotor_account_owner (account, owner_gen) values ($1, 1)
                 on conflict do nothing",
                &[&id],
            )
            .await?;
        if n == 1 {
            new.push((id.to_owned(), 1));
            return Ok(Some(1));
        }
        Ok(None)
    }

    /// Writes `batch` as one transaction on `client`.
    async fn transaction(
        &self,
        client: &mut Client,
        batch: &[(String, Op)],
    ) -> Result<Vec<io::Result<()>>, DbError> {
        let gens = lock(&self.gens).clone();
        let versions = lock(&self.versions).clone();
        let record_gens = lock(&self.record_gens).clone();
        let mut new = Vec::new();
        let tx = client.transaction().await?;
        // The owner rows in id order, the order an online import locks them in
        // (`decide_in`), so the two never deadlock; the answers in the batch's order.
        let mut order: Vec<usize> = (0..batch.len()).collect();
        order.sort_by(|a, b| batch[*a].0.cmp(&batch[*b].0));
        let mut out: Vec<io::Result<()>> = batch.iter().map(|_| Ok(())).collect();
        for i in order {
            let (id, op) = &batch[i];
            let landed = match (Self::generation(&tx, &gens, &mut new, id, op).await?, op) {
                (None, _) => false,
                (Some(g), Op::Write(rec, _)) => {
                    let put = tx.query_opt(HELD, &[id, &g]).await?.map(|row| {
                        put_of(
                            versions.get(id).copied(),
                            record_gens.get(id).copied(),
                            (row.get(0), row.get(1)),
                        )
                    });
                    match put {
                        None => false,
                        Some(Put::Nothing) => {
                            tracing::debug!(account = %id, "a write before the reload of imported tokens: the row keeps them");
                            true
                        }
                        // Sealed only now, for a write that lands: a refused one costs no
                        // encryption.
                        Some(put) => match columns_of(rec, &self.key) {
                            Ok((json, sealed)) if put == Put::Whole => {
                                let args: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
                                    [id, &g, &json, &sealed, &rec.added_at];
                                tx.execute(WRITE, &args).await? == 1
                            }
                            Ok((_, sealed)) => {
                                tracing::debug!(account = %id, "a write before the reload of an imported record: only its tokens are stored");
                                tx.execute(
                                    "update rotor_account set tokens = $2, updated_at = clock_timestamp()
                                     where id = $1",
                                    &[id, &sealed],
                                )
                                .await?
                                    == 1
                            }
                            Err(e) => {
                                out[i] = Err(e);
                                continue;
                            }
                        },
                    }
                }
                (Some(g), Op::Remove(_)) => {
                    let row = tx
                        .query_opt(
                            "select owner_gen from rotor_account_owner where account = $1
                             for update",
                            &[id],
                        )
                        .await?;
                    let ours = row.is_none_or(|r| r.get::<_, i64>(0) == g);
                    if ours {
                        tx.execute("delete from rotor_account where id = $1", &[id])
                            .await?;
                        tx.execute("delete from rotor_account_owner where account = $1", &[id])
                            .await?;
                    }
                    ours
                }
            };
            if !landed {
                self.fenced.fetch_add(1, Ordering::Relaxed);
                FENCED_OUT_TOTAL.fetch_add(1, Ordering::Relaxed);
                out[i] = Err(io::Error::new(FENCED_KIND, FencedOut { id: id.clone() }));
            }
        }
        tx.commit().await?;
        let mut held = lock(&self.gens);
        held.extend(new);
        for (id, op) in batch {
            if matches!(op, Op::Remove(_)) {
                held.remove(id);
            }
        }
        Ok(out)
    }
}

impl Sink for Records {
    type Key = String;

    /// Runs the batch's transaction on the store's runtime (the writer thread is on none),
    /// opening the connection first if need be, all within [`ANSWER_BOUND`].
    fn apply(&mut self, batch: &[(String, Op)]) -> Vec<io::Result<()>> {
        let Records { conn, fencing } = self;
        let outcome = conn.rt.handle().and_then(|rt| {
            rt.block_on(async {
                let deadline = tokio::time::Instant::now() + ANSWER_BOUND;
                let write = async |client: &mut Client| fencing.transaction(client, batch).await;
                conn.link.within(deadline, write).await
            })
        });
        match outcome {
            Ok(out) => out,
            Err(e) => {
                let e = io::Error::other(e);
                batch.iter().map(|_| Err(copy(&e))).collect()
            }
        }
    }

    fn retryable(&self, e: &io::Error) -> bool {
        !e.get_ref().is_some_and(|inner| inner.is::<FencedOut>())
    }
}

#[cfg(test)]
mod tests {
    use super::{Landing, Put, landing, put_of};

    #[test]
    fn a_copy_writes_over_an_import_nothing_before_its_reload_but_fresh_tokens_of_its_own() {
        assert_eq!(put_of(Some(3), Some(1), (3, 1)), Put::Whole);
        assert_eq!(put_of(None, None, (3, 1)), Put::Whole, "not tracked");
        assert_eq!(
            put_of(Some(3), Some(1), (4, 2)),
            Put::Nothing,
            "tokens imported"
        );
        assert_eq!(
            put_of(Some(3), Some(1), (3, 2)),
            Put::Tokens,
            "a label imported"
        );
    }

    #[test]
    fn a_queued_write_lands_only_at_the_generation_it_was_made_under_if_still_held() {
        assert_eq!(landing(Some(3), Some(3)), Landing::At(3));
        assert_eq!(
            landing(None, None),
            Landing::New,
            "an account new to the store"
        );
        assert_eq!(
            landing(Some(3), Some(4)),
            Landing::Stale,
            "claimed again since"
        );
        assert_eq!(landing(Some(3), None), Landing::Stale, "given up since");
        assert_eq!(
            landing(None, Some(4)),
            Landing::Stale,
            "made while not held"
        );
    }
}
