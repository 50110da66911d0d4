//! In-memory effects for actor tests: a store that records every save (so tests can check the
//! order of durable writes), a scripted token endpoint that tracks concurrency, a scripted usage
//! prober, and a clock that follows tokio's (paused) time.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rotor_actors::quota::Observation;
use rotor_actors::{
    AccountRecord, BoxFuture, Clock, Effects, FenceRefusal, FenceTicket, NewTokens, ProbeError,
    QuotaProber, RefreshError, RefreshFence, RefreshReason, Store, TokenRefresher, Tokens,
    UpstreamCreds,
};

use crate::support::T0;

/// `T0` plus tokio's elapsed time, so `start_paused` tests drive both timers and `now`.
pub struct TokioClock(tokio::time::Instant);

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        T0 + i64::try_from(self.0.elapsed().as_millis()).unwrap_or(0)
    }
}

/// Records and serves account records from memory.
#[derive(Default)]
pub struct MemStore {
    /// Current records.
    pub recs: Mutex<HashMap<String, AccountRecord>>,
    /// Every save, in order.
    pub saves: Mutex<Vec<AccountRecord>>,
    /// Saves of this account id panic (to make its actor fail).
    pub panic_on: Mutex<Option<String>>,
}

impl MemStore {
    pub fn get(&self, id: &str) -> Option<AccountRecord> {
        self.recs.lock().unwrap().get(id).cloned()
    }
}

impl Store for MemStore {
    fn save(&self, rec: &AccountRecord) -> std::io::Result<()> {
        if self.panic_on.lock().unwrap().as_deref() == Some(rec.id.as_str()) {
            *self.panic_on.lock().unwrap() = None;
            panic!("injected store panic");
        }
        self.saves.lock().unwrap().push(rec.clone());
        self.recs
            .lock()
            .unwrap()
            .insert(rec.id.clone(), rec.clone());
        Ok(())
    }
    fn remove(&self, id: &str) -> std::io::Result<()> {
        self.recs.lock().unwrap().remove(id);
        Ok(())
    }
    fn load(&self, id: &str) -> std::io::Result<Option<AccountRecord>> {
        Ok(self.get(id))
    }
}

/// A token endpoint: rotates `rt-N` → `rt-N+1` unless a scripted error is queued.
#[derive(Default)]
pub struct FakeRefresher {
    /// Refresh tokens spent, with the reason.
    pub calls: Mutex<Vec<(String, RefreshReason)>>,
    /// Errors to return, in order, before succeeding.
    pub errors: Mutex<VecDeque<RefreshError>>,
    /// Latency of each call.
    pub delay: Mutex<Duration>,
    in_flight: AtomicUsize,
    /// Most calls seen in flight at once.
    pub max_in_flight: AtomicUsize,
    /// Refresh token → (access token claims, id token claims): answer with JWTs naming an
    /// identity instead of opaque tokens.
    pub claims: Mutex<HashMap<String, (serde_json::Value, serde_json::Value)>>,
}

/// Shares a [`FakeRefresher`] between the pool and the test.
pub struct SharedRefresher(pub Arc<FakeRefresher>);

impl TokenRefresher for SharedRefresher {
    fn refresh(
        &self,
        rt: String,
        reason: RefreshReason,
    ) -> BoxFuture<'static, Result<NewTokens, RefreshError>> {
        let me = self.0.clone();
        Box::pin(async move {
            me.calls.lock().unwrap().push((rt.clone(), reason));
            let n = me.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            me.max_in_flight.fetch_max(n, Ordering::SeqCst);
            let delay = *me.delay.lock().unwrap();
            tokio::time::sleep(delay).await;
            me.in_flight.fetch_sub(1, Ordering::SeqCst);
            if let Some(e) = me.errors.lock().unwrap().pop_front() {
                return Err(e);
            }
            if let Some((access, id)) = me.claims.lock().unwrap().get(&rt) {
                return Ok(NewTokens {
                    access_token: Some(jwt(access)),
                    refresh_token: Some(format!("{rt}+")),
                    id_token: Some(jwt(id)),
                });
            }
            Ok(NewTokens {
                access_token: Some(format!("at-after-{rt}")),
                refresh_token: Some(format!("{rt}+")),
                id_token: None,
            })
        })
    }
}

/// A usage endpoint answering with a fixed observation (its `at` set to the call time).
#[derive(Default)]
pub struct FakeProber {
    pub answer: Mutex<Option<Observation>>,
    /// Answer 401 instead.
    pub unauthorized: std::sync::atomic::AtomicBool,
    pub calls: AtomicUsize,
}

/// Shares a [`FakeProber`] between the pool and the test.
pub struct SharedProber(pub Arc<FakeProber>);

impl QuotaProber for SharedProber {
    fn probe(&self, _creds: UpstreamCreds) -> BoxFuture<'static, Result<Observation, ProbeError>> {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        let a = self.0.answer.lock().unwrap().clone();
        if self.0.unauthorized.load(Ordering::SeqCst) {
            return Box::pin(async { Err(ProbeError::Unauthorized) });
        }
        Box::pin(async move { a.ok_or_else(|| ProbeError::Transient("no answer scripted".into())) })
    }
}

/// A scripted refresh fence: each `begin`/`finish` takes the next scripted answer (none left:
/// granted), and every call is recorded in order.
#[derive(Default)]
pub struct FakeFence {
    pub begins: Mutex<VecDeque<Result<(), FenceRefusal>>>,
    pub finishes: Mutex<VecDeque<Result<(), FenceRefusal>>>,
    /// A bound on the token call (`call_timeout`).
    pub timeout: Mutex<Option<Duration>>,
    /// `begin`, `finish`, `abandon(reached_upstream)` as they came, with the account.
    pub calls: Mutex<Vec<String>>,
}

/// Shares a [`FakeFence`] between the pool and the test.
pub struct SharedFence(pub Arc<FakeFence>);

impl RefreshFence for SharedFence {
    fn call_timeout(&self) -> Option<Duration> {
        *self.0.timeout.lock().unwrap()
    }

    fn begin(&self, account: &str) -> BoxFuture<'static, Result<FenceTicket, FenceRefusal>> {
        self.0
            .calls
            .lock()
            .unwrap()
            .push(format!("begin {account}"));
        let r = self.0.begins.lock().unwrap().pop_front().unwrap_or(Ok(()));
        Box::pin(async move {
            r.map(|()| FenceTicket {
                intent_gen: 1,
                ..FenceTicket::default()
            })
        })
    }

    fn finish(
        &self,
        account: &str,
        _: FenceTicket,
    ) -> BoxFuture<'static, Result<(), FenceRefusal>> {
        self.0
            .calls
            .lock()
            .unwrap()
            .push(format!("finish {account}"));
        let r = self
            .0
            .finishes
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Ok(()));
        // Pending once, as a store's answer is: the actor must wait for it.
        Box::pin(async move {
            tokio::task::yield_now().await;
            r
        })
    }

    fn abandon(
        &self,
        account: &str,
        _: FenceTicket,
        reached_upstream: bool,
    ) -> BoxFuture<'static, Result<(), FenceRefusal>> {
        let call = format!("abandon {account} reached_upstream={reached_upstream}");
        self.0.calls.lock().unwrap().push(call);
        Box::pin(async { Ok(()) })
    }

    fn imported(&self, account: &str) -> BoxFuture<'static, Result<(), FenceRefusal>> {
        self.0
            .calls
            .lock()
            .unwrap()
            .push(format!("imported {account}"));
        Box::pin(async { Ok(()) })
    }
}

/// The fakes of one test.
pub struct Fx {
    pub store: Arc<MemStore>,
    pub refresher: Arc<FakeRefresher>,
    pub prober: Arc<FakeProber>,
    pub clock: Arc<TokioClock>,
    /// `None`: the single node's [`rotor_actors::NoFence`].
    pub fence: Option<Arc<FakeFence>>,
}

impl Fx {
    pub fn new() -> Self {
        Fx {
            store: Arc::default(),
            refresher: Arc::default(),
            prober: Arc::default(),
            clock: Arc::new(TokioClock(tokio::time::Instant::now())),
            fence: None,
        }
    }

    pub fn effects(&self) -> Effects {
        Effects {
            store: self.store.clone(),
            refresher: Arc::new(SharedRefresher(self.refresher.clone())),
            prober: Arc::new(SharedProber(self.prober.clone())),
            fence: match &self.fence {
                Some(f) => Arc::new(SharedFence(f.clone())),
                None => Arc::new(rotor_actors::NoFence),
            },
            clock: self.clock.clone(),
        }
    }
}

/// An active account `id` with refresh token `rt-<id>` whose access token expires at `exp`.
pub fn record(id: &str, exp: Option<i64>) -> AccountRecord {
    let tokens = Tokens {
        access_token: format!("at-{id}"),
        refresh_token: Some(format!("rt-{id}")),
        expires_at: exp,
        ..Tokens::default()
    };
    let mut r = AccountRecord::new(id, tokens, T0);
    r.identity.chatgpt_account_id = Some(format!("acct-{id}"));
    r
}

/// An unsigned JWT (`alg: none`) carrying `payload`.
pub fn jwt(payload: &serde_json::Value) -> String {
    format!(
        "{}.{}.sig",
        b64url(br#"{"alg":"none"}"#),
        b64url(payload.to_string().as_bytes())
    )
}

/// Unpadded base64url.
fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(A[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}
