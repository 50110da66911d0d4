//! Client keys: who may use the pool, how fast, how many requests at once, which models. Keys are compared in constant time on SHA-256 digests (no early exit, no
//! length leak), limited by a token bucket (requests per minute) and a concurrency counter whose
//! slot a [`KeyPermit`] releases on drop. `reload` swaps the key set atomically; a key that keeps
//! its name keeps its counters, so in-flight permits stay counted across a SIGHUP. The admin key
//! is checked by the admin API (`http::admin`); guessing it is slowed per client address by
//! [`throttle`], whose table the key store holds.

pub mod throttle;

use crate::config::access::{EnvLookup, process_env};
use crate::config::{ConfigError, ConfigProblem, KeysConfig, pattern};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

/// Why a presented key was refused; the proxy renders each in the client's protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRejection {
    /// No configured key matches (401).
    #[error("invalid API key")]
    Unknown,
    /// The key exists but is disabled (403).
    #[error("API key is disabled")]
    Disabled,
    /// Over the key's requests-per-minute (429 with `Retry-After`).
    #[error("rate limit of this API key exceeded; retry in {retry_after_secs}s")]
    RateLimited {
        /// Seconds until one more request is allowed.
        retry_after_secs: u64,
    },
    /// Over the key's concurrent-request limit (429).
    #[error("too many concurrent requests for this API key")]
    TooManyConcurrent,
}

/// Counters that survive a reload for a key that keeps its name.
#[derive(Debug)]
struct Usage {
    /// Requests of this key in flight (permits alive).
    in_flight: AtomicU32,
    /// Requests-per-minute bucket.
    bucket: Mutex<Bucket>,
}

/// Token bucket: `rpm` tokens of capacity, refilled at `rpm / 60` per second.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// One configured key, as held by the current key set.
#[derive(Debug)]
struct Entry {
    name: Arc<str>,
    digest: [u8; 32],
    enabled: bool,
    rpm: Option<u32>,
    max_concurrent: Option<u32>,
    models: Arc<[String]>,
    usage: Arc<Usage>,
}

/// The current keys; replaced as a whole on reload.
#[derive(Debug, Default)]
struct KeySet {
    entries: Vec<Entry>,
}

/// The client keys of the daemon (cheap to share behind `AppState`).
#[derive(Debug)]
pub struct KeyStore {
    current: RwLock<Arc<KeySet>>,
    /// Requests in flight across all keys, against `limits.max_concurrent_requests`.
    global: Arc<Global>,
    /// Failed admin authentications per client address (one table per daemon).
    admin_failures: throttle::FailureThrottle,
}

/// The daemon-wide gate (`[limits]`), shared by every permit.
#[derive(Debug)]
struct Global {
    in_flight: AtomicU32,
    max: AtomicU32,
}

impl Default for KeyStore {
    fn default() -> Self {
        let max = crate::config::LimitsConfig::default().max_concurrent_requests;
        KeyStore {
            current: RwLock::default(),
            global: Arc::new(Global {
                in_flight: AtomicU32::new(0),
                max: AtomicU32::new(u32::try_from(max).unwrap_or(u32::MAX)),
            }),
            admin_failures: throttle::FailureThrottle::default(),
        }
    }
}

/// Proof that a request was admitted; holds a concurrency slot until dropped.
#[derive(Debug)]
pub struct KeyPermit {
    name: Arc<str>,
    models: Arc<[String]>,
    usage: Option<Arc<Usage>>,
    global: Option<GlobalSlot>,
}

/// One daemon-wide slot; released when dropped (with its permit, or at once on refusal).
#[derive(Debug)]
struct GlobalSlot(Arc<Global>);

impl Drop for GlobalSlot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl KeyPermit {
    /// The key's name (for logs, metrics, recent requests). `"open"` on a keyless pool.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for KeyPermit {
    fn drop(&mut self) {
        if let Some(usage) = &self.usage {
            usage.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl KeyStore {
    /// Builds the store, reading each key from wherever the config names it.
    pub fn from_config(cfg: &KeysConfig) -> Result<KeyStore, ConfigError> {
        Self::from_config_in(cfg, &process_env)
    }

    /// [`KeyStore::from_config`] with an injected environment lookup.
    pub fn from_config_in(cfg: &KeysConfig, env: EnvLookup<'_>) -> Result<KeyStore, ConfigError> {
        let store = KeyStore::default();
        store.reload_in(cfg, env)?;
        Ok(store)
    }

    /// Atomically replaces the keys (SIGHUP). Keys keeping their name keep their in-flight
    /// count and bucket, so permits taken before the reload still count and still release.
    /// On error nothing changes.
    pub fn reload(&self, cfg: &KeysConfig) -> Result<(), ConfigError> {
        self.reload_in(cfg, &process_env)
    }

    /// [`KeyStore::reload`] with an injected environment lookup.
    pub fn reload_in(&self, cfg: &KeysConfig, env: EnvLookup<'_>) -> Result<(), ConfigError> {
        let old = self.snapshot();
        let mut problems = Vec::new();
        let mut entries = Vec::new();
        for (i, k) in cfg.keys.iter().enumerate() {
            let secret = match k.resolve(env) {
                Ok(s) => s,
                Err(message) => {
                    problems.push(ConfigProblem::new(format!("keys.keys[{i}].key"), message));
                    continue;
                }
            };
            let usage = old
                .entries
                .iter()
                .find(|e| *e.name == *k.name)
                .map(|e| e.usage.clone())
                .unwrap_or_else(|| {
                    Arc::new(Usage {
                        in_flight: AtomicU32::new(0),
                        bucket: Mutex::new(Bucket {
                            tokens: f64::from(k.rpm.unwrap_or(0)),
                            last: Instant::now(),
                        }),
                    })
                });
            crate::logging::register_secret(secret.expose());
            entries.push(Entry {
                name: Arc::from(k.name.as_str()),
                digest: digest(secret.expose().as_bytes()),
                enabled: k.enabled,
                rpm: k.rpm,
                max_concurrent: k.max_concurrent,
                models: k.models.clone().into(),
                usage,
            });
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        let fresh = Arc::new(KeySet { entries });
        match self.current.write() {
            Ok(mut guard) => *guard = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }

    fn snapshot(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Applies `[limits]` (at start and on SIGHUP). Permits already out stay counted; lowering
    /// the limit below the current load only refuses new requests.
    pub fn set_limits(&self, limits: &crate::config::LimitsConfig) {
        let max = u32::try_from(limits.max_concurrent_requests).unwrap_or(u32::MAX);
        self.global.max.store(max, Ordering::Release);
    }

    /// The brake on wrong admin keys, per client address.
    pub fn admin_failures(&self) -> &throttle::FailureThrottle {
        &self.admin_failures
    }

    /// Requests in flight across all keys.
    pub fn total_in_flight(&self) -> u32 {
        self.global.in_flight.load(Ordering::Acquire)
    }

    /// Takes a daemon-wide slot, or refuses when `limits.max_concurrent_requests` are out.
    fn take_global(&self) -> Result<GlobalSlot, KeyRejection> {
        let g = &self.global;
        let max = g.max.load(Ordering::Acquire);
        g.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map(|_| GlobalSlot(g.clone()))
            .map_err(|_| KeyRejection::TooManyConcurrent)
    }

    /// True when no client key is configured: every request is admitted (only allowed on
    /// loopback, see `Config::validate_bind`).
    pub fn is_open(&self) -> bool {
        self.snapshot().entries.is_empty()
    }

    /// Names of the configured keys, in config order.
    pub fn names(&self) -> Vec<String> {
        self.snapshot()
            .entries
            .iter()
            .map(|e| e.name.to_string())
            .collect()
    }

    /// Requests in flight for the key `name` (0 if unknown).
    pub fn in_flight(&self, name: &str) -> u32 {
        let set = self.snapshot();
        set.entries
            .iter()
            .find(|e| *e.name == *name)
            .map_or(0, |e| e.usage.in_flight.load(Ordering::Acquire))
    }

    /// Admits a request presenting `presented` (from `Authorization: Bearer` or `x-api-key`):
    /// constant-time match against every key, then the concurrency and rate limits. On an open
    /// store any value (even empty) is admitted under the name `"open"`.
    pub fn authenticate(&self, presented: &str) -> Result<KeyPermit, KeyRejection> {
        let set = self.snapshot();
        if set.entries.is_empty() {
            return Ok(KeyPermit {
                name: Arc::from("open"),
                models: Arc::from(vec!["*".to_owned()]),
                usage: None,
                global: Some(self.take_global()?),
            });
        }
        let presented = digest(presented.as_bytes());
        let mut found: Option<&Entry> = None;
        for e in &set.entries {
            // Visit every entry whatever matched, so timing says nothing about position.
            let eq: bool = e.digest.ct_eq(&presented).into();
            if eq && found.is_none() {
                found = Some(e);
            }
        }
        let entry = found.ok_or(KeyRejection::Unknown)?;
        if !entry.enabled {
            return Err(KeyRejection::Disabled);
        }
        let global = self.take_global()?;
        let mut permit = admit(entry, Instant::now())?; // on error, dropping `global` frees it
        permit.global = Some(global);
        Ok(permit)
    }

    /// Whether the key behind `permit` may use `model` (glob match on the requested name).
    pub fn model_allowed(&self, permit: &KeyPermit, model: &str) -> bool {
        permit.models.iter().any(|p| pattern::matches(p, model))
    }
}

/// Takes a concurrency slot, then a rate token; gives the slot back if no token is left.
/// (The daemon-wide slot is taken by the caller and attached to the permit after.)
fn admit(entry: &Entry, now: Instant) -> Result<KeyPermit, KeyRejection> {
    let usage = &entry.usage;
    let taken = usage
        .in_flight
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            match entry.max_concurrent {
                Some(max) if n >= max => None,
                _ => Some(n + 1),
            }
        });
    if taken.is_err() {
        return Err(KeyRejection::TooManyConcurrent);
    }
    let permit = KeyPermit {
        name: entry.name.clone(),
        models: entry.models.clone(),
        usage: Some(usage.clone()),
        global: None,
    };
    if let Some(rpm) = entry.rpm {
        let mut bucket = match usage.bucket.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        take_token(&mut bucket, rpm, now)?; // dropping `permit` on error frees the slot
    }
    Ok(permit)
}

fn take_token(bucket: &mut Bucket, rpm: u32, now: Instant) -> Result<(), KeyRejection> {
    let capacity = f64::from(rpm);
    let per_sec = capacity / 60.0;
    let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
    bucket.tokens = (bucket.tokens + elapsed * per_sec).min(capacity);
    bucket.last = now;
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        Ok(())
    } else {
        // The epsilon keeps float noise (10.000000001 s) from rounding up a whole second.
        let wait = ((1.0 - bucket.tokens) / per_sec - 1e-6).ceil().max(1.0);
        Err(KeyRejection::RateLimited {
            retry_after_secs: wait as u64,
        })
    }
}

#[cfg(test)]
mod tests;
