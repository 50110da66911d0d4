//! The ownership rules on PostgreSQL (docs/cluster.md): node sessions and account ownership
//! rows, each operation one transaction that locks the rows it decides on (`FOR UPDATE`, in a
//! fixed order: sessions by node id, then the account), lets
//! [`rotor_actors::ownership::rules::Rules`] decide — the one implementation of the rules — and
//! writes back what changed. Times are the database's own clock (`clock_timestamp()`), unless a
//! test hands one in.
//!
//! The schema carries a version ([`SCHEMA_VERSION`]); [`LeaseDb::migrate`] applies what is
//! missing at start, and a database written by a newer codex-rotor is refused with a message
//! that says so, never altered. The account records themselves are [`records`]; the shared
//! conversation affinities [`affinity`].

use rotor_actors::ownership::rules::{AccountRow, Claimed, Intent, Owner, Refusal, Rules, Session};
use rotor_actors::ownership::{Ms, NodeId};
use tokio_postgres::{Client, GenericClient, NoTls, Transaction};

pub mod affinity;
pub mod records;
pub mod redial;
mod schema;

pub use redial::Redialer;

pub use schema::SCHEMA_VERSION;

/// What went wrong talking to the database (a refusal by the rules is not an error).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Connecting, or a statement, failed.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The database was written by a newer codex-rotor.
    #[error(
        "the database schema is version {found}, newer than this codex-rotor's {SCHEMA_VERSION}: \
         upgrade codex-rotor (nothing was changed)"
    )]
    NewerSchema {
        /// The version found.
        found: i32,
    },
    /// The store key does not open what the database holds (or is malformed).
    #[error(transparent)]
    Seal(#[from] crate::store::SealError),
    /// A row is not a record this build reads.
    #[error("account {id} in the database: {reason}")]
    Corrupt {
        /// The account id of the row.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `store migrate` fills only an empty database.
    #[error(
        "the database already holds {accounts} accounts: store migrate only fills an empty one \
         (nothing was changed)"
    )]
    NotEmpty {
        /// How many it holds.
        accounts: i64,
    },
    /// An offline import while nodes hold live sessions: they own the accounts and would never
    /// see the write.
    #[error(
        "live node sessions in the database ({}): a running node owns the accounts; import \
         through its admin API (`codex-rotor accounts --admin-url http://NODE:PORT …`), or stop \
         every node first (nothing was changed)",
        nodes.join(", ")
    )]
    NodesLive {
        /// The nodes whose session has not expired.
        nodes: Vec<String>,
    },
    /// The database's own worker thread could not start or went away.
    #[error("the postgres worker: {0}")]
    Worker(String),
}

/// The ownership rules on one PostgreSQL database.
pub struct LeaseDb {
    client: Client,
}

/// `Some(now)` in tests; `None` = the database's clock.
pub type Clock = Option<Ms>;

/// The database's clock in unix ms, as SQL.
macro_rules! db_clock_ms {
    () => {
        "(extract(epoch from clock_timestamp()) * 1000)::bigint"
    };
}

/// The database's clock in unix ms ([`NOW`] without a test clock).
const CLOCK_MS: &str = db_clock_ms!();

/// The test clock `$1` if given, else the database's clock.
const NOW: &str = concat!("coalesce($1::bigint, ", db_clock_ms!(), ")");

/// Connects to `url` (a libpq connection string or URL; a secret, never logged) and runs the
/// connection's task on the current runtime: the one way every connection of the process is
/// opened.
async fn open(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "postgres connection ended");
        }
    });
    Ok(client)
}

/// Bounds how long a connection's work can hold or wait for a row lock (at most `bound`
/// each): a transaction left idle — its process paused by SIGSTOP or a VM freeze between two
/// statements — is ended by the server, so its locks never stall the other nodes' renewals,
/// claims and writes; and a statement waiting on a lock gives up instead of outliving its own
/// lease. [`Redialer`] applies it to every connection it opens.
pub async fn bound_waits(client: &Client, bound: std::time::Duration) -> Result<(), DbError> {
    let ms = bound.as_millis().max(100);
    client
        .batch_execute(&format!(
            "set idle_in_transaction_session_timeout = {ms}; set lock_timeout = {ms}"
        ))
        .await?;
    Ok(())
}

/// A [`LeaseDb`] on a [`Redialer`]: the node's loops and its refresh fence.
impl redial::Dialed for LeaseDb {
    async fn dialed(client: Client) -> Result<Self, DbError> {
        Ok(Self { client })
    }

    fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

impl LeaseDb {
    /// Connects (`url`: a libpq connection string or URL) and runs the connection task; a
    /// connection that should come back after an outage is a [`Redialer`] instead.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        Ok(Self {
            client: open(url).await?,
        })
    }

    /// Brings the schema to [`SCHEMA_VERSION`]; refuses a newer one. Returns the version the
    /// database had before.
    pub async fn migrate(&mut self) -> Result<i32, DbError> {
        schema::migrate(&mut self.client).await
    }

    /// The database's time (or the test's).
    async fn now(tx: &impl GenericClient, clock: Clock) -> Result<Ms, DbError> {
        let row = tx.query_one(&format!("select {NOW}"), &[&clock]).await?;
        Ok(row.get(0))
    }

    /// Runs `decide` on the rows `nodes` and `account` name, each attempt one transaction
    /// ([`decide_in`]), and commits what it changed when it accepted.
    async fn decide<T>(
        &mut self,
        clock: Clock,
        nodes: Vec<&str>,
        account: Option<&str>,
        decide: impl Fn(&mut Rules, Ms) -> Result<T, Refusal>,
    ) -> Result<Result<T, Refusal>, DbError> {
        let accounts: Vec<&str> = account.into_iter().collect();
        loop {
            let tx = self.client.transaction().await?;
            match decide_in(&tx, clock, &nodes, &accounts, &decide).await? {
                // An owner changed between the look and the lock: start again.
                None => continue,
                Some(verdict) => {
                    if verdict.is_ok() {
                        tx.commit().await?;
                    }
                    return Ok(verdict);
                }
            }
        }
    }

    /// Starts a session for `node` ([`Rules::acquire`]).
    pub async fn acquire(
        &mut self,
        node: &str,
        ttl: Ms,
        clock: Clock,
    ) -> Result<Result<u64, Refusal>, DbError> {
        let tx = self.client.transaction().await?;
        // A first acquire inserts the row; the lock then serialises concurrent acquires.
        tx.execute(
            "insert into rotor_node_session (node, epoch, expires_at) values ($1, 0, 0)
             on conflict (node) do nothing",
            &[&node],
        )
        .await?;
        tx.commit().await?;
        self.decide(clock, vec![node], None, |r, now| {
            if r.sessions.get(node).is_some_and(|s| s.epoch == 0) {
                r.sessions.remove(node);
            }
            r.acquire(node, ttl, now)
        })
        .await
    }

    /// Extends the session ([`Rules::renew`]).
    pub async fn renew(
        &mut self,
        node: &str,
        epoch: u64,
        ttl: Ms,
        clock: Clock,
    ) -> Result<Result<Ms, Refusal>, DbError> {
        self.decide(clock, vec![node], None, |r, now| {
            r.renew(node, epoch, ttl, now)
        })
        .await
    }

    /// Adds an account row if it is missing.
    pub async fn insert_account(&mut self, account: &str) -> Result<(), DbError> {
        self.client
            .execute(
                "insert into rotor_account_owner (account) values ($1) on conflict do nothing",
                &[&account],
            )
            .await?;
        Ok(())
    }

    /// The account's owner generation as a claimer reads it.
    pub async fn owner_gen(&self, account: &str) -> Result<Option<u64>, DbError> {
        let row = self
            .client
            .query_opt(
                "select owner_gen from rotor_account_owner where account = $1",
                &[&account],
            )
            .await?;
        Ok(row.map(|r| u64_of(r.get(0))))
    }

    /// Takes an account ([`Rules::claim`]).
    pub async fn claim(
        &mut self,
        account: &str,
        node: &str,
        epoch: u64,
        seen_gen: u64,
        clock: Clock,
    ) -> Result<Result<Claimed, Refusal>, DbError> {
        self.decide(clock, vec![node], Some(account), |r, now| {
            r.claim(account, node, epoch, seen_gen, now)
        })
        .await
    }

    /// Gives an account up ([`Rules::release`]).
    pub async fn release(
        &mut self,
        account: &str,
        node: &str,
        epoch: u64,
        owner_gen: u64,
    ) -> Result<Result<(), Refusal>, DbError> {
        self.decide(None, vec![node], Some(account), |r, _| {
            r.release(account, node, epoch, owner_gen)
        })
        .await
    }

    /// Commits a refresh intent ([`Rules::begin_refresh`]) with `nonce`; `window` from now.
    #[allow(clippy::too_many_arguments)]
    pub async fn begin_refresh(
        &mut self,
        account: &str,
        node: &str,
        epoch: u64,
        owner_gen: u64,
        nonce: u64,
        window: Ms,
        clock: Clock,
    ) -> Result<Result<Intent, Refusal>, DbError> {
        self.decide(clock, vec![node], Some(account), |r, now| {
            r.begin_refresh(account, node, epoch, owner_gen, nonce, now + window, now)
        })
        .await
    }

    /// Stores a rotation ([`Rules::finish_refresh`]).
    pub async fn finish_refresh(
        &mut self,
        account: &str,
        node: &str,
        epoch: u64,
        owner_gen: u64,
        intent: &Intent,
    ) -> Result<Result<u64, Refusal>, DbError> {
        self.decide(None, vec![node], Some(account), |r, _| {
            r.finish_refresh(account, node, epoch, owner_gen, intent)
        })
        .await
    }

    /// Ends a refresh that stored nothing ([`Rules::abandon_refresh`]).
    pub async fn abandon_refresh(
        &mut self,
        account: &str,
        node: &str,
        epoch: u64,
        owner_gen: u64,
        intent: &Intent,
        reached_upstream: bool,
    ) -> Result<Result<(), Refusal>, DbError> {
        self.decide(None, vec![node], Some(account), |r, _| {
            r.abandon_refresh(account, node, epoch, owner_gen, intent, reached_upstream)
        })
        .await
    }

    /// Fresh tokens from an import ([`Rules::import_tokens`]).
    pub async fn import_tokens(&mut self, account: &str) -> Result<Result<u64, Refusal>, DbError> {
        self.decide(None, vec![], Some(account), |r, _| r.import_tokens(account))
            .await
    }

    /// Ends the session at once ([`Rules::end_session`]): a planned shutdown, after its
    /// accounts were released, so peers need not wait out the TTL.
    pub async fn end_session(
        &mut self,
        node: &str,
        epoch: u64,
    ) -> Result<Result<(), Refusal>, DbError> {
        self.decide(None, vec![node], None, |r, now| {
            r.end_session(node, epoch, now)
        })
        .await
    }

    /// Publishes what the node says about itself with an acquire or renewal: the address
    /// peers reach it at and its summary (JSON). Only its session at `epoch` is changed.
    pub async fn publish(
        &self,
        node: &str,
        epoch: u64,
        advertise: &str,
        summary: &serde_json::Value,
    ) -> Result<(), DbError> {
        self.client
            .execute(
                "update rotor_node_session set advertise = $3, summary = $4::text::jsonb
                 where node = $1 and epoch = $2",
                &[&node, &i64_of(epoch), &advertise, &summary.to_string()],
            )
            .await?;
        Ok(())
    }

    /// The live nodes and every stored account's ownership, read at one instant of the
    /// database's clock; who is live is decided by [`Rules`], as everywhere.
    pub async fn listing(&mut self) -> Result<Listing, DbError> {
        let tx = self
            .client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let now = Self::now(&tx, None).await?;
        let mut rules = Rules::default();
        let mut published = std::collections::HashMap::new();
        for row in tx
            .query(
                "select node, epoch, expires_at, advertise, summary::text from rotor_node_session
                 where epoch > 0",
                &[],
            )
            .await?
        {
            let node: NodeId = row.get(0);
            let summary: Option<String> = row.get(4);
            let summary = summary.and_then(|t| serde_json::from_str(&t).ok());
            published.insert(node.clone(), (row.get::<_, Option<String>>(3), summary));
            rules.sessions.insert(
                node,
                Session {
                    epoch: u64_of(row.get(1)),
                    expires_at: row.get(2),
                },
            );
        }
        let rows = tx
            .query(
                &format!(
                    "select o.account, o.record_gen, {} from rotor_account_owner o
                     join rotor_account a on a.id = o.account order by o.account",
                    ACCOUNT_COLUMNS
                        .split(", ")
                        .map(|c| format!("o.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                &[],
            )
            .await?;
        tx.commit().await?;
        let nodes = rules
            .live_nodes(now)
            .into_iter()
            .map(|(node, epoch)| {
                let left = rules.sessions.get(&node).map_or(0, |s| s.expires_at - now);
                let (advertise, summary) = published.remove(&node).unwrap_or_default();
                LiveNode {
                    node,
                    epoch,
                    advertise,
                    summary,
                    left,
                }
            })
            .collect();
        let accounts = rows
            .iter()
            .map(|r| {
                let row = account_of(r, 2);
                Ownership {
                    account: r.get(0),
                    owner: row.owner.clone().filter(|_| rules.owner_live(&row, now)),
                    owner_gen: row.owner_gen,
                    token_version: row.token_version,
                    record_gen: u64_of(r.get(1)),
                    refresh_ambiguous: row.refresh_ambiguous,
                    refreshing: row.intent.is_some(),
                }
            })
            .collect();
        Ok(Listing { nodes, accounts })
    }

    /// Every row, for tests and the admin view.
    pub async fn snapshot(&self) -> Result<Rules, DbError> {
        let mut rules = Rules::default();
        for row in self
            .client
            .query(
                "select node, epoch, expires_at from rotor_node_session where epoch > 0",
                &[],
            )
            .await?
        {
            rules.sessions.insert(
                row.get(0),
                Session {
                    epoch: u64_of(row.get(1)),
                    expires_at: row.get(2),
                },
            );
        }
        for row in self
            .client
            .query(
                &format!("select account, {ACCOUNT_COLUMNS} from rotor_account_owner"),
                &[],
            )
            .await?
        {
            rules.accounts.insert(row.get(0), account_of(&row, 1));
        }
        Ok(rules)
    }
}

/// A live node session, as [`LeaseDb::listing`] reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveNode {
    /// The node id.
    pub node: NodeId,
    /// Its session epoch.
    pub epoch: u64,
    /// The address it published.
    pub advertise: Option<String>,
    /// The summary it published (JSON), if it did.
    pub summary: Option<serde_json::Value>,
    /// Store time left on its session, in ms.
    pub left: Ms,
}

/// One stored account's ownership, as [`LeaseDb::listing`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    /// The account id.
    pub account: String,
    /// Its owner, only while the owner's session is live.
    pub owner: Option<Owner>,
    /// The owner generation a claim must name.
    pub owner_gen: u64,
    /// +1 on every stored rotation.
    pub token_version: u64,
    /// +1 on every write of the record from outside its owner's copy (an import).
    pub record_gen: u64,
    /// Nobody may refresh it until fresh tokens are imported.
    pub refresh_ambiguous: bool,
    /// A refresh intent is recorded (in flight, or left by a lapsed owner).
    pub refreshing: bool,
}

/// The live nodes and the accounts' ownership at one instant of the store's clock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    /// Live sessions, by node id.
    pub nodes: Vec<LiveNode>,
    /// Every account that has a record, by id.
    pub accounts: Vec<Ownership>,
}

const ACCOUNT_COLUMNS: &str = "owner_node, owner_epoch, owner_gen, token_version, intent_gen, \
     intent_deadline, intent_token_version, last_intent_gen, refresh_ambiguous, \
     finished_intent_gen, intent_nonce";

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

async fn load_session(tx: &Transaction<'_>, node: &str) -> Result<Option<Session>, DbError> {
    let row = tx
        .query_opt(
            "select epoch, expires_at from rotor_node_session where node = $1 for update",
            &[&node],
        )
        .await?;
    Ok(row.map(|r| Session {
        epoch: u64_of(r.get(0)),
        expires_at: r.get(1),
    }))
}

async fn load_account(tx: &Transaction<'_>, account: &str) -> Result<Option<AccountRow>, DbError> {
    let row = tx
        .query_opt(
            &format!(
                "select {ACCOUNT_COLUMNS} from rotor_account_owner where account = $1 for update"
            ),
            &[&account],
        )
        .await?;
    Ok(row.map(|r| account_of(&r, 0)))
}

fn account_of(r: &tokio_postgres::Row, at: usize) -> AccountRow {
    let owner_node: Option<NodeId> = r.get(at);
    let owner_epoch: Option<i64> = r.get(at + 1);
    let intent_gen: Option<i64> = r.get(at + 4);
    let intent_deadline: Option<i64> = r.get(at + 5);
    let intent_version: Option<i64> = r.get(at + 6);
    let intent_nonce: Option<i64> = r.get(at + 10);
    AccountRow {
        owner: owner_node.zip(owner_epoch).map(|(node, e)| Owner {
            node,
            epoch: u64_of(e),
        }),
        owner_gen: u64_of(r.get(at + 2)),
        token_version: u64_of(r.get(at + 3)),
        intent: match (intent_gen, intent_deadline, intent_version) {
            (Some(g), Some(d), Some(v)) => Some(Intent {
                intent_gen: u64_of(g),
                deadline: d,
                token_version: u64_of(v),
                nonce: intent_nonce.map_or(0, |n| n as u64),
            }),
            _ => None,
        },
        last_intent_gen: u64_of(r.get(at + 7)),
        refresh_ambiguous: r.get(at + 8),
        finished_intent_gen: u64_of(r.get(at + 9)),
    }
}

/// One ownership decision inside the caller's transaction `tx`: locks the sessions of
/// `nodes` and of the current owners of `accounts` (in node-id order), then the rows of
/// `accounts` (in id order) — the one lock order of every decision, so two never deadlock —
/// runs `decide` on them at the store's time and writes back the rows it changed when it
/// accepted (the caller commits). `None`: an account's owner changed between the look and
/// the lock, and its session is not locked; the caller starts its transaction again.
pub(crate) async fn decide_in<T>(
    tx: &Transaction<'_>,
    clock: Clock,
    nodes: &[&str],
    accounts: &[&str],
    decide: impl FnOnce(&mut Rules, Ms) -> Result<T, Refusal>,
) -> Result<Option<Result<T, Refusal>>, DbError> {
    let now = LeaseDb::now(tx, clock).await?;
    let mut accounts = accounts.to_vec();
    accounts.sort_unstable();
    accounts.dedup();
    let mut hints = std::collections::BTreeMap::new();
    for a in &accounts {
        let owner = tx
            .query_opt(
                "select owner_node from rotor_account_owner where account = $1",
                &[a],
            )
            .await?
            .and_then(|r| r.get::<_, Option<String>>(0));
        hints.insert(*a, owner);
    }
    let mut lock: Vec<&str> = nodes.to_vec();
    lock.extend(hints.values().flatten().map(String::as_str));
    lock.sort_unstable();
    lock.dedup();
    let mut rules = Rules::default();
    for n in &lock {
        if let Some(s) = load_session(tx, n).await? {
            rules.sessions.insert((*n).to_owned(), s);
        }
    }
    for a in &accounts {
        if let Some(row) = load_account(tx, a).await? {
            let owner = row.owner.as_ref().map(|o| o.node.as_str());
            if owner.is_some() && owner != hints.get(a).and_then(Option::as_deref) {
                return Ok(None);
            }
            rules.accounts.insert((*a).to_owned(), row);
        }
    }
    let before = rules.clone();
    let verdict = decide(&mut rules, now);
    if verdict.is_ok() {
        write_back(tx, &before, &rules).await?;
    }
    Ok(Some(verdict))
}

/// Writes the sessions and accounts that differ between `before` and `after`.
async fn write_back(tx: &Transaction<'_>, before: &Rules, after: &Rules) -> Result<(), DbError> {
    for (node, s) in &after.sessions {
        if before.sessions.get(node) != Some(s) {
            tx.execute(
                "insert into rotor_node_session (node, epoch, expires_at) values ($1, $2, $3)
                 on conflict (node) do update set epoch = $2, expires_at = $3",
                &[node, &i64_of(s.epoch), &s.expires_at],
            )
            .await?;
        }
    }
    for (account, a) in &after.accounts {
        if before.accounts.get(account) == Some(a) {
            continue;
        }
        let owner_node = a.owner.as_ref().map(|o| o.node.clone());
        let owner_epoch = a.owner.as_ref().map(|o| i64_of(o.epoch));
        let intent = a.intent.as_ref();
        tx.execute(
            "update rotor_account_owner set owner_node = $2, owner_epoch = $3, owner_gen = $4,
                 token_version = $5, intent_gen = $6, intent_deadline = $7,
                 intent_token_version = $8, last_intent_gen = $9, refresh_ambiguous = $10,
                 finished_intent_gen = $11, intent_nonce = $12
             where account = $1",
            &[
                account,
                &owner_node,
                &owner_epoch,
                &i64_of(a.owner_gen),
                &i64_of(a.token_version),
                &intent.map(|i| i64_of(i.intent_gen)),
                &intent.map(|i| i.deadline),
                &intent.map(|i| i64_of(i.token_version)),
                &i64_of(a.last_intent_gen),
                &a.refresh_ambiguous,
                &i64_of(a.finished_intent_gen),
                // A nonce is any 64 bits, stored as the bigint of the same bits.
                &intent.map(|i| i.nonce as i64),
            ],
        )
        .await?;
    }
    Ok(())
}

/// The seam's operations on the database's clock.
impl crate::store::LeaseStore for LeaseDb {
    type Error = DbError;

    async fn acquire(&mut self, node: &str, ttl: Ms) -> Result<Result<u64, Refusal>, DbError> {
        LeaseDb::acquire(self, node, ttl, None).await
    }

    async fn renew(
        &mut self,
        node: &str,
        epoch: u64,
        ttl: Ms,
    ) -> Result<Result<Ms, Refusal>, DbError> {
        LeaseDb::renew(self, node, epoch, ttl, None).await
    }

    async fn claim(
        &mut self,
        account: &str,
        node: &str,
        epoch: u64,
        seen_gen: u64,
    ) -> Result<Result<Claimed, Refusal>, DbError> {
        LeaseDb::claim(self, account, node, epoch, seen_gen, None).await
    }

    async fn release(
        &mut self,
        account: &str,
        node: &str,
        epoch: u64,
        owner_gen: u64,
    ) -> Result<Result<(), Refusal>, DbError> {
        LeaseDb::release(self, account, node, epoch, owner_gen).await
    }

    async fn begin_refresh(
        &mut self,
        account: &str,
        node: &str,
        epoch: u64,
        owner_gen: u64,
        nonce: u64,
        window: Ms,
    ) -> Result<Result<Intent, Refusal>, DbError> {
        LeaseDb::begin_refresh(self, account, node, epoch, owner_gen, nonce, window, None).await
    }

    async fn finish_refresh(
        &mut self,
        account: &str,
        node: &str,
        epoch: u64,
        owner_gen: u64,
        intent: &Intent,
    ) -> Result<Result<u64, Refusal>, DbError> {
        LeaseDb::finish_refresh(self, account, node, epoch, owner_gen, intent).await
    }
}
