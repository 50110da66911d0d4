//! PKCE (RFC 7636) for the login flow: a random verifier that never leaves the daemon until the
//! code exchange, and its S256 challenge that travels in the authorize URL, so a stolen
//! authorization code is useless without the verifier.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

/// A PKCE pair: the secret verifier kept here and the challenge sent in the authorize URL.
#[derive(Clone)]
pub struct Pkce {
    /// Random secret, sent only with the code exchange.
    pub verifier: String,
    /// `BASE64URL(SHA256(verifier))`.
    pub challenge: String,
}

impl std::fmt::Debug for Pkce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkce")
            .field("verifier", &"<redacted>")
            .field("challenge", &self.challenge)
            .finish()
    }
}

impl Pkce {
    /// A fresh random pair (64 random bytes → 86-char verifier).
    pub fn generate() -> Self {
        let verifier = random_b64(64);
        Pkce {
            challenge: challenge_for(&verifier),
            verifier,
        }
    }
}

/// The S256 challenge of a verifier.
pub fn challenge_for(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// URL-safe random string of `n` random bytes.
pub(super) fn random_b64(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_is_s256_of_the_verifier() {
        // RFC 7636 appendix B test vector.
        assert_eq!(
            challenge_for("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let p = Pkce::generate();
        assert_eq!(p.verifier.len(), 86);
        assert_eq!(p.challenge, challenge_for(&p.verifier));
    }
}
