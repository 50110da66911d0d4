//! Just enough JWT reading for the pool: the `exp` claim of an access token, which drives the
//! proactive refresh schedule, and the identity claims (docs/protocol.md §8) an account imported from
//! a refresh token alone learns from its first refresh. No signature check — upstream checks
//! every token it is sent; the pool only reads timing and whose the token is.

use serde_json::Value;

use crate::{Identity, UnixMs};

/// The namespaced claim holding the ChatGPT account, user and plan.
const AUTH_CLAIM: &str = "https://api.openai.com/auth";
/// The namespaced claim holding the profile (email) when there is no top-level `email`.
const PROFILE_CLAIM: &str = "https://api.openai.com/profile";

/// The `exp` claim (as unix ms) of a JWT, if the token is a decodable JWT.
pub fn expires_at(token: &str) -> Option<UnixMs> {
    let v = payload(token)?;
    let exp = v.get("exp")?;
    let secs = exp.as_i64().or_else(|| exp.as_f64().map(|f| f as i64))?;
    Some(secs.saturating_mul(1000))
}

/// The `iat` claim (as unix ms) of a JWT: when upstream issued it, which orders two token sets
/// of one account even when neither says when it was last refreshed.
pub fn issued_at(token: &str) -> Option<UnixMs> {
    let iat = payload(token)?.get("iat")?.clone();
    let secs = iat.as_i64().or_else(|| iat.as_f64().map(|f| f as i64))?;
    Some(secs.saturating_mul(1000))
}

/// The identity a token names: `auth.chatgpt_account_id`, `auth.chatgpt_plan_type`,
/// `auth.chatgpt_user_id` (else `auth.user_id`), and `email` (else `profile.email`). Fields the
/// token lacks (or a token that is not a JWT) are `None`; `label` is never set.
pub fn identity(token: &str) -> Identity {
    let Some(p) = payload(token) else {
        return Identity::default();
    };
    let auth = p.get(AUTH_CLAIM);
    let auth_str = |k: &str| auth.and_then(|a| a.get(k)).and_then(non_empty);
    Identity {
        email: p.get("email").and_then(non_empty).or_else(|| {
            p.get(PROFILE_CLAIM)
                .and_then(|x| x.get("email"))
                .and_then(non_empty)
        }),
        plan: auth_str("chatgpt_plan_type"),
        chatgpt_account_id: auth_str("chatgpt_account_id"),
        chatgpt_user_id: auth_str("chatgpt_user_id").or_else(|| auth_str("user_id")),
        label: None,
    }
}

/// The identity a refreshed pair of tokens names: the id token's claims completed by the access
/// token's, except the plan, which the access token (the fresher of the two) decides.
pub fn identity_of(access_token: &str, id_token: Option<&str>) -> Identity {
    let mut who = id_token.map(identity).unwrap_or_default();
    who.learn(identity(access_token));
    who
}

/// The decoded JSON payload of a JWT.
fn payload(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64url_decode(payload)?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .filter(Value::is_object)
}

/// A non-empty string claim.
fn non_empty(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
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

    #[test]
    fn reads_identity_from_namespaced_claims_with_fallbacks() {
        // {"https://api.openai.com/auth":{"chatgpt_account_id":"acct","chatgpt_plan_type":"pro",
        //  "user_id":"u-old"},"https://api.openai.com/profile":{"email":"p@x.io"}}
        let tok = "e30.eyJodHRwczovL2FwaS5vcGVuYWkuY29tL2F1dGgiOnsiY2hhdGdwdF9hY2NvdW50X2lkIjoiYWNjdCIsImNoYXRncHRfcGxhbl90eXBlIjoicHJvIiwidXNlcl9pZCI6InUtb2xkIn0sImh0dHBzOi8vYXBpLm9wZW5haS5jb20vcHJvZmlsZSI6eyJlbWFpbCI6InBAeC5pbyJ9fQ.sig";
        let id = identity(tok);
        assert_eq!(id.chatgpt_account_id.as_deref(), Some("acct"));
        assert_eq!(id.plan.as_deref(), Some("pro"));
        assert_eq!(id.chatgpt_user_id.as_deref(), Some("u-old"));
        assert_eq!(id.email.as_deref(), Some("p@x.io"));
        assert_eq!(identity("opaque-token"), Identity::default());
    }
}
