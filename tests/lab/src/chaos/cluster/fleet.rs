//! The nodes of a cluster chaos run: each a real `rotor-lab serve` child in cluster mode on its
//! own loopback port and data directory, reaching PostgreSQL through a relay of its own (so it
//! alone can be partitioned from the database) and the simulator's token endpoint with its node
//! id as `caller` (so the simulator's refresh log names the node behind every refresh). A front
//! door ([`Front`]) sends the load to the nodes the harness's health check finds ready.

use crate::chaos::daemon::{ADMIN_KEY, ChildDaemon, POOL_KEY, free_addr};
use crate::chaos::load::Front;
use crate::pg::tcp_url;
use crate::relay::Relay;
use anyhow::Context;
use codex_rotor::sim::SimHandle;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The store key every node seals tokens with (a lab key, not a secret).
pub const STORE_KEY: &str = "Y2x1c3Rlci1jaGFvcy1zdG9yZS1rZXktbm90LXNlY3I=";
/// The secret that signs requests forwarded between nodes (a lab value; base64 of 42 bytes,
/// as `openssl rand -base64 32` would give an operator).
pub const CLUSTER_SECRET: &str = "Y2x1c3Rlci1jaGFvcy1mb3J3YXJkaW5nLXNlY3JldC0wMTIzNDU2Nzg5";

/// The lease timings of the run.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// `cluster.ttl`.
    pub ttl: Duration,
    /// `cluster.margin`.
    pub margin: Duration,
    /// `cluster.claim_every`.
    pub claim_every: Duration,
}

/// What a node is going through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Running, reachable.
    None,
    /// SIGKILLed, not restarted yet.
    Killed,
    /// SIGSTOPped.
    Stopped,
    /// Its relay to PostgreSQL is cut.
    Partitioned,
}

/// One node.
pub struct Node {
    /// Its node id (`n1`, `n2`, …).
    pub id: String,
    /// The process.
    pub daemon: ChildDaemon,
    /// Its way to the database.
    pub relay: Relay,
    /// Its index in the front door.
    pub front: usize,
    /// What the harness is doing to it.
    pub fault: Fault,
}

/// Everything the nodes share.
pub struct Fleet {
    /// The nodes, in the order they joined.
    pub nodes: Vec<Node>,
    /// The front door the load goes through.
    pub front: Arc<Front>,
    bin: PathBuf,
    dir: PathBuf,
    pg: SocketAddr,
    db: String,
    backend: String,
    token_url: String,
    timings: Timings,
}

impl Fleet {
    /// A fleet with no node yet: `pg` the database's TCP listener, `db` the database name.
    pub fn new(
        bin: PathBuf,
        dir: &Path,
        pg: SocketAddr,
        db: &str,
        sim: &SimHandle,
        timings: Timings,
    ) -> Fleet {
        Fleet {
            nodes: Vec::new(),
            front: Front::new(),
            bin,
            dir: dir.to_owned(),
            pg,
            db: db.to_owned(),
            backend: sim.backend_url(),
            token_url: sim.token_url(),
            timings,
        }
    }

    /// Starts node `n{len+1}` and waits until it answers `/healthz`; it enters the front door
    /// once its `/readyz` answers 200 (see [`Fleet::health`]).
    pub async fn add(&mut self) -> anyhow::Result<usize> {
        let id = format!("n{}", self.nodes.len() + 1);
        let dir = self.dir.join(&id);
        std::fs::create_dir_all(&dir)?;
        let relay = Relay::start(self.pg).await?;
        let addr = free_addr()?;
        let config = self.write_config(&dir, &id, addr, &relay)?;
        let env = vec![
            ("CODEX_ROTOR_STORE_KEY".to_owned(), STORE_KEY.to_owned()),
            (
                "CODEX_ROTOR_CLUSTER_SECRET".to_owned(),
                CLUSTER_SECRET.to_owned(),
            ),
        ];
        let daemon = ChildDaemon::start_with_env(
            self.bin.clone(),
            config,
            dir.join("daemon.log"),
            addr,
            None,
            env,
        )
        .await
        .with_context(|| format!("starting node {id}"))?;
        let front = self.front.add(daemon.base_url());
        self.nodes.push(Node {
            id,
            daemon,
            relay,
            front,
            fault: Fault::None,
        });
        Ok(self.nodes.len() - 1)
    }

    fn write_config(
        &self,
        dir: &Path,
        id: &str,
        addr: SocketAddr,
        relay: &Relay,
    ) -> anyhow::Result<PathBuf> {
        let (pool_key, admin_key) = (dir.join("pool.key"), dir.join("admin.key"));
        std::fs::write(&pool_key, POOL_KEY)?;
        std::fs::write(&admin_key, ADMIN_KEY)?;
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        let t = self.timings;
        let text = format!(
            "data_dir = {data:?}\n\
             [server]\nlisten = \"{addr}\"\nshutdown_grace = \"2s\"\n\
             [[keys.keys]]\nname = \"chaos\"\nkey_file = {pk:?}\n\
             [admin]\nkey_file = {ak:?}\n\
             [upstream]\nbase_url = {backend:?}\ntoken_url = {token:?}\n\
             [pool]\ntick = \"500ms\"\n\
             [refresh]\nmargin = \"4s\"\njitter = \"1s\"\nmax_per_minute = 600\n\
             [store]\nbackend = \"postgres\"\nurl = {url:?}\n\
             [cluster]\nenabled = true\nnode_id = {id:?}\nadvertise = \"http://{addr}\"\n\
             ttl = {ttl:?}\nmargin = {margin:?}\nclaim_every = {claim:?}\n",
            data = dir.join("data").display().to_string(),
            pk = pool_key.display().to_string(),
            ak = admin_key.display().to_string(),
            backend = self.backend,
            token = format!("{}?caller={id}", self.token_url),
            url = tcp_url(relay.addr(), &self.db),
            ttl = ms(t.ttl),
            margin = ms(t.margin),
            claim = ms(t.claim_every),
        );
        let path = dir.join("config.toml");
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// The front door's health check: a node is in rotation while its `/readyz` answers 200
    /// within 500 ms (a stopped node answers nothing, a fenced one 503).
    pub async fn health(&self) {
        for n in &self.nodes {
            let ready = n.fault != Fault::Killed
                && n.daemon
                    .status_of("/readyz", Duration::from_millis(500))
                    .await
                    == Some(200);
            self.front.set_up(n.front, ready);
        }
    }

    /// SIGKILL: out of rotation at once (connection refused is what a front door sees).
    pub fn kill(&mut self, i: usize) {
        self.front.set_up(self.nodes[i].front, false);
        self.nodes[i].daemon.kill();
        self.nodes[i].fault = Fault::Killed;
    }

    /// Starts a killed node again on the same port, data directory and node id.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].daemon.restart().await?;
        self.nodes[i].fault = Fault::None;
        Ok(())
    }

    /// SIGSTOP (the front door's health check times out on it).
    pub fn pause(&mut self, i: usize) {
        self.front.set_up(self.nodes[i].front, false);
        self.nodes[i].daemon.signal("STOP");
        self.nodes[i].fault = Fault::Stopped;
    }

    /// SIGCONT.
    pub fn resume(&mut self, i: usize) {
        self.nodes[i].daemon.signal("CONT");
        self.nodes[i].fault = Fault::None;
    }

    /// Cuts the node's relay to PostgreSQL (the node stays reachable for clients).
    pub fn partition(&mut self, i: usize) {
        self.nodes[i].relay.cut();
        self.nodes[i].fault = Fault::Partitioned;
    }

    /// Heals the node's relay.
    pub fn heal(&mut self, i: usize) {
        self.nodes[i].relay.heal();
        self.nodes[i].fault = Fault::None;
    }

    /// Ids of the nodes the harness has not faulted out (running, reachable, on the database).
    pub fn healthy_ids(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.fault == Fault::None)
            .map(|n| n.id.clone())
            .collect()
    }

    /// SIGTERM every node (SIGCONT first, so a stopped one can act on it).
    pub async fn stop_all(&mut self) {
        for n in &mut self.nodes {
            n.daemon.signal("CONT");
            n.relay.heal();
        }
        for n in &mut self.nodes {
            n.daemon.stop().await;
        }
    }
}
