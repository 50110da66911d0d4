//! The header a node puts on a request it forwards to another node (docs/cluster.md
//! "Requests across nodes"), and its check on arrival. Pure: no I/O, the clock is a parameter.
//!
//! A forwarded request has already passed the first node's key check and limits, so the owner
//! must not apply them again — which makes the header a credential: whoever can forge it gets
//! the pool without a client key. It is therefore signed with the cluster secret (HMAC-SHA256,
//! every node the same secret) over everything that decides what the owner does with it: the
//! method, the path, the sending node, the time, the hop count, the client key's name, the
//! account the sender meant, and the SHA-256 of the body. A copy replayed more than
//! [`MAX_SKEW_MS`] later is refused, and a request that already made its one hop
//! ([`MAX_HOPS`]) is never forwarded again, so two nodes with different views of who owns an
//! account cannot bounce a request between them.
//!
//! The value: `v1 node=… ts=… hop=… key=… account=… sig=…`, the strings base64url (so no
//! separator can hide in them), `-` for an absent key or account, the signature in hex.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::config::Secret;
use crate::config::access::EnvLookup;
use crate::config::cluster::ClusterConfig;

/// The header's name.
pub const HEADER: &str = "x-codex-rotor-forwarded";
/// Hops a request may make: a forwarded request is served where it arrives.
pub const MAX_HOPS: u8 = 1;
/// How far a header's time may be from the receiver's, either way (no replay later than this;
/// nodes' clocks are NTP-synchronised far closer).
pub const MAX_SKEW_MS: i64 = 30_000;
/// Shortest secret accepted (the `[cluster]` rule): an HMAC key guessable by brute force would
/// let anyone in.
pub use crate::config::cluster::MIN_SECRET_BYTES;

/// The cluster secret, the HMAC key of forwarded requests. Prints as `***`.
#[derive(Clone, Debug)]
pub struct ClusterSecret(Secret<Vec<u8>>);

impl ClusterSecret {
    /// A secret from its bytes (the text of the variable or file, trimmed).
    pub fn new(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the cluster secret is shorter than {MIN_SECRET_BYTES} bytes \
                 (generate one with `openssl rand -base64 32`)"
            ));
        }
        Ok(ClusterSecret(Secret::new(bytes)))
    }

    /// Reads the secret `[cluster] secret_file` or `secret_env` names (the file wins). The
    /// error names where it looked, never the secret.
    pub fn load(cfg: &ClusterConfig, env: EnvLookup<'_>) -> Result<Self, String> {
        let bytes = cfg
            .resolve_secret(env)
            .map_err(|(key, message)| format!("{key}: {message}"))?;
        Self::new(bytes.expose().clone())
    }

    /// HMAC-SHA256 of `message` under the secret: the same on every node, unguessable
    /// without the secret (the shared affinity table's keys, [`super::affinity`]).
    pub fn keyed_hash(&self, message: &[u8]) -> [u8; 32] {
        mac(self, message)
    }
}

/// What a forwarded request says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The node that forwarded it.
    pub node: String,
    /// When it was forwarded (unix ms, the sender's clock).
    pub ts_ms: i64,
    /// Hops made so far (1 on arrival at the owner).
    pub hop: u8,
    /// The name of the client key the first node admitted it with (none with an open pool), so
    /// the owner records it without checking the key or its limits again.
    pub key: Option<String>,
    /// The account the sender meant it for (the affinity it followed), if any.
    pub account: Option<String>,
}

/// Why a forwarded header was refused; the text is what the client reads (no secret in it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not in the `v1 node=… sig=…` shape.
    #[error("malformed {HEADER} header: {0}")]
    Malformed(&'static str),
    /// The signature does not match (another secret, or a changed request).
    #[error(
        "the {HEADER} signature does not match this request (wrong cluster secret, or the request was changed on the way)"
    )]
    BadSignature,
    /// Too old or too far in the future.
    #[error(
        "the {HEADER} header is {0} ms away from this node's clock (at most {MAX_SKEW_MS} ms): refused as a replay"
    )]
    Skew(i64),
    /// More hops than allowed.
    #[error(
        "the request was already forwarded {0} time(s); a forwarded request is never forwarded again"
    )]
    TooManyHops(u8),
    /// This node has no cluster secret (it is not in a cluster).
    #[error("this node is not in a cluster and accepts no {HEADER} header")]
    NotClustered,
}

/// The header value for `fwd` on `method path` with `body`.
pub fn sign(
    secret: &ClusterSecret,
    method: &str,
    path: &str,
    fwd: &Forwarded,
    body: &[u8],
) -> String {
    let fields = Fields::of(fwd);
    let sig = mac(
        secret,
        &fields.message(method, path, fwd.ts_ms, fwd.hop, body),
    );
    format!(
        "v1 node={} ts={} hop={} key={} account={} sig={}",
        fields.node,
        fwd.ts_ms,
        fwd.hop,
        fields.key,
        fields.account,
        hex(&sig)
    )
}

/// Checks `value` against the request it came with; `now_ms` is the receiver's clock.
pub fn verify(
    secret: &ClusterSecret,
    method: &str,
    path: &str,
    value: &str,
    body: &[u8],
    now_ms: i64,
) -> Result<Forwarded, Refusal> {
    let (fields, ts_ms, hop, sig) = parse(value)?;
    let expected = mac(secret, &fields.message(method, path, ts_ms, hop, body));
    let presented = unhex(sig).ok_or(Refusal::Malformed("sig is not hex"))?;
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], &presented[..])) {
        return Err(Refusal::BadSignature);
    }
    let skew = now_ms - ts_ms;
    if skew.abs() > MAX_SKEW_MS {
        return Err(Refusal::Skew(skew));
    }
    if hop == 0 || hop > MAX_HOPS {
        return Err(Refusal::TooManyHops(hop));
    }
    Ok(Forwarded {
        node: text(&fields.node).ok_or(Refusal::Malformed("node"))?,
        ts_ms,
        hop,
        key: optional(&fields.key)?,
        account: optional(&fields.account)?,
    })
}

/// The encoded strings of a header (as they appear in it).
struct Fields {
    node: String,
    key: String,
    account: String,
}

impl Fields {
    fn of(fwd: &Forwarded) -> Self {
        let enc = |s: &Option<String>| s.as_deref().map_or_else(|| "-".to_owned(), b64);
        Fields {
            node: b64(&fwd.node),
            key: enc(&fwd.key),
            account: enc(&fwd.account),
        }
    }

    /// What the signature covers, one field a line (no field holds a newline: the strings are
    /// base64url, the method and path come from a parsed request line).
    fn message(&self, method: &str, path: &str, ts: i64, hop: u8, body: &[u8]) -> Vec<u8> {
        format!(
            "codex-rotor-forward-v1\n{method}\n{path}\n{}\n{ts}\n{hop}\n{}\n{}\n{}",
            self.node,
            self.key,
            self.account,
            hex(&Sha256::digest(body))
        )
        .into_bytes()
    }
}

/// The parts of a header value, strings still encoded.
fn parse(value: &str) -> Result<(Fields, i64, u8, &str), Refusal> {
    let mut parts = value.split(' ');
    if parts.next() != Some("v1") {
        return Err(Refusal::Malformed("not a v1 header"));
    }
    let mut field = |name: &'static str| {
        parts
            .next()
            .and_then(|p| p.strip_prefix(name)?.strip_prefix('='))
            .ok_or(Refusal::Malformed(name))
    };
    let node = field("node")?.to_owned();
    let ts = field("ts")?.parse().map_err(|_| Refusal::Malformed("ts"))?;
    let hop = field("hop")?
        .parse()
        .map_err(|_| Refusal::Malformed("hop"))?;
    let key = field("key")?.to_owned();
    let account = field("account")?.to_owned();
    let sig = field("sig")?;
    if parts.next().is_some() {
        return Err(Refusal::Malformed("trailing fields"));
    }
    Ok((Fields { node, key, account }, ts, hop, sig))
}

fn optional(encoded: &str) -> Result<Option<String>, Refusal> {
    if encoded == "-" {
        return Ok(None);
    }
    text(encoded)
        .map(Some)
        .ok_or(Refusal::Malformed("key or account"))
}

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s.as_bytes())
}

fn text(encoded: &str) -> Option<String> {
    String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()
}

/// HMAC-SHA256 (RFC 2104) of `message` under the secret.
fn mac(secret: &ClusterSecret, message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let key = secret.0.expose();
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests;
