//! One Cloudflare cookie jar per pool account (docs/protocol.md §13.3). Codex keeps the
//! `__cf_bm`, `_cfuvid` and `cf_clearance` cookies chatgpt.com sets and sends them back on its
//! next requests; a pool that shared one jar between accounts would link them, and one that
//! kept none would look like a new browser on every request. So each account gets its own
//! jar, holding only those three names (nothing else a response sets is kept or sent), each
//! until its `Max-Age`/`Expires` runs out.
//!
//! Memory is bounded: at most [`NAMES`]`.len()` cookies of at most [`MAX_VALUE`] bytes per
//! account, and at most [`MAX_ACCOUNTS`] jars (the least recently written go first).

use http::HeaderMap;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The cookie names kept, exactly the ones Codex keeps (`chatgpt_cloudflare_cookies.rs`).
pub const NAMES: [&str; 3] = ["__cf_bm", "_cfuvid", "cf_clearance"];
/// Longest cookie value kept; a longer one is ignored, not truncated.
pub const MAX_VALUE: usize = 4096;
/// Most jars kept at once (pool accounts ever seen by this process).
pub const MAX_ACCOUNTS: usize = 16_384;

/// One kept cookie.
#[derive(Debug, Clone)]
struct Cookie {
    value: String,
    /// `None` = a session cookie: kept for the life of the process.
    expires: Option<SystemTime>,
}

/// One account's cookies, by index into [`NAMES`].
#[derive(Debug, Default)]
struct Jar {
    cookies: [Option<Cookie>; 3],
    /// Write order, to evict the stalest jar when [`MAX_ACCOUNTS`] is reached.
    written: u64,
}

/// The jars of every account.
#[derive(Debug, Default)]
pub struct CookieJars {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    jars: HashMap<String, Jar>,
    writes: u64,
}

impl CookieJars {
    /// The `cookie` header value to send for `account` now, if it has any live cookie.
    pub fn header(&self, account: &str) -> Option<http::HeaderValue> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let jar = inner.jars.get(account)?;
        let now = SystemTime::now();
        let mut out = String::new();
        for (name, c) in NAMES.iter().zip(&jar.cookies) {
            let Some(c) = c else { continue };
            if c.expires.is_some_and(|t| t <= now) {
                continue;
            }
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(name);
            out.push('=');
            out.push_str(&c.value);
        }
        if out.is_empty() {
            return None;
        }
        let mut v = http::HeaderValue::from_str(&out).ok()?;
        // Cloudflare clearance is a credential of sorts: never printed by a Debug of headers.
        v.set_sensitive(true);
        Some(v)
    }

    /// Keeps the Cloudflare cookies an answer to `account` sets (and forgets those it
    /// expires). Answers without `set-cookie` cost one header lookup.
    pub fn absorb(&self, account: &str, headers: &HeaderMap) {
        let mut set = headers.get_all(http::header::SET_COOKIE).iter().peekable();
        if set.peek().is_none() {
            return;
        }
        let now = SystemTime::now();
        let parsed: Vec<(usize, Option<Cookie>)> = set
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| parse(v, now))
            .collect();
        if parsed.is_empty() {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.writes += 1;
        let written = inner.writes;
        if !inner.jars.contains_key(account) && inner.jars.len() >= MAX_ACCOUNTS {
            evict_stalest(&mut inner.jars);
        }
        let jar = inner.jars.entry(account.to_owned()).or_default();
        jar.written = written;
        for (i, c) in parsed {
            jar.cookies[i] = c;
        }
        if jar.cookies.iter().all(Option::is_none) {
            inner.jars.remove(account);
        }
    }

    /// Drops an account's jar (the account left the pool).
    pub fn forget(&self, account: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.jars.remove(account);
    }

    /// Jars held now.
    pub fn len(&self) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.jars.len()
    }

    /// True when no account has a cookie.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn evict_stalest(jars: &mut HashMap<String, Jar>) {
    if let Some(k) = jars
        .iter()
        .min_by_key(|(_, j)| j.written)
        .map(|(k, _)| k.clone())
    {
        jars.remove(&k);
    }
}

/// One `set-cookie` value: `Some((index, Some(cookie)))` to keep, `Some((index, None))` to
/// forget (expired or `Max-Age<=0`), `None` for a name not kept or a malformed line.
fn parse(line: &str, now: SystemTime) -> Option<(usize, Option<Cookie>)> {
    let mut parts = line.split(';');
    let (name, value) = parts.next()?.split_once('=')?;
    let index = NAMES.iter().position(|n| *n == name.trim())?;
    let value = value.trim().trim_matches('"');
    if value.len() > MAX_VALUE || !value.bytes().all(|b| b.is_ascii_graphic() && b != b';') {
        return None;
    }
    let mut max_age: Option<i64> = None;
    let mut expires: Option<SystemTime> = None;
    for attr in parts {
        let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
        let k = k.trim();
        if k.eq_ignore_ascii_case("max-age") {
            max_age = v.trim().parse().ok();
        } else if k.eq_ignore_ascii_case("expires") {
            expires = httpdate::parse_http_date(v.trim()).ok();
        }
    }
    // Max-Age wins over Expires (RFC 6265 §5.3).
    let expires = match max_age {
        Some(s) if s <= 0 => return Some((index, None)),
        Some(s) => Some(now + Duration::from_secs(s.unsigned_abs())),
        None => expires,
    };
    if expires.is_some_and(|t| t <= now) {
        return Some((index, None));
    }
    Some((
        index,
        Some(Cookie {
            value: value.to_owned(),
            expires,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(http::header::SET_COOKIE, l.parse().expect("value"));
        }
        h
    }

    #[test]
    fn each_account_gets_back_only_its_own_cloudflare_cookies() {
        let jars = CookieJars::default();
        jars.absorb(
            "a",
            &answer(&[
                "__cf_bm=bm-a; path=/; expires=Wed, 01 Jan 2100 00:00:00 GMT; HttpOnly",
                "_cfuvid=uv-a; path=/; SameSite=None; Secure",
                "oai-did=tracking; path=/",
            ]),
        );
        jars.absorb("b", &answer(&["cf_clearance=cl-b; Max-Age=3600"]));
        assert_eq!(
            jars.header("a").expect("a has cookies"),
            "__cf_bm=bm-a; _cfuvid=uv-a"
        );
        assert_eq!(
            jars.header("b").expect("b has cookies"),
            "cf_clearance=cl-b"
        );
        assert!(jars.header("c").is_none());
        assert!(jars.header("a").expect("a").is_sensitive());
    }

    #[test]
    fn an_expired_or_cleared_cookie_is_not_sent() {
        let jars = CookieJars::default();
        jars.absorb("a", &answer(&["__cf_bm=one", "_cfuvid=two"]));
        jars.absorb("a", &answer(&["__cf_bm=gone; Max-Age=0"]));
        assert_eq!(jars.header("a").expect("a"), "_cfuvid=two");
        jars.absorb(
            "a",
            &answer(&["_cfuvid=old; expires=Thu, 01 Jan 1970 00:00:01 GMT"]),
        );
        assert!(jars.header("a").is_none());
        assert!(jars.is_empty(), "an emptied jar is dropped");
    }

    #[test]
    fn malformed_or_oversized_values_are_ignored() {
        let jars = CookieJars::default();
        let big = format!("__cf_bm={}", "x".repeat(MAX_VALUE + 1));
        jars.absorb("a", &answer(&[&big, "no-equals-sign", "_cfuvid=a b"]));
        assert!(jars.header("a").is_none());
    }

    #[test]
    fn the_number_of_jars_is_bounded() {
        let jars = CookieJars::default();
        for i in 0..MAX_ACCOUNTS + 10 {
            jars.absorb(&format!("acct-{i}"), &answer(&["__cf_bm=v"]));
        }
        assert_eq!(jars.len(), MAX_ACCOUNTS);
        assert!(
            jars.header("acct-0").is_none(),
            "the stalest jar went first"
        );
        assert!(jars.header(&format!("acct-{}", MAX_ACCOUNTS + 9)).is_some());
        jars.forget(&format!("acct-{}", MAX_ACCOUNTS + 9));
        assert_eq!(jars.len(), MAX_ACCOUNTS - 1);
    }
}
