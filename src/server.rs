//! `codex-rotor serve`: load the configuration, open the account files, start the pool with its
//! real effects (files, OAuth refresher, usage prober, system clock) and serve HTTP until
//! SIGTERM/SIGINT, reloading keys, strategy and limits on SIGHUP.
//!
//! Shutdown is ordered (docs/style.md practice 6): stop accepting → let open streams finish within
//! `server.shutdown_grace` → end the rest with a terminal event → stop the pool, so every
//! account actor flushes its file → exit 0.

pub mod idle;

use crate::config::Config;
use crate::config::GlobalArgs;
use crate::http::state::{AppState, Parts};
use crate::keys::KeyStore;
use crate::metrics::Metrics;
use crate::oauth::HttpRefresher;
use crate::recent::RecentRequests;
use crate::signals::Signals;
use crate::upstream::{Upstream, UpstreamSettings, usage::UsageProber};
use anyhow::Context;
use rotor_actors::{AccountRecord, Clock, Effects, PoolHandle, SystemClock};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Arguments of `codex-rotor serve` (the config file is the global `--config`).
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on, overriding `server.listen`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

/// How long open streams get after the grace period to write their terminal event.
const FINAL_FLUSH: Duration = Duration::from_secs(5);

/// Runs `codex-rotor serve` until a shutdown signal.
pub async fn run(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<()> {
    let mut cfg = global.load_config().context("loading the configuration")?;
    if let Some(listen) = args.listen {
        cfg.server.listen = listen;
    }
    check(&cfg)?;
    // The daemon's account actors are the only writers of the store while it serves: the
    // data directory's lock, or the database's fencing generations.
    let opened = crate::store::open(&cfg, "serve")
        .await
        .context("cannot serve")?;
    for q in &opened.quarantined {
        tracing::warn!(file = ?q, "an unreadable account file was quarantined");
    }
    let cluster = match (&opened.postgres, &opened.postgres_url) {
        (Some(store), Some(url)) if cfg.cluster.enabled => Some(ClusterStore {
            store: store.clone(),
            url: url.expose().clone(),
        }),
        _ => None,
    };
    let (store, records, quarantined, lock) = (
        opened.store,
        opened.records,
        opened.quarantined,
        opened.lock,
    );
    let signals = Signals::install().context("installing signal handlers")?;
    let daemon = start_inner(cfg, store, records, quarantined, cluster).await?;
    tracing::info!(addr = %daemon.addr, "codex-rotor is serving");
    let pid = std::process::id();
    let addr = daemon.addr.to_string();
    if let Some(lock) = &lock {
        lock.describe(
            &format!("codex-rotor serve (pid {pid}, listening on {addr})"),
            Some(&addr),
        );
    }
    let reload = daemon.state.clone();
    let config_path = global.config.clone();
    let mut reloads = signals.reload_rx();
    let reloader = tokio::spawn(async move {
        while reloads.recv().await.is_ok() {
            self::reload(&reload, config_path.as_deref()).await;
        }
    });
    signals.shutdown_requested().await;
    tracing::info!("shutting down");
    reloader.abort();
    daemon.shutdown().await;
    drop(lock);
    Ok(())
}

/// Refuses configurations that must not run: invalid keys, or an open pool on a public address.
fn check(cfg: &Config) -> anyhow::Result<()> {
    let problems = cfg.validate();
    if !problems.is_empty() {
        let text: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect();
        anyhow::bail!("invalid configuration:\n  {}", text.join("\n  "));
    }
    Ok(())
}

/// Re-reads the configuration on SIGHUP and applies what can change live: keys, strategy,
/// limits. A configuration that fails to load or validate is ignored, with a log line.
pub async fn reload(state: &AppState, path: Option<&std::path::Path>) {
    let mut cfg = match Config::load(path) {
        Ok(cfg) => cfg,
        Err(e) => {
            return tracing::error!(error = %format!("{e:#}"), "reload: configuration not loaded; keeping the old one");
        }
    };
    if let Err(e) = check(&cfg) {
        return tracing::error!(error = %format!("{e:#}"), "reload: configuration invalid; keeping the old one");
    }
    let old = state.config();
    cfg.server.listen = old.server.listen;
    if let Err(e) = state.keys().reload(&cfg.keys) {
        return tracing::error!(error = %e, "reload: keys not loaded; keeping the old configuration");
    }
    state.keys().set_limits(&cfg.limits);
    state.pool().set_strategy(cfg.pool_config().strategy).await;
    state.set_config(cfg);
    tracing::info!("configuration reloaded");
}

/// A running daemon: its address, state and server task.
pub struct Daemon {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// Shared state (pool, metrics …).
    pub state: AppState,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Keeps the node's published summary current (cluster mode).
    publisher: Option<tokio::task::JoinHandle<()>>,
    /// The cluster node's loops (cluster mode only).
    node: Option<crate::cluster::Node>,
    /// The shared affinity table's writer (cluster mode only).
    affinity_writer: Option<tokio::task::JoinHandle<()>>,
}

/// The node's view and the refresh fence on its own database connection.
async fn cluster_fence(
    cfg: &Config,
    c: &ClusterStore,
    addr: std::net::SocketAddr,
) -> anyhow::Result<(
    Arc<crate::cluster::ClusterView>,
    Arc<crate::cluster::PgFence>,
)> {
    use crate::cluster::{ClusterView, PgFence, Timing, fence::Window, node};
    let timing = Timing::of(&cfg.cluster);
    let view = ClusterView::new(
        node::node_id_of(&cfg.cluster),
        node::advertise_of(&cfg.cluster, addr),
        timing.ttl,
        timing.margin,
    );
    let fence = PgFence::connect(
        &c.url,
        timing.fifth(),
        view.clone(),
        c.store.clone(),
        Window::of(&cfg.cluster),
    )
    .await
    .context("connecting the refresh fence to the database")?;
    Ok((view, Arc::new(fence)))
}

/// What a cluster node's loops need of the opened store.
pub struct ClusterStore {
    /// The PostgreSQL store the actors write through.
    pub store: Arc<crate::store::postgres::records::PgStore>,
    /// Its connection string.
    pub url: String,
}

/// Starts pool and HTTP server from a validated configuration and the loaded account records.
/// Refuses, whoever calls it, what `Config::validate_bind` refuses: an open pool off loopback,
/// an admin API without a key off loopback or behind a reverse proxy.
pub async fn start(
    cfg: Config,
    store: Arc<dyn rotor_actors::Store>,
    records: Vec<AccountRecord>,
) -> anyhow::Result<Daemon> {
    start_with(cfg, store, records, Vec::new()).await
}

/// [`start`], also handing over the files `FileStore::open` quarantined, which the admin API,
/// the dashboard and `/readyz` report.
pub async fn start_with(
    cfg: Config,
    store: Arc<dyn rotor_actors::Store>,
    records: Vec<AccountRecord>,
    quarantined: Vec<crate::store::Quarantined>,
) -> anyhow::Result<Daemon> {
    start_inner(cfg, store, records, quarantined, None).await
}

/// [`start_with`] for a node of a cluster whose view the caller keeps current (tests and the
/// admin rig fill it by hand, as the lease loop would): the admin API, the dashboard and the
/// request path read it. `None` is a single node.
pub async fn start_node(
    cfg: Config,
    store: Arc<dyn rotor_actors::Store>,
    records: Vec<AccountRecord>,
    quarantined: Vec<crate::store::Quarantined>,
    view: Option<Arc<crate::cluster::ClusterView>>,
) -> anyhow::Result<Daemon> {
    start_daemon(cfg, store, records, quarantined, None, view).await
}

/// [`start_with`], as a cluster node when `cluster` is given: the node's loops start before
/// the listener accepts, and the pool runs only the accounts the node claims.
pub async fn start_inner(
    cfg: Config,
    store: Arc<dyn rotor_actors::Store>,
    records: Vec<AccountRecord>,
    quarantined: Vec<crate::store::Quarantined>,
    cluster: Option<ClusterStore>,
) -> anyhow::Result<Daemon> {
    start_daemon(cfg, store, records, quarantined, cluster, None).await
}

/// Starts the daemon; a node of a cluster (its loops from `cluster`, or a `view` kept by the
/// caller) also forwards requests whose conversation lives on a peer, or that no local account
/// can take, signed with the `[cluster]` secret (which must be readable), and keeps the summary
/// it publishes current in its view ([`crate::cluster::summary`]).
async fn start_daemon(
    cfg: Config,
    store: Arc<dyn rotor_actors::Store>,
    records: Vec<AccountRecord>,
    quarantined: Vec<crate::store::Quarantined>,
    cluster: Option<ClusterStore>,
    view: Option<Arc<crate::cluster::ClusterView>>,
) -> anyhow::Result<Daemon> {
    let link = if cluster.is_some() || view.is_some() {
        Some(
            crate::cluster::Link::from_config(&cfg.cluster, &crate::config::access::process_env)
                .map_err(|e| anyhow::anyhow!("cluster secret: {e}"))?,
        )
    } else {
        None
    };
    let refused = cfg.validate_bind();
    if !refused.is_empty() {
        anyhow::bail!(
            "refusing to start:\n{}",
            crate::config::ConfigProblem::list(&refused)
        );
    }
    let keys = KeyStore::from_config(&cfg.keys).context("loading client keys")?;
    let upstream = Upstream::new(UpstreamSettings::from_config(&cfg.upstream))
        .context("building the upstream client")?;
    keys.set_limits(&cfg.limits);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let metrics = Metrics::new();
    let refresher = HttpRefresher::new(upstream.client().clone(), cfg.upstream.token_url.clone())
        .with_client_id(&cfg.refresh.client_id)
        .with_identity(&cfg.upstream.originator, &cfg.upstream.user_agent);
    let listener = TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| format!("binding {}", cfg.server.listen))?;
    let addr = listener.local_addr()?;
    // A cluster node's view exists before its actors do: they refresh under its fence.
    let fenced = match &cluster {
        Some(c) => Some(cluster_fence(&cfg, c, addr).await?),
        None => None,
    };
    let fence: Arc<dyn rotor_actors::RefreshFence> = match &fenced {
        Some((_, f)) => f.clone(),
        None => Arc::new(rotor_actors::NoFence),
    };
    let effects = Effects {
        store,
        // Counted, so `codex_rotor_token_refreshes_total` reports the refreshes really made.
        refresher: metrics.count_refreshes(Arc::new(refresher)),
        prober: Arc::new(UsageProber::new(upstream.clone())),
        fence,
        clock: clock.clone(),
    };
    let pool = PoolHandle::start(cfg.pool_config(), effects, records)
        .await
        .context("starting the account pool")?;
    let shared = cluster.as_ref().map(|c| c.store.clone());
    let (mut affinity, mut affinity_writer) = (None, None);
    let node = match (cluster, fenced) {
        (Some(c), Some((view, fence))) => {
            use crate::cluster::{Node, NodeParts, Timing};
            tracing::info!(
                node = view.node_id(),
                advertise = view.advertise(),
                "cluster: joining"
            );
            if let Some(link) = &link {
                // Every affinity the pool records is shared with the other nodes.
                let table = crate::cluster::affinity::SharedAffinity::new(
                    link.secret.clone(),
                    rotor_actors::pool::AFFINITY_TTL_MS,
                );
                pool.share_affinity(table.clone());
                affinity_writer = Some(table.spawn_writer(c.url.clone()));
                affinity = Some(table);
            }
            Some(Node::start(NodeParts {
                view,
                url: c.url,
                pool: pool.clone(),
                store: c.store,
                timing: Timing::of(&cfg.cluster),
                fence: Some(fence),
            }))
        }
        _ => None,
    };
    let recent_capacity = cfg.admin.recent_requests.max(1);
    let state = AppState::new(Parts {
        pool,
        config: cfg,
        keys,
        metrics,
        recent: RecentRequests::new(recent_capacity),
        upstream,
        clock,
        quarantined,
        cluster: view.or_else(|| node.as_ref().map(|n| n.view().clone())),
        link,
        shared,
        affinity,
    });
    let publisher = state
        .cluster()
        .map(|view| crate::cluster::summary::spawn(view.clone(), state.pool().clone()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = crate::http::router::build(state.clone());
    let limits = ConnLimits::of(&state.config().server);
    let server = tokio::spawn(serve(listener, app, limits, async move {
        let _ = stopped.await;
    }));
    Ok(Daemon {
        addr,
        state,
        stop,
        server,
        publisher,
        node,
        affinity_writer,
    })
}

/// The time bounds of one client connection, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// `server.header_read_timeout`: hyper's bound on receiving a request head.
    pub header_read_timeout: Duration,
    /// `server.keep_alive_timeout`: a connection with no I/O for this long is closed ([`idle`]).
    pub keep_alive_timeout: Duration,
}

impl ConnLimits {
    /// The limits configured in `[server]`.
    pub fn of(cfg: &crate::config::ServerConfig) -> Self {
        Self {
            header_read_timeout: cfg.header_read_timeout,
            keep_alive_timeout: cfg.keep_alive_timeout,
        }
    }
}

/// Serves until `shutdown` resolves, then stops accepting and waits for open connections. The
/// TCP peer of every connection is handed to the handlers (`ConnectInfo`), for the logs' client
/// address when no trusted reverse proxy names it.
///
/// The accept loop is `axum::serve`'s, written out so that hyper's HTTP/1 read buffer can be
/// capped at [`READ_BUF_MAX`]: by default hyper lets it grow to 400 KiB and a heap profile of
/// `bench proxy` showed ~32 KiB per client connection, while requests here are small JSON
/// documents (a bigger body is simply read in several turns). It also bounds slow and idle
/// clients ([`ConnLimits`]): without a timer hyper applies no header read timeout at all, and
/// without [`idle`] nothing closes a connection its client keeps open.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use tower::ServiceExt as _;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    tokio::spawn(async move {
        shutdown.await;
        drop(stop_rx);
    });
    let (open_tx, open_rx) = tokio::sync::watch::channel(());
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(READ_BUF_MAX)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().enable_connect_protocol();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop_tx.closed() => break,
        };
        let _ = stream.set_nodelay(true);
        let service =
            app.clone()
                .map_request(move |req: axum::http::Request<hyper::body::Incoming>| {
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    req
                });
        let service = hyper_util::service::TowerToHyperService::new(service);
        let (builder, stop_tx, open_rx) = (builder.clone(), stop_tx.clone(), open_rx.clone());
        tokio::spawn(async move {
            let activity = Arc::new(idle::Activity::default());
            let io = idle::Counted::new(TokioIo::new(stream), activity.clone());
            let conn = builder.serve_connection_with_upgrades(io, service);
            tokio::pin!(conn);
            let stopping = stop_tx.closed();
            tokio::pin!(stopping);
            let unused = idle::idle_for(&activity, limits.keep_alive_timeout);
            tokio::pin!(unused);
            let mut asked = false;
            loop {
                tokio::select! {
                    _ = conn.as_mut() => break,
                    _ = &mut stopping, if !asked => {
                        asked = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    () = &mut unused, if !asked => {
                        asked = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(open_rx);
        });
    }
    drop(listener);
    drop(open_rx);
    open_tx.closed().await;
    Ok(())
}

/// Cap of hyper's per-connection HTTP/1 read buffer. A request head must fit in it (16 KiB: twice
/// nginx's default header line limit); bodies stream through it in as many reads as they need.
const READ_BUF_MAX: usize = 16 * 1024;

impl Daemon {
    /// Ordered shutdown: stop accepting, drain within the grace, end the rest, stop the pool.
    /// A cluster node first hands its accounts over (docs/cluster.md "How a node runs").
    pub async fn shutdown(mut self) {
        if let Some(node) = self.node.take() {
            node.leave().await;
        }
        let grace = self.state.config().server.shutdown_grace;
        let _ = self.stop.send(());
        let mut server = self.server;
        if tokio::time::timeout(grace, &mut server).await.is_err() {
            tracing::warn!(
                ?grace,
                "open streams outlived the shutdown grace; ending them"
            );
            self.state.end_streams();
            if tokio::time::timeout(FINAL_FLUSH, &mut server)
                .await
                .is_err()
            {
                server.abort();
            }
        }
        if let Some(p) = self.publisher {
            p.abort();
        }
        if let Some(w) = self.affinity_writer {
            w.abort();
            // What the last second queued still reaches the table (bounded).
            if let Some(t) = self.state.shared_affinity() {
                let _ = tokio::time::timeout(FINAL_FLUSH, t.flush_now()).await;
            }
        }
        self.state.pool().shutdown().await;
    }
}
