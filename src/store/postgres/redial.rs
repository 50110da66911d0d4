//! A PostgreSQL connection that comes back: every long-lived connection of the process (the
//! records' reader and writer, the refresh fence, the node's lease and claim loops, the shared
//! affinity table) is a [`Redialer`]. It opens lazily through [`super::open`] — the one way a
//! connection is opened — within a bound, applies [`super::bound_waits`] to every new
//! connection, and opens again once the client it has closed (the server restarted, the
//! network cut it) or its user [`forget`](Redialer::forget)s it (a statement gave no answer in
//! time: a stalled network sends no reset, so the client never notices it is gone). A reopen is
//! logged once, as a warning; the URL (a secret: it may carry a password) never is.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::Client;

use super::DbError;

/// What a call bounded in time ([`Redialer::within`]) fails with past its deadline.
pub fn unanswered() -> DbError {
    DbError::Worker("the database did not answer in time".into())
}

/// What its user makes of a freshly opened client (prepared statements, a wrapper type).
pub trait Dialed: Sized + Send + 'static {
    /// Builds `Self` on `client`, already bounded by [`super::bound_waits`].
    fn dialed(client: Client) -> impl Future<Output = Result<Self, DbError>> + Send;
    /// Whether the connection underneath has ended.
    fn is_closed(&self) -> bool;
}

impl Dialed for Client {
    async fn dialed(client: Client) -> Result<Self, DbError> {
        Ok(client)
    }

    fn is_closed(&self) -> bool {
        Client::is_closed(self)
    }
}

impl<T: Dialed + Sync> Dialed for Arc<T> {
    async fn dialed(client: Client) -> Result<Self, DbError> {
        Ok(Arc::new(T::dialed(client).await?))
    }

    fn is_closed(&self) -> bool {
        T::is_closed(self)
    }
}

/// One connection of `T`, opened on first use and again whenever it is gone.
pub struct Redialer<T> {
    /// Where to connect (a secret: never logged, so no `Debug`).
    url: String,
    /// Bound on opening (connect + session settings + [`Dialed::dialed`]), and on this
    /// connection's lock waits and idle transactions ([`super::bound_waits`]).
    bound: Duration,
    /// Names the connection in the log ("the refresh fence").
    name: &'static str,
    /// The runtime the connection's task runs on (`None`: the caller's).
    runtime: Option<tokio::runtime::Handle>,
    current: Option<T>,
    /// Whether a connection was open before: the next open is a reopen, logged.
    opened: bool,
}

impl<T: Dialed> Redialer<T> {
    /// A connection to `url`, not opened yet; every open, and the connection's lock waits and
    /// idle transactions, bounded by `bound`; `name` says whose it is in the log.
    pub fn new(url: &str, bound: Duration, name: &'static str) -> Self {
        Redialer {
            url: url.to_owned(),
            bound,
            name,
            runtime: None,
            current: None,
            opened: false,
        }
    }

    /// Runs the connection's task on `runtime` (so a caller on another runtime, or on none,
    /// can block on a statement).
    pub fn on(mut self, runtime: tokio::runtime::Handle) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// The bound it opens within.
    pub fn bound(&self) -> Duration {
        self.bound
    }

    /// The open connection, opened first if there is none or it closed. A failure changes
    /// nothing: the next call tries again.
    pub async fn ready(&mut self) -> Result<&mut T, DbError> {
        if self.current.as_ref().is_none_or(T::is_closed) {
            self.current = None;
            let dialed = self.open().await;
            let dialed = dialed.inspect_err(|e| {
                tracing::debug!(connection = self.name, error = %e, "postgres: opening failed");
            })?;
            if std::mem::replace(&mut self.opened, true) {
                tracing::warn!(
                    connection = self.name,
                    "postgres: the connection was gone; a new one is open"
                );
            }
            self.current = Some(dialed);
        }
        Ok(self.current.as_mut().expect("just opened"))
    }

    /// The connection if one is open, without opening one.
    pub fn current(&self) -> Option<&T> {
        self.current.as_ref().filter(|c| !c.is_closed())
    }

    /// [`current`](Self::current), mutably.
    pub fn current_mut(&mut self) -> Option<&mut T> {
        self.current.as_mut().filter(|c| !c.is_closed())
    }

    /// Runs `op` on the connection — opened first if there is none or it closed — with both
    /// done by `deadline`. Past it the connection is dropped (behind a stalled network it would
    /// answer nothing more, and no reset tells the client so; the next call opens a new one)
    /// and the call fails as a database that did not answer ([`unanswered`]): whether its
    /// statements took effect is not known (a commit already sent may still land).
    pub async fn within<R>(
        &mut self,
        deadline: Instant,
        op: impl AsyncFnOnce(&mut T) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        let run = async { op(self.ready().await?).await };
        let outcome = tokio::time::timeout_at(deadline, run).await;
        outcome.unwrap_or_else(|_| {
            self.forget();
            Err(unanswered())
        })
    }

    /// Drops the connection (a statement on it got no answer in time): the next
    /// [`ready`](Self::ready) opens a new one.
    pub fn forget(&mut self) {
        self.current = None;
    }

    /// Opens one connection within the bound, on the runtime if one was given.
    async fn open(&self) -> Result<T, DbError> {
        let (url, bound) = (self.url.clone(), self.bound);
        let go = async move {
            let client = super::open(&url).await?;
            super::bound_waits(&client, bound).await?;
            T::dialed(client).await
        };
        let go = async move {
            tokio::time::timeout(bound, go).await.unwrap_or_else(|_| {
                Err(DbError::Worker(format!(
                    "the database did not answer within {bound:?}"
                )))
            })
        };
        match &self.runtime {
            None => go.await,
            Some(rt) => rt
                .spawn(go)
                .await
                .map_err(|e| DbError::Worker(e.to_string()))?,
        }
    }
}
