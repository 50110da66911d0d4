//! `rotor-lab chaos cluster`: the evidence for several nodes on PostgreSQL (docs/cluster.md,
//! docs/lab.md). A throwaway PostgreSQL (Unix socket and loopback TCP), the simulator
//! in-process with access tokens that live seconds (refreshes never stop), three real nodes in
//! cluster mode with a short TTL, each behind its own relay to the database, and mixed load
//! through a front door (streamed and not, Responses, Chat and Messages; every third client a
//! conversation with a `session-id`). Faults, one after another, each followed by a
//! convergence check: SIGKILL a node, then restart it; SIGSTOP a node longer than the TTL,
//! then SIGCONT; cut a node's relay to the database longer than the TTL, then heal it; a
//! fourth node joins.
//!
//! What it checks, and how it knows:
//! - **refresh-token reuses = 0**: the simulator's `refresh_token_reused` counter.
//! - **refreshes without a live lease = 0**: each refresh the simulator logged names its node
//!   (`caller`, from the node's `token_url`) and carries the simulator's time; the harness
//!   samples the sessions and owners from the database every 100 ms ([`history`]). A refresh
//!   is fenced iff the node's session was live at that instant (by the renewals seen) and the
//!   node owned the account in the snapshot before or after it.
//! - **every account owned by exactly one live node after convergence**: in the database every
//!   account's owner is a live, healthy node, and each healthy node serves exactly the accounts
//!   the database gives it (its `/admin/accounts`), so the nodes' sets are disjoint and cover all.
//! - **takeover ≤ TTL + 2 s**: from the fault to the first snapshot in which every account the
//!   faulted node owned has another live owner.
//! - **0 leaked leases**, **0 accounts lost** (every account in the database after a graceful
//!   stop, each with the newest refresh token), **every client request ended in success or a
//!   correct protocol error** (requests cut by a SIGKILL or SIGSTOP of their node aside).

pub mod fleet;
pub mod history;

use super::daemon::POOL_KEY;
use super::load::{Load, Outcome};
use super::report::ChaosReport;
use super::run::now_ms;
use super::verdict;
use crate::pg::{ThrowawayPg, tcp_url};
use codex_rotor::sim::{
    AccountSpec, RefreshEvent, RefreshOutcome, SimHandle, SimOptions, Simulator,
};
use codex_rotor::store::StoreKey;
use codex_rotor::store::postgres::records::{read_records, write_new};
use fleet::{Fault, Fleet, Timings};
use history::History;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Arguments of `rotor-lab chaos cluster`.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Accounts in the pool.
    #[arg(long, default_value_t = 24)]
    pub accounts: usize,
    /// Concurrent client requests.
    #[arg(long, default_value_t = 24)]
    pub concurrency: usize,
    /// The session lease TTL of every node.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// Skip the partition from the database.
    #[arg(long)]
    pub no_partition: bool,
    /// Run the sequence of faults this many times (each round ends with one more node).
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// The daemon binary; default: this executable.
    #[arg(long, value_name = "PATH")]
    pub daemon_bin: Option<PathBuf>,
}

/// The faults of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// SIGKILL a node, then start it again.
    Kill,
    /// SIGSTOP a node for longer than the TTL, then SIGCONT.
    Pause,
    /// Cut a node's relay to PostgreSQL for longer than the TTL, then heal it.
    Partition,
    /// Start one more node.
    Join,
}

/// How a cluster chaos run is shaped.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The binary run as each node with `serve` (`rotor-lab`).
    pub bin: PathBuf,
    /// Accounts in the pool.
    pub accounts: usize,
    /// Concurrent client requests.
    pub concurrency: usize,
    /// Nodes at the start.
    pub nodes: usize,
    /// The lease timings.
    pub timings: Timings,
    /// How long the simulator's access tokens live (each node refreshes `refresh.margin` = 4 s
    /// before the end).
    pub access_ttl: Duration,
    /// The faults, in order.
    pub steps: Vec<Step>,
    /// Load before the first fault and after the last convergence.
    pub calm: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            bin: PathBuf::from("rotor-lab"),
            accounts: 24,
            concurrency: 24,
            nodes: 3,
            timings: Timings {
                ttl: Duration::from_secs(3),
                margin: Duration::from_millis(500),
                claim_every: Duration::from_millis(250),
            },
            access_ttl: Duration::from_secs(10),
            steps: vec![Step::Kill, Step::Pause, Step::Partition, Step::Join],
            calm: Duration::from_secs(8),
        }
    }
}

/// Runs `rotor-lab chaos cluster`; an error (exit code 1) when a check fails.
pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let bin = match args.daemon_bin {
        Some(b) => b,
        None => std::env::current_exe()?,
    };
    let mut opts = ClusterOptions {
        bin,
        accounts: args.accounts,
        concurrency: args.concurrency,
        ..ClusterOptions::default()
    };
    opts.timings.ttl = args.ttl;
    if args.no_partition {
        opts.steps.retain(|s| *s != Step::Partition);
    }
    opts.steps = opts.steps.repeat(args.rounds.max(1));
    let report = chaos_cluster(&opts).await?;
    codex_rotor::outln!("{}", report.render())?;
    anyhow::ensure!(
        report.passed(),
        "cluster chaos checks failed:\n  {}",
        report.failures().join("\n  ")
    );
    Ok(())
}

/// What one fault step measured.
#[derive(Debug, Clone)]
pub struct StepResult {
    /// The step and its node.
    pub name: String,
    /// Fault → every account the node owned has another live owner (ms), if it had any.
    pub takeover_ms: Option<i64>,
    /// Whether the takeover finished at all (steps that take nothing away: true).
    pub taken_over: bool,
    /// Undo (or join) → converged (ms), or why not.
    pub converged: Result<i64, String>,
    /// Accounts per node after convergence.
    pub split: String,
    /// Partition → the node's `/readyz` no longer 200 (ms), for a partition.
    pub unready_ms: Option<i64>,
    /// The most lock requests seen waiting in the database while the fault lasted.
    pub lock_waits: i64,
}

/// Accounts per owning node.
type Owners = BTreeMap<String, BTreeSet<String>>;

/// A window during which requests to one node may be cut by its fault.
struct Window {
    node: usize,
    from: Duration,
    to: Duration,
}

/// Everything the steps share.
struct Run<'a> {
    opts: &'a ClusterOptions,
    fleet: Fleet,
    history: Arc<History>,
    accounts: Vec<String>,
    t0: Instant,
    windows: Vec<Window>,
}

/// Runs the scenario and returns its report (checks included).
pub async fn chaos_cluster(opts: &ClusterOptions) -> anyhow::Result<ChaosReport> {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!(
        "codex-rotor-cluster-chaos-{}-{}",
        std::process::id(),
        now_ms()
    ));
    std::fs::create_dir_all(&dir)?;
    let pg = ThrowawayPg::start_with_tcp();
    let db = "chaos";
    let direct = pg.database(db).await;
    let tcp = pg
        .tcp_addr()
        .ok_or_else(|| anyhow::anyhow!("PostgreSQL has no TCP listener"))?;
    let sim_opts = SimOptions {
        event_delay: Duration::from_millis(15),
        answer_words: 12,
        ..SimOptions::default()
    };
    let sim = Simulator::start(sim_opts, ([127, 0, 0, 1], 0).into()).await?;
    let key = StoreKey::parse(fleet::STORE_KEY, "the cluster chaos run")?;
    let (sim_ids, accounts) = seed(&sim, &tcp_url(tcp, db), &key, opts).await?;
    let (history, sampler) = history::start(direct.clone(), Duration::from_millis(100));
    let mut run = Run {
        opts,
        fleet: Fleet::new(opts.bin.clone(), &dir, tcp, db, &sim, opts.timings),
        history,
        accounts,
        t0: Instant::now(),
        windows: Vec::new(),
    };
    let mut report = ChaosReport {
        accounts: opts.accounts,
        concurrency: opts.concurrency,
        ..ChaosReport::default()
    };
    let mut steps = Vec::new();
    for _ in 0..opts.nodes {
        run.fleet.add().await?;
    }
    let first = run.converge().await;
    steps.push(StepResult {
        name: format!("{} nodes start", opts.nodes),
        takeover_ms: None,
        unready_ms: None,
        lock_waits: 0,
        taken_over: true,
        split: run.split(),
        converged: first,
    });
    let load = Load::on_front(run.fleet.front.clone(), 3, POOL_KEY.into(), run.t0)?;
    let workers = load.spawn(opts.concurrency);
    run.hold(opts.calm).await;
    for (k, step) in opts.steps.iter().enumerate() {
        // Each fault lands on another node, so every node takes a turn.
        let victim = k % run.fleet.nodes.len();
        let r = run.step(*step, victim).await?;
        steps.push(r);
        run.hold(opts.calm / 2).await;
    }
    run.hold(opts.calm / 2).await;
    load.running.store(false, Ordering::Relaxed);
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(70), w).await;
    }
    report.duration = run.t0.elapsed();
    report.records = std::mem::take(
        &mut *load
            .records
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?,
    );
    run.attribute_cuts(&mut report);
    verdict::outcome_checks(&mut report);
    run.step_checks(&steps, &mut report);
    run.lease_checks(&mut report).await;
    run.metric_figures(&mut report).await;
    run.fleet.stop_all().await;
    sampler.abort();
    refresh_checks(
        &sim,
        &run,
        &key_of_ids(&sim_ids, &direct, &key).await,
        &mut report,
    );
    match read_records(&direct, &key).await {
        Ok(recs) => verdict::records_hold(&sim, &recs, 0, &sim_ids, &mut report).await,
        Err(e) => report.check(
            "no account lost",
            false,
            format!("database unreadable: {e}"),
        ),
    }
    figures(&sim, &run, &steps, &mut report, started);
    sim.shutdown().await;
    drop(pg);
    if report.passed() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        report.figures.push((
            "work dir (kept: node configs and logs)".into(),
            dir.display().to_string(),
        ));
    }
    Ok(report)
}

/// Creates the simulator accounts and writes them into the empty database, unowned. Returns
/// the simulator ids and the pool ids.
async fn seed(
    sim: &SimHandle,
    url: &str,
    key: &StoreKey,
    opts: &ClusterOptions,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let mut records = Vec::new();
    let mut sim_ids = Vec::new();
    for _ in 0..opts.accounts {
        let created = sim.create_account(AccountSpec {
            access_token_ttl: Some(opts.access_ttl),
            ..AccountSpec::default()
        });
        records.extend(codex_rotor::demo::import_auth_json(&created.auth_json)?);
        sim_ids.push(created.id);
    }
    write_new(url, key, &records).await?;
    let ids = records.iter().map(|r| r.id.clone()).collect();
    Ok((sim_ids, ids))
}

/// Simulator account id → pool account id, from the database.
async fn key_of_ids(sim_ids: &[String], url: &str, key: &StoreKey) -> BTreeMap<String, String> {
    read_records(url, key)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| {
            let sid = r.identity.chatgpt_account_id.clone()?;
            sim_ids.contains(&sid).then_some((sid, r.id))
        })
        .collect()
}

impl Run<'_> {
    fn ttl_ms(&self) -> i64 {
        self.opts.timings.ttl.as_millis() as i64
    }

    /// Keeps the front door's health check going for `d`.
    async fn hold(&self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.fleet.health().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The accounts each healthy node serves, by its own admin API (`None`: it did not answer).
    async fn served(&self) -> BTreeMap<String, Option<BTreeSet<String>>> {
        let mut m = BTreeMap::new();
        for n in self.fleet.nodes.iter().filter(|n| n.fault == Fault::None) {
            let v = n.daemon.admin("/accounts").await.ok();
            let set = v.map(|v| {
                v["accounts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    // The pool's own accounts: whatever `owner` its view names, an account
                    // listed here has an actor on this node.
                    .filter_map(|a| a["id"].as_str().map(str::to_owned))
                    .collect()
            });
            m.insert(n.id.clone(), set);
        }
        m
    }

    /// Waits until every account has a live owner among the healthy nodes, every healthy node
    /// is ready and serves exactly what the database gives it, and that assignment has not
    /// changed for a settling time (4 claim rounds, at least 1.5 s: a restarted or joined node
    /// has claimed its share by then). Ok(ms until the settled state began) or why not.
    async fn converge(&self) -> Result<i64, String> {
        let start = Instant::now();
        let deadline = Duration::from_millis(3 * self.ttl_ms() as u64) + Duration::from_secs(15);
        let settle = (self.opts.timings.claim_every * 4).max(Duration::from_millis(1500));
        let mut why = String::from("no database snapshot yet");
        let mut settled: Option<(Instant, Owners)> = None;
        while start.elapsed() < deadline {
            self.fleet.health().await;
            match self.converged().await {
                Ok(owners) => match &settled {
                    Some((since, prev)) if *prev == owners => {
                        if since.elapsed() >= settle {
                            return Ok(since.duration_since(start).as_millis() as i64);
                        }
                    }
                    _ => settled = Some((Instant::now(), owners)),
                },
                Err(e) => {
                    why = e;
                    settled = None;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(why)
    }

    async fn converged(&self) -> Result<Owners, String> {
        let healthy: BTreeSet<String> = self.fleet.healthy_ids().into_iter().collect();
        let s = self.history.last().ok_or("no database snapshot yet")?;
        let mut db: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for a in &self.accounts {
            match s.live_owner(a) {
                Some(n) if healthy.contains(n) => {
                    db.entry(n.to_owned()).or_default().insert(a.clone());
                }
                Some(n) => return Err(format!("{a} owned by {n}, not a healthy node")),
                None => return Err(format!("{a} has no live owner")),
            }
        }
        for n in self.fleet.nodes.iter().filter(|n| n.fault == Fault::None) {
            if !self.fleet.front.is_up(n.front) {
                return Err(format!("{} is not ready", n.id));
            }
        }
        for (node, set) in self.served().await {
            let want = db.get(&node).cloned().unwrap_or_default();
            match set {
                None => return Err(format!("{node} does not answer its admin API")),
                Some(got) if got != want => {
                    return Err(format!(
                        "{node} serves {} accounts, the database gives it {} (e.g. {:?})",
                        got.len(),
                        want.len(),
                        got.symmetric_difference(&want).next()
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(db)
    }

    /// Accounts per live owner, now.
    fn split(&self) -> String {
        match self.history.last() {
            Some(s) => s
                .by_owner(&self.accounts)
                .iter()
                .map(|(n, a)| format!("{}: {}", n.as_deref().unwrap_or("nobody"), a.len()))
                .collect::<Vec<_>>()
                .join(", "),
            None => "no snapshot".into(),
        }
    }

    /// The accounts `node` owns in the newest snapshot.
    fn owned_by(&self, node: &str) -> Vec<String> {
        self.history.last().map_or(Vec::new(), |s| {
            self.accounts
                .iter()
                .filter(|a| s.live_owner(a) == Some(node))
                .cloned()
                .collect()
        })
    }

    /// Waits until every account of `taken` has a live owner other than `node`, up to TTL +
    /// 10 s (`None` when it owned nothing, or it never happened); the takeover time is read from the snapshots: the first one at or after the fault
    /// (database ms `at`) in which that holds.
    async fn takeover(
        &self,
        node: &str,
        taken: &[String],
        at: i64,
        watch: Option<usize>,
    ) -> (Option<i64>, Option<i64>) {
        let mut unready = None;
        let start = Instant::now();
        let limit = self.opts.timings.ttl + Duration::from_secs(10);
        let done = |s: &history::Sample| {
            s.at >= at
                && taken
                    .iter()
                    .all(|a| s.live_owner(a).is_some_and(|o| o != node))
        };
        while start.elapsed() < limit {
            let over = taken.is_empty() || self.history.last().is_some_and(|s| done(&s));
            if over && (watch.is_none() || unready.is_some()) {
                break;
            }
            self.fleet.health().await;
            if let Some(i) = watch
                && unready.is_none()
                && !self.fleet.front.is_up(i)
            {
                unready = Some(now_ms() - at);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if taken.is_empty() {
            return (None, unready);
        }
        let took = self
            .history
            .samples()
            .iter()
            .find(|s| done(s))
            .map(|s| s.at - at);
        (took, unready)
    }

    /// One fault on node `i`, its undo, and the convergence after it.
    async fn step(&mut self, step: Step, i: usize) -> anyhow::Result<StepResult> {
        if step == Step::Join {
            let j = self.fleet.add().await?;
            let converged = self.converge().await;
            return Ok(StepResult {
                name: format!("{} joins", self.fleet.nodes[j].id),
                takeover_ms: None,
                unready_ms: None,
                lock_waits: 0,
                taken_over: true,
                split: self.split(),
                converged,
            });
        }
        let id = self.fleet.nodes[i].id.clone();
        let taken = self.owned_by(&id);
        let from = self.t0.elapsed();
        let at = now_ms();
        match step {
            Step::Kill => self.fleet.kill(i),
            Step::Pause => self.fleet.pause(i),
            Step::Partition => self.fleet.partition(i),
            Step::Join => {}
        }
        let watch = (step == Step::Partition).then_some(self.fleet.nodes[i].front);
        let (takeover_ms, unready_ms) = self.takeover(&id, &taken, at, watch).await;
        let since = |s: &history::Sample| s.at >= at;
        // A pause or a partition lasts longer than the TTL, whatever the takeover did.
        let least = self.opts.timings.ttl + Duration::from_secs(1);
        let held = Duration::from_millis((now_ms() - at).max(0) as u64);
        if held < least {
            self.hold(least - held).await;
        }
        let name = match step {
            Step::Kill => {
                self.fleet.restart(i).await?;
                format!("SIGKILL {id}, then restart")
            }
            Step::Pause => {
                self.fleet.resume(i);
                format!("SIGSTOP {id} for > TTL, then SIGCONT")
            }
            _ => {
                self.fleet.heal(i);
                format!("partition {id} from PostgreSQL for > TTL, then heal")
            }
        };
        let lock_waits = self
            .history
            .samples()
            .iter()
            .filter(|s| since(s))
            .map(|s| s.waiting)
            .max()
            .unwrap_or(0);
        let converged = self.converge().await;
        self.windows.push(Window {
            node: self.fleet.nodes[i].front,
            from,
            to: self.t0.elapsed(),
        });
        Ok(StepResult {
            name,
            takeover_ms,
            unready_ms,
            lock_waits,
            taken_over: takeover_ms.is_some() || taken.is_empty(),
            split: self.split(),
            converged,
        })
    }

    /// Transport failures of requests sent to a node while the harness faulted it are the
    /// fault's doing (a SIGKILL cuts them, a SIGSTOP may hold them past a timeout).
    fn attribute_cuts(&self, report: &mut ChaosReport) {
        for r in &mut report.records {
            let cut = self
                .windows
                .iter()
                .any(|w| Some(w.node) == r.node && r.span.0 <= w.to && r.span.1 >= w.from);
            if cut && matches!(&r.outcome, Outcome::Violation(v) if v.contains("transport")) {
                r.outcome = Outcome::CutByKill;
            }
        }
    }

    fn step_checks(&self, steps: &[StepResult], report: &mut ChaosReport) {
        let bound = self.ttl_ms() + 2_000;
        let bad: Vec<String> = steps
            .iter()
            .filter(|s| !s.taken_over || s.takeover_ms.is_some_and(|t| t > bound))
            .map(|s| format!("{}: {:?}", s.name, s.takeover_ms))
            .collect();
        let worst = steps.iter().filter_map(|s| s.takeover_ms).max();
        report.check(
            "takeover ≤ TTL + 2 s",
            bad.is_empty() && worst.is_some(),
            match (bad.is_empty(), worst) {
                (true, Some(w)) => format!("worst {w} ms (bound {bound} ms)"),
                (true, None) => "no takeover measured".into(),
                (false, _) => format!("{bad:?}"),
            },
        );
        let ttl = self.ttl_ms();
        let cut: Vec<String> = steps
            .iter()
            .filter(|s| s.name.starts_with("partition"))
            .map(|s| s.unready_ms.map_or("never".into(), |t| format!("{t} ms")))
            .collect();
        if !cut.is_empty() {
            report.check(
                "a node cut from the database turns unready within the TTL",
                steps
                    .iter()
                    .filter(|s| s.name.starts_with("partition"))
                    .all(|s| s.unready_ms.is_some_and(|t| t <= ttl)),
                format!("/readyz not 200 after {} (TTL {ttl} ms)", cut.join(", ")),
            );
        }
        let unconverged: Vec<String> = steps
            .iter()
            .filter_map(|s| {
                s.converged
                    .as_ref()
                    .err()
                    .map(|e| format!("{}: {e}", s.name))
            })
            .collect();
        report.check(
            "every account owned by exactly one live node after each step",
            unconverged.is_empty(),
            if unconverged.is_empty() {
                format!("{} convergences", steps.len())
            } else {
                unconverged.join("; ")
            },
        );
    }

    /// Each node's fenced-out writes and cluster counters, from its `/metrics`: the evidence
    /// that a zombie's late writes were refused by the database.
    async fn metric_figures(&self, report: &mut ChaosReport) {
        for n in &self.fleet.nodes {
            let text = n.daemon.text("/metrics").await.unwrap_or_default();
            let picked: Vec<String> = text
                .lines()
                .filter(|l| {
                    !l.starts_with('#')
                        && (l.starts_with("codex_rotor_store_fenced_writes_total")
                            || l.starts_with("codex_rotor_cluster_"))
                })
                .map(|l| l.replace("codex_rotor_", ""))
                .collect();
            report.figures.push((
                format!("{} metrics (this process)", n.id),
                if picked.is_empty() {
                    "none".into()
                } else {
                    picked.join(", ")
                },
            ));
        }
    }

    /// Every running node's in-flight leases back to 0 once the load stopped.
    async fn lease_checks(&self, report: &mut ChaosReport) {
        let mut leaked = Vec::new();
        for n in &self.fleet.nodes {
            let (in_flight, leases) = verdict::idle_leases(&n.daemon).await;
            if in_flight != 0 || leases != 0 {
                leaked.push(format!("{}: in_flight {in_flight}, leases {leases}", n.id));
            }
        }
        report.check(
            "0 leaked leases (every node back to 0 when idle)",
            leaked.is_empty(),
            if leaked.is_empty() {
                format!("{} nodes idle at 0", self.fleet.nodes.len())
            } else {
                leaked.join("; ")
            },
        );
    }
}

/// The refreshes of `log` made by a node (its `caller`) that did not hold a live session at
/// that instant, or did not own the account in the snapshot before or after it, or came before
/// the history began (nothing to prove them by); `pool_id` maps simulator ids to pool ids.
pub fn unfenced(
    log: &[RefreshEvent],
    samples: &[history::Sample],
    ttl: i64,
    pool_id: &BTreeMap<String, String>,
) -> Vec<String> {
    let first = samples.first().map_or(i64::MAX, |s| s.at);
    let mut out = Vec::new();
    for e in log {
        let (Some(node), Some(sid)) = (e.caller.as_deref(), e.account.as_deref()) else {
            continue;
        };
        let account = pool_id.get(sid).map_or(sid, String::as_str);
        let live = history::lease_live_at(samples, node, e.at, ttl);
        let owned = history::owned_around(samples, account, node, e.at);
        if e.at < first || !live || !owned {
            out.push(format!(
                "{node} refreshed {account} at {} ({:?}): lease live {live}, owner {owned}",
                e.at, e.outcome
            ));
        }
    }
    out
}

/// Reuses, and every refresh checked against the ownership history.
fn refresh_checks(
    sim: &SimHandle,
    run: &Run<'_>,
    pool_id: &BTreeMap<String, String>,
    report: &mut ChaosReport,
) {
    let log = sim.refresh_log();
    let samples = run.history.samples();
    let ttl = run.ttl_ms();
    let by_node: Vec<_> = log.iter().filter(|e| e.caller.is_some()).collect();
    let reused = sim.total_counters().refresh_reused;
    report.check(
        "refresh-token reuses = 0",
        reused == 0,
        format!(
            "{reused} reuses in {} refresh attempts by the nodes",
            by_node.len()
        ),
    );
    let unfenced = unfenced(&log, &samples, ttl, pool_id);
    let granted = by_node
        .iter()
        .filter(|e| e.outcome == RefreshOutcome::Granted)
        .count();
    report.check(
        "refreshes without a live lease = 0",
        unfenced.is_empty() && granted > 0,
        if unfenced.is_empty() {
            format!(
                "{} refreshes by the nodes ({granted} granted), each by the live owner",
                by_node.len()
            )
        } else {
            format!(
                "{} of {}: {:?}",
                unfenced.len(),
                by_node.len(),
                &unfenced[..unfenced.len().min(3)]
            )
        },
    );
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &by_node {
        *per_node
            .entry(e.caller.as_deref().unwrap_or("?"))
            .or_default() += 1;
    }
    report
        .figures
        .push(("refreshes per node".into(), format!("{per_node:?}")));
}

fn figures(
    sim: &SimHandle,
    run: &Run<'_>,
    steps: &[StepResult],
    report: &mut ChaosReport,
    started: Instant,
) {
    let c = sim.total_counters();
    report.upstream = vec![
        ("responses requests".into(), c.requests),
        ("401 served".into(), c.served_401),
        ("5xx served".into(), c.served_5xx),
        ("token refreshes".into(), c.refreshes),
        ("refresh-token reuse attempts".into(), c.refresh_reused),
    ];
    let t = run.opts.timings;
    report.injected.push((
        "nodes, lease".into(),
        format!(
            "{} at the start; ttl {} ms, margin {} ms, claim every {} ms",
            run.opts.nodes,
            t.ttl.as_millis(),
            t.margin.as_millis(),
            t.claim_every.as_millis()
        ),
    ));
    report.injected.push((
        "access tokens live".into(),
        format!("{} s (refresh 4 s before)", run.opts.access_ttl.as_secs()),
    ));
    for s in steps {
        report.injected.push((
            s.name.clone(),
            format!(
                "takeover {}, lock waits ≤ {}, converged {}; split {}",
                s.takeover_ms.map_or("-".into(), |t| format!("{t} ms")),
                s.lock_waits,
                match &s.converged {
                    Ok(ms) => format!("in {ms} ms"),
                    Err(_) => "NOT".into(),
                },
                s.split
            ),
        ));
    }
    let mut by_node: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for r in &report.records {
        let Some(n) = r
            .node
            .and_then(|i| run.fleet.nodes.iter().find(|n| n.front == i))
        else {
            continue;
        };
        let e = by_node.entry(n.id.as_str()).or_default();
        e.0 += 1;
        if matches!(r.outcome, Outcome::ProtocolError(_)) {
            e.1 += 1;
        }
    }
    report.figures.push((
        "requests (protocol errors) per node".into(),
        by_node
            .iter()
            .map(|(n, (all, err))| format!("{n}: {all} ({err})"))
            .collect::<Vec<_>>()
            .join(", "),
    ));
    report.figures.push((
        "database snapshots (failed)".into(),
        format!(
            "{} ({})",
            run.history.samples().len(),
            run.history.failures.load(Ordering::Relaxed)
        ),
    ));
    report.figures.push((
        "whole run".into(),
        format!("{:.0} s", started.elapsed().as_secs_f64()),
    ));
}
