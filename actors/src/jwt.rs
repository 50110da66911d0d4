//! Just enough JWT reading for the pool: the `exp` claim of an access token, which drives the
//! proactive refresh schedule. No signature check — the token is ours and only timing is read.

use crate::UnixMs;

/// The `exp` claim (as unix ms) of a JWT, if the token is a decodable JWT.
pub fn expires_at(token: &str) -> Option<UnixMs> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64url_decode(payload)?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = v.get("exp")?;
    let secs = exp.as_i64().or_else(|| exp.as_f64().map(|f| f as i64))?;
    Some(secs.saturating_mul(1000))
}

/// Decodes unpadded (or padded) base64url.
fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().take_while(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exp_from_a_jwt() {
        // header {"alg":"none"}, payload {"exp":1700000000,"sub":"x"}
        let tok = "eyJhbGciOiJub25lIn0.eyJleHAiOjE3MDAwMDAwMDAsInN1YiI6IngifQ.sig";
        assert_eq!(expires_at(tok), Some(1_700_000_000_000));
        assert_eq!(expires_at("not-a-jwt"), None);
        assert_eq!(expires_at("a.!!!.c"), None);
    }
}
