//! Binding, serving and stopping the simulator, and [`SimHandle`], the in-process remote
//! control. Connections are accepted by hand (not `axum::serve`) so each one can be wrapped in
//! a [`CutIo`] that handlers may cut or reset on purpose.

use super::conn::{ConnControl, CutIo};
use super::options::{AccountSpec, Counters, CreatedAccount, FaultSpec, SimOptions};
use super::state::{Standing, World};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tower::Service;

/// Entry point of the simulator.
pub struct Simulator;

/// Remote control of a running simulator; cheap to clone.
#[derive(Clone)]
pub struct SimHandle {
    /// The address it actually listens on (useful with port 0).
    pub addr: SocketAddr,
    world: Arc<World>,
    stop: watch::Sender<bool>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Simulator {
    /// Binds `listen` and serves until [`SimHandle::shutdown`].
    pub async fn start(opts: SimOptions, listen: SocketAddr) -> anyhow::Result<SimHandle> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let world = Arc::new(World::new(opts));
        let router = super::router::build(world.clone());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, router, stopped));
        Ok(SimHandle {
            addr,
            world,
            stop,
            task: Arc::new(Mutex::new(Some(task))),
        })
    }
}

/// Accepts connections until told to stop, then lets open connections finish briefly.
async fn accept_loop(
    listener: TcpListener,
    router: axum::Router,
    mut stopped: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                conns.spawn(serve_conn(stream, router.clone(), stopped.clone()));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(2), drain)
        .await
        .is_err()
    {
        conns.abort_all();
    }
}

/// Serves one HTTP/1.1 connection with the router, placing its [`ConnControl`] into every
/// request's extensions.
async fn serve_conn(
    stream: tokio::net::TcpStream,
    router: axum::Router,
    mut stopped: watch::Receiver<bool>,
) {
    let (io, control) = CutIo::new(stream);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut()
            .insert::<Arc<ConnControl>>(control.clone());
        let mut router = router.clone();
        async move { router.call(req.map(axum::body::Body::new)).await }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stopped.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

impl SimHandle {
    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://ADDR/backend-api`: responses at `{backend_url}/codex/responses`, usage at
    /// `{backend_url}/wham/usage`, models at `{backend_url}/codex/models`.
    pub fn backend_url(&self) -> String {
        format!("{}/backend-api", self.base_url())
    }

    /// `http://ADDR/oauth/token`.
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.base_url())
    }

    /// Creates an account and returns its Codex CLI `auth.json`.
    pub fn create_account(&self, spec: AccountSpec) -> CreatedAccount {
        self.world.create_account(spec)
    }

    /// Ids of every account.
    pub fn accounts(&self) -> Vec<String> {
        self.world.account_ids()
    }

    /// Adds a scripted fault.
    pub fn inject(&self, fault: FaultSpec) {
        self.world.inject(fault);
    }

    /// Removes every scripted fault.
    pub fn clear_faults(&self) {
        self.world.clear_faults();
    }

    /// What was served to one account (zeros for an unknown id).
    pub fn counters(&self, sim_account_id: &str) -> Counters {
        self.world.counters(sim_account_id)
    }

    /// Every refresh-token exchange so far, oldest first, with the `caller` its token URL
    /// named.
    pub fn refresh_log(&self) -> Vec<super::RefreshEvent> {
        self.world.refresh_log()
    }

    /// What was served in total, anonymous calls included.
    pub fn total_counters(&self) -> Counters {
        self.world.totals()
    }

    /// Sets how full an account's windows are, in percent.
    pub fn set_usage(
        &self,
        sim_account_id: &str,
        primary_used_percent: f64,
        secondary_used_percent: f64,
    ) {
        self.world.set_usage(
            sim_account_id,
            Some(primary_used_percent),
            Some(secondary_used_percent),
            None,
        );
    }

    /// Sets how full an account's extra (`codex_bengalfox`) window is, in percent.
    pub fn set_extra_usage(&self, sim_account_id: &str, used_percent: f64) {
        self.world
            .set_usage(sim_account_id, None, None, Some(used_percent));
    }

    /// Changes an account's tokens per window; `None` leaves a limit alone.
    pub fn set_quota(
        &self,
        sim_account_id: &str,
        primary: Option<u64>,
        secondary: Option<u64>,
        extra: Option<u64>,
    ) {
        self.world
            .set_quota(sim_account_id, primary, secondary, extra);
    }

    /// Bans an account: every call answers 403 JSON.
    pub fn ban(&self, id: &str) {
        self.world.set_standing(id, Standing::Banned);
    }

    /// Deactivates an account: every call answers 401 mentioning "deactivated".
    pub fn deactivate(&self, id: &str) {
        self.world.set_standing(id, Standing::Deactivated);
    }

    /// Lifts a ban or deactivation.
    pub fn reinstate(&self, id: &str) {
        self.world.set_standing(id, Standing::Active);
    }

    /// Expires every access token of an account now (its refresh token still works).
    pub fn expire_access_token(&self, id: &str) {
        self.world.expire_access_tokens(id);
    }

    /// Resolves once [`SimHandle::shutdown`] was called (used to park a runtime that hosts
    /// the simulator).
    pub async fn stopped(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|stopped| *stopped).await;
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Stops accepting, lets open connections finish (bounded), and waits for the server.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}
