//! `[server]`: where the daemon listens and how it behaves behind a reverse proxy and during
//! shutdown.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// The HTTP listener and its manners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to bind. Loopback by default: exposing the pool needs a client key (see
    /// `Config::validate_bind`).
    pub listen: SocketAddr,
    /// Prefix every route is mounted under (e.g. `/codex` when nginx forwards
    /// `location /codex/`). Empty = mounted at `/`. Must start with `/` and not end with one.
    pub path_prefix: String,
    /// Believe `X-Forwarded-For` / `X-Forwarded-Proto` / `Forwarded` for the client address and
    /// scheme. Only turn on behind a reverse proxy that overwrites them.
    pub trust_forwarded_headers: bool,
    /// On SIGTERM/SIGINT, how long in-flight requests and streams may keep running before they
    /// are ended with a terminal error event. The systemd unit's `TimeoutStopSec` must exceed it.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Interval of SSE comment heartbeats sent while upstream is silent (long reasoning, or a
    /// first byte slow to come), so reverse proxies and clients do not time the stream out.
    #[serde(with = "humantime_serde")]
    pub sse_heartbeat: Duration,
    /// Largest accepted request body in bytes (requests with big contexts and images are large).
    pub max_body_bytes: usize,
    /// Longest a client may take to send a request head (slowloris). hyper counts it from the
    /// moment an HTTP/1 connection waits for a request, so it also caps how long one may sit
    /// idle.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A client connection on which nothing was read or written for this long is closed
    /// (HTTP/1 keep-alive and HTTP/2 alike) once its in-flight requests, if any, are done.
    #[serde(with = "humantime_serde")]
    pub keep_alive_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            path_prefix: String::new(),
            trust_forwarded_headers: false,
            shutdown_grace: Duration::from_secs(30),
            sse_heartbeat: Duration::from_secs(15),
            max_body_bytes: 32 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(20),
        }
    }
}

/// Who is on the other end of a request once `trust_forwarded_headers` is applied: the address
/// for logs and recent requests, the scheme for links the daemon prints (OAuth redirect, setup).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOrigin {
    /// Client address: the TCP peer, or what the trusted reverse proxy says.
    pub ip: std::net::IpAddr,
    /// `"http"` or `"https"` as the client used it.
    pub scheme: &'static str,
}

impl ServerConfig {
    /// Whether every client is on this machine: a loopback listener with no reverse proxy in
    /// front. Behind a proxy (`trust_forwarded_headers`) the TCP peer is always the proxy, so a
    /// loopback listener says nothing about who the clients are — the admin API then needs its
    /// key exactly as off loopback.
    pub fn clients_are_local(&self) -> bool {
        self.listen.ip().is_loopback() && !self.trust_forwarded_headers
    }

    /// The client's address and scheme. Untrusted (the default): the TCP peer and `http`.
    /// Trusted: the right-most `X-Forwarded-For` entry (the one our proxy appended, which a
    /// client cannot forge), else `X-Real-IP`, else the last `Forwarded: for=`; the last
    /// `X-Forwarded-Proto` or `Forwarded: proto=`. Unparseable values fall back to the peer.
    pub fn client_origin(&self, headers: &http::HeaderMap, peer: SocketAddr) -> ClientOrigin {
        let untrusted = ClientOrigin {
            ip: peer.ip(),
            scheme: "http",
        };
        if !self.trust_forwarded_headers {
            return untrusted;
        }
        let last = |name: &str| -> Option<String> {
            let joined: Vec<&str> = headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            joined
                .join(",")
                .rsplit(',')
                .map(str::trim)
                .find(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let forwarded = last("forwarded");
        let forwarded_param = |key: &str| {
            forwarded.as_deref().and_then(|f| {
                f.split(';').find_map(|kv| {
                    let (k, v) = kv.trim().split_once('=')?;
                    k.eq_ignore_ascii_case(key)
                        .then(|| v.trim_matches('"').to_owned())
                })
            })
        };
        let ip = last("x-forwarded-for")
            .or_else(|| last("x-real-ip"))
            .or_else(|| forwarded_param("for"))
            .and_then(|s| parse_ip(&s))
            .unwrap_or(untrusted.ip);
        let proto = last("x-forwarded-proto").or_else(|| forwarded_param("proto"));
        let scheme = match proto.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("https") => "https",
            _ => "http",
        };
        ClientOrigin { ip, scheme }
    }
}

/// `1.2.3.4`, `1.2.3.4:567`, `[::1]:80` or `::1`.
fn parse_ip(s: &str) -> Option<std::net::IpAddr> {
    let s = s.trim();
    s.parse()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| s.trim_start_matches('[').trim_end_matches(']').parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn forwarded_headers_only_when_trusted() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.7"),
            ("x-forwarded-proto", "https"),
        ]);
        let mut cfg = ServerConfig::default();
        let o = cfg.client_origin(&h, peer);
        assert_eq!((o.ip.to_string(), o.scheme), ("127.0.0.1".into(), "http"));
        cfg.trust_forwarded_headers = true;
        let o = cfg.client_origin(&h, peer);
        assert_eq!(
            (o.ip.to_string(), o.scheme),
            ("203.0.113.7".into(), "https"),
            "right-most entry"
        );

        let h = headers(&[(
            "forwarded",
            "for=198.51.100.1;proto=https, for=\"[2001:db8::1]:4711\";proto=https",
        )]);
        let o = cfg.client_origin(&h, peer);
        assert_eq!(
            (o.ip.to_string(), o.scheme),
            ("2001:db8::1".into(), "https")
        );

        let h = headers(&[("x-real-ip", "192.0.2.9"), ("x-forwarded-for", "garbage")]);
        assert_eq!(
            cfg.client_origin(&h, peer).ip.to_string(),
            "127.0.0.1",
            "unparseable → peer"
        );
        let h = headers(&[("x-real-ip", "192.0.2.9")]);
        assert_eq!(cfg.client_origin(&h, peer).ip.to_string(), "192.0.2.9");
    }
}
