//! The simulated world: accounts, the tokens issued to them, scripted faults and counters.
//! One mutex guards it all; every critical section is a few map operations, so one lock is
//! both simpler and faster than finer ones at the request rates the simulator serves.

use super::options::{
    AccountSpec, Counters, CreatedAccount, PRIMARY_WINDOW_SECS, RefreshEvent,
    SECONDARY_WINDOW_SECS, SimOptions,
};
use super::quota::{Ms, Quota, Window};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// Lifecycle of a simulated account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Standing {
    /// Serves requests.
    Active,
    /// Every call answers 401 "deactivated".
    Deactivated,
    /// Every call answers 403 JSON.
    Banned,
}

/// One simulated ChatGPT account.
pub(crate) struct Account {
    /// Simulator id, also the `chatgpt_account_id`.
    pub id: String,
    /// `chatgpt_user_id` claim.
    pub user_id: String,
    /// `email` claim.
    pub email: String,
    /// Plan type reported in tokens, headers and 429 bodies.
    pub plan: String,
    /// Whether it may be used at all.
    pub standing: Standing,
    /// Its windows.
    pub quota: Quota,
    /// What was served to it.
    pub counters: Counters,
    /// Access-token lifetime, already time-scaled.
    pub token_ttl_ms: Ms,
    /// Credits balance for `x-codex-credits-*`; `None` = no credits.
    pub credits_balance: Option<String>,
    /// Input tokens last seen per `prompt_cache_key`, to report cached tokens.
    pub cache: HashMap<String, u64>,
}

mod faults;
mod tokens;

use faults::ActiveFault;

/// An access token the simulator issued.
struct AccessEntry {
    /// Whose token it is.
    account: String,
    /// When it stops working (time-scaled ttl; `expire_access_token` pulls it to now).
    expires_at: Ms,
}

/// A refresh token the simulator issued; single use.
struct RefreshEntry {
    /// Whose token it is.
    account: String,
    /// Spent: presenting it again is `refresh_token_reused`.
    used: bool,
}

/// A pending OAuth authorization code.
struct AuthCode {
    /// The account that "logged in".
    account: String,
    /// S256 PKCE challenge the verifier must match.
    challenge: String,
    /// Redirect URI of the authorization request; the exchange must repeat it.
    redirect_uri: Option<String>,
}

/// The tokens one grant hands out.
pub(crate) struct TokenSet {
    /// Unsigned JWT for the backend.
    pub access_token: String,
    /// Single-use refresh token.
    pub refresh_token: String,
    /// Unsigned JWT with the identity claims.
    pub id_token: String,
    /// The account (`tokens.account_id` of `auth.json`).
    pub account_id: String,
}

/// Result of checking a bearer token.
pub(crate) enum Auth {
    /// A live token of an active account.
    Ok(String),
    /// Not a token the simulator issued.
    Unknown,
    /// Issued, but past its expiry.
    Expired(String),
    /// The account is deactivated.
    Deactivated(String),
    /// The account is banned.
    Banned(String),
}

/// Why a refresh or code exchange failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum GrantError {
    /// The refresh token was already used once.
    Reused(String),
    /// Unknown refresh token or code.
    Invalid,
    /// PKCE verifier or redirect URI does not match the authorization request.
    Mismatch,
    /// The account is deactivated.
    Deactivated(String),
    /// The account is banned.
    Banned(String),
}

/// SplitMix64: tiny, seedable, identical on every platform and crate version.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn hex(&mut self) -> String {
        format!("{:016x}", self.next())
    }
}

struct Inner {
    /// Every pseudo-random choice, seeded from the options.
    rng: Rng,
    /// Number of the next account (ids and default emails).
    next_account: u64,
    /// Accounts by id.
    accounts: HashMap<String, Account>,
    /// Every access token ever issued (old ones stay valid until they expire).
    access: HashMap<String, AccessEntry>,
    /// Every refresh token ever issued, spent or not (reuse detection needs the spent ones).
    refresh: HashMap<String, RefreshEntry>,
    /// Pending OAuth authorization codes.
    codes: HashMap<String, AuthCode>,
    /// Scripted faults, first match wins.
    faults: Vec<ActiveFault>,
    /// Counters over all accounts plus anonymous calls.
    totals: Counters,
    /// Every refresh-token exchange, oldest first, at most [`REFRESH_LOG_CAP`].
    refresh_log: Vec<RefreshEvent>,
    /// Source of response ids and turn states.
    serial: u64,
}

/// Everything the handlers share.
pub(crate) struct World {
    /// The options the simulator was started with.
    pub opts: SimOptions,
    /// Everything mutable, behind one short-held lock.
    inner: Mutex<Inner>,
}

/// The refresh log keeps this many exchanges (a demo running for months stays bounded).
pub(crate) const REFRESH_LOG_CAP: usize = 200_000;

/// Current real time in unix milliseconds.
pub(crate) fn now_ms() -> Ms {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Ms)
}

impl World {
    /// An empty world.
    pub fn new(opts: SimOptions) -> Self {
        let inner = Inner {
            rng: Rng(opts.seed),
            next_account: 1,
            accounts: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            codes: HashMap::new(),
            faults: Vec::new(),
            totals: Counters::default(),
            refresh_log: Vec::new(),
            serial: 0,
        };
        World {
            opts,
            inner: Mutex::new(inner),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A nominal duration in seconds, divided by the time scale, in milliseconds.
    pub fn scaled_ms(&self, secs: f64) -> Ms {
        let scale = if self.opts.time_scale > 0.0 {
            self.opts.time_scale
        } else {
            1.0
        };
        ((secs * 1000.0 / scale).round() as Ms).max(1)
    }

    /// Creates an account and its first tokens.
    pub fn create_account(&self, spec: AccountSpec) -> CreatedAccount {
        let o = &self.opts;
        let ttl = spec
            .access_token_ttl
            .unwrap_or(o.access_token_ttl)
            .as_secs_f64();
        let quota = Quota {
            primary: Window::new(
                spec.primary_quota_tokens.unwrap_or(o.primary_quota_tokens),
                self.scaled_ms(PRIMARY_WINDOW_SECS as f64),
            ),
            secondary: Window::new(
                spec.secondary_quota_tokens
                    .unwrap_or(o.secondary_quota_tokens),
                self.scaled_ms(SECONDARY_WINDOW_SECS as f64),
            ),
            extra: spec
                .extra_quota_tokens
                .or(o.extra_quota_tokens)
                .map(|t| Window::new(t, self.scaled_ms(PRIMARY_WINDOW_SECS as f64))),
        };
        let mut g = self.lock();
        let n = g.next_account;
        g.next_account += 1;
        let salt = g.rng.next() & 0xffff_ffff;
        let id = format!("acct-sim-{n:04}-{salt:08x}");
        let email = spec.email.unwrap_or_else(|| format!("user{n}@sim.example"));
        let account = Account {
            id: id.clone(),
            user_id: format!("user-sim-{n:04}-{salt:08x}"),
            email: email.clone(),
            plan: spec.plan.unwrap_or_else(|| "plus".into()),
            standing: Standing::Active,
            quota,
            counters: Counters::default(),
            token_ttl_ms: self.scaled_ms(ttl),
            credits_balance: spec.credits_balance,
            cache: HashMap::new(),
        };
        g.accounts.insert(id.clone(), account);
        drop(g);
        let tokens = self.first_tokens(&id, now_ms());
        let auth_json = json!({
            "auth_mode": "chatgpt",
            "OPENAI_API_KEY": null,
            "tokens": {
                "id_token": tokens.id_token,
                "access_token": tokens.access_token,
                "refresh_token": tokens.refresh_token,
                "account_id": tokens.account_id,
            },
            "last_refresh": humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            "agent_identity": null,
            "personal_access_token": null,
            "bedrock_api_key": null,
            "bedrock_access_keys": null,
        });
        CreatedAccount {
            id,
            email,
            auth_json,
        }
    }

    /// Ids of every account, in creation order.
    pub fn account_ids(&self) -> Vec<String> {
        let g = self.lock();
        let mut ids: Vec<String> = g.accounts.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Runs `f` on one account (if it exists) with its windows rolled to `now`.
    pub fn with_account<T>(
        &self,
        id: &str,
        now: Ms,
        f: impl FnOnce(&mut Account) -> T,
    ) -> Option<T> {
        let mut g = self.lock();
        let acct = g.accounts.get_mut(id)?;
        acct.quota.roll(now);
        Some(f(acct))
    }

    /// Bumps counters of an account (if known) and the totals.
    pub fn count(&self, account: Option<&str>, f: impl Fn(&mut Counters)) {
        bump(&mut self.lock(), account, f);
    }

    /// Counters of one account (zeros for an unknown id).
    pub fn counters(&self, id: &str) -> Counters {
        self.lock()
            .accounts
            .get(id)
            .map(|a| a.counters.clone())
            .unwrap_or_default()
    }

    /// Counters summed over every account (plus anonymous calls).
    pub fn totals(&self) -> Counters {
        self.lock().totals.clone()
    }

    /// Records one refresh-token exchange (dropped past [`REFRESH_LOG_CAP`]; the counters
    /// still count it).
    pub fn log_refresh(&self, event: RefreshEvent) {
        let mut g = self.lock();
        if g.refresh_log.len() < REFRESH_LOG_CAP {
            g.refresh_log.push(event);
        }
    }

    /// Every refresh-token exchange so far, oldest first.
    pub fn refresh_log(&self) -> Vec<RefreshEvent> {
        self.lock().refresh_log.clone()
    }

    /// Sets an account's standing (ban / deactivate / reinstate).
    pub fn set_standing(&self, id: &str, standing: Standing) -> bool {
        self.lock()
            .accounts
            .get_mut(id)
            .map(|a| a.standing = standing)
            .is_some()
    }

    /// Sets how full an account's windows are, in percent; `None` leaves a window alone.
    pub fn set_usage(
        &self,
        id: &str,
        primary: Option<f64>,
        secondary: Option<f64>,
        extra: Option<f64>,
    ) -> bool {
        let now = now_ms();
        self.with_account(id, now, |a| {
            let q = &mut a.quota;
            if let Some(p) = primary {
                q.primary.set_percent(p, now);
            }
            if let Some(p) = secondary {
                q.secondary.set_percent(p, now);
            }
            if let (Some(p), Some(e)) = (extra, q.extra.as_mut()) {
                e.set_percent(p, now);
            }
        })
        .is_some()
    }

    /// Changes an account's tokens per window; `None` leaves a limit alone. Setting an extra
    /// limit on an account without one gives it one.
    pub fn set_quota(
        &self,
        id: &str,
        primary: Option<u64>,
        secondary: Option<u64>,
        extra: Option<u64>,
    ) -> bool {
        let extra_window = self.scaled_ms(PRIMARY_WINDOW_SECS as f64);
        self.with_account(id, now_ms(), |a| {
            let q = &mut a.quota;
            if let Some(t) = primary {
                q.primary.limit_tokens = t;
            }
            if let Some(t) = secondary {
                q.secondary.limit_tokens = t;
            }
            if let Some(t) = extra {
                q.extra
                    .get_or_insert_with(|| Window::new(t, extra_window))
                    .limit_tokens = t;
            }
        })
        .is_some()
    }

    /// An operator's view of one account (no tokens).
    pub fn account_view(&self, id: &str) -> Option<serde_json::Value> {
        self.with_account(id, now_ms(), |a| {
            json!({"id": a.id, "email": a.email, "plan": a.plan, "user_id": a.user_id,
                "standing": a.standing, "quota": a.quota, "counters": a.counters})
        })
    }

    /// A fresh serial number (response ids, turn states).
    pub fn serial(&self) -> u64 {
        let mut g = self.lock();
        g.serial += 1;
        g.serial
    }
}

fn bump(g: &mut Inner, account: Option<&str>, f: impl Fn(&mut Counters)) {
    f(&mut g.totals);
    if let Some(a) = account.and_then(|id| g.accounts.get_mut(id)) {
        f(&mut a.counters);
    }
}
