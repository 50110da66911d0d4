//! The brake on guessing the admin key: a token bucket of *failed* authentications per client
//! address. Each attempt takes a token before the key is compared (so parallel guesses cannot
//! all slip through between a check and its bookkeeping); a success gives it back. An empty
//! bucket refuses the attempt unread — even with the right key — until it refills one token
//! per `admin.auth_failure_refill`, up to `admin.auth_failure_burst`. Other addresses keep
//! their own buckets, so an attacker cannot lock the operator out from elsewhere.
//!
//! Memory is bounded: at most [`MAX_ADDRESSES`] buckets; when a new address finds the table
//! full, buckets that have refilled are forgotten first (they hold no information), then the
//! fullest one. IPv6 addresses count by their /64 (one host usually holds a whole /64), and
//! IPv4-mapped IPv6 addresses as IPv4. Pure: the caller supplies `now`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Most client addresses remembered at once.
pub const MAX_ADDRESSES: usize = 4096;

/// The bucket's shape, read from `[admin]` at every attempt (so a reload applies at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Failures in a row before the address is refused.
    pub burst: u32,
    /// One more failure is allowed per this interval.
    pub refill: Duration,
}

/// An address over its budget: come back after `retry_after_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Seconds until the address may try once more (at least 1).
    pub retry_after_secs: u64,
}

/// One address's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Failures still allowed (fractional while refilling).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    last: Instant,
}

impl Bucket {
    /// `tokens` as of `now`.
    fn refilled(&self, budget: Budget, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        let per_sec = 1.0 / budget.refill.as_secs_f64().max(1e-9);
        (self.tokens + elapsed * per_sec).min(f64::from(budget.burst))
    }
}

/// The buckets of every address that failed lately (cheap to hold in the key store).
#[derive(Debug, Default)]
pub struct FailureThrottle {
    table: Mutex<HashMap<IpAddr, Bucket>>,
}

/// An attempt that took one token from its address; dropped, it counts as a failure,
/// [`Attempt::succeeded`] gives the token back.
#[must_use = "drop it on failure, call succeeded() on success"]
#[derive(Debug)]
pub struct Attempt<'a> {
    throttle: &'a FailureThrottle,
    addr: IpAddr,
    budget: Budget,
}

impl Attempt<'_> {
    /// The key was right: the attempt was not a failure. A bucket full again is forgotten.
    pub fn succeeded(self) {
        let mut table = self.throttle.lock();
        if let Some(b) = table.get_mut(&self.addr) {
            b.tokens = (b.tokens + 1.0).min(f64::from(self.budget.burst));
            if b.tokens >= f64::from(self.budget.burst) {
                table.remove(&self.addr);
            }
        }
    }
}

impl FailureThrottle {
    /// Takes one token from `ip`'s bucket for an authentication about to be checked, or
    /// refuses when the bucket is empty.
    pub fn attempt(
        &self,
        ip: IpAddr,
        budget: Budget,
        now: Instant,
    ) -> Result<Attempt<'_>, Throttled> {
        let addr = group(ip);
        let mut table = self.lock();
        if !table.contains_key(&addr) && table.len() >= MAX_ADDRESSES {
            make_room(&mut table, budget, now);
        }
        let full = f64::from(budget.burst);
        let bucket = table.entry(addr).or_insert(Bucket {
            tokens: full,
            last: now,
        });
        bucket.tokens = bucket.refilled(budget, now);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(Attempt {
                throttle: self,
                addr,
                budget,
            });
        }
        let wait = (1.0 - bucket.tokens) * budget.refill.as_secs_f64();
        Err(Throttled {
            // The epsilon keeps float noise from rounding up a whole second.
            retry_after_secs: ((wait - 1e-6).ceil() as u64).max(1),
        })
    }

    /// Addresses remembered right now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no address is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Bucket>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Frees one slot at least: refilled buckets first, else the fullest one.
fn make_room(table: &mut HashMap<IpAddr, Bucket>, budget: Budget, now: Instant) {
    let full = f64::from(budget.burst);
    table.retain(|_, b| b.refilled(budget, now) < full);
    if table.len() >= MAX_ADDRESSES {
        let fullest = table
            .iter()
            .max_by(|a, b| {
                a.1.refilled(budget, now)
                    .total_cmp(&b.1.refilled(budget, now))
            })
            .map(|(addr, _)| *addr);
        if let Some(addr) = fullest {
            table.remove(&addr);
        }
    }
}

/// The unit an address is counted by: IPv4 as is, IPv6 by its /64.
fn group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Budget = Budget {
        burst: 3,
        refill: Duration::from_secs(10),
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn a_burst_of_failures_then_refusal_then_refill() {
        let t = FailureThrottle::default();
        let now = Instant::now();
        for _ in 0..3 {
            drop(
                t.attempt(ip("192.0.2.1"), BUDGET, now)
                    .expect("within the burst"),
            );
        }
        let refused = t.attempt(ip("192.0.2.1"), BUDGET, now).expect_err("over");
        assert_eq!(refused.retry_after_secs, 10);
        let later = now + Duration::from_secs(4);
        assert_eq!(
            t.attempt(ip("192.0.2.1"), BUDGET, later)
                .expect_err("still over"),
            Throttled {
                retry_after_secs: 6
            }
        );
        let refilled = now + Duration::from_secs(10);
        drop(
            t.attempt(ip("192.0.2.1"), BUDGET, refilled)
                .expect("one more"),
        );
        assert!(t.attempt(ip("192.0.2.1"), BUDGET, refilled).is_err());
        // Another address is untouched.
        t.attempt(ip("192.0.2.2"), BUDGET, now)
            .expect("own budget")
            .succeeded();
    }

    #[test]
    fn successes_give_their_token_back_and_leave_nothing_behind() {
        let t = FailureThrottle::default();
        let now = Instant::now();
        for _ in 0..10 {
            t.attempt(ip("192.0.2.1"), BUDGET, now)
                .expect("never spent")
                .succeeded();
        }
        assert!(t.is_empty(), "a full bucket is not remembered");
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let t = FailureThrottle::default();
        let now = Instant::now();
        for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"] {
            drop(t.attempt(ip(host), BUDGET, now).expect("shared /64 budget"));
        }
        assert!(t.attempt(ip("2001:db8:1:2::77"), BUDGET, now).is_err());
        assert!(
            t.attempt(ip("2001:db8:1:3::1"), BUDGET, now)
                .is_ok_and(|a| {
                    drop(a);
                    true
                })
        );
        for _ in 0..3 {
            drop(
                t.attempt(ip("::ffff:192.0.2.9"), BUDGET, now)
                    .expect("mapped"),
            );
        }
        assert!(t.attempt(ip("192.0.2.9"), BUDGET, now).is_err());
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_the_emptiest_buckets() {
        let t = FailureThrottle::default();
        let now = Instant::now();
        // One address spends its whole budget; then a flood of single failures from others.
        for _ in 0..3 {
            drop(t.attempt(ip("198.51.100.1"), BUDGET, now).expect("burst"));
        }
        for i in 0..(MAX_ADDRESSES as u32 + 100) {
            let other = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            drop(t.attempt(other, BUDGET, now).expect("fresh address"));
        }
        assert!(t.len() <= MAX_ADDRESSES, "{} addresses", t.len());
        assert!(
            t.attempt(ip("198.51.100.1"), BUDGET, now).is_err(),
            "the flood did not wash out the address that is locked out"
        );
    }
}
