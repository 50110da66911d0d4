//! Which live node should own an account: rendezvous (highest-random-weight) hashing. Every
//! node computes the same answer from the same list of live nodes, with no coordination; a
//! node joining or leaving moves only the accounts it wins or held (≈ 1/N of them).

use sha2::{Digest, Sha256};

/// The weight of `node` for `account`: the first 8 bytes of SHA-256(node ‖ 0 ‖ account).
pub fn weight(node: &str, account: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(node.as_bytes());
    h.update([0u8]);
    h.update(account.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

/// The node among `nodes` that should own `account` (highest weight, ties to the smaller id);
/// `None` when no node is live.
pub fn owner_of<'a, S: AsRef<str>>(account: &str, nodes: &'a [S]) -> Option<&'a str> {
    nodes.iter().map(AsRef::as_ref).max_by(|a, b| {
        weight(a, account)
            .cmp(&weight(b, account))
            .then_with(|| b.cmp(a))
    })
}
